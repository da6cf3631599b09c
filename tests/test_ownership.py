import pytest

from job.ownership import (MetadataClock, MetaEvent, MetaEventError, OwnershipIndex,
                           parse_event)
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
