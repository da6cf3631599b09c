"""A mixed stream of good input and every kind of bad input, including a gzip bomb of 1 GiB,
through the job on the mini-cluster: good flows aggregate exactly, each bad item is
dead-lettered once with its reason, the job does not fail (restarts are off, so any failure
would fail the run), and memory stays bounded."""
import base64
import gzip
import json
import os
import resource
import zlib
from collections import Counter

import pytest

from helpers import job_aggregates, read_records, run_replay, total_counts
from job.config import Config
from job.generate import Scenario, generate
import reference

pytestmark = pytest.mark.minicluster

HEADER = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
          "bytes start end action log-status")
T = 1767225600
BAD_LINES = {
    "field_count": f"2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 {T}",
    "not_a_number": f"2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 x 6 1 100 {T} {T} ACCEPT OK",
    "bad_address": f"2 123456789012 eni-1 10.0.0.1 10.0.0.300 1 2 6 1 100 {T} {T} ACCEPT OK",
    "port_out_of_range": f"2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 99999 6 1 100 {T} {T} ACCEPT OK",
    "end_before_start": f"2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 {T} {T - 9} ACCEPT OK",
    "timestamp_out_of_range": "2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 5 6 ACCEPT OK",
}
BAD_EVENTS = {
    "unknown_type": '{"type":"MOVE","ts":1,"ip":"10.0.0.1"}',
    "missing_ip": '{"type":"UNASSIGN","ts":1}',
    "missing_ts": '{"type":"ASSIGN","ip":"10.0.0.1","app":"x"}',
    "bad_address": '{"type":"ASSIGN","ts":1,"ip":"10.0.0.256","app":"x"}',
    "not_json": "{not json",
}
BOMB_BYTES = 1 << 30


def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip-compressed block by block (about 1 MB)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (16 << 20)
    parts = [deflate.compress(block) for _ in range(BOMB_BYTES // len(block))]
    return b"".join(parts) + deflate.flush()


def bad_records():
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return {
        "too_large": b64(gzip_bomb()),
        "not_gzip": b64(b"just some text that is not compressed"),
        "not_json": b64(gzip.compress(b"not json at all")),
        "not_cloudwatch": b64(gzip.compress(b'{"some": "json"}')),
        "bad_gzip": b64(gzip.compress(b'{"messageType": "DATA_MESSAGE"}')[:-12]),
        "bad_base64": "QUJD!!!notbase64====",
    }


def test_bad_input_is_dead_lettered_and_good_flows_aggregate_exactly(tmp_path):
    inputs = tmp_path / "in"
    out = generate(Scenario(minutes=4, flows_per_minute=300, seed=3), str(inputs))
    flows_dir = str(inputs / "flows")
    bad = tmp_path / "bad"
    bad.mkdir()
    with gzip.open(bad / "x_vpcflowlogs_r_fl-1_20260101T0006Z_bad.log.gz", "wt") as fh:
        fh.write(HEADER + "\n" + "\n".join(BAD_LINES.values()) + "\n")
    records = bad_records()
    # A base64 file must start with a base64-looking line to be taken as one.
    (bad / "x_20260101T0007Z_records.b64").write_text("\n".join(
        [records["not_gzip"]] + [r for k, r in records.items() if k != "not_gzip"]) + "\n")
    meta_bad = tmp_path / "bad-events.jsonl"
    meta_bad.write_text("\n".join(BAD_EVENTS.values()) + "\n")

    # Loopback runs the Python workers inside this process, so its peak RSS covers them.
    config = Config().replace(job={"parallelism": 1, "checkpoint_interval_seconds": 2,
                                   "python_workers": "loopback"})
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    output = str(tmp_path / "out")
    run_replay([flows_dir, str(bad)], [out.metadata_file, str(meta_bad)], output, config)
    peak_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    print(f"peak RSS growth of the process running the Python workers: {peak_growth_mb:.0f} MB")

    assert job_aggregates(output) == reference.aggregates([flows_dir], [out.metadata_file])
    dead = list(read_records(output, "dead_letter"))
    assert Counter((d["stage"], d["reason"]) for d in dead) == Counter(
        [("flows", r) for r in BAD_LINES] + [("flows", r) for r in records]
        + [("metadata", r) for r in BAD_EVENTS])
    line_dead = {d["reason"]: d["excerpt"] for d in dead if d["reason"] in BAD_LINES}
    assert line_dead == BAD_LINES
    assert all(len(d["excerpt"]) <= 256 for d in dead)
    counts = total_counts(output)
    assert counts["flows_aggregated"] == out.flows
    assert counts["dead_letter"] == len(BAD_LINES) + len(records)
    assert counts["metadata_dead_letter"] == len(BAD_EVENTS)
    # Inflating the bomb would have taken 1 GiB in this process; the cap is 64 MiB.
    assert peak_growth_mb < 512
