"""Per-shard event time (job.shards), pure Python."""
import pytest

from flowdredge.job.shards import ShardClock

pytestmark = pytest.mark.unit


def test_the_slowest_active_shard_holds_event_time():
    clock = ShardClock(idle_ms=60_000)
    assert clock.observe("a", 1_000_000, now_ms=0) == 1_000_000
    assert clock.observe("b", 400_000, now_ms=10) == 400_000
    # a moves on; b, still active, holds event time back.
    assert clock.observe("a", 2_000_000, now_ms=20) == 400_000
    assert clock.observe("b", 500_000, now_ms=30) == 500_000


def test_an_older_record_does_not_move_a_shard_back():
    clock = ShardClock(idle_ms=60_000)
    clock.observe("a", 1_000_000, now_ms=0)
    assert clock.observe("a", 900_000, now_ms=1) == 1_000_000


def test_a_quiet_shard_stops_holding_event_time_after_the_idle_time():
    clock = ShardClock(idle_ms=60_000)
    clock.observe("quiet", 100_000, now_ms=0)
    assert clock.observe("busy", 900_000, now_ms=59_999) == 100_000
    assert clock.observe("busy", 950_000, now_ms=60_001) == 950_000
    assert len(clock) == 1
    # Heard from again, it holds event time back again.
    assert clock.observe("quiet", 200_000, now_ms=60_002) == 200_000


def test_expected_shards_hold_event_time_until_heard_from_or_idle():
    clock = ShardClock(idle_ms=60_000, expected=["a", "b"])
    # One reader takes a's backlog first: b's flows, older, must not become late.
    assert clock.observe("a", 2_000_000, now_ms=0) is None
    assert clock.observe("a", 2_100_000, now_ms=100) is None
    assert clock.observe("b", 1_000_000, now_ms=200) == 1_000_000
    # An expected shard that never sends stops holding event time once idle.
    clock = ShardClock(idle_ms=60_000, expected=["a", "gone"])
    assert clock.observe("a", 2_000_000, now_ms=0) is None
    assert clock.observe("a", 2_100_000, now_ms=60_001) == 2_100_000
