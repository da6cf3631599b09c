"""The vectorised changelog parse (job.changelog_columns) against parse_event line by line: the
same events in the same order, the same rejections, for any lines."""
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdredge.job.ownership import MetaLimits, parse_chunk
from flowdredge.schemas.metadata import OWNER_FIELDS

pytestmark = pytest.mark.unit

T = 1767225600000
# What the reader takes: int ts, string or null values (in range or not, canonical or not),
# mostly events the reader itself accepts.
TS = st.one_of(st.integers(T - 10, T + 10), st.integers(T - 10, T + 10),
               st.sampled_from([0, -1, 1262304000000, 4102444800000, 2**63 - 1]))
ADDRESS = st.one_of(st.builds("10.{}.0.{}".format, st.integers(0, 255), st.integers(0, 255)),
                    st.builds("10.{}.0.{}".format, st.integers(0, 255), st.integers(0, 255)),
                    st.sampled_from(["2001:db8::1", "2001:DB8::0:1", "010.0.0.1", "10.0.0.256",
                                     "x", "", None]))
# Values of white space only are absent, values holding a control character or line break
# refused (not_text): written raw, DEL, C1 and U+2028 are JSON Arrow's reader takes.
ODD_TEXT = st.sampled_from([" ", "\t", "\u00a0", "\u3000", " \u2028", "\x85", "a b", " a",
                            "a\x7f", "\x00", "a\x1b[0m", "b\u2029", "\x9fc", "a\u200b"])
VALUE = st.one_of(st.text(max_size=5), st.sampled_from(["", "api", 'q"x', "b\\s", "é"]),
                  ODD_TEXT, st.none())
EVENT = st.fixed_dictionaries(
    {"type": st.sampled_from(["ASSIGN", "ASSIGN", "UNASSIGN", "HEARTBEAT", "MOVE", None]),
     "ts": TS, "ip": ADDRESS},
    optional={"extra": st.integers(-2**63, 2**63 - 1),
              "interface_vpc_id": st.one_of(VALUE, st.sampled_from(
                  ["vpc-0a1b2c3d", "vpc-0123456789abcdef0", "vpc-0A1B2C3D", "-"])),
              **{f: VALUE for f in OWNER_FIELDS}})
# Events as a snapshot holds them: most chunks of them the reader takes whole, so that the
# equality below compares the vectorised path, not the per-line parser with itself.
PLAIN_EVENT = st.fixed_dictionaries(
    {"type": st.sampled_from(["ASSIGN", "UNASSIGN", "HEARTBEAT"]),
     "ts": st.integers(T - 10, T + 10),
     "ip": st.builds("10.{}.0.{}".format, st.integers(0, 255), st.integers(0, 255))},
    optional={"interface_vpc_id": st.sampled_from(["vpc-0a1b2c3d", "vpc-0123456789abcdef0",
                                                   "vpc-0a1b2c3d0", None]),
              **{f: st.one_of(st.sampled_from(["api", "db", "", None]), ODD_TEXT)
                 for f in OWNER_FIELDS}})
LINE = st.one_of(
    PLAIN_EVENT.map(lambda doc: json.dumps(doc, separators=(",", ":"))),
    PLAIN_EVENT.map(json.dumps),
    PLAIN_EVENT.map(lambda doc: json.dumps(doc, separators=(",", ":"), ensure_ascii=False)),
    EVENT.map(lambda doc: json.dumps(doc, separators=(",", ":"), ensure_ascii=False)),
    EVENT.map(json.dumps),                      # spaces after separators, \u escapes
    EVENT.map(lambda doc: " " + json.dumps(doc)),
    st.sampled_from(["", "  ", "x" * 300, '{"type":"ASSIGN","ip":"10.0.0.1"}',
                     f'{{"type":"ASSIGN","ts":{T}}}', f'{{"type":"HEARTBEAT","ts":{T}}}']))
# Lines that make the reader refuse the whole chunk, or that it would misread.
ODD = st.one_of(
    st.tuples(EVENT, EVENT).map(lambda docs: "".join(map(json.dumps, docs))),   # two objects
    EVENT.map(lambda doc: json.dumps(doc)[:-1] + ', "type": "ASSIGN"}'),   # a key twice
    st.sampled_from(['{"type":"ASSIGN","ts":1767225600000.0,"ip":"10.0.0.1"}',
                     '{"type":"ASSIGN","ts":"1","ip":"10.0.0.1"}',
                     '{"type":"ASSIGN","ts":1767225600000,"ip":7}',
                     '{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.0.1","app":5}',
                     '{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.0.1","app":true}',
                     '{"type":"ASSIGN","ts":99999999999999999999,"ip":"10.0.0.1"}',
                     '{"type":"HEARTBEAT","ts":true}', "not json", "[1]", "{}",
                     '{"type":"HEARTBEAT"', '{"type":"HEARTBEAT","ts":1767225600000,}']))


def _same_both_ways(lines, delivered):
    record = "\n".join(lines)
    limits = MetaLimits(max_line_bytes=256)
    vectorised = parse_chunk(record, "m", delivered, limits, vectorise_from=0)
    one_by_one = parse_chunk(record, "m", delivered, limits, vectorise_from=math.inf)
    assert vectorised.events == one_by_one.events
    assert [type(e.owner) for e in vectorised.events] == [type(e.owner) for e in one_by_one.events]
    assert vectorised.rejected == one_by_one.rejected


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=30), st.sampled_from([None, T // 1000]))
def test_vectorised_chunks_give_what_the_lines_give_one_by_one(lines, delivered):
    _same_both_ways(lines, delivered)


def test_an_interface_vpc_id_a_vpc_id_begins_is_refused_in_columns_as_line_by_line():
    """A VPC id and more (9 hex digits, a suffix) is no VPC id: bad_vpc_id either way, not
    taken by the columns' pattern for the VPC id it begins with."""
    _same_both_ways([json.dumps({"type": "ASSIGN", "ts": T, "ip": "10.0.0.1", "app": "api",
                                 "interface_vpc_id": vpc})
                     for vpc in ("vpc-0a1b2c3d0", "vpc-0a1b2c3d", "vpc-0a1b2c3dx")], None)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=20), ODD, st.integers(0, 20))
def test_a_line_the_reader_refuses_or_misreads_changes_nothing(lines, odd, at):
    _same_both_ways(lines[:at] + [odd] + lines[at:], None)


def test_a_snapshot_chunk_is_read_in_columns_and_equals_the_lines():
    """The common case takes the reader (no line left to parse_event) and agrees."""
    from flowdredge.job import changelog_columns
    lines = [json.dumps({"type": "ASSIGN", "ts": T, "ip": f"10.0.{i // 250}.{i % 250}",
                         "app": f"app-{i % 7}", "zone": "", "kind": None})
             for i in range(500)] + [json.dumps({"type": "HEARTBEAT", "ts": T})]
    events, rest = changelog_columns.parse_lines(lines, list(range(len(lines))), 0, 2 * T,
                                                 lambda ip: None)
    assert rest == [] and len(events) == 501
    assert parse_chunk("\n".join(lines)).events == parse_chunk(
        "\n".join(lines), vectorise_from=math.inf).events


@pytest.mark.parametrize("slice_lines", [None, 2], ids=["one_slice", "slices"])
@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_equal_owner_values_of_a_chunk_are_one_object_and_cross_once(vectorise_from, slice_lines,
                                                                     monkeypatch):
    """What job.codec relies on to write each repeated owner value once; across the slices of
    a record longer than SLICE_LINES too (af78bf0's slices each made their own objects: a
    100,000-line snapshot chunk's events encoded 6 % larger)."""
    from flowdredge.job import ownership
    from flowdredge.job.codec import decode_events, encode_events
    if slice_lines:
        monkeypatch.setattr(ownership, "SLICE_LINES", slice_lines)
    lines = [json.dumps({"type": "ASSIGN", "ts": T, "ip": f"10.0.0.{i}", "app": "api",
                         "account": "123456789012", "interface_id": f"eni-{i}",
                         "interface_vpc_id": "vpc-0a1b2c3d"})
             for i in range(4)]
    events = parse_chunk("\n".join(lines), vectorise_from=vectorise_from).events
    for field in (0, 3, 5):   # app, account, an absent zone
        assert len({id(e.owner[field]) for e in events}) == 1
    assert len({id(e.interface_vpc_id) for e in events}) == 1
    decoded, _ = decode_events(encode_events(events))
    assert decoded == events and decoded[0].owner[0] is decoded[3].owner[0]
    copies = [e._replace(owner=tuple(v.encode().decode() for v in e.owner)) for e in events]
    assert copies[0].owner[0] is not copies[3].owner[0]
    assert len(encode_events(events)) < len(encode_events(copies))
