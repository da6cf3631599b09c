"""Reading an account's and region's network state with boto3: the I/O half of the publisher.

Every list is read page by page; every page call is retried by botocore (retry mode and
attempts from config) and then, when still throttled, by our own bounded exponential backoff,
page by page, so a throttled page does not restart the listing. Any failure fails the whole
scope: a partial inventory would change owners that did not change. Credentials come from the
default chain, and through STS AssumeRole for accounts with a role; they stay in memory.
"""
import time
from dataclasses import dataclass

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from connectors.publisher.config import PublisherConfig
from connectors.publisher.derive import tag_dict
from connectors.publisher.model import Inventory, Scope

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "ProvisionedThroughputExceededException",
    "SlowDown", "RequestThrottled", "EC2ThrottledException", "BandwidthLimitExceeded",
    "LimitExceededException", "PriorRequestNotComplete"})
# Renew assumed-role credentials this long before they expire.
CREDENTIAL_MARGIN_MS = 5 * 60 * 1000
ELB_V2_TAGS_PER_CALL = 20


class ScopeError(RuntimeError):
    """An account or region that could not be read; the message is safe to print."""


def is_throttling(err: Exception) -> bool:
    return isinstance(err, ClientError) and err.response.get("Error", {}).get("Code") in THROTTLING_CODES


class Backoff:
    """Bounded exponential backoff for throttled calls: base, 2*base, ... capped at max."""

    def __init__(self, attempts: int, base_ms: int, max_ms: int, sleep=time.sleep):
        self.attempts, self.base_ms, self.max_ms, self.sleep = attempts, base_ms, max_ms, sleep

    def call(self, fn, **kwargs):
        for attempt in range(self.attempts):
            try:
                return fn(**kwargs)
            except ClientError as err:
                if not is_throttling(err) or attempt == self.attempts - 1:
                    raise
                self.sleep(min(self.max_ms, self.base_ms * 2 ** attempt) / 1000)


@dataclass(frozen=True)
class _Listing:
    operation: str
    result_key: str
    token_in: str
    token_out: str
    page_size: tuple = ()   # (parameter, value)


_ENIS = _Listing("describe_network_interfaces", "NetworkInterfaces", "NextToken", "NextToken",
                 ("MaxResults", 1000))
_INSTANCES = _Listing("describe_instances", "Reservations", "NextToken", "NextToken",
                      ("MaxResults", 1000))
_NAT_GATEWAYS = _Listing("describe_nat_gateways", "NatGateways", "NextToken", "NextToken",
                         ("MaxResults", 1000))
_ENDPOINTS = _Listing("describe_vpc_endpoints", "VpcEndpoints", "NextToken", "NextToken",
                      ("MaxResults", 1000))
_ASGS = _Listing("describe_auto_scaling_groups", "AutoScalingGroups", "NextToken", "NextToken",
                 ("MaxRecords", 100))
_LBS_V2 = _Listing("describe_load_balancers", "LoadBalancers", "Marker", "NextMarker",
                   ("PageSize", 400))
_LBS_CLASSIC = _Listing("describe_load_balancers", "LoadBalancerDescriptions", "Marker",
                        "NextMarker", ("PageSize", 400))
_FUNCTIONS = _Listing("list_functions", "Functions", "Marker", "NextMarker", ("MaxItems", 50))


class AwsReader:
    """Reads scopes. `clock` (epoch ms) times credential renewal; `session_factory` builds
    boto3 sessions (tests register botocore event hooks through it)."""

    def __init__(self, config: PublisherConfig, clock, sleep=time.sleep,
                 session_factory=boto3.Session):
        self.config = config
        self.clock = clock
        self.session_factory = session_factory
        aws = config.aws
        self.backoff = Backoff(aws.throttle_attempts, aws.throttle_base_ms, aws.throttle_max_ms,
                               sleep)
        self.boto_config = BotoConfig(
            retries={"mode": aws.retry_mode, "max_attempts": aws.max_attempts},
            connect_timeout=aws.connect_timeout_seconds, read_timeout=aws.read_timeout_seconds,
            user_agent_extra="flowdredge-publisher")
        self._base = None
        self._assumed = {}   # account id -> (session, renew at ms)
        self._accounts = {a.id: a for a in config.accounts}

    def client(self, session, service: str, region: str):
        return session.client(service, region_name=region, config=self.boto_config,
                              endpoint_url=self.config.aws.endpoint_url or None)

    def base_session(self):
        if self._base is None:
            self._base = self.session_factory()
        return self._base

    def session_for(self, account_id: str):
        account = self._accounts[account_id]
        if not account.role_arn:
            return self.base_session()
        cached = self._assumed.get(account_id)
        if cached and self.clock() < cached[1]:
            return cached[0]
        params = {"RoleArn": account.role_arn, "RoleSessionName": self.config.aws.session_name}
        if account.external_id:
            params["ExternalId"] = account.external_id
        sts = self.client(self.base_session(), "sts", (account.regions or self.config.regions)[0])
        creds = self.backoff.call(sts.assume_role, **params)["Credentials"]
        session = self.session_factory(aws_access_key_id=creds["AccessKeyId"],
                                       aws_secret_access_key=creds["SecretAccessKey"],
                                       aws_session_token=creds["SessionToken"])
        renew = int(creds["Expiration"].timestamp() * 1000) - CREDENTIAL_MARGIN_MS
        self._assumed[account_id] = (session, renew)
        return session

    def pages(self, client, listing: _Listing, **params):
        if listing.page_size:
            params[listing.page_size[0]] = listing.page_size[1]
        while True:
            page = self.backoff.call(getattr(client, listing.operation), **params)
            yield from page.get(listing.result_key) or ()
            token = page.get(listing.token_out)
            if not token:
                return
            params[listing.token_in] = token

    def read(self, scope: Scope) -> Inventory:
        try:
            return self._read(scope)
        except ClientError as err:
            error = err.response.get("Error", {})
            raise ScopeError(f"{scope}: {err.operation_name}: {error.get('Code')}: "
                             f"{error.get('Message', '')}".rstrip(": ")) from None
        except BotoCoreError as err:
            raise ScopeError(f"{scope}: {type(err).__name__}: {err}") from None

    def _read(self, scope: Scope) -> Inventory:
        session = self.session_for(scope.account)
        ec2 = self.client(session, "ec2", scope.region)
        inventory = Inventory(scope)
        inventory.interfaces = list(self.pages(ec2, _ENIS))
        for reservation in self.pages(ec2, _INSTANCES):
            for instance in reservation.get("Instances") or ():
                inventory.instance_tags[instance["InstanceId"]] = tag_dict(instance.get("Tags"))
        for nat in self.pages(ec2, _NAT_GATEWAYS):
            tags = tag_dict(nat.get("Tags"))
            for address in nat.get("NatGatewayAddresses") or ():
                if address.get("NetworkInterfaceId"):
                    inventory.nat_gateways[address["NetworkInterfaceId"]] = (
                        nat["NatGatewayId"], None, tags)
        for endpoint in self.pages(ec2, _ENDPOINTS):
            service = endpoint.get("ServiceName", "").rsplit(".", 1)[-1]
            name = service if service.startswith("vpce-") else f"vpce-{service}"
            for eni_id in endpoint.get("NetworkInterfaceIds") or ():
                inventory.vpc_endpoints[eni_id] = (endpoint["VpcEndpointId"], name,
                                                   tag_dict(endpoint.get("Tags")))
        autoscaling = self.client(session, "autoscaling", scope.region)
        for group in self.pages(autoscaling, _ASGS):
            name = group["AutoScalingGroupName"]
            inventory.asg_tags[name] = tag_dict(group.get("Tags"))
            for instance in group.get("Instances") or ():
                inventory.asg_of_instance[instance["InstanceId"]] = name
        self._read_load_balancers(session, scope, inventory)
        lambda_ = self.client(session, "lambda", scope.region)
        for function in self.pages(lambda_, _FUNCTIONS):
            inventory.functions[function["FunctionName"]] = function["FunctionArn"]
        return inventory

    def _read_load_balancers(self, session, scope: Scope, inventory: Inventory) -> None:
        elbv2 = self.client(session, "elbv2", scope.region)
        by_arn = {}
        for lb in self.pages(elbv2, _LBS_V2):
            arn = lb["LoadBalancerArn"]
            by_arn[arn] = (arn.split(":loadbalancer/", 1)[-1], lb["LoadBalancerName"])
        arns = sorted(by_arn)
        tags = {}
        for i in range(0, len(arns), ELB_V2_TAGS_PER_CALL):
            answer = self.backoff.call(elbv2.describe_tags,
                                       ResourceArns=arns[i:i + ELB_V2_TAGS_PER_CALL])
            for description in answer.get("TagDescriptions") or ():
                tags[description["ResourceArn"]] = tag_dict(description.get("Tags"))
        for arn, (key, name) in by_arn.items():
            inventory.load_balancers[key] = (arn, name, tags.get(arn, {}))
        elb = self.client(session, "elb", scope.region)
        for lb in self.pages(elb, _LBS_CLASSIC):
            name = lb["LoadBalancerName"]
            inventory.load_balancers[name] = (name, name, {})
