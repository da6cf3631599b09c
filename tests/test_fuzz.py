"""No input escapes the parsers as an exception: every line and record is parsed, counted as
no-data, or dead-lettered with a reason."""
import base64
import gzip
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdredge.job.ownership import MetaEventError, parse_event
from flowdredge.job.parse import FlowFormat, Limits, parse_record
from flowdredge.schemas.flowlog import DEFAULT_FORMAT

pytestmark = pytest.mark.unit
V2 = FlowFormat(DEFAULT_FORMAT)
LIMITS = Limits(60, 100_000, 86400)
FIELD = st.one_of(st.just("-"), st.integers(-10, 10**12).map(str), st.text(max_size=12),
                  st.sampled_from(["10.0.0.1", "::1", "ACCEPT", "NODATA", "SKIPDATA", "OK",
                                   "1767225600", "999.1.1.1"]))
LINE = st.one_of(st.text(max_size=80),
                 st.lists(FIELD, min_size=10, max_size=16).map(" ".join))


def _accounted(result, lines_given):
    c = result.counts
    assert c["lines_in"] == c["flows_parsed"] + c["no_data"] + c["skip_data"] + sum(
        1 for d in result.dead_letters if d[1] not in RECORD_REASONS)
    assert c["flows_parsed"] == sum(len(g.flows) for g in result.groups)
    assert all(len(d[3]) <= 256 for d in result.dead_letters)
    assert c["lines_in"] <= lines_given


def _both_paths(raw):
    """The record parsed with every chunk vectorised and with none: the same result."""
    fast = parse_record(raw, "r", V2, LIMITS, vectorise_from=1)
    slow = parse_record(raw, "r", V2, LIMITS, vectorise_from=math.inf)
    assert ([(g.window_start, g.max_start, g.flows) for g in fast.groups], fast.dead_letters,
            fast.counts, fast.no_traffic) == ([(g.window_start, g.max_start, g.flows)
                                               for g in slow.groups], slow.dead_letters,
                                              slow.counts, slow.no_traffic)
    return fast


RECORD_REASONS = {"bad_base64", "not_gzip", "bad_gzip", "not_json", "not_cloudwatch",
                  "too_large", "bad_chunk", "malformed", "empty_file", "bad_header",
                  "unreadable"}
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(LINE, max_size=20))
def test_cloudwatch_envelopes_of_any_lines(lines):
    envelope = {"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s",
                "logEvents": [{"id": "1", "timestamp": 1767225600000, "message": line}
                              for line in lines]}
    result = _both_paths(gzip.compress(json.dumps(envelope).encode()))
    _accounted(result, len(lines))


@SETTINGS
@given(st.lists(LINE, max_size=20), st.text(max_size=60))
def test_file_chunks_of_any_lines_and_formats(lines, fmt):
    chunk = json.dumps({"source": "f", "format": fmt or "srcaddr dstaddr start", "lines": lines})
    _accounted(_both_paths(chunk), len(lines))


@SETTINGS
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200),
                 st.binary(max_size=200).map(gzip.compress),
                 st.binary(max_size=200).map(lambda b: base64.b64encode(gzip.compress(b)).decode()),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                              lambda inner: st.lists(inner, max_size=4)
                              | st.dictionaries(st.sampled_from(
                                  ["messageType", "logEvents", "message", "lines", "format",
                                   "timestamp", "delivered", "x", "source", "record", "error",
                                   "not_after", "long", "ignore", "first_line"]), inner,
                                  max_size=4),
                              max_leaves=12).map(lambda d: gzip.compress(json.dumps(d).encode()))))
def test_any_record_is_parsed_or_dead_lettered(raw):
    _staged_alike(raw)
    result = _both_paths(raw)
    assert result.counts["records_in"] == 1
    _accounted(result, 10**6)
    # A record that yielded no line is either a CONTROL_MESSAGE, an empty envelope or chunk,
    # or dead-lettered.
    if not result.counts["lines_in"] and not result.counts["records_skipped"]:
        assert result.dead_letters or _empty_container(raw)


def _staged_alike(raw):
    """The same document as a record staged by job.replay (JSON text): never an exception."""
    if isinstance(raw, bytes) and raw[:2] == b"\x1f\x8b":
        try:
            text = gzip.decompress(raw).decode()
        except (OSError, EOFError, UnicodeDecodeError):
            return
        if text.startswith("{"):
            _accounted(_both_paths(text), 10**6)


def _empty_container(raw):
    if isinstance(raw, str):
        raw = raw.encode()
    doc = json.loads(gzip.decompress(raw)) if raw[:2] == b"\x1f\x8b" else json.loads(raw)
    return doc.get("logEvents") == [] or doc.get("lines") == []


@SETTINGS
@given(st.one_of(st.text(max_size=100), st.dictionaries(
    st.sampled_from(["type", "ts", "ip", "app"]),
    st.one_of(st.none(), st.integers(), st.text(max_size=10), st.floats(allow_nan=True),
              st.sampled_from(["ASSIGN", "UNASSIGN", "HEARTBEAT", "10.0.0.1", "fe80::1"])),
    max_size=4).map(json.dumps)))
def test_any_metadata_line_is_an_event_or_a_reason(line):
    try:
        parse_event(line)
    except MetaEventError as err:
        assert err.reason
