"""Reading an account's and region's network state with boto3: the I/O half of the publisher.

Every list is read page by page with botocore's paginators; botocore retries each call
(throttling and transient errors, `aws.retry_mode` and `aws.max_attempts`), so a throttled page
is tried again on its own and the listing goes on from it. Any failure fails the whole scope: a
partial inventory would change owners that did not change (but for a Lambda tag read never
allowed yet, AwsReader._read_function_tags, and a load balancer deleted while read,
_load_balancer_tags). Credentials come from the default
chain, and through STS AssumeRole for accounts with a role; they stay in memory.
"""
import logging
import threading
import types

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from flowdredge.connectors.publisher.config import PublisherConfig
from flowdredge.connectors.publisher.derive import own_interfaces, tag_dict
from flowdredge.connectors.publisher.model import Inventory, Scope

_log = logging.getLogger(__name__)

# Renew assumed-role credentials this long before they expire.
CREDENTIAL_MARGIN_MS = 5 * 60 * 1000
# A renewal refused is tried again this long after, while the credentials held last.
RENEWAL_RETRY_MS = 60 * 1000
# Both Elastic Load Balancing APIs' DescribeTags take at most 20 load balancers a call.
ELB_TAGS_PER_CALL = 20
# Both APIs' error code for a load balancer named that does not exist.
LOAD_BALANCER_NOT_FOUND = "LoadBalancerNotFound"
# Items per page: each API's largest (EC2 returns everything in one answer without one).
PAGE_SIZES = {"describe_network_interfaces": 1000, "describe_instances": 1000,
              "describe_nat_gateways": 1000, "describe_vpc_endpoints": 1000,
              "describe_auto_scaling_groups": 100, "describe_load_balancers": 400,
              "list_functions": 50, "get_resources": 100}


class ScopeError(RuntimeError):
    """An account or region that could not be read; the message is safe to print."""


def items(client, operation: str, **params):
    """Every item of a list call (its paginator's result key), read page by page."""
    paginator = client.get_paginator(operation)
    pages = paginator.paginate(PaginationConfig={"PageSize": PAGE_SIZES[operation]}, **params)
    return pages.search(paginator.result_keys[0].expression)


class AwsReader:
    """Reads scopes. `clock` (epoch ms) times credential renewal; `session_factory` builds
    boto3 sessions (tests register botocore event hooks through it); `log` takes warnings."""

    def __init__(self, config: PublisherConfig, clock, session_factory=boto3.Session,
                 log=_log.warning):
        self.config = config
        self.clock = clock
        self.session_factory = session_factory
        self.log = log
        aws = config.aws
        self.boto_config = BotoConfig(
            # total_max_attempts counts the first attempt (botocore's max_attempts does not).
            retries={"mode": aws.retry_mode, "total_max_attempts": aws.max_attempts},
            connect_timeout=aws.connect_timeout_seconds, read_timeout=aws.read_timeout_seconds,
            user_agent_extra="flowdredge-publisher")
        self._base = None
        # One boto3 session for every account: a session keeps each service model it loads,
        # about 27 MB, and a session an account cost 8 GB at 300 accounts. An account read
        # through a role gets clients of that session made with the role's credentials.
        self._assumed = {}   # account id -> (credentials as client arguments, renew at ms)
        # Scopes are read in threads (aws.parallel_reads): a boto3 session is not thread-safe,
        # so clients are made one at a time; clients are, once made, and are kept:
        # made at every read, under the lock, they took 0.09 s a read (0.4 s with a new session),
        # a floor of half a minute a poll at 300 scopes (a review).
        self._lock = threading.Lock()
        self._clients = {}   # (access key id, None: the default chain's; service, region) -> client
        self._accounts = {a.id: a for a in config.accounts}
        self._renewing = {a.id: threading.Lock() for a in config.accounts}
        self._own_account = None   # the default chain's, asked once (GetCallerIdentity)
        self._refused = {}         # account id -> when its renewal was last refused (ms)
        self._function_tags_read = {}   # Scope -> whether its functions' tags were ever read

    def client(self, credentials: dict, service: str, region: str):
        """`service`'s client in `region` with `credentials` ({}: the default chain's)."""
        key = (credentials.get("aws_access_key_id"), service, region)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._session().client(
                    service, region_name=region, config=self.boto_config,
                    endpoint_url=self.config.aws.endpoint_url or None, **credentials)
            return self._clients[key]

    def base_client(self, service: str, region: str = None, endpoint_url: str = None):
        """A client of the default chain's credentials, not kept (the sink's, a snapshot's)."""
        with self._lock:
            return self._session().client(service, region_name=region, config=self.boto_config,
                                          endpoint_url=endpoint_url)

    def _session(self):
        if self._base is None:
            self._base = self.session_factory()
            share_operation_methods(self._base)
        return self._base

    def credentials(self, account_id: str) -> dict:
        """Client arguments for an account's role (renewed before they expire), {} without."""
        account = self._accounts[account_id]
        if not account.role_arn:
            self._check_own_account(account)
            return {}
        # An account's regions are read at once: one of them assumes the role, the others wait
        # for its credentials (each assumed it, and all but the last one's clients were made
        # again: a review).
        with self._renewing[account_id]:
            cached = self._assumed.get(account_id)
            now = self.clock()
            refused = self._refused.get(account_id)
            if cached and (now < cached[1] or (
                    refused is not None and now < refused + RENEWAL_RETRY_MS
                    and now < cached[1] + CREDENTIAL_MARGIN_MS)):
                return cached[0]
            params = {"RoleArn": account.role_arn,
                      "RoleSessionName": self.config.aws.session_name}
            if account.external_id:
                params["ExternalId"] = account.external_id
            sts = self.client({}, "sts", (account.regions or self.config.regions)[0])
            try:
                creds = sts.assume_role(**params)["Credentials"]
            except (ClientError, BotoCoreError) as err:
                # Renewed 5 minutes early: until they expire, the credentials held still read
                # the account (a renewal refused failed its scopes at once: a review).
                if cached and now < cached[1] + CREDENTIAL_MARGIN_MS:
                    left_s = (cached[1] + CREDENTIAL_MARGIN_MS - now) // 1000
                    self.log(f"{account_id}: its role's credentials not renewed "
                             f"({_error_text(err)}); read with those held, {left_s} s left")
                    # Tried again in a minute, not at each region's read: one line and one
                    # call an account, where an STS outage made one for each (a review).
                    self._refused[account_id] = now
                    return cached[0]
                raise
            self._refused.pop(account_id, None)
            credentials = {"aws_access_key_id": creds["AccessKeyId"],
                           "aws_secret_access_key": creds["SecretAccessKey"],
                           "aws_session_token": creds["SessionToken"]}
            renew = int(creds["Expiration"].timestamp() * 1000) - CREDENTIAL_MARGIN_MS
            with self._lock:
                self._assumed[account_id] = (credentials, renew)
                live = {c["aws_access_key_id"] for c, _renew in self._assumed.values()}
                self._clients = {k: c for k, c in self._clients.items()
                                 if k[0] is None or k[0] in live}
            return credentials

    def _check_own_account(self, account) -> None:
        """An account without a role is read with the publisher's own credentials: they must be
        that account's. Another's read that account and labelled its owners with this id, or
        read nothing of it without a word (an operator's review)."""
        with self._renewing[account.id]:
            if self._own_account is None:
                sts = self.client({}, "sts", (account.regions or self.config.regions)[0])
                self._own_account = sts.get_caller_identity()["Account"]
        if self._own_account != account.id:
            raise ScopeError(f"account {account.id} has no role_arn, and the publisher's own "
                             f"credentials are account {self._own_account}'s: give it a role")

    def read(self, scope: Scope) -> Inventory:
        try:
            return self._read(scope)
        except (ClientError, BotoCoreError) as err:
            raise ScopeError(f"{scope}: {_error_text(err)}") from None

    def _read(self, scope: Scope) -> Inventory:
        credentials = self.credentials(scope.account)
        ec2 = self.client(credentials, "ec2", scope.region)
        inventory = Inventory(scope)
        inventory.interfaces = own_interfaces(items(ec2, "describe_network_interfaces"),
                                              scope, self.config.scopes)
        for reservation in items(ec2, "describe_instances"):
            for instance in reservation.get("Instances") or ():
                inventory.instance_tags[instance["InstanceId"]] = tag_dict(instance.get("Tags"))
        for nat in items(ec2, "describe_nat_gateways"):
            tags = tag_dict(nat.get("Tags"))
            for address in nat.get("NatGatewayAddresses") or ():
                if address.get("NetworkInterfaceId"):
                    inventory.nat_gateways[address["NetworkInterfaceId"]] = (
                        nat["NatGatewayId"], None, tags)
        for endpoint in items(ec2, "describe_vpc_endpoints"):
            service = endpoint.get("ServiceName", "").rsplit(".", 1)[-1]
            name = service if service.startswith("vpce-") else f"vpce-{service}"
            for eni_id in endpoint.get("NetworkInterfaceIds") or ():
                inventory.vpc_endpoints[eni_id] = (endpoint["VpcEndpointId"], name,
                                                   tag_dict(endpoint.get("Tags")))
        autoscaling = self.client(credentials, "autoscaling", scope.region)
        for group in items(autoscaling, "describe_auto_scaling_groups"):
            name = group["AutoScalingGroupName"]
            inventory.asg_tags[name] = tag_dict(group.get("Tags"))
            for instance in group.get("Instances") or ():
                inventory.asg_of_instance[instance["InstanceId"]] = name
        self._read_load_balancers(credentials, scope, inventory)
        lambda_ = self.client(credentials, "lambda", scope.region)
        # Every version: a published one (behind an alias) keeps the network it had.
        for function in items(lambda_, "list_functions", FunctionVersion="ALL"):
            name = function["FunctionName"]
            inventory.functions.setdefault(name, function["FunctionArn"].removesuffix(
                f":{function.get('Version')}"))
            vpc = function.get("VpcConfig") or {}
            if vpc.get("SubnetIds"):
                inventory.function_networks.setdefault(name, set()).add(
                    (frozenset(vpc["SubnetIds"]), frozenset(vpc.get("SecurityGroupIds") or ())))
        if inventory.functions:
            inventory.function_tags = self._read_function_tags(credentials, scope,
                                                               inventory.functions)
        return inventory

    def _read_function_tags(self, credentials: dict, scope: Scope, functions: dict) -> dict:
        """Function name -> tags, through the Resource Groups Tagging API: 100 functions a call,
        where Lambda's ListTags takes one. A policy from before this read (no tag:GetResources)
        gets the owners without the functions' tags, said once: failing the scope would stop the
        account's attribution until the policy is changed. Once they have been read, a denial
        fails the scope, as any other call's: owners never go back and forth between a tag and
        a name."""
        tagging = self.client(credentials, "resourcegroupstaggingapi", scope.region)
        name_of = {arn: name for name, arn in functions.items()}
        try:
            found = items(tagging, "get_resources", ResourceTypeFilters=["lambda:function"])
            tags = {name_of[r["ResourceARN"]]: tag_dict(r.get("Tags"))
                    for r in found if r["ResourceARN"] in name_of}
        except ClientError as err:
            if (_error_code(err) != "AccessDeniedException"
                    or self._function_tags_read.get(scope)):
                raise
            if scope not in self._function_tags_read:
                self.log(f"{scope}: tag:GetResources denied: Lambda functions' owners come from "
                         f"their names, not their tags, until it is allowed (docs/publisher.md, "
                         f"IAM permissions)")
            self._function_tags_read[scope] = False
            return {}
        if self._function_tags_read.get(scope) is False:
            self.log(f"{scope}: Lambda functions' tags are read now")
        self._function_tags_read[scope] = True
        return tags

    def _read_load_balancers(self, credentials: dict, scope: Scope,
                             inventory: Inventory) -> None:
        elbv2 = self.client(credentials, "elbv2", scope.region)
        by_arn = {}
        for lb in items(elbv2, "describe_load_balancers"):
            arn = lb["LoadBalancerArn"]
            by_arn[arn] = (arn.split(":loadbalancer/", 1)[-1], lb["LoadBalancerName"])
        tags = _load_balancer_tags(elbv2, "ResourceArns", "ResourceArn", sorted(by_arn))
        for arn, (key, name) in by_arn.items():
            inventory.load_balancers[key] = (arn, name, tags.get(arn, {}))
        elb = self.client(credentials, "elb", scope.region)
        names = sorted(lb["LoadBalancerName"] for lb in items(elb, "describe_load_balancers"))
        tags = _load_balancer_tags(elb, "LoadBalancerNames", "LoadBalancerName", names)
        for name in names:
            inventory.load_balancers[name] = (name, name, tags.get(name, {}))


def share_operation_methods(session) -> None:
    """Every client class `session` makes after the first of a service gets that one's operation
    methods. botocore builds each client's class anew, with a method and a docstring object for
    each operation: 1 MB an EC2 client, which has 862 (run 58, docs/performance.md). The
    methods are the same code over the same operation names, and call the client they are
    called on: its credentials, region, endpoint and event handlers are its own. Done at
    `creating-client-class`, the event botocore emits with the class's attributes before it
    makes the class, for its handlers to change; a method another handler put in its place
    (not the same code over the same names) is left as it is."""
    first = {}   # event name (the service's) -> the first class's attributes

    def share(class_attributes, event_name, **_kwargs):
        shared = first.setdefault(event_name, dict(class_attributes))
        names = class_attributes.get("_PY_TO_OP_NAME")
        if names == shared.get("_PY_TO_OP_NAME"):   # method name -> operation, read only
            class_attributes["_PY_TO_OP_NAME"] = shared["_PY_TO_OP_NAME"]
        for name in names or ():
            if _same_function(class_attributes.get(name), shared.get(name)):
                class_attributes[name] = shared[name]
    session.events.register_last("creating-client-class", share)


def _same_function(a, b) -> bool:
    return (isinstance(a, types.FunctionType) and isinstance(b, types.FunctionType)
            and a.__code__ is b.__code__ and a.__defaults__ == b.__defaults__
            and a.__kwdefaults__ == b.__kwdefaults__
            and [c.cell_contents for c in a.__closure__ or ()]
            == [c.cell_contents for c in b.__closure__ or ()])


def _load_balancer_tags(client, parameter: str, key: str, listed: list) -> dict:
    """Each listed load balancer's tags (by `key`: ARN or classic name), None for one that
    DescribeTags no longer finds. No paginator: DescribeTags takes at most 20 load balancers,
    and answers for all of them. One deleted since the listing fails its whole batch
    (LoadBalancerNotFound), which is asked again one by one, where the poll failed the whole
    scope; the deleted one's interfaces, listed before it, may still be read: its tags not
    known, they have no owner rather than the one its name gives."""
    tags = {}
    for i in range(0, len(listed), ELB_TAGS_PER_CALL):
        batch = listed[i:i + ELB_TAGS_PER_CALL]
        try:
            answers = [client.describe_tags(**{parameter: batch})]
        except ClientError as err:
            if _error_code(err) != LOAD_BALANCER_NOT_FOUND:
                raise
            answers = []
            for one in batch:
                try:
                    answers.append(client.describe_tags(**{parameter: [one]}))
                except ClientError as err:
                    if _error_code(err) != LOAD_BALANCER_NOT_FOUND:
                        raise
                    tags[one] = None
        for answer in answers:
            for description in answer.get("TagDescriptions") or ():
                tags[description[key]] = tag_dict(description.get("Tags"))
    return tags


def _error_text(err) -> str:
    """A botocore error in one line: the call, the code and AWS's message, or the error's own."""
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return (f"{err.operation_name}: {error.get('Code')}: "
                f"{error.get('Message', '')}").rstrip(": ")
    return f"{type(err).__name__}: {err}"


def _error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")
