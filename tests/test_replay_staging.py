import base64
import gzip
import json

import pytest

from job.ownership import changelog_lines
from job.replay import InputError, delivery_order, stage_flows, stage_metadata

pytestmark = pytest.mark.unit
HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
LINE = "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 60 70 ACCEPT OK"


def test_s3_files_become_chunks_in_delivery_order(tmp_path):
    late = tmp_path / "a" / "x_vpcflowlogs_r_fl-1_20260101T0010Z_1.log.gz"
    early = tmp_path / "b" / "x_vpcflowlogs_r_fl-1_20260101T0005Z_1.log.gz"
    for p in (late, early):
        p.parent.mkdir()
        with gzip.open(p, "wt") as fh:
            fh.write(HEADER + "\n" + "\n".join([LINE] * 5) + "\n")
    staged = tmp_path / "staged.txt"
    stats = stage_flows([str(tmp_path / "a"), str(tmp_path / "b")], str(staged), chunk_lines=2)
    chunks = [json.loads(l) for l in staged.read_text().splitlines()]
    assert stats.files == 2 and stats.records == 6 and stats.lines == 10
    assert [c["source"].split("/")[-2] for c in chunks][:3] == ["b"] * 3
    assert chunks[0]["format"] == HEADER and chunks[0]["lines"] == [LINE, LINE]


def test_cloudwatch_inputs_pass_through(tmp_path):
    record = gzip.compress(b'{"messageType":"CONTROL_MESSAGE"}')
    (tmp_path / "one.gz").write_bytes(record)
    (tmp_path / "many.b64").write_text(base64.b64encode(record).decode() + "\n" * 2)
    staged = tmp_path / "out" / "staged.txt"
    stage_flows([str(tmp_path / "one.gz"), str(tmp_path / "many.b64")], str(staged), 100)
    assert staged.read_text().splitlines() == [base64.b64encode(record).decode()] * 2


def test_unreadable_inputs_name_the_file(tmp_path):
    (tmp_path / "bad.log").write_text("this is not a header\n")
    with pytest.raises(InputError, match="bad.log"):
        stage_flows([str(tmp_path / "bad.log")], str(tmp_path / "s.txt"), 10)
    with pytest.raises(InputError, match="no such file"):
        stage_flows([str(tmp_path / "missing")], str(tmp_path / "s.txt"), 10)
    with pytest.raises(InputError, match="no such metadata file"):
        stage_metadata([str(tmp_path / "missing.jsonl")], str(tmp_path / "m.jsonl"))


def test_metadata_files_are_concatenated_in_order_in_chunks(tmp_path):
    (tmp_path / "snap.jsonl.gz").write_bytes(gzip.compress(b'{"a":1}\n{"a":2}'))
    (tmp_path / "changes.jsonl").write_text('{"a":3}\r\n\n  \n{"a":"\u2028"}\nnot json\n')
    lines = ['{"a":1}', '{"a":2}', '{"a":3}', '{"a":"\u2028"}', "not json"]
    for size, chunks in [(2, [lines[:2], lines[2:4], lines[4:]]), (5, [lines]), (9, [lines])]:
        staged = tmp_path / f"m{size}.jsonl"
        n = stage_metadata([str(tmp_path / "snap.jsonl.gz"), str(tmp_path / "changes.jsonl")],
                           str(staged), size)
        # One staged line per chunk, across file boundaries; the job reads them back as lines.
        records = staged.read_text(encoding="utf-8").split("\n")
        assert n == 5 and records[-1] == ""
        assert [changelog_lines(r) for r in records[:-1]] == chunks


def test_delivery_order_uses_the_aws_stamp():
    assert delivery_order("z/1_vpcflowlogs_r_fl_20260101T0000Z_a.log.gz") < \
        delivery_order("a/1_vpcflowlogs_r_fl_20260101T0005Z_a.log.gz")
