"""Owners of addresses from an account's and region's inventory. Pure (no boto3, no clock).

Every address on a network interface (primary and secondary private IPv4, IPv6 and, if asked
for, the public IPv4 associated with a private one) belongs to the interface's owner, but for
an EKS node's addresses its pods hold (kind pod, no owner: `_pod_addresses`):

| kind | when | resource_id | name parsed for app / cluster |
| --- | --- | --- | --- |
| instance | the interface is attached to an instance | instance id | its Auto Scaling group, else its Name tag |
| nat_gateway | a NAT gateway's interface | nat-... | the gateway's Name tag, else its id |
| vpc_endpoint | an interface endpoint's interface | vpce-... | `vpce-<service>` (e.g. vpce-s3) |
| lambda | a Lambda function's interface | function ARN (the interface id for one several functions share; the name for another account's or one not listed) | the function name |
| elb | description `ELB app/<name>/<id>`, `ELB net/...`, `ELB <classic name>` | load balancer ARN or classic name (not listed or another account's: the description's) | the load balancer name |
| ecs_task | an ECS task's (awsvpc: description `arn:aws:ecs:...:attachment/...`) | that attachment ARN | its Name tag |
| interface | any other interface | eni-... | its Name tag |
| pod | an EKS node's address its pods hold | the node's instance id | none: app and cluster `-` |

An explicit app tag (and cluster tag, if configured) on the resource (a Lambda function's over
its interface's), or on the instance's Auto Scaling group, wins over the parsed name. `asg` is set
for instances in a group. A load balancer or a function the read does not list (deleted since
its interface was read, or made since the last poll) has no name: its tags are not known.
"""
import ipaddress
import re
from dataclasses import dataclass
from socket import AF_INET, inet_ntop, inet_pton

from flowdredge.connectors.publisher.model import (ECS_TASK, ELB, INSTANCE, INTERFACE, LAMBDA,
                                                   NAT_GATEWAY, POD, VPC_ENDPOINT, Claim,
                                                   Inventory, Owner)
from flowdredge.connectors.publisher.naming import NameRule
from flowdredge.schemas.metadata import ABSENT
from flowdredge.schemas.security import is_reserved_app

ASG_TAG = "aws:autoscaling:groupName"
NAT_DESCRIPTION = "Interface for NAT Gateway "
ENDPOINT_DESCRIPTION = "VPC Endpoint Interface "
LAMBDA_DESCRIPTION = "AWS Lambda VPC ENI-"
ELB_DESCRIPTION = "ELB "
# ECS describes a task's interface (awsvpc network mode) by the ARN of its attachment.
_ECS_ATTACHMENT = re.compile(r"arn:aws[a-z-]*:ecs:[^:]*:[^:]*:attachment/")
# Lambda appends a UUID to the function name in its interfaces' descriptions.
_UUID_TAIL = re.compile(r"-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Naming:
    rule: NameRule
    app_tag: str = "app"
    cluster_tag: str = ""
    public_ipv4: bool = True


def tag_dict(tags) -> dict:
    """Tags by key. A value of white space only is "", as an empty one: the job reads an owner
    value of it as none (`-`), so the name gives the app (before, an app tag " " was the app)."""
    return {t["Key"]: "" if type(v := t.get("Value", "")) is str and not v.strip() else v
            for t in tags or () if "Key" in t}


def epoch_ms(when) -> int:
    """A boto3 timestamp (aware datetime) as epoch milliseconds."""
    return int(when.timestamp() * 1000)


def normal_address(address: str) -> str:
    """The address as ipaddress writes it (ValueError if it is none). AWS writes IPv4 addresses
    so already: they are checked in C, not parsed by ipaddress in Python, which was half of
    derive_claims' time (bench.publisher)."""
    try:
        if inet_ntop(AF_INET, inet_pton(AF_INET, address)) == address:
            return address
    # ValueError: a NUL or a lone surrogate, which inet_pton refuses with a message of its own.
    except (OSError, TypeError, ValueError):
        pass
    return str(ipaddress.ip_address(address))


def interface_addresses(eni: dict, public_ipv4: bool) -> list:
    """The interface's addresses, normalised, primary private IPv4 first, without repeats."""
    found = []
    private = eni.get("PrivateIpAddresses") or (
        [{"PrivateIpAddress": eni["PrivateIpAddress"]}] if eni.get("PrivateIpAddress") else [])
    for entry in sorted(private, key=lambda e: not e.get("Primary", False)):
        found.append(entry.get("PrivateIpAddress"))
        if public_ipv4:
            found.append((entry.get("Association") or {}).get("PublicIp"))
    if public_ipv4:
        found.append((eni.get("Association") or {}).get("PublicIp"))
    found.extend(e.get("Ipv6Address") for e in eni.get("Ipv6Addresses") or ())
    out = []
    for address in found:
        if not address:
            continue
        normal = normal_address(address)
        if normal not in out:
            out.append(normal)
    return out


def own_interfaces(interfaces, scope, scopes) -> list:
    """The interfaces a read of `scope` speaks for: not those another account owns (OwnerId)
    whose read of the same region is configured, which gives them. In a shared VPC the VPC
    owner's read lists the participants' interfaces in its subnets too: both reads claimed each
    of their addresses, with owners of two accounts, and a contested address is nobody's (a
    publisher review)."""
    others = {s.account for s in scopes if s.region == scope.region} - {scope.account}
    return [eni for eni in interfaces if eni.get("OwnerId") not in others]


def derive_claims(inventory: Inventory, naming: Naming) -> list:
    """Every address the inventory's interfaces hold, as Claims (possibly several per address
    when VPCs overlap: the reconciliation decides)."""
    claims = []
    for eni in inventory.interfaces:
        owner = interface_owner(eni, inventory, naming)
        attachment = eni.get("Attachment") or {}
        attached = attachment.get("AttachTime")
        attached_ms = epoch_ms(attached) if attached is not None else None
        # Only the primary private address came with the interface: the others (secondary
        # addresses, Elastic IPs, IPv6) may have come to it after it was attached.
        primary = primary_address(eni)
        pods = _pod_addresses(eni, primary, inventory)
        pod = Owner(account=owner.account, region=owner.region, zone=owner.zone,
                    interface_id=owner.interface_id, resource_id=owner.resource_id, kind=POD)
        for ip in interface_addresses(eni, naming.public_ipv4):
            claims.append(Claim(ip, pod if ip in pods else owner,
                                attached_ms if ip == primary else None, eni.get("VpcId")))
    return claims


def primary_address(eni: dict):
    """The interface's primary private address, normalised (None if it names none): it comes
    and goes with the interface, as the others (derive_claims) need not."""
    primary = next((e.get("PrivateIpAddress") for e in eni.get("PrivateIpAddresses") or ()
                    if e.get("Primary")), eni.get("PrivateIpAddress"))
    return normal_address(primary) if primary else None


# Tags an EKS node carries: a managed node group's, or a self-managed node's
# (kubernetes.io/cluster/<name>: owned or shared).
EKS_NODE_TAG = "eks:cluster-name"
KUBERNETES_CLUSTER_TAG = "kubernetes.io/cluster/"


def _pod_addresses(eni: dict, primary: str, inventory: Inventory) -> set:
    """The private addresses of an EKS node's interface that its pods hold: the Amazon VPC CNI
    gives pods the secondary addresses of the node's interfaces (every address of those it
    adds), the node keeps its first interface's primary one. They belong to pods, of any app,
    not to the node's group: owned by nobody (kind pod), where the group's app was every pod's
    before (a publisher review). A node is known by its tags or its Auto Scaling group's (a
    group's tag need not reach its instances)."""
    attachment = eni.get("Attachment") or {}
    instance_id = attachment.get("InstanceId")
    tags = inventory.instance_tags.get(instance_id, {})
    asg = tags.get(ASG_TAG) or inventory.asg_of_instance.get(instance_id)
    tags = {**inventory.asg_tags.get(asg, {}), **tags}
    if not (EKS_NODE_TAG in tags or any(k.startswith(KUBERNETES_CLUSTER_TAG) for k in tags)):
        return set()
    entries = [e for e in eni.get("PrivateIpAddresses") or () if e.get("PrivateIpAddress")]
    private = {normal_address(e["PrivateIpAddress"]) for e in entries}
    # A device index not known (an event's null) leaves the node nothing: no owner rather than
    # the group's for a pod's address.
    pods = private - {primary} if attachment.get("DeviceIndex", 0) == 0 else private
    # An Elastic IP on a pod's address is the pod's too (the interface's own Association is
    # its primary address's).
    public = [(e["PrivateIpAddress"], (e.get("Association") or {}).get("PublicIp"))
              for e in entries] + [(primary, (eni.get("Association") or {}).get("PublicIp"))]
    return pods | {normal_address(ip) for address, ip in public
                   if ip and address and normal_address(address) in pods}


def interface_owner(eni: dict, inventory: Inventory, naming: Naming) -> Owner:
    eni_id = eni["NetworkInterfaceId"]
    description = eni.get("Description") or ""
    interface_type = eni.get("InterfaceType") or ""
    instance_id = (eni.get("Attachment") or {}).get("InstanceId")
    tags = tag_dict(eni.get("TagSet"))
    asg, shared = ABSENT, None
    if _ECS_ATTACHMENT.match(description):
        # ECS attaches a task's interface to its container instance (EC2): the task may be any
        # service's, not the instance's group's (whose app it was, as an EKS node's pods').
        # ECS tags no interface: the interface's own tags, as any interface's.
        kind, resource_id = ECS_TASK, description
        name = tags.get("Name")
    elif instance_id:
        kind, resource_id = INSTANCE, instance_id
        tags = inventory.instance_tags.get(instance_id, {})
        asg = tags.get(ASG_TAG) or inventory.asg_of_instance.get(instance_id) or ABSENT
        # Tags on the group count for its instances when the instance itself lacks them.
        tags = {**inventory.asg_tags.get(asg, {}), **tags}
        name = asg if asg != ABSENT else tags.get("Name")
    elif (eni_id in inventory.nat_gateways or interface_type == "nat_gateway"
          or description.startswith(NAT_DESCRIPTION)):
        kind = NAT_GATEWAY
        resource_id, name, tags = inventory.nat_gateways.get(
            eni_id, (description[len(NAT_DESCRIPTION):] or eni_id, None, {}))
        name = tags.get("Name") or name or resource_id
    elif (eni_id in inventory.vpc_endpoints or interface_type in ("vpc_endpoint",
                                                                  "gateway_load_balancer_endpoint")
          or description.startswith(ENDPOINT_DESCRIPTION)):
        kind = VPC_ENDPOINT
        resource_id, name, tags = inventory.vpc_endpoints.get(
            eni_id, (description[len(ENDPOINT_DESCRIPTION):] or eni_id, None, {}))
        name = name or resource_id
    elif interface_type == "lambda" or description.startswith(LAMBDA_DESCRIPTION):
        kind = LAMBDA
        name, resource_id, shared, function_tags = _lambda_function(eni, description,
                                                                     inventory, naming)
        tags = {**tags, **function_tags}
    elif description.startswith(ELB_DESCRIPTION):
        kind = ELB
        key = description[len(ELB_DESCRIPTION):]
        if not _ours(eni, inventory):
            # A shared VPC participant's goes by its description alone, as a function's: the
            # listing is this account's, where a classic load balancer of the same name is
            # another one (its tags were taken).
            resource_id, tags = key, {}
            name = key.split("/")[1] if key.count("/") == 2 else key
        else:
            # Not listed: deleted since its interface was read (the read lists load balancers
            # after interfaces) or made since the last poll (an event's interface).
            resource_id, name, tags = inventory.load_balancers.get(key, (key, None, {}))
            if tags is None:   # deleted while read: its tags, which would win, not known
                name, tags = None, {}
    else:
        kind, resource_id = INTERFACE, eni_id
        name = tags.get("Name")
    parsed = naming.rule.parse(name) if name else None
    app, cluster = _tagged_or_parsed(tags, parsed, naming)
    if shared is not None:
        app, cluster = shared
    if is_reserved_app(app):
        # The job's own names for ends without an owner (internet-proxy-v003 parses to app
        # `internet`): the job refuses them, so the parsed name's cluster, if it is none of
        # them; a tag's value, or a cluster tag's, could be another app's name.
        named = parsed.cluster if parsed and not tags.get(naming.app_tag) and shared is None \
            else ABSENT
        app = named if not (named == ABSENT or is_reserved_app(named)) else ABSENT
    return Owner(app=app, cluster=cluster, asg=asg, account=inventory.scope.account,
                 region=inventory.scope.region, zone=eni.get("AvailabilityZone") or ABSENT,
                 interface_id=eni_id, resource_id=resource_id, kind=kind)


def _tagged_or_parsed(tags: dict, parsed, naming: Naming) -> tuple:
    """(app, cluster): the tags', else the parsed name's."""
    return (tags.get(naming.app_tag) or (parsed.app if parsed else ABSENT),
            (naming.cluster_tag and tags.get(naming.cluster_tag))
            or (parsed.cluster if parsed else ABSENT))


def _lambda_function(eni: dict, description: str, inventory: Inventory, naming: Naming) -> tuple:
    """(name to parse, resource id, (app, cluster) or None, the function's tags) of a Lambda
    interface. Lambda shares
    one interface among the functions of one subnet and set of security groups (a Hyperplane
    ENI), and its description names the function that made it: every function's flows went to
    that one, after it was deleted too (a publisher review). So the listed functions of the
    interface's subnet and groups decide: one is its owner; several own it together, as their
    app and cluster (each function's tags', else its name's) where they share one, else none
    ("-"). With none listed, the function its description names, exactly (a name it merely
    starts with is another function's), if it is listed: one deleted since the interface was
    read (or made since the last poll) gives no name, its tags (which would win) not known.
    Another account's interface (a shared VPC's participant's) goes by its description's name
    alone: a function of that name here is another function (its ARN and tags were taken)."""
    eni_id = eni["NetworkInterfaceId"]
    subnet = eni.get("SubnetId")
    groups = frozenset(g.get("GroupId") for g in eni.get("Groups") or ())
    # Another account's interface (a shared VPC's participant) serves that account's functions.
    ours = _ours(eni, inventory)
    sharing = sorted(f for f, networks in inventory.function_networks.items()
                     if ours and any(subnet in subnets and sgs == groups
                                     for subnets, sgs in networks))
    if len(sharing) > 1:
        owners = [_tagged_or_parsed(inventory.function_tags.get(f, {}), naming.rule.parse(f),
                                    naming) for f in sharing]
        apps = {app for app, _ in owners}
        clusters = {cluster for _, cluster in owners}
        return None, eni_id, (apps.pop() if len(apps) == 1 else ABSENT,
                              clusters.pop() if len(clusters) == 1 else ABSENT), {}
    if sharing:
        name = sharing[0]
    else:
        tail = description[len(LAMBDA_DESCRIPTION):] if description.startswith(
            LAMBDA_DESCRIPTION) else ""
        name = _UUID_TAIL.sub("", tail) or None
    if not ours:
        return name, name or eni_id, None, {}
    if name not in inventory.functions:
        return None, name or eni_id, None, {}
    return name, inventory.functions[name], None, inventory.function_tags.get(name, {})


def _ours(eni: dict, inventory: Inventory) -> bool:
    """Whether the interface is the read account's (not a shared VPC participant's)."""
    return eni.get("OwnerId") in (None, inventory.scope.account)
