"""Flows wait for the metadata to be complete up to their start, and no longer than
`metadata.max_wait_seconds` (docs/design.md, "Waiting for metadata"): the decision of
AttributeFlows, then the release after the max wait in a running job."""
import gzip
import json
import time
from collections import Counter

import pytest
from pyflink.common import Row
from pyflink.datastream import TimeDomain

from helpers import read_records, total_counts
from operator_stubs import Runtime, changelog, group_row
from flowdredge.job.config import Config

T0 = 1767225600   # 2026-01-01T00:00:00Z
TIMEOUT_S = 300    # a loaded 2-core machine; every wait polls and returns as soon as it can


# --- the decision, without a JVM (operator_stubs) -------------------------------------------

def _outputs(emitted):
    """(partial aggregate rows as (src_app, dst_app, flows), summed counts)."""
    from flowdredge.job.flink.operators import COUNTS
    rows, counts = [], Counter()
    for item in emitted:
        if isinstance(item, Row):
            rows.append((item[1], item[3], item[8]))
        elif item[0] is COUNTS:
            counts.update({k: v for k, v in json.loads(item[1]).items() if k != "stage"})
    return rows, counts


CONFIG = Config().replace(metadata={"max_wait_seconds": 60, "poll_interval_ms": 1000,
                                    "out_of_orderness_seconds": 30},
                          outputs={"enriched": False, "security": False})


def _operator():
    from flowdredge.job.flink.operators import AttributeFlows
    op, rt = AttributeFlows(CONFIG), Runtime()
    op.open(rt)
    # Owners known since an hour before T0: the metadata clock stands at T0 - 3600 s - 30 s.
    known = (T0 - 3600) * 1000
    list(op.process_broadcast_element(changelog(("ASSIGN", known, "10.0.0.1", "api"),
                                                 ("ASSIGN", known, "10.0.0.2", "db")), rt))
    return op, rt


def _at(rt, domain, at):
    rt.domain = domain
    if domain == TimeDomain.PROCESSING_TIME:
        rt.now = at
    return rt


def _timer(op, rt, domain, at):
    return _outputs(op.on_timer(at, _at(rt, domain, at)))


@pytest.mark.unit
def test_a_snapshot_sets_owners_and_leaves_the_clock_to_the_stream():
    """A publisher's snapshot is in address order, each change dated when its address was
    taken: a recent one early in it moved the clock past flows whose owners came later in it
    (a review: 251 of 8,408 flow ends unattributed, a snapshot of 190,000 lines), and its
    lines counted as late metadata."""
    from flowdredge.job.flink.operators import AttributeFlows
    op, rt = AttributeFlows(CONFIG), Runtime()
    op.open(rt)
    rt.now = 1_000_000
    recent = changelog(("ASSIGN", (T0 + 70) * 1000, "10.0.0.9", "web"), from_snapshot=True)
    assert _outputs(op.process_broadcast_element(recent, rt)) == (
        [], Counter({"metadata_events": 1}))
    rows, counts = _outputs(op.process_element(group_row(T0 + 10), rt))
    assert rows == [] and counts == {"groups_waited": 1}
    older = changelog(("ASSIGN", (T0 - 3600) * 1000, "10.0.0.1", "api"),
                       ("ASSIGN", (T0 - 7200) * 1000, "10.0.0.2", "db"), from_snapshot=True)
    assert _outputs(op.process_broadcast_element(older, rt))[1] == {"metadata_events": 2}
    assert op.clock.watermark is None
    # The stream after the snapshot: its HEARTBEAT completes the changelog up to the flow.
    list(op.process_broadcast_element(changelog(("HEARTBEAT", (T0 + 20) * 1000, "", None)),
                                      rt))
    rows, counts = _timer(op, rt, TimeDomain.EVENT_TIME, (T0 + 10) * 1000)
    assert rows == [("api", "db", 1)] and counts["groups_after_max_wait"] == 0


@pytest.mark.unit
@pytest.mark.parametrize("snapshot_first,arrival,from_snapshot", [
    (True, None, True), (True, 1_767_225_600_000, False), (False, None, False)])
def test_changelog_records_without_an_arrival_time_are_the_snapshot_s(snapshot_first, arrival,
                                                                      from_snapshot):
    from flowdredge.job.codec import decode_events
    from flowdredge.job.flink.operators import ParseMetadataEvents
    op = ParseMetadataEvents(CONFIG, "metadata", snapshot_first)
    op.open(Runtime())
    ctx = type("Context", (), {"timestamp": lambda self: arrival})()
    line = json.dumps({"type": "ASSIGN", "ts": T0 * 1000, "ip": "10.0.0.1", "app": "api"})
    (payload, timestamp), = op.process_element(line, ctx)
    assert decode_events(payload)[1] is from_snapshot
    # A snapshot's chunk holds the changelog's watermark where it is.
    assert timestamp == (0 if from_snapshot else T0 * 1000)


@pytest.mark.unit
def test_a_group_waits_for_the_metadata_and_is_released_at_the_max_wait():
    op, rt = _operator()
    rt.now = 1_000_000
    rows, counts = _outputs(op.process_element(group_row(T0 + 10), rt))
    assert rows == [] and counts == {"groups_waited": 1}
    assert rt.event_timers == {(T0 + 10) * 1000}
    assert rt.processing_timers == {1_001_000}
    # Polled a second before the deadline (1,000,000 + 60 s), the metadata still incomplete:
    # it waits for the next poll.
    assert _timer(op, rt, TimeDomain.PROCESSING_TIME, 1_059_000) == ([], Counter())
    assert 1_060_000 in rt.processing_timers
    rows, counts = _timer(op, rt, TimeDomain.PROCESSING_TIME, 1_060_000)
    assert rows == [("api", "db", 1)]
    assert counts == {"groups_after_max_wait": 1, "flows_after_max_wait": 1, "src_owned": 1,
                      "dst_owned": 1, "flows_aggregated": 1}
    assert all(state == {} for state in rt.states.values() if isinstance(state, dict))


@pytest.mark.unit
def test_a_waiting_group_keeps_its_times_apart_so_timers_read_only_them():
    from flowdredge.job.flink.operators import PENDING_GROUPS, PENDING_TIMES
    op, rt = _operator()
    rt.now = 1_000_000
    row = group_row(T0 + 10)
    list(op.process_element(row, rt))
    (seq, payload), = rt.states[PENDING_GROUPS.name].items()
    assert payload == row[3]
    assert rt.states[PENDING_TIMES.name] == {seq: f"{T0} {T0 + 10} 1060000"}


@pytest.mark.unit
def test_groups_waiting_in_an_earlier_releases_savepoint_are_moved_and_released():
    # Before, a waiting group was one value: "window_start max_start deadline\n" + group. A
    # savepoint brings such groups back with their timers; they are released as always.
    from flowdredge.job.flink.operators import PENDING_BOTH, PENDING_GROUPS, PENDING_TIMES
    op, rt = _operator()
    rt.now = 1_000_000
    early, later = group_row(T0 + 10), group_row(T0 + 70)
    rt.states[PENDING_BOTH.name].update({
        7: f"{T0} {T0 + 10} 1060000\n".encode() + early[3],
        8: f"{T0 + 60} {T0 + 70} 1060000\n".encode() + later[3]})
    rt.watermark = (T0 + 10) * 1000
    rows, _ = _timer(op, rt, TimeDomain.EVENT_TIME, (T0 + 10) * 1000)
    assert rows == [("api", "db", 1)]
    assert rt.states[PENDING_BOTH.name] == {}
    assert rt.states[PENDING_TIMES.name] == {8: f"{T0 + 60} {T0 + 70} 1060000"}
    rows, counts = _timer(op, rt, TimeDomain.PROCESSING_TIME, 1_060_000)
    assert rows == [("api", "db", 1)] and counts["groups_after_max_wait"] == 1
    assert rt.states[PENDING_GROUPS.name] == {} == rt.states[PENDING_TIMES.name]


@pytest.mark.unit
def test_a_group_is_released_when_the_metadata_is_complete_for_it():
    op, rt = _operator()
    rt.now = 1_000_000
    assert _outputs(op.process_element(group_row(T0 + 10), rt))[0] == []
    # A heartbeat one second short of the group's start: still waiting.
    list(op.process_broadcast_element(changelog(("HEARTBEAT", (T0 + 9) * 1000, "", None)), rt))
    assert _timer(op, rt, TimeDomain.PROCESSING_TIME, 1_001_000) == ([], Counter())
    list(op.process_broadcast_element(changelog(("HEARTBEAT", (T0 + 10) * 1000, "", None)), rt))
    rows, counts = _timer(op, rt, TimeDomain.PROCESSING_TIME, 1_002_000)
    assert rows == [("api", "db", 1)] and counts["groups_after_max_wait"] == 0
    # Once complete, a group is attributed as it arrives.
    rows, counts = _outputs(op.process_element(group_row(T0 + 5), rt))
    assert rows == [("api", "db", 1)] and counts["groups_waited"] == 0


@pytest.mark.unit
def test_the_watermark_passing_a_group_releases_it():
    # The operator's watermark is the minimum of the flows' and the changelog's: it reaching
    # the group's start means the metadata is complete for it.
    op, rt = _operator()
    rt.now = 1_000_000
    assert _outputs(op.process_element(group_row(T0 + 10), rt))[0] == []
    rt.watermark = (T0 + 10) * 1000 - 1
    assert _timer(op, rt, TimeDomain.EVENT_TIME, (T0 + 10) * 1000 - 1) == ([], Counter())
    rt.watermark = (T0 + 10) * 1000
    rows, counts = _timer(op, rt, TimeDomain.EVENT_TIME, (T0 + 10) * 1000)
    assert rows == [("api", "db", 1)] and counts["groups_after_max_wait"] == 1


@pytest.mark.unit
def test_after_a_restore_a_tick_registers_again_the_timers_of_the_keys_waiting_groups():
    # A checkpoint can hold waiting groups without their timers (ParseFlowRecords._ticks): the
    # restored key gets them again from the tick every parse instance sends first.
    op, rt = _operator()
    rt.now = 1_000_000
    list(op.process_element(group_row(T0 + 10), rt))
    list(op.process_element(group_row(T0 + 70), rt))
    rt.event_timers.clear()
    rt.processing_timers.clear()
    tick = Row(0, 0, 0, b"", 0)
    rt.now = 1_000_500
    assert _outputs(op.process_element(tick, rt)) == ([], Counter())
    assert rt.event_timers == {(T0 + 10) * 1000, (T0 + 70) * 1000}
    assert rt.processing_timers == {1_001_000}
    rt.watermark = (T0 + 10) * 1000
    rows, _ = _timer(op, rt, TimeDomain.EVENT_TIME, (T0 + 10) * 1000)
    assert rows == [("api", "db", 1)]


@pytest.mark.unit
def test_a_restored_timer_firing_first_attributes_with_the_restored_ownership():
    from flowdredge.job.flink.operators import AttributeFlows
    op, rt = _operator()
    rt.now = 1_000_000
    list(op.process_element(group_row(T0 + 10), rt))
    restored = AttributeFlows(CONFIG)
    restored.open(rt)   # the same keyed and broadcast state, nothing loaded yet
    # The restored poll fires first: the group's wait starts again (below), then ends.
    assert _timer(restored, rt, TimeDomain.PROCESSING_TIME, 1_060_000) == ([], Counter())
    rows, counts = _timer(restored, rt, TimeDomain.PROCESSING_TIME, 1_120_000)
    assert rows == [("api", "db", 1)] and counts["groups_after_max_wait"] == 1


@pytest.mark.unit
@pytest.mark.parametrize("first", ["tick", "timer"])
def test_after_a_long_stop_restored_groups_wait_again_for_the_changelog(first):
    # Stopped for longer than the max wait: the restored deadline has passed. Released at the
    # first poll, the group would go out unattributed before the changelog, read again from
    # the checkpoint, caught up; it waits its max wait again from the restart instead.
    from flowdredge.job.flink.operators import PENDING_TIMES, AttributeFlows
    op, rt = _operator()
    rt.now = 1_000_000
    list(op.process_element(group_row(T0 + 10), rt))
    restored = AttributeFlows(CONFIG)
    restored.open(rt)
    rt.now = 5_000_000
    if first == "tick":
        assert _outputs(restored.process_element(Row(0, 0, 0, b"", 0), rt)) == ([], Counter())
    assert _timer(restored, rt, TimeDomain.PROCESSING_TIME, 5_001_000) == ([], Counter())
    restarted = 5_000_000 if first == "tick" else 5_001_000   # the key's first call
    assert list(rt.states[PENDING_TIMES.name].values()) == [
        f"{T0} {T0 + 10} {restarted + 60_000}"]
    assert restored.pending_groups == 1
    list(restored.process_broadcast_element(
        changelog(("HEARTBEAT", (T0 + 10) * 1000, "", None)), rt))
    rows, counts = _timer(restored, rt, TimeDomain.PROCESSING_TIME, 5_002_000)
    assert rows == [("api", "db", 1)] and counts["groups_after_max_wait"] == 0
    assert restored.pending_groups == 0


@pytest.mark.unit
def test_the_ticks_come_first_and_once_one_per_attribution_key():
    from flowdredge.job.flink.operators import ParseFlowRecords
    op, rt = ParseFlowRecords(Config().replace(job={"attribution_keys": 3})), Runtime()
    op.open(rt)
    first = [item for item in op.process_element("not a record", rt)]
    assert first[:3] == [(Row(key, Row(0, 0, 0, b"", 0)), 0) for key in range(3)]
    assert not any(isinstance(item, tuple) and isinstance(item[0], Row) for item in first[3:])
    again = list(op.process_element("not a record", rt))
    assert not any(isinstance(item, tuple) and isinstance(item[0], Row) for item in again)


@pytest.mark.unit
def test_a_shard_batch_of_repeats_only_is_counted_and_moves_no_shard():
    """A batch holding only records their producer wrote twice (connectors/jvm RawRecords):
    counted as read and repeated, no flow group, and its shard not heard from (job.shards)."""
    from flowdredge.job.flink.operators import COUNTS, ParseFlowRecords
    op, rt = ParseFlowRecords(Config().replace(job={"attribution_keys": 1})), Runtime()
    op.open(rt)
    emitted = list(op.process_element(
        Row("arn:aws:kinesis:us-east-1:123456789012:stream/flows", "shardId-0", [], 3), rt))
    groups = [item for item in emitted if isinstance(item, tuple) and isinstance(item[0], Row)]
    assert groups == [(Row(0, Row(0, 0, 0, b"", 0)), 0)]   # the start's tick only
    counts = [json.loads(line) for tag, line in emitted if tag is COUNTS]
    assert counts == [{"stage": "parse", "records_in": 3, "records_repeated": 3}]
    assert len(op.shards) == 0


@pytest.mark.unit
def test_a_group_released_after_the_watermark_passed_its_window_is_counted_late():
    # Its event-time timer lost, a waiting group can outlive its window; the window downstream
    # would drop it uncounted, so it goes to the late output.
    from flowdredge.job.flink.operators import LATE
    op, rt = _operator()
    rt.now = 1_000_000
    list(op.process_element(group_row(T0 + 10), rt))
    rt.watermark = (T0 + 60) * 1000
    list(op.process_broadcast_element(changelog(("HEARTBEAT", (T0 + 60) * 1000, "", None)), rt))
    emitted = list(op.on_timer(1_001_000, _at(rt, TimeDomain.PROCESSING_TIME, 1_001_000)))
    rows, counts = _outputs(emitted)
    assert rows == [] and counts["flows_late"] == 1 and counts["flows_aggregated"] == 0
    assert counts["groups_after_max_wait"] == 0
    assert [json.loads(line)["window_start"] for tag, line in emitted if tag is LATE] == [T0]


@pytest.mark.unit
def test_a_late_group_waits_for_its_owners_and_goes_to_the_late_output():
    # The flows' event time ran ahead (a group at T0 + 600), so a group at T0 + 10 is late; the
    # metadata clock is behind both, and 10.0.0.1 changes owner at T0 + 5, a change not in yet.
    # Attributed at once, the late flow went to the late output with the old owner.
    from flowdredge.job.flink.operators import LATE
    op, rt = _operator()
    rt.now = 1_000_000
    assert _outputs(op.process_element(group_row(T0 + 600), rt)) == (
        [], Counter(groups_waited=1))
    emitted = list(op.process_element(group_row(T0 + 10), rt))
    assert _outputs(emitted) == ([], Counter(groups_waited=1))
    list(op.process_broadcast_element(changelog(("ASSIGN", (T0 + 5) * 1000, "10.0.0.1", "web"),
                                                 ("HEARTBEAT", (T0 + 30) * 1000, "", None)), rt))
    emitted = list(op.on_timer(1_001_000, _at(rt, TimeDomain.PROCESSING_TIME, 1_001_000)))
    rows, counts = _outputs(emitted)
    assert rows == [] and counts["flows_late"] == 1 and counts["groups_after_max_wait"] == 0
    assert [json.loads(line)["src_app"] for tag, line in emitted if tag is LATE] == ["web"]
    assert op.pending_groups == 1   # the group at T0 + 600, still waiting and on time
    # Another late group, whose owners never come: released at the max wait with the one on
    # time, both counted so.
    list(op.process_element(group_row(T0 + 40), rt))
    emitted = list(op.on_timer(1_061_000, _at(rt, TimeDomain.PROCESSING_TIME, 1_061_000)))
    rows, counts = _outputs(emitted)
    assert rows == [("web", "db", 1)] and counts["flows_late"] == 1
    assert counts["groups_after_max_wait"] == counts["flows_after_max_wait"] == 2


@pytest.mark.unit
def test_after_a_restore_groups_of_windows_the_watermark_had_passed_are_counted_late():
    # The window operator downstream restores its watermark and would drop their rows
    # uncounted; the restored attribution starts from none, and takes the highest its keys saw.
    from flowdredge.job.flink.operators import AttributeFlows
    op, rt = _operator()
    list(op.process_broadcast_element(changelog(("HEARTBEAT", (T0 + 600) * 1000, "", None)), rt))
    rt.watermark = (T0 + 120) * 1000
    assert _outputs(op.process_element(group_row(T0 + 130), rt))[0] == [("api", "db", 1)]
    restored = AttributeFlows(CONFIG)
    restored.open(rt)   # the same keyed and broadcast state
    rt.watermark = -2**63
    list(restored.process_element(Row(0, 0, 0, b"", 0), rt))
    rows, counts = _outputs(restored.process_element(group_row(T0 + 10), rt))
    assert rows == [] and counts["flows_late"] == 1
    assert _outputs(restored.process_element(group_row(T0 + 130), rt))[0] == [("api", "db", 1)]


def _security_operator():
    from flowdredge.job.flink.operators import AttributeFlows
    op, rt = AttributeFlows(CONFIG.replace(outputs={"security": True})), Runtime()
    op.open(rt)
    list(op.process_broadcast_element(changelog(("ASSIGN", (T0 - 3600) * 1000, "10.0.0.1", "api"),
                                                 ("ASSIGN", (T0 - 3600) * 1000, "10.0.0.2", "db"),
                                                 ("HEARTBEAT", (T0 + 600) * 1000, "", None)), rt))
    return op, rt


def _security_batches(emitted) -> list:
    from flowdredge.job.flink.operators import CONVERSATIONS
    return [(row[0], bool(row[1])) for tag, row in
            (item for item in emitted if isinstance(item, tuple)) if tag is CONVERSATIONS]


@pytest.mark.unit
def test_after_a_restore_a_tick_sends_an_empty_security_batch_to_each_window_still_open():
    # CloseWindows' close timers are registered as the attribution's are: a checkpoint can hold
    # a window's batches without its timer. The keys that sent batches send, after a restore,
    # an empty one to each window the watermark had not passed, so the timer is registered again.
    from flowdredge.job.flink.operators import AttributeFlows
    op, rt = _security_operator()
    rt.watermark = T0 * 1000
    assert _security_batches(op.process_element(group_row(T0 + 10), rt)) == [(T0, True)]
    assert _security_batches(op.process_element(group_row(T0 + 20), rt)) == [(T0, True)]
    assert _security_batches(op.process_element(group_row(T0 + 70), rt)) == [(T0 + 60, True)]
    rt.watermark = (T0 + 60) * 1000   # the first window closed downstream
    assert _security_batches(op.process_element(group_row(T0 + 130), rt)) == [
        (T0 + 120, True)]
    restored = AttributeFlows(CONFIG.replace(outputs={"security": True}))
    restored.open(rt)   # the same keyed and broadcast state
    tick = Row(0, 0, 0, b"", 0)
    assert _security_batches(restored.process_element(tick, rt)) == [(T0 + 60, False),
                                                                     (T0 + 120, False)]


@pytest.mark.unit
def test_without_the_security_views_a_tick_sends_no_security_batch():
    op, rt = _operator()
    list(op.process_element(group_row(T0 + 10), rt))
    assert _security_batches(op.process_element(Row(0, 0, 0, b"", 0), rt)) == []


def _close_windows():
    from flowdredge.job.flink.security import CloseWindows

    class Key(Runtime):
        def get_current_key(self):
            return T0

    op, rt = CloseWindows(Config()), Key()
    op.open(rt)
    return op, rt


@pytest.mark.unit
def test_an_empty_security_batch_registers_the_windows_close_timer_and_adds_nothing():
    from flowdredge.job.codec import encode_views
    from flowdredge.job.flink.security import BATCHES, TABLES
    from flowdredge.job.security import WindowViews
    op, rt = _close_windows()
    op.process_element(b"", rt)
    assert rt.event_timers == {(T0 + 60) * 1000 - 1} and rt.states[BATCHES.name] == []
    # A window closed before: its timer, registered again, emits nothing.
    assert list(op.on_timer((T0 + 60) * 1000 - 1, rt)) == []
    views = WindowViews.of_sets({("api", "db", 5432, 6): [1, 1, 100, {"10.0.0.1": None},
                                                         {"10.0.0.2": None}]}, {}, {}, {}, [])
    op.process_element(encode_views(views), rt)
    op.process_element(b"", rt)
    emitted = list(op.on_timer((T0 + 60) * 1000 - 1, rt))
    dependencies = [item[1] for item in emitted if isinstance(item, tuple)
                    and item[0] is TABLES[0][3]]
    assert len(dependencies) == 1 and '"client_app":"api"' in dependencies[0].replace(" ", "")
    assert rt.states[BATCHES.name] == []


# --- the release in a running job -----------------------------------------------------------

@pytest.mark.minicluster
@pytest.mark.parametrize("parallelism", [1, 2])
def test_flows_are_released_after_the_max_wait_when_the_metadata_stays_behind(tmp_path,
                                                                              parallelism):
    """The changelog stops an hour before the flows and the inputs never end (followed files):
    only the max wait can release the flows, attributed with what is known."""
    from flowdredge.job.flink.run import files_job
    from flowdredge.job.replay import stage_flows, stage_metadata

    flows = tmp_path / "flows"
    flows.mkdir()
    starts = [T0 + 10, T0 + 20, T0 + 70]   # two windows: two groups
    lines = [f"2 123456789012 eni-a 10.0.0.1 10.0.0.2 40000 5432 6 1 100 {s} {s + 5} ACCEPT OK"
             for s in starts]
    with gzip.open(flows / "x_vpcflowlogs_us-east-1_fl-1_20260101T0005Z_0001.log.gz",
                   "wt") as fh:
        fh.write("version account-id interface-id srcaddr dstaddr srcport dstport protocol "
                 "packets bytes start end action log-status\n" + "\n".join(lines) + "\n")
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(
        f'{{"type":"ASSIGN","ts":{(T0 - 3600) * 1000},"ip":"{ip}","app":"{app}"}}\n'
        for ip, app in (("10.0.0.1", "api"), ("10.0.0.2", "db"))))
    stage_flows([str(flows)], str(tmp_path / "flows.txt"), 5000)
    stage_metadata([str(meta)], str(tmp_path / "meta-staged.jsonl"))

    config = Config().replace(job={"parallelism": parallelism, "checkpoint_interval_seconds": 1},
                              metadata={"max_wait_seconds": 2, "poll_interval_ms": 200},
                              outputs={"enriched": True, "security": False})
    output = str(tmp_path / "out")
    env = files_job(config, str(tmp_path / "flows.txt"), str(tmp_path / "meta-staged.jsonl"),
                    output, follow_seconds=1)
    client = env.execute_async("flowdredge max wait test")
    try:
        counts = _wait_for_counts(client, output, lambda c: c["flows_aggregated"] == 3)
        enriched = [(r["start"], r["src_app"], r["dst_app"])
                    for r in _wait_for_records(client, output, "enriched", 3)]
    finally:
        client.cancel().result()
    assert (counts["groups_waited"], counts["groups_after_max_wait"]) == (2, 2)
    assert sorted(enriched) == [(s, "api", "db") for s in starts]


def _wait_for_counts(client, output, done, timeout_s=TIMEOUT_S):
    """The committed counts once `done` holds for them; fails if the job stops first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = total_counts(output)
        if done(counts):
            return counts
        _ensure_running(client)
        time.sleep(0.5)
    raise AssertionError(f"counts never got there: {dict(total_counts(output))}")


def _wait_for_records(client, output, name, n, timeout_s=TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = list(read_records(output, name))
        if len(records) >= n:
            return records
        _ensure_running(client)
        time.sleep(0.5)
    raise AssertionError(f"{name}: {len(list(read_records(output, name)))} records, not {n}")


def _ensure_running(client):
    status = client.get_job_status().result().name
    assert status in ("CREATED", "INITIALIZING", "RUNNING"), f"job is {status}"
