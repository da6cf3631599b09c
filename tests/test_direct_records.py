"""The job's own reading of AWS-format flow files (job.replay.read_flow_file, file by file) gives
exactly the records staging writes (job.replay.stage_flows, one a line, or a file's CloudWatch
records several a line): one code path."""
import base64
import dataclasses
import gzip
import json
import os
from collections import Counter

import pytest

from helpers import moto_server
from flowdredge.job import replay
from flowdredge.job.config import Config, FlowsSection
from flowdredge.job.parse import PACK_PREFIX, FlowFormat, parse_batches, staged_records
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
    """The records staging writes, one a line (a staged line of several CloudWatch records
    as each of them), and its stats."""
    staged = tmp_path / f"staged-{chunk_lines}.txt"
    stats = stage_flows(locations, str(staged), chunk_lines, flows=flows)
    return [record if isinstance(record, str) else json.dumps(record, separators=(",", ":"))
            for line in staged.read_text().splitlines()
            for record, _source, _delivered in staged_records(line)], stats


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
    with open(os.path.join(folder, "flows-1-2026-01-01-00-03-00-firehose"), "wb") as fh:
        fh.write(record + record)   # a Firehose object: one gzip member per record


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
    # The stamp bounds the flows; the file's time does not (a copy's can be any).
    assert records[0]["delivered"] == 1767225900 and "not_after" not in records[0]
    # Read from elsewhere (a downloaded object), named by its URL, with the object's time,
    # which bounds the flows of an object without a stamp.
    named = list(file_records("s3://b/k_1.log.gz", 5000, local=str(path),
                              modified=1767226000))
    assert named[0]["source"] == "s3://b/k_1.log.gz"
    assert named[0]["not_after"] == 1767226000 and "delivered" not in named[0]
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
                         "excerpt": "", "detail": "cannot read: NoSuchKey"}]
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
    io = {"flows": "s3://b/AWSLogs/", "metadata": "m", "output": "o"}
    props = managed.load(_properties(tmp_path / "a.json", io))
    assert props.io.flows_layout == "aws" and props.io.follow_seconds == 0   # the default
    assert managed.load(_properties(tmp_path / "b.json", {**io, "flows_layout": "staged",
                                                         "follow_seconds": "30"})).io \
        .flows_layout == "staged"
    with pytest.raises(ConfigError, match="io.follow_seconds must be 0"):
        managed.load(_properties(tmp_path / "c.json", {**io, "follow_seconds": "30"}))
    with pytest.raises(ConfigError, match="aws"):
        managed.load(_properties(tmp_path / "d.json", {**io, "flows_layout": "raw"}))
    # job.submit refuses follow mode for AWS-format files before it starts anything.
    assert submit(["--flows", "f", "--metadata", "m", "--output", "o",
                   "--follow-seconds", "5"]) == 2


@pytest.mark.unit
def test_a_followed_folder_its_reader_would_wait_on_is_refused_at_start(tmp_path, monkeypatch,
                                                                        capsys):
    """The staged layout's folders (feed's, followed by Flink's file source) were not checked:
    a FIFO in one kept the reader waiting for a writer, nothing after it read, while the job
    ran (a review). The job's entry points refuse it in one line naming it, as `flowdredge
    run` refuses its snapshot's."""
    from flowdredge.job.flink import run
    from flowdredge.job.submit import main as submit
    built = []
    monkeypatch.setattr(run, "build_job", lambda *args, **kw: built.append(args) or
                        type("Env", (), {"execute": lambda self, name: None})())
    for fifo in ("flows", "metadata"):
        for folder in ("flows", "metadata"):
            (tmp_path / fifo / folder).mkdir(parents=True)
        os.mkfifo(tmp_path / fifo / fifo / "feed-2.fifo")
        assert submit(["--flows", str(tmp_path / fifo / "flows"), "--metadata",
                       str(tmp_path / fifo / "metadata"), "--flows-layout", "staged",
                       "--output", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err == (f"flowdredge: error: {tmp_path / fifo / fifo / 'feed-2.fifo'}: not a "
                       f"regular file (a FIFO, socket or device): Flink's reader would wait on "
                       f"it for a writer or fail; remove it from the folder (a FIFO can be "
                       f"named itself)\n")
    assert not built


@pytest.mark.unit
@pytest.mark.parametrize("parallelism", ["0", "-1"])
def test_the_cluster_entry_point_refuses_a_parallelism_below_one(capsys, parallelism):
    from flowdredge.job.submit import main as submit
    assert submit(["--flows", "f", "--metadata", "m", "--output", "o",
                   "--parallelism", parallelism]) == 2
    assert "job.parallelism" in capsys.readouterr().err


def _envelope(stream, lines, start):
    return {"messageType": "DATA_MESSAGE", "owner": "123456789010", "logGroup": "flows",
            "logStream": stream, "subscriptionFilters": ["all"],
            "logEvents": [{"id": str(i), "timestamp": start * 1000, "message": line}
                          for i, line in enumerate(lines)]}


def _firehose_object(path, envelopes, padding=b""):
    """What Firehose writes to S3 from a CloudWatch Logs subscription: the records as they came,
    gzip envelopes one after another (gzip members), no delimiter."""
    with open(path, "wb") as fh:
        for envelope in envelopes:
            fh.write(gzip.compress(json.dumps(envelope).encode()))
        fh.write(padding)


def _flows(lines, source="record"):
    """The flows parsed from staged lines, sorted, and the dead letters' (reason, source)."""
    from flowdredge.job.parse import FlowFormat, parse_record
    fmt = FlowFormat.parse(HEADER)
    limits = Config().parse_limits
    flows, dead = [], []
    for line in lines:
        result = parse_record(line, source, fmt, limits)
        flows += [tuple(flow) for group in result.groups for flow in group.flows]
        dead += [(reason, where) for _stage, reason, where, _excerpt in result.dead_letters]
    return sorted(flows), dead


@pytest.mark.unit
def test_a_firehose_object_gives_the_flows_of_the_same_lines_in_an_s3_file(tmp_path):
    start = 1767225600
    lines = [f"2 123456789010 eni-{i % 3} 10.0.0.{i % 250} 10.0.1.1 {1000 + i} 443 6 {i + 1} "
             f"{100 * (i + 1)} {start + i % 50} {start + 60} ACCEPT OK" for i in range(30)]
    s3_file = tmp_path / "s3" / "123456789010_vpcflowlogs_eu-west-1_fl-1_20260101T0005Z_a.log.gz"
    s3_file.parent.mkdir()
    with gzip.open(s3_file, "wt") as fh:
        fh.write("\n".join([HEADER, *lines]) + "\n")
    firehose = tmp_path / "fh" / "flows-1-2026-01-01-00-05-00-0a1b"
    firehose.parent.mkdir()
    envelopes = [_envelope(f"eni-{n}-all", lines[n * 10:n * 10 + 10], start + 60)
                 for n in range(3)]
    _firehose_object(firehose, envelopes, padding=b"\0" * 10)   # gzip's allowed zero padding
    records = list(file_records(str(firehose), 5000))
    assert [r["source"] for r in records] == [f"{firehose}:{n}" for n in (1, 2, 3)]
    staged, stats = _staged([str(firehose)], tmp_path, 5000)
    assert _records_of([str(firehose)], 5000) == staged and stats.records == 3
    got, dead = _flows(staged)
    assert len(got) == 30 and not dead
    assert got == _flows(_staged([str(s3_file)], tmp_path, 5000)[0])[0]
    # One envelope alone is one record, named by the file, as before Firehose.
    _firehose_object(firehose, envelopes[:1])
    assert [r["source"] for r in file_records(str(firehose), 5000)] == [str(firehose)]


@pytest.mark.unit
def test_a_firehose_object_that_cannot_be_read_is_dead_lettered_in_full(tmp_path):
    line = "2 123456789010 eni-1 10.0.0.1 10.0.1.1 1000 443 6 1 100 1767225600 1767225660 ACCEPT OK"
    good = _envelope("eni-1-all", [line] * 20, 1767225660)
    # The second member decompresses to more than the cap (a gzip bomb, small compressed);
    # the third is larger than the cap compressed: neither is held, each is one dead letter.
    bomb = {**good, "logEvents": [{"id": "0", "timestamp": 1767225660000,
                                   "message": " " * 20000}]}
    noise = {**good, "logEvents": [{"id": "0", "timestamp": 1767225660000,
                                    "message": base64.b64encode(os.urandom(9000)).decode()}]}
    path = tmp_path / "flows-1-2026-01-01-00-05-00-bad"
    _firehose_object(path, [good, bomb, noise, good])
    flows = FlowsSection(max_decompressed_bytes=8192)
    staged, stats = _staged([str(path)], tmp_path, 5000, flows)
    assert _records_of([str(path)], 5000, flows) == staged
    assert stats.records == 4 and not stats.dead_files
    assert json.loads(staged[2]) == {
        "source": f"{path}:3", "error": "too_large", "excerpt": json.loads(staged[2])["excerpt"],
        "detail": "a gzip member of more than flows.max_decompressed_bytes (8192) compressed"}
    from flowdredge.job.parse import FlowFormat, parse_record
    limits = dataclasses.replace(Config().parse_limits, max_decompressed_bytes=8192)
    results = [parse_record(line, "record", FlowFormat.parse(HEADER), limits) for line in staged]
    assert [sum(len(g.flows) for g in r.groups) for r in results] == [20, 0, 0, 20]
    assert [[(reason, where) for _s, reason, where, *_ in r.dead_letters] for r in results] == \
        [[], [("too_large", f"{path}:2")], [("too_large", f"{path}:3")], []]
    # Cut short (a partial upload): the whole object is one dead file, nothing of it parsed.
    path.write_bytes(path.read_bytes()[:-30])
    staged, stats = _staged([str(path)], tmp_path, 5000, flows)
    assert [json.loads(line)["error"] for line in staged] == ["bad_gzip"]
    assert stats.dead_files == [(str(path), "bad_gzip", stats.dead_files[0][2])]


@pytest.mark.unit
def test_a_firehose_objects_members_hold_at_the_edges_of_the_cap_and_of_a_buffer(tmp_path):
    """A member of flows.max_decompressed_bytes compressed exactly is a record, one byte more
    too_large; a too_large member's excerpt is its own first bytes, not the object's; zero
    padding that runs past the reader's 1 MiB buffer is passed over, not read as a member. A
    mutation review found each untested: off by one, the object a dead file bad_gzip, or the
    first member's bytes quoted for another's."""
    from flowdredge.job.parse import EXCERPT_CHARS, excerpt
    line = "2 123456789010 eni-1 10.0.0.1 10.0.1.1 1000 443 6 1 100 1767225600 1767225660 ACCEPT OK"
    good = gzip.compress(json.dumps(_envelope("eni-1-all", [line] * 20, 1767225660)).encode(),
                         mtime=0)
    other = gzip.compress(json.dumps(_envelope("eni-2-all", [line] * 30, 1767225660)).encode(),
                          mtime=0)
    assert len(other) > len(good)
    path = tmp_path / "flows-1-2026-01-01-00-05-00-edges"
    path.write_bytes(good + other + b"\0" * ((1 << 20) - len(good + other) + 100))

    def read(cap):
        return [(r["source"].rsplit(":", 1)[1], r.get("error"), r.get("excerpt"))
                for r in file_records(str(path), 5000, flows=FlowsSection(
                    max_decompressed_bytes=cap))]
    assert read(len(other)) == [("1", None, None), ("2", None, None)]
    assert read(len(other) - 1) == [
        ("1", None, None), ("2", "too_large", excerpt(other[:EXCERPT_CHARS]))]


@pytest.mark.unit
def test_a_firehose_objects_empty_gzip_members_are_one_dead_letter_with_their_count(tmp_path):
    """Each gzip member holding nothing was a record, a not_json dead letter: 300,000 of them
    in one object made 300,000 dead letters in 12 s saying one thing (a review). No record
    was in them, but Firehose writes none, so what wrote them may have lost one: one dead
    letter says how many and where the first is, the members keep their numbers."""
    line = "2 123456789010 eni-1 10.0.0.1 10.0.1.1 1000 443 6 1 100 1767225600 1767225660 ACCEPT OK"
    good = gzip.compress(json.dumps(_envelope("eni-1-all", [line] * 20, 1767225660)).encode())
    empty = gzip.compress(b"")
    path = tmp_path / "flows-1-2026-01-01-00-05-00-empty"
    path.write_bytes(good + empty * 3 + good + empty)
    staged, stats = _staged([str(path)], tmp_path, 5000)
    assert _records_of([str(path)], 5000) == staged and stats.records == 3
    assert [json.loads(record)["source"] for record in staged] == [
        f"{path}:1", f"{path}:5", f"{path}:2"]
    assert json.loads(staged[2]) == {
        "source": f"{path}:2", "error": "empty_members", "excerpt": "",
        "detail": "4 gzip member(s) holding nothing, the first member 2: no record read from "
                  "them"}
    from flowdredge.job.parse import FlowFormat, parse_records, staged_records
    result = parse_records([r for line in staged for r in staged_records(line)],
                           FlowFormat.parse(HEADER), Config().parse_limits)
    assert (result.counts["records_in"], result.counts["flows_parsed"],
            result.counts["dead_letter"], result.counts["dead_letter_empty_members"]) == \
        (3, 40, 1, 1)
    # Nothing but empty members: an empty file, as ever.
    path.write_bytes(empty * 3)
    assert [r["error"] for r in file_records(str(path), 5000)] == ["empty_file"]


@pytest.mark.unit
def test_a_firehose_objects_members_are_found_without_copying_the_rest_of_the_object(
        tmp_path, monkeypatch):
    """The inflater copies what it is given past a member's end (unused_data): given the rest
    of a 1 MiB buffer for each member, 300,000 small members took 7-17 s to stage (a review),
    now 3-8 s (docs/performance.md). At most 4 KiB past a member is given."""
    import zlib
    line = "2 123456789010 eni-1 10.0.0.1 10.0.1.1 1000 443 6 1 100 1767225600 1767225660 ACCEPT OK"
    good = gzip.compress(json.dumps(_envelope("eni-1-all", [line] * 20, 1767225660)).encode())
    path = tmp_path / "flows-1-2026-01-01-00-05-00-many"
    path.write_bytes((good + gzip.compress(b"")) * 2000)
    beyond, make = [], zlib.decompressobj

    class Inflater:
        def __init__(self, wbits):
            self.inflater = make(wbits)

        def decompress(self, data, max_length=0):
            out = self.inflater.decompress(data, max_length)
            beyond.append(len(self.inflater.unused_data))
            return out

        def __getattr__(self, name):
            return getattr(self.inflater, name)

    monkeypatch.setattr(zlib, "decompressobj",
                        lambda wbits=15: Inflater(wbits) if wbits == 16 + zlib.MAX_WBITS
                        else make(wbits))
    records = list(file_records(str(path), 5000))
    assert len(records) == 2001 and records[-1]["error"] == "empty_members"
    assert len(beyond) >= 4000 and max(beyond) <= 4096


@pytest.mark.unit
def test_a_firehose_member_decompressing_past_a_mebibyte_ends_where_it_ends(tmp_path):
    """A member decompressing to more than the inflater's 1 MiB a call (a batch of 1 MiB of
    events, its JSON around them), given past its end in its last call, left CPython's zlib
    holding what followed it as both unconsumed_tail (stale) and unused_data: counted twice,
    the member ended before it did, or before it began, and the object was read from its start
    again, for ever (a review; before 0254cb5, the member was cut short, a bad_gzip record,
    and the next one given twice)."""
    import itertools
    line = "2 123456789010 eni-1 10.0.0.1 10.0.1.1 1000 443 6 1 100 1767225600 1767225660 ACCEPT OK"
    big = _envelope("eni-1-all", [line] * 40000, 1767225660)
    path = tmp_path / "flows-1-2026-01-01-00-05-00-big"
    _firehose_object(path, [big, _envelope("eni-1-all", [line], 1767225660)], padding=b"\0" * 3)
    stats = replay.StageStats()
    records = list(itertools.islice(file_records(str(path), 5000, stats), 5))
    assert [record["source"] for record in records] == [f"{path}:1", f"{path}:2"]
    assert not stats.dead_files
    from flowdredge.job.parse import parse_records
    result = parse_records([(record, "record", None) for record in records],
                           FlowFormat.parse(HEADER), Config().parse_limits)
    assert (result.counts["records_in"], result.counts["flows_parsed"],
            result.counts["dead_letter"]) == (2, 40001, 0)


@pytest.mark.unit
def test_a_record_parses_as_a_dict_exactly_as_its_staged_line(tmp_path, aws_examples):
    """The job parses file_records' dicts without writing their lines (job.flink.operators):
    groups, dead letters and counts are those of the lines, bad records' too."""
    from flowdredge.job.parse import FlowFormat, parse_record
    _aws_example_files(str(tmp_path / "examples"), aws_examples)
    _bad_files(str(tmp_path / "bad"))
    staged, _ = _staged([str(tmp_path / "examples"), str(tmp_path / "bad")], tmp_path, 3)
    fmt, limits = FlowFormat.parse(HEADER), Config().parse_limits
    records = [json.loads(line) for line in staged]
    records += [{"source": "x", "lines": "not a list", "format": HEADER},
                {"source": "x", "error": "no such reason"}, {"source": 7, "record": "x"}]
    lines = [json.dumps(record, separators=(",", ":")) for record in records]
    results = [(parse_record(record, "record", fmt, limits),
                parse_record(line, "record", fmt, limits)) for record, line in zip(records, lines)]
    assert all(from_dict == from_line for from_dict, from_line in results)
    assert sum(r.counts["flows_parsed"] for r, _ in results) > 0
    assert [r.dead_letters[0][1] for r, _ in results[-3:]] == ["bad_chunk"] * 3


@pytest.mark.unit
def test_a_files_cloudwatch_records_share_staged_lines_and_parse_as_each(tmp_path, monkeypatch):
    """A Firehose object's records (one interface's lines each) are staged several a line, up
    to PACK_BYTES, and parsed together (as the job does a file it reads itself): the flows,
    dead letters and counts of the records one by one."""
    start = 1767225600
    lines = [f"2 123456789010 eni-{i % 3} 10.0.0.{i % 250} 10.0.1.1 {1000 + i} 443 6 {i + 1} "
             f"{100 * (i + 1)} {start + i % 50} {start + 60} ACCEPT OK" for i in range(40)]
    firehose = tmp_path / "flows-1-2026-01-01-00-05-00-0a1b"
    envelopes = [_envelope(f"eni-{n}-all", lines[n * 10:n * 10 + 10], start + 60)
                 for n in range(4)]
    envelopes[2]["logEvents"][3]["message"] = "not a flow"
    _firehose_object(firehose, envelopes)
    records = _records_of([str(firehose)], 5000)
    fmt, limits = FlowFormat.parse(HEADER), Config().parse_limits

    def parsed(staged_lines, batch_lines=5000):
        results = [r for line in staged_lines
                   for r in parse_batches(staged_records(line), fmt, limits,
                                          batch_lines=batch_lines)]
        return (sorted(tuple(f) for r in results for g in r.groups for f in g.flows),
                sorted(d for r in results for d in r.dead_letters),
                sum((r.counts for r in results), start=Counter()), len(results))

    alone = parsed(records, batch_lines=1)
    assert len(alone[0]) == 39 and alone[3] == 4
    out = tmp_path / "staged.txt"
    stage_flows([str(firehose)], str(out), 5000)
    [line] = out.read_text().splitlines()
    assert line.startswith(PACK_PREFIX) and [json.dumps(r, separators=(",", ":")) for r in
                                             json.loads(line)["records"]] == records
    assert parsed([line])[:3] == alone[:3] and parsed([line])[3] == 1
    # A line holds records up to PACK_BYTES of their text.
    sizes = [len(r) for r in records]
    monkeypatch.setattr(replay, "PACK_BYTES", max(sizes[0] + sizes[1], sizes[2] + sizes[3]))
    assert min(sizes[:3]) * 3 > replay.PACK_BYTES
    stage_flows([str(firehose)], str(out), 5000)
    packed = out.read_text().splitlines()
    assert [len(staged_records(p)) for p in packed] == [2, 2]
    assert parsed(packed)[:3] == alone[:3]
    # A line that begins as a pack but is not one: one dead letter, nothing lost silently.
    for bad in ('{"records":[1,2]}', '{"records":[{"source":"x"', '{"records":[]}'):
        (result,) = parse_batches(staged_records(bad), fmt, limits)
        assert result.counts["records_in"] == 1 and result.counts["dead_letter"] == 1


@pytest.mark.unit
def test_a_firehose_objects_lone_empty_member_is_said_and_a_member_ending_in_empty_blocks_read(
        tmp_path):
    """One empty gzip member among records is the dead letter empty_members as several are; a
    member whose data ends in blocks that inflate to nothing (a writer's sync flushes, valid
    gzip) holds its records, not nothing (a mutation review)."""
    import zlib
    line = "2 123456789010 eni-1 10.0.0.1 10.0.1.1 1000 443 6 1 100 1767225600 1767225660 ACCEPT OK"
    data = json.dumps(_envelope("eni-1-all", [line] * 20, 1767225660)).encode()
    writer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    empty_blocks = b"\x00\x00\x00\xff\xff" * 3000 + b"\x01\x00\x00\xff\xff"   # stored, 0 bytes
    flushed = (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + writer.compress(data)
               + writer.flush(zlib.Z_SYNC_FLUSH) + empty_blocks
               + zlib.crc32(data).to_bytes(4, "little") + len(data).to_bytes(4, "little"))
    assert gzip.decompress(flushed) == data and len(flushed) > 3 * 4096
    path = tmp_path / "flows-1-2026-01-01-00-05-00-lone"
    path.write_bytes(gzip.compress(data) + gzip.compress(b"") + flushed)
    staged, stats = _staged([str(path)], tmp_path, 5000)
    assert [json.loads(record)["source"] for record in staged] == [
        f"{path}:1", f"{path}:3", f"{path}:2"]
    from flowdredge.job.parse import parse_records
    result = parse_records([r for line in staged for r in staged_records(line)],
                           FlowFormat.parse(HEADER), Config().parse_limits)
    assert (result.counts["flows_parsed"], result.counts["dead_letter"]) == (40, 1)
    assert json.loads(staged[2])["error"] == "empty_members"
    assert "1 gzip member(s) holding nothing, the first member 2" in json.loads(staged[2])["detail"]

