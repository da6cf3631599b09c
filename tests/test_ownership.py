import ipaddress
import json
import math
import sys

import numpy as np
import pyarrow as pa

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdredge.job import changelog_columns, ownership
from flowdredge.job.codec import decode_events, encode_events
from flowdredge.job.ownership import (EARLIEST_TS_MS, JVM_NOT_UTF8, LATEST_TS_MS, PART_KEY, STAGED,
                                      MetadataClock, MetaEvent, MetaEventError, MetaLimits,
                                      OwnershipIndex, _normalised, apply_events, changelog_lines,
                                      parse_chunk, parse_event, vpc_key)
from flowdredge.job.parse import EXCERPT_CHARS, excerpt
from flowdredge.schemas.metadata import ASSIGN, HEARTBEAT, OWNER_FIELDS, UNASSIGN
from flowdredge.schemas.security import is_reserved_app

pytestmark = pytest.mark.unit


def owner(app):
    return (app,) + ("-",) * (len(OWNER_FIELDS) - 1)


def index_of(*events):
    index = OwnershipIndex()
    for kind, ts, ip, app in events:
        index.apply(MetaEvent(kind, ts, ip, owner(app) if app else None))
    return index


def restored(index, ips):
    """A new index loaded from the broadcast state `index` writes for `ips`, in reverse order:
    IPs before the parts they name, as the state's own order may give them."""
    entries = index.state_entries(ips)[::-1]
    other = OwnershipIndex()
    other.load(lambda: iter(entries))
    return other


def app_at(index, ip, t):
    o = index.owner_at(ip, t)
    return o[0] if o else None


def test_reassignment_boundaries_are_inclusive_at_ts():
    index = index_of((ASSIGN, 1000, "10.0.0.1", "api"), (UNASSIGN, 5000, "10.0.0.1", None),
                     (ASSIGN, 9000, "10.0.0.1", "db"))
    assert [app_at(index, "10.0.0.1", t) for t in (999, 1000, 4999, 5000, 8999, 9000, 10**13)] \
        == [None, "api", "api", None, None, "db", "db"]


def test_out_of_order_events_are_ordered_by_ts():
    index = index_of((ASSIGN, 9000, "10.0.0.1", "db"), (UNASSIGN, 5000, "10.0.0.1", None),
                     (ASSIGN, 1000, "10.0.0.1", "api"))
    assert [app_at(index, "10.0.0.1", t) for t in (2000, 6000, 9500)] == ["api", None, "db"]


def test_release_and_reassign_at_the_same_instant_leave_the_new_owner():
    for order in ([(ASSIGN, 5000, "ip", "new"), (UNASSIGN, 5000, "ip", None)],
                  [(UNASSIGN, 5000, "ip", None), (ASSIGN, 5000, "ip", "new")]):
        index = index_of((ASSIGN, 0, "ip", "old"), *order)
        assert app_at(index, "ip", 5000) == "new"
        assert app_at(index, "ip", 4999) == "old"


def test_prune_keeps_what_the_horizon_needs():
    index = index_of((ASSIGN, 0, "a", "x"), (ASSIGN, 100, "a", "y"), (ASSIGN, 200, "a", "z"),
                     (ASSIGN, 0, "b", "x"), (UNASSIGN, 50, "b", None))
    changed, removed = index.prune(150)
    assert changed == ["a"] and removed == ["b"]
    assert [app_at(index, "a", t) for t in (150, 199, 200)] == ["y", "y", "z"]
    assert index.ranges() == 2 and len(index) == 1


def test_prune_keeps_a_change_at_the_horizon_and_forgets_the_one_before_it():
    """A flow at the horizon takes the change made then, so the one before it is needed by
    no flow the prune keeps owners for."""
    index = index_of((ASSIGN, 0, "a", "x"), (ASSIGN, 150, "a", "y"))
    assert index.prune(150) == (["a"], [])
    assert [(ts, app_at(index, "a", ts)) for ts, _, _ in index.changes("a")] == [(150, "y")]
    assert index.ranges() == 1


def test_state_encoding_round_trips():
    index = index_of((ASSIGN, 0, "10.0.0.1", "api"), (UNASSIGN, 10, "10.0.0.1", None))
    other = restored(index, ["10.0.0.1"])
    assert [app_at(other, "10.0.0.1", t) for t in (0, 10)] == ["api", None]


def test_clock_watermark_and_lateness():
    clock = MetadataClock(out_of_orderness_ms=30)
    assert not clock.complete_up_to(0)
    assert not clock.observe(MetaEvent(ASSIGN, 100, "a", owner("x")))
    assert clock.watermark == 70
    assert not clock.observe(MetaEvent(ASSIGN, 80, "b", owner("x")))     # within the bound
    assert clock.observe(MetaEvent(ASSIGN, 60, "c", owner("x")))         # behind it: late
    clock.observe(MetaEvent(HEARTBEAT, 95))
    assert clock.watermark == 95 and clock.complete_up_to(95) and not clock.complete_up_to(96)
    again = MetadataClock.decode(clock.encode(), 30)
    assert again.watermark == 95


@pytest.mark.parametrize("ts,late", [(10, True), (11, False)])
def test_the_first_change_is_late_exactly_when_at_or_behind_the_heartbeat(ts, late):
    # No change yet, so the heartbeat alone is the watermark: one at it is already covered.
    clock = MetadataClock(out_of_orderness_ms=30)
    clock.observe(MetaEvent(HEARTBEAT, 10))
    assert clock.observe(MetaEvent(ASSIGN, ts, "a", owner("x"))) == late


@pytest.mark.parametrize("line,reason", [
    ('{"type":"ASSIGN","ip":"10.0.0.1"}', "missing_ts"),
    ('{"type":"MOVE","ts":1,"ip":"10.0.0.1"}', "unknown_type"),
    ('{"type":"UNASSIGN","ts":1}', "missing_ip"),
    ('{"type":"UNASSIGN","ts":1,"ip":"10.0.0.256"}', "bad_address"),
    ('{"type":"VPC_UNASSIGN","ts":1,"ip":"10.0.0.1"}', "bad_vpc_id"),
    ('{"type":"VPC_ASSIGN","ts":1,"ip":"10.0.0.1","vpc_id":"vpc-0A1B2C3D"}', "bad_vpc_id"),
    ('{"type":"VPC_ASSIGN","ts":1,"ip":"10.0.0.1","vpc_id":"vpc-0a1b2c3d 10.0.0.2"}',
     "bad_vpc_id"),
    ('{"type":"VPC_ASSIGN","ts":1,"ip":"10.0.0.1","vpc_id":["vpc-0a1b2c3d"]}', "bad_vpc_id"),
    ('{"type":"VPC_ASSIGN","ts":1,"vpc_id":"vpc-0a1b2c3d"}', "missing_ip"),
    ('[1,2]', "not_an_object"),
    ('nope', "not_json"),
    ('[' * 100_000 + ']' * 100_000, "not_json"),
    ('{"type":"ASSIGN","ts":1,"ip":"10.0.0.1","app":' + '[' * 100_000 + ']' * 100_000 + '}',
     "not_json"),
])
def test_bad_events_have_reasons(line, reason):
    with pytest.raises(MetaEventError) as err:
        parse_event(line)
    assert err.value.reason == reason


@pytest.mark.parametrize("ip,canonical", [
    ("10.0.0.1", "10.0.0.1"), ("255.255.255.255", "255.255.255.255"), ("0.0.0.0", "0.0.0.0"),
    ("2001:DB8:0:0::1", "2001:db8::1"),
    ("010.0.0.1", None), ("10.0.0.1\n", None), ("10.0.0.1 ", None), ("1.2.3", None),
    ("\u0661.0.0.1", None), ("256.0.0.1", None), ("10.0.0.-1", None), ("", None),
    ("fe80::1%eth0", None),
])
def test_addresses_are_kept_as_ipaddress_writes_them_or_rejected(ip, canonical):
    line = json.dumps({"type": "UNASSIGN", "ts": 1700000000000, "ip": ip})
    if canonical is None:
        with pytest.raises(MetaEventError) as err:
            parse_event(line)
        assert err.value.reason == "bad_address"
    else:
        assert parse_event(line).ip == canonical


_SPELLS_IPV4 = (ipaddress.ip_network("::ffff:0:0/96"), ipaddress.ip_network("::100:0/104"),
                ipaddress.ip_network("::200:0/103"), ipaddress.ip_network("::400:0/102"),
                ipaddress.ip_network("::800:0/101"), ipaddress.ip_network("::1000:0/100"),
                ipaddress.ip_network("::2000:0/99"), ipaddress.ip_network("::4000:0/98"),
                ipaddress.ip_network("::8000:0/97"))


def _ipaddress_verdict(text):
    """ipaddress's canonical text; none for a zone id (a host's interface, never a VPC's) or
    for an IPv6 address that spells an IPv4 one (mapped, or compatible from ::1.0.0.0 on)."""
    try:
        address = None if "%" in text else ipaddress.ip_address(text)
    except ValueError:
        return None
    if address is None or address.version == 6 and any(address in net for net in _SPELLS_IPV4):
        return None
    return str(address)


# IPv6 addresses as groups that are often zero (runs of zeros to compress, ties between runs),
# written canonically, in full, in upper case, or with an IPv4 tail.
_GROUPS = st.lists(st.one_of(st.just(0), st.integers(0, 0xFFFF)), min_size=8, max_size=8)


@settings(max_examples=400, deadline=None)
@given(_GROUPS, st.sampled_from(["canonical", "exploded", "upper", "ipv4-tail", "zone"]))
def test_ipv6_addresses_are_written_as_ipaddress_writes_them(groups, form):
    address = ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups))
    text = {"canonical": address.compressed, "exploded": address.exploded,
            "upper": address.compressed.upper(),
            "ipv4-tail": f"{address.exploded[:30]}{address.ipv4_mapped or '1.2.3.4'}",
            "zone": f"{address.compressed}%eth0"}[form]
    assert _normalised(text) == _ipaddress_verdict(text)


@pytest.mark.parametrize("text", [
    "::", "::1", "1::", "::ffff:1.2.3.4", "::1.2.3.4", "::ffff:102:304", "0:0:1::", "1:0:0:1::",
    "1::1:0:0:1", "1:0::1", "2001:db8::", "2001:db8:0:0:1:0:0:1", "fe80::1%eth0", "::1\x00",
    "1:2:3:4:5:6:7:8:9", ":::1", "1::2::3", "::g", "\u0661::1", "12345::1",
])
def test_ipv6_edge_cases_are_written_as_ipaddress_writes_them(text):
    assert _normalised(text) == _ipaddress_verdict(text)


def test_owner_values_are_strings_and_empty_or_null_ones_absent():
    e = parse_event('{"type":"ASSIGN","ts":1700000000000,"ip":"10.0.0.1","app":"api",'
                    '"cluster":"","asg":null,"account":123456789012}')
    assert e.owner[:4] == ("api", "-", "-", "123456789012") and e.owner[4:] == ("-",) * 5


def test_a_chunk_of_events_crosses_between_operators_unchanged_its_repeated_values_once():
    events = [MetaEvent(ASSIGN, 1700000000000 + n, f"10.0.0.{n}",
                        ("api", "api-prod") + (f"eni-{n}",) * (len(OWNER_FIELDS) - 2))
              for n in range(3)] + [MetaEvent(UNASSIGN, 1700000000009, "10.0.0.1"),
                                    MetaEvent(HEARTBEAT, 1700000000010)]
    decoded, from_snapshot = decode_events(encode_events(events))
    assert decoded == events and all(type(e) is MetaEvent for e in decoded)
    assert decoded[0].owner[0] is decoded[2].owner[0] and not from_snapshot
    assert decode_events(encode_events(events, from_snapshot=True)) == (events, True)
    with pytest.raises(ValueError, match="codec version 9"):
        decode_events(b"\x09" + encode_events(events)[1:])


def test_event_contract_is_accepted_as_is_with_extra_fields():
    e = parse_event('{"type":"ASSIGN","ts":1700000000000,"ip":"2001:DB8::1","app":"api",'
                    '"cluster":"api-prod","asg":"api-prod-v012","account":"123456789012",'
                    '"region":"us-east-1","zone":"us-east-1a","interface_id":"eni-1",'
                    '"resource_id":"i-1","kind":"instance","extra":"ignored"}')
    assert e.ip == "2001:db8::1" and e.owner[:3] == ("api", "api-prod", "api-prod-v012")
    assert parse_event('{"type":"HEARTBEAT","ts":1700000000000}') == \
        MetaEvent(HEARTBEAT, 1700000000000)


def test_range_count_follows_apply_prune_and_load():
    index = index_of((ASSIGN, 0, "a", "x"), (ASSIGN, 100, "a", "y"), (ASSIGN, 200, "a", "z"),
                     (ASSIGN, 0, "b", "x"), (UNASSIGN, 50, "b", None))
    assert index.ranges() == 5
    index.prune(150)
    assert index.ranges() == sum(1 for ip in ("a", "b") for _ in
                                 index.changes(ip)) == 2
    entries = index_of((ASSIGN, 0, "c", "x"), (ASSIGN, 9, "c", "w")).state_entries(["c"])
    index.load(lambda: iter(entries))
    assert index.ranges() == 4


# Chunks: a record of many changelog lines must leave exactly what its lines one by one leave.

T = 1_767_225_600_000   # 2026-01-01, epoch ms: changes before 2010 are garbage
CHANGELOG = [
    f'{{"type":"ASSIGN","ts":{T + 1000},"ip":"10.0.0.1","app":"api"}}',
    f'{{"type":"HEARTBEAT","ts":{T + 900}}}',
    'not json',
    f'{{"type":"ASSIGN","ts":{T + 5000},"ip":"10.0.0.2","app":"db"}}',
    f'{{"type":"UNASSIGN","ts":{T + 5000},"ip":"10.0.0.1"}}',
    f'{{"type":"ASSIGN","ts":{T + 5000},"ip":"10.0.0.1","app":"web"}}',   # tie: after UNASSIGN
    f'{{"type":"UNASSIGN","ts":{T + 3000},"ip":"10.0.0.2"}}',             # out of order, on time
    f'{{"type":"MOVE","ts":{T + 6000},"ip":"10.0.0.3"}}',
    f'{{"type":"HEARTBEAT","ts":{T + 40000}}}',
    f'{{"type":"ASSIGN","ts":{T + 2000},"ip":"10.0.0.3","app":"late"}}',  # behind the heartbeat
    f'{{"type":"ASSIGN","ts":{T + 41000},"ip":"10.0.0.300","app":"x"}}',
    '[1, 2]',
    '[' * 1100 + ']' * 1100,   # deeper than json's recursion limit
    f'{{"type":"ASSIGN","ts":{T + 42000},"ip":"10.0.0.2","app":"db"}}',
]
SHIFT = 30_000


def one_by_one(lines):
    index, clock = OwnershipIndex(), MetadataClock(SHIFT)
    counts, rejected, stamps = {}, [], []
    for line in lines:
        try:
            event = parse_event(line)
        except MetaEventError as err:
            rejected.append((err.reason, line))
            continue
        stamps.append(event.ts + SHIFT if event.type == HEARTBEAT else event.ts)
        counts["metadata_events"] = counts.get("metadata_events", 0) + 1
        if clock.observe(event):
            counts["metadata_late"] = counts.get("metadata_late", 0) + 1
        if event.type == HEARTBEAT:
            counts["heartbeats"] = counts.get("heartbeats", 0) + 1
        else:
            index.apply(event)
    return index, clock, counts, rejected, stamps


def in_chunks(lines, size):
    index, clock = OwnershipIndex(), MetadataClock(SHIFT)
    counts, rejected, stamps, written = {}, [], [], {}
    for i in range(0, len(lines), size):
        chunk = parse_chunk(_staged(lines[i:i + size], first_line=i + 1))
        rejected += [(reason, line) for reason, _, line, _ in chunk.rejected]
        if chunk.events:
            stamps.append(chunk.event_time_ms(SHIFT))
        # As the job moves them from the parse to the attribution (job.codec).
        events, from_snapshot = decode_events(encode_events(chunk.events))
        chunk_counts, changed = apply_events(events, index, clock, from_snapshot)
        for k, n in chunk_counts.items():
            counts[k] = counts.get(k, 0) + n
        for ip in changed:
            written[ip] = index.encode(ip)
    return index, clock, counts, rejected, stamps, written


def snapshot(index):
    assert len(index) == 3
    return {ip: index.changes(ip) for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3")}


@pytest.mark.parametrize("size", [1, 2, 3, 5, len(CHANGELOG) - 1, len(CHANGELOG), 100])
def test_chunks_of_any_size_give_what_the_lines_give_one_by_one(size):
    ref_index, ref_clock, ref_counts, ref_rejected, ref_stamps = one_by_one(CHANGELOG)
    index, clock, counts, rejected, stamps, written = in_chunks(CHANGELOG, size)
    assert snapshot(index) == snapshot(ref_index)
    # Every changed IP was handed back for writing, with its final changes.
    assert written == {ip: index.encode(ip) for ip in written}
    assert set(written) == set(snapshot(index))
    assert (clock.max_ts, clock.heartbeat) == (ref_clock.max_ts, ref_clock.heartbeat)
    assert counts == ref_counts == {"metadata_events": 9, "metadata_late": 1, "heartbeats": 2}
    assert rejected == ref_rejected
    assert [r for r, _ in rejected] == ["not_json", "unknown_type", "bad_address",
                                        "not_an_object", "not_json"]
    # The watermark after each chunk (the running max of timestamps) is the one the lines
    # one by one reach at the chunk's end.
    ends = [max(ref_stamps[:n]) for n in _events_before_chunk_ends(CHANGELOG, size)]
    assert [max(stamps[:i + 1]) for i in range(len(stamps))] == ends


def _events_before_chunk_ends(lines, size):
    good = [0]
    for line in lines:
        try:
            parse_event(line)
            good.append(good[-1] + 1)
        except MetaEventError:
            good.append(good[-1])
    ends = []
    for i in range(0, len(lines), size):
        end = min(i + size, len(lines))
        if good[end] > good[i]:
            ends.append(good[end])
    return ends


def test_tie_within_a_chunk_and_across_chunks_leaves_the_new_owner():
    for size in (1, 2, 3):
        index, *_ = in_chunks(CHANGELOG, size)
        assert app_at(index, "10.0.0.1", T + 5000) == "web"
        assert app_at(index, "10.0.0.2", T + 4000) is None
        assert app_at(index, "10.0.0.2", T + 3000) is None


def _staged(lines, first_line=1, source="changes.jsonl", not_after=None, long=()):
    doc = {"staged": STAGED, "source": source, "first_line": first_line, "lines": lines}
    if not_after is not None:
        doc["not_after"] = not_after
    if long:
        doc["long"] = [list(x) for x in long]
    return json.dumps(doc)


@pytest.mark.parametrize("record,lines", [
    ('{"type":"HEARTBEAT","ts":1}', ['{"type":"HEARTBEAT","ts":1}']),
    ('{"type":"HEARTBEAT","ts":1}\n\n{"type":"HEARTBEAT","ts":2}\r\n',
     ['{"type":"HEARTBEAT","ts":1}', "", '{"type":"HEARTBEAT","ts":2}\r', ""]),
    (_staged(['{"type":"HEARTBEAT","ts":1}', "x"]), ['{"type":"HEARTBEAT","ts":1}', "x"]),
    ('["x"]', ['["x"]']),                  # not a staged chunk: a line, dead-lettered as such
    ('{"staged": "changelog", "lines": [1]}', ['{"staged": "changelog", "lines": [1]}']),
    ('[not json', ['[not json']),
    ('  \n', ["  ", ""]),
    # Nested deeper than json.loads goes (RecursionError): a line, dead-lettered as such.
    (DEEP := '{"staged":"changelog","x":' + "[" * 100_000 + "]" * 100_000 + ',"lines":[]}',
     [DEEP]),
])
def test_a_record_holds_one_or_many_lines(record, lines):
    assert changelog_lines(record).lines == lines


def test_a_stream_record_of_many_lines_parses_like_a_staged_chunk():
    text = parse_chunk("\n".join(CHANGELOG))
    staged = parse_chunk(_staged(CHANGELOG))
    assert text.events == staged.events and len(text.events) == 9
    assert [r[0] for r in text.rejected] == [r[0] for r in staged.rejected]
    assert len(text.rejected) == 5
    assert parse_chunk("").event_time_ms(SHIFT) is None


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_a_rejected_change_says_why(vectorise_from):
    t0 = 1767225600
    lines = [json.dumps({"type": "ASSIGN", "ts": ts, "ip": "10.0.0.1", "app": app})
             for ts, app in [((t0 + 130) * 1000, "a"), (t0 * 1000, "a"),
                             (1262304000000 - 1, "a"), (t0 * 1000, "aws:s3"),
                             (4102444800000, "a")]]
    chunk = parse_chunk("\n".join(lines), "m", delivered=t0, limits=MetaLimits(1000, 120),
                        vectorise_from=vectorise_from)
    assert [(r[0], r[3]) for r in chunk.rejected] == [
        ("ts_out_of_range", "ts 1767225730000 (2026-01-01T00:02:10Z) is 10.000 s after the latest "
         "allowed, 1767225720000 (2026-01-01T00:02:00Z, the delivery time + "
         "metadata.max_ahead_seconds)"),
        ("ts_out_of_range", "ts 1262303999999 (2009-12-31T23:59:59Z) is before 2010"),
        ("reserved_app", "app 'aws:s3' is a name the job gives ends without an owner: applied "
                         "as an UNASSIGN"),
        ("ts_out_of_range", "ts 4102444800000 (2100-01-01T00:00:00Z) is 2335219080.000 s after the "
         "latest allowed, 1767225720000 (2026-01-01T00:02:00Z, the delivery time + "
         "metadata.max_ahead_seconds)")]
    assert [r[3] for r in parse_chunk(lines[-1]).rejected] == [
        "ts 4102444800000 (2100-01-01T00:00:00Z) is 0.001 s after the latest allowed, "
        "4102444799999 (2099-12-31T23:59:59Z, 2100)"]


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_a_change_at_the_flows_end_is_left_out_and_one_a_millisecond_before_it_read(
        vectorise_from):
    """No flow of a replay starts at or after its flows_end (job.replay.flows_end), so a change
    at its first millisecond is needed by none, and read it would move the metadata clock
    past every flow; the change a millisecond before is a flow's at the last second's end."""
    end = 1767225600 + 600
    lines = [json.dumps({"type": "ASSIGN", "ts": ts, "ip": ip, "app": "a"})
             for ts, ip in ((end * 1000 - 1, "10.0.0.1"), (end * 1000, "10.0.0.2"))]
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from, flows_end=end)
    assert [e.ip for e in chunk.events] == ["10.0.0.1"] and chunk.after_flows == 1


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_an_owner_that_is_not_text_or_an_address_that_spells_ipv4_is_refused(vectorise_from):
    """A fuzz review: a lone surrogate escape in an app failed the job in PyFlink's UTF-8 coder
    (and would again after each restart, from the broadcast state); ::ffff:10.9.9.9 was kept
    as an IPv6 address no flow of 10.9.9.9 matches."""
    t0 = 1767225600000
    lines = ['{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","app":"api"}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","app":"api\\ud800"}' % (t0 + 1),
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.2","app":"db","zone":"\\udfff"}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.3","app":"\\ud83d\\ude00"}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"::ffff:10.9.9.9","app":"a"}' % t0]
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    assert [(e.type, e.ip, e.owner and e.owner[0]) for e in chunk.events] == [
        (ASSIGN, "10.0.0.1", "api"), (UNASSIGN, "10.0.0.1", None), (UNASSIGN, "10.0.0.2", None),
        (ASSIGN, "10.0.0.3", "\U0001f600")]
    assert [(r[0], r[1], r[3]) for r in chunk.rejected] == [
        ("not_text", "m:2", "app holds a lone surrogate (a \\ud800-\\udfff escape), which is "
                            "not text: applied as an UNASSIGN"),
        ("not_text", "m:3", "zone holds a lone surrogate (a \\ud800-\\udfff escape), which is "
                            "not text: applied as an UNASSIGN"),
        ("bad_address", "m:5", "ip is an IPv6 address that spells an IPv4 one (::ffff:a.b.c.d or "
                               "::a.b.c.d)")]


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_an_owner_value_holding_a_control_character_or_line_break_is_refused(vectorise_from):
    """A run 64 bad-input hunt: an owner value holding a control character (an escape
    sequence, NUL, DEL, a C1 one) or a line or paragraph separator was taken as it was, into
    every output keyed or written by it. It is not_text, applied as an UNASSIGN (a
    VPC_UNASSIGN): the IP's previous owner kept would misattribute its flows. Other characters
    that are not printable (a zero-width or no-break space, a private-use one) are text."""
    t0 = 1767225600000

    def assign(t, ip, value, field="app", kind="ASSIGN", extra=""):
        return '{"type":"%s","ts":%d,"ip":"%s",%s"%s":"%s"}' % (kind, t, ip, extra, field, value)
    lines = [assign(t0, "10.0.0.1", "api"), assign(t0 + 1, "10.0.0.1", "api\\u001b[31m"),
             assign(t0, "10.0.0.2", "a\\u0000", "zone"), assign(t0, "10.0.0.3", "a\\nb", "asg"),
             assign(t0, "10.0.0.4", "a\x7fb"), assign(t0, "10.0.0.5", "a\x85", "cluster"),
             assign(t0, "10.0.0.6", "a\u2028b", "kind"), assign(t0, "10.0.0.7", "\\u2029x"),
             assign(t0, "10.0.0.8", "a\\tb", kind="VPC_ASSIGN",
                    extra='"vpc_id":"vpc-0a1b2c3d",'),
             assign(t0, "10.0.0.9", "a\u200bb\u00a0c\ue000")]
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    assert [(e.type, e.ip, e.owner and e.owner[0]) for e in chunk.events] == [
        (ASSIGN, "10.0.0.1", "api"), (UNASSIGN, "10.0.0.1", None)] + [
        (UNASSIGN, f"10.0.0.{n}", None) for n in range(2, 8)] + [
        (UNASSIGN, "vpc-0a1b2c3d 10.0.0.8", None),
        (ASSIGN, "10.0.0.9", "a\u200bb\u00a0c\ue000")]
    said = "a control character or line break: applied as"
    assert [(r[0], r[1], r[3]) for r in chunk.rejected] == [
        ("not_text", f"m:{n}", f"{field} holds '{shown}', {said} an UNASSIGN")
        for n, field, shown in ((2, "app", "\\x1b"), (3, "zone", "\\x00"), (4, "asg", "\\n"),
                                (5, "app", "\\x7f"), (6, "cluster", "\\x85"),
                                (7, "kind", "\\u2028"), (8, "app", "\\u2029"))] + [
        ("not_text", "m:9", f"app holds '\\t', {said} a VPC_UNASSIGN")]


def _spread_changes(t0):
    return [{"type": "UNASSIGN", "ts": t0, "ip": "10.0.0.1"},
            {"type": "ASSIGN", "ts": t0, "ip": "10.0.0.2", "app": "db", "zone": "z"},
            {"type": "HEARTBEAT", "ts": t0}]


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
@pytest.mark.parametrize("form", ["array", "array over lines", "pretty", "element a line"])
def test_a_json_array_of_changes_or_a_change_spread_over_lines_is_applied(form, vectorise_from):
    """The changelog is JSON Lines, but a record holding a JSON array of changes (on one line
    or over many) or a change pretty-printed over lines is unambiguous: each of its changes is
    applied, placed at the line it starts on, between the JSON lines around it. Before, it was
    one dead letter (not_an_object) or one a line (not_json) and nothing was applied: the
    UNASSIGN lost, 10.0.0.1 kept its owner 'api'."""
    t0 = 1767225600000
    changes = _spread_changes(t0 + 1)
    value = {"array": json.dumps(changes),
             "array over lines": json.dumps(changes, indent=2),
             "pretty": "\n".join(json.dumps(c, indent=1) for c in changes),
             "element a line": "[\n" + ",\n".join(map(json.dumps, changes)) + "\n]"}[form]
    lines = ['{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","app":"api"}' % t0, value,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.3","app":"web"}' % (t0 + 2)]
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    assert [(e.type, e.ts, e.ip, e.owner and e.owner[:6]) for e in chunk.events] == [
        (ASSIGN, t0, "10.0.0.1", owner("api")[:6]), (UNASSIGN, t0 + 1, "10.0.0.1", None),
        (ASSIGN, t0 + 1, "10.0.0.2", ("db", "-", "-", "-", "-", "z")),
        (HEARTBEAT, t0 + 1, "", None), (ASSIGN, t0 + 2, "10.0.0.3", owner("web")[:6])]
    assert chunk.rejected == [] and not chunk.reasons
    index = OwnershipIndex()
    for event in chunk.events:
        if event.type != HEARTBEAT:
            index.apply(event)
    assert index.owner_at("10.0.0.1", t0 + 1) is None


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_an_array_s_elements_are_changes_each_and_its_bad_ones_dead_letters_at_their_line(
        vectorise_from):
    """Each element of an array is read as a line would be, its dead letter placed at the line
    it starts on; one that is no object is not_an_object. An array of no object (`[1, 2]`) is
    one not_an_object, as before."""
    t0 = 1767225600000
    lines = ["[", '  {"type":"UNASSIGN","ts":%d,"ip":"10.0.0.2"},' % t0,
             '  1, {"type":"UNASSIGN","ts":%d,"ip":"10.0.0.300"},' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","app":"internet"}' % t0, "]", "[1, 2]"]
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    assert [(e.type, e.ip) for e in chunk.events] == [(UNASSIGN, "10.0.0.2"),
                                                      (UNASSIGN, "10.0.0.1")]
    # The last element's line is an object alone, which the columns read: dead-lettered once.
    assert [(r[0], r[1], r[2]) for r in chunk.rejected] == [
        ("not_an_object", "m:3", "1"), ("bad_address", "m:3", lines[2][5:-1]),
        ("reserved_app", "m:4", lines[3]), ("not_an_object", "m:6", "[1, 2]")]
    assert chunk.reasons == {"not_an_object": 2, "bad_address": 1, "reserved_app": 1}


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_an_array_on_a_line_longer_than_max_line_bytes_is_read_a_change_at_a_time(
        vectorise_from):
    """A stream record of one line holding an array is longer than metadata.max_line_bytes
    with a few changes: each change is held to that bound, as a line is, not the array (before,
    line_too_long, nothing applied). One with a change longer is line_too_long, as before."""
    t0 = 1767225600000
    changes = _spread_changes(t0) * 3
    limits = MetaLimits(100, 120)
    chunk = parse_chunk(json.dumps(changes), "m", limits=limits, vectorise_from=vectorise_from)
    assert [(e.type, e.ip) for e in chunk.events] == [
        (UNASSIGN, "10.0.0.1"), (ASSIGN, "10.0.0.2"), (HEARTBEAT, "")] * 3
    assert not chunk.rejected
    changes[1]["cluster"] = "c" * 100
    chunk = parse_chunk(json.dumps(changes), "m", limits=limits, vectorise_from=vectorise_from)
    assert not chunk.events and [r[0] for r in chunk.rejected] == ["line_too_long"]


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
@pytest.mark.parametrize("wrapper", ['{"changes": [', '{"note":', "[["])
def test_a_value_over_lines_holding_a_change_s_line_nested_is_not_taken(wrapper,
                                                                         vectorise_from):
    """A value over lines that nests a line holding a change alone (in a change's value, in an
    array element) is not taken: its lines are read alone. Before, `{"changes": [` then JSON
    lines was one unknown_type dead letter, the changes in it lost: 10.0.0.1 kept 'api'."""
    t0 = 1767225600000
    unassign = '{"type":"UNASSIGN","ts":%d,"ip":"10.0.0.1"}' % (t0 + 1)
    # `[[`'s array holds an object, a change: its nested array was one not_an_object.
    end = {"[[": '], {"type":"HEARTBEAT","ts":%d}]' % t0, '{"note":': "}"}.get(wrapper, "]}")
    lines = ['{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","app":"api"}' % t0, wrapper, unassign,
             end]
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    assert [(e.type, e.ip) for e in chunk.events] == [(ASSIGN, "10.0.0.1"), (UNASSIGN, "10.0.0.1")]
    assert [(r[0], r[1]) for r in chunk.rejected] == [("not_json", "m:2"), ("not_json", "m:4")]


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_a_change_spread_over_lines_that_a_chunk_cuts_is_applied_as_its_head_says(
        vectorise_from):
    """A file is read in chunks of metadata.chunk_lines lines: a pretty-printed array may be cut
    by a chunk's end. Its whole changes are applied on either side; the change the cut splits
    is applied as an UNASSIGN when its head holds its type, ts and ip (before, nothing was: the
    lines were not_json each, no line holding a change)."""
    t0 = 1767225600000
    changes = [{"type": "ASSIGN", "ts": t0, "ip": f"10.0.0.{n}", "app": "api", "zone": "z"}
               for n in (1, 2, 3)]
    lines = json.dumps(changes, indent=2).split("\n")
    cut = lines.index('    "zone": "z"', 12)   # the second change's, after its ip
    first = parse_chunk(_staged(lines[:cut]), vectorise_from=vectorise_from)
    second = parse_chunk(_staged(lines[cut:], first_line=cut + 1), vectorise_from=vectorise_from)
    assert [(e.type, e.ip) for e in first.events + second.events] == [
        (ASSIGN, "10.0.0.1"), (UNASSIGN, "10.0.0.2"), (ASSIGN, "10.0.0.3")]
    # `[`, the cut change's lines: the first applied as its head says.
    assert [(r[0], r[1]) for r in first.rejected] == [
        ("not_json", f"changes.jsonl:{n}") for n in (1, 9, 10, 11, 12, 13)]
    assert first.rejected[1][3].endswith(
        ": applied as an UNASSIGN (its head's type, ts and ip over the lines from it)")
    assert [(r[0], r[1]) for r in second.rejected] == [
        ("not_json", f"changes.jsonl:{n}") for n in (cut + 1, cut + 2, len(lines))]


@pytest.mark.parametrize("slice_lines", [2, 3, 1 << 16])
def test_a_value_spread_over_slices_of_a_record_is_read_once(slice_lines, monkeypatch):
    """A record is parsed SLICE_LINES lines at a time: a value spread over lines past a slice's
    end is read whole, and the slice after it passes over its lines (else its lines were read
    again, a second time each)."""
    monkeypatch.setattr(ownership, "SLICE_LINES", slice_lines)
    t0 = 1767225600000
    changes = _spread_changes(t0)
    record = "\n".join([json.dumps(changes, indent=2)] * 2 + [json.dumps(changes[0])])
    for vectorise_from in (0, math.inf):
        chunk = parse_chunk(record, "m", vectorise_from=vectorise_from)
        assert [(e.type, e.ip) for e in chunk.events] == [
            (UNASSIGN, "10.0.0.1"), (ASSIGN, "10.0.0.2"), (HEARTBEAT, "")] * 2 + [
            (UNASSIGN, "10.0.0.1")]
        assert chunk.rejected == []


def test_the_tries_at_values_spread_over_lines_read_a_record_about_once(monkeypatch):
    """Each line `{"a":` opens a value the lines after it nest in, read up to
    metadata.max_line_bytes each time: 300,000 of them took minutes. The tries that find no
    value read at most the record's length: then its lines are read alone, as before."""
    read = []

    class Counting(json.JSONDecoder):
        def raw_decode(self, text, at=0):
            read.append(len(text) - at)
            return super().raw_decode(text, at)
    monkeypatch.setattr(ownership, "_HEAD_DECODER", Counting())
    t0 = 1767225600000
    junk = ['{"a":'] * 5000
    record = "\n".join(junk + [json.dumps(_spread_changes(t0)[0])])
    chunk = parse_chunk(record, "m")
    assert sum(read) < 2 * len(record)
    assert [(e.type, e.ip) for e in chunk.events] == [(UNASSIGN, "10.0.0.1")]
    assert chunk.reasons == {"not_json": 5000}


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_a_bracket_alone_does_not_take_the_json_lines_after_it(vectorise_from):
    """A line `{` or `[` that opens no value with the lines after it is not_json alone, and
    the JSON lines after it are read as they are."""
    t0 = 1767225600000
    line = '{"type":"UNASSIGN","ts":%d,"ip":"10.0.0.1"}' % t0
    for opening in ("{", "[", '{"type":"ASSIGN","ts":%d,' % t0):
        chunk = parse_chunk("\n".join([opening, line, line]), "m", vectorise_from=vectorise_from)
        assert [(e.type, e.ip) for e in chunk.events] == [(UNASSIGN, "10.0.0.1")] * 2
        assert [(r[0], r[1]) for r in chunk.rejected] == [("not_json", "m:1")]


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_a_line_that_is_no_json_is_applied_as_an_unassign_when_its_head_names_a_change(
        vectorise_from):
    """A control character unescaped in a value (NUL, ESC, a tab) makes the line no JSON, and a
    line break cuts it in two: nothing was applied, the address kept its previous owner. The
    change its head names (type, ts, ip) is applied as an UNASSIGN, as a line too long's is; a
    line whose head names none (the second half, a HEARTBEAT) changes nothing. The decoder's
    message says "at" once (it said "Invalid control character at at character 60")."""
    t0 = 1767225600000
    lines = ['{"type":"ASSIGN","ts":%d,"ip":"10.0.0.%d","app":"api"}' % (t0, n) for n in (1, 2)]
    lines += ['{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","app":"a\x1b[31m"}' % (t0 + 1),
              '{"type":"VPC_ASSIGN","ts":%d,"ip":"10.0.0.3","vpc_id":"vpc-0a1b2c3d","zone":"\x00"}'
              % t0,
              '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.2","app":"a' % (t0 + 1), 'b","zone":"z"}',
              '{"type":"HEARTBEAT","ts":%d,"x":"\t"}' % t0,
              '{"type":"ASSIGN","app":"\t","ts":%d,"ip":"10.0.0.4"}' % t0]
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    assert [(e.type, e.ip) for e in chunk.events] == [
        (ASSIGN, "10.0.0.1"), (ASSIGN, "10.0.0.2"), (UNASSIGN, "10.0.0.1"),
        (UNASSIGN, "vpc-0a1b2c3d 10.0.0.3"), (UNASSIGN, "10.0.0.2")]
    head = "(its head's type, ts and ip)"
    assert [(r[0], r[1], r[3]) for r in chunk.rejected] == [
        ("not_json", "m:3", f"Invalid control character at character 60: applied as an "
                            f"UNASSIGN {head}"),
        ("not_json", "m:4", f"Invalid control character at character 88: applied as a "
                            f"VPC_UNASSIGN {head}"),
        ("not_json", "m:5", f"Unterminated string starting at character 58: applied as an "
                            f"UNASSIGN {head}"),
        ("not_json", "m:6", "Expecting value at character 0"),
        ("not_json", "m:7", "Invalid control character at character 44"),
        ("not_json", "m:8", "Invalid control character at character 24")]


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_an_owner_value_of_white_space_only_is_absent_as_an_empty_one(vectorise_from):
    """"" was `-`, " " an app of its own: any value of white space only (str.isspace: spaces,
    tabs, no-break and ideographic spaces, line breaks alone) is `-`, an interface_vpc_id of
    it not known (no bad_vpc_id). Spaces around a name are kept, as before."""
    t0 = 1767225600000
    blanks = [" ", "   ", "\\t", "\\u00a0", "\u3000", "\\n\\r", "\u2028", "\x85 "]
    lines = ['{"type":"ASSIGN","ts":%d,"ip":"10.0.0.%d","app":"%s","zone":"%s","region":" x "}'
             % (t0, n, blank, blank) for n, blank in enumerate(blanks, 1)]
    in_vpc = ['{"type":"ASSIGN","ts":%d,"ip":"10.0.1.%d","app":"a","interface_id":"eni-1",'
              '"interface_vpc_id":"%s"}' % (t0, n, blank) for n, blank in enumerate(blanks, 1)]
    chunk = parse_chunk("\n".join(lines + in_vpc), "m", vectorise_from=vectorise_from)
    assert chunk.rejected == []
    assert [(e.type, e.owner[:6], e.interface_vpc_id) for e in chunk.events] == [
        (ASSIGN, ("-", "-", "-", "-", " x ", "-"), None)] * len(blanks) + [
        (ASSIGN, ("a", "-", "-", "-", "-", "-"), None)] * len(blanks)
    # The plain ones (no escape, no control character) are read in columns when there are
    # enough lines; one `-` object a chunk, as before.
    if vectorise_from == 0:
        events, rest = changelog_columns.parse_lines(lines, list(range(len(lines))),
                                                     EARLIEST_TS_MS, LATEST_TS_MS, _normalised)
        assert rest == [2, 3, 5, 6, 7] and [e[3][0] for e in events.values()] == ["-"] * 3
        assert len({id(v) for e in chunk.events for v in e.owner if v == "-"}) == 1


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_a_key_given_twice_is_refused_and_an_owner_given_twice_is_nobodys(vectorise_from):
    """JSON keeps a repeated key's last value: a second type turned an ASSIGN into an UNASSIGN,
    a second ip moved the owner, without a dead letter (a fuzz review). Which owner was meant
    is not known either: the address is left without one, not with the one before."""
    t0 = 1767225600000
    lines = ['{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","app":"api"}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.2","ip":"10.0.0.3","app":"db"}' % t0,
             '{"type":"ASSIGN","ts":%d,"type":"UNASSIGN","ip":"10.0.0.4"}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.5","app":"db","app":"web"}' % t0,
             '{"type" : "ASSIGN", "ts" : %d, "ip" : "10.0.0.6", "ip" : "10.0.0.7"}' % t0,
             # As many `":` as distinct keys: the space hides the second ip from that count.
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.6","ip" :"10.0.0.7","app":"a:b"}' % t0,
             # Neither an escaped quote before a colon nor a nested object's keys are repeats.
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.8","app":"x\\":y","t":{"ip":1,"ip":2}}' % t0,
             '{"type": "ASSIGN", "ts": %d, "ip": "10.0.0.9", "app": "ok"}' % t0]
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    assert [(e.type, e.ip, e.owner and e.owner[0]) for e in chunk.events] == [
        (ASSIGN, "10.0.0.1", "api"), (UNASSIGN, "10.0.0.5", None), (ASSIGN, "10.0.0.8", 'x":y'),
        (ASSIGN, "10.0.0.9", "ok")]
    twice = "twice in one object (JSON keeps the last)"
    assert [(r[0], r[1], r[3]) for r in chunk.rejected] == [
        ("not_json", "m:2", f"the key(s) ip {twice}"),
        ("not_json", "m:3", f"the key(s) type {twice}"),
        ("not_json", "m:4", f"the key(s) app {twice}: applied as an UNASSIGN"),
        ("not_json", "m:5", f"the key(s) ip {twice}"),
        ("not_json", "m:6", f"the key(s) ip {twice}")]


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_an_owner_value_of_another_json_type_is_its_text_if_a_number_else_refused(vectorise_from):
    """A number is its text (an account id written as one); a boolean, object or array named
    an owner by Python's spelling of it (`{'team': 'x'}`, `True`): now refused, and the IP has
    no owner from its ts, rather than its previous one."""
    t0 = 1767225600000
    lines = ['{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","app":"api"}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","app":{"team":"x"}}' % (t0 + 1),
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.2","app":"db","zone":true}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.3","app":"db","cluster":["a"]}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.4","app":"db","account":123456789012,'
             '"region":1e3,"zone":-0.0}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.5","app":"db","zone":1e999}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.6","app":NaN}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.7","app":"db","region":1.5}' % t0]
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    assert [(e.type, e.ts, e.ip, e.owner and e.owner[:5]) for e in chunk.events] == [
        (ASSIGN, t0, "10.0.0.1", ("api", "-", "-", "-", "-")), (UNASSIGN, t0 + 1, "10.0.0.1", None),
        (UNASSIGN, t0, "10.0.0.2", None), (UNASSIGN, t0, "10.0.0.3", None),
        (ASSIGN, t0, "10.0.0.4", ("db", "-", "-", "123456789012", "1000")),
        (UNASSIGN, t0, "10.0.0.5", None), (UNASSIGN, t0, "10.0.0.6", None),
        (UNASSIGN, t0, "10.0.0.7", None)]
    assert chunk.events[4].owner[5] == "0"
    assert [(r[0], r[1], r[3]) for r in chunk.rejected] == [
        ("not_text", "m:2", "app is a JSON object, not text: applied as an UNASSIGN"),
        ("not_text", "m:3", "zone is a JSON boolean, not text: applied as an UNASSIGN"),
        ("not_text", "m:4", "cluster is a JSON array, not text: applied as an UNASSIGN"),
        ("not_text", "m:6", "zone is a JSON number that is not an integer, not text: "
                            "applied as an UNASSIGN"),
        ("not_text", "m:7", "app is a JSON number that is not an integer, not text: "
                            "applied as an UNASSIGN"),
        ("not_text", "m:8", "region is a JSON number that is not an integer, not text: "
                            "applied as an UNASSIGN")]
    # Arrow's reader takes no such value: every line is parse_event's, as the columns would
    # otherwise have to give the same.
    assert changelog_columns.parse_lines(lines, list(range(len(lines))), EARLIEST_TS_MS,
                                         LATEST_TS_MS, _normalised) is None


def test_a_line_nested_deeper_than_json_loads_goes_is_not_json_in_a_chunk_of_any_size():
    """Arrow read it, json.loads did not: an event in a chunk of 1,024 lines or more, a dead
    letter in a smaller one (a fuzz review). Its head's change is applied as an UNASSIGN, as
    any line's that is no JSON."""
    deep = ('{"type":"ASSIGN","ts":1767225600000,"ip":"10.9.9.9","app":"a","x":' + "[" * 3000
            + "]" * 3000 + "}")
    wide = ('{"type":"ASSIGN","ts":1767225600000,"ip":"10.9.9.8","app":"b","x":'
            + json.dumps([[1]] * 300) + "}")
    for vectorise_from in (0, math.inf):
        chunk = parse_chunk(deep + "\n" + wide, "m", vectorise_from=vectorise_from)
        assert [(r[0], r[1], r[3]) for r in chunk.rejected] == [
            ("not_json", "m:1", "nested deeper than the JSON decoder goes: applied as an "
                                "UNASSIGN (its head's type, ts and ip)")]
        assert [(e.type, e.ip, e.owner and e.owner[0]) for e in chunk.events] == [
            (UNASSIGN, "10.9.9.9", None), (ASSIGN, "10.9.9.8", "b")]


def test_a_line_of_objects_nested_near_the_decoder_s_limit_is_an_event_or_not_json():
    """Its keys are read a second time, for repeats, each object through a Python hook that
    takes a frame more: a line a few levels short of the limit was read the first time and
    raised RecursionError the second, out of parse_chunk (a stream record of it failed the
    job, and again after every restart). Every depth up to past the limit, wherever the
    caller's stack stands: each line an event or not_json."""
    limit = sys.getrecursionlimit()
    lines = ['{"type":"ASSIGN","ts":1767225600000,"ip":"10.%d.%d.1","app":"a","x":%s1%s}'
             % (depth // 256, depth % 256, '{"a":' * depth, "}" * depth)
             for depth in range(limit - 300, limit + 10)]
    chunk = parse_chunk("\n".join(lines), "m", delivered=1767225600,
                        limits=MetaLimits(100_000, 120))
    # A line that is no JSON is applied as an UNASSIGN of the change its head names.
    assigned = [e for e in chunk.events if e.type == ASSIGN]
    released = [e for e in chunk.events if e.type == UNASSIGN]
    assert len(assigned) + len(chunk.rejected) == len(lines)
    assert len(released) == len(chunk.rejected)
    assert {(r[0], r[3]) for r in chunk.rejected} == {
        ("not_json", "nested deeper than the JSON decoder goes: applied as an UNASSIGN (its "
                     "head's type, ts and ip)")}
    assert assigned and all(e.owner[0] == "a" for e in assigned)
    # A line too long whose head's vpc_id is so nested: its keys were written out again as
    # JSON for parse_event, and that raised RecursionError too. An ASSIGN with a vpc_id is
    # applied as an UNASSIGN of its ip at any depth.
    long_lines = ['{"type":"ASSIGN","ts":1767225600000,"ip":"10.%d.%d.2","vpc_id":%s1%s,"app":"%s"}'
                  % (depth // 256, depth % 256, '{"a":' * depth, "}" * depth, "x" * 9000)
                  for depth in range(limit - 300, limit + 10)]
    chunk = parse_chunk("\n".join(long_lines), "m", delivered=1767225600)
    assert {r[0] for r in chunk.rejected} == {"line_too_long"}
    assert [(e.type, e.ip) for e in chunk.events] == [
        (UNASSIGN, "10.%d.%d.2" % (depth // 256, depth % 256))
        for depth in range(limit - 300, limit + 10)]


def test_a_value_of_thousands_of_characters_is_quoted_cut_short_with_its_length():
    """Cut to 40 characters, then its length (schemas.settings.quoted), as every error quotes a
    value (a review: these were cut without a word)."""
    ts = 1767225600 * 1000
    lines = [json.dumps({"type": "M" * 5000}),
             json.dumps({"type": "ASSIGN", "ts": ts, "ip": "10.0.0.1", "app": "aws:" + "x" * 5000})]
    chunk = parse_chunk("\n".join(lines), "m", delivered=ts // 1000,
                        limits=MetaLimits(100_000, 120))
    assert [r[3] for r in chunk.rejected] == [
        'type "' + "M" * 39 + "... (5,002 characters), not one of ASSIGN, UNASSIGN, HEARTBEAT, "
        "VPC_ASSIGN, VPC_UNASSIGN",
        "app 'aws:" + "x" * 36 + "... (5,004 characters)' is a name the job gives ends without "
        "an owner: applied as an UNASSIGN"]


def test_rejected_lines_carry_their_location():
    staged = parse_chunk(_staged(["", "not json", '{"type":"MOVE"}'], first_line=41,
                                 long=[(0, "x" * 20)]), limits=MetaLimits(100, 120))
    assert staged.rejected == [
        ("line_too_long", "changes.jsonl:41", "x" * 20,
         "longer than metadata.max_line_bytes (100): its head gives no change's type, ts and "
         "ip: nothing applied"),
        ("not_json", "changes.jsonl:42", "not json", "Expecting value at character 0"),
        ("unknown_type", "changes.jsonl:43", '{"type":"MOVE"}',
         'type "MOVE", not one of ASSIGN, UNASSIGN, HEARTBEAT, VPC_ASSIGN, '
             'VPC_UNASSIGN')]
    record = parse_chunk('{"type":"HEARTBEAT"}\n' + "y" * 101, "kinesis:meta/shard-1/42",
                         limits=MetaLimits(100, 120))
    assert [(r[:2], r[3]) for r in record.rejected] == [
        (("missing_ts", "kinesis:meta/shard-1/42:1"),
         "ts absent, not an integer number of epoch milliseconds"),
        (("line_too_long", "kinesis:meta/shard-1/42:2"),
         "101 characters; metadata.max_line_bytes is 100: its head gives no change's type, ts "
         "and ip: nothing applied")]


def test_a_staged_line_its_reader_cut_says_the_staged_lines_limit():
    """connectors/jvm LineChunks sends a staged file's line longer than staging writes
    (connectors.staged.staged_changelog_max) cut to metadata.max_line_bytes and one, in a chunk
    of its own saying where it was cut ("staged_max"): its dead letter names that limit; before,
    it said "metadata.max_line_bytes is 100", which the line was not held to (a review)."""
    cut = json.dumps({"staged": STAGED, "source": "s.jsonl", "first_line": 5,
                      "lines": ['{"staged":"changelog",' + "x" * 79], "staged_max": 2000})
    assert [(r[:2], r[3]) for r in parse_chunk(cut, limits=MetaLimits(100, 120)).rejected] == [
        (("line_too_long", "s.jsonl:5"), "a staged line of more than 2000 characters, the "
         "longest staging writes with metadata.chunk_lines and metadata.max_line_bytes")]


def _too_long_forms(lines, limit):
    """`lines` as each reader hands a line longer than `limit` on: a Kinesis record's whole
    (str.split), a file's cut to `limit` + 1 characters (connectors/jvm LineChunks), a replay's
    staging an excerpt of its head in "long" (job.replay._lines, blank in "lines")."""
    yield "kinesis", "\n".join(lines)
    yield "file", _staged([line[:limit + 1] for line in lines])
    yield "replay", _staged(["" if len(line) > limit else line for line in lines],
                            long=[(i, excerpt(line.encode()[:EXCERPT_CHARS])) for i, line
                                  in enumerate(lines) if len(line) > limit])


LONG_VPC = "vpc-0a1b2c3d"


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_a_change_too_long_to_read_releases_the_address_its_head_names(vectorise_from):
    """An ASSIGN longer than metadata.max_line_bytes (an owner of many tags, a publisher's bug)
    left its address with its previous owner: its flows were attributed to an owner the
    changelog said had left it. Its head's type, ts and ip are applied as an UNASSIGN at that
    ts (a VPC_ASSIGN's as a VPC_UNASSIGN), the dead letter saying so; a head that names no
    change (ip or ts cut, a HEARTBEAT's, a key twice) is said so, nothing applied. Each reader's
    form of the line, by columns and line by line."""
    pad = "x" * 300
    lines = [f'{{"type":"ASSIGN","ts":{T},"ip":"10.0.0.1","app":"api"}}',
             f'{{"type":"VPC_ASSIGN","ts":{T},"ip":"10.0.0.2","vpc_id":"{LONG_VPC}","app":"web"}}',
             f'{{"type":"ASSIGN","ts":{T},"ip":"10.0.0.3","app":"db"}}',
             f'{{"type":"ASSIGN","ts":{T + 60_000},"ip":"10.0.0.1","app":"b","tags":"{pad}"}}',
             f'{{"type": "VPC_ASSIGN", "ts": {T + 60_000}, "vpc_id": "{LONG_VPC}", '
             f'"ip": "10.0.0.2", "app":"{pad}"}}',
             f'{{"type":"ASSIGN","ip":"10.0.0.3","app":"{pad}","ts":{T + 60_000}}}',
             f'{{"type":"HEARTBEAT","ts":{T + 60_000},"pad":"{pad}"}}',
             f'{{"type":"UNASSIGN","ts":{T + 60_000},"ts":{T},"ip":"10.0.0.3","p":"{pad}"}}']
    limit = 200
    said = [": applied as an UNASSIGN (its head's type, ts and ip)",
            ": applied as a VPC_UNASSIGN (its head's type, ts and ip)",
            ": its head gives no change's type, ts and ip: nothing applied", "",
            ": its head gives no change's type, ts and ip: nothing applied"]
    for form, record in _too_long_forms(lines, limit):
        chunk = parse_chunk(record, "m", limits=MetaLimits(limit, 120),
                            vectorise_from=vectorise_from)
        index = OwnershipIndex()
        apply_events(chunk.events, index, MetadataClock(0))
        at = T + 120_000
        assert (app_at(index, "10.0.0.1", at), index.owner_in_vpc("10.0.0.2", LONG_VPC, at),
                app_at(index, "10.0.0.3", at)) == (None, None, "db"), form
        assert app_at(index, "10.0.0.1", T + 59_999) == "api", form
        assert [(reason, detail) for reason, _, _, detail in chunk.rejected] == [
            ("line_too_long", ("longer than metadata.max_line_bytes (200)" if form == "replay"
                               else f"{len(line) if form == 'kinesis' else 201} characters; "
                               "metadata.max_line_bytes is 200") + end)
            for line, end in zip(lines[3:], said)], form


@pytest.mark.parametrize("head,applied", [
    # The cut inside a number: 17672256000000 (after 2100) read as 1767225600000 (2026).
    ('{"type":"ASSIGN","ip":"10.0.0.1","ts":'.ljust(187) + str(T * 10) + "}", None),
    ('{"type":"ASSIGN","ip":"10.0.0.1","ts":%d}' % T, (T, "10.0.0.1")),
    ('{"type":"ASSIGN","ip":"10.0.0.1","ts":%d ,' % T, (T, "10.0.0.1")),
    # An ip of a nested object, or a ts or ip cut off, is not the change's.
    ('{"type":"ASSIGN","ts":%d,"x":{"ip":"10.0.0.1"},"a":"' % T, None),
    ('{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1' % T, None),
    ('{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","ip":"10.0.0.2",' % T, None),
    ('{"type":"ASSIGN","ts":%d,"ip":"10.0.0.999",' % T, None),
    ('{"type":"ASSIGN","ts":1,"ip":"10.0.0.1",' % (), None),
    ('{"type":"UNASSIGN","ts":%d,"ip":"10.0.0.1",' % T, (T, "10.0.0.1")),
    # An ASSIGN with a vpc_id is applied as an UNASSIGN of its ip, as a whole one is.
    ('{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","vpc_id":"vpc-0a1b2c3d",' % T, (T, "10.0.0.1")),
    ('{"type":"VPC_ASSIGN","ts":%d,"ip":"10.0.0.1",' % T, None),
    ('{"type":"VPC_UNASSIGN","ts":%d,"ip":"10.0.0.1","vpc_id":"vpc-0a1b2c3d",' % T,
     (T, vpc_key("vpc-0a1b2c3d", "10.0.0.1"))),
    ('{"type":"MOVE","ts":%d,"ip":"10.0.0.1",' % T, None),
    ('{"type":{"ASSIGN":1},"ts":%d,"ip":"10.0.0.1",' % T, None),
    ('["type","ASSIGN"]', None)])
def test_a_too_long_lines_head_is_read_only_where_it_holds_a_change_whole(head, applied):
    """What a too-long line's head holds of a change is applied only where the cut cannot have
    changed it: a value followed by a comma or the object's end, at the object's own level,
    each key once, and as valid as in a whole line."""
    line = head + " " * (300 - len(head))
    chunk = parse_chunk(line, "m", delivered=T // 1000, limits=MetaLimits(200, 120))
    assert [(e.type, e.ts, e.ip) for e in chunk.events] == (
        [] if applied is None else [(UNASSIGN, *applied)])
    assert chunk.rejected[0][3].endswith(
        "nothing applied" if applied is None else "(its head's type, ts and ip)")


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_an_app_named_as_the_job_names_ends_without_owner_ends_the_ips_ownership(vectorise_from):
    """`internet`, `unattributed` and `aws:...` are the job's names for ends without an owner of
    the estate: an owner so named would be the internet to the security views. Refused, and the
    IP's previous owner ends at its ts (kept, it would be misattributed)."""
    lines = [f'{{"type":"ASSIGN","ts":{T},"ip":"10.0.0.1","app":"api"}}',
             f'{{"type":"ASSIGN","ts":{T + 60_000},"ip":"10.0.0.1","app":"internet"}}',
             "not json",
             f'{{"type":"ASSIGN","ts":{T},"ip":"10.0.0.2","app":"aws:s3:us-east-1"}}',
             f'{{"type":"ASSIGN","ts":{T},"ip":"10.0.0.3","app":"unattributed"}}',
             f'{{"type":"ASSIGN","ts":{T},"ip":"10.0.0.4","app":"Internet"}}',
             f'{{"type":"ASSIGN","ts":{T},"ip":"10.0.0.5","app":"aws-billing"}}']
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    assert [r[:2] for r in chunk.rejected] == [("reserved_app", "m:2"), ("not_json", "m:3"),
                                               ("reserved_app", "m:4"), ("reserved_app", "m:5")]
    assert [(e.type, e.ip) for e in chunk.events] == [
        (ASSIGN, "10.0.0.1"), (UNASSIGN, "10.0.0.1"), (UNASSIGN, "10.0.0.2"),
        (UNASSIGN, "10.0.0.3"), (ASSIGN, "10.0.0.4"), (ASSIGN, "10.0.0.5")]
    index = OwnershipIndex()
    for event in chunk.events:
        index.apply(event)
    assert [app_at(index, "10.0.0.1", t) for t in (T, T + 59_999, T + 60_000)] == ["api", "api",
                                                                                   None]
    assert [app_at(index, ip, T) for ip in ("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5")] \
        == [None, None, "Internet", "aws-billing"]


@pytest.mark.parametrize("ts", [-1, 0, 5, 1262303999999, 4102444800000, 99999999999999999999,
                                "1e20"])
def test_a_ts_outside_2010_to_2100_is_rejected(ts):
    """Issue #14, items 2 and 6: a ts too large for a Java long crashed the job; one in 2100
    moved the metadata clock; a negative one was accepted."""
    for kind, ip in (("ASSIGN", ',"ip":"10.0.0.1"'), ("UNASSIGN", ',"ip":"10.0.0.1"'),
                     ("HEARTBEAT", "")):
        with pytest.raises(MetaEventError) as err:
            parse_event(f'{{"type":"{kind}","ts":{ts}{ip}}}'.replace('"1e20"', "1e20"))
        assert err.value.reason == "ts_out_of_range"
    assert parse_event('{"type":"HEARTBEAT","ts":1262304000000}').ts == 1262304000000


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_a_ts_of_hundreds_of_digits_is_rejected_in_one_short_line(vectorise_from):
    """JSON reads an integer of up to 4,300 digits: one past a float's 309 failed the job
    (OverflowError saying how far after the latest allowed it was), again at every restart
    (a review)."""
    lines = [f'{{"type":"{kind}","ts":{sign}1{"0" * 400}{ip}}}'
             for sign in ("", "-") for kind, ip in (("ASSIGN", ',"ip":"10.0.0.1","app":"a"'),
                                                    ("HEARTBEAT", ""))]
    chunk = parse_chunk("\n".join(lines), "m", delivered=T // 1000,
                        vectorise_from=vectorise_from)
    assert chunk.events == []
    assert [(r[0], r[3]) for r in chunk.rejected] == [
        ("ts_out_of_range", "ts of 20 digits or more is after 2100")] * 2 + [
        ("ts_out_of_range", "ts of 20 digits or more is before 2010")] * 2


def test_a_ts_ahead_of_the_delivery_time_is_rejected():
    """Issue #14, item 6: an event may be at most metadata.max_ahead_seconds after its record's
    delivery time (Kinesis arrival, a staged file's modification time)."""
    delivered = T // 1000
    lines = [f'{{"type":"HEARTBEAT","ts":{T + 120_000}}}',
             f'{{"type":"ASSIGN","ts":{T + 120_001},"ip":"10.0.0.1","app":"x"}}',
             f'{{"type":"HEARTBEAT","ts":{T + 22 * 3600_000}}}']
    limits = MetaLimits(8192, 120)
    for chunk in (parse_chunk("\n".join(lines), "r", delivered, limits),
                  parse_chunk(_staged(lines, not_after=delivered), limits=limits),
                  # Both known: the earlier bounds.
                  parse_chunk(_staged(lines, not_after=delivered + 9999), "r", delivered,
                              limits)):
        assert [e.ts for e in chunk.events] == [T + 120_000]
        assert [r[0] for r in chunk.rejected] == ["ts_out_of_range"] * 2
    # Without a delivery time only 2010..2100 bound them.
    assert len(parse_chunk("\n".join(lines), limits=limits).events) == 3


# The compact index: flat tuples, shared owner values, the state encoding of earlier releases.

def test_owner_values_many_ips_share_are_kept_once_and_unique_ones_as_they_are():
    line = ('{{"type":"ASSIGN","ts":{ts},"ip":"{ip}","app":"api","account":"123456789012",'
            '"interface_id":"eni-{n}","resource_id":"i-{n}"}}')
    index = OwnershipIndex()
    events = [parse_event(line.format(ts=T, ip=f"10.0.0.{n}", n=n)) for n in (1, 2)]
    for event in events:
        index.apply(event)
    a, b = index.owner_at("10.0.0.1", T), index.owner_at("10.0.0.2", T)
    assert (a, b) == (events[0].owner, events[1].owner)
    fields = dict(zip(OWNER_FIELDS, zip(a, b)))
    assert fields["app"][0] is fields["app"][1] and fields["account"][0] is fields["account"][1]
    assert fields["interface_id"] == ("eni-1", "eni-2") and fields["resource_id"] == ("i-1", "i-2")
    other = restored(index, ["10.0.0.1", "10.0.0.2"])
    assert other.owner_at("10.0.0.1", T)[0] is other.owner_at("10.0.0.2", T)[0] == "api"


def test_state_written_by_earlier_releases_is_read_and_written_in_this_version():
    # Version 1 as the list-of-changes index wrote it (broadcast state of savepoints), next to
    # a part that a version-2 IP names.
    v1 = '[1,[[0,1,["api","c","g","1","r","z","eni-1","i-1","k"]],[10,0,null]]]'
    index = OwnershipIndex()
    state = [("10.0.0.1", v1), ("10.0.0.2", '[2,5,1,0,"eni-2","i-2"]'),
             ("owner 0", '[2,"api","c","g","1","r","z","k"]')]
    index.load(lambda: iter(state))
    assert [app_at(index, "10.0.0.1", t) for t in (0, 9, 10)] == ["api", "api", None]
    assert index.owner_at("10.0.0.1", 0) == ("api", "c", "g", "1", "r", "z", "eni-1", "i-1", "k")
    assert index.owner_at("10.0.0.2", 5) == ("api", "c", "g", "1", "r", "z", "eni-2", "i-2", "k")
    assert index.ranges() == 3
    # Rewritten in version 2, naming the part it shares with 10.0.0.2, which is in state.
    assert index.state_entries(["10.0.0.1"]) == [
        ("10.0.0.1", '[2,0,1,0,"eni-1","i-1",10,0,null,null,null]')]
    index.apply(MetaEvent(ASSIGN, 20, "10.0.0.3", ("db",) + ("-",) * 8))
    assert index.state_entries(["10.0.0.3"]) == [
        ("owner 1", '[2,"db","-","-","-","-","-","-"]'), ("10.0.0.3", '[2,20,1,1,"-","-"]')]


# Owner parts an earlier release took, by number: the fields of a part (all but interface_id
# and resource_id), as broadcast state holds them.
_OLD_PARTS = {0: [" ", "c", "g", "1", "r", "z", "k"],              # app " ": blanked
              1: ["api\u001b[31m", "c", "g", "1", "r", "z", "k"],  # refused: not_text
              2: ["web", "\t", "g", "1", "r", "z", "k"],           # cluster a tab: blanked
              3: ["db", "c", "g", "1", "r", "z", "k"],             # as it was
              4: ["unattributed", "-", "-", "-", "-", "-", "-"]}    # refused: reserved_app
# Per key its changes: (ts, part number, interface_id, resource_id), as written.
_OLD_CHANGES = {"10.0.0.1": [(T, 0, "eni-1", "i-1")], "10.0.0.2": [(T, 1, "eni-2", "i-2")],
                "10.0.0.3": [(T, 2, "eni-3", "i-3")],
                "10.0.0.4": [(T, 3, "eni-4", "i\u0085x")],   # a C1 control among others: refused
                "10.0.0.5": [(T, 3, " ", "i-5")],         # white space alone: blanked
                "10.0.0.15": [(T, 3, "eni-15", "\u0085")],   # a C1 one too
                # A refused ASSIGN after another of its ts is read now as an UNASSIGN, which
                # goes before it; one later releases the address from its ts.
                "10.0.0.6": [(T, 3, "e", "r"), (T, 1, "e", "r")],
                "10.0.0.7": [(T, 3, "e", "r"), (T + 50, 4, "e", "r")],
                "10.0.0.8": [(T, 3, "eni-8", "i-8")],
                vpc_key("vpc-0a1b2c3d", "10.0.0.9"): [(T, 1, "e", "r")],
                "10.0.0.10": [(T - 1000, 3, "e", "r"), (T - 500, None, None, None)]}


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def _old_state() -> dict:
    """Broadcast state of _OLD_PARTS and _OLD_CHANGES, written as the job writes it."""
    state = {f"{PART_KEY}{n}": _compact([2] + fields) for n, fields in _OLD_PARTS.items()}
    for key, changes in _OLD_CHANGES.items():
        values = [2]
        for ts, number, interface_id, resource_id in changes:
            values += [ts, 0 if number is None else 1, number, interface_id, resource_id]
        state[key] = _compact(values)
    # A version-1 value (whole owners) with a line separator among an app's characters.
    state["10.0.0.11"] = _compact([1, [[T, 1, ["a\u2028b"] + ["-"] * 8]]])
    # JSON takes DEL and characters past ASCII unescaped (as an encoding other than the
    # job's may write them): refused; an empty value is `-`.
    state["10.0.0.13"] = f'[2,{T},1,3,"e\x7f","r"]'
    state["10.0.0.14"] = f'[2,{T},1,3,"e",""]'
    state["10.0.0.16"] = f'[2,{T},1,3,"e\u2028","r"]'
    return state


def _old_lines() -> list:
    """The changelog lines of _old_state's changes, as a publisher wrote them."""
    part_fields = OWNER_FIELDS[:6] + OWNER_FIELDS[8:]
    lines = []
    for key, changes in _OLD_CHANGES.items():
        vpc_id, ip = key.split(" ") if " " in key else (None, key)
        for ts, number, interface_id, resource_id in changes:
            line = {"type": ("VPC_" if vpc_id else "") + ("UNASSIGN" if number is None
                                                          else "ASSIGN"), "ts": ts, "ip": ip}
            if vpc_id:
                line["vpc_id"] = vpc_id
            if number is not None:
                line.update(zip(part_fields, _OLD_PARTS[number]),
                            interface_id=interface_id, resource_id=resource_id)
            lines.append(json.dumps(line))
    lines.append(json.dumps({"type": "ASSIGN", "ts": T, "ip": "10.0.0.11", "app": "a\u2028b"}))
    db = dict(zip(part_fields, _OLD_PARTS[3]))
    lines += [json.dumps({"type": "ASSIGN", "ts": T, "ip": f"10.0.0.{n}", **db,
                          "interface_id": interface_id, "resource_id": resource_id})
              for n, interface_id, resource_id in ((13, "e\x7f", "r"), (14, "e", ""),
                                                   (16, "e\u2028", "r"))]
    return lines


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_a_restored_owner_passes_the_checks_a_changelog_line_does_now(vectorise_from):
    """Broadcast state an earlier release wrote holds owners the changelog's checks now
    refuse or blank (an app " ", one holding a control character): a restore takes each
    change as its line is read now, a refused owner an UNASSIGN of its address at its ts,
    values of white space only `-`; counted. Before, such an owner stayed the address's until
    its next change, into every output keyed or written by it. The keys are written again by
    the next state_entries, naming parts as cleaned; a prune then forgets the parts as written
    (no key names them), and a restore of that state is the same, with nothing to clean."""
    state = _old_state()
    index = OwnershipIndex()
    index.load(lambda: iter(list(state.items())))
    read = OwnershipIndex()
    apply_events(parse_chunk("\n".join(_old_lines()), vectorise_from=vectorise_from).events,
                 read, MetadataClock(0))
    for key in state:
        if not key.startswith(PART_KEY):
            assert index.changes(key) == read.changes(key), key
    assert [app_at(index, f"10.0.0.{n}", T) for n in range(1, 17)] == [
        "-", None, "web", None, "db", "db", "db", "db", None, None, None, None, None, "db",
        "db", None]
    assert [index.owner_at(f"10.0.0.{n}", T)[6:8] for n in (5, 14, 15)] == [
        ("-", "i-5"), ("e", "-"), ("eni-15", "-")]
    assert index.owner_at("10.0.0.3", T)[1] == "-" and app_at(index, "10.0.0.7", T + 50) is None
    assert index.owner_at(vpc_key("vpc-0a1b2c3d", "10.0.0.9"), T) is None
    assert index.restored_cleaned == {"refused": 8, "blanked": 5}
    assert index.restore_note() == (
        "ownership state restored: 13 changes held owner values the changelog's checks "
        "(docs/metadata.md) refuse or blank, taken by an earlier release: 8 refused, each "
        "applied as an UNASSIGN (its address unattributed from its ts), 5 with values of "
        "white space only, now `-`; their 13 keys are written again with the next changelog "
        "chunk")
    # The next chunk writes the keys cleaned along with its own; the parts as written stay
    # until a prune finds no owner held is theirs.
    index.apply(MetaEvent(ASSIGN, T + 60, "10.0.0.12", owner("new")))
    written = dict(index.state_entries(["10.0.0.12"]))
    assert sorted(k for k in written if not k.startswith(PART_KEY)) == sorted(
        ["10.0.0.12", *(f"10.0.0.{n}" for n in (1, 2, 3, 4, 5, 6, 7, 11, 13, 14, 15, 16)),
         vpc_key("vpc-0a1b2c3d", "10.0.0.9")])
    assert index.state_entries([]) == []
    state.update(written)
    assert all(json.loads(state[k])[3] not in (0, 1, 2, 4) for k in ("10.0.0.1", "10.0.0.3",
                                                                      "10.0.0.5"))
    changed, removed = index.prune(T - 1)
    assert changed == [] and sorted(removed) == ["10.0.0.10", "owner 0", "owner 1", "owner 2",
                                                 "owner 4"]
    for key in removed:
        del state[key]
    again = OwnershipIndex()
    again.load(lambda: iter(list(state.items())))
    assert again.restored_cleaned == {} and again.restore_note() is None
    assert {k: again.changes(k) for k in state if not k.startswith(PART_KEY)} == {
        k: index.changes(k) for k in state if not k.startswith(PART_KEY)}


def test_every_instance_writes_a_restored_state_cleaned_the_same():
    """Every instance of the job restores the same broadcast state and writes the keys load
    cleaned again, numbering their cleaned parts: as broadcast state requires, the same keys
    and values whatever order an instance's state yields its entries in. Before, each numbered
    the parts in the order it met their keys: two instances held one part under two numbers."""
    items = list(_old_state().items())
    written = []
    for entries in (items, items[::-1]):
        index = OwnershipIndex()
        index.load(lambda entries=entries: iter(entries))
        written.append(index.state_entries([]))
    assert written[0] == written[1]


def test_a_state_version_this_release_does_not_know_stops_it():
    for state in ([("10.0.0.1", '[3,0,1,0,"eni-1","i-1"]')], [("owner 0", '[3,"api"]')]):
        with pytest.raises(ValueError, match="version 3"):
            OwnershipIndex().load(lambda: iter(state))


def test_parts_no_ip_names_any_more_are_removed_from_state():
    index = index_of((ASSIGN, 0, "a", "x"), (ASSIGN, 100, "a", "y"), (ASSIGN, 0, "b", "x"),
                     (UNASSIGN, 50, "b", None), (ASSIGN, 0, "c", "z"))
    state = dict(index.state_entries(["a", "b", "c"]))
    assert sorted(k for k in state if k.startswith("owner ")) == ["owner 0", "owner 1",
                                                                   "owner 2"]
    changed, removed = index.prune(150)
    for key, value in index.state_entries(changed):
        state[key] = value
    for key in removed:
        del state[key]
    # x (owner 0) is gone with a's first change and b; y and z stay.
    assert changed == ["a"] and removed == ["b", "owner 0"]
    again = OwnershipIndex()
    again.load(lambda: iter(state.items()))
    assert [app_at(again, ip, 150) for ip in "abc"] == ["y", None, "z"]
    # A part seen again after it was removed is numbered anew and written again.
    index.apply(MetaEvent(ASSIGN, 200, "d", owner("x")))
    assert index.state_entries(["d"])[0] == ("owner 3", '[2,"x","-","-","-","-","-","-"]')


def test_a_snapshot_read_again_from_the_stream_ends_with_the_publisher_s_owner():
    """Tag changes are dated from the attachment (docs/publisher.md): x then y at one ts. The
    snapshot holds y; the stream, reaching back before it, brings x and y again. Arrival order
    ends at y, the publisher's owner (ignoring y's copy as one already held left x: a review)."""
    index = index_of((ASSIGN, 100, "a", "y"), (ASSIGN, 100, "a", "x"), (ASSIGN, 100, "a", "y"))
    assert app_at(index, "a", 150) == "y"
    # The known limit of arrival order: a change sent again alone after a later one of its ts
    # takes the IP back (docs/metadata.md).
    index.apply(MetaEvent(ASSIGN, 100, "a", owner("x")))
    assert app_at(index, "a", 150) == "x"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([ASSIGN, UNASSIGN]), st.integers(0, 20),
                          st.sampled_from(["a", "b"]), st.sampled_from(["x", "y", "z"])),
                max_size=12),
       st.integers(0, 22))
def test_answers_are_the_latest_change_at_or_before_t_in_any_arrival_order(events, horizon):
    index = index_of(*[(kind, ts, ip, app if kind == ASSIGN else None)
                       for kind, ts, ip, app in events])

    def expected(ip, t):
        changes = sorted(((ts, kind == ASSIGN, app) for kind, ts, i, app in events
                          if i == ip and ts <= t), key=lambda c: c[:2])   # stable: arrival
        return changes[-1][2] if changes and changes[-1][1] else None

    times = range(-1, 23)
    for ip in ("a", "b"):
        assert [app_at(index, ip, t) for t in times] == [expected(ip, t) for t in times]
        assert index.changes(ip) == sorted(index.changes(ip), key=lambda c: c[:2])
    assert index.ranges() == len(events)
    index.prune(horizon)
    again = restored(index, [ip for ip in ("a", "b") if index.changes(ip)])
    for ip in ("a", "b"):
        later = range(horizon, 23)
        assert [app_at(index, ip, t) for t in later] == [expected(ip, t) for t in later]
        assert [app_at(again, ip, t) for t in later] == [expected(ip, t) for t in later]
    assert index.ranges() == again.ranges() == sum(len(index.changes(ip)) for ip in "ab")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([ASSIGN, UNASSIGN, HEARTBEAT]), st.integers(0, 40)),
                max_size=15),
       st.integers(0, 10))
def test_a_change_is_late_exactly_when_at_or_behind_the_watermark_before_it(events, bound):
    clock = MetadataClock(out_of_orderness_ms=bound)
    changes, heartbeats = [], []
    for kind, ts in events:
        # The watermark as MetadataClock defines it, from what came before this event.
        candidates = [max(changes) - bound] if changes else []
        candidates += [max(heartbeats)] if heartbeats else []
        watermark = max(candidates, default=None)
        late = clock.observe(MetaEvent(kind, ts, "10.0.0.1"))
        assert late == (kind != HEARTBEAT and watermark is not None and ts <= watermark)
        (heartbeats if kind == HEARTBEAT else changes).append(ts)
        candidates = [max(changes) - bound] if changes else []
        candidates += [max(heartbeats)] if heartbeats else []
        assert clock.watermark == max(candidates, default=None)


# An owner value a changelog line can give: not empty nor white space only, no control
# character, line break or lone surrogate (a restore cleans those: test_a_restored_owner_...).
_LINE_VALUE = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1,
                      max_size=4).filter(lambda v: not v.isspace())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([ASSIGN, UNASSIGN]), st.integers(0, 3),
                          st.tuples(*[st.one_of(st.sampled_from(["-", "eni-1", 'q"', "b\\s"]),
                                                _LINE_VALUE)
                                      for _ in OWNER_FIELDS]).filter(
                              lambda o: not is_reserved_app(o[0]))),
                min_size=1, max_size=3))
def test_state_values_are_compact_json_and_restore_every_change(changes):
    """Every IP's value is the compact JSON of its changes (the common one-owner case is
    written without the JSON encoder), and a restored index answers as the original."""
    index = OwnershipIndex()
    for kind, ts, o in changes:
        index.apply(MetaEvent(kind, T + ts, "10.0.0.1", o if kind == ASSIGN else None))
    encoded = index.encode("10.0.0.1")
    assert encoded == json.dumps(json.loads(encoded), separators=(",", ":"))
    other = restored(index, ["10.0.0.1"])
    assert other.changes("10.0.0.1") == index.changes("10.0.0.1")


# IPv4 addresses are looked up in a sorted array, IPv6 ones in the dict (OwnershipIndex.slots).
IP = {"a": "10.0.0.1", "b": "10.0.0.2", "c": "fd00::3", "d": "10.0.0.4", "e": "10.0.0.5"}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([ASSIGN, UNASSIGN]), st.integers(0, 20),
                          st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y"])),
                max_size=12),
       st.integers(0, 22),
       st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["c", "d"]),
                          st.sampled_from(["x", "z"])), max_size=4))
def test_a_batch_lookup_in_arrays_answers_as_owner_at(events, horizon, after):
    """codes_at's arrays, for IPs with one owner or one UNASSIGN, and its `others` for the rest,
    give what owner_at gives, and so does owners_at: after any arrival order, a prune that frees
    slots (after a lookup, so that the IPv4 array holds the pruned IPs), new IPs in them, a
    restore."""
    index = index_of(*[(kind, ts, IP[ip], app if kind == ASSIGN else None)
                       for kind, ts, ip, app in events])
    ips = [IP[ip] for ip in "abcde"] * 23
    times = [t for t in range(-1, 22) for _ in range(5)]
    index.slots(ips)
    index.prune(horizon)
    for ts, ip, app in after:
        index.apply(MetaEvent(ASSIGN, ts, IP[ip], owner(app)))
    for which in (index, restored(index, [IP[ip] for ip in "abcd" if index.changes(IP[ip])])):
        slots = which.slots(ips)
        codes, others = which.codes_at(slots, np.array(times, np.int64))
        others = set(np.flatnonzero(others).tolist())
        assert which.owners_at(ips, np.array(times, np.int64)) == [
            which.owner_at(ip, t) for ip, t in zip(ips, times)]
        for i, (ip, t) in enumerate(zip(ips, times)):
            changes = which.changes(ip)
            assert (i in others) == (len(changes) > 1)
            expected = which.owner_at(ip, t)
            if i in others:
                continue
            if expected is None:
                assert codes[i] == -1
            else:
                assert which.pairs[codes[i]] == (expected[0], expected[4])


def test_slots_follow_an_index_that_grows_and_shrinks_between_lookups():
    """The IPv4 array is a snapshot, built again as IPs are added: a lookup between any two
    changes finds every IP in the slot the index gives it, and none that it does not hold."""
    index = OwnershipIndex()
    ips = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(6000)]
    ips += [f"fd00::{i:x}" for i in range(300)]
    wanted = ips + ["10.200.0.1", "8.8.8.8", "fd00::ffff"]
    for step in range(0, len(ips), 250):
        for ip in ips[step:step + 250]:
            index.apply(MetaEvent(ASSIGN, 1000 + step, ip, owner(f"app-{step}")))
        if step % 1000 == 750:   # releases, then a prune that frees their slots
            for ip in ips[step - 500:step - 250]:
                index.apply(MetaEvent(UNASSIGN, 2000 + step, ip, None))
            index.prune(3000 + step)
        slots = index.slots(wanted).tolist()
        assert slots == [index._slots.get(ip, -1) for ip in wanted]


def test_the_ipv4_array_is_built_once_until_many_ips_are_added_and_each_build_counted():
    """The worker gives a build's temporaries back to the system when ipv4_builds moves
    (job.flink.operators.trim_heap): it counts every build, and no lookup without one."""
    index = OwnershipIndex()
    for i in range(3000):
        index.apply(MetaEvent(ASSIGN, 1000, f"10.0.{i // 256}.{i % 256}", owner("a")))
    assert index.ipv4_builds == 0
    index.slots(["10.0.0.1"])
    index.slots(["10.0.0.2"])
    assert index.ipv4_builds == 1
    for i in range(100):   # fewer than half the array: looked up in the dict meanwhile
        index.apply(MetaEvent(ASSIGN, 1000, f"10.1.0.{i}", owner("b")))
    assert index.slots(["10.1.0.5"]).tolist() == [index._slots["10.1.0.5"]]
    assert index.ipv4_builds == 1
    for i in range(3000):
        index.apply(MetaEvent(ASSIGN, 1000, f"10.2.{i // 256}.{i % 256}", owner("c")))
    index.slots(["10.2.0.1"])
    assert index.ipv4_builds == 2


def test_a_release_pruned_is_remembered_so_an_older_change_read_again_owns_nothing_after():
    events = [(ASSIGN, 0, "10.0.0.7", "a"), (UNASSIGN, 3600, "10.0.0.7", None),
              (ASSIGN, 0, "10.0.0.8", "b"), (ASSIGN, 100, "10.0.0.8", "c"),
              (UNASSIGN, 3700, "10.0.0.8", None)]
    index = index_of(*events)
    changed, removed = index.prune(10_000, released_ms=3000)
    assert (changed, removed) == (["10.0.0.7", "10.0.0.8"], [])
    assert index.changes("10.0.0.7") == [(3600, 0, None)] and index.ranges() == 2
    # The snapshot of before the release, read again: ends at the release, as the contract says.
    index.apply(MetaEvent(ASSIGN, 0, "10.0.0.7", owner("a")))
    assert app_at(index, "10.0.0.7", 12_000) is None and app_at(index, "10.0.0.7", 10) == "a"
    assert app_at(restored(index, ["10.0.0.7"]), "10.0.0.7", 12_000) is None
    # A pruned release stays until it is older than released_ms; then it goes like the rest.
    # The next prune drops the replayed change again, then has nothing to do.
    assert index.prune(20_000, released_ms=3000) == (["10.0.0.7"], ["owner 0"])
    assert index.prune(20_000, released_ms=3000) == ([], [])
    assert index.prune(20_000, released_ms=3650)[1] == ["10.0.0.7"]
    # Without released_ms, as before: forgotten, and the old change would own the IP again.
    forgetting = index_of(*events)
    assert forgetting.prune(10_000)[1] == ["10.0.0.7", "10.0.0.8"]
    forgetting.apply(MetaEvent(ASSIGN, 0, "10.0.0.7", owner("a")))
    assert app_at(forgetting, "10.0.0.7", 12_000) == "a"


def test_a_release_pruned_is_forgotten_once_it_is_no_later_than_released_ms():
    """A release is remembered while it is later than `released_ms`: one at that very
    millisecond goes with the rest, one a millisecond later stays."""
    events = [(ASSIGN, 0, "10.0.0.7", "a"), (UNASSIGN, 3000, "10.0.0.7", None)]
    at_bound = index_of(*events)
    assert at_bound.prune(10_000, released_ms=3000) == ([], ["10.0.0.7"])
    assert at_bound.changes("10.0.0.7") == [] and at_bound.ranges() == 0
    later = index_of(*events)
    assert later.prune(10_000, released_ms=2999) == (["10.0.0.7"], [])
    assert later.changes("10.0.0.7") == [(3000, 0, None)]


def test_a_chunk_keeps_a_bounded_number_of_dead_letters_and_counts_them_all():
    """A changelog record of 500,000 bad lines made a dead letter each, one output element of
    85 MB: two such records ran the JVM's heap out (a review's Kinesis records)."""
    from flowdredge.job.parse import DEAD_LETTERS_KEPT
    good = json.dumps({"type": "ASSIGN", "ts": 1767225600000, "ip": "10.0.0.1", "app": "a"})
    chunk = parse_chunk("\n".join(["x"] * (DEAD_LETTERS_KEPT + 500) + [good]), "kinesis:m/s/1")
    kept, more = chunk.dead_letters()
    assert len(chunk.rejected) == DEAD_LETTERS_KEPT and len(chunk.events) == 1
    assert chunk.reasons == {"not_json": DEAD_LETTERS_KEPT + 500}
    assert (len(kept), more) == (DEAD_LETTERS_KEPT, 500)
    assert kept[0] == ("metadata", "not_json", "kinesis:m/s/1:1", "x",
                       "Expecting value at character 0")
    assert kept[-1][2] == f"kinesis:m/s/1:{DEAD_LETTERS_KEPT}"
    few = parse_chunk("x\n" + good, "f").dead_letters()
    assert few == ([("metadata", "not_json", "f:1", "x", "Expecting value at character 0")], 0)


def _many_bad_lines(n: int) -> list:
    """`n` short bad lines of a record (not_an_object, not_json and blank ones), with a good
    HEARTBEAT, an ASSIGN whose owner is refused (reserved_app, parsed by columns) and one
    refused after its bad_vpc_id (parsed line by line) near the start, a HEARTBEAT last."""
    t = 1767225600000
    lines = ["1x["[i % 4] if i % 4 < 3 else "" for i in range(n)]
    lines[1] = '{"type":"HEARTBEAT","ts":%d}' % t
    lines[6] = '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.1","app":"aws:s3"}' % t
    lines[9] = ('{"type":"ASSIGN","ts":%d,"ip":"10.0.0.2","app":"aws:s3",'
                '"interface_vpc_id":"vpc-1"}' % t)
    lines[-1] = lines[1]
    return lines


def test_a_record_of_many_bad_lines_holds_its_first_dead_letters_only_and_counts_them_all():
    """A metadata stream record of many short bad lines held every rejection, with its place
    and detail, until the parse ended, then kept DEAD_LETTERS_KEPT: a record of 1 MB of lines
    `1` grew the process by 188 MiB, one of 10 MB (Kinesis takes them since 2025) by 1.8 GiB. The first are kept by
    line as a short record's are, the rest counted by reason, exactly; the lines are parsed a
    slice at a time, and a bad line costs its line in the record's list (8 bytes for these)."""
    from helpers import PeakGrowth
    from flowdredge.job.parse import DEAD_LETTERS_KEPT
    n = 300_000
    lines = _many_bad_lines(n)
    staged = json.dumps({"staged": STAGED, "source": "kinesis:m/s/1", "first_line": 1,
                         "lines": lines})
    with PeakGrowth() as memory:
        chunk = parse_chunk(staged)
    # Before: 88 MiB.
    assert memory.growth < 24 << 20, memory.growth
    quarter = n // 4
    assert chunk.reasons == {"not_an_object": quarter, "not_json": 2 * quarter - 3,
                             "reserved_app": 2}
    # Its first 1,334 lines hold DEAD_LETTERS_KEPT rejections, all kept.
    short = parse_chunk(json.dumps({"staged": STAGED, "source": "kinesis:m/s/1",
                                    "first_line": 1, "lines": lines[:1334]}))
    assert sum(short.reasons.values()) == len(short.rejected) == DEAD_LETTERS_KEPT
    assert chunk.rejected == short.rejected
    assert [r[:2] for r in chunk.rejected[:5]] == [
        ("not_an_object", "kinesis:m/s/1:1"), ("not_json", "kinesis:m/s/1:3"),
        ("not_an_object", "kinesis:m/s/1:5"), ("not_json", "kinesis:m/s/1:6"),
        ("reserved_app", "kinesis:m/s/1:7")]
    assert [(e.type, e.ip) for e in chunk.events] == [
        (HEARTBEAT, ""), (UNASSIGN, "10.0.0.1"), (UNASSIGN, "10.0.0.2"), (HEARTBEAT, "")]
    kept, more = chunk.dead_letters()
    assert len(kept) == DEAD_LETTERS_KEPT and more == sum(chunk.reasons.values()) - len(kept)


def test_the_metadata_parse_counts_every_dead_letter_of_a_record_by_reason():
    """ParseMetadataEvents counts a record's dead letters from the chunk's counts, not from
    the dead letters it keeps."""
    from operator_stubs import Runtime
    from flowdredge.job.config import Config
    from flowdredge.job.flink.operators import COUNTS, DEAD_LETTERS, ParseMetadataEvents
    from flowdredge.job.parse import DEAD_LETTERS_KEPT
    operator = ParseMetadataEvents(Config())
    operator.open(Runtime())
    ctx = type("Context", (), {"timestamp": lambda self: None})()
    out = list(operator.process_element("\n".join(_many_bad_lines(4000)), ctx))
    assert [json.loads(line) for tag, line in out if tag is COUNTS] == [{
        "stage": "metadata", "metadata_dead_letter": 2999,
        "metadata_dead_letter_not_an_object": 1000, "metadata_dead_letter_not_json": 1997,
        "metadata_dead_letter_reserved_app": 2,
        "metadata_dead_letters_not_kept": 2999 - DEAD_LETTERS_KEPT}]
    assert sum(len(lines.split("\n")) for tag, lines in out if tag is DEAD_LETTERS) == \
        DEAD_LETTERS_KEPT


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_vpc_events_are_kept_under_their_vpc_and_answer_only_within_it(vectorise_from):
    """An address overlapping VPCs hold: VPC_ASSIGN / VPC_UNASSIGN name its owner within one
    VPC, kept apart from the address's own changes (the columnar reader hands them to
    parse_event), through broadcast state and prune."""
    t0 = 1767225600000
    lines = ['{"type":"UNASSIGN","ts":%d,"ip":"172.31.0.10"}' % t0,
             '{"type":"VPC_ASSIGN","ts":%d,"ip":"172.31.0.10","vpc_id":"vpc-0a1b2c3d",'
             '"app":"api"}' % t0,
             '{"type":"VPC_ASSIGN","ts":%d,"ip":"172.31.000.10","vpc_id":"vpc-0123456789abcdef0",'
             '"app":"db"}' % t0,
             '{"type":"VPC_ASSIGN","ts":%d,"ip":"172.31.0.10","vpc_id":"vpc-0a1b2c3d",'
             '"app":"internet"}' % (t0 + 5000),
             '{"type":"VPC_UNASSIGN","ts":%d,"ip":"172.31.0.10","vpc_id":"vpc-0123456789abcdef0"}'
             % (t0 + 1000),
             '{"type":"HEARTBEAT","ts":%d}' % t0]
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    a, b = vpc_key("vpc-0a1b2c3d", "172.31.0.10"), vpc_key("vpc-0123456789abcdef0", "172.31.0.10")
    assert [(e.type, e.ts - t0, e.ip, e.owner and e.owner[0]) for e in chunk.events] == [
        (UNASSIGN, 0, "172.31.0.10", None), (ASSIGN, 0, a, "api"), (UNASSIGN, 5000, a, None),
        (UNASSIGN, 1000, b, None), (HEARTBEAT, 0, "", None)]
    assert [r[0] for r in chunk.rejected] == ["bad_address", "reserved_app"]
    index = OwnershipIndex()
    counts, changed = apply_events(chunk.events, index, MetadataClock(0))
    assert counts["metadata_late"] == 2 and changed == ["172.31.0.10", a, b]
    index.apply(MetaEvent(ASSIGN, t0, b, owner("db")))
    for i in (index, restored(index, changed)):
        assert i.owner_at("172.31.0.10", t0) is None
        assert [i.owner_in_vpc("172.31.0.10", vpc, t0 + 999)[0] for vpc in
                ("vpc-0a1b2c3d", "vpc-0123456789abcdef0")] == ["api", "db"]
        assert i.owner_in_vpc("172.31.0.10", "vpc-0123456789abcdef0", t0 + 1000) is None
        assert i.owner_in_vpc("172.31.0.10", "vpc-0a1b2c3d", t0 + 5000) is None
        assert i.owner_in_vpc("172.31.0.10", None, t0) is None
        assert i.owner_in_vpc("172.31.0.11", "vpc-0a1b2c3d", t0) is None
        found = i.owners_at(["172.31.0.10"] * 2, np.array([t0, t0]))
        assert i.owners_in_vpcs(found, ["172.31.0.10"] * 2, np.array([t0, t0]),
                                pa.array(["vpc-0a1b2c3d", None])) == 1
        assert found[0][0] == "api" and found[1] is None
        # Released long before the horizon: forgotten, and no longer looked up in its VPC.
        removed = i.prune(t0 + 10_000)[1]
        assert sorted(k for k in removed if not k.startswith(PART_KEY)) == sorted(
            ["172.31.0.10", a, b])
        assert len(i) == 0 and i.owner_in_vpc("172.31.0.10", "vpc-0a1b2c3d", t0) is None
        assert not i.holds_vpc_claims()


def test_vpc_claims_added_and_taken_back_between_lookups_are_found_and_forgotten():
    """The claims' lookup arrays are built once and follow the changes after (a review: they
    were built again after every new claim key, 130 ms at 200,000 claims)."""
    vpc, t0 = "vpc-0a1b2c3d", 1767225600000
    index = OwnershipIndex()

    def apps(ips):
        found = index.owners_at(ips, np.full(len(ips), t0))
        index.owners_in_vpcs(found, ips, np.full(len(ips), t0), pa.array([vpc] * len(ips)))
        return [o and o[0] for o in found]
    index.apply(MetaEvent(ASSIGN, t0, vpc_key(vpc, "10.0.0.1"), owner("a")))
    assert apps(["10.0.0.1", "10.0.0.2", "10.0.0.3"]) == ["a", None, None]
    built = index._vpc_table
    index.apply(MetaEvent(ASSIGN, t0, vpc_key(vpc, "10.0.0.2"), owner("b")))
    index.apply(MetaEvent(ASSIGN, t0, vpc_key("vpc-0b1b2c3d", "10.0.0.1"), owner("c")))
    index.prune(t0 + 1, released_ms=None)
    index.apply(MetaEvent(ASSIGN, t0, vpc_key(vpc, "10.0.0.3"), owner("d")))
    assert apps(["10.0.0.1", "10.0.0.2", "10.0.0.3"]) == ["a", "b", "d"]
    assert index._vpc_table is built
    # Released and pruned: no longer claimed; a stale entry in the arrays finds no key.
    index.apply(MetaEvent(UNASSIGN, t0 + 1, vpc_key(vpc, "10.0.0.1"), None))
    index.apply(MetaEvent(UNASSIGN, t0 + 1, vpc_key("vpc-0b1b2c3d", "10.0.0.1"), None))
    index.prune(t0 + 10, released_ms=None)
    assert len(index) == 2
    assert apps(["10.0.0.1", "10.0.0.2", "10.0.0.3"]) == [None, "b", "d"]
    assert index._vpc_table is built


def test_a_forgotten_vpc_claim_is_not_found_through_its_slot_once_another_key_has_it():
    """The claims' lookup arrays hold slots; a claim pruned after they were built frees its
    slot, which the next new key takes: the arrays must not find that key for the claim."""
    vpc, t0 = "vpc-0a1b2c3d", 1767225600000
    index = OwnershipIndex()
    ips = ["10.0.0.1", "10.0.0.2"]

    def apps():
        found = index.owners_at(ips, np.full(2, t0 + 5))
        index.owners_in_vpcs(found, ips, np.full(2, t0 + 5), pa.array([vpc, vpc]))
        return [o and o[0] for o in found]
    index.apply(MetaEvent(ASSIGN, t0, vpc_key(vpc, "10.0.0.1"), owner("a")))
    index.apply(MetaEvent(ASSIGN, t0, vpc_key(vpc, "10.0.0.2"), owner("b")))
    assert apps() == ["a", "b"]
    index.apply(MetaEvent(UNASSIGN, t0 + 1, vpc_key(vpc, "10.0.0.1"), None))
    index.prune(t0 + 2, released_ms=None)
    index.apply(MetaEvent(ASSIGN, t0, vpc_key("vpc-0b1b2c3d", "10.0.0.9"), owner("c")))
    index.apply(MetaEvent(ASSIGN, t0, "10.0.0.3", owner("d")))
    assert apps() == [None, "b"]


def test_a_claim_made_since_the_arrays_were_built_is_forgotten_in_slot_0_too():
    """A claim made after the claims' arrays were built is looked up apart until they are built
    again, by its slot; pruned, it leaves that lookup whatever its slot, 0 included, before the
    next new key takes the slot."""
    vpc, t0 = "vpc-0a1b2c3d", 1767225600000
    index = OwnershipIndex()

    def app(t):
        found = index.owners_at(["10.0.0.1"], np.array([t]))
        index.owners_in_vpcs(found, ["10.0.0.1"], np.array([t]), pa.array([vpc]))
        return found[0] and found[0][0]
    index.apply(MetaEvent(ASSIGN, t0, "10.9.9.9", owner("x")))   # slot 0, freed below
    index.apply(MetaEvent(UNASSIGN, t0 + 1, "10.9.9.9", None))
    index.apply(MetaEvent(ASSIGN, t0, vpc_key(vpc, "10.0.0.9"), owner("c")))
    assert app(t0) is None   # the arrays built
    index.prune(t0 + 2, released_ms=None)
    index.apply(MetaEvent(ASSIGN, t0 + 3, vpc_key(vpc, "10.0.0.1"), owner("a")))
    assert index._slots[vpc_key(vpc, "10.0.0.1")] == 0 and app(t0 + 3) == "a"
    index.apply(MetaEvent(UNASSIGN, t0 + 4, vpc_key(vpc, "10.0.0.1"), None))
    index.prune(t0 + 5, released_ms=None)
    index.apply(MetaEvent(ASSIGN, t0 + 6, "10.0.0.3", owner("d")))
    assert index._slots["10.0.0.3"] == 0 and app(t0 + 6) is None


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_a_plain_change_with_a_vpc_id_leaves_its_address_without_owner(vectorise_from):
    """An ASSIGN with a vpc_id, its producer meaning that VPC only, gave the address that owner
    in every VPC, over the VPCs' own claims (a review). Now a dead letter, applied as an
    UNASSIGN; a VPC_ASSIGN's refused owner ends that VPC's claim, and says so."""
    t0 = 1767225600000
    lines = ['{"type":"ASSIGN","ts":%d,"ip":"172.31.0.10","vpc_id":"vpc-0a1b2c3d","app":"api"}'
             % t0,
             '{"type":"UNASSIGN","ts":%d,"ip":"172.31.0.11","vpc_id":"vpc-0a1b2c3d"}' % t0,
             '{"type":"ASSIGN","ts":%d,"ip":"172.31.0.12","vpc_id":null,"app":"web"}' % t0,
             '{"type":"VPC_ASSIGN","ts":%d,"ip":"172.31.0.13","vpc_id":"vpc-0a1b2c3d",'
             '"app":"aws:s3"}' % t0,
             '{"type":"VPC_ASSIGN","ts":%d,"ip":"172.31.0.14","vpc_id":"vpc-0a1b2c3d",'
             '"app":true}' % t0]
    # The last line apart: a value of another type makes Arrow's reader refuse its whole chunk.
    chunk, other = (parse_chunk("\n".join(part), "m", vectorise_from=vectorise_from)
                    for part in (lines[:4], lines[4:]))
    chunk.events += other.events
    chunk.rejected += [(r[0], "m:5", *r[2:]) for r in other.rejected]
    a = "vpc-0a1b2c3d"
    assert [(e.type, e.ip, e.owner and e.owner[0]) for e in chunk.events] == [
        (UNASSIGN, "172.31.0.10", None), (UNASSIGN, "172.31.0.11", None),
        (ASSIGN, "172.31.0.12", "web"), (UNASSIGN, vpc_key(a, "172.31.0.13"), None),
        (UNASSIGN, vpc_key(a, "172.31.0.14"), None)]
    assert [(r[0], r[1], r[3]) for r in chunk.rejected] == [
        ("bad_vpc_id", "m:1", "an ASSIGN with a vpc_id: a VPC's owner is a VPC_ASSIGN or "
                              "VPC_UNASSIGN; applied as an UNASSIGN"),
        ("bad_vpc_id", "m:2", "an UNASSIGN with a vpc_id: a VPC's owner is a VPC_ASSIGN or "
                              "VPC_UNASSIGN; applied as an UNASSIGN"),
        ("reserved_app", "m:4", "app 'aws:s3' is a name the job gives ends without an owner: "
                                "applied as a VPC_UNASSIGN"),
        ("not_text", "m:5", "app is a JSON boolean, not text: applied as a VPC_UNASSIGN")]


def _stream_record_dead_letter(raw: bytes) -> str:
    """The detail of the one dead letter a metadata stream record of `raw` is, none of it
    applied: staged as the JVM's ChangelogRecords does, JVM_NOT_UTF8 for bytes that are not
    UTF-8."""
    text = raw.decode("utf-8", errors="replace").replace("\ufffd", JVM_NOT_UTF8)
    staged = json.dumps({"staged": STAGED, "source": "kinesis:meta/shardId-0/49", "first_line": 1,
                         "lines": text.split("\n")})
    chunk = parse_chunk(staged, "metadata")
    assert chunk.events == []
    (letter,), more = chunk.dead_letters()
    assert more == 0 and letter[:3] == ("metadata", "not_json", "kinesis:meta/shardId-0/49")
    return letter[4]


def test_a_gzip_record_on_the_metadata_stream_is_one_dead_letter_that_says_so():
    """Compressed as flow records are, a changelog record was cut at its newline bytes into
    dead letters of garbage, one each, none saying why (a review). The JVM's readers decode
    records as UTF-8, gzip's second byte as JVM_NOT_UTF8."""
    import gzip
    raw = gzip.compress(b'{"type":"HEARTBEAT","ts":1796592000000}\n' * 50, mtime=0)
    assert b"\n" in raw   # two dead letters at least, before
    assert _stream_record_dead_letter(raw).startswith("gzip data (it starts 1f 8b)")
    # Text that merely holds those characters after its first line is read as before.
    assert len(parse_chunk('{"type":"HEARTBEAT","ts":1796592000000}\n\x1f\udffd').rejected) == 1
    # ... and so is a later chunk of a file starting with them: its other lines are read.
    later = json.dumps({"staged": STAGED, "source": "f", "first_line": 1025, "lines": [
        "\x1f" + JVM_NOT_UTF8, '{"type":"HEARTBEAT","ts":1796592000000}']})
    chunk = parse_chunk(later)
    assert len(chunk.events) == 1 and [r[:2] for r in chunk.rejected] == [("not_text", "f:1025")]


def _kpl_record(user_records: list) -> bytes:
    """The Kinesis Producer Library's aggregated record of `user_records` (bytes each): its
    magic, then a protobuf AggregatedRecord (a partition key table, each record's key index and
    data), then the MD5 of the protobuf."""
    import hashlib

    def varint(n):
        out = b""
        while n >= 0x80:
            out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
        return out + bytes([n])

    def field(number, payload):   # length-delimited
        return varint(number << 3 | 2) + varint(len(payload)) + payload
    body = field(1, b"pk") + b"".join(field(3, b"\x08\x00" + field(3, data))
                                      for data in user_records)
    return b"\xf3\x89\x9a\xc2" + body + hashlib.md5(body).digest()


@pytest.mark.parametrize("per_user_record", [1, 10])
def test_a_kpl_aggregated_record_on_the_metadata_stream_is_one_dead_letter_that_says_so(
        per_user_record):
    """A producer through the Kinesis Producer Library aggregates its records (the connector
    does not take them apart): read as text, the lines a user record's newlines cut out of it
    were applied and the others were dead letters of protobuf bytes, not_text, none saying
    why: with a line a user record, none of 20 changes applied and 3 dead letters; with 10,
    16 applied and 4 dead letters, the UNASSIGN at the record's end (its MD5 follows) lost, its
    address keeping its owner. The JVM's
    readers decode its magic (f3 89 9a c2), then the protobuf's first byte (0a), as
    JVM_NOT_UTF8 twice and a newline (StagedChangelog.decode, checked in jshell)."""
    lines = [json.dumps({"type": "ASSIGN", "ts": 1767225600000, "ip": f"10.0.0.{i}",
                         "app": "api"}) for i in range(1, 20)]
    lines.append('{"type":"UNASSIGN","ts":1767225600000,"ip":"10.0.0.77"}')
    users = ["\n".join(lines[i:i + per_user_record]).encode()
             for i in range(0, len(lines), per_user_record)]
    raw = _kpl_record(users)
    assert raw.decode("utf-8", errors="replace").startswith("\ufffd\ufffd\n")
    assert _stream_record_dead_letter(raw).startswith("a Kinesis Producer Library aggregated")
    # A later chunk of a file whose line is those characters reads its other lines.
    later = json.dumps({"staged": STAGED, "source": "f", "first_line": 1025, "lines": [
        JVM_NOT_UTF8 * 2, '{"type":"HEARTBEAT","ts":1796592000000}']})
    chunk = parse_chunk(later)
    assert len(chunk.events) == 1 and [r[:2] for r in chunk.rejected] == [("not_text", "f:1025")]


@pytest.mark.parametrize("vectorise_from", [1, math.inf])
def test_a_byte_order_mark_before_a_stream_records_first_line_is_passed_over(vectorise_from):
    """A record put on the metadata stream from a file an editor saved starts with a
    byte-order mark, as such a file does, whose mark staging and the JVM's file reader pass
    over: before, the record's first change was not_json, its address keeping the owner it
    had. A mark elsewhere is no record's start, and is still not_json."""
    assign = '{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.0.%d","app":"api"}'
    record = json.dumps({"staged": STAGED, "source": "kinesis:meta/shardId-0/49",
                         "first_line": 1, "lines": ["\ufeff" + assign % 1, assign % 2,
                                                    "\ufeff" + assign % 3]})
    chunk = parse_chunk(record, "metadata", vectorise_from=vectorise_from)
    assert [(e.type, e.ip, e.owner[0]) for e in chunk.events] == [
        ("ASSIGN", "10.0.0.1", "api"), ("ASSIGN", "10.0.0.2", "api")]
    assert [r[:2] for r in chunk.rejected] == [("not_json", "kinesis:meta/shardId-0/49:3")]
    later = _staged(["\ufeff" + assign % 4], first_line=1025)
    assert [r[:2] for r in parse_chunk(later, vectorise_from=vectorise_from).rejected] == [
        ("not_json", "changes.jsonl:1025")]


def test_a_gzip_changelog_file_compressed_twice_is_one_dead_letter_that_says_so(tmp_path):
    """A replay's staging opens a gzip file by its first bytes, once: compressed twice, what
    it hands on starts with gzip's bytes as it hands on bytes that are not UTF-8 (one lone
    surrogate a byte), and is one dead letter saying so, not one of garbage per newline byte."""
    import gzip

    from flowdredge.job.replay import stage_metadata
    path = tmp_path / "changes.jsonl.gz"
    path.write_bytes(gzip.compress(gzip.compress(
        b'{"type":"HEARTBEAT","ts":1767225600000}\n' * 50, mtime=0), mtime=0))
    stage_metadata([str(path)], str(tmp_path / "staged.jsonl"))
    chunk = parse_chunk((tmp_path / "staged.jsonl").read_text())
    (letter,), more = chunk.dead_letters()
    assert chunk.events == [] and more == 0 and letter[1:3] == ("not_json", str(path))
    assert letter[4].startswith("gzip data (it starts 1f 8b)")


def test_a_changelog_file_of_a_kpl_aggregated_record_is_one_dead_letter_to_every_reader(
        tmp_path):
    """A replay's staging hands on its magic as a lone surrogate a byte, not as the JVM's
    readers do (JVM_NOT_UTF8 twice, a file job's LineChunks as a stream record's, checked with
    javac): a replay read its lines, 16 of 20 changes applied and 4 not_text dead letters, where
    a file job of the same file had the one dead letter saying what it is."""
    from flowdredge.job.replay import stage_metadata
    lines = [json.dumps({"type": "ASSIGN", "ts": 1767225600000, "ip": f"10.0.0.{i}",
                         "app": "api"}) for i in range(1, 20)]
    lines.append('{"type":"UNASSIGN","ts":1767225600000,"ip":"10.0.0.77"}')
    raw = _kpl_record(["\n".join(lines[i:i + 10]).encode() for i in range(0, 20, 10)])
    path = tmp_path / "changes.jsonl"
    path.write_bytes(raw)
    stage_metadata([str(path)], str(tmp_path / "staged.jsonl"))
    from_jvm = json.dumps({"staged": STAGED, "source": str(path), "first_line": 1, "lines": raw.decode(
        "utf-8", "replace").replace("\ufffd", JVM_NOT_UTF8).split("\n")})
    for staged in ((tmp_path / "staged.jsonl").read_text(), from_jvm):
        chunk = parse_chunk(staged)
        (letter,), more = chunk.dead_letters()
        assert chunk.events == [] and more == 0 and letter[1:3] == ("not_json", str(path))
        assert letter[4].startswith("a Kinesis Producer Library aggregated record")


def test_a_changelog_line_of_bytes_that_are_not_utf8_is_a_dead_letter(tmp_path):
    """A review: the readers decoded them as U+FFFD, so an ASSIGN's owner became another name
    without a word. They hand them on as lone surrogates (the JVM's JVM_NOT_UTF8, job.replay's
    one a byte), which no UTF-8 text decodes to: the line is dead-lettered not_text wherever
    they are; a change is applied as an UNASSIGN (which owner was meant is not known)."""
    from flowdredge.job.replay import stage_metadata
    lines = [b'{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.0.1","app":"api"}',
             b'{"type":"ASSIGN","ts":1767225601000,"ip":"10.0.0.2","app":"caf\xe9"}',
             b'{"type":"VPC_ASSIGN","ts":1767225601000,"ip":"10.0.0.3","vpc_id":"vpc-0a1b2c3d",'
             b'"app":"ok","note":"\xff\xfe"}',
             b'{"type":"HEARTBEAT","ts":1767225602000,"x":"\x80"}',
             b'{"type":"ASSIGN","ts":1767225603000,"ip":"10.0.0.\xc3"}']
    path = tmp_path / "changes.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    stage_metadata([str(path)], str(tmp_path / "staged.jsonl"))
    from_jvm = json.dumps({"staged": STAGED, "source": str(path), "first_line": 1, "lines": [
        line.decode("utf-8", "replace").replace("\ufffd", JVM_NOT_UTF8) for line in lines]})
    for chunk in ((tmp_path / "staged.jsonl").read_text(), from_jvm):
        parsed = parse_chunk(chunk)
        assert parsed.events == [
            parse_event(lines[0].decode()), MetaEvent(UNASSIGN, 1767225601000, "10.0.0.2"),
            MetaEvent(UNASSIGN, 1767225601000, vpc_key("vpc-0a1b2c3d", "10.0.0.3"))]
        letters, more = parsed.dead_letters()
        assert more == 0 and [(reason, where) for _, reason, where, _, _ in letters] == [
            ("not_text", f"{path}:{n}") for n in (2, 3, 4, 5)]
        said = "bytes that are not UTF-8 (\\udffd, or \\udc80-\\udcff a byte, in the excerpt)"
        assert [detail for *_, detail in letters] == [
            f"{said}: applied as an UNASSIGN", f"{said}: applied as a VPC_UNASSIGN", said, said]
        assert all(excerpt.isprintable() and excerpt.isascii() for *_, excerpt, _ in letters)
    assert "caf\\udce9" in parse_chunk((tmp_path / "staged.jsonl").read_text()).dead_letters()[
        0][0][3]


def test_owner_values_blank_or_breaking_text_are_read_alike_by_a_replay_and_a_stream(tmp_path):
    """A changelog file staged by a replay, the chunk the JVM's file reader makes of it, and its
    text as one stream record give the same events and dead letters, in columns (a chunk of
    1,024 lines or more) and line by line: values of white space only are `-`, one holding a
    control character or line break among others refuses its owner (not_text), a line no JSON
    for a control
    character unescaped (a tab, ESC, a carriage return inside a value) is applied as an
    UNASSIGN of the address its head names; other lines are read as they are."""
    from flowdredge.job.replay import stage_metadata
    t0 = 1767225600000
    odd = [("api", "a\x7f"), ("db", "x\u2028y"), ("web", "\x85"), ("q", "\u00a0"), ("r", " "),
           ("s", "\u3000 "), ("t", "a\u2029"), ("u", "\x9b1m")]
    lines = [json.dumps({"type": "ASSIGN", "ts": t0, "ip": f"10.1.{n // 250}.{n % 250}",
                         "app": f"app-{n % 7}", "zone": "us-east-1a"}) for n in range(1100)]
    lines[10:10] = [json.dumps({"type": "ASSIGN", "ts": t0 + 1, "ip": f"10.2.0.{n}",
                                "app": app, "cluster": value}, ensure_ascii=False)
                    for n, (app, value) in enumerate(odd)]
    lines[500:500] = ['{"type":"ASSIGN","ts":%d,"ip":"10.3.0.%d","app":"a%sb"}' % (t0, n, c)
                      for n, c in enumerate("\t\x1b\r\x00")]
    path = tmp_path / "changes.jsonl"
    path.write_bytes("\n".join(lines).encode() + b"\n")
    staged = tmp_path / "staged.jsonl"
    assert stage_metadata([str(path)], str(staged), 5000) == len(lines)
    from_jvm = _staged(lines, source=str(path))
    read = [parse_chunk(staged.read_text(), vectorise_from=v) for v in (1024, math.inf)] + [
        parse_chunk(from_jvm, vectorise_from=v) for v in (1024, math.inf)]
    stream = [parse_chunk("\n".join(lines), "meta", vectorise_from=v) for v in (1024, math.inf)]
    for chunk in read[1:] + stream:
        assert chunk.events == read[0].events
    for chunk in read[1:]:
        assert chunk.rejected == read[0].rejected
    for chunk in stream:
        assert [r[0] for r in chunk.rejected] == [r[0] for r in read[0].rejected]
        assert [r[2:] for r in chunk.rejected] == [r[2:] for r in read[0].rejected]
    changed = [(e.type, e.ip, e.owner and e.owner[:2]) for e in read[0].events
               if not e.ip.startswith("10.1.")]
    assert changed == [
        (UNASSIGN, "10.2.0.0", None), (UNASSIGN, "10.2.0.1", None),
        (ASSIGN, "10.2.0.2", ("web", "-")),
        (ASSIGN, "10.2.0.3", ("q", "-")), (ASSIGN, "10.2.0.4", ("r", "-")),
        (ASSIGN, "10.2.0.5", ("s", "-")), (UNASSIGN, "10.2.0.6", None),
        (UNASSIGN, "10.2.0.7", None)] + [(UNASSIGN, f"10.3.0.{n}", None) for n in range(4)]
    assert [(reason, where) for reason, where, _, _ in read[0].rejected] == [
        ("not_text", f"{path}:{n}") for n in (11, 12, 17, 18)] + [
        ("not_json", f"{path}:{n}") for n in (501, 502, 503, 504)]


def test_a_line_of_bytes_that_are_not_utf8_refused_also_for_another_reason_is_applied_as_it_says():
    """Such a line that parse_event would refuse and apply as an UNASSIGN all the same (an
    ASSIGN with a vpc_id, a key given twice) is applied so, as its dead letter says: keeping
    the address's previous owner would misattribute its flows."""
    t0 = 1767225600000
    lines = ['{"type":"ASSIGN","ts":%d,"ip":"10.0.0.4","vpc_id":"vpc-0a1b2c3d","app":"caf%s"}'
             % (t0, JVM_NOT_UTF8),
             '{"type":"ASSIGN","ts":%d,"ip":"10.0.0.5","app":"a","app":"caf%s"}'
             % (t0, JVM_NOT_UTF8)]
    chunk = parse_chunk("\n".join(lines))
    assert chunk.events == [MetaEvent(UNASSIGN, t0, "10.0.0.4"),
                            MetaEvent(UNASSIGN, t0, "10.0.0.5")]
    assert [(reason, detail.endswith(": applied as an UNASSIGN"))
            for reason, _, _, detail in chunk.rejected] == [("not_text", True)] * 2


def _with_interface(app, interface_id):
    values = dict.fromkeys(OWNER_FIELDS, "-")
    values.update(app=app, interface_id=interface_id)
    return tuple(values[f] for f in OWNER_FIELDS)


def test_the_vpc_claims_give_the_interfaces_they_name_their_vpc_as_long_as_they_are_held():
    """An interface never changes VPC: a VPC claim's owner names one in that VPC, the VPC of
    the flows it logs. Never one named in two VPCs (counted), nor `-`; rebuilt by a restore
    from broadcast state (its format unchanged) and kept by a prune while a claim naming it is
    held, so both agree with the index they came from."""
    a, b, t0 = "vpc-0a1b2c3d", "vpc-0123456789abcdef0", 1767225600000
    index = OwnershipIndex()
    for ts, ip, vpc, app, interface in [
            (t0, "172.31.0.10", a, "api", "eni-a"), (t0, "172.31.0.11", a, "api", "eni-a"),
            (t0, "172.31.0.10", b, "db", "eni-b"), (t0, "172.31.0.12", a, "x", "-"),
            (t0, "172.31.0.20", a, "y", "eni-c"), (t0, "172.31.0.20", b, "z", "eni-c"),
            (t0 + 5, "172.31.0.30", b, "old", "eni-d")]:
        index.apply(MetaEvent(ASSIGN, ts, vpc_key(vpc, ip), _with_interface(app, interface)))
    index.apply(MetaEvent(ASSIGN, t0, "10.0.0.1", _with_interface("web", "eni-w")))
    index.apply(MetaEvent(UNASSIGN, t0 + 10, vpc_key(b, "172.31.0.30"), None))
    index.apply(MetaEvent(UNASSIGN, t0 + 10, vpc_key(a, "172.31.0.11"), None))
    expected = {"eni-a": a, "eni-b": b, "eni-c": None, "eni-d": b, "eni-w": None, "-": None,
                None: None}
    state = dict(index.state_entries(list(index._slots)))

    def restored_from_state():
        other = OwnershipIndex()
        other.load(lambda: iter(list(state.items())))
        return other
    for i in (index, restored_from_state()):
        assert {e: i.interface_vpc(e) for e in expected} == expected
        assert i.interface_conflicts == 1
        assert i.flow_vpc(None, "eni-a") == a and i.flow_vpc(b, "eni-a") == b
        vpcs = i.flow_vpcs(pa.array([None, None, a, None, None]),
                           pa.array(["eni-a", "eni-c", "eni-b", None, "eni-z"]))
        assert vpcs.to_pylist() == [a, None, a, None, None]
        assert i.flow_vpcs(None, pa.array(["eni-b", "eni-z"])).to_pylist() == [b, None]
        assert i.flow_vpcs(None, pa.array(["eni-z"])) is None
        assert i.flow_vpcs(pa.array([b]), None).to_pylist() == [b]
    # Pruned past their release: eni-d's only claim goes, and its VPC with it; eni-a keeps
    # its VPC by its other claim. A restore from the pruned state agrees.
    changed, removed = index.prune(t0 + 20)
    assert vpc_key(b, "172.31.0.30") in removed and vpc_key(a, "172.31.0.11") in removed
    state.update(index.state_entries(changed))
    for key in removed:
        del state[key]
    for i in (index, restored_from_state()):
        assert {e: i.interface_vpc(e) for e in expected} == {**expected, "eni-d": None}
        assert i.interface_conflicts == 1
    # A conflict lasts while the claims showing it are held.
    index.apply(MetaEvent(UNASSIGN, t0 + 30, vpc_key(b, "172.31.0.20"), None))
    assert index.interface_vpc("eni-c") is None and index.interface_conflicts == 1
    index.prune(t0 + 40)
    assert index.interface_vpc("eni-c") == a and index.interface_conflicts == 0
    # A claim that moves to another interface of its VPC: the first keeps the VPC while the
    # change naming it is held.
    index.apply(MetaEvent(ASSIGN, t0 + 50, vpc_key(a, "172.31.0.12"), _with_interface("x", "eni-e")))
    assert index.interface_vpc("eni-e") == a
    index.apply(MetaEvent(ASSIGN, t0 + 60, vpc_key(a, "172.31.0.12"), _with_interface("x", "eni-f")))
    assert (index.interface_vpc("eni-e"), index.interface_vpc("eni-f")) == (a, a)
    index.prune(t0 + 70)
    assert (index.interface_vpc("eni-e"), index.interface_vpc("eni-f")) == (None, a)


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_an_assign_names_the_vpc_of_its_interface_and_a_bad_one_is_refused_not_its_owner(
        vectorise_from):
    """An ASSIGN's interface_vpc_id (the publisher's: the VPC of its interface_id) comes with
    its event; absent, empty or `-`, none. One that is not a VPC id is bad_vpc_id and the ASSIGN
    applied without it: the owner is the publisher's all the same. A VPC_ASSIGN's is its
    vpc_id's business: ignored."""
    a, t = "vpc-0a1b2c3d", 1767225600000
    head = f'"ts":{t},"app":"api","interface_id":"eni-1"'
    lines = [f'{{"type":"ASSIGN","ip":"10.0.0.1",{head},"interface_vpc_id":"{a}"}}',
             f'{{"type":"ASSIGN","ip":"10.0.0.2",{head}}}',
             f'{{"type":"ASSIGN","ip":"10.0.0.3",{head},"interface_vpc_id":"-"}}',
             f'{{"type":"ASSIGN","ip":"10.0.0.4",{head},"interface_vpc_id":"vpc-1"}}',
             f'{{"type":"ASSIGN","ip":"10.0.0.5",{head},"interface_vpc_id":7}}',
             f'{{"type":"VPC_ASSIGN","ip":"10.0.0.6","vpc_id":"{a}",{head},'
             f'"interface_vpc_id":"vpc-0123456789abcdef0"}}',
             f'{{"type":"UNASSIGN","ip":"10.0.0.7","ts":{t},"interface_vpc_id":"x"}}',
             f'{{"type":"ASSIGN","ip":"10.0.0.8",{head},"interface_vpc_id":""}}']
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    assert [(e.type, e.ip, e.owner and e.owner[0], e.interface_vpc_id) for e in chunk.events] == [
        (ASSIGN, "10.0.0.1", "api", a), (ASSIGN, "10.0.0.2", "api", None),
        (ASSIGN, "10.0.0.3", "api", None), (ASSIGN, "10.0.0.4", "api", None),
        (ASSIGN, "10.0.0.5", "api", None), (ASSIGN, vpc_key(a, "10.0.0.6"), "api", None),
        (UNASSIGN, "10.0.0.7", None, None), (ASSIGN, "10.0.0.8", "api", None)]
    assert [(reason, where) for reason, where, _line, _detail in chunk.rejected] == [
        ("bad_vpc_id", "m:4"), ("bad_vpc_id", "m:5")]
    assert chunk.rejected[0][3] == ('interface_vpc_id "vpc-1", not a VPC id as AWS writes them '
                                    "(vpc- and 8 or 17 lowercase hex digits): applied without it")
    assert decode_events(encode_events(chunk.events))[0] == chunk.events


def _assign_in(app, ip, interface, vpc, ts=1000):
    return MetaEvent(ASSIGN, ts, ip, _with_interface(app, interface), vpc)


def test_an_assign_gives_its_interface_its_vpc_as_a_vpc_claim_does_and_a_restore_keeps_it():
    """A line without vpc-id logged by an interface no VPC claim names takes the VPC an
    ASSIGN's interface_vpc_id gives it: its contested end is then the owner's within it. Two
    VPCs for one interface, from ASSIGNs or from an ASSIGN and a claim, is a conflict
    (counted): none. Kept in broadcast state with the owner parts and read back as it was."""
    a, b = "vpc-0a1b2c3d", "vpc-0123456789abcdef0"
    index = OwnershipIndex()
    index.apply(_assign_in("web", "10.0.0.1", "eni-w", a))
    index.apply(_assign_in("web", "10.0.0.2", "eni-w", a))
    index.apply(_assign_in("db", "10.0.0.3", "eni-d", None))
    index.apply(_assign_in("x", "10.0.0.4", "eni-x", a))
    index.apply(_assign_in("x", "10.0.0.5", "eni-x", b))
    index.apply(_assign_in("y", "10.0.0.6", "eni-y", a))
    index.apply(_assign_in("-", "10.0.0.7", "-", a))
    index.apply(MetaEvent(UNASSIGN, 1000, "172.31.0.10"))
    index.apply(MetaEvent(ASSIGN, 1000, vpc_key(a, "172.31.0.10"), _with_interface("api", "eni-a")))
    index.apply(MetaEvent(ASSIGN, 1000, vpc_key(b, "172.31.0.10"), _with_interface("pay", "eni-y")))
    expected = {"eni-w": a, "eni-d": None, "eni-x": None, "eni-y": None, "eni-a": a, "-": None}
    state = dict(index.state_entries(list(index._slots)))
    again = OwnershipIndex()
    again.load(lambda: iter(state.items()))
    for i in (index, again):
        assert {e: i.interface_vpc(e) for e in expected} == expected
        assert i.interface_conflicts == 2
        assert i.flow_vpc(None, "eni-w") == a and i.flow_vpc(b, "eni-w") == b
        assert i.flow_vpcs(None, pa.array(["eni-w", "eni-x", "eni-q"])).to_pylist() == [a, None,
                                                                                        None]
        assert i.owner_in_vpc("172.31.0.10", i.flow_vpc(None, "eni-w"), 2000)[0] == "api"
    # The owner is the same: the VPC is no owner field.
    assert again.owner_at("10.0.0.1", 1000) == index.owner_at("10.0.0.1", 1000) == \
        _with_interface("web", "eni-w")
    # An old part (no VPC) and the new one (with it) are apart in state; a release reads
    # only the first seven fields of either.
    parts = sorted(v for k, v in state.items() if k.startswith(PART_KEY))
    assert '[2,"web","-","-","-","-","-","-","vpc-0a1b2c3d"]' in parts
    assert '[2,"x","-","-","-","-","-","-",null]' in parts
    assert '[2,"db","-","-","-","-","-","-"]' in parts


def test_an_assigns_vpc_is_forgotten_with_the_last_change_naming_its_interface():
    """Pruned as a claim's: an interface no change held names is known no more; one a change
    held still names keeps its VPC, and the changes naming it are written again with it, so a
    restore from the pruned state agrees (a change written before the VPC was known)."""
    a = "vpc-0a1b2c3d"
    index = OwnershipIndex()
    index.apply(_assign_in("web", "10.0.0.1", "eni-w", None, ts=100))
    index.apply(_assign_in("web", "10.0.0.2", "eni-w", a, ts=100))
    index.apply(_assign_in("old", "10.0.0.3", "eni-o", a, ts=100))
    state = dict(index.state_entries(list(index._slots)))
    for ip in ("10.0.0.2", "10.0.0.3"):
        index.apply(MetaEvent(ASSIGN, 200, ip, _with_interface("new", "eni-n")))
    state.update(index.state_entries(["10.0.0.2", "10.0.0.3"]))
    assert (index.interface_vpc("eni-w"), index.interface_vpc("eni-o")) == (a, a)
    changed, removed = index.prune(250)
    assert sorted(changed) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    state.update(index.state_entries(changed))
    for key in removed:
        del state[key]
    again = OwnershipIndex()
    again.load(lambda: iter(state.items()))
    for i in (index, again):
        assert (i.interface_vpc("eni-w"), i.interface_vpc("eni-o")) == (a, None)
        assert i.owner_at("10.0.0.1", 300) == _with_interface("web", "eni-w")


def test_an_assigns_vpc_forgotten_by_a_prune_takes_its_conflict_with_it():
    """ASSIGNs naming an interface in two VPCs are a conflict (counted, the interface none);
    once a prune forgets every change naming it, the conflict is counted no more, as a restore
    from the pruned state says (a review's mutant kept it counted)."""
    a, b = "vpc-0a1b2c3d", "vpc-0123456789abcdef0"
    index = OwnershipIndex()
    index.apply(MetaEvent(ASSIGN, 100, vpc_key(a, "172.31.0.10"), _with_interface("api", "eni-c")))
    index.apply(_assign_in("web", "10.0.0.1", "eni-x", a, ts=100))
    index.apply(_assign_in("web", "10.0.0.2", "eni-x", b, ts=100))
    assert (index.interface_vpc("eni-x"), index.interface_conflicts) == (None, 1)
    for ip in ("10.0.0.1", "10.0.0.2"):
        index.apply(MetaEvent(ASSIGN, 200, ip, _with_interface("new", "eni-n")))
    index.prune(250)
    state = dict(index.state_entries(list(index._slots)))
    again = OwnershipIndex()
    again.load(lambda: iter(state.items()))
    for i in (index, again):
        assert (i.interface_vpc("eni-x"), i.interface_vpc("eni-c"), i.interface_conflicts) \
            == (None, a, 0)


@pytest.mark.parametrize("released_ms", [None, 150], ids=["removed", "release kept"])
def test_an_assigns_vpc_is_forgotten_with_the_address_a_prune_releases(released_ms):
    """An address released (its last change an UNASSIGN) before the horizon: a prune removes
    it, or keeps its release alone (one after released_ms), and forgets the VPC its ASSIGN
    named for an interface no other change names."""
    index = OwnershipIndex()
    index.apply(_assign_in("web", "10.0.0.1", "eni-x", "vpc-0a1b2c3d", ts=100))
    index.apply(MetaEvent(UNASSIGN, 200, "10.0.0.1"))
    changed, removed = index.prune(250, released_ms)
    assert (changed, removed[:1]) == (([], ["10.0.0.1"]) if released_ms is None
                                      else (["10.0.0.1"], []))
    assert index.interface_vpc("eni-x") is None


@pytest.mark.parametrize("order", [1, -1])
def test_a_conflict_arising_between_two_writes_of_the_state_is_one_after_a_restore(order):
    """The state holds an interface's part written before a conflict, with the VPC then known,
    and one written since, with none: a restore, whatever its order, has the conflict."""
    a, b = "vpc-0a1b2c3d", "vpc-0123456789abcdef0"
    index = OwnershipIndex()
    index.apply(_assign_in("web", "10.0.0.1", "eni-x", a))
    state = dict(index.state_entries(["10.0.0.1"]))
    index.apply(_assign_in("web", "10.0.0.2", "eni-x", b))
    state.update(index.state_entries(["10.0.0.2"]))
    again = OwnershipIndex()
    again.load(lambda: iter(list(state.items())[::order]))
    for i in (index, again):
        assert (i.interface_vpc("eni-x"), i.interface_conflicts) == (None, 1)


def test_a_flow_takes_the_vpc_an_assign_names_though_no_claim_names_an_interface():
    """The columns' path looks the flows' interfaces up when the claims name none (their
    owners without interface_id) and the ASSIGNs name some."""
    a = "vpc-0a1b2c3d"
    index = OwnershipIndex()
    index.apply(MetaEvent(ASSIGN, 100, vpc_key(a, "172.31.0.10"), _with_interface("api", "-")))
    index.apply(_assign_in("web", "10.0.0.1", "eni-y", a))
    assert index.flow_vpcs(None, pa.array(["eni-y", "eni-z"])).to_pylist() == [a, None]


def test_a_state_written_before_assigns_named_vpcs_is_read_with_none():
    """Broadcast state of the release before (parts of seven fields) loads as it did: the
    interfaces' VPCs are then those its claims give."""
    a = "vpc-0a1b2c3d"
    state = [("10.0.0.1", '[2,5,1,0,"eni-w","i-1"]'), ("owner 0", '[2,"web","-","-","-","-","-","-"]'),
             (vpc_key(a, "172.31.0.10"), '[2,5,1,1,"eni-a","i-2"]'),
             ("owner 1", '[2,"api","-","-","-","-","-","-"]')]
    index = OwnershipIndex()
    index.load(lambda: iter(state))
    assert index.owner_at("10.0.0.1", 5)[:7] == ("web", "-", "-", "-", "-", "-", "eni-w")
    assert (index.interface_vpc("eni-w"), index.interface_vpc("eni-a")) == (None, a)
    assert index.interface_conflicts == 0
    # Once an ASSIGN names it, its VPC is known, and the IP's part is written with it.
    index.apply(_assign_in("web", "10.0.0.1", "eni-w", a, ts=5))
    assert index.interface_vpc("eni-w") == a
    assert index.state_entries(["10.0.0.1"])[0] == (
        "owner 2", '[2,"web","-","-","-","-","-","-","vpc-0a1b2c3d"]')


@pytest.mark.parametrize("vectorise_from", [0, math.inf])
def test_a_refused_owner_with_a_bad_interface_vpc_is_one_dead_letter_the_refusals(
        vectorise_from):
    """An ASSIGN whose owner is refused (applied as an UNASSIGN) and whose interface_vpc_id is
    not a VPC id is one dead letter, the refusal's: before, also a bad_vpc_id saying the ASSIGN
    was applied without its VPC, which it was not, the line counted twice (a review)."""
    t = 1767225600000
    lines = [f'{{"type":"ASSIGN","ip":"10.0.0.{i}","ts":{t},"app":"{app}","interface_id":'
             f'"eni-1","interface_vpc_id":"vpc-1"}}'
             for i, app in enumerate(("unattributed", "aws:s3", "\\ud800x", "api"), 1)]
    chunk = parse_chunk("\n".join(lines), "m", vectorise_from=vectorise_from)
    assert [(e.type, e.ip) for e in chunk.events] == [
        (UNASSIGN, "10.0.0.1"), (UNASSIGN, "10.0.0.2"), (UNASSIGN, "10.0.0.3"),
        (ASSIGN, "10.0.0.4")]
    assert [(reason, where) for reason, where, _line, _detail in chunk.rejected] == [
        ("reserved_app", "m:1"), ("reserved_app", "m:2"), ("not_text", "m:3"),
        ("bad_vpc_id", "m:4")]


@pytest.mark.parametrize("vectorise_from", [math.inf, 1])
def test_a_changelog_integer_of_more_digits_than_int_reads_is_one_beyond_every_range(
        vectorise_from):
    """json.loads refused a line holding an integer of 5,000 digits anywhere ('Exceeds the
    limit (4300 digits)', not_json in Python's words), in a key the job does not read too,
    which the vectorised parse of a larger chunk ignored and applied the line (a review). Such
    a number is read as one beyond every range: a ts of it is ts_out_of_range, as 2**64 is; an
    owner value of it is not_text, applied as an UNASSIGN; elsewhere it is ignored."""
    digits = "9" * 5000
    base = '{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.0.%d","app":"web"%s}'
    lines = [base % (1, ',"note":' + digits),
             base.replace("1767225600000", "-" + digits) % (2, ""),
             (base % (3, "")).replace('"web"', digits),
             (base % (4, "")).replace('"ASSIGN"', digits)]
    pad = [base % (i, "") for i in range(10, 40)]
    chunk = parse_chunk("\n".join(lines + pad), "m", delivered=1767225660,
                        vectorise_from=vectorise_from)
    assert [(e.type, e.ip) for e in chunk.events][:2] == [(ASSIGN, "10.0.0.1"),
                                                          (UNASSIGN, "10.0.0.3")]
    assert chunk.events[0].owner == owner("web")
    assert [(r[0], r[1], r[3]) for r in chunk.rejected] == [
        ("ts_out_of_range", "m:2", "ts of 20 digits or more is before 2010"),
        ("not_text", "m:3", "app is a JSON number of more than 4,300 digits, not text: applied "
                            "as an UNASSIGN"),
        ("unknown_type", "m:4", "type a number of more than 4,300 digits, not one of ASSIGN, "
                                "UNASSIGN, HEARTBEAT, VPC_ASSIGN, VPC_UNASSIGN")]
