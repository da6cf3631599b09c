"""The publisher's pure parts: naming, owner derivation, reconciliation, events, config, sinks."""
import dataclasses
import gc
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types
import weakref
from datetime import datetime, timezone

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from flowdredge.connectors.publisher import cli
from flowdredge.connectors.publisher import config as publisher_config
from flowdredge.connectors.publisher.aws import AwsReader, _load_balancer_tags, items
from flowdredge.connectors.publisher.cloudtrail import EventError, apply_change, parse_line
from flowdredge.connectors.publisher.derive import Naming, derive_claims
from flowdredge.connectors.publisher.diff import (Holding, Observation, State, apply_event,
                                                  assign_event, is_stale, reconcile_poll,
                                                  snapshot_events, state_clocks,
                                                  state_from_snapshot, unassign_event,
                                                  vpc_assign_event)
from flowdredge.connectors.publisher.model import Claim, Inventory, Owner, Scope
from flowdredge.connectors.publisher.naming import NameRule
from flowdredge.connectors.publisher.publisher import (NOT_READ, EventTail, Publisher,
                                                      describe, describe_events,
                                                      old_objects_frozen)
from flowdredge.connectors.publisher.sinks import (FileSink, KinesisSink, SinkError,
                                                  check_snapshot_target, clocks_path,
                                                  encode, write_snapshot)
from flowdredge.job.ownership import MetaEventError, OwnershipIndex, parse_event

pytestmark = pytest.mark.unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNT = "123456789012"
SCOPE = Scope(ACCOUNT, "us-east-1")
OTHER = Scope("210987654321", "us-east-1")
NAMING = Naming(NameRule())
T0 = 1_767_225_600_000   # 2026-01-01T00:00:00Z


def at(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def eni(eni_id, *ips, instance=None, attached_ms=None, description="", interface_type="interface",
        tags=None, ipv6=(), public=None, zone="us-east-1a", vpc=None):
    doc = {"NetworkInterfaceId": eni_id, "AvailabilityZone": zone, "Description": description,
           "InterfaceType": interface_type, **({"VpcId": vpc} if vpc else {}),
           "TagSet": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
           "PrivateIpAddresses": [{"PrivateIpAddress": ip, "Primary": i == 0,
                                   **({"Association": {"PublicIp": public}} if public and i == 0 else {})}
                                  for i, ip in enumerate(ips)],
           "Ipv6Addresses": [{"Ipv6Address": a} for a in ipv6]}
    if instance:
        doc["Attachment"] = {"InstanceId": instance, "AttachmentId": f"attach-{eni_id}",
                             "DeviceIndex": 0, "DeleteOnTermination": True,
                             **({"AttachTime": at(attached_ms)} if attached_ms else {})}
    return doc


def owner(app, cluster, asg, eni_id, resource_id, kind, scope=SCOPE, zone="us-east-1a"):
    return Owner(app, cluster, asg, scope.account, scope.region, zone, eni_id, resource_id, kind)


# ---- naming


@pytest.mark.parametrize("name, app, cluster", [
    ("api-prod-v012", "api", "api-prod"),
    ("api-prod-canary-v003", "api", "api-prod-canary"),
    ("api", "api", "api"),
    ("api-v001", "api", "api"),
    ("api--canary-v001", "api", "api--canary"),
    ("cassandra-users-v1", "cassandra", "cassandra-users-v1"),   # v1 is no push version
])
def test_frigga_rule(name, app, cluster):
    parsed = NameRule().parse(name)
    assert (parsed.app, parsed.cluster) == (app, cluster)


def test_pattern_rule():
    rule = NameRule("pattern", r"(?P<app>[a-z]+)_(?P<cluster>[a-z_]+)")
    assert (rule.parse("billing_prod_east").app, rule.parse("billing_prod_east").cluster) == (
        "billing", "prod_east")
    assert rule.parse("No-Match").app == "No-Match"
    assert NameRule("pattern", r"(?P<app>[^.]+)\..*").parse("api.prod-v002").cluster == "api.prod"


@pytest.mark.parametrize("rule, pattern, message", [
    ("netflix", None, "must be one of"),
    ("pattern", None, "required"),
    ("pattern", "(", "not a valid regular expression"),
    ("pattern", "(?P<name>.*)", "named group"),
])
def test_bad_name_rules(rule, pattern, message):
    with pytest.raises(ValueError, match=message):
        NameRule(rule, pattern)


# ---- derivation


def inventory():
    inv = Inventory(SCOPE)
    inv.interfaces = [
        eni("eni-a", "10.0.0.5", "10.0.0.6", instance="i-a", attached_ms=T0 - 5000,
            ipv6=("2600:1f18:0:0::0a",), public="54.1.2.3"),
        eni("eni-b", "10.0.0.7", instance="i-b"),
        eni("eni-c", "10.0.0.8", instance="i-c"),
        eni("eni-lb", "10.0.1.1", description="ELB app/api-public/50dc6c495c0c9188"),
        eni("eni-clb", "10.0.1.2", description="ELB legacy-edge"),
        eni("eni-fn", "10.0.1.3", description="AWS Lambda VPC ENI-api-resize-"
                                              "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            interface_type="lambda"),
        eni("eni-nat", "10.0.1.4", description="Interface for NAT Gateway nat-0abc",
            interface_type="nat_gateway"),
        eni("eni-vpce", "10.0.1.5", description="VPC Endpoint Interface vpce-0123",
            interface_type="vpc_endpoint"),
        eni("eni-free", "10.0.1.6", tags={"Name": "batch-worker"}),
        eni("eni-bare", "10.0.1.7"),
    ]
    inv.instance_tags = {"i-a": {"aws:autoscaling:groupName": "api-prod-v012", "Name": "x"},
                         "i-b": {"Name": "kafka-broker", "app": "kafka-main"},
                         "i-c": {}}
    inv.asg_of_instance = {"i-c": "recs-prod-v002"}
    inv.asg_tags = {"recs-prod-v002": {"app": "recommendations"}}
    lb_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/api-public/50dc6c495c0c9188"
    inv.load_balancers = {"app/api-public/50dc6c495c0c9188": (lb_arn, "api-public", {"app": "edge"}),
                          "legacy-edge": ("legacy-edge", "legacy-edge", {})}
    inv.functions = {"api-resize": "arn:aws:lambda:us-east-1:123456789012:function:api-resize",
                     "api": "arn:aws:lambda:us-east-1:123456789012:function:api"}
    inv.nat_gateways = {"eni-nat": ("nat-0abc", None, {"Name": "egress-main"})}
    inv.vpc_endpoints = {"eni-vpce": ("vpce-0123", "vpce-s3", {})}
    return inv, lb_arn


def test_derive_owners_of_every_kind():
    inv, lb_arn = inventory()
    claims = {c.ip: c for c in derive_claims(inv, NAMING)}
    api = owner("api", "api-prod", "api-prod-v012", "eni-a", "i-a", "instance")
    assert {ip: claims[ip].owner for ip in ("10.0.0.5", "10.0.0.6", "2600:1f18::a", "54.1.2.3")} \
        == dict.fromkeys(("10.0.0.5", "10.0.0.6", "2600:1f18::a", "54.1.2.3"), api)
    assert claims["10.0.0.5"].attached_ms == T0 - 5000
    assert claims["10.0.0.7"].owner == owner("kafka-main", "kafka-broker", "-", "eni-b", "i-b", "instance")
    # The group's app tag counts for its instances.
    assert claims["10.0.0.8"].owner == owner("recommendations", "recs-prod", "recs-prod-v002",
                                             "eni-c", "i-c", "instance")
    assert claims["10.0.1.1"].owner == owner("edge", "api-public", "-", "eni-lb", lb_arn, "elb")
    assert claims["10.0.1.2"].owner == owner("legacy", "legacy-edge", "-", "eni-clb", "legacy-edge", "elb")
    assert claims["10.0.1.3"].owner == owner(
        "api", "api-resize", "-", "eni-fn", "arn:aws:lambda:us-east-1:123456789012:function:api-resize",
        "lambda")
    assert claims["10.0.1.4"].owner == owner("egress", "egress-main", "-", "eni-nat", "nat-0abc", "nat_gateway")
    assert claims["10.0.1.5"].owner == owner("vpce", "vpce-s3", "-", "eni-vpce", "vpce-0123", "vpc_endpoint")
    assert claims["10.0.1.6"].owner == owner("batch", "batch-worker", "-", "eni-free", "eni-free", "interface")
    assert claims["10.0.1.7"].owner == owner("-", "-", "-", "eni-bare", "eni-bare", "interface")


def _lambda_eni(eni_id, ip, made_by, subnet="subnet-1", groups=("sg-1",)):
    doc = eni(eni_id, ip, description=f"AWS Lambda VPC ENI-{made_by}-"
                                      "3f7c8a1e-1b2c-4d5e-8f90-0a1b2c3d4e5f", interface_type="lambda")
    doc.update(SubnetId=subnet, Groups=[{"GroupId": g, "GroupName": g} for g in groups])
    return doc


class _TaggedLoadBalancers:
    """DescribeTags of either Elastic Load Balancing API as AWS answers it: a batch naming one
    load balancer it no longer has fails whole (moto answers ELBv2's with tags)."""

    def __init__(self, tags):
        self.tags, self.calls = tags, []

    def describe_tags(self, ResourceArns):
        self.calls.append(list(ResourceArns))
        if "throttled" in ResourceArns:
            raise ClientError({"Error": {"Code": "Throttling"}}, "DescribeTags")
        if any(arn not in self.tags for arn in ResourceArns):
            raise ClientError({"Error": {"Code": "LoadBalancerNotFound"}}, "DescribeTags")
        return {"TagDescriptions": [{"ResourceArn": arn, "Tags": [{"Key": "app", "Value": v}]}
                                    for arn, v in ((a, self.tags[a]) for a in ResourceArns)]}


def test_a_load_balancer_deleted_before_its_tags_are_read_has_none_known():
    """Asked again one by one; the batch's others keep their tags, the deleted one None (its
    interfaces then have no owner), 20 a call."""
    arns = [f"arn:lb/{i:02d}" for i in range(23)]
    client = _TaggedLoadBalancers({arn: f"app{arn[-2:]}" for arn in arns if arn != arns[21]})
    tags = _load_balancer_tags(client, "ResourceArns", "ResourceArn", arns)
    assert tags == {**{arn: {"app": f"app{arn[-2:]}"} for arn in arns}, arns[21]: None}
    assert client.calls == [arns[:20], arns[20:], *([arn] for arn in arns[20:])]
    # Any other error fails the scope, as before.
    with pytest.raises(ClientError, match="Throttling"):
        _load_balancer_tags(client, "ResourceArns", "ResourceArn", [arns[0], "throttled"])


def test_a_lambda_interface_is_its_functions_together_not_the_one_that_made_it():
    """Lambda shares an interface among the functions of one subnet and security groups, and
    its description names the first: every function's flows went to that one, and to a
    function whose name the description only starts with (a publisher review)."""
    arn = "arn:aws:lambda:us-east-1:123456789012:function:{}".format
    inv = Inventory(SCOPE, interfaces=[
        _lambda_eni("eni-1", "10.0.2.1", "api-resize"),                    # api-resize, api-thumb
        _lambda_eni("eni-2", "10.0.2.2", "api-resize", subnet="subnet-2"),  # and billing-pay
        _lambda_eni("eni-3", "10.0.2.3", "billing-pay", groups=("sg-2",)),  # billing-pay alone
        _lambda_eni("eni-4", "10.0.2.4", "payments-refund", groups=("sg-9",)),   # none listed
        _lambda_eni("eni-5", "10.0.2.5", "gone", groups=("sg-3",)),  # made by a deleted function
    ])
    networks = {"api-resize": ({"subnet-1", "subnet-2"}, {"sg-1"}),
                "api-thumb": ({"subnet-1"}, {"sg-1"}),
                "billing-pay": ({"subnet-1", "subnet-2"}, {"sg-1", "sg-2"}),
                "billing-batch": ({"subnet-2"}, {"sg-1"}),
                "payments": ({"subnet-1"}, {"sg-3"})}
    inv.function_networks = {f: {(frozenset(s), frozenset(g))} for f, (s, g) in networks.items()}
    # A published version of billing-batch keeps the groups it had: it shares eni-3's.
    inv.function_networks["billing-batch"].add((frozenset({"subnet-1"}), frozenset({"sg-2"})))
    inv.functions = {f: arn(f) for f in networks}
    claims = {c.ip: c.owner for c in derive_claims(inv, NAMING)}
    assert claims["10.0.2.1"] == owner("api", "-", "-", "eni-1", "eni-1", "lambda")
    assert claims["10.0.2.2"] == owner("-", "-", "-", "eni-2", "eni-2", "lambda")
    # billing-pay's groups are sg-1 and sg-2: eni-3 has sg-2 only, as billing-batch's version.
    assert claims["10.0.2.3"] == owner("billing", "billing-batch", "-", "eni-3",
                                       arn("billing-batch"), "lambda")
    # Not payments' (a name the description only starts with); payments-refund is not listed.
    assert claims["10.0.2.4"] == owner("-", "-", "-", "eni-4", "payments-refund", "lambda")
    assert claims["10.0.2.5"] == owner("payments", "payments", "-", "eni-5", arn("payments"),
                                       "lambda")
    # Another account's interface (a shared VPC's participant) is its own functions': by its
    # description's name alone, not this account's function of that name (its ARN and tags
    # were taken, a review).
    inv.interfaces[0]["OwnerId"] = "210987654321"
    inv.function_tags = {"api-resize": {"app": "billing"}}
    assert derive_claims(inv, NAMING)[0].owner == owner("api", "api-resize", "-", "eni-1",
                                                        "api-resize", "lambda")


def test_an_eks_nodes_pod_addresses_are_nobodys_and_reserved_apps_are_not_given():
    """The VPC CNI gives pods the secondary addresses of an EKS node's interfaces: they were
    the node group's app, whatever app each pod was; a name parsing to an app the job gives
    ends without an owner was refused there, the whole app unattributed (a publisher review)."""
    node_tags = {"eks:cluster-name": "prod", "aws:autoscaling:groupName": "nodes-v001"}
    inv = Inventory(SCOPE, interfaces=[
        eni("eni-n0", "10.0.3.1", "10.0.3.2", "10.0.3.3", instance="i-n", public="54.0.0.1"),
        eni("eni-n1", "10.0.3.10", "10.0.3.11", instance="i-n", description="aws-K8S-i-n"),
        eni("eni-s", "10.0.3.20", "10.0.3.21", instance="i-s"),   # no EKS node: all its own
        eni("eni-m", "10.0.3.30", instance="i-m", tags={"kubernetes.io/cluster/prod": "owned"}),
        eni("eni-p", "10.0.3.40", instance="i-p"),
        eni("eni-u", "10.0.3.41", instance="i-u")])
    inv.interfaces[1]["Attachment"]["DeviceIndex"] = 1
    inv.instance_tags = {"i-n": node_tags, "i-s": {"Name": "db-main"},
                         "i-m": {"kubernetes.io/cluster/prod": "owned", "Name": "nodes"},
                         "i-p": {"aws:autoscaling:groupName": "internet-proxy-v003"},
                         "i-u": {"Name": "unattributed"}}
    claims = {c.ip: c.owner for c in derive_claims(inv, NAMING)}
    node = owner("nodes", "nodes", "nodes-v001", "eni-n0", "i-n", "instance")
    assert {ip: claims[ip] for ip in ("10.0.3.1", "54.0.0.1")} == dict.fromkeys(
        ("10.0.3.1", "54.0.0.1"), node)
    pod = owner("-", "-", "-", "eni-n0", "i-n", "pod")
    assert {ip: claims[ip] for ip in ("10.0.3.2", "10.0.3.3")} == dict.fromkeys(
        ("10.0.3.2", "10.0.3.3"), pod)
    pod1 = owner("-", "-", "-", "eni-n1", "i-n", "pod")
    assert {ip: claims[ip] for ip in ("10.0.3.10", "10.0.3.11")} == dict.fromkeys(
        ("10.0.3.10", "10.0.3.11"), pod1)
    assert claims["10.0.3.21"].app == "db" and claims["10.0.3.30"].app == "nodes"
    assert (claims["10.0.3.40"].app, claims["10.0.3.40"].cluster) == (
        "internet-proxy", "internet-proxy")
    assert (claims["10.0.3.41"].app, claims["10.0.3.41"].cluster) == ("-", "unattributed")
    # The parsed name's cluster, not a cluster tag's value (another app's name, maybe); a tag's
    # reserved app is nobody's.
    inv.instance_tags["i-p"] = {"aws:autoscaling:groupName": "internet-proxy-v003", "cl": "prod"}
    inv.instance_tags["i-u"] = {"Name": "db-main", "app": "internet"}
    claims = {c.ip: c.owner for c in derive_claims(
        inv, Naming(NameRule(), app_tag="app", cluster_tag="cl"))}
    assert (claims["10.0.3.40"].app, claims["10.0.3.40"].cluster) == ("internet-proxy", "prod")
    assert (claims["10.0.3.41"].app, claims["10.0.3.41"].cluster) == ("-", "db-main")
    # An Elastic IP on a pod's address is the pod's; on the node's own, the node's; the
    # interface's own Association is its primary address's (a pod's on a second interface).
    inv.interfaces[0]["PrivateIpAddresses"][1]["Association"] = {"PublicIp": "54.0.0.2"}
    inv.interfaces[1]["Association"] = {"PublicIp": "54.0.0.3"}
    claims = {c.ip: c.owner for c in derive_claims(inv, NAMING)}
    assert (claims["54.0.0.2"], claims["54.0.0.1"], claims["54.0.0.3"]) == (pod, node, pod1)
    # A self-managed node group whose Kubernetes tag is on its Auto Scaling group alone (not
    # propagated at launch): its nodes are EKS nodes all the same.
    inv.instance_tags["i-s"] = {"Name": "db-main"}
    inv.asg_of_instance["i-s"] = "workers-v002"
    inv.asg_tags["workers-v002"] = {"kubernetes.io/cluster/prod": "owned"}
    claims = {c.ip: c.owner for c in derive_claims(inv, NAMING)}
    assert claims["10.0.3.20"].app == "workers" and claims["10.0.3.21"] == owner(
        "-", "-", "-", "eni-s", "i-s", "pod")


def test_an_ecs_tasks_interface_is_nobodys_not_its_container_instances():
    """ECS attaches a task's interface (awsvpc network mode) to its container instance, at
    device index 1 or more: its address was the instance's group's app, whatever service the
    task was of (as an EKS node's pods' were). ECS describes it by its attachment's ARN and tags
    it with nothing: kind ecs_task, of the interface's own tags only. A Fargate task's, attached
    to no instance of the account, is one too."""
    task = "arn:aws:ecs:us-east-1:123456789012:attachment/0b7c2f4e-1111-2222-3333-444455556666"
    other = "arn:aws:ecs:us-east-1:123456789012:attachment/9d8c7b6a-5555-6666-7777-888899990000"
    inv = Inventory(SCOPE, interfaces=[
        eni("eni-host", "10.0.5.1", instance="i-host"),
        eni("eni-task", "10.0.5.20", instance="i-host", description=task,
            ipv6=("2600:1f18::20",)),
        eni("eni-tagged", "10.0.5.21", instance="i-host", description=other,
            tags={"Name": "orders-api"}),
        eni("eni-fargate", "10.0.5.22", description=task, public="54.0.5.22"),
        eni("eni-new", "10.0.5.23", description=other)],
        instance_tags={"i-host": {"aws:autoscaling:groupName": "ecshosts-prod-v001"}})
    for doc in inv.interfaces[1:3]:
        doc.update(RequesterManaged=True)
        doc["Attachment"]["DeviceIndex"] = 1
    claims = {c.ip: c.owner for c in derive_claims(inv, NAMING)}
    assert claims["10.0.5.1"] == owner("ecshosts", "ecshosts-prod", "ecshosts-prod-v001",
                                       "eni-host", "i-host", "instance")
    assert {ip: claims[ip] for ip in ("10.0.5.20", "2600:1f18::20")} == dict.fromkeys(
        ("10.0.5.20", "2600:1f18::20"), owner("-", "-", "-", "eni-task", task, "ecs_task"))
    assert claims["10.0.5.21"] == owner("orders", "orders-api", "-", "eni-tagged", other,
                                        "ecs_task")
    assert {claims[ip] for ip in ("10.0.5.22", "54.0.5.22")} == {
        owner("-", "-", "-", "eni-fargate", task, "ecs_task")}
    # Attached by an event (ECS's AttachNetworkInterface) between polls: the task's all the same.
    [attach] = parse_line(bridge("AttachNetworkInterface", "2026-01-01T00:01:00Z",
                                 request={"networkInterfaceId": "eni-new", "instanceId": "i-host",
                                          "deviceIndex": 2},
                                 response={"attachmentId": "attach-new"}))
    claims = {c.ip: c.owner for c in derive_claims(apply_change(inv, attach), NAMING)}
    assert claims["10.0.5.23"] == owner("-", "-", "-", "eni-new", other, "ecs_task")
    # GovCloud's and China's partitions name ECS so too; an ARN of another service's
    # attachment, or one the description only holds, is no task's.
    for description, kind in (
            ("arn:aws-us-gov:ecs:us-gov-west-1:123456789012:attachment/0b7c2f4e", "ecs_task"),
            ("arn:aws-cn:ecs:cn-north-1:123456789012:attachment/0b7c2f4e", "ecs_task"),
            ("arn:aws:elasticloadbalancing:us-east-1:123456789012:attachment/x", "instance"),
            ("see arn:aws:ecs:us-east-1:123456789012:attachment/0b7c2f4e", "instance")):
        one = Inventory(SCOPE, interfaces=[eni("eni-t", "10.0.5.30", instance="i-host",
                                               description=description)])
        assert derive_claims(one, NAMING)[0].owner.kind == kind, description


def test_a_shared_vpcs_participant_interfaces_are_their_accounts_not_the_vpc_owners():
    """The VPC owner's read lists the participants' interfaces in its shared subnets: each
    address was claimed by two accounts' reads and so nobody's (a publisher review)."""
    from flowdredge.connectors.publisher.derive import own_interfaces
    participant, elsewhere = "210987654321", "555555555555"
    listed = [{**eni("eni-own", "10.0.4.1"), "OwnerId": ACCOUNT},
              {**eni("eni-part", "10.0.4.2"), "OwnerId": participant},
              {**eni("eni-other", "10.0.4.3"), "OwnerId": elsewhere},   # not configured
              eni("eni-unsaid", "10.0.4.4")]
    scopes = [SCOPE, Scope(participant, "us-east-1"), Scope(ACCOUNT, "eu-west-1")]
    assert [e["NetworkInterfaceId"] for e in own_interfaces(listed, SCOPE, scopes)] == [
        "eni-own", "eni-other", "eni-unsaid"]
    assert [e["NetworkInterfaceId"] for e in own_interfaces(
        listed, Scope(participant, "us-east-1"), scopes)] == ["eni-part", "eni-other",
                                                              "eni-unsaid"]
    # The participant's read of that region is not configured: the VPC owner's gives them.
    assert len(own_interfaces(listed, Scope(ACCOUNT, "eu-west-1"), scopes)) == 4
    assert len(own_interfaces(listed, SCOPE, [SCOPE])) == 4


def test_an_instances_own_tag_wins_over_its_groups():
    # docs/publisher.md: the tag on the resource, or on its group when the resource has none.
    inv, _ = inventory()
    inv.instance_tags["i-c"] = {"app": "own"}
    claims = {c.ip: c for c in derive_claims(inv, NAMING)}
    assert claims["10.0.0.8"].owner.app == "own"


def test_a_tag_of_white_space_only_is_as_an_empty_one():
    """The job reads an owner value of white space only as none (`-`): an app tag " " was the
    app, named so to the job; now the name gives the app, as with an empty tag (which hides
    the group's, as before)."""
    from flowdredge.connectors.publisher.derive import tag_dict
    inv, _ = inventory()
    inv.instance_tags["i-b"] = tag_dict([{"Key": "Name", "Value": "kafka-broker"},
                                         {"Key": "app", "Value": " \t"}])
    inv.instance_tags["i-c"] = tag_dict([{"Key": "app", "Value": "\u00a0"}])
    claims = {c.ip: c.owner for c in derive_claims(inv, NAMING)}
    assert (claims["10.0.0.7"].app, claims["10.0.0.8"].app) == ("kafka", "recs")
    assert tag_dict([{"Key": "app", "Value": " api "}, {"Key": "x", "Value": None}]) == {
        "app": " api ", "x": None}


def test_public_addresses_can_be_left_out_and_cluster_tag_wins():
    inv, _ = inventory()
    inv.instance_tags["i-a"]["team-cluster"] = "api-blue"
    naming = Naming(NameRule(), app_tag="app", cluster_tag="team-cluster", public_ipv4=False)
    claims = {c.ip: c for c in derive_claims(inv, naming)}
    assert "54.1.2.3" not in claims
    assert claims["10.0.0.5"].owner.cluster == "api-blue"


def test_unknown_infrastructure_falls_back_to_the_description():
    inv = Inventory(SCOPE, interfaces=[
        eni("eni-nat", "10.0.1.4", description="Interface for NAT Gateway nat-0def")])
    claims = {c.ip: c.owner for c in derive_claims(inv, NAMING)}
    assert (claims["10.0.1.4"].app, claims["10.0.1.4"].resource_id) == ("nat", "nat-0def")


def test_a_load_balancer_or_function_the_read_does_not_list_has_no_owner():
    """The read lists load balancers and functions after interfaces: one deleted between has an
    interface read but is not listed, and its tags, which would win over its name, are not
    known. It was named from its interface's description (web, where its tag said payments),
    though a deletion between the listing and the tags call gave no owner already."""
    alb, nlb = "app/web-alb/50dc6c495c0c9188", "net/edge-nlb/0123abcd"
    tail = "-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    inv = Inventory(SCOPE, interfaces=[
        eni("eni-alb", "10.0.2.7", description=f"ELB {alb}"),
        eni("eni-nlb", "10.0.2.8", description=f"ELB {nlb}"),
        eni("eni-clb", "10.0.2.9", description="ELB web-old"),
        eni("eni-fn", "10.0.2.10", description=f"AWS Lambda VPC ENI-thumbs-prod{tail}",
            interface_type="lambda"),
        eni("eni-fn2", "10.0.2.11", description=f"AWS Lambda VPC ENI-api-resize{tail}",
            interface_type="lambda"),
        # A shared VPC participant's (whose read is not configured): by its description.
        {**eni("eni-part", "10.0.2.12", description="ELB net/shop-nlb/4567cdef"),
         "OwnerId": "210987654321"}])
    inv.load_balancers = {nlb: ("arn:nlb", "edge-nlb", {})}
    inv.functions = {"api-resize": "arn:fn:api-resize"}
    claims = {c.ip: c.owner for c in derive_claims(inv, NAMING)}
    assert claims["10.0.2.7"] == owner("-", "-", "-", "eni-alb", alb, "elb")
    assert claims["10.0.2.9"] == owner("-", "-", "-", "eni-clb", "web-old", "elb")
    assert claims["10.0.2.10"] == owner("-", "-", "-", "eni-fn", "thumbs-prod", "lambda")
    # Listed, untagged: their names, as before.
    assert claims["10.0.2.8"] == owner("edge", "edge-nlb", "-", "eni-nlb", "arn:nlb", "elb")
    assert claims["10.0.2.11"] == owner("api", "api-resize", "-", "eni-fn2",
                                        "arn:fn:api-resize", "lambda")
    assert claims["10.0.2.12"] == owner("shop", "shop-nlb", "-", "eni-part",
                                        "net/shop-nlb/4567cdef", "elb")


def test_a_participants_classic_load_balancer_is_not_this_accounts_of_the_same_name():
    """A classic load balancer's interface names it by name alone (`ELB web`), and the listing
    is the read account's: a shared VPC participant's `web` took this account's `web`, its tags
    (app payments) and all, though another account's interface goes by its description."""
    inv = Inventory(SCOPE, interfaces=[
        eni("eni-own", "10.0.2.20", description="ELB web"),
        {**eni("eni-part", "10.0.2.21", description="ELB web"), "OwnerId": "210987654321"},
        {**eni("eni-part2", "10.0.2.22", description="ELB app/web-alb/50dc6c495c0c9188"),
         "OwnerId": "210987654321"}])
    inv.load_balancers = {"web": ("web", "web", {"app": "payments"}),
                          "app/web-alb/50dc6c495c0c9188": ("arn:alb", "web-alb",
                                                           {"app": "payments"})}
    claims = {c.ip: c.owner for c in derive_claims(inv, NAMING)}
    assert claims["10.0.2.20"] == owner("payments", "web", "-", "eni-own", "web", "elb")
    assert claims["10.0.2.21"] == owner("web", "web", "-", "eni-part", "web", "elb")
    assert claims["10.0.2.22"] == owner("web", "web-alb", "-", "eni-part2",
                                        "app/web-alb/50dc6c495c0c9188", "elb")


# ---- reconciliation


def claim(ip, app, eni_id, resource_id, attached_ms=None, scope=SCOPE, vpc=None):
    return Claim(ip, owner(app, f"{app}-prod", f"{app}-prod-v001", eni_id, resource_id,
                           "instance", scope), attached_ms, vpc)


def types_ts_ips(events):
    return [(e["type"], e["ts"], e.get("ip"), e.get("app")) for e in events]


def test_first_poll_assigns_at_attach_time_and_heartbeats():
    obs = Observation(SCOPE, [claim("10.0.0.5", "api", "eni-a", "i-a", T0 - 60_000),
                              claim("10.0.0.6", "api", "eni-b", "i-b")], T0, T0 + 200)
    result = reconcile_poll(State(), [obs], [SCOPE])
    # Without an attachment time: at the end of the read, which may have seen it late. AWS's
    # attachment times are whole seconds: the end of that second.
    assert types_ts_ips(result.events) == [("ASSIGN", T0 - 60_000 + 999, "10.0.0.5", "api"),
                                           ("ASSIGN", T0 + 200, "10.0.0.6", "api"),
                                           ("HEARTBEAT", T0, None, None)]
    assert result.state.polled_ms == {SCOPE: T0} and result.state.heartbeat_ms == T0


def test_second_poll_release_move_and_attach_times():
    first = reconcile_poll(State(), [Observation(SCOPE, [
        claim("10.0.0.5", "api", "eni-a", "i-a"), claim("10.0.0.6", "api", "eni-b", "i-b"),
        claim("10.0.0.7", "api", "eni-c", "i-c"), claim("10.0.0.8", "api", "eni-d", "i-d")],
        T0, T0 + 100)], [SCOPE]).state
    t1 = T0 + 60_000
    second = reconcile_poll(first, [Observation(SCOPE, [
        claim("10.0.0.5", "api", "eni-a", "i-a"),                      # unchanged
        claim("10.0.0.6", "auth", "eni-x", "i-x", T0 + 30_000),        # moved, attached in between
        claim("10.0.0.7", "auth", "eni-y", "i-y", T0 - 1),             # attached before the last look
        claim("10.0.0.9", "auth", "eni-z", "i-z", t1 + 999_999),       # attach time in the future
    ], t1, t1 + 100)], [SCOPE])
    # When api let go of a moved or released address is not known (a short-lived owner may
    # have held it meanwhile): nobody's from just after api was last seen holding it (it took
    # them at the end of the first read), until the new owner's attachment or this look's end.
    assert types_ts_ips(second.events) == [
        ("UNASSIGN", T0 + 101, "10.0.0.6", None),
        ("UNASSIGN", T0 + 101, "10.0.0.7", None),
        ("UNASSIGN", T0 + 101, "10.0.0.8", None),
        ("ASSIGN", T0 + 30_999, "10.0.0.6", "auth"),
        ("ASSIGN", t1 + 100, "10.0.0.7", "auth"),
        ("ASSIGN", t1 + 100, "10.0.0.9", "auth"),
        ("HEARTBEAT", t1, None, None)]
    assert second.state.holdings["10.0.0.6"].since_ms == T0 + 30_999
    assert "10.0.0.8" not in second.state.holdings


class BarrierReader:
    """Each read waits until `parties` reads are in flight at once (or fails after a second)."""

    def __init__(self, parties):
        self.barrier = threading.Barrier(parties, timeout=1)

    def read(self, scope):
        self.barrier.wait()
        return Inventory(scope)


@pytest.mark.parametrize("parallel_reads", [1, 3, 8])
def test_scopes_are_read_at_once_up_to_parallel_reads_each_with_its_own_times(parallel_reads):
    """Hundreds of scopes read one after another, a dozen API calls each, made a poll last
    minutes. A read failing waits for no other; the observations keep the configured order."""
    accounts = [f"{n:012d}" for n in range(1, 4)]
    config = publisher_config.from_dict({"accounts": accounts, "regions": ["us-east-1", "eu-west-1"],
                                         "output": {"kind": "file", "path": "x"},
                                         "aws": {"parallel_reads": parallel_reads}})
    ticks = iter(range(T0, T0 + 1000))
    publisher = Publisher(config, BarrierReader(min(parallel_reads, 6)), None,
                          lambda: next(ticks), log=lambda _message: None)
    observations, inventories, failed = publisher.observe()
    assert not failed and [o.scope for o in observations] == config.scopes == list(inventories)
    assert all(o.started_ms < o.finished_ms for o in observations)
    if parallel_reads < 6:   # never one read more at once: every read waits in vain
        slow = Publisher(config, BarrierReader(parallel_reads + 1), None, lambda: next(ticks),
                         log=lambda _message: None)
        assert len(slow.observe()[2]) == 6


def test_failed_scope_keeps_its_owners_and_holds_the_heartbeat():
    scopes = [SCOPE, OTHER]
    first = reconcile_poll(State(), [Observation(SCOPE, [claim("10.0.0.5", "api", "eni-a", "i-a")], T0, T0),
                                     Observation(OTHER, [claim("10.9.0.5", "pay", "eni-p", "i-p", scope=OTHER)],
                                                 T0 + 10, T0 + 20)], scopes)
    assert first.events[-1] == {"type": "HEARTBEAT", "ts": T0}
    t1 = T0 + 60_000
    # OTHER fails: its addresses are kept (no UNASSIGN on missing data)...
    second = reconcile_poll(first.state, [Observation(SCOPE, [claim("10.0.0.5", "api", "eni-a", "i-a")],
                                                      t1, t1)], scopes)
    # ... and the heartbeat stops at the failed scope's last complete read.
    assert second.events == [{"type": "HEARTBEAT", "ts": T0 + 10}]
    assert second.state.holdings["10.9.0.5"].owner.app == "pay"
    # Unless SCOPE claims one: OTHER let go of it, or both hold it (overlapping VPCs). Nobody's
    # since OTHER last saw it with pay (taken at the end of OTHER's first read), not pay's for
    # the outage nor api's: it is contested until OTHER is read again.
    still = [claim("10.0.0.5", "api", "eni-a", "i-a"), claim("10.9.0.5", "api", "eni-q", "i-q")]
    third = reconcile_poll(second.state, [Observation(SCOPE, still, t1 + 1, t1 + 1)], scopes)
    assert types_ts_ips(third.events) == [("UNASSIGN", T0 + 21, "10.9.0.5", None)]
    assert third.state.heartbeat_ms == T0 + 10 and third.state.contested == {"10.9.0.5": {SCOPE, OTHER}}
    assert reconcile_poll(third.state, [Observation(SCOPE, still, t1 + 2, t1 + 2)], scopes).events == []
    # OTHER is back and has released it: the claim of SCOPE wins, once OTHER's read has shown
    # it gone (the scopes may overlap: both may have held it until then); the heartbeat moves on.
    t2 = t1 + 60_000
    fourth = reconcile_poll(third.state, [Observation(SCOPE, still, t2, t2),
                                          Observation(OTHER, [], t2 + 5, t2 + 6)], scopes)
    assert types_ts_ips(fourth.events) == [("ASSIGN", t2 + 7, "10.9.0.5", "api"),
                                           ("HEARTBEAT", t2, None, None)]
    assert fourth.state.contested == {}


def test_an_address_of_overlapping_vpcs_has_no_owner_while_both_claim_it():
    # Flow logs name the address only: either owner would be wrong for the other VPC's flows.
    scopes = [SCOPE, OTHER]
    api, pay = claim("10.0.0.5", "api", "eni-b", "i-b"), claim("10.0.0.5", "pay", "eni-a", "i-a",
                                                             scope=OTHER)
    first = reconcile_poll(State(), [Observation(SCOPE, [api], T0, T0)], scopes[:1])
    t1, t2 = T0 + 60_000, T0 + 120_000
    both = reconcile_poll(first.state, [Observation(SCOPE, [api], t1, t1),
                                        Observation(OTHER, [pay], t1, t1)], scopes)
    assert both.conflicts == ["10.0.0.5"] and "10.0.0.5" not in both.state.holdings
    # Released from just after the last look that saw api alone hold it.
    assert types_ts_ips(both.events)[0] == ("UNASSIGN", T0 + 1, "10.0.0.5", None)
    again = reconcile_poll(both.state, [Observation(SCOPE, [api], t2, t2),
                                        Observation(OTHER, [pay], t2, t2)], scopes)
    assert [e["type"] for e in again.events] == ["HEARTBEAT"] and again.conflicts == ["10.0.0.5"]
    # While one VPC's read fails, the other's claim alone does not give it an owner: the failed
    # one may hold it still.
    t3 = t2 + 60_000
    failed = reconcile_poll(again.state, [Observation(SCOPE, [api], t3, t3)], scopes)
    assert failed.events == [] and "10.0.0.5" not in failed.state.holdings
    # An event of the VPC read does not either.
    assert apply_event(failed.state, SCOPE, [api], t3 + 5_000).events == []
    # Once the other VPC is read and has given it up, the first's owner has it, from the end
    # of that read.
    t4 = t3 + 60_000
    alone = reconcile_poll(failed.state, [Observation(SCOPE, [api], t4, t4),
                                          Observation(OTHER, [], t4, t4 + 3)], scopes)
    assert types_ts_ips(alone.events)[0] == ("ASSIGN", t4 + 4, "10.0.0.5", "api")
    assert alone.state.contested == {}


def test_changes_are_strictly_after_the_previous_change_of_the_address():
    state = State(holdings={"10.0.0.5": Holding(claim("10.0.0.5", "api", "eni-a", "i-a").owner, T0 + 500)},
                  polled_ms={SCOPE: T0})
    result = reconcile_poll(state, [Observation(SCOPE, [], T0 + 100, T0 + 200)], [SCOPE])
    assert types_ts_ips(result.events)[0] == ("UNASSIGN", T0 + 501, "10.0.0.5", None)


def test_an_attachment_time_is_read_as_aws_writes_it():
    # A time in ms is taken as is; a whole second's end is not taken for a time after the
    # previous read began, when the attachment itself was before it (a tag changed later).
    exact = reconcile_poll(State(), [Observation(SCOPE, [
        claim("10.0.0.5", "api", "eni-a", "i-a", T0 - 60_000 + 250)], T0, T0)], [SCOPE])
    assert types_ts_ips(exact.events)[0] == ("ASSIGN", T0 - 60_000 + 250, "10.0.0.5", "api")
    first = reconcile_poll(State(), [Observation(SCOPE, [
        claim("10.0.0.5", "alpha", "eni-a", "i-a", T0)], T0 + 100, T0 + 400)], [SCOPE])
    retagged = reconcile_poll(first.state, [Observation(SCOPE, [
        claim("10.0.0.5", "beta", "eni-a", "i-a", T0)], T0 + 60_000, T0 + 60_300)], [SCOPE])
    assert types_ts_ips(retagged.events)[:2] == [("UNASSIGN", T0 + 401, "10.0.0.5", None),
                                                 ("ASSIGN", T0 + 60_300, "10.0.0.5", "beta")]


def test_events_replayed_into_the_job_index_give_the_owners():
    """The emitted changelog parses under the job's contract and answers as intended."""
    first = reconcile_poll(State(), [Observation(SCOPE, [claim("10.0.0.5", "api", "eni-a", "i-a")], T0, T0)], [SCOPE])
    second = reconcile_poll(first.state, [Observation(SCOPE, [claim("10.0.0.5", "auth", "eni-b", "i-b",
                                                                    T0 + 30_000)], T0 + 60_000, T0 + 60_100)], [SCOPE])
    index = OwnershipIndex()
    for event in first.events + second.events:
        parsed = parse_event(json.dumps(event))
        if parsed.type != "HEARTBEAT":
            index.apply(parsed)
    # api is not known to have held it after the first look: nobody's until auth's attachment.
    assert index.owner_at("10.0.0.5", T0)[0] == "api"
    assert index.owner_at("10.0.0.5", T0 + 30_998) is None   # its second's end
    assert index.owner_at("10.0.0.5", T0 + 30_999)[0] == "auth"


def test_snapshot_round_trip():
    result = reconcile_poll(State(), [Observation(SCOPE, [claim("10.0.0.6", "api", "eni-a", "i-a", T0 - 9),
                                                          claim("10.0.0.5", "auth", "eni-b", "i-b")], T0, T0)], [SCOPE])
    events = snapshot_events(result.state)
    assert [(e["ip"], e["ts"], e["type"]) for e in events] == [("10.0.0.5", T0, "ASSIGN"),
                                                               ("10.0.0.6", T0 - 9, "ASSIGN")]
    assert state_from_snapshot(json.loads(json.dumps(events))).holdings == result.state.holdings
    with pytest.raises(ValueError, match="only ASSIGN"):
        state_from_snapshot([{"type": "HEARTBEAT", "ts": 1}])


def test_an_elastic_ip_moved_is_nobodys_until_seen_not_its_new_interfaces_since_attachment():
    # Between two looks, beta's instance starts (attached at T0 + 10 s) and the Elastic IP
    # moves to it later, when AWS does not say: only beta's primary private address is beta's
    # since the attachment; the EIP is alpha's until the last look, then nobody's until seen.
    def look(*interfaces):
        inv = Inventory(SCOPE, interfaces=list(interfaces),
                        instance_tags={"i-a": {"Name": "alpha-prod-v001"},
                                       "i-b": {"Name": "beta-prod-v001"}})
        return derive_claims(inv, NAMING)

    alpha = eni("eni-a", "10.0.0.8", instance="i-a", attached_ms=T0 - 3_600_000,
                public="54.1.2.3")
    first = reconcile_poll(State(), [Observation(SCOPE, look(alpha), T0, T0)], [SCOPE])
    t1 = T0 + 60_000
    moved = [eni("eni-a", "10.0.0.8", instance="i-a", attached_ms=T0 - 3_600_000),
             eni("eni-b", "10.0.0.9", instance="i-b", attached_ms=T0 + 10_000, public="54.1.2.3")]
    second = reconcile_poll(first.state, [Observation(SCOPE, look(*moved), t1, t1)], [SCOPE])
    assert [(kind, ts, ip) for kind, ts, ip, _ in types_ts_ips(second.events)] == [
        ("UNASSIGN", T0 + 1, "54.1.2.3"), ("ASSIGN", T0 + 10_999, "10.0.0.9"),
        ("ASSIGN", t1, "54.1.2.3"), ("HEARTBEAT", t1, None)]


def test_addresses_of_a_write_that_failed_are_written_again_even_if_nothing_changed_since():
    # Poll 2 moves the EIP to beta; its write fails after beta's ASSIGN reached the changelog.
    # Before poll 3 the EIP is back on alpha: the state (alpha) shows no change, but the
    # changelog's last word is beta's, so alpha's ASSIGN is written again, later than it; the
    # address is nobody's in between (had beta's not landed, alpha's throughout, beta's flows
    # included).
    eip, t1, t2 = "54.1.2.3", T0 + 60_000, T0 + 120_000
    on_alpha = [claim(eip, "alpha", "eni-a", "i-a")]
    first = reconcile_poll(State(), [Observation(SCOPE, on_alpha, T0, T0)], [SCOPE])
    second = reconcile_poll(first.state, [Observation(SCOPE, [claim(eip, "beta", "eni-b", "i-b")],
                                                      t1, t1)], [SCOPE])
    failed = first.state.write_failed(second.events)
    third = reconcile_poll(failed, [Observation(SCOPE, on_alpha, t2, t2)], [SCOPE])
    assert types_ts_ips(third.events) == [("UNASSIGN", t1 + 1, eip, None),
                                          ("ASSIGN", t2, eip, "alpha"),
                                          ("HEARTBEAT", t2, None, None)]
    assert third.state.uncertain == {}
    # A snapshot dates alpha after that gap, not when it first took the address.
    assert [e["ts"] for e in snapshot_events(third.state)] == [t2]
    # Said once: the poll after writes nothing more for it.
    assert reconcile_poll(third.state, [Observation(SCOPE, on_alpha, t2 + 1, t2 + 1)],
                          [SCOPE]).events == [{"type": "HEARTBEAT", "ts": t2 + 1}]
    # A failed release of an address nobody claims any more is said again too.
    gone = reconcile_poll(first.state, [Observation(SCOPE, [], t1, t1)], [SCOPE])
    again = reconcile_poll(first.state.write_failed(gone.events).copy(), [], [SCOPE])
    assert again.events == []   # its scope not read: still uncertain
    after = reconcile_poll(State(uncertain={eip: t1}), [Observation(SCOPE, [], t2, t2)], [SCOPE])
    assert types_ts_ips(after.events)[0] == ("UNASSIGN", t1 + 1, eip, None)


def test_a_publisher_whose_write_fails_writes_the_changes_again_at_its_next_poll():
    from flowdredge.connectors.publisher.publisher import Publisher
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5")])

    class FailingOnce(list):
        failed = False

        def write(self, events):
            if not self.failed and any(e["type"] == "ASSIGN" for e in events):
                self.failed = True
                self.extend(events[:1])   # part written, then the error
                raise SinkError("throttled")
            self.extend(events)

    sink, now = FailingOnce(), [T0]
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), sink, lambda: now[0])
    with pytest.raises(SinkError):
        publisher.poll()
    now[0] += 60_000
    publisher.poll()
    assert [(e["type"], e.get("ip")) for e in sink] == [
        ("ASSIGN", "10.0.0.5"), ("ASSIGN", "10.0.0.5"), ("HEARTBEAT", None)]


def test_a_resumed_publisher_stamps_changes_after_its_snapshot_was_taken():
    # The first run saw 10.0.0.50 on alpha's interface at T0 (its HEARTBEAT said so); resumed
    # later, it finds the address on beta's, attached five hours before T0: the change cannot
    # be stamped before what the first run already promised.
    first = reconcile_poll(State(), [Observation(SCOPE, [claim("10.0.0.50", "alpha", "eni-a",
                                                               "i-a")], T0, T0)], [SCOPE])
    snapshot = json.loads(json.dumps(snapshot_events(first.state)))
    later = T0 + 3 * 3_600_000
    moved = [Observation(SCOPE, [claim("10.0.0.50", "beta", "eni-b", "i-b", T0 - 5 * 3_600_000)],
                         later, later)]
    resumed = reconcile_poll(state_from_snapshot(snapshot, taken_ms=T0), moved, [SCOPE])
    assert types_ts_ips(resumed.events)[:2] == [("UNASSIGN", T0 + 1, "10.0.0.50", None),
                                                ("ASSIGN", later, "10.0.0.50", "beta")]
    # An attachment after the snapshot is the change's time, as in a running publisher.
    attached = [Observation(SCOPE, [claim("10.0.0.50", "beta", "eni-b", "i-b", T0 + 60_000)],
                            later, later)]
    assert types_ts_ips(reconcile_poll(state_from_snapshot(snapshot, taken_ms=T0), attached,
                                       [SCOPE]).events)[:2] == [
        ("UNASSIGN", T0 + 1, "10.0.0.50", None), ("ASSIGN", T0 + 60_999, "10.0.0.50", "beta")]


# ---- near-real-time events


def bridge(name, at_iso, request=None, response=None, account=ACCOUNT, region="us-east-1", error=None):
    detail = {"eventName": name, "eventTime": at_iso, "awsRegion": region,
              "recipientAccountId": account, "requestParameters": request,
              "responseElements": response}
    if error:
        detail["errorCode"] = error
    return json.dumps({"version": "0", "detail-type": "AWS API Call via CloudTrail",
                       "source": "aws.ec2", "account": account, "region": region,
                       "time": at_iso, "detail": detail})


RUN = {"instancesSet": {"items": [{
    "instanceId": "i-new", "placement": {"availabilityZone": "us-east-1b"},
    "tagSet": {"items": [{"key": "aws:autoscaling:groupName", "value": "auth-prod-v004"}]},
    "networkInterfaceSet": {"items": [{
        "networkInterfaceId": "eni-new", "privateIpAddress": "10.0.0.50",
        "privateIpAddressesSet": {"item": [{"privateIpAddress": "10.0.0.50", "primary": True}]},
        "attachment": {"attachmentId": "eni-attach-new", "deviceIndex": 0,
                       "deleteOnTermination": True}}]}}]}}


def test_parse_event_shapes():
    run, = parse_line(bridge("RunInstances", "2026-01-01T00:01:00Z", response=RUN))
    assert run.scope == SCOPE and run.at_ms == T0 + 60_000
    assert run.instances_added == {"i-new": {"aws:autoscaling:groupName": "auth-prod-v004"}}
    assert run.interfaces_added[0]["AvailabilityZone"] == "us-east-1b"
    assert parse_line(bridge("RunInstances", "2026-01-01T00:01:00Z", error="Client.Unauthorized")) == []
    assert parse_line(bridge("DescribeInstances", "2026-01-01T00:01:00Z")) == []
    gone, = parse_line(json.dumps({"detail-type": "EC2 Instance State-change Notification",
                                   "account": ACCOUNT, "region": "us-east-1",
                                   "time": "2026-01-01T00:02:00Z",
                                   "detail": {"instance-id": "i-a", "state": "shutting-down"}}))
    assert gone.instances_gone == ("i-a",)
    trail = json.dumps({"Records": [
        {"eventName": "DeleteNetworkInterface", "eventTime": "2026-01-01T00:03:00Z",
         "awsRegion": "us-east-1", "recipientAccountId": ACCOUNT,
         "requestParameters": {"networkInterfaceId": "eni-x"}},
        {"eventName": "DetachNetworkInterface", "eventTime": "2026-01-01T00:03:01Z",
         "awsRegion": "us-east-1", "userIdentity": {"accountId": ACCOUNT},
         "requestParameters": {"attachmentId": "eni-attach-x"}}]})
    deleted, detached = parse_line(trail)
    assert deleted.interfaces_removed == ("eni-x",) and detached.detach == "eni-attach-x"
    for bad, message in [("[]", "not a JSON object"), ("{", "not JSON"), ("{}", "neither"),
                         (bridge("DeleteNetworkInterface", "2026-01-01T00:00:00Z", request={}), "missing"),
                         (bridge("DeleteNetworkInterface", "yesterday", request={"networkInterfaceId": "e"}),
                          "bad event time")]:
        with pytest.raises(EventError, match=message):
            parse_line(bad)


def test_an_event_line_of_more_values_than_real_events_hold_is_refused_before_it_is_decoded(
        monkeypatch):
    """One line of `{"Records":[[],[],...]}` of 62 MB, under events.max_line_bytes, raised the
    publisher's peak memory by 1.35 GB: decoded, each `[]` of 3 characters takes 64 bytes (a
    review). Refused before it is decoded, it is said in one line and counted unreadable; the
    lines after it are applied."""
    from flowdredge.connectors.publisher import cloudtrail
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                    instance_tags={"i-a": {"aws:autoscaling:groupName": "api-prod-v001"}})
    said = []
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), ListSink(), lambda: T0,
                          log=said.append)
    publisher.poll()
    said.clear()
    hostile = '{"Records":[' + "[]," * 400_000 + "[]]}"
    decoded = []
    loads = cloudtrail.json.loads
    monkeypatch.setattr(cloudtrail.json, "loads", lambda text: decoded.append(len(text)) or loads(text))
    run = bridge("RunInstances", "2026-01-01T00:01:00Z", response=RUN)
    result = publisher.apply_events([hostile, run])
    assert (result.bad, result.applied) == (1, 1) and decoded == [len(run)]
    assert said == ["unreadable event line (800,003 JSON values ('{', '[' or ',') in "
                    "1,200,016 characters, more than real events hold (one in 6)): "
                    + hostile[:200]]


def test_event_lines_as_dense_as_real_ones_are_read():
    """The guard against lines of tiny values leaves a wide margin: the densest a real line
    could be (every instance and interface with the 50 tags AWS allows, each one letter with no
    value) holds a value in 11.7 characters; one in 6 is read, one more refused. A line of up
    to 1 MiB is not counted: its tag values may hold commas and brackets by the hundred (a
    review: RunInstances of 100 instances, 5 tags of 255 commas each, was refused)."""
    letters = {"items": [{"key": chr(97 + i % 26) * (1 + i // 26), "value": ""} for i in range(50)]}
    item = json.loads(json.dumps(RUN))["instancesSet"]["items"][0]
    item["tagSet"] = item["networkInterfaceSet"]["items"][0]["tagSet"] = letters
    dense = json.loads(bridge("RunInstances", "2026-01-01T00:01:00Z", response=RUN))
    dense["detail"]["responseElements"]["instancesSet"]["items"] = [item] * 500
    line = json.dumps(dense, separators=(",", ":"))
    assert len(parse_line(line)[0].instances_added) == 1
    commas = {"items": [{"key": f"k{i}", "value": "," * 255} for i in range(5)]}
    item["tagSet"] = item["networkInterfaceSet"]["items"][0]["tagSet"] = commas
    dense["detail"]["responseElements"]["instancesSet"]["items"] = [item] * 100
    assert len(parse_line(json.dumps(dense, separators=(",", ":")))[0].instances_added) == 1
    length = (1 << 20) + 6
    most = length // 6
    for values, error in ((most, "not JSON"), (most + 1, "JSON values")):
        with pytest.raises(EventError, match=error):
            parse_line(("{" + "," * (values - 1)).ljust(length))
    with pytest.raises(EventError, match="not JSON"):
        parse_line("{" + "," * ((1 << 20) - 1))   # every character a value, but not counted


class ListSink:
    def __init__(self):
        self.events = []

    def write(self, events):
        self.events.extend(events)


class InventoryReader:
    def __init__(self, inventories):
        self.inventories = inventories

    def read(self, scope):
        return self.inventories[scope]


def config_for(**output):
    return publisher_config.from_dict({"accounts": [ACCOUNT], "regions": ["us-east-1"],
                                       "output": output or {"kind": "file", "path": "x"}})


def test_events_between_polls_assign_and_release():
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a"),
                                       eni("eni-b", "10.0.0.6", instance="i-b")],
                    instance_tags={"i-a": {"aws:autoscaling:groupName": "api-prod-v001"},
                                   "i-b": {"aws:autoscaling:groupName": "api-prod-v001"}})
    # The poll's begin, read and end; the events' read.
    ticks = iter([T0, T0, T0 + 10, T0 + 10, T0 + 70_000])
    sink = ListSink()
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), sink, lambda: next(ticks))
    publisher.poll()
    sink.events.clear()
    lines = [
        bridge("TerminateInstances", "2026-01-01T00:01:00Z",
               request={"instancesSet": {"items": [{"instanceId": "i-a"}]}}),
        bridge("RunInstances", "2026-01-01T00:01:05Z", response=RUN),
        bridge("CreateNetworkInterface", "2026-01-01T00:01:06Z", response={"networkInterface": {
            "networkInterfaceId": "eni-extra", "availabilityZone": "us-east-1b",
            "privateIpAddress": "10.0.0.5", "description": "",
            "privateIpAddressesSet": {"item": [{"privateIpAddress": "10.0.0.5", "primary": True}]}}}),
        bridge("AttachNetworkInterface", "2026-01-01T00:01:07Z",
               request={"networkInterfaceId": "eni-extra", "instanceId": "i-new", "deviceIndex": 1},
               response={"attachmentId": "eni-attach-extra"}),
        bridge("AttachNetworkInterface", "2026-01-01T00:01:08Z",
               request={"networkInterfaceId": "eni-unknown", "instanceId": "i-new", "deviceIndex": 2}),
        bridge("DeleteNetworkInterface", "2025-12-31T23:59:00Z", request={"networkInterfaceId": "eni-b"}),
        bridge("DeleteNetworkInterface", "2026-01-01T00:01:09Z", request={"networkInterfaceId": "eni-b"},
               account="999999999999"),
        "garbage",
    ]
    result = publisher.apply_events(lines)
    assert (result.applied, result.deferred, result.stale, result.ignored, result.bad) == (4, 1, 1, 1, 1)
    assert describe_events(result) == (
        "events: 4 applied (3 assigned, 2 unassigned), 1 stale (the poll saw them), 1 left to the "
        "next poll, 1 of accounts or regions not configured, 1 unreadable")
    # Event times are whole seconds: a release at the second's start, a new owner from its end.
    assert [(e["type"], e["ts"], e["ip"], e.get("app"), e.get("resource_id"), e.get("kind"))
            for e in sink.events] == [
        ("UNASSIGN", T0 + 60_000, "10.0.0.5", None, None, None),
        ("ASSIGN", T0 + 65_999, "10.0.0.50", "auth", "i-new", "instance"),
        ("ASSIGN", T0 + 66_999, "10.0.0.5", "-", "eni-extra", "interface"),
        ("UNASSIGN", T0 + 67_000, "10.0.0.5", None, None, None),
        ("ASSIGN", T0 + 67_999, "10.0.0.5", "auth", "i-new", "instance")]
    assert is_stale(publisher.state, SCOPE, T0 + 66_000)
    # The next poll sees the same estate: nothing to say but the heartbeat.
    publisher.reader = InventoryReader({SCOPE: publisher.inventories[SCOPE]})
    ticks2 = iter([T0 + 120_000] * 4)
    publisher.clock = lambda: next(ticks2)
    sink.events.clear()
    publisher.poll()
    assert sink.events == [{"type": "HEARTBEAT", "ts": T0 + 120_000}]


def test_an_event_dated_ahead_of_the_publishers_clock_is_said_and_changes_nothing():
    """An event of 9999 (a hand-edited or broken line) was applied: its UNASSIGN was dated
    there, which the job refuses (ts_out_of_range), so the job kept the owner the publisher
    had released, and every later event of its account and region was stale for good (a
    review). A minute ahead is no clock's error; the next poll has the last word."""
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                    instance_tags={"i-a": {"aws:autoscaling:groupName": "api-prod-v001"}})
    sink, now, said = ListSink(), [T0], []
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), sink, lambda: now[0],
                          log=said.append)
    publisher.poll()
    sink.events.clear()
    now[0] = T0 + 120_000
    terminate = {"instancesSet": {"items": [{"instanceId": "i-a"}]}}
    result = publisher.apply_events([
        bridge("TerminateInstances", "9999-01-01T00:00:00Z", request=terminate),
        bridge("TerminateInstances", "2026-01-01T00:03:01Z", request=terminate),
        bridge("RunInstances", "2026-01-01T00:01:05Z", response=RUN)])
    assert (result.bad, result.applied) == (2, 1)
    assert said[-1] == (
        "2 event line(s) dated more than 60 s after this host's clock, 2026-01-01T00:02:00Z, "
        "counted unreadable and passed over, the latest dated 9999-01-01T00:00:00Z: if every "
        "line is, this host's clock may be behind (is it kept by NTP?)")
    assert [(e["type"], e["ip"]) for e in sink.events] == [("ASSIGN", "10.0.0.50")]
    assert publisher.state.holdings["10.0.0.5"].owner.app == "api"


def test_events_dated_ahead_of_a_clock_behind_are_said_once_a_check(tmp_path):
    """A host whose clock is behind AWS's by more than a minute has every event dated ahead of
    it: each was said in a line of its own, a flood that hid the cause (a review). They are
    said once for the check, however many reads it takes, with the latest date and the host's
    clock; the counts stay, each read's, and other unreadable lines are said as before."""
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                    instance_tags={"i-a": {"aws:autoscaling:groupName": "api-prod-v001"}})
    now, said, read = [T0], [], []
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), ListSink(),
                          lambda: now[0], log=said.append)
    events = tmp_path / "events.jsonl"
    events.write_text("")
    lines = [bridge("TerminateInstances", f"2026-01-01T00:0{n}:00Z",
                    request={"instancesSet": {"items": [{"instanceId": "i-a"}]}})
             for n in (2, 5, 3, 4)] + ["garbage"]
    tail = EventTail(str(events), read_bytes=2 * len(lines[0]) + 2)

    def sleep(seconds):
        if now[0] == T0:
            events.write_text("".join(line + "\n" for line in lines))
        now[0] += int(seconds * 1000)
    publisher.run(lambda: now[0] >= T0 + 10_000, sleep=sleep, events=tail,
                  on_events=read.append)
    assert [describe_events(r) for r in read] == [
        f"events: 0 applied (0 assigned, 0 unassigned), {n} unreadable" for n in (2, 2, 1)]
    assert said == [
        "unreadable event line (not JSON): garbage",
        "4 event line(s) dated more than 60 s after this host's clock, 2026-01-01T00:00:05Z, "
        "counted unreadable and passed over, the latest dated 2026-01-01T00:05:00Z: if every "
        "line is, this host's clock may be behind (is it kept by NTP?)"]


def test_an_interface_attached_by_an_event_has_the_device_index_it_was_attached_at():
    """An EKS node's first interface keeps its primary address, those the VPC CNI attaches
    after do not: an event's attachment had no device index, taken for the first (its pod's
    address the node group's until the next poll, a review)."""
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a"),
                                       eni("eni-c", "10.0.0.7", "10.0.0.8")],
                    instance_tags={"i-a": {"eks:cluster-name": "prod", "Name": "nodes"}})
    [attach] = parse_line(bridge("AttachNetworkInterface", "2026-01-01T00:01:00Z",
                                 request={"networkInterfaceId": "eni-c", "instanceId": "i-a",
                                          "deviceIndex": 1},
                                 response={"attachmentId": "attach-c"}))
    after = apply_change(inv, attach)
    assert after.interfaces[1]["Attachment"]["DeviceIndex"] == 1
    claims = {c.ip: c.owner.kind for c in derive_claims(after, NAMING)}
    assert claims == {"10.0.0.5": "instance", "10.0.0.7": "pod", "10.0.0.8": "pod"}


def test_detach_and_state_change_keep_interfaces_that_survive():
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a"),
                                       eni("eni-s", "10.0.0.9", instance="i-a")],
                    instance_tags={"i-a": {"Name": "api-prod"}})
    inv.interfaces[1]["Attachment"].update(DeviceIndex=1, DeleteOnTermination=False)
    [gone] = parse_line(json.dumps({"detail-type": "EC2 Instance State-change Notification",
                                    "account": ACCOUNT, "region": "us-east-1",
                                    "time": "2026-01-01T00:02:00Z",
                                    "detail": {"instance-id": "i-a", "state": "terminated"}}))
    after = apply_change(inv, gone)
    assert [e["NetworkInterfaceId"] for e in after.interfaces] == ["eni-s"]
    assert "Attachment" not in after.interfaces[0] and "Attachment" in inv.interfaces[1]
    [detach] = parse_line(bridge("DetachNetworkInterface", "2026-01-01T00:01:00Z",
                                 request={"attachmentId": "attach-eni-a"}))
    assert "Attachment" not in apply_change(inv, detach).interfaces[0]
    assert apply_change(after, detach) is None
    applied = apply_event(State(), SCOPE, derive_claims(after, NAMING), T0)
    assert applied.state.event_ms == {SCOPE: T0}


def test_event_tail_reads_complete_lines_once(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(str(path))
    assert tail.read() == []
    path.write_text('{"a":1}\n{"b":')
    assert tail.read() == ['{"a":1}']
    with open(path, "a") as fh:
        fh.write('2}\n')
    assert tail.read() == ['{"b":2}']
    path.write_text('{"c":3}\n')   # rotated: smaller than what was read
    assert tail.read() == ['{"c":3}']


def test_event_tail_cuts_lines_at_line_feeds_only(tmp_path):
    """A tag value holding U+2028 (AWS allows Unicode separators in tags; JSON leaves them
    unescaped) made the event's line two unreadable lines: str.splitlines() cut it there."""
    path = tmp_path / "events.jsonl"
    lines = ['{"Name":"api\u2028prod"}', '{"Name":"api\u2029\u0085 prod"}', '{"crlf":1}']
    path.write_bytes(("\n".join(lines[:2]) + "\n" + lines[2] + "\r\n").encode("utf-8"))
    read = EventTail(str(path)).read()
    assert [json.loads(line) for line in read] == [json.loads(line) for line in lines]


def test_event_tail_from_the_end_passes_over_what_is_there_and_reads_a_bounded_amount(tmp_path):
    """The events file was read whole at start (187 MB took 560 MB: an operator's review), to
    find lines that could not apply (before the first poll)."""
    path = tmp_path / "events.jsonl"
    path.write_text('{"old":1}\n{"old":2}\n{"half":')
    tail = EventTail(str(path), from_end=True, read_bytes=12)
    assert tail.read() == []
    with open(path, "a") as fh:
        fh.write('3}\n{"a":1}\n{"b":2}\n{"a long line":1}\n')
    assert tail.read() == ['{"half":3}']
    assert tail.read() == ['{"a":1}']
    assert tail.read() == ['{"b":2}']
    assert tail.read() == ['{"a long line":1}']   # longer than a read: whole all the same
    assert tail.read() == []
    assert EventTail(str(tmp_path / "none.jsonl"), from_end=True).read() == []


@pytest.fixture
def bytes_read(monkeypatch):
    """The size of each read of the events file."""
    import flowdredge.connectors.publisher.publisher as publisher_module
    sizes = []

    class Counted(io.FileIO):
        def read(self, size=-1):
            data = super().read(size)
            sizes.append(len(data))
            return data
    monkeypatch.setattr(publisher_module, "open", lambda path, mode: Counted(path, "r"),
                        raising=False)
    return sizes


def test_an_event_line_not_ended_yet_is_read_once_until_it_ends(tmp_path, bytes_read):
    """A line without its line feed (a writer that died mid-line, a file without line feeds)
    was read whole, from its start to the file's end, at every check: all of it in memory,
    again and again."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a":1}\n{"half":' + b"x" * 5000)
    tail = EventTail(str(path), read_bytes=1000)
    assert tail.read() == ['{"a":1}'] and tail.read() == [] and tail.read() == []
    assert sum(bytes_read) < 6000 + 1000 and max(bytes_read) <= 1000
    with open(path, "ab") as fh:
        fh.write(b'"}\n{"b":2}\n')
    assert tail.read() == ['{"half":' + "x" * 5000 + '"}']   # whole once it ends
    assert tail.read() == ['{"b":2}']


def test_an_event_line_over_the_cap_is_said_counted_and_passed_over(tmp_path, bytes_read):
    """A line over events.max_line_bytes is one line said and counted unreadable, never held;
    what follows it is read."""
    from flowdredge.connectors.publisher.publisher import SkippedLine
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a":1}\n{"never":"' + b"y" * 20_000)   # a writer going on without end
    tail = EventTail(str(path), read_bytes=1000, max_line_bytes=8000)
    assert tail.read() == ['{"a":1}']
    long = tail.read()
    assert [type(line) for line in long] == [SkippedLine] and max(bytes_read) <= 1000
    assert long[0].said.startswith(f"event line at byte 8 of {path} skipped: 20,010 bytes and "
                                   f"no line feed yet, more than events.max_line_bytes (8,000): "
                                   f'{{"never":"yyy')
    with open(path, "ab") as fh:
        fh.write(b"y" * 20_000)
    assert tail.read() == [] and tail.offset == path.stat().st_size   # passed over, not held
    with open(path, "ab") as fh:
        fh.write(b'"}\n{"c":3}\n')
    assert tail.read() == ['{"c":3}'] and max(bytes_read) <= 1000
    # A line over the cap within a read, ended: said once, those around it read.
    other = json.dumps({"detail-type": "Something else", "detail": {}})
    with open(path, "ab") as fh:
        fh.write(f'{other}\n{{"long":"{"z" * 9000}"}}\n{other}\n'.encode())
    tail.read_bytes = 20_000
    read = tail.read()
    assert read[0] == read[2] == other and "9,011 bytes, more than" in read[1].said
    # Said in one line and counted as unreadable, the other lines applied.
    said = []
    publisher = Publisher(config_for(), InventoryReader({}), ListSink(), lambda: T0,
                          log=said.append)
    assert describe_events(publisher.apply_events(read)) == \
        "events: 0 applied (0 assigned, 0 unassigned), 1 unreadable"
    assert said == [read[1].said]


@pytest.mark.parametrize("read_bytes", [100, 1000])
def test_an_event_line_of_exactly_max_line_bytes_is_read(tmp_path, read_bytes):
    """events.max_line_bytes is the most a line may hold, its line feed not counted: in one
    read or over several."""
    from flowdredge.connectors.publisher.publisher import SkippedLine
    path = tmp_path / "events.jsonl"
    at_cap, over = '{"a":"' + "x" * 492 + '"}', '{"b":"' + "y" * 493 + '"}'
    path.write_text(f"{at_cap}\n{over}\n")
    tail = EventTail(str(path), read_bytes=read_bytes, max_line_bytes=500)
    read = tail.read() + tail.read()
    assert read[0] == at_cap and len(read) == 2 and type(read[1]) is SkippedLine
    assert "501 bytes, more than events.max_line_bytes (500)" in read[1].said


def test_blank_event_lines_are_passed_over_unsaid(tmp_path):
    """Blank lines (a feed's keep-alives, a hand edit) are no events: not counted unreadable."""
    path = tmp_path / "events.jsonl"
    other = json.dumps({"detail-type": "Something else", "detail": {}})
    path.write_text(f"\n{other}\n  \n\r\n{other}\n")
    read = EventTail(str(path)).read()
    assert read == [other, other]
    said = []
    publisher = Publisher(config_for(), InventoryReader({}), ListSink(), lambda: T0,
                          log=said.append)
    assert (publisher.apply_events(read).bad, said) == (0, [])


@pytest.mark.parametrize("read_bytes", [4, 1000])
def test_event_tail_reads_no_line_past_the_size_it_is_given(tmp_path, read_bytes):
    """A check reads as far as the file's size when it started (Publisher._apply_appended):
    what is appended meanwhile waits for the next check."""
    path = tmp_path / "events.jsonl"
    path.write_text('{"a":1}\n{"b":2}\n')
    tail = EventTail(str(path), read_bytes=read_bytes)
    assert tail.read(up_to=len('{"a":1}\n{"b":')) == ['{"a":1}']
    assert tail.read(up_to=len('{"a":1}\n{"b":')) == []
    assert tail.read() == ['{"b":2}']


def test_an_event_line_of_bytes_that_are_not_utf8_is_said_counted_and_passed_over(tmp_path):
    """Read as U+FFFD, a tag value's bytes named the new instance's owner 'auth-prod-v\ufffd04'
    until the next poll: the line is now passed over, said with where the bytes are and
    counted unreadable; the lines around it are read."""
    from flowdredge.connectors.publisher.publisher import SkippedLine
    run = bridge("RunInstances", "2026-01-01T00:01:00Z", response=RUN).encode()
    bad = run.replace(b"auth-prod-v004", b"auth-prod-v\xe904")
    other = json.dumps({"detail-type": "Something else", "detail": {}}).encode()
    path = tmp_path / "events.jsonl"
    path.write_bytes(other + b"\n" + bad + b"\n" + run + b"\n")
    read = EventTail(str(path)).read()
    assert read[0] == other.decode() and read[2] == run.decode() and type(read[1]) is SkippedLine
    at = bad.index(b"\xe9")
    assert read[1].said == (f"event line at byte {len(other) + 1} of {path} skipped: bytes that are not UTF-8 "
                            f"at its byte {at:,}: "
                            + bad[:200].decode("utf-8", errors="replace"))
    said = []
    publisher = Publisher(config_for(), InventoryReader({}), ListSink(), lambda: T0,
                          log=said.append)
    result = publisher.apply_events(read)
    assert (result.bad, said) == (1, [read[1].said])
    # The good line is read (before any poll, left to the next one).
    assert describe_events(result) == \
        "events: 0 applied (0 assigned, 0 unassigned), 1 left to the next poll, 1 unreadable"


def test_run_loop_applies_a_burst_of_events_a_read_at_a_time(tmp_path):
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a"),
                                       eni("eni-b", "10.0.0.6", instance="i-b")],
                    instance_tags={"i-a": {"Name": "api-prod"}, "i-b": {"Name": "api-prod"}})
    now = [T0]
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), ListSink(),
                          lambda: now[0])
    events = tmp_path / "events.jsonl"
    events.write_text("")
    lines = [bridge("TerminateInstances", f"2026-01-01T00:00:2{n}Z", request={
        "instancesSet": {"items": [{"instanceId": instance}]}}) for n, instance in
        enumerate(["i-a", "i-b"])]
    tail = EventTail(str(events), read_bytes=len(lines[0]) + 1)

    def sleep(seconds):
        if now[0] == T0:
            events.write_text("".join(line + "\n" for line in lines))
        now[0] += int(seconds * 1000)
    read = []
    publisher.run(lambda: now[0] >= T0 + 30_000, sleep=sleep, events=tail,
                  on_events=read.append)
    assert [describe_events(r) for r in read] == [
        "events: 1 applied (0 assigned, 1 unassigned)"] * 2


@pytest.mark.parametrize("keep", [True, False])
def test_a_polls_inventories_are_kept_for_events_only(keep):
    """Kept for events, they are as large as the state and more; without events they were
    kept all the same (about 0.35 GB more at its peak at 420,000 addresses)."""
    read = []

    class FreshReader:
        def read(self, scope):
            read.append(Inventory(scope, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                                  instance_tags={"i-a": {"Name": "api-prod"}}))
            return read[-1]
    publisher = Publisher(config_for(), FreshReader(), ListSink(), lambda: T0,
                          keep_inventories=keep)
    publisher.poll()
    inventory = weakref.ref(read.pop())
    gc.collect()
    assert (inventory() is not None) == keep
    assert (publisher.inventories == {SCOPE: inventory()}) if keep else not publisher.inventories


def test_an_events_file_that_never_stops_growing_holds_back_no_poll(tmp_path):
    """Each check read until no line was left: a feed that appended during every read held
    back the polls, and their HEARTBEATs, for ever (a review)."""
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                    instance_tags={"i-a": {"Name": "api-prod"}})
    now = [T0]
    polls, reads = [], []
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), ListSink(),
                          lambda: now[0])
    events = tmp_path / "events.jsonl"
    other = json.dumps({"detail-type": "Something else", "detail": {}}) + "\n"
    events.write_text(other)

    def fed(result):   # a line more while each read is applied, and a second gone by
        reads.append(result)
        assert len(reads) < 1000, "the polls are held back"
        with open(events, "a") as fh:
            fh.write(other)
        now[0] += 1000
    publisher.run(lambda: len(polls) == 3, sleep=lambda s: fed(None), on_poll=polls.append,
                  events=EventTail(str(events), read_bytes=len(other)), on_events=fed)
    assert [p.started_ms for p in polls] == [T0, T0 + 60_000, T0 + 120_000]


def test_an_events_file_cut_shorter_during_a_read_ends_the_read(tmp_path, monkeypatch):
    """Its size taken, then the file cut (logrotate's copytruncate): the read looped for ever
    on the bytes that were no longer there (a review)."""
    import flowdredge.connectors.publisher.publisher as publisher_module
    path = tmp_path / "events.jsonl"
    path.write_text('{"a":1}\n{"b":')
    tail = EventTail(str(path), read_bytes=4)
    real_fstat = os.fstat
    monkeypatch.setattr(publisher_module.os, "fstat", lambda fd: types.SimpleNamespace(
        st_size=real_fstat(fd).st_size + 100))
    read = []
    reading = threading.Thread(target=lambda: read.extend([tail.read(), tail.read()]),
                               daemon=True)
    reading.start()
    reading.join(10)
    assert not reading.is_alive(), "the read loops on bytes no longer there"
    assert read == [['{"a":1}'], []]


def test_a_changelog_file_is_checked_after_a_batch_another_publisher_is_writing(tmp_path):
    """A publisher starting while another, on a shared volume, appended a batch cut that
    batch back to the line end it saw (a review): writes and the check take turns."""
    import fcntl
    path = tmp_path / "changes.jsonl"
    said = []
    with open(path, "ab") as writing:
        fcntl.flock(writing, fcntl.LOCK_EX)
        writing.write(b'{"a":1}\n{"b":')
        writing.flush()
        check = threading.Thread(target=lambda: said.append(FileSink(str(path)).check()))
        check.start()
        check.join(0.3)
        assert check.is_alive()   # waits for the batch
        writing.write(b'2}\n')
    check.join(10)
    assert said == [""] and path.read_bytes() == b'{"a":1}\n{"b":2}\n'


def test_a_changelog_file_is_checked_and_a_line_cut_short_cut_off(tmp_path):
    """A publisher killed while it wrote left half a line, which the next batch's first event
    joined into a line the job cannot read."""
    path = tmp_path / "changes.jsonl"
    sink = FileSink(str(path))
    assert sink.check() == "" and path.read_bytes() == b""
    path.write_bytes(b'{"a":1}\n' * 20000 + b'{"type":"ASS')
    assert sink.check() == f"{path}: cut off its last 12 byte(s), a line left without its end " \
                           f"by a write cut short (its changes are sent again)"
    assert path.read_bytes() == b'{"a":1}\n' * 20000 and sink.check() == ""
    path.write_bytes(b"x" * 100_000)
    assert "cut off its last 100000 byte(s)" in sink.check() and path.read_bytes() == b""
    (tmp_path / "a-folder.jsonl").mkdir()
    with pytest.raises(SinkError, match="cannot append to .*a-folder.jsonl: Is a directory"):
        FileSink(str(tmp_path / "a-folder.jsonl")).check()


def test_only_an_output_that_is_not_there_is_refused_at_start():
    """A throttle, a 5xx or a connection at start stopped a publisher that a write at the next
    poll would have got through (a review): those, and no permission to look, are said."""
    kinesis = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="k",
                           aws_secret_access_key="s")
    s3_client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k",
                             aws_secret_access_key="s")
    with Stubber(kinesis) as stub_kinesis, Stubber(s3_client) as stub_s3:
        for code in ("LimitExceededException", "AccessDeniedException", "InternalFailure"):
            stub_kinesis.add_client_error("describe_stream_summary", code, "no")
            assert KinesisSink(kinesis, "changes", "k").check() == (
                f"cannot check output stream changes ({code}: no): its first write will tell")
        stub_kinesis.add_client_error("describe_stream_summary", "ResourceNotFoundException",
                                      "Stream changes not found")
        with pytest.raises(SinkError, match="output stream changes: ResourceNotFoundException"):
            KinesisSink(kinesis, "changes", "k").check()
        for status in (403, 500):
            stub_s3.add_client_error("head_bucket", str(status), http_status_code=status)
            assert check_snapshot_target("s3://b/s.jsonl", lambda: s3_client).startswith(
                f"cannot check snapshot target s3://b/s.jsonl ({status}")
        stub_s3.add_client_error("head_bucket", "404", http_status_code=404)
        with pytest.raises(SinkError, match="s3://b/s.jsonl: no such bucket"):
            check_snapshot_target("s3://b/s.jsonl", lambda: s3_client)


def test_a_snapshot_file_target_is_checked(tmp_path):
    assert check_snapshot_target(str(tmp_path / "new" / "snapshot.jsonl")) == ""
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SinkError, match="cannot make its folder"):
        check_snapshot_target(str(tmp_path / "a-file" / "snapshot.jsonl"))
    with pytest.raises(SinkError, match="is a folder"):
        check_snapshot_target(str(tmp_path / "new"))
    with pytest.raises(SinkError, match="snapshot target 's3://': expected s3://bucket/key"):
        check_snapshot_target("s3://")


def test_a_second_stop_signal_stops_at_once_without_writing(tmp_path):
    """A stop waits for the reads under way, minutes for a large account at the worst, and a
    second Ctrl-C did not hurry it."""
    ready, out = tmp_path / "reading", tmp_path / "changes.jsonl"
    config = tmp_path / "publisher.yaml"
    config.write_text(json.dumps({"accounts": [ACCOUNT], "regions": ["us-east-1"],
                                  "snapshot": {"to": str(tmp_path / "snapshot.jsonl")},
                                  "output": {"path": str(out)}}))
    script = (
        "import pathlib, sys, time\n"
        "from flowdredge.connectors.publisher import cli\n"
        "class SlowReader:\n"
        "    def __init__(self, config, clock): pass\n"
        "    def read(self, scope):\n"
        f"        pathlib.Path({str(ready)!r}).write_text('')\n"
        "        time.sleep(120)\n"
        "cli.AwsReader = SlowReader\n"
        f"sys.exit(cli.main(['run', '--config', {str(config)!r}]))\n")
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):   # the first waits for the read
            process.wait(timeout=1)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 128 + signal.SIGINT
    finally:
        process.kill()
    said = process.stderr.read().splitlines()
    assert re.fullmatch(r"flowdredge-publisher: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ SIGINT again: "
                        r"stopped at once; this poll's changes may be written in part or not at "
                        r"all, and no snapshot is \(the next start writes them\)", said[-1])
    assert out.read_bytes() == b"" and not (tmp_path / "snapshot.jsonl").exists()


# ---- config


def test_example_config_loads():
    config = publisher_config.load(os.path.join(ROOT, "flink-conf", "publisher.example.yaml"))
    assert config.scopes and config.output.kind == "kinesis"
    assert config.name_rule.parse("api-prod-v012").cluster == "api-prod"


@pytest.mark.parametrize("doc, message", [
    ({}, "at least one account"),
    ({"accounts": ["1234"], "regions": ["us-east-1"]}, "12-digit"),
    ({"accounts": [12345], "regions": ["us-east-1"]}, "'12345' is not a 12-digit"),
    # Mistakes that were taken without a word (an operator's review).
    ({"accounts": [{"id": ACCOUNT, "role_arn": "arn:aws:iam::210987654321:role/r"}],
      "regions": ["us-east-1"]}, f"account {ACCOUNT}: role_arn arn:aws:iam::210987654321:role/r "
                                 "is a role of account 210987654321, which is what it would read"),
    ({"accounts": [{"id": ACCOUNT, "external_id": "x"}], "regions": ["us-east-1"]},
     "external_id is for assuming role_arn, and there is none"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"], "output": {"path": "c.jsonl"},
      "snapshot": {"to": "c.jsonl"}}, "output.path and snapshot.to are the same file, c.jsonl"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"], "output": {"path": "c.jsonl"},
      "events": {"path": "c.jsonl"}}, "output.path and events.path are the same file"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"], "output": {"path": "c.jsonl"},
      "naming": {"pattern": "(?P<app>.+)"}}, "naming.pattern is read with naming.rule: pattern"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"],
      "output": {"path": "c.jsonl", "stream_name": "s"}}, "are for output.kind kinesis"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"],
      "output": {"kind": "kinesis", "stream_name": "my stream", "region": "us-east-1"}},
     "output.stream_name: 'my stream' is not a stream name or ARN"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"],
      "output": {"kind": "kinesis", "stream_arn": "arn:aws:s3:::bucket", "region": "us-east-1"}},
     "output.stream_arn"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"],
      "output": {"kind": "kinesis", "stream_name": "m", "region": "nowhere"}},
     "output.region: 'nowhere' is not a region name"),
    ({"accounts": [ACCOUNT]}, "no regions"),
    ({"accounts": [ACCOUNT], "regions": ["useast"]}, "not a region name"),
    ({"accounts": [{"id": ACCOUNT, "role_arn": "admin"}], "regions": ["us-east-1"]}, "role_arn"),
    ({"accounts": [ACCOUNT, ACCOUNT], "regions": ["us-east-1"]}, "listed twice"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"], "output": {"kind": "file"}}, "output.path"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"], "output": {"kind": "kinesis", "stream_name": "m"}},
     "output.region"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"], "output": {"kind": "s3", "path": "p"}},
     "file or kinesis"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"], "poll_interval_seconds": 0,
      "output": {"path": "p"}}, "must be positive"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"], "polling": 5}, "unknown key"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"], "naming": {"rule": "pattern"},
      "output": {"path": "p"}}, "naming.pattern is required"),
    ({"accounts": [ACCOUNT], "regions": ["us-east-1"], "aws": {"max_attempts": "many"},
      "output": {"path": "p"}}, "expected an integer"),
])
def test_bad_config_says_what_is_wrong(doc, message):
    with pytest.raises(publisher_config.ConfigError, match=message):
        publisher_config.from_dict(doc)


def test_accounts_with_their_own_regions():
    config = publisher_config.from_dict({
        "accounts": [{"id": ACCOUNT, "role_arn": "arn:aws:iam::123456789012:role/reader"},
                     {"id": "210987654321", "regions": ["eu-west-1"]}],
        "regions": ["us-east-1", "us-west-2"], "output": {"path": "out.jsonl"}})
    assert [str(s) for s in config.scopes] == ["123456789012/us-east-1", "123456789012/us-west-2",
                                               "210987654321/eu-west-1"]


def test_regions_are_a_list_or_a_comma_string_and_ids_numbers_as_written():
    """An id as a number was padded to 12 digits: 12345 loaded as 000000012345 (a review)."""
    as_list = publisher_config.from_dict({"accounts": [210987654321], "regions": ["us-east-1",
                                          "eu-west-1"], "output": {"path": "o"}})
    as_text = publisher_config.from_dict({"accounts": ["210987654321"],
                                          "regions": "us-east-1, eu-west-1",
                                          "output": {"path": "o"}})
    assert as_list == as_text
    assert as_list.regions == ("us-east-1", "eu-west-1")
    with pytest.raises(publisher_config.ConfigError, match="'12345678901' is not a 12-digit account id"):
        publisher_config.from_dict({"accounts": [12345678901], "regions": ["us-east-1"],
                                    "output": {"path": "o"}})


def test_an_unquoted_account_id_with_a_leading_zero_is_read_as_written(tmp_path):
    # YAML 1.1 read 012345670123 as an octal number, 1402433619: another account.
    (tmp_path / "p.yaml").write_text("accounts: [012345670123, {id: 012345670124}]\n"
                                     "regions: [us-east-1]\noutput: {path: o}\n")
    assert [a.id for a in publisher_config.load(str(tmp_path / "p.yaml")).accounts] == [
        "012345670123", "012345670124"]


@pytest.mark.parametrize("doc, message", [
    ({"regions": ["us-east-1", "us-east-1"]}, "regions: 'us-east-1' is listed twice"),
    ({"accounts": [{"id": ACCOUNT, "regions": "eu-west-1,mars"}]},
     "accounts[0].regions: 'mars' is not a region name like us-east-1"),
    ({"accounts": [{"id": ACCOUNT, "role": "r"}]}, "unknown key(s) ['role'] in accounts[0]"),
    ({"accounts": [[ACCOUNT]]}, "accounts[0]: expected an account id or a mapping"),
    ({"output": {"path": "o", "max_attempts": "0"}}, "output.max_attempts must be positive"),
    ({"output": {"path": "o", "kind": "s3"}}, "output.kind must be file or kinesis, got 's3'"),
    ({"public_ipv4": "yes"}, "public_ipv4: expected true or false, got 'yes'"),
    ({"aws": {"retry_mode": "legacy"}}, "aws.retry_mode must be standard or adaptive"),
])
def test_each_bad_field_is_one_line_naming_it(doc, message):
    base = {"accounts": [ACCOUNT], "regions": ["us-east-1"], "output": {"path": "o"}}
    with pytest.raises(publisher_config.ConfigError) as err:
        publisher_config.from_dict({**base, **doc})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


# ---- retry and sinks


def client_error(code):
    return ClientError({"Error": {"Code": code, "Message": "slow down"}}, "DescribeThings")


def test_lists_are_read_with_botocores_paginators_page_by_page():
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    with Stubber(ec2) as stub:
        stub.add_response("describe_network_interfaces",
                          {"NetworkInterfaces": [eni("eni-a", "10.0.0.1")], "NextToken": "t2"},
                          {"MaxResults": 1000})
        stub.add_response("describe_network_interfaces",
                          {"NetworkInterfaces": [eni("eni-b", "10.0.0.2")]},
                          {"MaxResults": 1000, "NextToken": "t2"})
        assert [i["NetworkInterfaceId"] for i in items(ec2, "describe_network_interfaces")] == [
            "eni-a", "eni-b"]


def test_botocore_does_the_retrying_with_the_configured_attempts():
    base = {"accounts": [ACCOUNT], "regions": ["us-east-1"], "output": {"path": "o"}}
    reader = AwsReader(publisher_config.from_dict(base), clock=lambda: T0)
    assert reader.boto_config.retries == {"mode": "adaptive", "total_max_attempts": 8}
    tuned = publisher_config.from_dict({**base, "aws": {"retry_mode": "standard",
                                                        "max_attempts": 3}})
    assert AwsReader(tuned, clock=lambda: T0).boto_config.retries == {
        "mode": "standard", "total_max_attempts": 3}


def test_a_sessions_client_classes_share_botocores_methods_only():
    """Each service's later client classes take the first's operation methods (run 58); one
    another handler of `creating-client-class` put in their place, or took out, stays so."""
    def own_describe_vpcs(self, **kwargs):
        return kwargs

    def other_handler(class_attributes, **_kwargs):
        def describe_instances(self, **kwargs):   # a new closure each class
            return made
        made = len(classes)
        classes.append(class_attributes)
        class_attributes["describe_instances"] = describe_instances
        class_attributes["describe_vpcs"] = own_describe_vpcs
        del class_attributes["describe_subnets"]
    classes = []

    def session_factory():
        session = boto3.Session(region_name="us-east-1", aws_access_key_id="x",
                                aws_secret_access_key="x")
        session.events.register("creating-client-class.ec2", other_handler)
        return session
    base = {"accounts": [ACCOUNT], "regions": ["us-east-1"], "output": {"path": "o"}}
    reader = AwsReader(publisher_config.from_dict(base), clock=lambda: T0,
                       session_factory=session_factory)
    one = reader.client({}, "ec2", "us-east-1")
    two = reader.client({"aws_access_key_id": "y", "aws_secret_access_key": "y"}, "ec2",
                        "eu-west-1")
    assert type(one).describe_network_interfaces is type(two).describe_network_interfaces
    assert (one.describe_instances(), two.describe_instances()) == (0, 1)
    assert type(two).describe_vpcs is own_describe_vpcs
    assert not hasattr(one, "describe_subnets") and not hasattr(two, "describe_subnets")
    assert one.meta.region_name == "us-east-1" and two.meta.region_name == "eu-west-1"


def undated(said: str) -> str:
    """Lines said by the command without their UTC times, which each must have."""
    lines = said.splitlines(keepends=True)
    dated = re.compile(r"(flowdredge-publisher:) \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")
    assert all(dated.match(line) for line in lines), said
    return "".join(dated.sub(r"\1 ", line, count=1) for line in lines)


def test_command_line_says_on_stderr_what_is_wrong(tmp_path, capsys):
    config = tmp_path / "publisher.yaml"
    config.write_text(json.dumps({"accounts": [ACCOUNT], "regions": ["us-east-1"],
                                  "output": {"path": str(tmp_path / "out.jsonl")},
                                  "aws": {"throttle_base_ms": 500}}))
    assert cli.main(["snapshot", "--config", str(config)]) == 2
    assert undated(capsys.readouterr().err).splitlines() == [
        "flowdredge-publisher: ignored, no longer used: aws.throttle_base_ms (botocore's "
        "retries, aws.retry_mode and aws.max_attempts, handle throttling; remove them)",
        "flowdredge-publisher: no snapshot target: give --to or set snapshot.to"]
    (tmp_path / "a-file").write_text("")
    config.write_text(json.dumps({"accounts": [ACCOUNT], "regions": ["us-east-1"],
                                  "output": {"path": str(tmp_path / "a-file" / "c.jsonl")}}))
    assert cli.main(["run", "--config", str(config), "--once"]) == 1
    assert undated(capsys.readouterr().err) == (
        f"flowdredge-publisher: output.path {tmp_path}/a-file/c.jsonl: cannot make its folder "
        f"(File exists)\n")
    config.write_text("accounts: [{id: '123'}]\n")
    assert cli.main(["run", "--config", str(config), "--once"]) == 1
    assert undated(capsys.readouterr().err) == (
        "flowdredge-publisher: configuration error: accounts[0].id: '123' is not a 12-digit "
        "account id (quoted in YAML)\n")


def test_a_region_botocore_does_not_know_is_said_at_start(caplog):
    """us-esat-1 failed every poll as a connection error, which read as the network's (an
    operator's review); a region newer than botocore is not refused."""
    config = publisher_config.from_dict({"accounts": [ACCOUNT], "output": {"path": "o"},
                                         "regions": ["us-east-1", "us-esat-1", "cn-north-1"]})
    cli._warn_of_unknown_regions(config)
    assert [r.getMessage().split(" unknown")[0] for r in caplog.records] == [
        "region(s) us-esat-1"]


def test_removed_throttle_settings_are_ignored_with_a_warning(caplog):
    base = {"accounts": [ACCOUNT], "regions": ["us-east-1"], "output": {"path": "o"}}
    with caplog.at_level("WARNING", logger="flowdredge.connectors.publisher.config"):
        config = publisher_config.from_dict(
            {**base, "aws": {"throttle_attempts": 6, "throttle_max_ms": 20000, "max_attempts": 4}})
    assert config.aws.max_attempts == 4
    assert [r.getMessage() for r in caplog.records] == [
        "ignored, no longer used: aws.throttle_attempts, aws.throttle_max_ms (botocore's "
        "retries, aws.retry_mode and aws.max_attempts, handle throttling; remove them)"]
    with pytest.raises(publisher_config.ConfigError, match="unknown key"):
        publisher_config.from_dict({**base, "aws": {"throttle_everything": 1}})


class StubKinesis:
    """Fails the records whose data is in `fail_once` on their first put, those in
    `fail_always` on every put, every call with `error`; records every call."""

    def __init__(self, fail_once=(), error=None, fail_always=()):
        self.fail_once, self.error, self.calls = set(fail_once), error, []
        self.fail_always = set(fail_always)

    def put_records(self, Records, StreamName):
        """A call is recorded as its records, each the list of its events."""
        records = [[json.loads(line) for line in r["Data"].split(b"\n")] for r in Records]
        self.calls.append(records)
        if self.error:
            raise client_error(self.error)
        results = []
        for events in records:
            ips = {e.get("ip") for e in events}
            if ips & (self.fail_once | self.fail_always):
                self.fail_once -= ips
                results.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                results.append({"SequenceNumber": "1", "ShardId": "shardId-0"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def test_kinesis_sink_packs_events_into_records_in_order():
    events = [{"type": "ASSIGN", "ts": 1, "ip": f"10.0.{i // 250}.{i % 250}", "app": "a" * (i % 9)}
              for i in range(5000)]
    for record_bytes in (60, 200, 4096, 2**20):
        stub = StubKinesis()
        KinesisSink(stub, "meta", "ip-metadata", record_bytes=record_bytes).write(
            events + [{"type": "HEARTBEAT", "ts": 2}])
        records = [record for call in stub.calls for record in call]
        assert [e for record in records for e in record] == events + [{"type": "HEARTBEAT",
                                                                       "ts": 2}]
        assert records[-1] == [{"type": "HEARTBEAT", "ts": 2}] and len(stub.calls[-1]) == 1
        sizes = [len("\n".join(map(encode, record))) + len("ip-metadata") for record in records]
        # Full records: the next event would not have fitted (an event alone may be larger).
        assert all(size <= record_bytes or len(record) == 1
                   for size, record in zip(sizes, records))
        assert all(size + 1 + len(encode(following[0])) > record_bytes
                   for size, following in zip(sizes, records[1:-1]))
    assert len(records) == 2   # 5,000 events in one record of at most 1 MiB, the HEARTBEAT


def test_kinesis_sink_retries_failed_records_and_sends_heartbeats_last():
    events = [{"type": "ASSIGN", "ts": 1, "ip": f"10.0.0.{i}", "app": "a"} for i in range(700)]
    events.append({"type": "HEARTBEAT", "ts": 2})
    stub, delays = StubKinesis(fail_once={"10.0.0.3", "10.0.0.600"}), []
    # One event a record: a record of 47 bytes at most.
    KinesisSink(stub, "meta", "ip-metadata", sleep=delays.append, record_bytes=60).write(events)
    assert [len(c) for c in stub.calls] == [500, 1, 200, 1, 1]
    assert stub.calls[1] == [[events[3]]] and stub.calls[3] == [[events[600]]]
    assert stub.calls[-1] == [[{"type": "HEARTBEAT", "ts": 2}]]
    assert delays == [0.2, 0.2]
    # Many events a record: the failed record is sent again whole.
    stub = StubKinesis(fail_once={"10.0.0.3"})
    KinesisSink(stub, "meta", "ip-metadata", sleep=lambda s: None, record_bytes=4096).write(events)
    assert [e for record in stub.calls[0] for e in record] == events[:-1]
    assert len(stub.calls[0]) > 1 and stub.calls[1] == [stub.calls[0][0]]
    with pytest.raises(SinkError, match="ResourceNotFoundException"):
        KinesisSink(StubKinesis(error="ResourceNotFoundException"), "meta", "k").write(events[:1])
    # A call that failed as a whole was retried by the client's botocore: not again here.
    throttled = StubKinesis(error="ProvisionedThroughputExceededException")
    with pytest.raises(SinkError, match="ProvisionedThroughputExceededException"):
        KinesisSink(throttled, "meta", "k", sleep=lambda s: None).write(events[:1])
    assert len(throttled.calls) == 1
    # A record reported as failed every time: `max_attempts` calls, then the batch fails.
    failing = StubKinesis(fail_always={"10.0.0.1"})
    with pytest.raises(SinkError, match="after 3 attempt.*1 record.*ProvisionedThroughput"):
        KinesisSink(failing, "meta", "k", max_attempts=3, sleep=lambda s: None,
                    record_bytes=60).write(events[:2])
    assert [len(c) for c in failing.calls] == [2, 1, 1]
    # An answer that counts a failure but names none: every record of the call again.
    unnamed = StubKinesis()
    unnamed.put_records = lambda Records, StreamName: (
        unnamed.calls.append(Records) or {"FailedRecordCount": 1, "Records": [{}] * len(Records)})
    with pytest.raises(SinkError, match="after 2 attempt.*2 record.*no error code given"):
        KinesisSink(unnamed, "meta", "k", max_attempts=2, sleep=lambda s: None,
                    record_bytes=60).write(events[:2])
    assert [len(c) for c in unnamed.calls] == [2, 2]


def test_the_synthetic_changelog_writer_sends_heartbeats_as_the_publisher_does():
    from flowdredge.synthetic.producer import put_changelog_lines
    changes = [json.dumps({"type": "ASSIGN", "ts": 1, "ip": f"10.0.0.{i}", "app": "a"})
               for i in range(3)]
    heartbeat = json.dumps({"type": "HEARTBEAT", "ts": 2})
    stub = StubKinesis(fail_once={"10.0.0.1"})
    # One line a record; the change that fails once is in the stream before the HEARTBEAT.
    put_changelog_lines(KinesisSink(stub, "meta", "k", sleep=lambda s: None, record_bytes=60),
                        changes[:2] + ["", heartbeat, changes[2]])
    assert stub.calls == [[[json.loads(changes[0])], [json.loads(changes[1])]],
                          [[json.loads(changes[1])]], [[json.loads(heartbeat)]],
                          [[json.loads(changes[2])]]]


def test_file_sink_and_snapshot_files(tmp_path):
    sink = FileSink(str(tmp_path / "out" / "changes.jsonl"))
    sink.write([{"type": "HEARTBEAT", "ts": 1}])
    sink.write([])
    sink.write([{"type": "UNASSIGN", "ts": 2, "ip": "10.0.0.1"}])
    assert (tmp_path / "out" / "changes.jsonl").read_text() == (
        '{"type":"HEARTBEAT","ts":1}\n{"type":"UNASSIGN","ts":2,"ip":"10.0.0.1"}\n')
    target = tmp_path / "snap" / "snapshot.jsonl"
    write_snapshot([{"type": "ASSIGN", "ts": 1, "ip": "10.0.0.1"}], str(target))
    assert target.read_text() == '{"type":"ASSIGN","ts":1,"ip":"10.0.0.1"}\n'
    assert not (tmp_path / "snap" / "snapshot.jsonl.partial").exists()
    with pytest.raises(SinkError, match="s3://bucket/key"):
        write_snapshot([], "s3://bucket-only")


def test_a_resume_dates_changes_after_the_last_read_not_the_snapshot_files_time(tmp_path, caplog):
    """A publisher review: resumed from its stop snapshot, a publisher dated what changed after
    the snapshot file's time: the old owner kept an address for the last poll interval, and for
    two hours when the file was copied two hours later. A write that failed after its changes
    landed (an ASSIGN in the stream, no HEARTBEAT) was forgotten: nothing ever took it back."""
    tags = {"i-a": {"Name": "alpha"}, "i-b": {"Name": "beta"}, "i-c": {"Name": "gamma"}}
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a",
                                           attached_ms=T0 - 3_600_000)], instance_tags=tags)
    now, stream = [T0], []

    class HeartbeatFails:
        fail = False

        def write(self, events):
            for e in events:
                if e["type"] == "HEARTBEAT" and self.fail:
                    raise SinkError("PutRecords failed: ProvisionedThroughputExceeded")
                stream.append(e)

    sink = HeartbeatFails()
    first = Publisher(config_for(), InventoryReader({SCOPE: inv}), sink, lambda: now[0])
    first.poll()
    inv.interfaces.append(eni("eni-c", "10.0.0.6", instance="i-c"))   # gamma launched
    now[0], sink.fail = T0 + 60_000, True
    with pytest.raises(SinkError):
        first.poll()   # gamma's ASSIGN is in the stream, the HEARTBEAT is not
    snap = str(tmp_path / "snapshot.jsonl")
    cli.snapshot_writer(config_for(), None, snap)(first.snapshot())
    assert [e["ip"] for e in map(json.loads, open(snap))] == ["10.0.0.5"]
    # Meanwhile: alpha let 10.0.0.5 go at T0 + 65 s and beta took it at T0 + 70 s; gamma went.
    later = T0 + 2 * 3_600_000
    moved = Inventory(SCOPE, interfaces=[eni("eni-b", "10.0.0.5", instance="i-b",
                                             attached_ms=T0 + 70_000)], instance_tags=tags)
    os.utime(snap, (later / 1000, later / 1000))   # copied two hours later
    stream.clear()
    now[0] = later + 60_000
    resumed = ListSink()
    Publisher(config_for(), InventoryReader({SCOPE: moved}), resumed, lambda: now[0],
              cli._read_snapshot(snap, None)).poll()
    assert [(e["type"], e["ts"] - T0, e.get("ip"), e.get("app")) for e in resumed.events] == [
        ("UNASSIGN", 1, "10.0.0.5", None),        # after the last read written whole (T0), not
        ("UNASSIGN", 60_001, "10.0.0.6", None),   # the file's time; gamma's ASSIGN taken back
        ("ASSIGN", 70_999, "10.0.0.5", "beta"),
        ("HEARTBEAT", 7_260_000, None, None)]
    # Clocks of another snapshot (a stop between the two writes): said, the file's time used.
    with open(snap, "a") as fh:
        fh.write(json.dumps(assign_event("10.0.0.9", T0, owner("x", "x", "-", "eni-x", "i-x",
                                                                 "instance"))) + "\n")
    with caplog.at_level("WARNING"):
        state = cli._read_snapshot(snap, None)
    assert state.polled_ms == {} and "is not of this snapshot" in caplog.text
    # Clocks of this snapshot that this release cannot read (another version, a key missing,
    # a value of another shape): said, the file's time used (a review: a key missing failed
    # the whole --resume, its message blaming the snapshot).
    cli.snapshot_writer(config_for(), None, snap)(first.snapshot())
    written = json.loads(open(clocks_path(snap)).read())
    for change, said in (({"version": 99}, "clocks of version 99, this release reads 1 to 2"),
                         ({"polled_ms": None}, "clocks not as this release writes them"),
                         ({"seen_ms": {"no-slash": 1}}, "clocks not as this release writes them"),
                         ({"heartbeat_ms": "12"}, "clocks not as this release writes them"),
                         ({"heartbeat_ms": float("inf")}, "is not an integer time"),
                         ({"version": True}, "clocks of version True")):
        with open(clocks_path(snap), "w") as fh:
            json.dump({**written, **change}, fh)
        caplog.clear()
        with caplog.at_level("WARNING"):
            state = cli._read_snapshot(snap, None)
        assert state.polled_ms == {} and said in caplog.text, change
        assert set(state.holdings) == {"10.0.0.5"}
    missing = {k: v for k, v in written.items() if k != "released"}
    with open(clocks_path(snap), "w") as fh:
        json.dump(missing, fh)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert cli._read_snapshot(snap, None).polled_ms == {}
    assert "clocks without 'released'" in caplog.text
    with open(clocks_path(snap), "w") as fh:
        json.dump([written], fh)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert cli._read_snapshot(snap, None).polled_ms == {}
    assert "is not clocks (a JSON object)" in caplog.text
    # A snapshot's owner values are text, as the publisher writes them (a hand-edited true was
    # the owner "True", which the job refuses).
    with open(snap, "a") as fh:
        fh.write(json.dumps({**assign_event("10.0.0.8", T0, owner("x", "x", "-", "eni-y", "i-y",
                                                                  "instance")),
                             "app": True}) + "\n")
    with pytest.raises(ValueError, match="is not a file of ASSIGN events: line 2: app True is not text"):
        cli._read_snapshot(snap, None)
    # Its addresses as the publisher writes them, its times Java's longs (an ip 10 failed the
    # first poll's sort; a ts of 10**30 was taken).
    good = assign_event("10.0.0.8", T0, owner("x", "x", "-", "eni-y", "i-y", "instance"))
    for change, said in (({"ip": 10}, "ip 10 is not an address as written"),
                         ({"ip": "10.0.0.010"}, "is not an address as written"),
                         ({"ip": "::FFFF:A00:1"}, "is not an address as written"),
                         ({"ts": 10**30}, "is not an integer time"),
                         ({"ts": -1}, "is not an integer time")):
        with open(snap, "w") as fh:
            fh.write(json.dumps({**good, **change}) + "\n")
        with pytest.raises(ValueError, match=said):
            cli._read_snapshot(snap, None)
    # A line nested deeper than json goes: RecursionError's traceback stopped the publisher;
    # clocks so nested are none, said.
    with open(clocks_path(snap), "w") as fh:
        fh.write("[" * 100_000 + "]" * 100_000)
    with open(snap, "w") as fh:
        fh.write(json.dumps(good) + "\n")
    with caplog.at_level("WARNING"):
        assert list(cli._read_snapshot(snap, None).holdings) == ["10.0.0.8"]
    assert "no clocks beside the snapshot (maximum recursion depth exceeded" in caplog.text
    with open(snap, "a") as fh:
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ValueError, match="is not a file of ASSIGN events: line 2: nested deeper "
                                         "than the JSON decoder goes"):
        cli._read_snapshot(snap, None)


def test_a_snapshot_line_giving_a_key_twice_is_refused_naming_its_line(tmp_path):
    """A review: json kept a repeated key's last value, so a --resume held the owner of an
    ASSIGN the job dead-letters (applied as an UNASSIGN), or of a ts or ip the job never
    applied. Refused, as any other line that is no event the publisher writes, by its line."""
    good = assign_event("10.0.0.8", T0, owner("x", "x", "-", "eni-y", "i-y", "instance"))
    head = json.dumps(good, separators=(",", ":"))[:-1]
    snap = str(tmp_path / "snap.jsonl")
    for twice, key in ((head + ',"app":"other"}', "app"),
                       (head + ', "app" : "other"}', "app"),
                       (head + ',"app"\t:"other"}', "app"),
                       (head + ',"app"\r:"other"}', "app"),
                       (head + ',"resource_id":"arn:aws:x","ts":1}', "resource_id, ts")):
        with pytest.raises(MetaEventError) as dead:   # the job's dead letter
            parse_event(twice)
        assert "twice in one object" in dead.value.detail
        with open(snap, "w") as fh:
            fh.write(json.dumps(good) + "\n\n" + twice + "\n")
        with pytest.raises(ValueError) as refused:
            cli._read_snapshot(snap, None)
        assert str(refused.value) == (f"snapshot {snap} is not a file of ASSIGN events: line 3: "
                                      f"the key(s) {key} twice in one object (JSON keeps the "
                                      f"last)")
    # Values holding `":` or a blank before a colon are no repeated key.
    with open(snap, "w") as fh:
        fh.write(json.dumps({**good, "app": 'a":b', "cluster": 'c" :d'}) + "\n")
    assert cli._read_snapshot(snap, None).holdings["10.0.0.8"].owner.app == 'a":b'


def test_a_snapshot_line_dated_after_the_snapshot_was_written_is_refused(tmp_path):
    """A hand-edited ts of 9999 was held: the address's next owner was dated after it, which
    the job refuses (ts_out_of_range), and so was every later change of it, for good (a
    review). A minute and a second after the file's time is an event's at most (a minute ahead
    of the clock, at its second's end)."""
    snap = tmp_path / "snap.jsonl"
    ahead = assign_event("10.0.0.8", 253370764800000, owner("x", "x", "-", "eni-y", "i-y",
                                                             "instance"))
    snap.write_text(json.dumps(ahead) + "\n")
    os.utime(snap, (T0 / 1000, T0 / 1000))
    with pytest.raises(ValueError) as refused:
        cli._read_snapshot(str(snap), None)
    assert str(refused.value) == (
        f"snapshot {snap} is not a file of ASSIGN events: line 1: ts 253370764800000 "
        f"(9999-01-01T00:00:00Z) is after the snapshot was written, 2026-01-01T00:00:00Z")
    snap.write_text(json.dumps({**ahead, "ts": T0 + 61_000}) + "\n")
    os.utime(snap, (T0 / 1000, T0 / 1000))
    assert cli._read_snapshot(str(snap), None).holdings["10.0.0.8"].since_ms == T0 + 61_000


def test_clocks_dated_after_the_snapshot_was_written_are_said_and_not_read(tmp_path, caplog):
    """As a snapshot line's ts: a hand-edited 9999 in the clocks beside it (which stay of the
    snapshot: their digest is of its lines) was read. A HEARTBEAT of 9999 held back every later
    one, an event of 9999 made every event of its scope stale, and a release of 9999 dated the
    address's next change there, which the job refuses (a review of a review's change)."""
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                    instance_tags={"i-a": {"Name": "api-prod"}})
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), ListSink(), lambda: T0)
    publisher.poll()
    snap = str(tmp_path / "snapshot.jsonl")
    cli.snapshot_writer(config_for(), None, snap)(publisher.snapshot())
    written = json.loads(open(clocks_path(snap)).read())
    scope = next(iter(written["polled_ms"]))
    ahead = 253370764800000   # 9999-01-01
    for change, name in (({"heartbeat_ms": ahead}, "heartbeat_ms"),
                         ({"event_ms": {scope: ahead}}, "event_ms"),
                         ({"released": {"10.0.0.7": ahead}}, "released"),
                         ({"written": {"10.0.0.5": ahead}}, "written"),
                         ({"vpc_uncertain": {"10.0.0.7": {"vpc-0a1b2c3d": [ahead]}}},
                          "vpc_uncertain")):
        with open(clocks_path(snap), "w") as fh:
            json.dump({**written, **change}, fh)
        os.utime(snap, (T0 / 1000, T0 / 1000))
        caplog.clear()
        with caplog.at_level("WARNING"):
            state = cli._read_snapshot(snap, None)
        assert (f"{name} {ahead} (9999-01-01T00:00:00Z) is after the snapshot was written, "
                f"2026-01-01T00:00:00Z") in caplog.text, change
        assert state.polled_ms == {} and state.heartbeat_ms is None and not state.event_ms
        assert set(state.holdings) == {"10.0.0.5"}
    # A minute and a second after the file's time is an event's at most: read.
    with open(clocks_path(snap), "w") as fh:
        json.dump({**written, "event_ms": {scope: T0 + 61_000}}, fh)
    os.utime(snap, (T0 / 1000, T0 / 1000))
    assert cli._read_snapshot(snap, None).event_ms == {Scope(*scope.split("/")): T0 + 61_000}


def test_run_loop_polls_on_the_interval_and_applies_events_between(tmp_path):
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                    instance_tags={"i-a": {"Name": "api-prod"}})
    now = [T0]
    sink, snapshots, polls = ListSink(), [], []
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), sink, lambda: now[0])
    events = tmp_path / "events.jsonl"
    events.write_text("")
    tail = EventTail(str(events))

    def sleep(seconds):
        now[0] += int(seconds * 1000)
        if now[0] == T0 + 30_000:   # an event arrives half-way through the first interval
            events.write_text(bridge("TerminateInstances", "2026-01-01T00:00:20Z", request={
                "instancesSet": {"items": [{"instanceId": "i-a"}]}}) + "\n")
    requested = iter([False, True] + [False] * 100)
    read = []
    publisher.run(lambda: len(polls) == 2 and now[0] >= T0 + 60_000, sleep=sleep,
                  on_poll=polls.append, events=tail, snapshot_requested=lambda: next(requested),
                  write_snapshot=snapshots.append, on_events=read.append)
    assert [p.started_ms for p in polls] == [T0, T0 + 60_000]
    # Each read of events is said in one line.
    assert [describe_events(r) for r in read] == ["events: 1 applied (0 assigned, 1 unassigned)"]
    assert [(e["type"], e["ts"]) for e in sink.events] == [
        # The stub estate did not really change: the next poll has the last word.
        ("ASSIGN", T0), ("HEARTBEAT", T0), ("UNASSIGN", T0 + 20_000), ("ASSIGN", T0 + 60_000),
        ("HEARTBEAT", T0 + 60_000)]
    assert [[e["ip"] for e in snapshot_events(s)] for s in snapshots] == [["10.0.0.5"]]


class StoppedAtReader:
    """An estate of one interface a scope; the stop is asked for while read number `at` runs."""

    def __init__(self, stop, at):
        self.stop, self.at, self.reads = stop, at, []
        self.lock = threading.Lock()

    def read(self, scope):
        with self.lock:
            self.reads.append(scope)
            if len(self.reads) == self.at:
                self.stop.append(True)
        n = int(scope.account) * 2 + (scope.region == "eu-west-1")
        return Inventory(scope, interfaces=[eni(f"eni-{n}", f"10.0.0.{n}", instance=f"i-{n}")],
                         instance_tags={f"i-{n}": {"Name": "api-prod"}})


@pytest.mark.parametrize("parallel_reads", [1, 3])
def test_a_stop_asked_for_during_a_poll_waits_for_the_reads_under_way_only(parallel_reads):
    """A stop (SIGTERM) waited for a whole poll, minutes at hundreds of accounts: longer than a
    container is given before it is killed, which then wrote no snapshot. The scopes not yet
    begun are not read; those read are written, the others keep their owners, said once."""
    accounts = [f"{n:012d}" for n in range(1, 4)]
    config = publisher_config.from_dict({"accounts": accounts, "regions": ["us-east-1", "eu-west-1"],
                                         "output": {"kind": "file", "path": "x"},
                                         "aws": {"parallel_reads": parallel_reads}})
    stop, logged, sink = [], [], ListSink()
    reader = StoppedAtReader(stop, at=2)
    publisher = Publisher(config, reader, sink, lambda: T0, log=logged.append)
    polls = []
    publisher.run(lambda: bool(stop), sleep=lambda _s: pytest.fail("slept after the stop"),
                  on_poll=polls.append)
    [result] = polls
    read = set(reader.reads)
    # The reads begun before the stop: the one that asked for it, and those under way with it.
    assert 2 <= len(read) <= 1 + parallel_reads
    assert set(result.failed) == set(config.scopes) - read
    assert set(result.failed.values()) == {NOT_READ} and not result.complete
    assert {e["ip"] for e in sink.events} == {f"10.0.0.{int(s.account) * 2 + (s.region == 'eu-west-1')}"
                                              for s in read}
    assert result.heartbeat_ms is None
    assert logged == [f"stopping: {6 - len(read)} account/region(s) not read by this poll, "
                      f"their owners kept"]
    assert describe(result) == (f"poll: {len(read)} assigned, 0 unassigned, in 0.0 s, "
                                f"{6 - len(read)} not read (stopping)")


def test_a_poll_longer_than_the_interval_says_how_long_and_what_the_job_needs():
    """The docs ask for metadata.out_of_orderness_seconds of at least the interval plus a
    poll's duration, which no line said (an operator's review)."""
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                    instance_tags={"i-a": {"Name": "api-prod"}})
    now, logged, polls = [T0], [], []

    class SlowReader:
        def read(self, scope):
            now[0] += 95_000   # a read of 95 s
            return inv
    publisher = Publisher(config_for(), SlowReader(), ListSink(), lambda: now[0],
                          log=logged.append)
    publisher.run(lambda: len(polls) == 1, sleep=lambda _s: None, on_poll=polls.append)
    assert describe(polls[0]).endswith("in 95.0 s")
    assert logged == ["the poll took 95 s, longer than poll_interval_seconds (60): the next "
                      "begins at once; the job's metadata.out_of_orderness_seconds must be at "
                      "least 156 (docs/publisher.md)"]


def test_an_unexpected_error_fails_a_scope_or_a_line_not_the_publisher():
    """A malformed answer (botocore's parser error is no BotoCoreError) fails the scope: its
    owners kept, no HEARTBEAT; an event line whose address is none is one bad line."""
    from botocore.parsers import ResponseParserError

    class Malformed:
        def read(self, scope):
            raise ResponseParserError("Unable to parse response (not XML)")

    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                    instance_tags={"i-a": {"Name": "api-prod"}})
    sink, now = ListSink(), [T0]
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), sink, lambda: now[0])
    publisher.poll()
    publisher.reader, now[0] = Malformed(), T0 + 60_000
    result = publisher.poll()
    assert SCOPE in result.failed and "Unable to parse" in result.failed[SCOPE]
    assert [e["type"] for e in sink.events] == ["ASSIGN", "HEARTBEAT"]
    bad_address = bridge("CreateNetworkInterface", "2026-01-01T00:01:06Z", response={
        "networkInterface": {"networkInterfaceId": "eni-x", "availabilityZone": "us-east-1b",
                             "privateIpAddress": "10.0.1.999", "description": "",
                             "privateIpAddressesSet": {"item": [
                                 {"privateIpAddress": "10.0.1.999", "primary": True}]}}})
    assert publisher.apply_events([bad_address, "garbage"]).bad == 2
    assert publisher.state.holdings["10.0.0.5"].owner.app == "api"


def test_a_failed_file_append_leaves_no_half_line(tmp_path):
    """A batch the disk takes only part of (here the file size limit) is cut back: the next
    batch's first event is not joined to half a line the job would dead-letter."""
    import resource
    path = tmp_path / "changes.jsonl"
    sink = FileSink(str(path))
    sink.write([assign_event("10.0.0.1", T0, Owner(app="a", interface_id="eni-a"))])
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 60, hard))
    try:
        with pytest.raises(SinkError, match="cannot append"):
            sink.write([unassign_event(f"10.0.0.{i}", T0 + 1) for i in range(2, 9)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    sink.write([unassign_event("10.0.0.9", T0 + 2)])
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["type"], e["ip"]) for e in events] == [("ASSIGN", "10.0.0.1"),
                                                       ("UNASSIGN", "10.0.0.9")]


def test_a_new_owner_from_an_event_comes_after_the_release_a_poll_dated_later():
    """A read (60 s to 80 s) sees o1's address without an attachment time: o1's from the read's
    end. Events then say o1's interface went at 70 s and o2's came with the address at 75 s:
    o1's release cannot be before its ASSIGN (80 s + 1 ms), so o2's ASSIGN comes after it, not
    at 75 s, where the later release would have hidden o2 for as long as it holds the address."""
    ip, t = "10.0.0.3", T0
    first = reconcile_poll(State(), [Observation(SCOPE, [], t, t + 1000)], [SCOPE])
    seen = reconcile_poll(first.state, [Observation(SCOPE, [claim(ip, "o1", "eni-1", "eni-1")],
                                                    t + 60_000, t + 80_000)], [SCOPE])
    gone = apply_event(seen.state, SCOPE, [], t + 70_000)
    came = apply_event(gone.state, SCOPE, [claim(ip, "o2", "eni-2", "eni-2")], t + 75_000)
    assert types_ts_ips(gone.events + came.events) == [("UNASSIGN", t + 80_001, ip, None),
                                                       ("ASSIGN", t + 80_002, ip, "o2")]
    # Once a HEARTBEAT passes the release, it is not kept: every later change is after it.
    later = reconcile_poll(came.state, [Observation(SCOPE, [claim(ip, "o2", "eni-2", "eni-2")],
                                                    t + 120_000, t + 121_000)], [SCOPE])
    assert later.state.released == {}


def test_an_event_in_a_whole_second_moves_an_address_through_nobody_within_that_second():
    """An event at 70 s moves o1's address to o2 somewhere in 70.000-70.999: flows of that
    second are nobody's, not o1's after the move nor o2's before it. A time in ms is exact."""
    ip = "10.0.0.3"
    seen = reconcile_poll(State(), [Observation(SCOPE, [claim(ip, "o1", "eni-1", "eni-1")],
                                                T0, T0 + 1000)], [SCOPE])
    moved = apply_event(seen.state, SCOPE, [claim(ip, "o2", "eni-2", "eni-2")], T0 + 70_000)
    assert types_ts_ips(moved.events) == [("UNASSIGN", T0 + 70_000, ip, None),
                                          ("ASSIGN", T0 + 70_999, ip, "o2")]
    assert moved.state.holdings[ip].since_ms == T0 + 70_999
    exact = apply_event(seen.state, SCOPE, [claim(ip, "o2", "eni-2", "eni-2")], T0 + 70_250)
    assert types_ts_ips(exact.events) == [("ASSIGN", T0 + 70_250, ip, "o2")]


def test_an_event_that_leaves_an_address_claimed_twice_releases_the_old_owner_as_a_poll_would():
    """o1 was seen with the address at the first read; a create event gives it to o2 at 55 s
    while the inventory still has it on o1 (its own change went unseen): o1 let go at a time
    not known, so it is nobody's from just after that read, not o1's until the event."""
    ip = "10.0.0.3"
    seen = reconcile_poll(State(), [Observation(SCOPE, [claim(ip, "o1", "eni-1", "eni-1")],
                                                T0, T0 + 1000)], [SCOPE])
    both = [claim(ip, "o1", "eni-1", "eni-1"), claim(ip, "o2", "eni-2", "eni-2")]
    assert types_ts_ips(apply_event(seen.state, SCOPE, both, T0 + 55_000).events) == [
        ("UNASSIGN", T0 + 1001, ip, None)]


def test_a_scope_no_longer_configured_releases_what_its_snapshot_held():
    """A --resume from a snapshot of an earlier configuration: the scope left out is never
    read again, so its owners go from just after the snapshot was taken; its address another
    scope claims is that scope's from its read (a public address AWS gave another account)."""
    state = state_from_snapshot([assign_event("10.9.0.5", T0 - 60_000, owner(
        "pay", "pay", "pay-v1", "eni-p", "i-p", "instance", scope=OTHER)), assign_event(
        "54.1.2.3", T0 - 60_000, owner("pay", "pay", "pay-v1", "eni-p", "i-p", "instance",
                                       scope=OTHER))], taken_ms=T0)
    t1 = T0 + 60_000
    first = reconcile_poll(state, [Observation(SCOPE, [claim("54.1.2.3", "api", "eni-a", "i-a")],
                                               t1, t1 + 10)], [SCOPE])
    assert types_ts_ips(first.events) == [("UNASSIGN", T0 + 1, "10.9.0.5", None),
                                          ("UNASSIGN", T0 + 1, "54.1.2.3", None),
                                          ("ASSIGN", t1 + 10, "54.1.2.3", "api"),
                                          ("HEARTBEAT", t1, None, None)]
    assert set(first.state.holdings) == {"54.1.2.3"} and first.state.contested == {}


def test_a_contested_address_nobody_claims_any_more_is_let_go_quietly():
    """Two scopes claimed it; then neither does: nothing to say (it is nobody's already), and
    it is no longer contested. Within one scope, an event that removes both claims alike."""
    ip = "10.0.0.5"
    api, pay = claim(ip, "api", "eni-b", "i-b"), claim(ip, "pay", "eni-a", "i-a", scope=OTHER)
    both = reconcile_poll(State(), [Observation(SCOPE, [api], T0, T0 + 10),
                                    Observation(OTHER, [pay], T0 + 20, T0 + 30)], [SCOPE, OTHER])
    assert both.state.contested == {ip: {SCOPE, OTHER}}
    gone = reconcile_poll(both.state, [Observation(SCOPE, [], T0 + 60_000, T0 + 60_010),
                                       Observation(OTHER, [], T0 + 60_020, T0 + 60_030)],
                          [SCOPE, OTHER])
    assert gone.events == [{"type": "HEARTBEAT", "ts": T0 + 60_000}] and gone.state.contested == {}
    twice = reconcile_poll(State(), [Observation(SCOPE, [api, claim(ip, "web", "eni-w", "i-w")],
                                                 T0, T0 + 10)], [SCOPE])
    assert twice.state.contested == {ip: {SCOPE}}
    assert apply_event(twice.state, SCOPE, [], T0 + 5_000).events == []


def test_a_failed_scopes_address_claimed_elsewhere_is_released_after_a_write_that_may_have_landed():
    """SCOPE moved the address to eni-2, and that write failed (it may be in the changelog).
    SCOPE's read fails next while OTHER claims the address: the release comes after the write
    that may have landed, or the changelog would go back in time and keep eni-2 through it."""
    ip = "10.0.0.5"
    first = reconcile_poll(State(), [Observation(SCOPE, [claim(ip, "a", "eni-1", "eni-1")], T0, T0 + 100),
                                     Observation(OTHER, [], T0, T0 + 100)], [SCOPE, OTHER])
    moved = reconcile_poll(first.state, [Observation(SCOPE, [claim(ip, "b", "eni-2", "eni-2")],
                                                     T0 + 60_000, T0 + 60_100),
                                         Observation(OTHER, [], T0 + 60_000, T0 + 60_100)],
                           [SCOPE, OTHER])
    assert [e["ts"] for e in moved.events if e.get("ip") == ip] == [T0 + 101, T0 + 60_100]
    failed = first.state.write_failed(moved.events)
    third = reconcile_poll(failed, [Observation(OTHER, [claim(ip, "c", "eni-3", "eni-3", scope=OTHER)],
                                                T0 + 120_000, T0 + 120_100)], [SCOPE, OTHER])
    assert types_ts_ips(third.events) == [("UNASSIGN", T0 + 60_101, ip, None)]
    assert third.state.uncertain == {} and third.state.contested == {ip: {SCOPE, OTHER}}


def test_an_event_in_the_second_a_read_began_releases_and_leaves_the_owner_to_the_next_poll():
    """A read began at 60.2 s and saw eni-1 unattached, tagged app b; an event is dated 60 s. It
    is not stale (the read may have looked before it), but the read may also show a later
    change than the event's (a tag set at 60.3 s): what the event changes is nobody's from just
    after the read began, and the next poll says who holds it."""
    ip = "10.0.0.5"
    seen = reconcile_poll(State(), [Observation(SCOPE, [claim(ip, "b", "eni-1", "eni-1")],
                                                T0 + 60_200, T0 + 60_300)], [SCOPE])
    assert not is_stale(seen.state, SCOPE, T0 + 60_000)
    assert is_stale(seen.state, SCOPE, T0 + 59_000)
    attached = apply_event(seen.state, SCOPE, [claim(ip, "a", "eni-1", "i-1")], T0 + 60_000)
    assert types_ts_ips(attached.events) == [("UNASSIGN", T0 + 60_301, ip, None)]
    gone = apply_event(seen.state, SCOPE, [], T0 + 60_000)
    assert types_ts_ips(gone.events) == [("UNASSIGN", T0 + 60_301, ip, None)]
    assert apply_event(seen.state, SCOPE, [claim(ip, "b", "eni-1", "eni-1")], T0 + 60_000).events == []
    later = reconcile_poll(attached.state, [Observation(SCOPE, [claim(ip, "b", "eni-1", "eni-1")],
                                                        T0 + 120_000, T0 + 120_100)], [SCOPE])
    assert types_ts_ips(later.events)[0] == ("ASSIGN", T0 + 120_100, ip, "b")


def test_a_conflict_or_move_is_released_after_a_change_whose_write_may_have_landed():
    """An event moved the address from i-a to i-b and its write failed (it may be in the
    changelog). The next poll finds B's interface with it too: the release comes after i-b's
    ASSIGN that may have landed, or i-b would keep it through the conflict."""
    ip = "10.0.0.5"
    first = reconcile_poll(State(), [Observation(SCOPE, [claim(ip, "a", "eni-a", "i-a")], T0, T0 + 100),
                                     Observation(OTHER, [], T0, T0 + 100)], [SCOPE, OTHER])
    moved = apply_event(first.state, SCOPE, [claim(ip, "b", "eni-b", "i-b")], T0 + 30_000)
    assert types_ts_ips(moved.events)[-1] == ("ASSIGN", T0 + 30_999, ip, "b")
    failed = first.state.write_failed(moved.events, moved.state.contested)
    both = reconcile_poll(failed, [Observation(SCOPE, [claim(ip, "b", "eni-b", "i-b")], T0 + 60_000, T0 + 60_100),
                                   Observation(OTHER, [claim(ip, "j", "eni-j", "j-1", scope=OTHER)],
                                               T0 + 60_000, T0 + 60_100)], [SCOPE, OTHER])
    assert types_ts_ips(both.events)[0] == ("UNASSIGN", T0 + 31_000, ip, None)
    # A move the same way: after the write that may have landed.
    again = reconcile_poll(failed, [Observation(SCOPE, [claim(ip, "c", "eni-c", "i-c")], T0 + 60_000, T0 + 60_100),
                                    Observation(OTHER, [], T0 + 60_000, T0 + 60_100)], [SCOPE, OTHER])
    assert types_ts_ips(again.events)[:2] == [("UNASSIGN", T0 + 31_000, ip, None),
                                              ("ASSIGN", T0 + 60_100, ip, "c")]


def test_a_contest_found_by_a_poll_whose_write_failed_is_kept():
    """Both scopes claimed the address in a poll whose write failed: the next poll, with B's
    read failing, does not give it to A."""
    ip = "10.0.0.5"
    a, b = claim(ip, "a", "eni-a", "i-a"), claim(ip, "b", "eni-b", "j-1", scope=OTHER)
    first = reconcile_poll(State(), [Observation(SCOPE, [], T0, T0 + 100),
                                     Observation(OTHER, [], T0, T0 + 100)], [SCOPE, OTHER])
    both = reconcile_poll(first.state, [Observation(SCOPE, [a], T0 + 60_000, T0 + 60_100),
                                        Observation(OTHER, [b], T0 + 60_000, T0 + 60_100)], [SCOPE, OTHER])
    failed = first.state.write_failed(both.events, both.state.contested)
    third = reconcile_poll(failed, [Observation(SCOPE, [a], T0 + 120_000, T0 + 120_100)], [SCOPE, OTHER])
    assert [e["type"] for e in third.events] == [] and ip not in third.state.holdings


# ---- overlapping VPCs: an address's owner within each VPC that claims it

# As AWS writes VPC ids (the job refuses others).
VPC_A, VPC_P = "vpc-0aaaaaaaaaaaaaaaa", "vpc-0bbbbbbbbbbbbbbbb"
SHARED = "172.31.0.5"   # a default VPC's address, in each account


def vpc_events(events):
    return [(e["type"], e["ts"], e.get("ip"), e.get("vpc_id"), e.get("app")) for e in events]


def contested_in_two_vpcs():
    """api (SCOPE, VPC_A) held SHARED since T0 + 100; at t1 pay (OTHER, VPC_P) claims it too."""
    api = claim(SHARED, "api", "eni-a", "i-a", vpc=VPC_A)
    pay = claim(SHARED, "pay", "eni-p", "i-p", scope=OTHER, vpc=VPC_P)
    first = reconcile_poll(State(), [Observation(SCOPE, [api], T0, T0 + 100),
                                     Observation(OTHER, [], T0, T0 + 100)], [SCOPE, OTHER])
    t1 = T0 + 60_000
    both = reconcile_poll(first.state, [Observation(SCOPE, [api], t1, t1 + 100),
                                        Observation(OTHER, [pay], t1 + 200, t1 + 300)],
                          [SCOPE, OTHER])
    return api, pay, first, both


def test_an_address_two_vpcs_claim_is_nobodys_but_each_vpcs_own_within_it():
    """Default VPCs overlap in every account: the address is nobody's (flows name it alone), but
    a flow logged in a VPC that claims it is that VPC's interface's: VPC_ASSIGN, dated as the
    claimant's ASSIGN would be (pay's after api was last seen, at the end of SCOPE's read); api,
    which held it all along, keeps it within its VPC from its release (before, from the end of
    the read that found the contest: VPC_A was nobody's for up to a poll interval)."""
    api, pay, first, both = contested_in_two_vpcs()
    t1 = T0 + 60_000
    assert both.conflicts == [SHARED]
    assert both.events == [
        unassign_event(SHARED, T0 + 101),
        {"type": "VPC_ASSIGN", "ts": T0 + 101, "ip": SHARED, "vpc_id": VPC_A,
         **api.owner.as_fields()},
        {"type": "VPC_ASSIGN", "ts": t1 + 300, "ip": SHARED, "vpc_id": VPC_P,
         **pay.owner.as_fields()},
        {"type": "HEARTBEAT", "ts": t1}]
    assert both.state.vpc_holdings == {SHARED: {VPC_A: Holding(api.owner, T0 + 101),
                                                VPC_P: Holding(pay.owner, t1 + 300)}}
    # Said once: the next poll that finds the same says nothing.
    t2 = T0 + 120_000
    again = reconcile_poll(both.state, [Observation(SCOPE, [api], t2, t2 + 100),
                                        Observation(OTHER, [pay], t2 + 200, t2 + 300)],
                           [SCOPE, OTHER])
    assert again.events == [{"type": "HEARTBEAT", "ts": t2}]
    # A claimant whose VPC is not known has no VPC claim; two VPCs of one account and region
    # overlap as well.
    unknown = reconcile_poll(State(), [Observation(SCOPE, [claim(SHARED, "api", "eni-a", "i-a")],
                                                   T0, T0 + 100),
                                       Observation(OTHER, [pay], T0, T0 + 100)], [SCOPE, OTHER])
    assert vpc_events(unknown.events) == [("VPC_ASSIGN", T0 + 100, SHARED, VPC_P, "pay"),
                                          ("HEARTBEAT", T0, None, None, None)]
    one_scope = reconcile_poll(State(), [Observation(SCOPE, [
        api, claim(SHARED, "web", "eni-w", "i-w", vpc=VPC_P)], T0, T0 + 100)], [SCOPE])
    assert vpc_events(one_scope.events) == [("VPC_ASSIGN", T0 + 100, SHARED, VPC_A, "api"),
                                            ("VPC_ASSIGN", T0 + 100, SHARED, VPC_P, "web"),
                                            ("HEARTBEAT", T0, None, None, None)]


def test_the_holder_a_contest_finds_has_the_address_within_its_vpc_from_its_release():
    """api held the address all along, in VPC_A: its VPC claim starts at the contest's UNASSIGN
    (after it in ts order; the job keys them apart), not at the end of the read that found the
    contest (VPC_A was nobody's for up to a poll interval). That is just after the previous read
    of api's scope, so after any HEARTBEAT, and after api's ASSIGN; pay's is dated as before."""
    api = claim(SHARED, "api", "eni-a", "i-a", vpc=VPC_A)
    pay = claim(SHARED, "pay", "eni-p", "i-p", scope=OTHER, vpc=VPC_P)
    t1, t2 = T0 + 60_000, T0 + 120_000
    first = reconcile_poll(State(), [Observation(SCOPE, [api], T0, T0 + 100),
                                     Observation(OTHER, [], T0, T0 + 100)], [SCOPE, OTHER])
    quiet = reconcile_poll(first.state, [Observation(SCOPE, [api], t1, t1 + 100),
                                         Observation(OTHER, [], t1, t1 + 100)], [SCOPE, OTHER])
    found = reconcile_poll(quiet.state, [Observation(SCOPE, [api], t2, t2 + 100),
                                         Observation(OTHER, [pay], t2 + 200, t2 + 300)],
                           [SCOPE, OTHER])
    assert vpc_events(found.events) == [("UNASSIGN", t1 + 1, SHARED, None, None),
                                        ("VPC_ASSIGN", t1 + 1, SHARED, VPC_A, "api"),
                                        ("VPC_ASSIGN", t2 + 300, SHARED, VPC_P, "pay"),
                                        ("HEARTBEAT", t2, None, None, None)]
    index = OwnershipIndex()
    for e in first.events + quiet.events + found.events:
        if e["type"] != "HEARTBEAT":
            index.apply(parse_event(json.dumps(e)))
    for t in (t1 + 1, t1 + 50_000, t2 + 299):
        assert index.owner_at(SHARED, t) is None and index.owner_in_vpc(SHARED, VPC_A, t)[0] == "api"
    # An event that gives another interface of api's scope the address in VPC_P: the inventory
    # it changes is as old as the last read, and api may have let go since, unseen (a review):
    # api's VPC claim starts with the event, as web's.
    web = claim(SHARED, "web", "eni-w", "i-w", vpc=VPC_P)
    event = apply_event(quiet.state, SCOPE, [api, web], t1 + 30_000)
    assert vpc_events(event.events) == [("UNASSIGN", t1 + 1, SHARED, None, None),
                                        ("VPC_ASSIGN", t1 + 30_999, SHARED, VPC_A, "api"),
                                        ("VPC_ASSIGN", t1 + 30_999, SHARED, VPC_P, "web")]


def test_a_vpc_that_lets_go_of_a_contested_address_is_unassigned_and_the_one_left_owns_it():
    """pay's VPC no longer claims it: its VPC claim goes as an UNASSIGN would (just after the
    last read that saw it, not before pay took it); api has it from the end of the read that
    showed pay gone, and its VPC claim, from then on the address's own owner's, goes with it."""
    api, pay, _first, both = contested_in_two_vpcs()
    t1, t2 = T0 + 60_000, T0 + 120_000
    left = reconcile_poll(both.state, [Observation(SCOPE, [api], t2, t2 + 100),
                                       Observation(OTHER, [], t2 + 200, t2 + 300)],
                          [SCOPE, OTHER])
    assert vpc_events(left.events) == [("VPC_UNASSIGN", t1 + 301, SHARED, VPC_P, None),
                                       ("VPC_UNASSIGN", t2 + 301, SHARED, VPC_A, None),
                                       ("ASSIGN", t2 + 301, SHARED, None, "api"),
                                       ("HEARTBEAT", t2, None, None, None)]
    assert left.state.vpc_holdings == {} and left.state.contested == {}
    assert left.state.holdings[SHARED] == Holding(api.owner, t2 + 301, VPC_A)
    # Both gone: each VPC claim goes, and the address stays nobody's.
    gone = reconcile_poll(both.state, [Observation(SCOPE, [], t2, t2 + 100),
                                       Observation(OTHER, [], t2 + 200, t2 + 300)],
                          [SCOPE, OTHER])
    assert vpc_events(gone.events) == [("VPC_UNASSIGN", t1 + 1, SHARED, VPC_A, None),
                                       ("VPC_UNASSIGN", t1 + 301, SHARED, VPC_P, None),
                                       ("HEARTBEAT", t2, None, None, None)]
    assert gone.state.vpc_holdings == {} and SHARED not in gone.state.holdings
    # An event that removes api's interface: its VPC's claim goes at the event's time, pay's
    # stays (OTHER is not read), and so does the contest.
    ended = apply_event(both.state, SCOPE, [], t1 + 30_000)
    assert vpc_events(ended.events) == [("VPC_UNASSIGN", t1 + 30_000, SHARED, VPC_A, None)]
    assert ended.state.vpc_holdings == {SHARED: {VPC_P: Holding(pay.owner, t1 + 300)}}


def test_vpc_claims_replayed_into_the_job_index_give_each_vpcs_owner():
    """The contest's changelog parses under the job's contract: within each VPC its claimant's
    owner while the address has none of its own, api's alone once pay's VPC let go."""
    api, _pay, first, both = contested_in_two_vpcs()
    t1, t2 = T0 + 60_000, T0 + 120_000
    left = reconcile_poll(both.state, [Observation(SCOPE, [api], t2, t2 + 100),
                                       Observation(OTHER, [], t2 + 200, t2 + 300)],
                          [SCOPE, OTHER])
    index = OwnershipIndex()
    for event in first.events + both.events + left.events:
        parsed = parse_event(json.dumps(event))
        if parsed.type != "HEARTBEAT":
            index.apply(parsed)

    def owners(t):
        found = (index.owner_at(SHARED, t), index.owner_in_vpc(SHARED, VPC_A, t),
                 index.owner_in_vpc(SHARED, VPC_P, t))
        return tuple(o and o[0] for o in found)

    assert owners(T0 + 100) == ("api", None, None)
    assert owners(T0 + 101) == (None, "api", None)   # released; api's within VPC_A, no gap
    assert owners(t1 + 299) == (None, "api", None)   # pay's VPC claim not yet
    assert owners(t1 + 300) == (None, "api", "pay")
    assert owners(t1 + 301) == (None, "api", None)
    assert owners(t2 + 301) == ("api", None, None)


def test_a_claimants_new_owner_while_contested_is_its_vpcs_from_its_assign_time():
    """Within VPC_A the address goes to web's interface, attached between the reads: VPC_A's
    claim is api's until just after the read that last saw it, then nobody's until web's
    attachment (its second's end), as a move of the address would be."""
    _api, pay, _first, both = contested_in_two_vpcs()
    t1, t2 = T0 + 60_000, T0 + 120_000
    web = claim(SHARED, "web", "eni-w", "i-w", attached_ms=T0 + 90_000, vpc=VPC_A)
    moved = reconcile_poll(both.state, [Observation(SCOPE, [web], t2, t2 + 100),
                                        Observation(OTHER, [pay], t2 + 200, t2 + 300)],
                           [SCOPE, OTHER])
    assert vpc_events(moved.events) == [("VPC_UNASSIGN", t1 + 1, SHARED, VPC_A, None),
                                        ("VPC_ASSIGN", T0 + 90_999, SHARED, VPC_A, "web"),
                                        ("HEARTBEAT", t2, None, None, None)]
    assert moved.events[1] == {"type": "VPC_ASSIGN", "ts": T0 + 90_999, "ip": SHARED,
                               "vpc_id": VPC_A, **web.owner.as_fields()}
    assert moved.conflicts == [SHARED] and SHARED not in moved.state.holdings
    assert moved.state.vpc_holdings[SHARED] == {VPC_A: Holding(web.owner, T0 + 90_999),
                                                VPC_P: Holding(pay.owner, t1 + 300)}


def test_two_owners_claiming_an_address_in_one_vpc_make_it_nobodys_there():
    """Not possible in AWS, but never one picked: VPC_A's claim goes (as a conflict's release,
    just after the last read that saw api alone), and none is written while both claim it."""
    api, pay, first, both = contested_in_two_vpcs()
    t1, t2 = T0 + 60_000, T0 + 120_000
    twice = [api, claim(SHARED, "web", "eni-w", "i-w", vpc=VPC_A)]
    doubled = reconcile_poll(both.state, [Observation(SCOPE, twice, t2, t2 + 100),
                                          Observation(OTHER, [pay], t2 + 200, t2 + 300)],
                             [SCOPE, OTHER])
    assert vpc_events(doubled.events) == [("VPC_UNASSIGN", t1 + 1, SHARED, VPC_A, None),
                                          ("HEARTBEAT", t2, None, None, None)]
    assert doubled.state.vpc_holdings == {SHARED: {VPC_P: Holding(pay.owner, t1 + 300)}}
    fresh = reconcile_poll(first.state, [Observation(SCOPE, twice, t1, t1 + 100),
                                         Observation(OTHER, [pay], t1 + 200, t1 + 300)],
                           [SCOPE, OTHER])
    assert vpc_events(fresh.events) == [("UNASSIGN", T0 + 101, SHARED, None, None),
                                        ("VPC_ASSIGN", t1 + 300, SHARED, VPC_P, "pay"),
                                        ("HEARTBEAT", t1, None, None, None)]
    # A failed scope's VPC claim and a claim read now in the same VPC (a shared VPC's owner and
    # participant): nobody's there either.
    t3 = T0 + 180_000
    shared = reconcile_poll(both.state, [Observation(SCOPE, [api, claim(
        SHARED, "web", "eni-w", "i-w", vpc=VPC_P)], t3, t3 + 100)], [SCOPE, OTHER])
    assert vpc_events(shared.events) == [("VPC_UNASSIGN", t1 + 301, SHARED, VPC_P, None),
                                         ("HEARTBEAT", t1 + 200, None, None, None)]


def test_a_failed_scopes_vpc_claim_is_kept_until_it_is_read_again():
    """OTHER's read fails: pay's VPC claim stays (no VPC_UNASSIGN on missing data), and the
    address stays contested; api's VPC lets go meanwhile. Read again with pay alone, pay has
    the address from the end of that read, and its VPC claim goes then."""
    api, pay, _first, both = contested_in_two_vpcs()
    t1, t2, t3 = T0 + 60_000, T0 + 120_000, T0 + 180_000
    failed = reconcile_poll(both.state, [Observation(SCOPE, [api], t2, t2 + 100)], [SCOPE, OTHER])
    assert vpc_events(failed.events) == [("HEARTBEAT", t1 + 200, None, None, None)]
    assert failed.state.vpc_holdings == both.state.vpc_holdings
    released = reconcile_poll(both.state, [Observation(SCOPE, [], t2, t2 + 100)], [SCOPE, OTHER])
    assert vpc_events(released.events) == [("VPC_UNASSIGN", t1 + 1, SHARED, VPC_A, None),
                                           ("HEARTBEAT", t1 + 200, None, None, None)]
    assert released.state.vpc_holdings == {SHARED: {VPC_P: Holding(pay.owner, t1 + 300)}}
    assert released.state.contested == {SHARED: {SCOPE, OTHER}}
    back = reconcile_poll(released.state, [Observation(SCOPE, [], t3, t3 + 100),
                                           Observation(OTHER, [pay], t3 + 200, t3 + 300)],
                          [SCOPE, OTHER])
    assert vpc_events(back.events) == [("VPC_UNASSIGN", t3 + 300, SHARED, VPC_P, None),
                                       ("ASSIGN", t3 + 300, SHARED, None, "pay"),
                                       ("HEARTBEAT", t3, None, None, None)]
    assert back.state.vpc_holdings == {}


def test_vpc_claims_of_a_write_that_failed_are_written_again():
    """The poll that found the contest failed to write (pay's VPC_ASSIGN may be in the stream);
    the next finds pay gone: each VPC claim that may have landed is taken back, just after it.
    Still contested, each VPC is nobody's from then until its claimant's time (the claim that
    landed may have been of an owner who let go since)."""
    api, pay, first, both = contested_in_two_vpcs()
    t1, t2 = T0 + 60_000, T0 + 120_000
    failed = first.state.write_failed(both.events, both.state.contested)
    assert failed.vpc_uncertain == {SHARED: {VPC_A: {T0 + 101}, VPC_P: {t1 + 300}}}
    left = reconcile_poll(failed, [Observation(SCOPE, [api], t2, t2 + 100),
                                   Observation(OTHER, [], t2 + 200, t2 + 300)], [SCOPE, OTHER])
    assert vpc_events(left.events) == [("VPC_UNASSIGN", T0 + 102, SHARED, VPC_A, None),
                                       ("UNASSIGN", t1 + 301, SHARED, None, None),
                                       ("VPC_UNASSIGN", t1 + 301, SHARED, VPC_P, None),
                                       ("ASSIGN", t2 + 301, SHARED, None, "api"),
                                       ("HEARTBEAT", t2, None, None, None)]
    assert left.state.vpc_uncertain == {} and left.state.uncertain == {}
    # Still contested: each VPC's claim written again, after the failed write (api's too at
    # its claimant's time: the reads whose writes failed may have shown another owner).
    still = reconcile_poll(failed, [Observation(SCOPE, [api], t2, t2 + 100),
                                    Observation(OTHER, [pay], t2 + 200, t2 + 300)],
                           [SCOPE, OTHER])
    assert vpc_events(still.events) == [("VPC_UNASSIGN", T0 + 102, SHARED, VPC_A, None),
                                        ("UNASSIGN", t1 + 301, SHARED, None, None),
                                        ("VPC_UNASSIGN", t1 + 301, SHARED, VPC_P, None),
                                        ("VPC_ASSIGN", t2 + 100, SHARED, VPC_A, "api"),
                                        ("VPC_ASSIGN", t2 + 300, SHARED, VPC_P, "pay"),
                                        ("HEARTBEAT", t2, None, None, None)]


def test_a_failed_writes_vpc_claim_of_a_scope_whose_read_fails_next_waits_for_it():
    """OTHER's read showed bill's interface on the address in VPC_P, and that write failed (a
    VPC_ASSIGN of bill may be in the stream); then OTHER's read fails: pay's claim is kept as
    is, and the failed write's events wait for OTHER. Read again with neither: VPC_P's claim
    goes from just after the last read that saw pay, and after each event that may have
    landed (undoing bill's, whose interface went too)."""
    api, pay, _first, both = contested_in_two_vpcs()
    t1, t2, t3, t4 = (T0 + k * 60_000 for k in (1, 2, 3, 4))
    bill = claim(SHARED, "bill", "eni-b", "i-b", scope=OTHER, vpc=VPC_P)
    moved = reconcile_poll(both.state, [Observation(SCOPE, [api], t2, t2 + 100),
                                        Observation(OTHER, [bill], t2 + 200, t2 + 300)],
                           [SCOPE, OTHER])
    assert vpc_events(moved.events)[:2] == [("VPC_UNASSIGN", t1 + 301, SHARED, VPC_P, None),
                                            ("VPC_ASSIGN", t2 + 300, SHARED, VPC_P, "bill")]
    failed = both.state.write_failed(moved.events, moved.state.contested)
    waiting = reconcile_poll(failed, [Observation(SCOPE, [api], t3, t3 + 100)], [SCOPE, OTHER])
    assert vpc_events(waiting.events) == [("UNASSIGN", t2 + 301, SHARED, None, None),
                                          ("HEARTBEAT", t1 + 200, None, None, None)]
    assert waiting.state.vpc_holdings == both.state.vpc_holdings
    assert waiting.state.vpc_uncertain == {SHARED: {VPC_P: {t1 + 301, t2 + 300}}}
    gone = reconcile_poll(waiting.state, [Observation(SCOPE, [api], t4, t4 + 100),
                                          Observation(OTHER, [], t4 + 200, t4 + 300)],
                          [SCOPE, OTHER])
    assert vpc_events(gone.events) == [("VPC_UNASSIGN", t1 + 301, SHARED, VPC_P, None),
                                       ("VPC_UNASSIGN", t1 + 302, SHARED, VPC_P, None),
                                       ("VPC_UNASSIGN", t2 + 301, SHARED, VPC_P, None),
                                       ("VPC_UNASSIGN", t4 + 301, SHARED, VPC_A, None),
                                       ("ASSIGN", t4 + 301, SHARED, None, "api"),
                                       ("HEARTBEAT", t4, None, None, None)]
    assert gone.state.vpc_uncertain == {} and gone.state.vpc_holdings == {}


def test_a_vpc_claim_undone_by_an_event_is_not_written_again_before_the_undo():
    """pay (OTHER, VPC_P) holds the address; the poll that finds api (SCOPE, VPC_A, attached
    between the reads) on it too, while OTHER's read fails, fails to write: api's VPC_ASSIGN may
    be in the stream. An event of SCOPE, whose inventory is the one before that poll (no api),
    undoes it just after its ts. The next poll finds api again: its VPC_ASSIGN goes after that
    VPC_UNASSIGN (before, at api's own time, before it: the job, ordering by ts, left VPC_A
    nobody's until its next change)."""
    pay = claim(SHARED, "pay", "eni-p", "i-p", scope=OTHER, vpc=VPC_P)
    api = claim(SHARED, "api", "eni-a", "i-a", attached_ms=T0 + 50_000, vpc=VPC_A)
    first = reconcile_poll(State(), [Observation(SCOPE, [], T0, T0 + 100),
                                     Observation(OTHER, [pay], T0, T0 + 100)], [SCOPE, OTHER])
    t1, t2 = T0 + 60_000, T0 + 120_000
    found = reconcile_poll(first.state, [Observation(SCOPE, [api], t1, t1 + 100)], [SCOPE, OTHER])
    assert vpc_events(found.events) == [("UNASSIGN", T0 + 101, SHARED, None, None),
                                        ("VPC_ASSIGN", T0 + 50_999, SHARED, VPC_A, "api")]
    failed = first.state.write_failed(found.events, found.state.contested)
    undone = apply_event(failed, SCOPE, [], t1 + 30_000)
    assert vpc_events(undone.events) == [("VPC_UNASSIGN", T0 + 51_000, SHARED, VPC_A, None)]
    again = reconcile_poll(undone.state, [Observation(SCOPE, [api], t2, t2 + 100)],
                           [SCOPE, OTHER])
    assert vpc_events(again.events) == [("UNASSIGN", T0 + 51_000, SHARED, None, None),
                                        ("VPC_ASSIGN", T0 + 51_001, SHARED, VPC_A, "api")]
    index = OwnershipIndex()
    for e in first.events + found.events + undone.events + again.events:
        if e["type"] != "HEARTBEAT":
            index.apply(parse_event(json.dumps(e)))
    assert index.owner_in_vpc(SHARED, VPC_A, t2 + 100)[0] == "api"


def test_vpc_claims_go_through_a_snapshot_and_resume_exactly(tmp_path, caplog):
    """A snapshot holds the VPC claims (VPC_ASSIGN: the job starts from them too), and its
    clocks the VPCs of a failed write: a resumed publisher goes on as the one that took it.
    Clocks written before VPC claims (no vpc_uncertain) still load."""
    api, pay, _first, both = contested_in_two_vpcs()
    t2 = T0 + 120_000
    snap = str(tmp_path / "snapshot.jsonl")
    cli.snapshot_writer(config_for(), None, snap)(both.state)
    assert [(e["type"], e.get("vpc_id")) for e in map(json.loads, open(snap))] == [
        ("VPC_ASSIGN", VPC_A), ("VPC_ASSIGN", VPC_P)]
    resumed = cli._read_snapshot(snap, None)
    assert resumed.vpc_holdings == both.state.vpc_holdings
    assert resumed.contested == both.state.contested
    reads = [Observation(SCOPE, [api], t2, t2 + 100), Observation(OTHER, [], t2 + 200, t2 + 300)]
    assert reconcile_poll(resumed, reads, [SCOPE, OTHER]).events == \
        reconcile_poll(both.state, reads, [SCOPE, OTHER]).events
    failed = both.state.write_failed([{"type": "VPC_UNASSIGN", "ts": t2, "ip": SHARED,
                                       "vpc_id": VPC_P}])
    cli.snapshot_writer(config_for(), None, snap)(failed)
    assert cli._read_snapshot(snap, None).vpc_uncertain == {SHARED: {VPC_P: {t2}}}
    older = {k: v for k, v in json.loads(open(clocks_path(snap)).read()).items()
             if k != "vpc_uncertain"}
    with open(clocks_path(snap), "w") as fh:
        json.dump(older, fh)
    caplog.clear()
    with caplog.at_level("WARNING"):
        state = cli._read_snapshot(snap, None)
    assert caplog.text == "" and state.polled_ms == both.state.polled_ms
    assert state.vpc_uncertain == {} and state.vpc_holdings == both.state.vpc_holdings
    # A VPC id not as AWS writes it (hand-edited): clocks not read, as for any bad value; the
    # job would refuse the VPC_UNASSIGN the publisher wrote of it.
    with open(clocks_path(snap), "w") as fh:
        json.dump({**older, "vpc_uncertain": {SHARED: {"VPC_A": [t2]}}}, fh)
    caplog.clear()
    with caplog.at_level("WARNING"):
        state = cli._read_snapshot(snap, None)
    assert "VPC_A" in caplog.text and state.vpc_uncertain == {}


def test_an_interfaces_vpc_comes_with_its_claims():
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", "10.0.0.6", vpc="vpc-11111111"),
                                       eni("eni-b", "10.0.0.7")])
    assert [(c.ip, c.vpc_id) for c in derive_claims(inv, NAMING)] == [
        ("10.0.0.5", "vpc-11111111"), ("10.0.0.6", "vpc-11111111"), ("10.0.0.7", None)]
    created = parse_line(bridge("CreateNetworkInterface", "2026-01-01T00:00:00Z", response={
        "networkInterface": {"networkInterfaceId": "eni-c", "vpcId": "vpc-22222222",
                             "privateIpAddress": "10.0.0.8"}}))
    changed = apply_change(Inventory(SCOPE), created[0])
    assert [(c.ip, c.vpc_id) for c in derive_claims(changed, NAMING)] == [
        ("10.0.0.8", "vpc-22222222")]


def test_a_poll_counts_and_says_its_vpc_claims():
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", SHARED, vpc=VPC_A),
                                       eni("eni-b", SHARED, vpc=VPC_P)])
    sink, logged = ListSink(), []
    result = Publisher(config_for(), InventoryReader({SCOPE: inv}), sink, lambda: T0,
                       log=logged.append).poll()
    assert (result.assigned, result.vpc_assigned, result.heartbeat_ms) == (0, 2, T0)
    assert describe(result) == ("poll: 0 assigned, 0 unassigned (within VPCs: 2 assigned, "
                                f"0 unassigned), heartbeat {T0}, in 0.0 s")
    assert "but within each claimant's VPC" in logged[0]


def test_an_event_that_ends_a_one_account_contest_leaves_it_to_the_next_poll():
    """api (VPC_A) and web (VPC_P) of one account claim the address; an event removes api's
    interface. The inventory the event changes is as old as the last read: web may have let go
    unseen since (and pay, of OTHER, taken it in VPC_P), so web does not get the address, nor
    keep its VPC claim, on the event's word: the contest stays until a poll reads every
    claimant. Here the poll shows web gone: its VPC claim goes from just after the last read
    that saw it, and pay has the address from the end of the read that showed it."""
    api = claim(SHARED, "api", "eni-a", "i-a", vpc=VPC_A)
    web = claim(SHARED, "web", "eni-w", "i-w", vpc=VPC_P)
    pay = claim(SHARED, "pay", "eni-p", "i-p", scope=OTHER, vpc=VPC_P)
    first = reconcile_poll(State(), [Observation(SCOPE, [api, web], T0, T0 + 100),
                                     Observation(OTHER, [], T0 + 100, T0 + 200)], [SCOPE, OTHER])
    assert first.state.contested == {SHARED: {SCOPE}}
    event = apply_event(first.state, SCOPE, [web], T0 + 10_000)
    assert vpc_events(event.events) == [("VPC_UNASSIGN", T0 + 10_000, SHARED, VPC_A, None)]
    assert event.state.contested == {SHARED: {SCOPE}} and SHARED not in event.state.holdings
    assert event.state.vpc_holdings == {SHARED: {VPC_P: Holding(web.owner, T0 + 100)}}
    t1 = T0 + 60_000
    polled = reconcile_poll(event.state, [Observation(SCOPE, [], t1, t1 + 100),
                                          Observation(OTHER, [pay], t1 + 100, t1 + 200)],
                            [SCOPE, OTHER])
    assert vpc_events(polled.events) == [("VPC_UNASSIGN", T0 + 101, SHARED, VPC_P, None),
                                         ("ASSIGN", t1 + 200, SHARED, None, "pay"),
                                         ("HEARTBEAT", t1, None, None, None)]
    index = OwnershipIndex()
    for e in first.events + event.events + polled.events:
        if e["type"] != "HEARTBEAT":
            index.apply(parse_event(json.dumps(e)))
    for t in (T0 + 900, T0 + 10_998, t1):   # pay's from T0 + 900: never web's
        assert index.owner_at(SHARED, t) is None
        assert index.owner_in_vpc(SHARED, VPC_P, t) is None


def test_a_snapshot_without_clocks_keeps_its_contests_and_a_failed_scopes_vpc_claim():
    """Resumed from the snapshot alone (no clocks beside it), the VPC_ASSIGNs name the
    claimants: the address stays contested among their scopes. OTHER's first read fails: pay's
    VPC claim is kept (no VPC_UNASSIGN on missing data), and api does not get the address."""
    api, pay, _first, both = contested_in_two_vpcs()
    resumed = state_from_snapshot(json.loads(json.dumps(snapshot_events(both.state))), T0 + 61_000)
    assert resumed.contested == {SHARED: {SCOPE, OTHER}}
    t2 = T0 + 120_000
    failed = reconcile_poll(resumed, [Observation(SCOPE, [api], t2, t2 + 100)], [SCOPE, OTHER])
    assert failed.events == []   # OTHER not read since: no HEARTBEAT either
    assert failed.state.vpc_holdings == both.state.vpc_holdings
    assert failed.state.contested == {SHARED: {SCOPE, OTHER}}
    # A VPC claim of a scope not read now is kept, contested or not (as its owners are).
    loose = dataclasses.replace(resumed, contested={})
    kept = reconcile_poll(loose, [Observation(SCOPE, [], t2, t2 + 100)], [SCOPE, OTHER])
    assert vpc_events(kept.events) == [("VPC_UNASSIGN", T0 + 61_001, SHARED, VPC_A, None)]
    assert kept.state.vpc_holdings == {SHARED: {VPC_P: Holding(pay.owner, T0 + 60_300)}}


def test_events_after_a_poll_whose_write_failed_wait_for_the_next_poll():
    """The poll that found y on the address (x's before) failed to write: its state is not
    kept, and neither is the inventory it read, nor the one before (x's, which an event would
    change as if y had not taken the address: x's ASSIGN again). The scope's events wait for the
    next poll; as do those after an event whose write failed (its inventory lacks that change)."""
    x = Inventory(SCOPE, interfaces=[eni("eni-x", "10.0.0.5")])
    y = Inventory(SCOPE, interfaces=[eni("eni-y", "10.0.0.5")])

    class Failing(ListSink):
        fail = False

        def write(self, events):
            if self.fail:
                raise SinkError("throttled")
            super().write(events)

    sink, now = Failing(), [T0]
    reader = InventoryReader({SCOPE: x})
    publisher = Publisher(config_for(), reader, sink, lambda: now[0])
    publisher.poll()
    now[0], reader.inventories[SCOPE], sink.fail = T0 + 60_000, y, True
    with pytest.raises(SinkError):
        publisher.poll()
    sink.fail = False
    created = bridge("CreateNetworkInterface", "2026-01-01T00:01:05Z", response={
        "networkInterface": {"networkInterfaceId": "eni-n", "privateIpAddress": "10.0.0.9"}})
    result = publisher.apply_events([created])
    assert (result.applied, result.deferred) == (0, 1)
    assert [e["type"] for e in sink.events] == ["ASSIGN", "HEARTBEAT"]   # the first poll's
    # An event whose write fails: the scope's later events wait too.
    now[0] = T0 + 120_000
    publisher.poll()
    sink.fail = True
    with pytest.raises(SinkError):
        publisher.apply_events([bridge("CreateNetworkInterface", "2026-01-01T00:02:05Z", response={
            "networkInterface": {"networkInterfaceId": "eni-n", "privateIpAddress": "10.0.0.9"}})])
    sink.fail = False
    result = publisher.apply_events([bridge("DeleteNetworkInterface", "2026-01-01T00:02:06Z",
                                            request={"networkInterfaceId": "eni-y"})])
    assert (result.applied, result.deferred) == (0, 1)


@pytest.mark.parametrize("vpc_id", ["vpc-XYZ", "vpc-0AAAAAAAAAAAAAAAA", "vpc-123456789", "VPC_A", 7])
def test_a_snapshots_vpc_id_is_one_as_aws_writes_it(vpc_id):
    """As the job takes them (bad_vpc_id otherwise): vpc- and 8 or 17 lowercase hex digits."""
    event = vpc_assign_event(SHARED, VPC_A, T0, claim(SHARED, "api", "eni-a", "i-a").owner)
    assert state_from_snapshot([event]).vpc_holdings[SHARED].keys() == {VPC_A}
    assert state_from_snapshot([{**event, "vpc_id": "vpc-0123abcd"}]).contested == {SHARED: {SCOPE}}
    with pytest.raises(ValueError, match=r"not a VPC id as AWS writes them \(vpc- and 8 or 17"):
        state_from_snapshot([{**event, "vpc_id": vpc_id}])


def test_an_owner_seen_again_after_a_failed_release_has_no_address_in_between():
    """A poll saw api's address released, its write failed and nothing of it landed; the next
    poll saw api hold it again. The release was never written: api owned the address
    throughout in the changelog, over a span a read had shown it let go (a review)."""
    ip = "10.0.0.5"
    api = claim(ip, "api", "eni-a", "i-a")
    t1, t2 = T0 + 60_000, T0 + 120_000
    first = reconcile_poll(State(), [Observation(SCOPE, [api], T0, T0 + 100)], [SCOPE])
    gone = reconcile_poll(first.state, [Observation(SCOPE, [], t1, t1 + 100)], [SCOPE])
    assert types_ts_ips(gone.events)[0] == ("UNASSIGN", T0 + 101, ip, None)
    back = reconcile_poll(first.state.write_failed(gone.events),
                          [Observation(SCOPE, [api], t2, t2 + 100)], [SCOPE])
    assert types_ts_ips(back.events) == [("UNASSIGN", T0 + 102, ip, None),
                                         ("ASSIGN", t2 + 100, ip, "api"),
                                         ("HEARTBEAT", t2, None, None)]
    index = OwnershipIndex()
    for e in first.events + back.events:
        if e["type"] != "HEARTBEAT":
            index.apply(parse_event(json.dumps(e)))
    assert index.owner_at(ip, t1 + 30_000) is None and index.owner_at(ip, t2 + 100)[0] == "api"
    # Seen again with no write failed: nothing to say but the HEARTBEAT.
    again = reconcile_poll(back.state, [Observation(SCOPE, [api], t2 + 60_000, t2 + 60_100)],
                           [SCOPE])
    assert types_ts_ips(again.events) == [("HEARTBEAT", t2 + 60_000, None, None)]


def test_a_poll_frees_at_its_end_the_cycles_that_became_garbage_while_it_ran():
    """A poll keeps the objects made before it out of the collector's passes; frozen at every
    poll and never collected, cycles of garbage among them would add up."""
    class Node:
        pass
    node = Node()
    node.itself = node
    gone = weakref.ref(node)
    with old_objects_frozen():
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert gone() is not None
    assert gone() is None and gc.get_freeze_count() == 0


def test_an_event_time_without_a_zone_is_refused_not_read_in_the_hosts(monkeypatch):
    """AWS ends its event times in Z; one without a zone was read in the host's, hours off
    under TZ=America/New_York (a review). It is an unreadable line, said and counted, as other
    bad events are; times with Z or an offset are read as ever."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        for at in ("2026-01-01T00:01:00Z", "2026-01-01T05:01:00+05:00"):
            assert parse_line(bridge("RunInstances", at, response=RUN))[0].at_ms == T0 + 60_000
        inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                        instance_tags={"i-a": {"aws:autoscaling:groupName": "api-prod-v001"}})
        said = []
        publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), ListSink(),
                              lambda: T0, log=said.append)
        publisher.poll()
        said.clear()
        naive = bridge("RunInstances", "2026-01-01T00:01:00", response=RUN)
        result = publisher.apply_events([naive])
        assert (result.bad, result.applied) == (1, 0)
        assert said == ["unreadable event line (event time '2026-01-01T00:01:00' names no time "
                        "zone (AWS ends it in Z)): " + naive[:200]]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_bad_record_of_a_cloudtrail_log_object_is_passed_over_alone():
    """A CloudTrail log object ({"Records": [...]}, one line) with one record whose eventTime
    names no zone was unreadable whole: its other records' changes were left to the next poll
    (a review). The bad records are counted unreadable and said in one line with the first's
    error; the others are applied."""
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                    instance_tags={"i-a": {"aws:autoscaling:groupName": "api-prod-v001"}})
    said = []
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), ListSink(), lambda: T0,
                          log=said.append)
    publisher.poll()
    said.clear()
    run = json.loads(bridge("RunInstances", "2026-01-01T00:01:00Z", response=RUN))["detail"]
    naive = {**run, "eventTime": "2026-01-01T00:01:00"}
    trail = json.dumps({"Records": [naive, run, "junk"]})
    result = publisher.apply_events([trail])
    assert (result.bad, result.applied, result.assigned) == (2, 1, 1)
    assert said == ["2 unreadable record(s) of a CloudTrail log object passed over (the "
                    "first: event time '2026-01-01T00:01:00' names no time zone (AWS ends it "
                    "in Z)): " + trail[:200]]


def test_a_cloudtrail_log_object_of_bad_records_only_is_one_unreadable_line():
    """Since bad records are passed over alone (dbbed82), an object none of whose records reads
    was counted unreadable once a record: 5,000 junk records, 5,000 unreadable, where one
    whose Records are no list is one (a review). Such an object is not the log object it looks
    like: one unreadable line, said so; an object some of whose records read, even records of
    calls that change nothing, still counts its bad ones each."""
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")])
    said = []
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), ListSink(), lambda: T0,
                          log=said.append)
    publisher.poll()
    said.clear()
    naive = json.loads(bridge("TerminateInstances", "2026-01-01T00:01:00",
                              request={"instancesSet": {"items": [{"instanceId": "i-a"}]}}))
    naive = {**naive["detail"], "recipientAccountId": ACCOUNT, "awsRegion": "us-east-1"}
    for records, first in ((["junk"] * 5000, "a record that is not a JSON object"),
                           ([naive, 7], "event time '2026-01-01T00:01:00' names no time zone "
                                        "(AWS ends it in Z)")):
        trail = json.dumps({"Records": records})
        result = publisher.apply_events([trail])
        assert (result.bad, result.applied) == (1, 0)
        assert said == [f"unreadable event line (none of its {len(records):,} record(s) "
                        f"readable as CloudTrail's (the first: {first})): {trail[:200]}"]
        said.clear()
    described = {**naive, "eventName": "DescribeInstances"}
    trail = json.dumps({"Records": [described, "junk", 7]})
    result = publisher.apply_events([trail])
    assert (result.bad, result.applied) == (2, 0)
    assert said == ["2 unreadable record(s) of a CloudTrail log object passed over (the "
                    "first: a record that is not a JSON object): " + trail[:200]]
    assert publisher.apply_events(['{"Records": []}']).counted is False


def test_an_integer_of_more_digits_than_int_reads_refuses_its_record_alone():
    """json.loads refused a line holding an integer of 5,000 digits anywhere ('Exceeds the
    limit (4300 digits)'), said 'not JSON': a CloudTrail log object's every record with it, its
    changes left to the next poll, as the job's envelopes lost theirs before 338f659 (a
    review). The record holding one is passed over alone and said so; one in a key beside
    Records is ignored; an event line of one is one unreadable line, said so."""
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                    instance_tags={"i-a": {"aws:autoscaling:groupName": "api-prod-v001"}})
    said = []
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), ListSink(), lambda: T0,
                          log=said.append)
    publisher.poll()
    said.clear()
    digits = "9" * 5000
    run = json.loads(bridge("RunInstances", "2026-01-01T00:01:00Z", response=RUN))["detail"]
    trail = (json.dumps({"Records": [{**run, "eventID": "LONG"}, run], "note": "NOTE"})
             .replace('"LONG"', digits).replace('"NOTE"', "-" + digits))
    result = publisher.apply_events([trail])
    assert (result.bad, result.applied, result.assigned) == (1, 1, 1)
    assert said == ["1 unreadable record(s) of a CloudTrail log object passed over (the "
                    "first: a record holding an integer of more than 4,300 digits): "
                    + trail[:200]]
    said.clear()
    line = bridge("TerminateInstances", "2026-01-01T00:02:00Z").replace("{", '{"n": %s, ' % digits, 1)
    assert (publisher.apply_events([line]).bad, said) == (
        1, ["unreadable event line (an integer of more than 4,300 digits): " + line[:200]])
    with pytest.raises(EventError, match="^not JSON$"):
        parse_line('{"Records": [%s], x}' % digits)


@pytest.mark.parametrize("part, value", [("requestParameters", "eni-x"),
                                         ("userIdentity", "someone")])
def test_a_record_holding_a_part_that_is_not_an_object_is_passed_over_alone(part, value):
    """A CloudTrail log object's record whose requestParameters or userIdentity was a string
    (where CloudTrail writes an object) raised AttributeError, not EventError: the whole object was unreadable, its good record's
    change left to the next poll, as before bad records were passed over alone (a review)."""
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a")],
                    instance_tags={"i-a": {"aws:autoscaling:groupName": "api-prod-v001"}})
    said = []
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), ListSink(), lambda: T0,
                          log=said.append)
    publisher.poll()
    said.clear()
    run = json.loads(bridge("RunInstances", "2026-01-01T00:01:00Z", response=RUN))["detail"]
    odd = {"eventName": "TerminateInstances", "eventTime": "2026-01-01T00:01:00Z",
           "awsRegion": SCOPE.region, "recipientAccountId": SCOPE.account,
           "requestParameters": {"instancesSet": {"items": [{"instanceId": "i-a"}]}}}
    odd[part] = value
    if part == "userIdentity":
        del odd["recipientAccountId"]
    trail = json.dumps({"Records": [odd, run]})
    result = publisher.apply_events([trail])
    assert (result.bad, result.applied, result.assigned) == (1, 1, 1)
    assert said == ["1 unreadable record(s) of a CloudTrail log object passed over (the "
                    "first: TerminateInstances: a part of it is not a JSON object): "
                    + trail[:200]]


@pytest.mark.parametrize("records", ["x" * 500, {"a": 1, "b": 2}, None, 7])
def test_a_cloudtrail_log_object_whose_records_are_not_a_list_is_one_unreadable_line(records):
    """Records that are no list are no records: a string of 500 characters was counted 500
    unreadable records, each character one, and an object each of its keys (a review). The
    object is one unreadable line, said once, as before records were passed over alone."""
    said = []
    publisher = Publisher(config_for(), InventoryReader({SCOPE: Inventory(SCOPE)}), ListSink(),
                          lambda: T0, log=said.append)
    publisher.poll()
    said.clear()
    line = json.dumps({"Records": records})
    result = publisher.apply_events([line])
    assert (result.bad, result.applied) == (1, 0)
    assert said == [f"unreadable event line (Records is not a list): {line[:200]}"]


def test_a_bad_value_of_thousands_of_characters_is_quoted_cut_short(tmp_path):
    """An event's time, a snapshot's value, a configured account were quoted whole in their
    one-line errors: thousands of characters said and logged (a review). Each is cut to 40
    characters, then its length (schemas.settings.quoted)."""
    long = "x" * 5000
    cut = "'" + "x" * 39 + "... (5,002 characters)"
    for at in (long, "2026-01-01T00:01:00" + " " * 5000):
        with pytest.raises(EventError) as err:
            parse_line(bridge("RunInstances", at, response=RUN))
        assert len(str(err.value)) < 120 and "characters)" in str(err.value), str(err.value)
    with pytest.raises(EventError, match=re.escape(f"bad event time {cut}") + "$"):
        parse_line(bridge("RunInstances", long, response=RUN))
    good = {"type": "ASSIGN", "ts": T0, "ip": "10.0.0.8", "app": "a", "cluster": "c", "asg": "-",
            "account": ACCOUNT, "region": "us-east-1", "zone": "us-east-1a", "eni_id": "eni-y",
            "resource_id": "i-y", "resource_kind": "instance"}
    assert state_from_snapshot([good]).holdings
    for change, said in (({"type": long}, "a snapshot holds only ASSIGN and VPC_ASSIGN events, "
                                          f"found {cut}"),
                         ({"app": [long]}, f"app ['{'x' * 38}... (5,004 characters) is not text"),
                         ({"ip": long}, f"ip {cut} is not an address as written"),
                         ({"ts": long}, f"{cut} is not an integer time"),
                         ({"type": "VPC_ASSIGN", "vpc_id": long},
                          f"vpc_id {cut} is not a VPC id as AWS writes them")):
        with pytest.raises(ValueError, match="^" + re.escape(said)):
            state_from_snapshot([{**good, **change}])
    base = {"regions": ["us-east-1"], "output": {"path": "o"}}
    for accounts, said in (([[long]], f"accounts[0]: expected an account id or a mapping with "
                                      f"id, role_arn, regions, got ['{'x' * 38}... (5,004 "
                                      f"characters)"),
                           (long, f"accounts: expected a list of accounts, got {cut}")):
        with pytest.raises(publisher_config.ConfigError, match="^" + re.escape(said)):
            publisher_config.from_dict({**base, "accounts": accounts})


def test_an_assign_names_its_interfaces_vpc_when_the_claim_knows_it():
    """The job gives a default-format line (no vpc-id) its interface's VPC: every ASSIGN whose
    claim knows it says it (interface_vpc_id), from a poll and from an event, whether or not
    the address is contested; none when not known. The job reads it, and the owner is the
    same as without it."""
    first = reconcile_poll(State(), [Observation(SCOPE, [
        claim("10.0.0.5", "api", "eni-a", "i-a", vpc=VPC_A),
        claim("10.0.0.6", "db", "eni-b", "i-b")], T0, T0 + 100)], [SCOPE])
    assigns = {e["ip"]: e for e in first.events if e["type"] == "ASSIGN"}
    assert assigns["10.0.0.5"] == {**assign_event("10.0.0.5", T0 + 100, claim(
        "10.0.0.5", "api", "eni-a", "i-a").owner), "interface_vpc_id": VPC_A}
    assert "interface_vpc_id" not in assigns["10.0.0.6"]
    assert first.state.holdings["10.0.0.5"] == Holding(
        claim("10.0.0.5", "api", "eni-a", "i-a").owner, T0 + 100, VPC_A)
    assert first.state.holdings["10.0.0.6"].vpc_id is None
    event = apply_event(first.state, SCOPE, [claim("10.0.0.5", "api", "eni-a", "i-a", vpc=VPC_A),
                                             claim("10.0.0.6", "db", "eni-b", "i-b"),
                                             claim("10.0.0.7", "web", "eni-c", "i-c", vpc=VPC_P)],
                        T0 + 30_000)
    assert [(e["ip"], e.get("interface_vpc_id")) for e in event.events] == [("10.0.0.7", VPC_P)]
    parsed = parse_event(json.dumps(assigns["10.0.0.5"]))
    assert parsed.interface_vpc_id == VPC_A
    assert parsed.owner == parse_event(json.dumps(assign_event(
        "10.0.0.5", T0 + 100, claim("10.0.0.5", "api", "eni-a", "i-a").owner))).owner


def test_a_snapshot_keeps_each_owners_interface_vpc_and_refuses_one_that_is_not_a_vpc_id():
    first = reconcile_poll(State(), [Observation(SCOPE, [
        claim("10.0.0.5", "api", "eni-a", "i-a", vpc=VPC_A),
        claim("10.0.0.6", "db", "eni-b", "i-b")], T0, T0 + 100)], [SCOPE])
    snapshot = json.loads(json.dumps(snapshot_events(first.state)))
    assert [e.get("interface_vpc_id") for e in snapshot] == [VPC_A, None]
    assert state_from_snapshot(snapshot, T0 + 200).holdings == first.state.holdings
    with pytest.raises(ValueError, match="^interface_vpc_id 'vpc-1' is not a VPC id"):
        state_from_snapshot([{**snapshot[0], "interface_vpc_id": "vpc-1"}])


def test_a_resumed_snapshot_without_interface_vpcs_writes_each_owner_again_with_its_vpc_once():
    """A snapshot of an earlier release names no VPC: resumed, each owner whose claim knows it
    is written again, after the snapshot's time (a change the job takes in time), with it; its
    owner unchanged. Once: the next poll writes nothing; nor for a claim without a VPC, nor
    while no owner is being assigned (an event in the second its scope's read began)."""
    first = reconcile_poll(State(), [Observation(SCOPE, [
        claim("10.0.0.5", "api", "eni-a", "i-a", T0 - 60_000, vpc=VPC_A),
        claim("10.0.0.6", "db", "eni-b", "i-b")], T0, T0 + 100)], [SCOPE])
    old = [{k: v for k, v in e.items() if k != "interface_vpc_id"}
           for e in json.loads(json.dumps(snapshot_events(first.state)))]
    resumed = state_from_snapshot(old, T0 + 200)
    assert {h.vpc_id for h in resumed.holdings.values()} == {None}
    claims = [claim("10.0.0.5", "api", "eni-a", "i-a", T0 - 60_000, vpc=VPC_A),
              claim("10.0.0.6", "db", "eni-b", "i-b")]
    in_second = apply_event(resumed, SCOPE, claims, T0 + 200)
    assert [e["type"] for e in in_second.events] == []
    t1 = T0 + 60_000
    again = reconcile_poll(resumed, [Observation(SCOPE, claims, t1, t1 + 100)], [SCOPE])
    assert again.events == [
        {**assign_event("10.0.0.5", t1 + 100, claims[0].owner), "interface_vpc_id": VPC_A},
        {"type": "HEARTBEAT", "ts": t1}]
    assert again.state.holdings["10.0.0.5"] == Holding(
        claims[0].owner, t1 + 100, VPC_A, first.state.holdings["10.0.0.5"].since_ms)
    t2 = T0 + 120_000
    assert reconcile_poll(again.state, [Observation(SCOPE, claims, t2, t2 + 100)],
                          [SCOPE]).events == [{"type": "HEARTBEAT", "ts": t2}]


def test_an_owner_whose_claim_no_longer_names_its_vpc_is_not_written_again():
    """An ASSIGN is written again only when its VPC is newly known: a poll whose claim names
    none (AWS gave no VpcId this time) writes nothing for an owner known with one, which keeps
    it (a review's mutant wrote the owner again without its VPC)."""
    claims = [claim("10.0.0.5", "api", "eni-a", "i-a", T0 - 60_000, vpc=VPC_A)]
    first = reconcile_poll(State(), [Observation(SCOPE, claims, T0, T0 + 100)], [SCOPE])
    t1 = T0 + 60_000
    later = reconcile_poll(first.state, [Observation(SCOPE, [
        claim("10.0.0.5", "api", "eni-a", "i-a", T0 - 60_000)], t1, t1 + 100)], [SCOPE])
    assert later.events == [{"type": "HEARTBEAT", "ts": t1}]
    assert later.state.holdings["10.0.0.5"] == first.state.holdings["10.0.0.5"]


def test_an_owner_written_again_with_its_vpc_is_dated_in_a_snapshot_when_it_took_the_address():
    """The owner a resumed snapshot of an earlier release held is written again with its VPC
    at the first poll, but it took the address long before: a later snapshot dates it then, so
    a job started from that snapshot attributes its flows before the upgrade (a review: dated
    at the upgrade's poll, they were unattributed, every owner that had not changed since).
    Resumed from that snapshot, with its clocks or without, the address's next change is
    still after the ASSIGN written again, as before."""
    first = reconcile_poll(State(), [Observation(SCOPE, [
        claim("10.0.0.5", "api", "eni-a", "i-a", T0 - 60_000, vpc=VPC_A)], T0, T0 + 100)],
        [SCOPE])
    took = first.state.holdings["10.0.0.5"].since_ms
    old = [{k: v for k, v in e.items() if k != "interface_vpc_id"}
           for e in json.loads(json.dumps(snapshot_events(first.state)))]
    claims = [claim("10.0.0.5", "api", "eni-a", "i-a", T0 - 60_000, vpc=VPC_A)]
    # The earlier release's clocks (version 1) are read.
    old_clocks = {**json.loads(json.dumps(state_clocks(first.state))), "version": 1}
    old_clocks.pop("written", None)
    upgraded = state_from_snapshot(old, T0 + 200, old_clocks)
    assert upgraded.polled_ms == {SCOPE: T0}
    t1 = T0 + 60_000
    again = reconcile_poll(upgraded, [Observation(SCOPE, claims, t1, t1 + 100)], [SCOPE])
    assert [(e["type"], e["ts"]) for e in again.events] == [("ASSIGN", t1 + 100),
                                                          ("HEARTBEAT", t1)]
    snapshot = json.loads(json.dumps(snapshot_events(again.state)))
    assert snapshot == [{**assign_event("10.0.0.5", took, claims[0].owner),
                         "interface_vpc_id": VPC_A}]
    index = OwnershipIndex()
    index.apply(parse_event(json.dumps(snapshot[0])))
    assert index.owner_at("10.0.0.5", took)[0] == "api"
    clocks = json.loads(json.dumps(state_clocks(again.state)))
    t2 = T0 + 120_000
    for resumed in (state_from_snapshot(snapshot, t1 + 200, clocks),
                    state_from_snapshot(snapshot, t1 + 200)):
        gone = reconcile_poll(resumed, [Observation(SCOPE, [], t2, t2 + 100)], [SCOPE])
        assert [e["type"] for e in gone.events] == ["UNASSIGN", "HEARTBEAT"]
        assert gone.events[0]["ts"] > t1 + 100
        kept = reconcile_poll(resumed, [Observation(SCOPE, claims, t2, t2 + 100)], [SCOPE])
        assert kept.events == [{"type": "HEARTBEAT", "ts": t2}]
        assert snapshot_events(kept.state) == snapshot
    # An event of the scope before the first poll writes it again too, dated as the event's
    # changes are; the snapshot still dates the owner when it took the address.
    event = apply_event(upgraded, SCOPE, claims, T0 + 30_000)
    assert event.events == [{**assign_event("10.0.0.5", T0 + 30_999, claims[0].owner),
                             "interface_vpc_id": VPC_A}]
    assert [e["ts"] for e in snapshot_events(event.state)] == [took]


def replayed(events) -> OwnershipIndex:
    """The job's index of a changelog's owners."""
    index = OwnershipIndex()
    for e in events:
        if e["type"] != "HEARTBEAT":
            index.apply(parse_event(json.dumps(e)))
    return index


def resource_at(index: OwnershipIndex, ip: str, ms: int):
    """The resource id of the address's owner at `ms`, None if nobody's."""
    found = index.owner_at(ip, ms)
    return found and found[7]


def test_an_event_dates_only_the_addresses_it_knows_an_interface_holds():
    """eni-x (api's second interface, 10.0.0.5 its primary, 10.0.0.6 and an Elastic IP beside)
    was read at T0. At 20 s 10.0.0.6 and the Elastic IP went to web's eni-y (calls no event
    handles); at 30 s eni-x was detached, at 40 s attached to pay's instance. The events know
    eni-x's primary address (it never leaves its interface), not the others since the read:
    those were api's until 30 s and pay's from 41 s in the changelog, web's in truth (a
    review). Nobody's from just after the read that saw them on eni-x, until the next poll;
    so were they released with api's instance, at its termination."""
    x = eni("eni-x", "10.0.0.5", "10.0.0.6", instance="i-a", public="54.0.0.1")
    x["Attachment"].update(DeviceIndex=1, DeleteOnTermination=False)
    tags = {"i-a": {"Name": "api-prod"}, "i-c": {"Name": "pay-prod"}, "i-w": {"Name": "web"}}
    web = eni("eni-w", "10.0.0.9", instance="i-w")
    inv = Inventory(SCOPE, interfaces=[x, web], instance_tags=tags)
    sink, now = ListSink(), [T0]
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), sink, lambda: now[0])
    publisher.poll()
    now[0] = T0 + 50_000
    result = publisher.apply_events([
        bridge("DetachNetworkInterface", "2026-01-01T00:00:30Z",
               request={"attachmentId": "attach-eni-x"}),
        bridge("AttachNetworkInterface", "2026-01-01T00:00:40Z",
               request={"networkInterfaceId": "eni-x", "instanceId": "i-c", "deviceIndex": 1},
               response={"attachmentId": "attach-x-c"})])
    assert result.applied == 2
    moved = eni("eni-x", "10.0.0.5", instance="i-c")
    y = eni("eni-y", "10.0.0.6", instance="i-w", public="54.0.0.1")
    publisher.reader = InventoryReader({SCOPE: Inventory(SCOPE, interfaces=[moved, web, y],
                                                         instance_tags=tags)})
    now[0] = T0 + 60_000
    publisher.poll()
    index = replayed(sink.events)

    assert [resource_at(index, "10.0.0.5", T0 + ms) for ms in (29_000, 35_000, 45_000)] == [
        "i-a", "eni-x", "i-c"]
    for ip in ("10.0.0.6", "54.0.0.1"):
        assert [resource_at(index, ip, T0 + ms)
                for ms in (0, 25_000, 35_000, 45_000, 60_000)] == ["i-a", None, None, None, "i-w"], ip
    # Released with api's instance: nobody's from just after the read, not api's until then.
    x["Attachment"]["DeleteOnTermination"] = True
    terminated = Publisher(config_for(), InventoryReader({SCOPE: inv}), ListSink(), lambda: T0)
    terminated.poll()
    terminated.sink.events.clear()
    terminated.apply_events([bridge("TerminateInstances", "2026-01-01T00:00:30Z", request={
        "instancesSet": {"items": [{"instanceId": "i-a"}]}})])
    assert types_ts_ips(terminated.sink.events) == [("UNASSIGN", T0 + 1, "10.0.0.6", None),
                                                    ("UNASSIGN", T0 + 1, "54.0.0.1", None),
                                                    ("UNASSIGN", T0 + 30_000, "10.0.0.5", None)]


def test_an_event_does_not_put_back_what_the_inventory_saw_after_it():
    """A poll read from 0 s to 30 s; i-new was launched at 5 s and tagged app=payments at 8 s,
    which the read saw. The launch's event (5 s, after the read began: not stale) gave the
    instance its launch's tags again, auth's from its group's name (a review). A duplicate of
    an interface's creation, after its attachment in the same second, took the attachment
    away: the interface's own owner for its flows. The next poll took the wrong owners back 1 ms
    after they came, and gave the interface's address to i-new again only from its read's end:
    nobody's for most of a poll interval. An instance or interface the inventory knows was seen
    at or after the event's time (ids are never used again)."""
    run = eni("eni-new", "10.0.0.50", instance="i-new", attached_ms=T0 + 5_000)
    run["Attachment"]["AttachmentId"] = "eni-attach-new"
    tags = {"i-new": {"aws:autoscaling:groupName": "auth-prod-v004", "app": "payments"}}
    inv = Inventory(SCOPE, interfaces=[run], instance_tags=tags)
    sink, now = ListSink(), [T0]
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), sink, lambda: now[0])
    publisher.poll()
    now[0] = T0 + 50_000
    created = bridge("CreateNetworkInterface", "2026-01-01T00:00:40Z", response={
        "networkInterface": {"networkInterfaceId": "eni-x", "privateIpAddress": "10.0.0.7",
                             "availabilityZone": "us-east-1a",
                             "tagSet": {"items": [{"key": "Name", "value": "ops-spare"}]}}})
    result = publisher.apply_events([
        bridge("RunInstances", "2026-01-01T00:00:05Z", response=RUN), created,
        bridge("AttachNetworkInterface", "2026-01-01T00:00:40Z",
               request={"networkInterfaceId": "eni-x", "instanceId": "i-new", "deviceIndex": 1},
               response={"attachmentId": "attach-x"}),
        created])
    assert result.applied == 4
    attached = eni("eni-x", "10.0.0.7", instance="i-new", tags={"Name": "ops-spare"})
    attached["Attachment"].update(DeviceIndex=1, DeleteOnTermination=False)
    publisher.reader = InventoryReader({SCOPE: Inventory(SCOPE, interfaces=[run, attached],
                                                         instance_tags=tags)})
    now[0] = T0 + 60_000
    publisher.poll()
    index = replayed(sink.events)
    assert {e.get("app") for e in sink.events} == {"payments", "ops", None}   # auth: never
    assert index.owner_at("10.0.0.50", T0 + 45_000)[0] == "payments"
    assert resource_at(index, "10.0.0.7", T0 + 45_000) == "i-new"


def test_an_interface_kept_at_termination_stays_the_instances_until_it_is_terminated():
    """TerminateInstances (30 s) begins a shutdown: the instance keeps its interfaces, and its
    flows, until it is terminated (90 s), when those deleted with it go and the others are
    detached. The kept one (10.0.0.9) was its own from the call (its Name tag's app, spare)
    while the instance shut down (a review); the one deleted with it is nobody's from the call,
    not the instance's to the end: its release comes early rather than late."""
    spare = eni("eni-s", "10.0.0.9", instance="i-a", tags={"Name": "spare-prod"})
    spare["Attachment"].update(DeviceIndex=1, DeleteOnTermination=False)
    inv = Inventory(SCOPE, interfaces=[eni("eni-a", "10.0.0.5", instance="i-a"), spare],
                    instance_tags={"i-a": {"Name": "api-prod"}})
    sink, now = ListSink(), [T0]
    publisher = Publisher(config_for(), InventoryReader({SCOPE: inv}), sink, lambda: now[0])
    publisher.poll()
    now[0] = T0 + 100_000
    state_change = json.dumps({"detail-type": "EC2 Instance State-change Notification",
                               "account": ACCOUNT, "region": "us-east-1",
                               "time": "2026-01-01T00:01:30Z",
                               "detail": {"instance-id": "i-a", "state": "terminated"}})
    result = publisher.apply_events([
        bridge("TerminateInstances", "2026-01-01T00:00:30Z",
               request={"instancesSet": {"items": [{"instanceId": "i-a"}]}}), state_change])
    assert result.applied == 2
    # The next poll sees what the event said: the kept interface's own from 31 s, kept so.
    del spare["Attachment"]
    publisher.reader = InventoryReader({SCOPE: Inventory(SCOPE, interfaces=[spare])})
    now[0] = T0 + 120_000
    publisher.poll()
    index = replayed(sink.events)

    assert [resource_at(index, "10.0.0.9", T0 + ms)
            for ms in (29_000, 45_000, 89_000, 91_000, 125_000)] == ["i-a", "i-a", "i-a", "eni-s",
                                                                     "eni-s"]
    assert [resource_at(index, "10.0.0.5", T0 + ms) for ms in (29_000, 31_000)] == ["i-a", None]
