"""Issue #14 without a JVM: every numbered case of bad input, at the unit where it is decided
(parse, staging, config). tests/test_bad_input.py runs them through the job on the
mini-cluster; tests/test_cli.py through the command."""
import base64
import gzip
import json
import os
import zlib

import pytest

from flowdredge.job.config import Config, ConfigError, FlowsSection, from_dict
from flowdredge.job.parse import FlowFormat, parse_record
from flowdredge.job.replay import InputError, stage_flows, stage_metadata
from flowdredge.schemas.flowlog import DEFAULT_FORMAT

pytestmark = pytest.mark.unit

V2 = FlowFormat(DEFAULT_FORMAT)
HEADER = " ".join(DEFAULT_FORMAT)
LIMITS = Config().parse_limits
T = 1767225600                 # 2026-01-01T00:00:00Z
STAMP = "20260101T0010Z"       # T + 600


def line(start=T, packets="2", nbytes="200", protocol="6", dport="443"):
    return (f"2 123456789012 eni-1 10.0.0.1 10.0.0.2 40000 {dport} {protocol} {packets} "
            f"{nbytes} {start} {start if isinstance(start, str) else start + 5} ACCEPT OK")


def chunk(lines, **more):
    return json.dumps({"source": "f.log.gz", "first_line": 2, "format": HEADER,
                       "lines": lines, **more})


def parsed(raw, **kw):
    return parse_record(raw, "record", V2, LIMITS, **kw)


def outcome(result):
    return (result.counts["flows_parsed"], [(d[1], d[2]) for d in result.dead_letters])


def balanced(result):
    """Every line is a flow, NODATA/SKIPDATA, or a dead letter."""
    c = result.counts
    return c["lines_in"] == c["flows_parsed"] + c["no_data"] + c["skip_data"] + c["dead_letter"]


# 1. Numbers beyond AWS's ranges crashed the job in Flink (a Java long or int overflowed).

@pytest.mark.parametrize("bad", [
    {"nbytes": "99999999999999999999"}, {"packets": "99999999999999999999"},
    {"nbytes": str(2**41 + 1)}, {"protocol": "4294967296"}, {"protocol": "256"},
    {"nbytes": "9223372036854775808"}])
def test_1_numbers_out_of_range_are_dead_lettered(bad):
    good = [line(T + i) for i in range(3)]
    for lines in ([*good, line(T + 9, **bad)], [*good, line(T + 9, **bad)] * 300):  # both paths
        result = parsed(chunk(lines))
        n = len(lines) // 4
        assert outcome(result) == (3 * n, [("number_out_of_range", f"f.log.gz:{2 + 4 * i + 3}")
                                           for i in range(n)])
        assert balanced(result)


def test_1_the_largest_values_allowed_are_accepted():
    result = parsed(chunk([line(T, packets=str(2**41), nbytes=str(2**41), protocol="255",
                                dport="65535"), line(T, packets="0", nbytes="0", protocol="0")]))
    assert outcome(result) == (2, [])


# 5. One flow far ahead of its delivery time moved event time past every other flow.

def test_5_a_start_ahead_of_the_delivery_time_is_dead_lettered():
    stamp = T + 600
    lines = [line(stamp - 300), line(stamp + LIMITS.max_ahead_seconds),
             line(stamp + LIMITS.max_ahead_seconds + 1), line(stamp + 22 * 3600)]
    # The S3 stamp, a file's modification time, the Kinesis arrival time: each bounds it.
    for raw, kw in ((chunk(lines, delivered=stamp), {}), (chunk(lines, not_after=stamp), {}),
                    (chunk(lines), {"delivered": stamp})):
        result = parsed(raw, **kw)
        assert outcome(result) == (2, [("timestamp_out_of_range", "f.log.gz:4"),
                                       ("timestamp_out_of_range", "f.log.gz:5")])


def test_5_cloudwatch_lines_are_bounded_by_their_events_and_the_arrival_time():
    events = [{"id": "1", "timestamp": (T + i) * 1000, "message": line(T + i)} for i in range(3)]
    events.append({"id": "2", "timestamp": T * 1000, "message": line(4102444799)})   # 2099
    record = gzip.compress(json.dumps({"messageType": "DATA_MESSAGE", "logGroup": "/vpc/g",
                                       "logStream": "eni-1", "logEvents": events}).encode())
    where = "kinesis:flows/shardId-0/4959 /vpc/g/eni-1 event 3"
    result = parse_record(record, "kinesis:flows/shardId-0/4959", V2, LIMITS)
    assert outcome(result) == (3, [("timestamp_out_of_range", where)])
    # The arrival time bounds them too, even when an event's timestamp is far ahead.
    events[3]["timestamp"] = 4102444799000
    record = gzip.compress(json.dumps({"messageType": "DATA_MESSAGE", "logGroup": "/vpc/g",
                                       "logStream": "eni-1", "logEvents": events}).encode())
    result = parse_record(record, "kinesis:flows/shardId-0/4959", V2, LIMITS, delivered=T + 60)
    assert outcome(result) == (3, [("timestamp_out_of_range", where)])
    # So does a file's time: one event far ahead of it refused every line of its record (a
    # review; a replay of Firehose objects has no arrival time).
    events[3]["timestamp"] = (T + 3 * 86400) * 1000
    staged = json.dumps({"source": "s3://b/firehose-1", "not_after": T + 60,
                         "record": base64.b64encode(gzip.compress(json.dumps(
                             {"messageType": "DATA_MESSAGE", "logGroup": "/vpc/g",
                              "logStream": "eni-1", "logEvents": events}).encode())).decode()})
    result = parse_record(staged, "records.jsonl:1", V2, LIMITS)
    assert outcome(result) == (3, [("timestamp_out_of_range", "s3://b/firehose-1 /vpc/g/eni-1 "
                                                              "event 3")])


# 7. Negative packets and bytes gave negative aggregates.

@pytest.mark.parametrize("bad", [{"packets": "-1"}, {"nbytes": "-100"}])
def test_7_negative_counters_are_dead_lettered(bad):
    for lines in ([line(T), line(T, **bad)], [line(T), line(T, **bad)] * 300):
        result = parsed(chunk(lines))
        assert outcome(result)[0] == len(lines) // 2
        assert {d[1] for d in result.dead_letters} == {"number_out_of_range"}


# 3. A huge line: dead-lettered, and staging never holds it.

def test_3_a_line_longer_than_the_limit_is_dead_lettered_with_an_excerpt():
    huge = line(T).replace("eni-1", "eni-" + "x" * LIMITS.max_line_bytes)
    for lines in ([line(T), huge], [line(T), huge] * 300):
        result = parsed(chunk(lines))
        assert outcome(result)[0] == len(lines) // 2
        assert {d[1] for d in result.dead_letters} == {"line_too_long"}
        assert all(len(d[3]) == 256 for d in result.dead_letters)


def _write_gzip_lines(path, header, body_parts):
    with open(path, "wb") as raw:
        deflate = zlib.compressobj(1, zlib.DEFLATED, 31)
        raw.write(deflate.compress(header.encode() + b"\n"))
        for part in body_parts:
            raw.write(deflate.compress(part))
        raw.write(deflate.flush())


def test_3_staging_reads_a_huge_line_through_and_keeps_an_excerpt(tmp_path):
    path = tmp_path / f"x_vpcflowlogs_r_fl-1_{STAMP}_big.log.gz"
    # 64 MiB of one field between two good lines, written without ever holding it.
    _write_gzip_lines(path, HEADER, [line(T).encode() + b"\n", b"2 1 eni-",
                                     *[b"a" * (1 << 20)] * 64, b" rest\n",
                                     line(T + 1).encode() + b"\n"])
    staged = tmp_path / "s.txt"
    stats = stage_flows([str(path)], str(staged), 5000)
    (record,) = staged.read_text().splitlines()
    assert len(record) < 2000 and stats.lines == 3
    result = parsed(record)
    assert outcome(result) == (2, [("line_too_long", f"{path}:3")])
    assert result.dead_letters[0][3].startswith("2 1 eni-aaaa")


def test_3_a_staged_flow_line_s_excerpt_leaves_out_a_character_its_cut_split(tmp_path):
    """A too-long flow line's excerpt is of its first 256 bytes: a character of UTF-8 text they
    cut through made them bytes that are not UTF-8, shown as `base64:...` (a review). It is
    text now, without that character, for a line read as text (longer than flows.max_line_bytes)
    and for one only its head is kept of (longer than a base64 record); a line whose bytes at
    the cut are not UTF-8 stays `base64:`."""
    path = tmp_path / f"x_vpcflowlogs_r_fl-1_{STAMP}_utf8.log"
    prefix = "2 1 eni-x"   # 9 bytes: the 256th byte is the first of a 2-byte character
    path.write_bytes(b"\n".join([
        HEADER.encode(), line(T).encode(), (prefix + "é" * 9000).encode(),
        (prefix + "é" * 12000).encode(),
        prefix.encode() + "é".encode() * 123 + b"\xc3A" + b"a" * 30000]) + b"\n")
    staged = tmp_path / "s.txt"
    # A base64 record is at most 20,004 characters: the first long line (9,009 characters) is
    # read as text, the others are longer.
    stage_flows([str(path)], str(staged), 5000, flows=FlowsSection(max_decompressed_bytes=15000))
    result = parsed(staged.read_text())
    assert [(d[1], d[3]) for d in result.dead_letters] == [
        ("line_too_long", prefix + "é" * 123), ("line_too_long", prefix + "é" * 123),
        ("line_too_long", "base64:" + base64.b64encode(
            (prefix.encode() + "é".encode() * 123 + b"\xc3A")[:186]).decode())]


def test_3_a_flow_line_read_as_text_has_a_text_excerpt_for_bytes_not_utf8(tmp_path):
    """A too-long flow line read as text (longer than flows.max_line_bytes, not than a base64
    record) holds U+FFFD for its bytes that are not UTF-8, as every flow line does: its excerpt
    is text, a U+FFFD its cut splits left out, not `base64:` as docs/outputs.md said (a review
    of a546994)."""
    path = tmp_path / f"x_vpcflowlogs_r_fl-1_{STAMP}_latin1.log"
    prefix = "2 1 eni-x"
    path.write_bytes(b"\n".join([
        HEADER.encode(), line(T).encode(), prefix.encode() + b"\xe9" * 9000,
        prefix.encode() + b"a" * 246 + b"\xc3A" + b"a" * 9000]) + b"\n")
    staged = tmp_path / "s.txt"
    stage_flows([str(path)], str(staged), 5000, flows=FlowsSection(max_decompressed_bytes=15000))
    result = parsed(staged.read_text())
    assert [(d[1], d[3]) for d in result.dead_letters] == [
        ("line_too_long", prefix + "\ufffd" * 82), ("line_too_long", prefix + "a" * 246)]


def test_3_staged_chunks_are_no_larger_than_the_record_limit(tmp_path):
    path = tmp_path / f"x_vpcflowlogs_r_fl-1_{STAMP}_1.log.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(HEADER + "\n" + "\n".join(line(T + i % 60) for i in range(100)) + "\n")
    staged = tmp_path / "s.txt"
    flows = FlowsSection(max_decompressed_bytes=2000)
    stage_flows([str(path)], str(staged), 5000, flows=flows)
    chunks = [json.loads(r) for r in staged.read_text().splitlines()]
    assert len(chunks) > 1 and all(sum(len(x) + 1 for x in c["lines"]) <= 2000 for c in chunks)
    assert sum(len(c["lines"]) for c in chunks) == 100
    assert [c["first_line"] for c in chunks][:2] == [2, 2 + len(chunks[0]["lines"])]


def test_3_a_cloudwatch_envelope_file_above_the_limit_is_not_read(tmp_path):
    path = tmp_path / "big.gz"
    path.write_bytes(gzip.compress(b'{"messageType":"DATA_MESSAGE","x":"' + os.urandom(3000)
                                   .hex().encode() + b'"}'))
    staged = tmp_path / "s.txt"
    stats = stage_flows([str(path)], str(staged), 5000,
                        flows=FlowsSection(max_decompressed_bytes=1000))
    assert stats.dead_files == [(str(path), "too_large", stats.dead_files[0][2])]
    assert outcome(parsed(staged.read_text())) == (0, [("too_large", str(path))])


# 4 and 10. Configuration: numbers too large for Java, floats, parallelism.

@pytest.mark.parametrize("doc,message", [
    ({"metadata": {"out_of_orderness_seconds": 99999999999999999999}}, "out of range"),
    ({"metadata": {"out_of_orderness_seconds": "99999999999999999999"}}, "out of range"),
    ({"job": {"checkpoint_interval_seconds": 2**31}}, "out of range"),
    ({"job": {"parallelism": 40000}}, "at most 32768"),
    ({"job": {"window_seconds": 90.7}}, "expected an integer, got 90.7"),
    ({"job": {"window_seconds": 90.0}}, "expected an integer, got 90.0"),
    ({"flows": {"max_flow_bytes": 2**62}}, "max_flow_bytes is too large"),
    ({"flows": {"max_flow_bytes": 2**63}}, "out of range"),
    ({"flows": {"max_line_bytes": 0}}, "must be positive"),
    ({"flows": {"max_ahead_seconds": -1}}, "must not be negative"),
    ({"flows": {"format": "srcaddr dstaddr start foo-bar"}}, "unknown flow-log field"),
    ({"flows": {"format": "srcaddr dstaddr start", "max_fields_per_line": 2}},
     "max_fields_per_line"),
    ({"flows": {"strict": "sometimes"}}, "expected true or false"),
])
def test_4_and_10_bad_numbers_in_config_are_clear_errors(doc, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(doc)


def test_4_the_widest_numbers_allowed_are_accepted():
    config = from_dict({"flows": {"max_flow_bytes": 2**41, "max_decompressed_bytes": 2**26},
                        "metadata": {"max_wait_seconds": 2**31 - 1}})
    assert config.parse_limits.max_flow_bytes == 2**41


# 9. Overlapping paths counted the same files twice.

def test_9_a_file_reached_twice_is_staged_once(tmp_path):
    folder = tmp_path / "flows" / "sub"
    folder.mkdir(parents=True)
    with gzip.open(folder / f"x_vpcflowlogs_r_fl-1_{STAMP}_1.log.gz", "wt") as fh:
        fh.write(HEADER + "\n" + line(T) + "\n")
    os.symlink(folder / f"x_vpcflowlogs_r_fl-1_{STAMP}_1.log.gz", tmp_path / "link.log.gz")
    stats = stage_flows([str(tmp_path / "flows"), str(folder), str(tmp_path / "link.log.gz")],
                        str(tmp_path / "s.txt"), 5000)
    assert (stats.files, stats.lines, stats.duplicates) == (1, 1, 2)


# 11. One bad file refused the whole replay.

def _bad_files(folder):
    good = gzip.compress((HEADER + "\n" + line(T) + "\n").encode())
    files = {
        "empty_file": b"",
        "bad_gzip": good[:len(good) // 2],                       # truncated
        "bad_header": b"\x00\x01 PK binary \xff\xfe garbage \x07\n" * 3,   # not gzip either
    }
    paths = {}
    for reason, data in files.items():
        paths[reason] = folder / f"x_vpcflowlogs_r_fl-1_{STAMP}_{reason}.log.gz"
        paths[reason].write_bytes(data)
    paths["good"] = folder / f"x_vpcflowlogs_r_fl-1_{STAMP}_good.log.gz"
    paths["good"].write_bytes(good)
    return paths


def test_11_a_bad_file_is_dead_lettered_and_the_rest_staged(tmp_path):
    paths = _bad_files(tmp_path)
    staged = tmp_path / "staging" / "s.txt"
    stats = stage_flows([str(tmp_path)], str(staged), 5000)
    assert sorted((os.path.basename(p), r) for p, r, _ in stats.dead_files) == sorted(
        (os.path.basename(str(paths[r])), r) for r in ("empty_file", "bad_gzip", "bad_header"))
    results = [parsed(record) for record in staged.read_text().splitlines()]
    assert sum(r.counts["flows_parsed"] for r in results) == 1
    assert sorted((d[1], d[2]) for r in results for d in r.dead_letters) == sorted(
        (r, str(paths[r])) for r in ("empty_file", "bad_gzip", "bad_header"))
    assert all(d[3].isprintable() for r in results for d in r.dead_letters)


def test_11_strict_refuses_a_bad_file(tmp_path):
    _bad_files(tmp_path)
    with pytest.raises(InputError, match="bad_gzip|empty|gzip|header"):
        stage_flows([str(tmp_path)], str(tmp_path / "s.txt"), 5000,
                    flows=FlowsSection(strict=True))


def test_11_unknown_header_fields_are_dropped_and_counted(tmp_path):
    path = tmp_path / f"x_vpcflowlogs_r_fl-1_{STAMP}_new.log.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(HEADER + " foo-bar\n" + "\n".join(line(T + i) + " v" for i in range(3))
                 + "\n" + line(T) + "\n")   # a value short: dead-lettered whole
    staged = tmp_path / "s.txt"
    stats = stage_flows([str(path)], str(staged), 5000)
    assert stats.unknown_fields == {"foo-bar": 1} and not stats.dead_files
    result = parsed(staged.read_text())
    # The values dropped are those of the lines taken, not of the one dead-lettered.
    assert outcome(result) == (3, [("field_count", f"{path}:5")]) and \
        result.counts["unknown_fields_ignored"] == 3
    assert result.groups[0].flows[0] == parsed(chunk([line(T)])).groups[0].flows[0]
    with pytest.raises(InputError, match="foo-bar"):
        stage_flows([str(path)], str(staged), 5000, flows=FlowsSection(strict=True))
    # A name given twice is two values a line: they were counted once (a review).
    twice = json.dumps({"format": HEADER + " foo-bar foo-bar", "ignore": ["foo-bar"],
                        "lines": [line(T + i) + " v w" for i in range(10)]})
    assert parsed(twice).counts["unknown_fields_ignored"] == 20
    # A chunk naming an unknown field it was not told to drop is not one staging wrote.
    assert outcome(parsed(json.dumps({"format": HEADER + " foo-bar", "lines": []}))) == (
        0, [("bad_chunk", "record")])


# 12. Dead letters carry where the input came from and a printable excerpt.

def test_12_dead_letters_name_file_and_line_record_and_event(tmp_path):
    s3 = tmp_path / f"x_vpcflowlogs_r_fl-1_{STAMP}_1.log.gz"
    with gzip.open(s3, "wt") as fh:
        fh.write(HEADER + "\n" + line(T) + "\n\n" + "garbage\x00\x07line" + "\n")
    envelope = {"messageType": "DATA_MESSAGE", "logGroup": "/vpc/g", "logStream": "eni-9",
                "logEvents": [{"id": "1", "timestamp": T * 1000, "message": line(T)},
                              {"id": "2", "timestamp": T * 1000, "message": "x y"}]}
    record = base64.b64encode(gzip.compress(json.dumps(envelope).encode())).decode()
    records = tmp_path / "records.b64"
    records.write_text(record + "\n" + base64.b64encode(b"\x1f\x8bnot really").decode() + "\n")
    staged = tmp_path / "s.txt"
    stage_flows([str(s3), str(records)], str(staged), 5000)
    dead = [d for r in staged.read_text().splitlines() for d in parsed(r).dead_letters]
    # In delivery order: files without an AWS stamp first. A file's records are parsed
    # together: one that cannot be read is dead-lettered before the others' lines are parsed.
    assert [(d[1], d[2]) for d in dead] == [
        ("bad_gzip", f"{records}:2"),
        ("field_count", f"{records}:1 /vpc/g/eni-9 event 1"),
        ("field_count", f"{s3}:4")]
    assert dead[2][3] == "garbage\\x00\\x07line"
    assert dead[0][3] == "base64:" + base64.b64encode(b"\x1f\x8bnot really").decode()
    # A Kinesis record's location is what the source passes.
    kinesis = parse_record(gzip.compress(b"[]"), "kinesis:flows/shardId-1/49", V2, LIMITS)
    assert [(d[1], d[2]) for d in kinesis.dead_letters] == [
        ("not_cloudwatch", "kinesis:flows/shardId-1/49")]


def test_12_metadata_files_are_staged_with_their_line_numbers(tmp_path):
    from flowdredge.job.ownership import parse_chunk
    path = tmp_path / "changes.jsonl"
    path.write_text('{"type":"HEARTBEAT","ts":1767225600000}\n\nnot json\n' + "z" * 9000 + "\n")
    staged = tmp_path / "m.jsonl"
    assert stage_metadata([str(path)], str(staged)) == 3
    chunk_ = parse_chunk(staged.read_text().strip())
    assert [(r[0], r[1]) for r in chunk_.rejected] == [("not_json", f"{path}:3"),
                                                       ("line_too_long", f"{path}:4")]
    assert len(chunk_.events) == 1


def test_3_a_staged_line_a_reader_cut_is_a_dead_letter_of_its_own():
    """A staged line longer than staging writes with the job's limits reaches the parse steps
    cut one byte past it (connectors/jvm LineBytes: one of 130 MB, held whole, ran the JVM out
    of heap; LineChunks likewise, a review): a flow record too_large, a changelog line
    line_too_long, each one dead letter and counted; one at the limit is parsed as before."""
    from operator_stubs import Runtime
    from flowdredge.connectors.staged import staged_changelog_max, staged_flows_max
    from flowdredge.job.flink.operators import (COUNTS, DEAD_LETTERS, ParseFlowRecords,
                                                ParseMetadataEvents)
    config = Config().replace(flows={"chunk_lines": 10, "max_decompressed_bytes": 1000},
                              metadata={"chunk_lines": 3, "max_line_bytes": 100})
    flows_max = staged_flows_max(10, config.flows.max_line_bytes, 1000)
    changelog_max = staged_changelog_max(3, 100)

    def emitted(operator, record, ctx):
        operator.open(Runtime())
        out = list(operator.process_element(record, ctx))
        return ([json.loads(line) for tag, lines in out if tag is DEAD_LETTERS
                 for line in lines.split("\n")],
                [json.loads(line) for tag, line in out if tag is COUNTS],
                [item for item in out if item[0] not in (DEAD_LETTERS, COUNTS)])

    ctx = type("Context", (), {"timestamp": lambda self: None})()
    at_limit = chunk([line()]).encode()
    at_limit = at_limit[:-1] + b', "pad": "' + b"x" * (flows_max - len(at_limit) - 11) + b'"}'
    assert len(at_limit) == flows_max
    dead, counts, _ = emitted(ParseFlowRecords(config), at_limit, Runtime())
    assert dead == [] and counts[0]["flows_parsed"] == 1
    cut = b'{"source": "f.log.gz", "lines": ["' + b"x" * flows_max
    dead, counts, _ = emitted(ParseFlowRecords(config), cut[:flows_max + 1], Runtime())
    assert [(d["reason"], d["source"], d["excerpt"]) for d in dead] == [
        ("too_large", "f.log.gz", cut[:256].decode())]
    assert dead[0]["detail"] == (
        f"a staged line of more than {flows_max} bytes, the longest staging writes with "
        f"flows.max_decompressed_bytes, flows.max_line_bytes and flows.chunk_lines")
    assert counts == [{"stage": "parse", "records_in": 1, "dead_letter": 1,
                       "dead_letter_too_large": 1}]
    event = json.dumps({"type": "HEARTBEAT", "ts": T * 1000})
    staged = json.dumps({"staged": "changelog", "source": "c", "lines": [event], "pad": ""})
    staged = staged[:-2] + "x" * (changelog_max - len(staged)) + '"}'
    dead, counts, events = emitted(ParseMetadataEvents(config, max_line=changelog_max),
                                   staged.encode(), ctx)
    assert dead == counts == [] and len(events) == 1
    dead, counts, events = emitted(ParseMetadataEvents(config, max_line=changelog_max),
                                   (staged + "x").encode(), ctx)
    assert events == []
    assert [(d["stage"], d["reason"], d["source"]) for d in dead] == [
        ("metadata", "line_too_long", "c")]
    assert counts == [{"stage": "metadata", "metadata_dead_letter": 1,
                       "metadata_dead_letter_line_too_long": 1}]


def test_3_a_pack_of_cloudwatch_records_is_within_the_readers_limit(tmp_path):
    """Staging packs a file's CloudWatch records several a line, up to job.replay.PACK_BYTES
    (1 MiB) whatever flows.max_decompressed_bytes; with a max_decompressed_bytes of 100 KB the
    reader's limit (connectors.files.staged_flows_max, 199 KB) was shorter than such a line, and
    every record of it was one dead letter too_large (a review). Each record is parsed."""
    from flowdredge.connectors.staged import staged_flows_max
    from flowdredge.job.parse import staged_line_records
    flows = FlowsSection(max_decompressed_bytes=100_000)
    records = tmp_path / "records.b64"
    with open(records, "w") as fh:
        for i in range(3000):
            envelope = {"messageType": "DATA_MESSAGE", "logGroup": "/vpc/g",
                        "logStream": f"eni-{i}", "logEvents": [
                            {"id": str(i), "timestamp": T * 1000, "message": line(T)}]}
            fh.write(base64.b64encode(gzip.compress(json.dumps(envelope).encode())).decode()
                     + "\n")
    staged = tmp_path / "s.txt"
    stage_flows([str(records)], str(staged), 5000, flows=flows)
    limit = staged_flows_max(5000, flows.max_line_bytes, flows.max_decompressed_bytes)
    lines = staged.read_bytes().splitlines()
    assert max(map(len, lines)) > 500_000
    parsed = [record for raw in lines for record in staged_line_records(raw, limit)]
    assert len(parsed) == 3000 and not any("error" in record for record, *_ in parsed)


def test_3_a_records_file_s_first_record_too_long_is_too_large(tmp_path):
    """A base64 record longer than flows.max_decompressed_bytes allows is too_large, the file's
    other records read; as the first line of its file, too long to be read, it made the file a
    bad_header ('first line is too long for a header'), the records after it lost (a review).
    A first line too long that holds spaces in its head is a header still: bad_header."""
    flows = FlowsSection(max_decompressed_bytes=50)
    envelope = {"messageType": "DATA_MESSAGE", "logGroup": "/vpc/g", "logStream": "eni-1",
                "logEvents": [{"id": "1", "timestamp": T * 1000, "message": line(T)}]}
    small = base64.b64encode(gzip.compress(json.dumps(envelope).encode())).decode()
    big = base64.b64encode(bytes(range(256)) * 40).decode()   # 13,656 characters
    records, header = tmp_path / "records.b64", tmp_path / "header.log"
    records.write_text(big + "\n" + small + "\n")
    header.write_text(HEADER + " x" * 5000 + "\n" + line(T) + "\n")
    for path, want in ((records, [("too_large", f"{records}:1", big[:256]),
                                  (None, f"{records}:2", None)]),
                       (header, [("bad_header", str(header), (HEADER + " x" * 5000)[:256])])):
        staged = tmp_path / "s.txt"
        stage_flows([str(path)], str(staged), 5000, flows=flows)
        got = [(r.get("error"), r["source"], r.get("excerpt"))
               for raw in staged.read_text().splitlines()
               for r in json.loads(raw).get("records", [json.loads(raw)])]
        assert got == want


def test_3_a_byte_order_mark_is_not_in_a_too_long_first_record_s_excerpt(tmp_path):
    """A byte-order mark before a records file's first record is passed over (docs/flow-logs.md);
    one too long to be read kept it in its head, its too_large excerpt `\\ufeff` and 250 of
    the record's characters (a review of 91a81dc). Plain and gzip alike."""
    big = base64.b64encode(bytes(range(256)) * 40).decode()
    text = ("\ufeff" + big + "\n").encode()
    for name, data in (("plain.b64", text), ("gzip.b64.gz", gzip.compress(text))):
        path, staged = tmp_path / name, tmp_path / "s.txt"
        path.write_bytes(data)
        stage_flows([str(path)], str(staged), 5000, flows=FlowsSection(max_decompressed_bytes=50))
        got = [(r.get("error"), r.get("excerpt")) for raw in staged.read_text().splitlines()
               for r in json.loads(raw).get("records", [json.loads(raw)])]
        assert got == [("too_large", big[:256])]


def test_3_a_chunk_of_flow_lines_past_a_pack_is_within_the_readers_limit(tmp_path):
    """A staged chunk holds up to flows.chunk_lines lines, as much text as
    flows.max_decompressed_bytes, more than a pack of CloudWatch records (PACK_BYTES) and far
    more than a line of flows.max_line_bytes: the reader's limit (staged_flows_max) takes it
    whole and its flows are parsed, not one dead letter too_large (a mutation review)."""
    from flowdredge.connectors.staged import PACK_BYTES, staged_flows_max
    from flowdredge.job.parse import staged_line_records
    flows = FlowsSection()
    path = tmp_path / "f.log.gz"
    path.write_bytes(gzip.compress("\n".join([HEADER] + [line()] * 20_000).encode() + b"\n"))
    staged = tmp_path / "s.txt"
    stage_flows([str(path)], str(staged), 20_000, flows=flows)
    [raw] = staged.read_bytes().splitlines()
    assert len(raw) > PACK_BYTES + 2 * 65536
    [(text, _, _)] = staged_line_records(
        raw, staged_flows_max(20_000, flows.max_line_bytes, flows.max_decompressed_bytes))
    assert outcome(parsed(text)) == (20_000, [])


def test_3_a_chunk_of_flow_lines_of_escaped_text_is_within_the_readers_limit(tmp_path):
    """A flow chunk holds flows.max_decompressed_bytes of characters, but staging writes it as
    ASCII JSON, a character of Cyrillic text (or a control character) as six: a file of lines
    mostly of such junk staged a chunk line of 5.4 MB against the reader's limit
    (connectors.staged.staged_flows_max) of 1.4 MB, and its valid flows were lost in one dead
    letter too_large (a review). Staging ends a chunk before its JSON passes the limit: each
    flow is parsed, each junk line its own dead letter."""
    from flowdredge.connectors.staged import staged_flows_max
    from flowdredge.job.parse import staged_line_records
    flows = FlowsSection(max_decompressed_bytes=1_000_000)
    lines = [line(T + i) if i % 10 == 0 else "Ж" * 995 + "\x01" * 5 for i in range(1000)]
    path = tmp_path / "f.log"
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    staged = tmp_path / "s.txt"
    stage_flows([str(path)], str(staged), 5000, flows=flows)
    limit = staged_flows_max(5000, flows.max_line_bytes, flows.max_decompressed_bytes)
    raws = staged.read_bytes().splitlines()
    assert max(map(len, raws)) <= limit
    results = [parsed(text) for raw in raws for text, *_ in staged_line_records(raw, limit)]
    assert sum(r.counts["flows_parsed"] for r in results) == 100
    assert sum(r.counts["dead_letter"] for r in results) == 900


def test_3_a_staged_changelog_of_escaped_text_is_within_the_readers_limit(tmp_path):
    """Staging writes a changelog chunk as ASCII JSON, a character of Cyrillic text (two bytes)
    as six, a byte that is not UTF-8 (Latin-1's "ü", a dead letter) as six: a chunk of such lines was up to three to six times
    its lines' bytes, past the reader's limit (connectors.staged.staged_changelog_max, twice
    them), and every event of it was lost in one dead letter line_too_long (a review). Staging
    ends a chunk before it would pass the limit: each event is read."""
    from flowdredge.connectors.staged import staged_changelog_max
    from flowdredge.job.ownership import MetaLimits, parse_chunk, too_long_record
    path = tmp_path / "changes.jsonl"
    with open(path, "wb") as fh:
        for i in range(1000):
            app = "Ж" * 450 if i % 10 else "Müller" * 100
            event = json.dumps({"type": "ASSIGN", "ts": 1767225600000 + i, "ip": "10.0.0.1",
                                "app": f"{app}{i}"}, ensure_ascii=False, separators=(",", ":"))
            fh.write(event.encode("latin-1" if i % 10 == 0 else "utf-8") + b"\n")
            if i % 100 == 50:   # too long, staged as an excerpt
                fh.write(("Ж" * 1000).encode() + b"\n")
    staged = tmp_path / "m.jsonl"
    assert stage_metadata([str(path)], str(staged), 200, 1000) == 1010
    limit = staged_changelog_max(200, 1000)
    lines = staged.read_bytes().splitlines()
    # As the job's parse takes them (job.flink.operators.ParseMetadataEvents).
    parsed = [too_long_record(line[:limit + 1], "metadata", limit) if len(line) > limit else
              parse_chunk(line.decode(), limits=MetaLimits(max_line_bytes=1000)) for line in lines]
    assert sum(len(p.events) for p in parsed) == 1000   # a Latin-1 one applied as a release
    assert sorted(reason for p in parsed for reason, *_ in p.rejected) == (
        ["line_too_long"] * 10 + ["not_text"] * 100)


def test_3_a_staged_changelog_chunk_counts_its_long_lines_excerpts(tmp_path):
    """A changelog line too long is staged as its head (Cyrillic text escaped, six
    characters each): once a chunk might pass the reader's limit its size is counted exactly,
    the heads with its lines. Counted without them, a chunk of many passed the limit and
    its events were lost in one dead letter line_too_long (a mutation review)."""
    from flowdredge.connectors.staged import staged_changelog_max
    from flowdredge.job.ownership import MetaLimits, parse_chunk
    path = tmp_path / "changes.jsonl"
    with open(path, "wb") as fh:
        for i in range(1000):
            fh.write(("Ж" * 1000).encode() + b"\n" if i % 10 else json.dumps(
                {"type": "ASSIGN", "ts": T * 1000 + i, "ip": "10.0.0.1", "app": "a"}).encode()
                + b"\n")
    staged = tmp_path / "m.jsonl"
    assert stage_metadata([str(path)], str(staged), 1000, 100) == 1000
    lines = staged.read_bytes().splitlines()
    assert max(map(len, lines)) <= staged_changelog_max(1000, 100)
    assert sum(len(parse_chunk(line.decode(), limits=MetaLimits(max_line_bytes=100)).events)
               for line in lines) == 100


def test_3_a_changelog_line_s_head_leaves_out_a_character_its_cut_split(tmp_path):
    """A too-long changelog line is staged with its first metadata.max_line_bytes bytes: a
    character of UTF-8 text they cut through was kept as its first bytes, \\udcXX each, which
    its dead letter's excerpt showed as bytes that are not UTF-8 (a review). Its head is now
    the characters before it; bytes that are not UTF-8 within it are still \\udcXX."""
    from flowdredge.job.ownership import MetaLimits, parse_chunk
    path = tmp_path / "changes.jsonl"
    lines = [json.dumps({"app": "ab" + "é" * 400, "type": "ASSIGN", "ts": T * 1000,
                         "ip": "10.0.0.1"}, ensure_ascii=False).encode(),
             b'{"app": "a\xff' + "€".encode() * 200 + b'"}']
    path.write_bytes(b"\n".join(lines) + b"\n")
    staged = tmp_path / "m.jsonl"
    assert stage_metadata([str(path)], str(staged), 100, 300) == 2
    parsed = parse_chunk(staged.read_text(), limits=MetaLimits(max_line_bytes=300))
    assert [(reason, shown) for _, reason, _, shown, _ in parsed.dead_letters()[0]] == [
        ("line_too_long", lines[0][:299].decode()),
        ("line_too_long", '{"app": "a\\udcff' + "€" * 96)]


def test_3_a_staged_changelog_chunk_of_characters_past_u_ffff_is_within_the_readers_limit(
        tmp_path):
    """A character past U+FFFF (an emoji) is twelve characters of ASCII JSON, a surrogate pair
    escaped: a chunk is counted as that at most until it might pass the reader's limit, so a
    chunk of such lines ends in time and each event is read (counted as six, a chunk of them
    passed the limit, its events lost in one dead letter line_too_long: a mutation review)."""
    from flowdredge.connectors.staged import staged_changelog_max
    from flowdredge.job.ownership import MetaLimits, parse_chunk
    path = tmp_path / "changes.jsonl"
    with open(path, "wb") as fh:
        for i in range(1000):
            fh.write(json.dumps({"type": "ASSIGN", "ts": T * 1000 + i, "ip": "10.0.0.1",
                                 "app": "\U0001F600" * 230}, ensure_ascii=False).encode() + b"\n")
    staged = tmp_path / "m.jsonl"
    assert stage_metadata([str(path)], str(staged), 200, 1000) == 1000
    lines = staged.read_bytes().splitlines()
    assert max(map(len, lines)) <= staged_changelog_max(200, 1000)
    assert sum(len(parse_chunk(line.decode(), limits=MetaLimits(max_line_bytes=1000)).events)
               for line in lines) == 1000


def test_3_a_staged_changelog_line_of_one_escaped_line_is_within_the_readers_limit(tmp_path):
    """With metadata.chunk_lines 1 a chunk is one line, which staging cannot end sooner: the
    reader's limit (connectors.staged.staged_changelog_max) must take one line of
    metadata.max_line_bytes escaped (Cyrillic text three times its bytes as ASCII JSON, a byte
    that is not UTF-8 six times) with the chunk's source and line number. Each line is read as
    it is, an event or its own dead letter, never one line_too_long (a mutation review)."""
    from flowdredge.connectors.staged import staged_changelog_max
    from flowdredge.job.ownership import MetaLimits, parse_chunk
    event = json.dumps({"type": "ASSIGN", "ts": T * 1000, "ip": "10.0.0.1", "app": "Ж" * 49_900},
                       ensure_ascii=False, separators=(",", ":")).encode()
    assert len(event) <= 100_000
    (tmp_path / "changes.jsonl").write_bytes(event + b"\n" + b"\xfc" * 100_000 + b"\n")
    staged = tmp_path / "m.jsonl"
    assert stage_metadata([str(tmp_path / "changes.jsonl")], str(staged), 1, 100_000) == 2
    lines = staged.read_bytes().splitlines()
    assert max(map(len, lines)) <= staged_changelog_max(1, 100_000)
    parsed = [parse_chunk(line.decode(), limits=MetaLimits(max_line_bytes=100_000))
              for line in lines]
    assert [(len(p.events), [reason for reason, *_ in p.rejected]) for p in parsed] == [
        (1, []), (0, ["not_text"])]


def test_3_a_staged_lines_limit_is_one_a_jvm_array_holds():
    """However large the settings, the longest staged line a reader takes whole is no longer
    than a Java array holds (connectors.staged.MAX_HELD), the room for a chunk's source and
    line numbers within it (a mutation review)."""
    from flowdredge.connectors.staged import MAX_HELD, staged_changelog_max, staged_flows_max
    assert staged_changelog_max(5000, 10**9) == MAX_HELD
    assert staged_flows_max(5000, 10**9, 10**10) == MAX_HELD


def test_3_a_chunk_the_job_reads_of_a_changelog_file_is_not_cut(tmp_path):
    """A file job reads its changelog itself in chunks (connectors/jvm LineChunks, bounded by
    metadata.chunk_lines and 1 MiB of characters), as UTF-8 bytes: one of lines of Chinese text
    (three bytes a character) could be longer than a staged line's limit
    (connectors.staged.staged_changelog_max, 1.7 MB with metadata.chunk_lines 100), and the
    parse dead-lettered all its events as one staged line too long, `metadata` its place (a
    review). Only a staged file's lines, which LineBytes cuts, are held to that limit."""
    from operator_stubs import Runtime
    from flowdredge.connectors.staged import staged_changelog_max
    from flowdredge.job.flink.operators import COUNTS, DEAD_LETTERS, ParseMetadataEvents
    config = Config().replace(metadata={"chunk_lines": 100})
    limit = staged_changelog_max(100, config.metadata.max_line_bytes)
    events = [json.dumps({"type": "ASSIGN", "ts": T * 1000 + i, "ip": f"10.0.0.{i}",
                          "app": "数" * 8000}, ensure_ascii=False) for i in range(100)]
    chunk = json.dumps({"staged": "changelog", "source": "changes.jsonl", "first_line": 1,
                        "lines": events}, ensure_ascii=False).encode()
    assert len(chunk) > limit
    operator = ParseMetadataEvents(config)
    operator.open(Runtime())
    ctx = type("Context", (), {"timestamp": lambda self: None})()
    out = list(operator.process_element(chunk, ctx))
    assert [item for item in out if item[0] in (DEAD_LETTERS, COUNTS)] == []
    assert len(out) == 1
    # A staged file's reader says how long a line it sends whole.
    from flowdredge.connectors.files import file_sources
    assert file_sources("flows", "metadata", 1000, limit).metadata_max_line == limit


def test_3_a_staged_line_a_reader_cut_names_where_it_came_from():
    """A staged line cut by its reader (connectors/jvm LineBytes) was a dead letter placed at
    `record` (a flow record line) or `metadata` (a changelog line): nothing said which file
    (a review). The place its head names is given: a chunk's file and first line, a CloudWatch
    record's place (a pack's first), as the same record whole would be placed."""
    from flowdredge.job.ownership import too_long_record
    from flowdredge.job.parse import staged_line_records
    chunk = json.dumps({"source": "dir/f\u00e9.log.gz", "format": HEADER, "first_line": 2,
                        "lines": ["x" * 500]}, separators=(",", ":")).encode()
    pack = b'{"records":[{"source":"r.b64:7","record":"' + b"A" * 500
    changelog = json.dumps({"staged": "changelog", "source": "c.jsonl", "not_after": T,
                            "first_line": 5001, "lines": ["y" * 500]},
                           separators=(",", ":")).encode()
    assert [(record["source"], where) for line in (chunk, pack, b"{" + b"z" * 500)
            for record, where, _ in staged_line_records(line[:301], 300)] == [
        ("dir/f\u00e9.log.gz:2", "dir/f\u00e9.log.gz:2"), ("r.b64:7", "r.b64:7"),
        ("record", "record")]
    assert [where for _, where, *_ in too_long_record(changelog[:301], "metadata",
                                                      300).rejected] == ["c.jsonl:5001"]
    # A source holding a quote and ending in a backslash, escaped in its JSON: placed by it
    # all the same, not at `record` (a mutation review).
    odd = json.dumps({"source": 'dir/a"b\\', "format": HEADER, "first_line": 9,
                      "lines": ["x" * 500]}, separators=(",", ":")).encode()
    assert [where for *_, where, _ in staged_line_records(odd[:301], 300)] == ['dir/a"b\\:9']


def test_3_a_staged_lines_bytes_that_are_not_utf8_are_no_flow():
    """A staged line (a feed's file, corrupted) whose bytes are not UTF-8 is read with them
    replaced: the flow line holding one is a dead letter. Dropped instead (errors "ignore"),
    "ACC\\xffEPT" read as ACCEPT, a corrupted flow counted; refused (strict), the parse
    failed (a mutation review)."""
    from flowdredge.job.parse import staged_line_records
    raw = chunk([line(T), line(T)]).encode().replace(b"ACCEPT", b"ACC\xffEPT", 1)
    [(text, _, _)] = staged_line_records(raw, 10_000)
    flows, dead = outcome(parsed(text))
    assert flows == 1 and len(dead) == 1
