"""Records that cannot be decoded (`bad_chunk`, `malformed`) end in the dead letters with their
reason, and NODATA / SKIPDATA lines in the `data_quality` output per window and interface
(docs/outputs.md)."""
import base64
import dataclasses
import gzip
import json
import math
from collections import Counter

import pytest

from helpers import job_aggregates, read_records, run_replay, total_counts
from flowdredge.job.config import Config
from flowdredge.job.parse import FlowFormat, ParseResult, parse_lines, parse_record

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
    assert result.dead_letters == [("flows", "bad_chunk", "record", raw, "")]
    assert result.counts == {"records_in": 1, "dead_letter": 1, "dead_letter_bad_chunk": 1}
    assert result.groups == []


@pytest.mark.unit
@pytest.mark.parametrize("vectorised", [False, True])
@pytest.mark.parametrize("lines", [[7], [7, "10.0.0.1 10.0.0.2 1767225600"], [{"a": 1}]])
def test_a_chunk_whose_lines_are_not_text_is_malformed(lines, vectorised):
    raw = json.dumps({"source": "f#0", "format": "srcaddr dstaddr start", "lines": lines})
    result = _parsed(raw, vectorised)
    assert result.dead_letters == [("flows", "malformed", "record", raw,
                                    "an item of lines that is not a string")]
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


def _line(start):
    return f"2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 {start} {start} ACCEPT OK"


@pytest.mark.unit
@pytest.mark.parametrize("vectorised", [False, True])
def test_a_start_out_of_range_says_how_far_and_which_limit(vectorised):
    limits = CONFIG.parse_limits
    delivered = T0 + 600
    lines = [_line(T0), _line(delivered + limits.max_ahead_seconds + 3600),
             _line(delivered - limits.max_clock_skew_seconds - 60), "x" * 9000]
    result = ParseResult()
    parse_lines(V2, lines, "f", limits, result, delivered,
                vectorise_from=1 if vectorised else math.inf)
    assert [(d[1], d[2], d[4]) for d in result.dead_letters] == [
        ("timestamp_out_of_range", "f:1", "start 2026-01-01T01:12:00Z is 3600 s after the "
         "latest allowed, 2026-01-01T00:12:00Z (the delivery time, or a file's modification "
         "time, + flows.max_ahead_seconds, 120)"),
        ("timestamp_out_of_range", "f:2", "start 2025-12-31T00:09:00Z is 60 s before the "
         "earliest allowed, 2025-12-31T00:10:00Z (the delivery time - "
         "flows.max_clock_skew_seconds, 86400)"),
        ("line_too_long", "f:3", "9000 characters; flows.max_line_bytes is 8192")]
    result = ParseResult()
    parse_lines(V2, [_line(1262304000 - 1), _line(4102444800)], "f", limits, result,
                vectorise_from=1 if vectorised else math.inf)
    assert [d[4] for d in result.dead_letters] == [
        "start 2009-12-31T23:59:59Z is 1 s before the earliest allowed, 2010-01-01T00:00:00Z "
        "(2010)",
        "start 2100-01-01T00:00:00Z is 1 s after the latest allowed, 2099-12-31T23:59:59Z "
        "(2100)"]


@pytest.mark.unit
def test_a_record_that_cannot_be_decoded_says_why():
    envelope = json.dumps({"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s",
                           "logEvents": [{"message": _line(T0)}]}).encode()
    cases = [
        (gzip.compress(b"{not json", mtime=0), "not_json",
         "Expecting property name enclosed in double quotes at character 1"),
        (gzip.compress(b'{"messageType": "DATA_MESSAGE", "logEvents": 7}', mtime=0),
         "not_cloudwatch", "logEvents is not a list"),
        (gzip.compress(b'{"messageType": "SOMETHING"}', mtime=0), "not_cloudwatch",
         "messageType 'SOMETHING', not DATA_MESSAGE or CONTROL_MESSAGE"),
        (gzip.compress(json.dumps({"messageType": "S" * 5000}).encode(), mtime=0),
         "not_cloudwatch", "messageType '" + "S" * 40 + "... (5,000 characters)', not "
                           "DATA_MESSAGE or CONTROL_MESSAGE"),
        (gzip.compress(envelope, mtime=0) + b"junk", "bad_gzip",
         "bytes that are not gzip after 1 readable gzip member(s)"),
        (gzip.compress(envelope, mtime=0) + gzip.compress(envelope, mtime=0)[:-5], "bad_gzip",
         "truncated gzip data, after 1 readable gzip member(s)"),
        (gzip.compress(b" " * 2_000_000, mtime=0), "too_large",
         "more than flows.max_decompressed_bytes (1000000) once decompressed"),
        (b"plain", "not_gzip", "does not start as gzip data does (1f 8b)"),
        (b"\xf3\x89\x9a\xc2\x0a\x00" + b"x" * 40, "not_gzip",
         "a Kinesis Producer Library aggregated record (it starts f3 89 9a c2), not a CloudWatch "
         "Logs subscription record (gzip, 1f 8b): flow logs reach the stream from CloudWatch "
         "Logs' subscription filter"),
    ]
    limits = dataclasses.replace(CONFIG.parse_limits, max_decompressed_bytes=1_000_000)
    for raw, reason, detail in cases:
        result = parse_record(raw, "record", V2, limits, delivered=T0 + 60)
        assert [(d[1], d[4]) for d in result.dead_letters] == [(reason, detail)], raw[:40]


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
    # Each dead letter names the file and line of the record that held it, and says why.
    records_file = str(flows / "x_20260101T0006Z_records.b64")
    why = "JSON without a messageType: not a CloudWatch Logs subscription record"
    assert Counter((d["stage"], d["reason"], d["source"], d["detail"]) for d in dead) == {
        ("flows", "not_cloudwatch", f"{records_file}:1", why): 1,
        ("flows", "not_cloudwatch", f"{records_file}:2", why): 1,
        ("flows", "not_cloudwatch", f"{records_file}:3", why): 1}
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


def _gz_json(doc) -> bytes:
    return gzip.compress(json.dumps(doc).encode(), mtime=0)


@pytest.mark.unit
@pytest.mark.parametrize("vectorised", [False, True])
def test_an_envelope_integer_of_more_digits_than_int_reads_touches_its_event_alone(vectorised):
    """One event's timestamp of 5,000 digits made its record one not_json dead letter in
    Python's words ('Exceeds the limit (4300 digits) for integer string conversion'), every
    other line of it lost, where a timestamp of 2**70 bounds nothing and its line is kept (a
    review). Such a number is read as one beyond every range: the timestamp bounds nothing, a
    message of it is its event's not_cloudwatch, a messageType of it the record's."""
    lines = [f"2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 {T0 + i} {T0 + i + 1} ACCEPT OK"
             for i in range(3)]
    digits = "9" * 5000
    text = json.dumps({"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s",
                       "logEvents": [{"id": "0", "timestamp": "TS", "message": lines[0]},
                                     {"id": "1", "timestamp": -1, "message": "MESSAGE"},
                                     {"id": "2", "timestamp": T0 * 1000, "message": lines[1]},
                                     {"id": "3", "timestamp": T0 * 1000, "message": lines[2]}]})
    text = text.replace('"TS"', digits).replace('"MESSAGE"', "-" + digits)
    result = _parsed(gzip.compress(text.encode(), mtime=0), vectorised)
    assert sum(len(g.flows) for g in result.groups) == 3
    assert [d[1:3] + d[4:] for d in result.dead_letters] == [
        ("not_cloudwatch", "record g/s event 1", "an event without a string message")]
    # Shown as -1e999 is (a review): as its description, a string, it was a string message.
    assert result.dead_letters[0][3] == '{"id": "1", "timestamp": -1, "message": -Infinity}'
    assert result.counts["dead_letter"] == 1 and result.counts["flows_parsed"] == 3
    wrong = text.replace('"DATA_MESSAGE"', digits)
    result = _parsed(gzip.compress(wrong.encode(), mtime=0), vectorised)
    assert [d[1] for d in result.dead_letters] == ["not_cloudwatch"]
    # Unquoted, as a changelog type of it is (a review): quoted, it read as a string of those
    # words, which says the same quoted.
    assert result.dead_letters[0][4] == ("messageType a number of more than 4,300 digits, not "
                                         "DATA_MESSAGE or CONTROL_MESSAGE")
    said = _parsed(gzip.compress(text.replace('"DATA_MESSAGE"', '"a number of more than 4,300 '
                                              'digits"').encode(), mtime=0), vectorised)
    assert said.dead_letters[0][4] == ("messageType 'a number of more than 4,300 digits', not "
                                       "DATA_MESSAGE or CONTROL_MESSAGE")


@pytest.mark.unit
def test_a_record_compressed_twice_is_a_dead_letter_that_says_so():
    """Its inner gzip was read as JSON: 'Expecting value at character 0', not saying why (a
    review)."""
    raw = gzip.compress(_gz_json({"messageType": "DATA_MESSAGE", "logEvents": []}), mtime=0)
    result = parse_record(raw, "record", V2, CONFIG.parse_limits, delivered=T0)
    assert [d[1:3] + d[4:] for d in result.dead_letters] == [
        ("not_json", "record", "gzip data once decompressed (it starts 1f 8b): the record is "
                               "compressed twice")]
    assert result.counts["dead_letter"] == 1


@pytest.mark.unit
def test_a_log_stream_name_of_megabytes_is_cut_in_every_dead_letter():
    """A fuzz review's record of 4 KB (a log stream name of 1 MB, 1,000 bad events) made 1 GB
    of dead-letter sources, and the job stalled on it."""
    raw = _gz_json({"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "a" * (1 << 20),
                    "logEvents": [{"message": "x"}] * 5})
    result = parse_record(raw, "record", V2, CONFIG.parse_limits, delivered=T0)
    assert [d[1] for d in result.dead_letters] == ["field_count"] * 5
    assert [d[2] for d in result.dead_letters] == [
        f"record g/{'a' * 256} event {i}" for i in range(5)]
    # Cut as excerpts are: printable.
    raw = _gz_json({"messageType": "DATA_MESSAGE", "logGroup": "g\x1b[2J", "logStream": "s",
                    "logEvents": [{"message": "x"}]})
    result = parse_record(raw, "record", V2, CONFIG.parse_limits, delivered=T0)
    assert [d[2] for d in result.dead_letters] == ["record g\\x1b[2J/s event 0"]


@pytest.mark.unit
@pytest.mark.parametrize("vectorised", [False, True])
def test_a_key_an_envelope_is_read_by_twice_is_not_cloudwatch(vectorised):
    """JSON keeps the last of a repeated key: the events (or the line) before it were lost
    without a count (a fuzz review)."""
    events = [{"message": _line(T0 + i)} for i in range(5)]
    head = '{"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s", '
    cases = [
        ("logEvents", head + f'"logEvents": {json.dumps(events)}, "logEvents": []}}'),
        ("messageType", head + f'"logEvents": {json.dumps(events)}, '
                               '"messageType": "CONTROL_MESSAGE"}'),
        ("message", head + f'"logEvents": [{{"message": "{_line(T0)}", "message": "y"}}]}}'),
        # Spelt with an escape, which the quick count cannot see.
        ("logEvents", head + f'"logEvents": {json.dumps(events)}, "\\u006cogEvents": []}}'),
        # Counts that balance (a review): an escaped key, an event without a message.
        ("logEvents", head + f'"logEvents": [{{"message": "{_line(T0)}"}}], '
                             f'"logEvents": [{{"\\u006dessage": "{_line(T0)}"}}]}}'),
        ("logEvents", head + f'"logEvents": [{{"message": "{_line(T0)}"}}], '
                             f'"logEvents": [{{"message": "{_line(T0)}"}}, {{"id": "3"}}]}}'),
        ("message", head + f'"logEvents": [{{"message": "{_line(T0)}", "message": "y"}}, '
                           f'{{"\\u006dessage": "{_line(T0)}"}}]}}'),
        # A repeat whose events hold no message: the messages' count balances (a review).
        ("logEvents", head + f'"logEvents": [{{"id": "1"}}, 5, null], '
                             f'"logEvents": {json.dumps(events)}}}'),
    ]
    for key, text in cases:
        result = _parsed(gzip.compress(text.encode(), mtime=0), vectorised)
        assert [(d[1], d[4]) for d in result.dead_letters] == [
            ("not_cloudwatch", f"the key {key} twice in one object (JSON keeps the last)")]
        assert result.groups == [] and "lines_in" not in result.counts
    # Escapes and the keys' names as values are no repeat.
    text = (head.replace('"s"', '"logEvents"') + '"logEvents": '
            + json.dumps(events + [{"message": _line(T0) + " \u00e9"}]) + "}")
    result = parse_record(gzip.compress(text.encode(), mtime=0), "record", V2,
                          CONFIG.parse_limits, delivered=T0 + 60,
                          vectorise_from=1 if vectorised else math.inf)
    assert result.counts["flows_parsed"] == 5 and result.counts["dead_letter_field_count"] == 1
    # JSON in UTF-16 (json.loads reads it) counts no key as UTF-8 does: looked at closely, kept.
    result = parse_record(gzip.compress(json.dumps(json.loads(text)).encode("utf-16"), mtime=0),
                          "record", V2, CONFIG.parse_limits, delivered=T0 + 60,
                          vectorise_from=1 if vectorised else math.inf)
    assert result.counts["flows_parsed"] == 5 and result.counts["dead_letter_field_count"] == 1
