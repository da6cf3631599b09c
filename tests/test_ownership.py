import json

import pytest

from job.ownership import (MetadataClock, MetaEvent, MetaEventError, OwnershipIndex,
                           apply_events, changelog_lines, parse_chunk, parse_event)
from schemas.metadata import ASSIGN, HEARTBEAT, OWNER_FIELDS, UNASSIGN

pytestmark = pytest.mark.unit


def owner(app):
    return (app,) + ("-",) * (len(OWNER_FIELDS) - 1)


def index_of(*events):
    index = OwnershipIndex()
    for kind, ts, ip, app in events:
        index.apply(MetaEvent(kind, ts, ip, owner(app) if app else None))
    return index


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


def test_state_encoding_round_trips():
    index = index_of((ASSIGN, 0, "10.0.0.1", "api"), (UNASSIGN, 10, "10.0.0.1", None))
    other = OwnershipIndex()
    other.load("10.0.0.1", index.encode("10.0.0.1"))
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


@pytest.mark.parametrize("line,reason", [
    ('{"type":"ASSIGN","ip":"10.0.0.1"}', "missing_ts"),
    ('{"type":"MOVE","ts":1,"ip":"10.0.0.1"}', "unknown_type"),
    ('{"type":"UNASSIGN","ts":1}', "missing_ip"),
    ('{"type":"UNASSIGN","ts":1,"ip":"10.0.0.256"}', "bad_address"),
    ('[1,2]', "not_an_object"),
    ('nope', "not_json"),
])
def test_bad_events_have_reasons(line, reason):
    with pytest.raises(MetaEventError) as err:
        parse_event(line)
    assert err.value.reason == reason


def test_event_contract_is_accepted_as_is_with_extra_fields():
    e = parse_event('{"type":"ASSIGN","ts":1700000000000,"ip":"2001:DB8::1","app":"api",'
                    '"cluster":"api-prod","asg":"api-prod-v012","account":"123456789012",'
                    '"region":"us-east-1","zone":"us-east-1a","interface_id":"eni-1",'
                    '"resource_id":"i-1","kind":"instance","extra":"ignored"}')
    assert e.ip == "2001:db8::1" and e.owner[:3] == ("api", "api-prod", "api-prod-v012")
    assert parse_event('{"type":"HEARTBEAT","ts":5}') == MetaEvent(HEARTBEAT, 5)


def test_range_count_follows_apply_prune_and_load():
    index = index_of((ASSIGN, 0, "a", "x"), (ASSIGN, 100, "a", "y"), (ASSIGN, 200, "a", "z"),
                     (ASSIGN, 0, "b", "x"), (UNASSIGN, 50, "b", None))
    assert index.ranges() == 5
    index.prune(150)
    assert index.ranges() == sum(1 for ip in ("a", "b") for _ in
                                 (index._changes.get(ip) or ())) == 2
    index.load("c", index_of((ASSIGN, 0, "c", "x"), (ASSIGN, 9, "c", "w")).encode("c"))
    assert index.ranges() == 4


# Chunks: a record of many changelog lines must leave exactly what its lines one by one leave.

CHANGELOG = [
    '{"type":"ASSIGN","ts":1000,"ip":"10.0.0.1","app":"api"}',
    '{"type":"HEARTBEAT","ts":900}',
    'not json',
    '{"type":"ASSIGN","ts":5000,"ip":"10.0.0.2","app":"db"}',
    '{"type":"UNASSIGN","ts":5000,"ip":"10.0.0.1"}',
    '{"type":"ASSIGN","ts":5000,"ip":"10.0.0.1","app":"web"}',      # tie: after the UNASSIGN
    '{"type":"UNASSIGN","ts":3000,"ip":"10.0.0.2"}',                  # out of order, on time
    '{"type":"MOVE","ts":6000,"ip":"10.0.0.3"}',
    '{"type":"HEARTBEAT","ts":40000}',
    '{"type":"ASSIGN","ts":2000,"ip":"10.0.0.3","app":"late"}',      # behind the heartbeat
    '{"type":"ASSIGN","ts":41000,"ip":"10.0.0.300","app":"x"}',
    '[1, 2]',
    '{"type":"ASSIGN","ts":42000,"ip":"10.0.0.2","app":"db"}',
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
        chunk = parse_chunk(json.dumps(lines[i:i + size]))
        rejected += chunk.rejected
        if chunk.events:
            stamps.append(chunk.event_time_ms(SHIFT))
        chunk_counts, changed = apply_events(chunk.events, index, clock)
        for k, n in chunk_counts.items():
            counts[k] = counts.get(k, 0) + n
        for ip in changed:
            written[ip] = index.encode(ip)
    return index, clock, counts, rejected, stamps, written


def snapshot(index):
    assert len(index) == 3
    return {ip: index.encode(ip) for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3")}


@pytest.mark.parametrize("size", [1, 2, 3, 5, len(CHANGELOG) - 1, len(CHANGELOG), 100])
def test_chunks_of_any_size_give_what_the_lines_give_one_by_one(size):
    ref_index, ref_clock, ref_counts, ref_rejected, ref_stamps = one_by_one(CHANGELOG)
    index, clock, counts, rejected, stamps, written = in_chunks(CHANGELOG, size)
    assert snapshot(index) == snapshot(ref_index)
    # Every changed IP was handed back for writing, with its final changes.
    assert written == {ip: index.encode(ip) for ip in written} == snapshot(index)
    assert (clock.max_ts, clock.heartbeat) == (ref_clock.max_ts, ref_clock.heartbeat)
    assert counts == ref_counts == {"metadata_events": 9, "metadata_late": 1, "heartbeats": 2}
    assert rejected == ref_rejected
    assert [r for r, _ in rejected] == ["not_json", "unknown_type", "bad_address",
                                        "not_an_object"]
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
        assert app_at(index, "10.0.0.1", 5000) == "web"
        assert app_at(index, "10.0.0.2", 4000) is None and app_at(index, "10.0.0.2", 3000) is None


@pytest.mark.parametrize("record,lines", [
    ('{"type":"HEARTBEAT","ts":1}', ['{"type":"HEARTBEAT","ts":1}']),
    ('{"type":"HEARTBEAT","ts":1}\n\n{"type":"HEARTBEAT","ts":2}\r\n',
     ['{"type":"HEARTBEAT","ts":1}', '{"type":"HEARTBEAT","ts":2}\r']),
    ('["{\\"type\\":\\"HEARTBEAT\\",\\"ts\\":1}", "x"]', ['{"type":"HEARTBEAT","ts":1}', "x"]),
    ('[1, "x"]', ['[1, "x"]']),        # not a staged chunk: a line, dead-lettered as such
    ('[not json', ['[not json']),
    ('  \n', []),
])
def test_a_record_holds_one_or_many_lines(record, lines):
    assert changelog_lines(record) == lines


def test_a_stream_record_of_many_lines_parses_like_a_staged_chunk():
    text = parse_chunk("\n".join(CHANGELOG))
    staged = parse_chunk(json.dumps(CHANGELOG))
    assert text == staged and len(text.events) == 9 and len(text.rejected) == 4
    assert parse_chunk("").event_time_ms(SHIFT) is None
