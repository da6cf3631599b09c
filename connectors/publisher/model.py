"""The publisher's values: who owns an address, and what one read of an account and region saw."""
from dataclasses import dataclass, field
from functools import cache

from flowdredge.schemas.metadata import ABSENT, OWNER_FIELDS

INSTANCE = "instance"
ELB = "elb"
LAMBDA = "lambda"
NAT_GATEWAY = "nat_gateway"
VPC_ENDPOINT = "vpc_endpoint"
INTERFACE = "interface"
POD = "pod"
ECS_TASK = "ecs_task"


@dataclass(frozen=True, slots=True)
class Scope:
    account: str
    region: str

    def __str__(self):
        return f"{self.account}/{self.region}"


@cache
def _scope(account: str, region: str) -> Scope:
    """One Scope per account and region: the reconciliation asks an owner's of every address at
    every poll, and a new one each time cost a fifth of it (bench.publisher). Kept in the owners
    instead, each with a dict of its own, they made the collector's full passes longer."""
    return Scope(account, region)


# Slots: the publisher holds an Owner and a Holding per address, and makes a Claim per address
# at every poll: without a dict each they take less memory, and the collector's full passes,
# over every one of them, less time (bench.publisher).
@dataclass(frozen=True, slots=True)
class Owner:
    """The contract's owner fields (schemas.metadata.OWNER_FIELDS); ABSENT when unknown."""
    app: str = ABSENT
    cluster: str = ABSENT
    asg: str = ABSENT
    account: str = ABSENT
    region: str = ABSENT
    zone: str = ABSENT
    interface_id: str = ABSENT
    resource_id: str = ABSENT
    kind: str = ABSENT

    def as_fields(self) -> dict:
        return {f: getattr(self, f) for f in OWNER_FIELDS}

    @property
    def scope(self) -> Scope:
        return _scope(self.account, self.region)


@dataclass(frozen=True, slots=True)
class Claim:
    """An address seen on an interface: its owner, and, for the interface's primary private
    address, when AWS says the interface was attached (epoch ms) where it says so: the time the
    address came to this owner. None for every other address, whose time AWS does not give.
    `vpc_id`: the interface's VPC (None when not known), whose flows an address several VPCs
    claim is attributed within (diff: VPC_ASSIGN)."""
    ip: str
    owner: Owner
    attached_ms: int = None
    vpc_id: str = None


@dataclass
class Inventory:
    """What one account and region hold, as the AWS APIs describe it (boto3 shapes).

    interfaces: DescribeNetworkInterfaces items. instance_tags: instance id -> {key: value}.
    asg_of_instance: instance id -> group name; asg_tags: group name -> {key: value}.
    load_balancers: "app/name/id" (v2, the ENI description's tail) or classic name ->
    (resource id, name, tags). functions: Lambda function name -> ARN; function_networks:
    function name -> {(subnets, security groups)} of its versions in a VPC (a published version
    keeps the network it was published with); function_tags: function name -> {key: value}
    (every version's: tags are on the function). nat_gateways,
    vpc_endpoints: interface id -> (resource id, name to parse, tags).
    """
    scope: Scope
    interfaces: list = field(default_factory=list)
    instance_tags: dict = field(default_factory=dict)
    asg_of_instance: dict = field(default_factory=dict)
    asg_tags: dict = field(default_factory=dict)
    load_balancers: dict = field(default_factory=dict)
    functions: dict = field(default_factory=dict)
    function_networks: dict = field(default_factory=dict)
    function_tags: dict = field(default_factory=dict)
    nat_gateways: dict = field(default_factory=dict)
    vpc_endpoints: dict = field(default_factory=dict)
