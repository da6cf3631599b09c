"""Writes flow logs and the IP-metadata changelog to Kinesis as AWS and flowdredge-publisher do,
from files (the synthetic estate of job.generate, or your own): for the streaming demo, the
tests and the benchmarks. boto3 only (no pyflink).

Flow logs travel as CloudWatch Logs subscription records: one gzip JSON envelope per batch of
log events of one log stream (one network interface), partition key the log stream, as a
cross-account log destination delivers them. The changelog travels one event per record, in
order, under one partition key (one shard keeps the order).
"""
import base64
import gzip
import json
import os
import time
from dataclasses import dataclass

from connectors.kinesis.client import cloudwatch_record
from connectors.publisher.sinks import KinesisSink
from synthetic.estate import Scenario, generate
from job.replay import delivered_at, delivery_order, expand
from schemas.metadata import HEARTBEAT

METADATA_PARTITION_KEY = "ip-metadata"


@dataclass
class FlowRecord:
    delivered: int      # epoch seconds: the delivery stamp of the file it came from
    account: str
    data: bytes
    partition_key: str
    lines: int          # flow-log lines (log events) it holds


def _s3_records(path, events_per_record):
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        header = fh.readline().split()
        rows = [line.rstrip("\n") for line in fh if line.strip()]
    pos = {name: i for i, name in enumerate(header)}
    by_interface = {}
    for line in rows:
        fields = line.split()
        by_interface.setdefault((fields[pos["account-id"]], fields[pos["interface-id"]]),
                                []).append(line)
    region = path.split(os.sep + "vpcflowlogs" + os.sep, 1)[-1].split(os.sep, 1)[0]
    stamp = delivered_at(path)
    for (account, interface), lines in sorted(by_interface.items()):
        for i in range(0, len(lines), events_per_record):
            part = lines[i:i + events_per_record]
            data = cloudwatch_record(part, owner=account, log_group=f"/vpc/flowlogs/{region}",
                                     log_stream=f"{interface}-all", timestamp_ms=stamp * 1000,
                                     first_id=i)
            yield FlowRecord(stamp, account, data, f"{interface}-all", len(part))


def _cloudwatch_records(path):
    account = os.path.basename(path).split("_", 1)[0]
    stamp = delivered_at(path)
    with open(path, encoding="ascii") as fh:
        for n, line in enumerate(fh):
            if line.strip():
                data = base64.b64decode(line)
                events = len(json.loads(gzip.decompress(data))["logEvents"])
                yield FlowRecord(stamp, account, data, f"{account}-{n}", events)


def flow_records(paths, events_per_record: int = 500) -> list:
    """Every flow-log file under `paths` (S3 .log.gz with a header, or job.generate's base64
    CloudWatch records) as Kinesis records, in delivery order."""
    records = []
    for path in sorted(expand(paths), key=delivery_order):
        if path.endswith(".log.gz"):
            records.extend(_s3_records(path, events_per_record))
        else:
            records.extend(_cloudwatch_records(path))
    return records


def put_flow_records(sink, records, partition_key: str = None) -> None:
    """`sink`: a connectors.publisher.sinks.KinesisSink (batches, retries)."""
    sink.put([{"Data": r.data, "PartitionKey": partition_key or r.partition_key}
              for r in records])


def put_changelog_lines(sink, lines) -> None:
    sink.put([{"Data": line.encode("utf-8"), "PartitionKey": METADATA_PARTITION_KEY}
              for line in lines if line.strip()])


class Estate:
    """A synthetic estate (job.generate) cut into AWS deliveries, with the changelog's
    snapshot (the ASSIGNs before the traffic) apart from its changes."""

    def __init__(self, folder: str, scenario: Scenario, events_per_record: int = 500):
        self.scenario = scenario
        self.generated = generate(scenario, folder)
        self.flow_dir = os.path.join(folder, "flows")
        self.records = flow_records([self.flow_dir], events_per_record)
        with open(self.generated.metadata_file) as fh:
            lines = [line for line in fh if line.strip()]
        snapshot_ts = (scenario.start - 3600) * 1000
        cut = next(i for i, line in enumerate(lines) if json.loads(line)["ts"] != snapshot_ts)
        self.snapshot = os.path.join(folder, "snapshot.jsonl")
        with open(self.snapshot, "w") as fh:
            fh.writelines(lines[:cut])
        self.changes = lines[cut:]
        self.deliveries = sorted({r.delivered for r in self.records})

    def changes_until(self, delivered_s: int) -> int:
        """How many changelog lines the publisher wrote before `delivered_s`: up to the first
        HEARTBEAT at or after it. Flows of a delivery then reach the job before the metadata
        they need, as they may in production."""
        for i, line in enumerate(self.changes):
            event = json.loads(line)
            if event["type"] == HEARTBEAT and event["ts"] >= delivered_s * 1000:
                return i + 1
        return len(self.changes)


class EstateWriter:
    """Writes an Estate's deliveries to flow streams (by account) and its changelog to the
    metadata stream, the changes of a delivery after its flows. `rate` (flows per second,
    None: as fast as Kinesis takes them) paces the flows; `sleep`/`clock` are time.sleep and
    time.monotonic unless given."""

    def __init__(self, kinesis, estate: Estate, streams: dict, metadata_stream: str,
                 rate: float = None, sleep=time.sleep, clock=time.monotonic,
                 partition_key: str = None):
        """`partition_key`: one key for every flow record (one shard), instead of each
        record's log stream."""
        self.kinesis, self.estate = kinesis, estate
        self.partition_key = partition_key
        self.streams = streams                  # account -> stream name
        self.metadata = KinesisSink(kinesis, metadata_stream, METADATA_PARTITION_KEY)
        self.rate, self.sleep, self.clock = rate, sleep, clock
        self.changes_written = 0
        self.records_written = 0
        self.flows_written = 0

    def deliver(self, deliveries, stop=lambda: False) -> None:
        began, flows_at_start = self.clock(), self.flows_written
        for delivered in deliveries:
            for account, stream in self.streams.items():
                records = [r for r in self.estate.records
                           if r.delivered == delivered and r.account == account]
                for i in range(0, len(records), 50):
                    if stop():
                        return
                    batch = records[i:i + 50]
                    put_flow_records(KinesisSink(self.kinesis, stream, "unused"), batch,
                                     self.partition_key)
                    self.records_written += len(batch)
                    self.flows_written += sum(r.lines for r in batch)
                    if self.rate:
                        due = began + (self.flows_written - flows_at_start) / self.rate
                        self.sleep(max(0.0, due - self.clock()))
            until = self.estate.changes_until(delivered)
            put_changelog_lines(self.metadata, self.estate.changes[self.changes_written:until])
            self.changes_written = max(self.changes_written, until)

    def put_raw(self, stream: str, data: bytes, key: str = "raw") -> None:
        KinesisSink(self.kinesis, stream, key).put([{"Data": data, "PartitionKey": key}])
        self.records_written += 1

    def finish(self) -> None:
        """The rest of the changelog."""
        put_changelog_lines(self.metadata, self.estate.changes[self.changes_written:])
        self.changes_written = len(self.estate.changes)
