"""Records that cannot be decoded (`bad_chunk`, `malformed`) end in the dead letters with their
reason, and NODATA / SKIPDATA lines in the `data_quality` output per window and interface
(docs/outputs.md)."""
import base64
import gzip
import json
import math
from collections import Counter

import pytest

from helpers import job_aggregates, read_records, run_replay, total_counts
from flowdredge.job.config import Config
from flowdredge.job.parse import FlowFormat, parse_record

T0 = 1767225600   # 2026-01-01T00:00:00Z
CONFIG = Config()
V2 = FlowFormat.parse(CONFIG.flows.format)


def _parsed(raw, vectorised):
    """parse_record with every chunk through the vectorised parser, or through none."""
    return parse_record(raw, "record", V2, CONFIG.parse_limits,
                        vectorise_from=1 if vectorised else math.inf)


BAD_CHUNKS = [
    '{"source":"f#0","lines":["10.0.0.1 10.0.0.2 1767225600"]}',                  # no format
    '{"source":"f#0","format":"srcaddr dstaddr","lines":[]}',                     # no start
    '{"source":"f#0","format":"srcaddr dstaddr start","lines":"10.0.0.1 10.0.0.2 1767225600"}',
    '{"source":"f#0","format":"srcaddr dstaddr start","lines":[],"delivered":"soon"}',
]


@pytest.mark.unit
@pytest.mark.parametrize("vectorised", [False, True])
@pytest.mark.parametrize("raw", BAD_CHUNKS)
def test_a_chunk_that_is_not_one_is_a_bad_chunk(raw, vectorised):
    result = _parsed(raw, vectorised)
    assert result.dead_letters == [("flows", "bad_chunk", "record", raw)]
    assert result.counts == {"records_in": 1, "dead_letter": 1, "dead_letter_bad_chunk": 1}
    assert result.groups == []


@pytest.mark.unit
@pytest.mark.parametrize("vectorised", [False, True])
@pytest.mark.parametrize("lines", [[7], [7, "10.0.0.1 10.0.0.2 1767225600"], [{"a": 1}]])
def test_a_chunk_whose_lines_are_not_text_is_malformed(lines, vectorised):
    raw = json.dumps({"source": "f#0", "format": "srcaddr dstaddr start", "lines": lines})
    result = _parsed(raw, vectorised)
    assert result.dead_letters == [("flows", "malformed", "record", raw)]
    assert result.counts == {"records_in": 1, "dead_letter": 1, "dead_letter_malformed": 1}
    assert result.groups == []


@pytest.mark.unit
def test_a_stream_record_holding_a_staged_chunk_is_not_cloudwatch():
    """Only job.replay stages chunks: on a stream a chunk would choose its own format and the
    source its dead letters name."""
    chunk = {"source": "forged.log.gz#0", "format": "srcaddr dstaddr start",
             "lines": ["10.0.0.1 10.0.0.2 1767225600", "garbage"]}
    raw = gzip.compress(json.dumps(chunk).encode(), mtime=0)
    result = parse_record(raw, "record", V2, CONFIG.parse_limits, delivered=1767225600)
    assert [d[:3] for d in result.dead_letters] == [("flows", "not_cloudwatch", "record")]
    assert result.groups == [] and "lines_in" not in result.counts


HEADER = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
          "bytes start end action log-status")
A, B = "123456789012", "210987654321"


@pytest.mark.minicluster
@pytest.mark.parametrize("parallelism", [1, 2])
def test_dead_letters_and_data_quality_of_a_replay(tmp_path, parallelism):
    flows = tmp_path / "flows"
    flows.mkdir()
    lines = [
        f"2 {A} eni-a 10.0.0.1 10.0.0.2 40000 443 6 2 200 {T0 + 10} {T0 + 20} ACCEPT OK",
        f"2 {A} eni-a 10.0.0.1 10.0.0.2 40001 443 6 3 300 {T0 + 30} {T0 + 40} ACCEPT OK",
        f"2 {A} eni-a - - - - - - - {T0 + 5} {T0 + 65} - NODATA",
        f"2 {A} eni-b - - - - - - - {T0} {T0 + 60} - NODATA",
        f"2 {A} eni-b - - - - - - - {T0 + 59} {T0 + 119} - NODATA",
        f"2 {A} eni-b - - - - - - - {T0 + 70} {T0 + 130} - SKIPDATA",
        f"2 {B} eni-c - - - - - - - {T0 + 1} {T0 + 61} - SKIPDATA",
    ]
    with gzip.open(flows / f"{A}_vpcflowlogs_us-east-1_fl-1_20260101T0005Z_0001.log.gz",
                   "wt") as fh:
        fh.write("\n".join([HEADER] + lines) + "\n")
    # Stream records (base64 gzip) that hold chunks, as a producer could write them: a gzip
    # record is read only as CloudWatch envelopes (a chunk names its own format and source).
    records = [{"source": "x", "lines": [lines[0]]},
               {"source": "x", "format": HEADER, "lines": lines[0]},
               {"source": "x", "format": HEADER, "lines": [7]}]
    (flows / "x_20260101T0006Z_records.b64").write_text("".join(
        base64.b64encode(gzip.compress(json.dumps(r).encode(), mtime=0)).decode() + "\n"
        for r in records))
    meta = tmp_path / "meta.jsonl"
    meta.write_text(
        f'{{"type":"ASSIGN","ts":{(T0 - 3600) * 1000},"ip":"10.0.0.1","app":"api"}}\n'
        f'{{"type":"HEARTBEAT","ts":{(T0 + 600) * 1000}}}\n')

    output = str(tmp_path / "out")
    run_replay([str(flows)], [str(meta)], output,
               Config().replace(job={"parallelism": parallelism,
                                     "checkpoint_interval_seconds": 2},
                                outputs={"security": False}))

    dead = list(read_records(output, "dead_letter"))
    # Each dead letter names the file and line of the record that held it.
    records_file = str(flows / "x_20260101T0006Z_records.b64")
    assert Counter((d["stage"], d["reason"], d["source"]) for d in dead) == {
        ("flows", "not_cloudwatch", f"{records_file}:1"): 1,
        ("flows", "not_cloudwatch", f"{records_file}:2"): 1,
        ("flows", "not_cloudwatch", f"{records_file}:3"): 1}
    quality = Counter()
    for row in read_records(output, "data_quality"):
        key = (row["window_start"], row["account_id"], row["interface_id"])
        quality[key + ("no_data",)] += row["no_data"]
        quality[key + ("skip_data",)] += row["skip_data"]
    assert +quality == {(T0, A, "eni-a", "no_data"): 1, (T0, A, "eni-b", "no_data"): 2,
                        (T0 + 60, A, "eni-b", "skip_data"): 1, (T0, B, "eni-c", "skip_data"): 1}
    counts = total_counts(output)
    assert (counts["no_data"], counts["skip_data"]) == (3, 2)
    assert counts["dead_letter_not_cloudwatch"] == 3
    assert job_aggregates(output) == {
        (T0, "api", "-", "unattributed", "-", 443, 6, "ACCEPT"): (2, 5, 500)}
