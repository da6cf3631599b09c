"""Per-shard event time (job.shards), pure Python; and the shards ParseFlowRecords keeps it
for, driven without a JVM (operator_stubs)."""
import pytest
from pyflink.common import Row

from operator_stubs import Runtime
from flowdredge.job.config import Config
from flowdredge.job.flink.operators import ParseFlowRecords
from flowdredge.job.shards import ShardClock
from flowdredge.schemas.cloudwatch import record

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


# Every Kinesis stream names its first shard shardId-000000000000: the parse keys each shard's
# clock by stream and shard, or two streams' first shards would be one.
STREAMS = ("arn:aws:kinesis:us-east-1:123456789012:stream/flows-a",
           "arn:aws:kinesis:us-east-1:123456789012:stream/flows-b")
FIRST_SHARD = "shardId-000000000000"
T0 = 1767225600   # 2026-01-01T00:00:00Z


def _event_times(op, rt, stream, start):
    """The event times ParseFlowRecords stamps on the flow groups of a batch of `stream`'s
    first shard holding one flow starting at `start`."""
    line = f"2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 {start} {start + 5} ACCEPT OK"
    data = record([("0", start * 1000, line)], compresslevel=1, owner="123456789012",
                  log_group="flows", log_stream="eni-1")
    batch = Row(stream, FIRST_SHARD, [Row(data, "1", None)], 0)
    groups = [out for out in op.process_element(batch, rt) if isinstance(out[0], Row)]
    # The start's ticks carry no payload.
    return [time for (_key, group), time in groups if group[3]]


@pytest.mark.parametrize("expected", [(), [(stream, FIRST_SHARD) for stream in STREAMS]])
def test_first_shards_of_two_streams_hold_event_time_apart(expected):
    op, rt = ParseFlowRecords(Config(), expected_shards=expected), Runtime()
    op.open(rt)
    first = _event_times(op, rt, STREAMS[0], T0 + 1000)
    assert first == [0 if expected else (T0 + 1000) * 1000]
    # B's shard is behind A's: it holds event time back, and once both are heard from,
    # event time moves.
    assert _event_times(op, rt, STREAMS[1], T0 + 400) == [(T0 + 400) * 1000]
