"""The publisher against a local AWS API emulator (moto in server mode, real HTTP on 127.0.0.1).

An estate in two accounts and two regions: instances in Auto Scaling groups, a secondary
interface, a load balancer's interface. One poll; then instances go and their addresses are
handed to other owners (interfaces created with explicit addresses: moto does not reuse them by
itself); another poll while one region fails; a third once it is back. The emitted changelog is
checked event by event, and the job attributes flows across the change with it.
"""
import gzip
import json
import os
import re
import threading
import time
import types

import boto3
import botocore.endpoint
import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from flowdredge.connectors.publisher import cli
from flowdredge.connectors.publisher import config as publisher_config
from flowdredge.connectors.publisher.aws import AwsReader, ScopeError
from flowdredge.connectors.publisher.model import Owner, Scope
from flowdredge.connectors.publisher.publisher import Publisher
from flowdredge.connectors.publisher.sinks import FileSink
from helpers import moto_server

pytestmark = pytest.mark.aws

A = "123456789012"          # moto's account for the plain test credentials
B = "210987654321"          # reached through STS AssumeRole
ROLE_B = f"arn:aws:iam::{B}:role/flowdredge-publisher"
T1 = 1_767_225_600_000      # 2026-01-01T00:00:00Z; moto's attach times are its wall clock, later
MINUTE = 60_000
T2, T3, T4 = T1 + 2 * MINUTE, T1 + 4 * MINUTE, T1 + 6 * MINUTE
IMAGE = "ami-12c6146b"      # one of moto's built-in images


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("aws-config")) as url:
        yield url


@pytest.fixture
def aws(moto_url):
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    return moto_url


class Clock:
    """The test's time: each poll happens at one instant the test chooses."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def config_for(url, path):
    return publisher_config.from_dict({
        "accounts": [{"id": A, "regions": ["us-east-1"]},
                     {"id": B, "role_arn": ROLE_B, "regions": ["us-east-1", "eu-west-1"]}],
        "output": {"kind": "file", "path": str(path)},
        # standard: adaptive mode's client-side rate limiter would wait in real time.
        "aws": {"endpoint_url": url, "retry_mode": "standard", "max_attempts": 4}})


def hooked_sessions(hooks):
    """boto3 sessions with botocore event handlers registered, as the reader makes them."""
    def make(**kwargs):
        session = boto3.Session(region_name="us-east-1", **kwargs)
        for event, handler in hooks:
            session.events.register(event, handler)
        return session
    return make


class Estate:
    """The emulated AWS estate, built and changed through the AWS APIs."""

    def __init__(self, url):
        self.url = url
        self.a = boto3.Session(region_name="us-east-1")
        creds = self.client(self.a, "sts").assume_role(
            RoleArn=ROLE_B, RoleSessionName="test-setup")["Credentials"]
        self.b = boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                               aws_secret_access_key=creds["SecretAccessKey"],
                               aws_session_token=creds["SessionToken"])

    def client(self, session, service, region="us-east-1"):
        return session.client(service, region_name=region, endpoint_url=self.url)

    def subnet(self, ec2, cidr, zone):
        vpc = ec2.create_vpc(CidrBlock=cidr.rsplit(".", 2)[0] + ".0.0/16")["Vpc"]["VpcId"]
        return ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]

    def build(self):
        ec2, autoscaling = self.client(self.a, "ec2"), self.client(self.a, "autoscaling")
        self.subnet_a = self.subnet(ec2, "10.0.1.0/24", "us-east-1a")
        ec2.create_launch_template(LaunchTemplateName="estate-lt", LaunchTemplateData={
            "ImageId": IMAGE, "InstanceType": "t3.micro"})
        for name, size, tags in [("api-prod-v001", 3, []),
                                 ("auth-prod-v003", 1, [{"Key": "app", "Value": "identity",
                                                         "PropagateAtLaunch": False}])]:
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": "estate-lt"},
                MinSize=0, MaxSize=size, DesiredCapacity=size, VPCZoneIdentifier=self.subnet_a,
                Tags=[dict(t, ResourceId=name, ResourceType="auto-scaling-group") for t in tags])
        self.api = sorted(self.instances(ec2, "api-prod-v001"), key=lambda i: i["ip"])
        self.auth, = self.instances(ec2, "auth-prod-v003")
        self.secondary = ec2.create_network_interface(
            SubnetId=self.subnet_a, PrivateIpAddress="10.0.1.200")["NetworkInterface"]["NetworkInterfaceId"]
        ec2.attach_network_interface(NetworkInterfaceId=self.secondary,
                                     InstanceId=self.api[0]["id"], DeviceIndex=1)
        lb = self.client(self.a, "elbv2").create_load_balancer(
            Name="edge-public", Subnets=[self.subnet_a],
            Tags=[{"Key": "app", "Value": "edge"}])["LoadBalancers"][0]
        self.lb_arn = lb["LoadBalancerArn"]
        # AWS gives a load balancer interfaces of its own, described by the ARN's tail.
        self.lb_eni = ec2.create_network_interface(
            SubnetId=self.subnet_a, PrivateIpAddress="10.0.1.150",
            Description="ELB " + self.lb_arn.split(":loadbalancer/")[1])["NetworkInterface"]["NetworkInterfaceId"]
        self.payments = self.run_instance(self.b, "us-east-1", "10.8.1.0/24", "us-east-1b", "payments-prod")
        self.billing = self.run_instance(self.b, "eu-west-1", "10.9.1.0/24", "eu-west-1a", "billing-prod")

    def instances(self, ec2, asg):
        found = []
        for reservation in ec2.describe_instances()["Reservations"]:
            for i in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                if tags.get("aws:autoscaling:groupName") == asg and i["State"]["Name"] == "running":
                    found.append({"id": i["InstanceId"], "ip": i["PrivateIpAddress"],
                                  "eni": i["NetworkInterfaces"][0]["NetworkInterfaceId"]})
        return found

    def run_instance(self, session, region, cidr, zone, name):
        ec2 = self.client(session, "ec2", region)
        subnet = self.subnet(ec2, cidr, zone)
        i = ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1, SubnetId=subnet,
                              TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                  {"Key": "Name", "Value": name}]}])["Instances"][0]
        return {"id": i["InstanceId"], "ip": i["PrivateIpAddress"],
                "eni": i["NetworkInterfaces"][0]["NetworkInterfaceId"], "region": region,
                "zone": zone}

    def terminate(self, session, region, instance):
        """Terminates the instance and deletes its primary interface, as AWS does."""
        ec2 = self.client(session, "ec2", region)
        if instance in self.api:   # the group shrinks rather than replacing it
            self.client(session, "autoscaling", region).terminate_instance_in_auto_scaling_group(
                InstanceId=instance["id"], ShouldDecrementDesiredCapacity=True)
        else:
            ec2.terminate_instances(InstanceIds=[instance["id"]])
        self.delete_interface(ec2, instance["eni"])

    @staticmethod
    def delete_interface(ec2, eni_id):
        attachment = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])[
            "NetworkInterfaces"][0].get("Attachment")
        if attachment and attachment["DeviceIndex"] != 0:   # a primary one cannot be detached
            ec2.detach_network_interface(AttachmentId=attachment["AttachmentId"])
        ec2.delete_network_interface(NetworkInterfaceId=eni_id)

    def change(self):
        """api[0] and api[1] go; api[0]'s address goes to an interface of the auth instance, its
        secondary address to a free interface; billing (account B, eu-west-1) goes too."""
        ec2 = self.client(self.a, "ec2")
        self.delete_interface(ec2, self.secondary)
        self.terminate(self.a, "us-east-1", self.api[0])
        self.terminate(self.a, "us-east-1", self.api[1])
        self.reused = ec2.create_network_interface(
            SubnetId=self.subnet_a, PrivateIpAddress=self.api[0]["ip"])["NetworkInterface"]["NetworkInterfaceId"]
        ec2.attach_network_interface(NetworkInterfaceId=self.reused, InstanceId=self.auth["id"],
                                     DeviceIndex=1)
        self.batch = ec2.create_network_interface(
            SubnetId=self.subnet_a, PrivateIpAddress="10.0.1.200",
            TagSpecifications=[{"ResourceType": "network-interface", "Tags": [
                {"Key": "Name", "Value": "batch-worker"}]}])["NetworkInterface"]["NetworkInterfaceId"]
        self.terminate(self.b, "eu-west-1", self.billing)


def assign(ts, ip, app, cluster, asg, account, region, zone, eni, resource, kind):
    return {"type": "ASSIGN", "ts": ts, "ip": ip, **Owner(app, cluster, asg, account, region, zone,
                                                             eni, resource, kind).as_fields()}


def interface_vpcs(events) -> dict:
    """{interface_id: VPC id} of the ASSIGNs of `events`, each taken out of its ASSIGN (moto's
    VPC ids are random): each one the same for its interface, and a VPC id."""
    vpcs = {}
    for e in events:
        if e["type"] == "ASSIGN":
            vpc = e.pop("interface_vpc_id")
            assert vpcs.setdefault(e["interface_id"], vpc) == vpc
            assert re.fullmatch("vpc-[0-9a-f]{17}", vpc)
    return vpcs


def in_order(events):
    rank = {"UNASSIGN": 0, "ASSIGN": 1, "HEARTBEAT": 2}
    return sorted(events, key=lambda e: (e["ts"], rank[e["type"]], e.get("ip", "")))


def read_events(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def fail_region(region, operation_name="DescribeNetworkInterfaces"):
    def handler(model, request_signer, **_kwargs):
        if model.name == operation_name and request_signer.region_name == region:
            raise ClientError({"Error": {"Code": "UnauthorizedOperation",
                                         "Message": "You are not authorized"}}, model.name)
    return handler


def publisher_for(aws, path, clock, hooks=()):
    config = config_for(aws, path)
    reader = AwsReader(config, clock, session_factory=hooked_sessions(hooks))
    return Publisher(config, reader, FileSink(str(path)), clock, log=lambda m: None)


def run_scenario(aws, path):
    """Polls at T1, T2 (eu-west-1 failing), T3 and T4; returns the estate and the poll results."""
    estate = Estate(aws)
    estate.build()
    clock = Clock(T1)
    failing = []
    fail_eu = fail_region("eu-west-1")

    def sometimes_fail_eu(**kwargs):
        if failing:
            fail_eu(**kwargs)

    publisher = publisher_for(aws, path, clock, hooks=[("before-call.ec2", sometimes_fail_eu)])
    results = [publisher.poll()]
    estate.change()
    clock.now, failing[:] = T2, [True]
    results.append(publisher.poll())
    clock.now, failing[:] = T3, []
    results.append(publisher.poll())
    clock.now = T4
    results.append(publisher.poll())
    return estate, results


def test_polls_emit_exactly_the_changes(aws, tmp_path):
    path = tmp_path / "changes.jsonl"
    estate, results = run_scenario(aws, path)
    events = read_events(path)
    vpcs = interface_vpcs(events)
    # Every interface of subnet_a is in its VPC; the other accounts' and regions' elsewhere.
    assert len({vpcs[e] for e in (*(i["eni"] for i in estate.api), estate.secondary,
                                  estate.auth["eni"], estate.reused, estate.batch)}) == 1
    assert len({vpcs[estate.api[0]["eni"]], vpcs[estate.payments["eni"]],
                vpcs[estate.billing["eni"]]}) == 3
    api = [("api", "api-prod", "api-prod-v001", A, "us-east-1", "us-east-1a")] * 3
    first = [
        *(assign(T1, i["ip"], *o, i["eni"], i["id"], "instance") for i, o in zip(estate.api, api)),
        assign(T1, "10.0.1.200", *api[0], estate.secondary, estate.api[0]["id"], "instance"),
        assign(T1, estate.auth["ip"], "identity", "auth-prod", "auth-prod-v003", A, "us-east-1",
               "us-east-1a", estate.auth["eni"], estate.auth["id"], "instance"),
        assign(T1, "10.0.1.150", "edge", "edge-public", "-", A, "us-east-1", "us-east-1a",
               estate.lb_eni, estate.lb_arn, "elb"),
        assign(T1, estate.payments["ip"], "payments", "payments-prod", "-", B, "us-east-1",
               "us-east-1b", estate.payments["eni"], estate.payments["id"], "instance"),
        assign(T1, estate.billing["ip"], "billing", "billing-prod", "-", B, "eu-west-1",
               "eu-west-1a", estate.billing["eni"], estate.billing["id"], "instance"),
        {"type": "HEARTBEAT", "ts": T1}]
    second = [
        # api[0]'s address now belongs to the auth instance, and the secondary address to the
        # batch interface, moved when AWS does not say (moto gives no attachment time before
        # T2): nobody's from just after the first look until the second.
        {"type": "UNASSIGN", "ts": T1 + 1, "ip": estate.api[0]["ip"]},
        {"type": "UNASSIGN", "ts": T1 + 1, "ip": "10.0.1.200"},
        assign(T2, estate.api[0]["ip"], "identity", "auth-prod", "auth-prod-v003", A, "us-east-1",
               "us-east-1a", estate.reused, estate.auth["id"], "instance"),
        assign(T2, "10.0.1.200", "batch", "batch-worker", "-", A, "us-east-1", "us-east-1a",
               estate.batch, estate.batch, "interface"),
        # api[1] released: nobody's from just after the last look that saw it held.
        {"type": "UNASSIGN", "ts": T1 + 1, "ip": estate.api[1]["ip"]}]
    # eu-west-1 failed at T2: billing's address is released only once it is read again (dated
    # just after its last complete read, at T1), and the heartbeat waits for it.
    third = [{"type": "UNASSIGN", "ts": T1 + 1, "ip": estate.billing["ip"]},
             {"type": "HEARTBEAT", "ts": T3}]
    fourth = [{"type": "HEARTBEAT", "ts": T4}]
    assert events == in_order(first) + in_order(second) + third + fourth
    assert [r.complete for r in results] == [True, False, True, True]
    assert list(results[1].failed) == [Scope(B, "eu-west-1")]
    assert "UnauthorizedOperation" in results[1].failed[Scope(B, "eu-west-1")]
    assert [(r.assigned, r.unassigned, r.heartbeat_ms) for r in results] == [
        (8, 0, T1), (2, 3, None), (0, 1, T3), (0, 0, T4)]


class _Body:
    def __init__(self, data):
        self.data = data

    def stream(self, **_kwargs):
        yield self.data


def throttler(throttles: dict, calls: list):
    """A before-send hook: the first `throttles[operation]` requests of each operation get
    HTTP 400 Throttling instead of going out (botocore parses it as EC2's and the Query APIs'
    own), as the real services answer; `calls` records every request sent."""
    def handler(request, event_name, **_kwargs):
        operation = event_name.rsplit(".", 1)[-1]
        calls.append(operation)
        if throttles.get(operation, 0) > 0:
            throttles[operation] -= 1
            body = (b"<Response><Errors><Error><Code>Throttling</Code><Message>Rate exceeded"
                    b"</Message></Error></Errors><RequestID>r</RequestID></Response>")
            return AWSResponse(request.url, 400, {}, _Body(body))
    return handler


@pytest.fixture
def retry_delays(monkeypatch):
    """botocore's retry delays, recorded instead of slept."""
    delays = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=delays.append))
    return delays


def test_throttling_backs_off_and_loses_no_change(aws, tmp_path, retry_delays):
    estate = Estate(aws)
    estate.build()
    throttles = {"DescribeNetworkInterfaces": 3, "DescribeAutoScalingGroups": 2}
    calls = []
    slow = publisher_for(aws, tmp_path / "throttled.jsonl", Clock(T1),
                         hooks=[("before-send", throttler(throttles, calls))])
    result = slow.poll()
    plain = publisher_for(aws, tmp_path / "plain.jsonl", Clock(T1))
    plain.poll()
    assert result.complete
    assert read_events(tmp_path / "throttled.jsonl") == read_events(tmp_path / "plain.jsonl")
    assert len(read_events(tmp_path / "plain.jsonl")) == 9
    # botocore's backoff (jittered, up to 1, 2, 4 s) per throttled page, which is then sent
    # again on its own: three scopes, one page each, plus one call per throttle.
    assert len(retry_delays) == 3 + 2
    assert all(0 <= d <= 2 ** i for d, i in zip(retry_delays, [0, 1, 2, 0, 1]))
    assert calls.count("DescribeNetworkInterfaces") == 3 + 3
    assert calls.count("DescribeAutoScalingGroups") == 3 + 2
    assert throttles == {"DescribeNetworkInterfaces": 0, "DescribeAutoScalingGroups": 0}


def test_a_throttle_that_outlasts_the_attempts_fails_its_scope_after_max_attempts(
        aws, tmp_path, retry_delays):
    """aws.max_attempts calls per page in all, not retries on top of retries."""
    Estate(aws).build()
    calls = []
    publisher = publisher_for(aws, tmp_path / "changes.jsonl", Clock(T1), hooks=[
        ("before-send", throttler({"DescribeAutoScalingGroups": 10**6}, calls))])
    result = publisher.poll()
    assert calls.count("DescribeAutoScalingGroups") == 3 * 4   # three scopes, max_attempts 4
    assert len(retry_delays) == 3 * 3
    assert sorted(map(str, result.failed)) == [f"{A}/us-east-1", f"{B}/eu-west-1",
                                               f"{B}/us-east-1"]
    assert all("DescribeAutoScalingGroups: Throttling: Rate exceeded" in message
               for message in result.failed.values())
    assert not (tmp_path / "changes.jsonl").exists()   # nothing was read completely


def test_a_stopped_publisher_writes_its_snapshot_to_resume_from(aws, tmp_path, capsys,
                                                                monkeypatch):
    """SIGTERM: the publisher ends its loop and writes its owners to snapshot.to, so that a
    restart with --resume goes on from where it stopped (not from an older snapshot)."""
    import signal
    Estate(aws).build()
    out, snapshot = tmp_path / "changes.jsonl", tmp_path / "snapshot.jsonl"
    config_file = tmp_path / "publisher.yaml"
    config_file.write_text(json.dumps({
        "accounts": [{"id": A, "regions": ["us-east-1"]}], "poll_interval_seconds": 1,
        "snapshot": {"to": str(snapshot)},
        "output": {"kind": "file", "path": str(out)}, "aws": {"endpoint_url": aws}}))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                       signal.SIGUSR1)}
    # A SIGUSR1 snapshot is said when written (it was silent: an operator's review): asked for
    # once the first poll is said, the stop once it is written (timers raced a slow start).
    describe, write, stopped = cli.describe, cli.write_snapshot, []

    def describe_then_ask(result):
        os.kill(os.getpid(), signal.SIGUSR1)
        return describe(result)

    def write_then_stop(*args, **kwargs):
        write(*args, **kwargs)
        if not stopped:   # once: a second SIGTERM stops at once, without a snapshot
            stopped.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(cli, "describe", describe_then_ask)
    monkeypatch.setattr(cli, "write_snapshot", write_then_stop)
    try:
        assert cli.main(["run", "--config", str(config_file)]) == 0
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assigned = {e["ip"] for e in read_events(out) if e["type"] == "ASSIGN"}
    assert assigned and {e["ip"] for e in read_events(snapshot)} == assigned
    said = capsys.readouterr().err
    assert f"snapshot: {len(assigned)} owners written to {snapshot}\n" in said
    assert f"--resume {snapshot}" in said


def test_a_snapshot_target_that_cannot_be_written_is_said_before_any_read(aws, tmp_path, capsys,
                                                                           monkeypatch):
    """A bucket not there was found after the whole poll's reads, at the snapshot's write:
    minutes at hundreds of accounts (an operator's review)."""
    Estate(aws).build()
    reads = []
    monkeypatch.setattr(cli, "AwsReader", lambda config, clock: AwsReader(
        config, clock, session_factory=hooked_sessions(
            [("before-call.ec2.DescribeNetworkInterfaces", lambda **_: reads.append(1))])))
    config_file = tmp_path / "publisher.yaml"
    config_file.write_text(json.dumps({
        "accounts": [{"id": A, "regions": ["us-east-1"]}],
        "snapshot": {"to": "s3://no-such-bucket/snapshot.jsonl"},
        "output": {"kind": "file", "path": str(tmp_path / "changes.jsonl")},
        "aws": {"endpoint_url": aws}}))
    for command in (["snapshot"], ["run"]):
        assert cli.main(command + ["--config", str(config_file)]) == 1
        assert capsys.readouterr().err.endswith(
            "snapshot target s3://no-such-bucket/snapshot.jsonl: no such bucket\n")
    assert not reads
    boto3.client("s3", endpoint_url=aws, region_name="us-east-1").create_bucket(
        Bucket="no-such-bucket")
    assert cli.main(["snapshot", "--config", str(config_file)]) == 0
    assert reads


@pytest.mark.parametrize("command", ["run", "snapshot"])
def test_ctrl_c_during_run_once_or_a_snapshot_waits_for_the_read_under_way_only(
        aws, tmp_path, capsys, monkeypatch, command):
    """Ctrl-C stopped a poll with a traceback once its reads under way were done; now the
    scopes not begun are not read: `run --once` writes what was read and says incomplete,
    `snapshot` writes nothing. The signal handlers before them are back after them."""
    import signal
    Estate(aws).build()
    out, snapshot = tmp_path / "changes.jsonl", tmp_path / "snapshot.jsonl"
    config_file = tmp_path / "publisher.yaml"
    config_file.write_text(json.dumps({
        "accounts": [{"id": A, "regions": ["us-east-1"]},
                     {"id": B, "role_arn": ROLE_B, "regions": ["us-east-1", "eu-west-1"]}],
        "output": {"kind": "file", "path": str(out)},
        "aws": {"endpoint_url": aws, "parallel_reads": 1}}))
    interrupted = []

    def ctrl_c_once(**_kwargs):
        if not interrupted:
            interrupted.append(True)
            # An hourly snapshot's SIGUSR1 ended the process: its default action (a review).
            os.kill(os.getpid(), signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(cli, "AwsReader", lambda config, clock: AwsReader(
        config, clock, session_factory=hooked_sessions(
            [("before-call.ec2.DescribeNetworkInterfaces", ctrl_c_once)])))
    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1)]
    args = (["run", "--once"] if command == "run" else ["snapshot", "--to", str(snapshot)])
    assert cli.main(args + ["--config", str(config_file)]) == cli.INCOMPLETE
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1)] == before
    if command == "run":
        assert {e["type"] for e in read_events(out)} == {"ASSIGN"}   # A's owners, no HEARTBEAT
        assert "2 not read (stopping)" in capsys.readouterr().err
    else:
        assert not snapshot.exists()
        assert "no snapshot written: stopped" in capsys.readouterr().err


def test_a_snapshot_stopped_during_its_last_read_is_written(aws, tmp_path, capsys,
                                                            monkeypatch):
    """Nothing was left unread, and it wrote nothing all the same (an operator's review)."""
    import signal
    Estate(aws).build()
    snapshot, config_file = tmp_path / "snapshot.jsonl", tmp_path / "publisher.yaml"
    config_file.write_text(json.dumps({
        "accounts": [{"id": A, "regions": ["us-east-1"]},
                     {"id": B, "role_arn": ROLE_B, "regions": ["us-east-1", "eu-west-1"]}],
        "output": {"kind": "file", "path": str(tmp_path / "changes.jsonl")},
        "aws": {"endpoint_url": aws, "parallel_reads": 1}}))
    reads = []

    def ctrl_c_at_the_last_read(**_kwargs):
        reads.append(True)
        if len(reads) == 3:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(cli, "AwsReader", lambda config, clock: AwsReader(
        config, clock, session_factory=hooked_sessions(
            [("before-call.ec2.DescribeNetworkInterfaces", ctrl_c_at_the_last_read)])))
    assert cli.main(["snapshot", "--to", str(snapshot), "--config", str(config_file)]) == 0
    assert len(reads) == 3 and read_events(snapshot)


def test_command_line_run_once_and_snapshots(aws, tmp_path, capsys):
    estate = Estate(aws)
    estate.build()
    out, snapshot = tmp_path / "changes.jsonl", tmp_path / "snapshot.jsonl"
    config_file = tmp_path / "publisher.yaml"
    config_file.write_text(json.dumps({
        "accounts": [{"id": A, "regions": ["us-east-1"]},
                     {"id": B, "role_arn": ROLE_B, "regions": ["us-east-1", "eu-west-1"]}],
        "output": {"kind": "file", "path": str(out)}, "aws": {"endpoint_url": aws}}))
    assert cli.main(["run", "--config", str(config_file), "--once"]) == 0
    events = read_events(out)
    assert [e["type"] for e in events] == ["ASSIGN"] * 8 + ["HEARTBEAT"]
    assert {e["ip"] for e in events[:-1]} == {i["ip"] for i in estate.api} | {
        "10.0.1.200", "10.0.1.150", estate.auth["ip"], estate.payments["ip"], estate.billing["ip"]}
    assert "poll: 8 assigned, 0 unassigned" in capsys.readouterr().err

    assert cli.main(["snapshot", "--config", str(config_file), "--to", str(snapshot)]) == 0

    def untimed(events):   # the snapshot's own poll observed the estate later
        return sorted(({k: v for k, v in e.items() if k != "ts"} for e in events),
                      key=lambda e: e["ip"])
    assert untimed(read_events(snapshot)) == untimed(events[:-1])

    s3 = estate.client(estate.a, "s3")
    s3.create_bucket(Bucket="flowdredge-meta")
    assert cli.main(["snapshot", "--config", str(config_file),
                     "--to", "s3://flowdredge-meta/snapshots/now.jsonl"]) == 0
    body = s3.get_object(Bucket="flowdredge-meta", Key="snapshots/now.jsonl")["Body"].read()
    assert untimed(json.loads(line) for line in body.decode().splitlines()) == untimed(events[:-1])

    # Restarted from the snapshot, a poll of the unchanged estate has nothing to say but the
    # heartbeat.
    assert cli.main(["run", "--config", str(config_file), "--once", "--resume", str(snapshot)]) == 0
    assert [e["type"] for e in read_events(out)[len(events):]] == ["HEARTBEAT"]
    # The same from the snapshot in S3, as snapshot.to writes it, its clocks beside it.
    capsys.readouterr()
    assert cli.main(["run", "--config", str(config_file), "--once", "--resume",
                     "s3://flowdredge-meta/snapshots/now.jsonl"]) == 0
    assert [e["type"] for e in read_events(out)[len(events):]] == ["HEARTBEAT"] * 2
    assert "snapshot's time" not in capsys.readouterr().err
    clocks = json.loads(s3.get_object(Bucket="flowdredge-meta",
                                      Key="snapshots/_now.jsonl.state.json")["Body"].read())
    assert set(clocks["polled_ms"]) == {f"{A}/us-east-1", f"{B}/us-east-1", f"{B}/eu-west-1"}
    assert cli.main(["run", "--config", str(config_file), "--once", "--resume",
                     "s3://flowdredge-meta/snapshots/missing.jsonl"]) == 1
    assert "cannot read snapshot s3://flowdredge-meta/snapshots/missing.jsonl" in (
        capsys.readouterr().err)

    config_file.write_text("accounts: [{id: '123'}]\n")
    assert cli.main(["run", "--config", str(config_file), "--once"]) == 1
    assert "12-digit" in capsys.readouterr().err


HEADER = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
          "start end action log-status")


@pytest.mark.minicluster
@pytest.mark.parametrize("parallelism", [1, 2])
def test_job_attributes_flows_across_the_change(aws, tmp_path, parallelism):
    from helpers import job_aggregates, run_replay, total_counts
    from flowdredge.job.config import Config

    changes = tmp_path / "changes.jsonl"
    estate, _results = run_scenario(aws, changes)
    reused, released = estate.api[0]["ip"], estate.api[1]["ip"]
    billing, lb = estate.billing["ip"], "10.0.1.150"
    s = T1 // 1000
    flows = [  # (src, dst, start seconds), 443/TCP ACCEPT, 10 packets, 1000 bytes each
        (reused, lb, s + 30), (reused, lb, s + 150),          # moved when? nobody's, identity after
        (released, lb, s + 40), (released, lb, s + 160),      # released when? nobody's
        (billing, reused, s + 170), (billing, reused, s + 250),   # released when? nobody's
    ]
    folder = tmp_path / "flows"
    folder.mkdir()
    with gzip.open(folder / f"{A}_vpcflowlogs_us-east-1_fl-0test_20260101T0010Z_0001.log.gz", "wt") as fh:
        fh.write(HEADER + "\n")
        for src, dst, start in flows:
            fh.write(f"2 {A} eni-test {src} {dst} 40000 443 6 10 1000 {start} {start + 5} ACCEPT OK\n")
    output = tmp_path / "out"
    run_replay([str(folder)], [str(changes)], str(output),
               Config().replace(job={"parallelism": parallelism,
                                     "checkpoint_interval_seconds": 2}))

    # An address let go at a time not known is nobody's from just after the last look that
    # saw it held: never its old owner's while a short-lived one may have held it.
    one = (1, 10, 1000)
    assert job_aggregates(str(output)) == {
        (s, "unattributed", "-", "edge", "us-east-1", 443, 6, "ACCEPT"): (2, 20, 2000),
        (s + 120, "identity", "us-east-1", "edge", "us-east-1", 443, 6, "ACCEPT"): one,
        (s + 120, "unattributed", "-", "edge", "us-east-1", 443, 6, "ACCEPT"): one,
        (s + 120, "unattributed", "-", "identity", "us-east-1", 443, 6, "ACCEPT"): one,
        (s + 240, "unattributed", "-", "identity", "us-east-1", 443, 6, "ACCEPT"): one,
    }
    counts = total_counts(str(output))
    # billing's release, seen only once its failed scope was read again, comes late (dated
    # after the scope's last complete read: docs/publisher.md, a scope that fails).
    assert counts["metadata_late"] == 1 and counts["groups_after_max_wait"] == 0


def test_a_lambda_functions_subnets_and_groups_are_read_with_it(aws, tmp_path):
    """Lambda shares an interface among the functions of one subnet and security groups: their
    VpcConfig decides its owner (connectors.publisher.derive)."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name="us-east-1")
    ec2 = session.client("ec2", endpoint_url=aws)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="fn", Description="fn", VpcId=vpc)["GroupId"]
    role = session.client("iam", endpoint_url=aws).create_role(
        RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lambda_ = session.client("lambda", endpoint_url=aws)
    for name in ("api-resize", "api-thumb"):
        lambda_.create_function(FunctionName=name, Runtime="python3.12", Role=role,
                                Handler="x.h", Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
                                VpcConfig={"SubnetIds": [subnet], "SecurityGroupIds": [group]})
    reader = AwsReader(config_for(aws, tmp_path / "changes.jsonl"), Clock(T1))
    inventory = reader.read(Scope(A, "us-east-1"))
    assert {f: inventory.function_networks.get(f) for f in ("api-resize", "api-thumb")} == \
        dict.fromkeys(("api-resize", "api-thumb"), {(frozenset([subnet]), frozenset([group]))})
    assert inventory.functions["api-thumb"].endswith(":function:api-thumb")


LAMBDA_ENI_TAIL = "-3f7c8a1e-1b2c-4d5e-8f90-0a1b2c3d4e5f"   # Lambda's UUID after the name
# Function: (tags, its security group). Lambda gives the functions of one subnet and set of
# groups one interface: api-resize and api-thumb have their own, the others share by two.
FUNCTIONS = {"api-resize": ({"app": "billing", "cluster": "billing-images"}, "resize"),
             "api-thumb": ({}, "thumb"),
             "img-crop": ({"app": "photos"}, "media"),
             "img-scale": ({"app": "video"}, "media"),
             "export-csv": ({"app": "billing", "cluster": "billing-reports"}, "reports"),
             "report-pdf": ({"app": "billing", "cluster": "billing-reports"}, "reports")}
FUNCTION_ADDRESSES = {"resize": "10.9.1.10", "thumb": "10.9.1.11", "media": "10.9.1.12",
                      "reports": "10.9.1.13"}
CLASSIC_ELB_ADDRESS = "10.9.1.20"


def tagged_estate(aws):
    """Account A's tagged and untagged Lambda functions, the interfaces Lambda would give them
    (described by the function that made one, which moto does not create), and a tagged
    classic load balancer with its interface. Returns {address: interface id}."""
    session = boto3.Session(region_name="us-east-1")
    ec2 = session.client("ec2", endpoint_url=aws)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24",
                               AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    groups = {g: ec2.create_security_group(GroupName=g, Description=g, VpcId=vpc)["GroupId"]
              for g in FUNCTION_ADDRESSES}
    role = session.client("iam", endpoint_url=aws).create_role(
        RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lambda_ = session.client("lambda", endpoint_url=aws)
    for name, (tags, group) in FUNCTIONS.items():
        lambda_.create_function(FunctionName=name, Runtime="python3.12", Role=role,
                                Handler="x.h", Code={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
                                VpcConfig={"SubnetIds": [subnet],
                                           "SecurityGroupIds": [groups[group]]}, Tags=tags)
    enis = {}
    for group, ip in FUNCTION_ADDRESSES.items():
        maker = next(name for name, (_tags, g) in FUNCTIONS.items() if g == group)
        enis[ip] = ec2.create_network_interface(
            SubnetId=subnet, PrivateIpAddress=ip, Groups=[groups[group]],
            Description=f"AWS Lambda VPC ENI-{maker}{LAMBDA_ENI_TAIL}")[
            "NetworkInterface"]["NetworkInterfaceId"]
    session.client("elb", endpoint_url=aws).create_load_balancer(
        LoadBalancerName="web-front", Subnets=[subnet],
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080}],
        Tags=[{"Key": "app", "Value": "storefront"}])
    enis[CLASSIC_ELB_ADDRESS] = ec2.create_network_interface(
        SubnetId=subnet, PrivateIpAddress=CLASSIC_ELB_ADDRESS,
        Description="ELB web-front")["NetworkInterface"]["NetworkInterfaceId"]
    return enis


def tagged_publisher(aws, path, clock, hooks=(), log=lambda m: None):
    config = publisher_config.from_dict({
        "accounts": [{"id": A, "regions": ["us-east-1"]}], "naming": {"cluster_tag": "cluster"},
        "output": {"kind": "file", "path": str(path)},
        "aws": {"endpoint_url": aws, "retry_mode": "standard", "max_attempts": 4}})
    reader = AwsReader(config, clock, session_factory=hooked_sessions(hooks), log=log)
    return Publisher(config, reader, FileSink(str(path)), clock, log=log)


def function_arn(name):
    return f"arn:aws:lambda:us-east-1:{A}:function:{name}"


def test_a_functions_and_a_classic_load_balancers_own_tags_win_over_their_names(aws, tmp_path):
    """naming.app_tag and naming.cluster_tag on a Lambda function (its interface's owner, or
    one of the functions sharing it) and on a classic load balancer, as on every other owner."""
    enis = tagged_estate(aws)
    path = tmp_path / "changes.jsonl"
    assert tagged_publisher(aws, path, Clock(T1)).poll().complete
    owners = {e["ip"]: (e["app"], e["cluster"], e["resource_id"]) for e in read_events(path)
              if e["type"] == "ASSIGN"}
    assert owners == {
        "10.9.1.10": ("billing", "billing-images", function_arn("api-resize")),
        "10.9.1.11": ("api", "api-thumb", function_arn("api-thumb")),   # untagged: its name
        # Shared: each function's tag, else its name; where they differ, nobody's.
        "10.9.1.12": ("-", "-", enis["10.9.1.12"]),
        "10.9.1.13": ("billing", "billing-reports", enis["10.9.1.13"]),
        CLASSIC_ELB_ADDRESS: ("storefront", "web-front", "web-front")}


def web_old(aws):
    """tagged_estate and a classic load balancer web-old (tagged app storefront) with its
    interface at 10.9.1.21, to delete during a read. Returns the ELB client."""
    enis = tagged_estate(aws)
    session = boto3.Session(region_name="us-east-1")
    elb, ec2 = session.client("elb", endpoint_url=aws), session.client("ec2", endpoint_url=aws)
    elb.create_load_balancer(LoadBalancerName="web-old", AvailabilityZones=["us-east-1a"],
                             Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80,
                                         "InstancePort": 8080}],
                             Tags=[{"Key": "app", "Value": "storefront"}])
    ec2.create_network_interface(
        SubnetId=ec2.describe_network_interfaces(NetworkInterfaceIds=[enis[CLASSIC_ELB_ADDRESS]])[
            "NetworkInterfaces"][0]["SubnetId"],
        PrivateIpAddress="10.9.1.21", Description="ELB web-old")
    return elb


def test_a_load_balancer_deleted_between_its_listing_and_its_tags_fails_no_scope(aws, tmp_path):
    """DescribeTags fails its whole batch when one load balancer of it is gone
    (LoadBalancerNotFound): a deletion between the two calls failed the scope's poll (a
    review). The batch is asked again one by one; the deleted one's interface, read before,
    has no owner: its tags, which would win over its name, are not known."""
    elb = web_old(aws)
    batches = []

    def delete_first(model, params, **_kwargs):
        if model.name == "DescribeTags" and "LoadBalancerNames" in params:
            batches.append(list(params["LoadBalancerNames"]))
            if len(batches) == 1:
                elb.delete_load_balancer(LoadBalancerName="web-old")

    path = tmp_path / "changes.jsonl"
    assert tagged_publisher(aws, path, Clock(T1), hooks=[("before-parameter-build", delete_first)]).poll() \
        .complete
    assert batches == [["web-front", "web-old"], ["web-front"], ["web-old"]]
    owners = {e["ip"]: (e["app"], e["cluster"], e["kind"]) for e in read_events(path)
              if e["type"] == "ASSIGN"}
    assert (owners[CLASSIC_ELB_ADDRESS], owners["10.9.1.21"]) == (
        ("storefront", "web-front", "elb"), ("-", "-", "elb"))


def test_a_load_balancer_deleted_between_the_interfaces_and_its_listing_has_no_owner(
        aws, tmp_path):
    """The read lists load balancers after interfaces: one deleted between has its interface
    read but is not listed. It was named from the description (app web, its tag storefront);
    now, its tags not known, nobody's, as one deleted before its tags are read."""
    elb = web_old(aws)
    listed = []

    def delete_before_listing(**_kwargs):
        listed.append(1)
        elb.delete_load_balancer(LoadBalancerName="web-old")

    path = tmp_path / "changes.jsonl"
    hook = ("before-parameter-build.elastic-load-balancing.DescribeLoadBalancers",
            delete_before_listing)
    assert tagged_publisher(aws, path, Clock(T1), hooks=[hook]).poll().complete
    assert listed == [1]
    owners = {e["ip"]: (e["app"], e["cluster"], e["kind"]) for e in read_events(path)
              if e["type"] == "ASSIGN"}
    assert (owners[CLASSIC_ELB_ADDRESS], owners["10.9.1.21"]) == (
        ("storefront", "web-front", "elb"), ("-", "-", "elb"))


def test_without_tag_get_resources_functions_go_by_their_names_said_once_and_never_back(
        aws, tmp_path):
    """A policy from before the functions' tags were read: their names give their owners, said
    once per scope, until it allows tag:GetResources; denied after that, the scope fails as for
    any other call, and its owners stay (docs/publisher.md, IAM permissions)."""
    enis = tagged_estate(aws)
    denied = [True]

    def deny(model, **_kwargs):
        if denied and model.name == "GetResources":
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message":
                                         "not authorized to perform: tag:GetResources"}},
                              model.name)

    path, clock, said = tmp_path / "changes.jsonl", Clock(T1), []
    publisher = tagged_publisher(aws, path, clock, hooks=[("before-call", deny)], log=said.append)
    results = [publisher.poll()]
    clock.now = T2
    results.append(publisher.poll())
    clock.now, denied[:] = T3, []
    results.append(publisher.poll())
    clock.now, denied[:] = T4, [True]
    results.append(publisher.poll())
    events = read_events(path)
    assert len(set(interface_vpcs(events).values())) == 1   # the functions' VPC
    first = {e["ip"]: e["app"] for e in events if e["type"] == "ASSIGN" and e["ts"] == T1}
    assert first == {"10.9.1.10": "api", "10.9.1.11": "api", "10.9.1.12": "img",
                     "10.9.1.13": "-", CLASSIC_ELB_ADDRESS: "storefront"}
    # Allowed at T3: the owners the tags give, each a change (released from just after T2).
    later = [e for e in events if e["ts"] > T1]
    assert later == [
        {"type": "HEARTBEAT", "ts": T2},
        *({"type": "UNASSIGN", "ts": T2 + 1, "ip": ip} for ip in ("10.9.1.10", "10.9.1.12",
                                                                  "10.9.1.13")),
        *in_order([assign(T3, "10.9.1.10", "billing", "billing-images", "-", A, "us-east-1",
                          "us-east-1a", enis["10.9.1.10"], function_arn("api-resize"), "lambda"),
                   assign(T3, "10.9.1.13", "billing", "billing-reports", "-", A, "us-east-1",
                          "us-east-1a", enis["10.9.1.13"], enis["10.9.1.13"], "lambda"),
                   assign(T3, "10.9.1.12", "-", "-", "-", A, "us-east-1", "us-east-1a",
                          enis["10.9.1.12"], enis["10.9.1.12"], "lambda")]),
        {"type": "HEARTBEAT", "ts": T3}]
    # Denied again at T4: the scope fails and keeps the tags' owners.
    assert [r.complete for r in results] == [True, True, True, False]
    assert "GetResources: AccessDeniedException" in results[3].failed[Scope(A, "us-east-1")]
    assert said[:2] == [
        f"{A}/us-east-1: tag:GetResources denied: Lambda functions' owners come from their "
        f"names, not their tags, until it is allowed (docs/publisher.md, IAM permissions)",
        f"{A}/us-east-1: Lambda functions' tags are read now"]
    assert len(said) == 3 and said[2].startswith(f"cannot read {A}/us-east-1")


def run_overlapping_vpcs(aws, path):
    """Two accounts' VPCs of one range (as default VPCs are) hold 10.50.1.10: A's alone at T1,
    B's too at T2 and T3, A's alone again at T4 (B's interface gone). Returns the VPC ids, the
    owners, and the poll's result that found the contest."""
    estate = Estate(aws)
    ec2_a, ec2_b = estate.client(estate.a, "ec2"), estate.client(estate.b, "ec2")

    def interface(ec2, zone, name):
        vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.50.1.0/24",
                                   AvailabilityZone=zone)["Subnet"]["SubnetId"]
        eni = ec2.create_network_interface(
            SubnetId=subnet, PrivateIpAddress="10.50.1.10", TagSpecifications=[{
                "ResourceType": "network-interface", "Tags": [{"Key": "Name", "Value": name}]}]
        )["NetworkInterface"]["NetworkInterfaceId"]
        return vpc, eni

    vpc_a, eni_a = interface(ec2_a, "us-east-1a", "web-prod")
    clock = Clock(T1)
    publisher = publisher_for(aws, path, clock)
    publisher.poll()
    vpc_b, eni_b = interface(ec2_b, "us-east-1b", "pay-prod")
    clock.now = T2
    contested = publisher.poll()
    clock.now = T3
    publisher.poll()
    ec2_b.delete_network_interface(NetworkInterfaceId=eni_b)
    clock.now = T4
    publisher.poll()
    web = Owner("web", "web-prod", "-", A, "us-east-1", "us-east-1a", eni_a, eni_a, "interface")
    pay = Owner("pay", "pay-prod", "-", B, "us-east-1", "us-east-1b", eni_b, eni_b, "interface")
    return vpc_a, vpc_b, web, pay, contested


def test_an_address_two_accounts_vpcs_hold_is_each_vpcs_own_within_it(aws, tmp_path):
    """The address is nobody's while both VPCs hold it, but within each VPC its interface's
    (VPC_ASSIGN with the interface's VpcId, for flows that VPC logs); once B's interface goes,
    A's owns it and the VPC claims go."""
    path = tmp_path / "changes.jsonl"
    vpc_a, vpc_b, web, pay, contested = run_overlapping_vpcs(aws, path)
    assert vpc_a != vpc_b
    ip = "10.50.1.10"
    assert read_events(path) == [
        {"type": "ASSIGN", "ts": T1, "ip": ip, **web.as_fields(), "interface_vpc_id": vpc_a},
        {"type": "HEARTBEAT", "ts": T1},
        # Contested: nobody's from just after the read that saw web alone; within each VPC its
        # interface's: web's from then (it held the address all along), pay's after web was
        # last seen alone (the end of A's read).
        {"type": "UNASSIGN", "ts": T1 + 1, "ip": ip},
        {"type": "VPC_ASSIGN", "ts": T1 + 1, "ip": ip, "vpc_id": vpc_a, **web.as_fields()},
        {"type": "VPC_ASSIGN", "ts": T2 + 1, "ip": ip, "vpc_id": vpc_b, **pay.as_fields()},
        {"type": "HEARTBEAT", "ts": T2},
        {"type": "HEARTBEAT", "ts": T3},
        # pay's VPC let go after the last read that saw it; web has the address from the end
        # of the read that showed pay gone, its VPC claim gone then.
        {"type": "VPC_UNASSIGN", "ts": T3 + 1, "ip": ip, "vpc_id": vpc_b},
        {"type": "VPC_UNASSIGN", "ts": T4 + 1, "ip": ip, "vpc_id": vpc_a},
        {"type": "ASSIGN", "ts": T4 + 1, "ip": ip, **web.as_fields(), "interface_vpc_id": vpc_a},
        {"type": "HEARTBEAT", "ts": T4}]
    assert (contested.conflicts, contested.vpc_assigned) == ([ip], 2)


@pytest.mark.minicluster
def test_job_attributes_flows_to_overlapping_vpcs_address_within_the_vpc_that_logged_them(
        aws, tmp_path):
    """The changelog the publisher writes for the overlapping VPCs, through the job: a flow to
    the contested address is its VPC's owner's when its line names that VPC (`vpc-id`), and
    nobody's without it; A's alone once B's interface is gone."""
    from helpers import job_aggregates, run_replay
    from flowdredge.job.config import Config

    changes = tmp_path / "changes.jsonl"
    vpc_a, vpc_b, _web, _pay, _contested = run_overlapping_vpcs(aws, changes)
    s = T1 // 1000
    flows = [(vpc_a, s + 130), (vpc_b, s + 130), ("-", s + 130), (vpc_b, s + 370)]
    folder = tmp_path / "flows"
    folder.mkdir()
    with gzip.open(folder / f"{A}_vpcflowlogs_us-east-1_fl-0test_20260101T0010Z_0001.log.gz",
                   "wt") as fh:
        fh.write(HEADER + " vpc-id\n")
        for vpc, start in flows:   # 10.50.1.20 (no owner) to the address, 443/TCP
            fh.write(f"5 {A} eni-test 10.50.1.20 10.50.1.10 40000 443 6 10 1000 {start} "
                     f"{start + 5} ACCEPT OK {vpc}\n")
    output = tmp_path / "out"
    run_replay([str(folder)], [str(changes)], str(output), Config())
    one = (1, 10, 1000)
    assert job_aggregates(str(output)) == {
        (s + 120, "unattributed", "-", "web", "us-east-1", 443, 6, "ACCEPT"): one,
        (s + 120, "unattributed", "-", "pay", "us-east-1", 443, 6, "ACCEPT"): one,
        (s + 120, "unattributed", "-", "unattributed", "-", 443, 6, "ACCEPT"): one,
        (s + 360, "unattributed", "-", "web", "us-east-1", 443, 6, "ACCEPT"): one,
    }


def test_one_session_for_every_account_clients_made_once_and_again_for_renewed_credentials(
        aws, tmp_path):
    """A session an account read through a role kept its service models, 27 MB: 8 GB at 300
    accounts. Clients were made at every read, under the lock that parallel reads share: 0.09 s
    a read, a floor of half a minute a poll at 300 scopes (a review). Now every client comes
    from one session; they are kept, and an account's go when its role's credentials are
    renewed."""
    sessions, made = [], []

    def session_factory(**kwargs):
        session = boto3.Session(region_name="us-east-1", **kwargs)
        sessions.append(session)
        make = session.client

        def client(service, **options):
            made.append((service, options.get("aws_access_key_id")))
            return make(service, **options)
        session.client = client
        return session
    clock = Clock(T1)
    config = config_for(aws, tmp_path / "changes.jsonl")
    reader = AwsReader(config, clock, session_factory=session_factory)
    for scope in config.scopes:
        reader.read(scope)
    assert len(sessions) == 1
    first = list(made)
    b_key = reader._assumed[B][0]["aws_access_key_id"]
    assert {key for _service, key in first} == {None, b_key}
    for scope in config.scopes:
        reader.read(scope)
    assert made == first
    clock.now = reader._assumed[B][1]   # the renewal of B's credentials
    reader.read(Scope(B, "us-east-1"))
    renewed = made[len(first):]
    new_key = reader._assumed[B][0]["aws_access_key_id"]
    assert new_key != b_key and len(sessions) == 1
    assert sorted(renewed) == sorted({(service, new_key) for service, key in first
                                      if key == b_key})
    assert not any(key[0] == b_key for key in reader._clients)


def test_an_accounts_regions_read_at_once_assume_its_role_once(aws, tmp_path):
    """Both regions of an account read at once each assumed its role at its first read and at
    every renewal, and all but one of them made their clients again (a review)."""
    assumed = []

    def slow_assume_role(**_kwargs):
        assumed.append(threading.current_thread().name)
        time.sleep(0.2)   # both reads find the credentials missing or due meanwhile
    clock = Clock(T1)
    config = config_for(aws, tmp_path / "changes.jsonl")
    reader = AwsReader(config, clock, session_factory=hooked_sessions(
        [("before-call.sts.AssumeRole", slow_assume_role)]))

    def read_both_regions():
        reads = [threading.Thread(target=reader.read, args=(Scope(B, region),))
                 for region in ("us-east-1", "eu-west-1")]
        for read in reads:
            read.start()
        for read in reads:
            read.join()
    read_both_regions()
    assert len(assumed) == 1
    clock.now = reader._assumed[B][1]   # the renewal of B's credentials
    read_both_regions()
    assert len(assumed) == 2
    assert {key[0] for key in reader._clients} == {None, reader._assumed[B][0]["aws_access_key_id"]}


def test_an_account_read_with_the_publishers_own_credentials_must_be_theirs(aws, tmp_path):
    """Listed without its role, an account was read with the publisher's own credentials: its
    owners were another account's, labelled with its id, or nothing of it was read, without a
    word (an operator's review)."""
    config = publisher_config.from_dict({
        "accounts": [{"id": A, "regions": ["us-east-1"]}, {"id": B, "regions": ["us-east-1"]}],
        "output": {"kind": "file", "path": str(tmp_path / "changes.jsonl")},
        "aws": {"endpoint_url": aws, "retry_mode": "standard", "max_attempts": 4}})
    reader = AwsReader(config, Clock(T1))
    assert reader.read(Scope(A, "us-east-1")).scope == Scope(A, "us-east-1")
    with pytest.raises(ScopeError, match=f"account {B} has no role_arn, and the publisher's own "
                                         f"credentials are account {A}'s: give it a role"):
        reader.read(Scope(B, "us-east-1"))


def test_a_role_that_cannot_be_assumed_fails_its_accounts_scopes_alone(aws, tmp_path):
    """At the first read; at a renewal, only once the credentials held have expired: renewed 5
    minutes early, a renewal refused failed the account's scopes at once (a review). The next
    assumption that works reads it again with new credentials."""
    from flowdredge.connectors.publisher.aws import CREDENTIAL_MARGIN_MS
    denied, logged = [True], []

    def deny(model, **_kwargs):
        if denied:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}},
                              model.name)
    clock = Clock(T1)
    config = config_for(aws, tmp_path / "changes.jsonl")
    reader = AwsReader(config, clock, log=logged.append,
                       session_factory=hooked_sessions([("before-call.sts.AssumeRole", deny)]))
    with pytest.raises(ScopeError, match="AssumeRole: AccessDenied: not allowed"):
        reader.read(Scope(B, "us-east-1"))
    reader.read(Scope(A, "us-east-1"))
    denied.clear()
    reader.read(Scope(B, "us-east-1"))
    first_key, renew = reader._assumed[B][0]["aws_access_key_id"], reader._assumed[B][1]
    denied.append(True)
    clock.now = renew + CREDENTIAL_MARGIN_MS - 61_000
    assert reader.read(Scope(B, "eu-west-1")).scope == Scope(B, "eu-west-1")
    # The account's other region, read at once, neither asks again nor says it again.
    assert reader.read(Scope(B, "us-east-1")).scope == Scope(B, "us-east-1")
    assert logged == [f"{B}: its role's credentials not renewed (AssumeRole: AccessDenied: not "
                      f"allowed); read with those held, 61 s left"]
    clock.now += 60_000   # a minute on: asked again
    reader.read(Scope(B, "us-east-1"))
    assert logged[1:] == [f"{B}: its role's credentials not renewed (AssumeRole: AccessDenied: "
                          f"not allowed); read with those held, 1 s left"]
    assert reader._assumed[B][0]["aws_access_key_id"] == first_key
    clock.now = renew + CREDENTIAL_MARGIN_MS
    with pytest.raises(ScopeError, match="AssumeRole: AccessDenied"):
        reader.read(Scope(B, "eu-west-1"))
    denied.clear()
    reader.read(Scope(B, "eu-west-1"))
    assert reader._assumed[B][0]["aws_access_key_id"] != first_key


def test_clients_of_every_account_share_their_operation_methods_and_sign_with_their_own(
        aws, tmp_path):
    """botocore built each client's class anew, with a method and a docstring object for each
    operation: 1.5 MB an EC2 client, half of what an account and region cost (run 56). Each
    service's later classes now take the first's methods, which call the client they are
    called on: each account's clients still sign with its own credentials and read its own."""
    signed = []

    def record_key(request, **_kwargs):
        signed.append(request.headers["Authorization"].split(b"Credential=")[1].split(b"/")[0])
    clock = Clock(T1)
    config = config_for(aws, tmp_path / "changes.jsonl")
    reader = AwsReader(config, clock, session_factory=hooked_sessions(
        [("before-send.ec2", record_key)]))
    for scope in config.scopes:
        reader.read(scope)
    b_key = reader._assumed[B][0]["aws_access_key_id"]
    ec2_a = reader.client({}, "ec2", "us-east-1")
    ec2_b = reader.client(reader._assumed[B][0], "ec2", "us-east-1")
    ec2_b_eu = reader.client(reader._assumed[B][0], "ec2", "eu-west-1")
    assert type(ec2_a) is not type(ec2_b)
    for method in ("describe_network_interfaces", "describe_instances", "create_vpc"):
        assert getattr(type(ec2_a), method) is getattr(type(ec2_b), method)
        assert getattr(type(ec2_a), method) is getattr(type(ec2_b_eu), method)
    assert type(ec2_a)._PY_TO_OP_NAME is type(ec2_b)._PY_TO_OP_NAME
    assert "Describes the specified instances" in str(ec2_b.describe_instances.__doc__)
    assert set(signed) == {b"testing", b_key.encode()}
    del signed[:]
    assert {v["OwnerId"] for v in ec2_a.describe_vpcs()["Vpcs"]} == {A}
    assert {v["OwnerId"] for v in ec2_b.describe_vpcs()["Vpcs"]} == {B}
    assert ec2_b_eu.describe_availability_zones()["AvailabilityZones"][0]["RegionName"] == (
        "eu-west-1")
    assert signed == [b"testing", b_key.encode(), b_key.encode()]
