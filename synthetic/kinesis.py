"""A synthetic estate (synthetic.estate) written to Kinesis as AWS and flowdredge-publisher
would: its deliveries as CloudWatch Logs subscription records on flow streams, its changelog on
the metadata stream (synthetic.producer does the writing). For the streaming demo, the
tests and the benchmarks.
"""
import json
import os
import time

from flowdredge.connectors.publisher.sinks import KinesisSink
from flowdredge.schemas.metadata import HEARTBEAT
from flowdredge.synthetic.estate import Scenario, generate
from flowdredge.synthetic.producer import (METADATA_PARTITION_KEY, flow_records,
                                           put_changelog_lines, put_flow_records)


class Estate:
    """A synthetic estate (synthetic.estate) cut into AWS deliveries, with the changelog's
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
        self.snapshot_events = cut
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
                 partition_key: str = None, hash_keys: dict = None):
        """`partition_key`: one key for every flow record (one shard), instead of each
        record's log stream. `hash_keys`: stream -> its shards' starting hash keys; that
        stream's flow records go to its shards in turn, not by their keys' hash."""
        self.kinesis, self.estate = kinesis, estate
        self.partition_key = partition_key
        self.hash_keys = hash_keys or {}
        self.sent = dict.fromkeys(self.hash_keys, 0)   # stream -> its flow records written
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
                                     self.partition_key, self._hash_keys(stream, len(batch)))
                    self.records_written += len(batch)
                    self.flows_written += sum(r.lines for r in batch)
                    if self.rate:
                        due = began + (self.flows_written - flows_at_start) / self.rate
                        self.sleep(max(0.0, due - self.clock()))
            until = self.estate.changes_until(delivered)
            put_changelog_lines(self.metadata, self.estate.changes[self.changes_written:until])
            self.changes_written = max(self.changes_written, until)

    def _hash_keys(self, stream: str, records: int):
        shards = self.hash_keys.get(stream)
        if not shards:
            return None
        first, self.sent[stream] = self.sent[stream], self.sent[stream] + records
        return [shards[n % len(shards)] for n in range(first, first + records)]

    def put_raw(self, stream: str, data: bytes, key: str = "raw") -> None:
        KinesisSink(self.kinesis, stream, key).put([{"Data": data, "PartitionKey": key}])
        self.records_written += 1

    def finish(self) -> None:
        """The rest of the changelog."""
        put_changelog_lines(self.metadata, self.estate.changes[self.changes_written:])
        self.changes_written = len(self.estate.changes)
