"""When a flow group waiting for metadata is released (job.waiting), without a JVM."""
import pytest

from flowdredge.job.waiting import Waiting, next_poll

pytestmark = pytest.mark.unit

T0 = 1767225600   # 2026-01-01T00:00:00Z, epoch s
GROUP = Waiting(window_start=T0, max_start=T0 + 42, deadline=5_000_000)


def test_its_times_are_kept_as_the_text_savepoints_hold():
    assert GROUP.encode() == f"{T0} {T0 + 42} 5000000"
    assert Waiting.decode(GROUP.encode()) == GROUP


def test_a_group_that_came_late_is_kept_late_while_it_waits():
    late = GROUP._replace(late=True)
    assert Waiting.decode(late.encode()) == late and not Waiting.decode(GROUP.encode()).late
    assert Waiting.decode(late.restarted(9_000_000, 600_000).encode()).late
    # Three numbers still, as earlier releases read them: a rolled-back job restores it.
    assert Waiting(*map(int, late.encode().split())) == GROUP


def test_complete_metadata_releases_it_at_any_timer():
    assert GROUP.due(0, event_time=True, complete=True)
    assert GROUP.due(0, event_time=False, complete=True)


def test_an_event_time_timer_releases_it_once_the_watermark_reaches_its_latest_start():
    at = (T0 + 42) * 1000
    assert not GROUP.due(at - 1, event_time=True, complete=False)
    assert GROUP.due(at, event_time=True, complete=False)
    # The deadline is processing time: an event-time timer past it does not count.
    assert not GROUP.due(GROUP.deadline, event_time=True, complete=False)


def test_a_processing_time_timer_releases_it_at_its_max_wait():
    assert not GROUP.due(GROUP.deadline - 1, event_time=False, complete=False)
    assert GROUP.due(GROUP.deadline, event_time=False, complete=False)
    # Its latest start does not count for a processing-time timer.
    late_start = GROUP._replace(max_start=0)
    assert not late_start.due(GROUP.deadline - 1, event_time=False, complete=False)


def test_a_restored_group_waits_its_whole_max_wait_again_from_the_restart():
    restarted = GROUP.restarted(now_ms=9_000_000, max_wait_ms=600_000)
    assert restarted == Waiting(T0, T0 + 42, 9_600_000)
    assert not restarted.due(9_599_999, event_time=False, complete=False)


def test_checks_are_aligned_so_a_keys_groups_share_a_timer():
    assert next_poll(12_345, 1000) == 13_000
    assert next_poll(13_000, 1000) == 14_000
    assert {next_poll(t, 1000) for t in range(12_000, 13_000, 37)} == {13_000}
