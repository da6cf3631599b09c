"""The publisher's Kinesis sink against the local Kinesis API server (kinesis-local, plain HTTP
on 127.0.0.1): batches over the 500-record limit, HEARTBEATs after the changes they cover,
read back in order."""
import json
import os
import socket
import subprocess
import time
import types

import boto3
import pytest

from flowdredge.connectors.kinesis.local import free_port

from flowdredge.connectors.publisher.model import Inventory, Scope
from flowdredge.connectors.publisher.publisher import Publisher
from flowdredge.connectors.publisher.sinks import KinesisSink
from flowdredge.job.ownership import parse_event
from test_publisher_unit import InventoryReader, config_for, eni

pytestmark = pytest.mark.kinesis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, ".tools", "kinesis-local", "node_modules", "kinesis-local")
STREAM = "flowdredge-metadata"
T0 = 1_767_225_600_000


def _wait_for_port(port, process, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kinesis-local exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"kinesis-local did not listen on {port} within {seconds}s")


@pytest.fixture(scope="module")
def kinesis(tmp_path_factory):
    if not os.path.isfile(os.path.join(SERVER, "main.js")):
        pytest.fail("kinesis-local is not installed: run scripts/setup")
    plain, tls = free_port(), free_port()
    log = open(tmp_path_factory.mktemp("kinesis") / "kinesis-local.log", "wb")
    process = subprocess.Popen(
        ["node", os.path.join(SERVER, "main.js")], stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "KINESIS_MOCK_PLAIN_PORT": str(plain),
             "KINESIS_MOCK_TLS_PORT": str(tls),
             "KINESIS_MOCK_CERT_PATH": os.path.join(SERVER, "server.json")})
    try:
        _wait_for_port(plain, process)
        client = boto3.client("kinesis", endpoint_url=f"http://127.0.0.1:{plain}",
                              region_name="us-east-1", aws_access_key_id="dummy",
                              aws_secret_access_key="dummy")
        client.create_stream(StreamName=STREAM, ShardCount=1)
        deadline = time.monotonic() + 30
        while client.describe_stream_summary(StreamName=STREAM)[
                "StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
            assert time.monotonic() < deadline, "stream did not become ACTIVE"
            time.sleep(0.2)
        yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class StreamReader:
    """Reads the one-shard stream from where the last read ended."""

    def __init__(self, client):
        self.client = client
        shard = client.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
        self.iterator = client.get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                                  ShardIteratorType="LATEST")["ShardIterator"]
        self.records = 0

    def read(self, expected):
        """The events of the records read until `expected` events came; `self.records` counts
        the records."""
        events, deadline = [], time.monotonic() + 20
        while len(events) < expected and time.monotonic() < deadline:
            answer = self.client.get_records(ShardIterator=self.iterator, Limit=1000)
            self.iterator = answer["NextShardIterator"]
            events += [json.loads(line) for r in answer["Records"]
                       for line in r["Data"].split(b"\n")]
            self.records += len(answer["Records"])
            if not answer["Records"]:
                time.sleep(0.1)
        return events


def test_batches_arrive_in_order_with_heartbeats_last(kinesis):
    reader = StreamReader(kinesis)
    changes = [{"type": "ASSIGN", "ts": T0 + i, "ip": f"10.0.{i // 250}.{i % 250 + 1}",
                "app": f"app{i % 7}", "kind": "instance"} for i in range(620)]
    changes.append({"type": "UNASSIGN", "ts": T0 + 700, "ip": "10.0.0.1"})
    events = changes + [{"type": "HEARTBEAT", "ts": T0 + 700}]
    KinesisSink(kinesis, STREAM, "ip-metadata").write(events)
    assert reader.read(len(events)) == events
    assert reader.records == 2   # the changes in one record, the HEARTBEAT in one of its own


def test_a_poll_reaches_the_stream_as_the_job_reads_it(kinesis):
    reader = StreamReader(kinesis)
    scope = Scope("123456789012", "us-east-1")
    inventory = Inventory(scope, interfaces=[eni("eni-a", "10.0.0.5", "10.0.0.6", instance="i-a")],
                          instance_tags={"i-a": {"aws:autoscaling:groupName": "api-prod-v012"}})
    publisher = Publisher(config_for(kind="kinesis", stream_name=STREAM, region="us-east-1"),
                          InventoryReader({scope: inventory}), KinesisSink(kinesis, STREAM, "ip-metadata"),
                          clock=lambda: T0)
    publisher.poll()
    parsed = [parse_event(json.dumps(r)) for r in reader.read(3)]
    assert [(e.type, e.ts, e.ip) for e in parsed] == [("ASSIGN", T0, "10.0.0.5"),
                                                      ("ASSIGN", T0, "10.0.0.6"), ("HEARTBEAT", T0, "")]
    assert parsed[0].owner[:3] == ("api", "api-prod", "api-prod-v012")


def test_vpc_claims_reach_the_stream_with_the_changes_before_their_heartbeat(kinesis):
    """Two VPCs of one account and region overlap: the address's owner within each VPC goes in
    the changes' record, the HEARTBEAT covering them in one of its own after it."""
    reader = StreamReader(kinesis)
    scope = Scope("123456789012", "us-east-1")
    inventory = Inventory(scope, interfaces=[eni("eni-a", "172.31.0.5", vpc="vpc-0aaaaaaa"),
                                             eni("eni-b", "172.31.0.5", vpc="vpc-0bbbbbbb"),
                                             eni("eni-c", "10.0.0.6", vpc="vpc-0aaaaaaa")])
    Publisher(config_for(kind="kinesis", stream_name=STREAM, region="us-east-1"),
              InventoryReader({scope: inventory}), KinesisSink(kinesis, STREAM, "ip-metadata"),
              clock=lambda: T0).poll()
    events = reader.read(4)
    assert [(e["type"], e["ts"], e.get("ip"), e.get("vpc_id"), e.get("interface_id"))
            for e in events] == [("ASSIGN", T0, "10.0.0.6", None, "eni-c"),
                                 ("VPC_ASSIGN", T0, "172.31.0.5", "vpc-0aaaaaaa", "eni-a"),
                                 ("VPC_ASSIGN", T0, "172.31.0.5", "vpc-0bbbbbbb", "eni-b"),
                                 ("HEARTBEAT", T0, None, None, None)]
    assert reader.records == 2


def test_a_missing_output_stream_is_said_before_any_read(kinesis, tmp_path, capsys, monkeypatch):
    """A misspelt stream was found at the first poll's write, after its reads: minutes at
    hundreds of accounts (an operator's review)."""
    from flowdredge.connectors.publisher import cli
    endpoint = kinesis.meta.endpoint_url
    assert KinesisSink(kinesis, STREAM, "ip-metadata").check() == ""
    reads = []
    monkeypatch.setattr(cli, "AwsReader", lambda config, clock: types.SimpleNamespace(
        read=reads.append, base_client=lambda service, region, endpoint_url: kinesis))
    config_file = tmp_path / "publisher.yaml"
    config_file.write_text(json.dumps({
        "accounts": ["123456789012"], "regions": ["us-east-1"],
        "output": {"kind": "kinesis", "stream_name": "flowdredge-metdata", "region": "us-east-1",
                   "endpoint_url": endpoint}}))
    assert cli.main(["run", "--once", "--config", str(config_file)]) == 1
    said = capsys.readouterr().err
    assert said.endswith("output stream flowdredge-metdata: ResourceNotFoundException: Stream arn "
                         "arn:aws:kinesis:us-east-1:000000000000:stream/flowdredge-metdata not "
                         "found\n"), said
    assert not reads
