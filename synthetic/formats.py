"""How AWS and a metadata publisher write what the job reads, for every synthetic input: S3
delivery files of VPC flow logs, CloudWatch Logs subscription records and the metadata
changelog. The callers choose the content (lines, event ids, the random draws). Pure Python.

Gzip headers carry no time (mtime 0), so the same inputs give the same bytes.
"""
import base64
import gzip
import json
import os
import time

from flowdredge.schemas.cloudwatch import record
from flowdredge.schemas.flowlog import DEFAULT_FORMAT
from flowdredge.schemas.metadata import HEARTBEAT

HEADER = " ".join(DEFAULT_FORMAT)


def stamp(epoch_s: int) -> str:
    """A delivery file's time in AWS's names: 20260101T0005Z."""
    return time.strftime("%Y%m%dT%H%MZ", time.gmtime(epoch_s))


def write_s3(flows_dir: str, account: str, region: str, stamp: str, lines: list, *,
             flow_log: str, part: int = 1, compresslevel: int = 9, header: str = HEADER) -> str:
    """One S3 delivery file of flow-log lines (`header`'s format), header line first, at AWS's key
    under `flows_dir`: AWSLogs/<account>/vpcflowlogs/<region>/YYYY/MM/DD/
    <account>_vpcflowlogs_<region>_<flow_log>_<stamp>_<part>.log.gz. Returns its path."""
    day = f"{stamp[:4]}/{stamp[4:6]}/{stamp[6:8]}"
    folder = os.path.join(flows_dir, "AWSLogs", account, "vpcflowlogs", region, day)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{account}_vpcflowlogs_{region}_{flow_log}_{stamp}_{part:04d}"
                                ".log.gz")
    text = header + "\n" + "".join(line + "\n" for line in lines)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(text.encode(), compresslevel=compresslevel, mtime=0))
    return path


def write_cloudwatch(flows_dir: str, account: str, region: str, stamp: str, events: list, *,
                     log_stream: str, events_per_record: int, compresslevel: int,
                     compact: bool = False) -> tuple:
    """CloudWatch Logs subscription records of `events` ((id, timestamp ms, message) each): gzip
    JSON envelopes of up to `events_per_record` events, base64, one per line (as job.replay
    stages them), in flows_dir/cloudwatch/<account>_<region>_<stamp>_records.b64. `compact`:
    JSON without spaces. Returns the path and the number of records."""
    folder = os.path.join(flows_dir, "cloudwatch")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{account}_{region}_{stamp}_records.b64")
    records = 0
    with open(path, "w", encoding="ascii") as fh:
        for i in range(0, len(events), events_per_record):
            data = record(events[i:i + events_per_record], compresslevel=compresslevel,
                          owner=account, log_group=f"/vpc/flowlogs/{region}",
                          log_stream=log_stream, compact=compact)
            fh.write(base64.b64encode(data).decode("ascii") + "\n")
            records += 1
    return path, records


def write_changelog(path: str, changes: list, *, snapshot_ts: int, start_ms: int, end_ms: int,
                    disorder_ms: int, randbelow) -> None:
    """The metadata changelog (JSON Lines) as a publisher sends it. `changes`: (ts ms, JSON
    line) in the order they happened, the snapshot's first (dated `snapshot_ts`, sent at once);
    every later change is sent up to `disorder_ms` after its ts (`randbelow(n)`: a random
    integer in [0, n), drawn per change in order), and a HEARTBEAT every minute from `start_ms`
    until the changes up to `end_ms` are covered."""
    sent = []   # (send ms, order, line)
    for n, (ts, line) in enumerate(changes):
        delay = 0 if ts == snapshot_ts else randbelow(disorder_ms + 1)
        sent.append((ts + delay, n, line))
    for n, hb in enumerate(range(start_ms, end_ms + disorder_ms + 60_001, 60_000)):
        # Sent at hb: every change with ts <= hb - disorder has been sent by then.
        sent.append((hb, 10**9 + n, json.dumps({"type": HEARTBEAT, "ts": hb - disorder_ms})))
    sent.sort(key=lambda e: (e[0], e[1]))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(line + "\n" for _t, _n, line in sent)
