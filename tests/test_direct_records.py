"""The job's own reading of AWS-format flow files (job.replay.read_flow_file, file by file) gives
exactly the records staging writes (job.replay.stage_flows, one line each): one code path."""
import base64
import gzip
import json
import os

import pytest

from helpers import moto_server
from flowdredge.job.config import FlowsSection
from flowdredge.job.replay import InputError, file_records, flow_files, read_flow_file, stage_flows
from flowdredge.synthetic.estate import Scenario, generate

HEADER = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
          "bytes start end action log-status")
LINE = "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 60 70 ACCEPT OK"


def _records_of(locations, chunk_lines, flows=FlowsSection(), s3_client=None):
    files, _ = flow_files(locations, s3_client)
    return [json.dumps(record, separators=(",", ":"))
            for path in files
            for record in read_flow_file(path, chunk_lines, flows, s3_client=s3_client)]


def _staged(locations, tmp_path, chunk_lines, flows=FlowsSection()):
    staged = tmp_path / f"staged-{chunk_lines}.txt"
    stats = stage_flows(locations, str(staged), chunk_lines, flows=flows)
    return staged.read_text().splitlines(), stats


def _aws_example_files(folder, aws_examples):
    """AWS's documented examples as S3 delivery files (one per format, the format its header)
    and as a CloudWatch envelope, gzip, and base64 lines."""
    os.makedirs(folder)
    default = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol "
               "packets bytes start end action log-status")
    for i, (fmt, lines) in enumerate(sorted(aws_examples.items())):
        header = default if fmt == "default" else fmt
        name = f"123456789010_vpcflowlogs_us-east-1_fl-1_2026010{i + 1}T0005Z_ab{i}.log.gz"
        with gzip.open(os.path.join(folder, name), "wt") as fh:
            fh.write("\n".join([header, *lines]) + "\n")
    envelope = {"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "eni-1-all",
                "logEvents": [{"id": str(i), "timestamp": 1418530010000, "message": line}
                              for i, line in enumerate(aws_examples["default"])]}
    record = gzip.compress(json.dumps(envelope).encode())
    with open(os.path.join(folder, "cw_20260101T0001Z_envelope.gz"), "wb") as fh:
        fh.write(record)
    with open(os.path.join(folder, "cw_20260101T0002Z_records.b64"), "w") as fh:
        fh.write(base64.b64encode(record).decode() + "\n\n" + base64.b64encode(record).decode())


def _bad_files(folder):
    """One file of each way to fail, and lines too long, fields unknown."""
    os.makedirs(folder)
    body = gzip.compress(("\n".join([HEADER] + [LINE] * 3000) + "\n").encode())
    corrupt = bytearray(body)
    corrupt[-6] ^= 0xFF   # the CRC
    files = {
        "a_20260101T0001Z_truncated.log.gz": body[:len(body) // 2],
        "a_20260101T0002Z_crc.log.gz": bytes(corrupt),
        "a_20260101T0003Z_empty.log": b"",
        "a_20260101T0004Z_header.log": f"not a header\n{LINE}\n".encode(),
        "a_20260101T0005Z_long.log": (f"{HEADER} new-field\n{LINE} x\n" + "9" * 9000
                                      + f"\n\n{LINE} y\n").encode(),
        "a_20260101T0006Z_cut-envelope.gz": gzip.compress(b'{"messageType":"DATA_MESSAGE"')[:-4],
    }
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(data)


@pytest.mark.unit
@pytest.mark.parametrize("chunk_lines", [1, 3, 5000])
def test_records_equal_the_staged_lines_for_aws_examples_and_bad_files(tmp_path, aws_examples,
                                                                      chunk_lines):
    _aws_example_files(str(tmp_path / "examples"), aws_examples)
    _bad_files(str(tmp_path / "bad"))
    locations = [str(tmp_path / "examples"), str(tmp_path / "bad")]
    staged, stats = _staged(locations, tmp_path, chunk_lines)
    assert _records_of(locations, chunk_lines) == staged
    assert len(stats.dead_files) == 5 and stats.unknown_fields == {"new-field": 1}
    dead = [json.loads(line) for line in staged if '"error"' in line]
    # A truncated or corrupt gzip file is one record naming it, nothing else of it.
    for name in ("truncated.log.gz", "crc.log.gz", "cut-envelope.gz"):
        of_file = [json.loads(line) for line in staged if f"_{name}" in line]
        assert [r.get("error") for r in of_file] == ["bad_gzip"]
    assert sorted(r["error"] for r in dead) == ["bad_gzip", "bad_gzip", "bad_gzip", "bad_header",
                                                "empty_file"]


@pytest.mark.unit
def test_records_equal_the_staged_lines_for_the_synthetic_estate(tmp_path):
    generate(Scenario(minutes=4, flows_per_minute=300, seed=5), str(tmp_path / "estate"))
    flows = [str(tmp_path / "estate" / "flows")]
    for chunk_lines in (7, 5000):
        staged, stats = _staged(flows, tmp_path, chunk_lines)
        assert stats.lines > 300 and not stats.dead_files
        assert _records_of(flows, chunk_lines) == staged


@pytest.mark.unit
def test_a_file_read_alone_gives_its_records_and_counts(tmp_path):
    path = tmp_path / "x_vpcflowlogs_r_fl-1_20260101T0005Z_1.log.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(HEADER + "\n" + "\n".join([LINE] * 5) + "\n")
    records = list(file_records(str(path), 2))
    assert [r["first_line"] for r in records] == [2, 4, 6]
    assert records[0]["delivered"] == 1767225900
    assert records[0]["not_after"] == int(path.stat().st_mtime)
    # Read from elsewhere (a downloaded object), named by its URL, with the object's time.
    named = list(file_records("s3://b/k_20260101T0005Z_1.log.gz", 5000, local=str(path),
                              modified=1767226000))
    assert named[0]["source"] == "s3://b/k_20260101T0005Z_1.log.gz"
    assert named[0]["not_after"] == 1767226000 and named[0]["delivered"] == 1767225900
    (tmp_path / "bad.log").write_text("not a header\n")
    with pytest.raises(InputError, match="bad.log"):
        list(read_flow_file(str(tmp_path / "bad.log"), 10, FlowsSection(strict=True)))


@pytest.mark.aws
def test_s3_prefixes_are_listed_in_delivery_order_and_read_like_files(tmp_path, aws_examples):
    import boto3
    _aws_example_files(str(tmp_path / "examples"), aws_examples)
    _bad_files(str(tmp_path / "bad"))
    with moto_server(tmp_path) as url:
        client = boto3.client("s3", endpoint_url=url)
        client.create_bucket(Bucket="flows")
        for folder in ("examples", "bad"):
            for name in sorted(os.listdir(tmp_path / folder)):
                client.upload_file(str(tmp_path / folder / name), "flows",
                                   f"AWSLogs/{folder}/{name}")
        client.put_object(Bucket="flows", Key="AWSLogs/examples/", Body=b"")      # a folder
        client.put_object(Bucket="flows", Key="AWSLogs/examples/.hidden", Body=b"x")
        client.put_object(Bucket="flows", Key="AWSLogsOther/x.log", Body=b"x")    # not below

        files, duplicates = flow_files(["s3://flows/AWSLogs", "s3://flows/AWSLogs/bad/"],
                                       client)
        local, _ = flow_files([str(tmp_path / "examples"), str(tmp_path / "bad")])
        assert duplicates == 6
        assert [f.rsplit("/", 1)[1] for f in files] == [os.path.basename(f) for f in local]
        staged, _ = _staged([str(tmp_path / "examples"), str(tmp_path / "bad")], tmp_path, 3)
        got = _records_of(["s3://flows/AWSLogs/"], 3, s3_client=client)
        # The same records but for their names (the URL) and times (the object's).

        def same(line):
            record = json.loads(line)
            record["source"] = record["source"].rsplit("/", 1)[1]
            record.pop("not_after", None)
            return record
        assert list(map(same, got)) == list(map(same, staged))
        assert all(json.loads(line)["source"].startswith("s3://flows/AWSLogs/") for line in got)

        gone = list(read_flow_file("s3://flows/AWSLogs/none.log.gz", 10, s3_client=client))
        assert gone == [{"source": "s3://flows/AWSLogs/none.log.gz", "error": "unreadable",
                         "excerpt": "cannot read: NoSuchKey"}]
        with pytest.raises(InputError, match="no objects"):
            flow_files(["s3://flows/nothing/"], client)


def _properties(path, io_values):
    groups = [{"PropertyGroupId": "io", "PropertyMap": io_values}]
    path.write_text(json.dumps(groups))
    return str(path)


@pytest.mark.unit
def test_the_flows_layout_is_a_checked_setting(tmp_path):
    from flowdredge.job import managed
    from flowdredge.job.config import ConfigError
    from flowdredge.job.submit import main as submit
    io = {"flows": "s3://b/AWSLogs/", "metadata": "m", "output": "o", "flows_layout": "aws"}
    props = managed.load(_properties(tmp_path / "a.json", io))
    assert props.io.flows_layout == "aws" and props.io.follow_seconds == 0
    assert managed.load(_properties(tmp_path / "b.json", {**io, "flows_layout": "staged",
                                                         "follow_seconds": "30"})).io \
        .flows_layout == "staged"
    with pytest.raises(ConfigError, match="io.follow_seconds must be 0"):
        managed.load(_properties(tmp_path / "c.json", {**io, "follow_seconds": "30"}))
    with pytest.raises(ConfigError, match="aws"):
        managed.load(_properties(tmp_path / "d.json", {**io, "flows_layout": "raw"}))
    # job.submit refuses follow mode for AWS-format files before it starts anything.
    assert submit(["--flows", "f", "--metadata", "m", "--output", "o", "--flows-layout", "aws",
                   "--follow-seconds", "5"]) == 2
