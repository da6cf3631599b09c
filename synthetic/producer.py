"""Writes flow logs and the IP-metadata changelog to Kinesis as AWS and flowdredge-publisher do,
from files (a synthetic estate of synthetic.estate, or your own; read with job.replay): for the
streaming demo, the tests and the benchmarks. boto3 only (no pyflink).

Flow logs travel as CloudWatch Logs subscription records: one gzip JSON envelope per batch of
log events of one log stream (one network interface), partition key the log stream, as a
cross-account log destination delivers them (a subscription filter's ByLogStream
distribution); the records of synthetic CloudWatch files, one log stream for every interface,
a key each (its Random distribution). The changelog travels one event per record, in
order, under one partition key (one shard keeps the order).
"""
import base64
import gzip
import json
import os
from dataclasses import dataclass

from flowdredge.job.replay import delivered_at, delivery_order, expand
from flowdredge.schemas.cloudwatch import record
from flowdredge.schemas.metadata import HEARTBEAT

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
            data = record([(str(i + j), stamp * 1000, line) for j, line in enumerate(part)],
                          compresslevel=6, owner=account, log_group=f"/vpc/flowlogs/{region}",
                          log_stream=f"{interface}-all")
            yield FlowRecord(stamp, account, data, f"{interface}-all", len(part))


def _cloudwatch_records(path):
    account = os.path.basename(path).split("_", 1)[0]
    stamp = delivered_at(path)
    with open(path, encoding="ascii") as fh:
        for n, line in enumerate(fh):
            if line.strip():
                data = base64.b64decode(line)
                events = len(json.loads(gzip.decompress(data))["logEvents"])
                # A key a record, as a subscription filter's Random distribution spreads them:
                # these files hold every interface's events under one log stream, which
                # ByLogStream would put in one shard.
                yield FlowRecord(stamp, account, data, f"{account}-{stamp}-{n}", events)


def flow_records(paths, events_per_record: int = 500) -> list:
    """Every flow-log file under `paths` (S3 .log.gz with a header, or the base64 CloudWatch
    records synthetic.formats writes) as Kinesis records, in delivery order."""
    records = []
    for path in sorted(expand(paths), key=delivery_order):
        if path.endswith(".log.gz"):
            records.extend(_s3_records(path, events_per_record))
        else:
            records.extend(_cloudwatch_records(path))
    return records


def put_flow_records(sink, records, partition_key: str = None, hash_keys=None) -> None:
    """`sink`: a connectors.publisher.sinks.KinesisSink (batches, retries). `hash_keys`: an
    ExplicitHashKey a record (the shard it goes to), instead of its partition key's hash."""
    entries = [{"Data": r.data, "PartitionKey": partition_key or r.partition_key}
               for r in records]
    for entry, hash_key in zip(entries, hash_keys or ()):
        entry["ExplicitHashKey"] = hash_key
    sink.put(entries)


def put_changelog_lines(sink, lines) -> None:
    """Many lines to a record, as the publisher writes them (KinesisSink.write): a HEARTBEAT in
    a record and a call of its own once the lines before it are in the stream, so that it
    cannot overtake a change sent again after a failure."""
    pending = []
    for line in lines:
        if not line.strip():
            continue
        if _is_heartbeat(line):
            sink.put_lines(pending)
            sink.put_lines([line.encode("utf-8")])
            pending = []
        else:
            pending.append(line.encode("utf-8"))
    sink.put_lines(pending)


def _is_heartbeat(line: str) -> bool:
    try:
        event = json.loads(line)
    except ValueError:   # a bad line, which the job dead-letters
        return False
    return isinstance(event, dict) and event.get("type") == HEARTBEAT
