"""The status line of `flowdredge run` (explore.health), from what the REST API answered; the
kinesis tier reads a running job's (test_kinesis_streams)."""
from collections import Counter

import pytest

from flowdredge.explore.health import READ_ERRORS, FailureWatch, Health, JobRest, status_line

pytestmark = pytest.mark.unit

NOW = 1_767_229_200.0   # 2026-01-01T01:00:00Z


def test_the_status_line_says_the_counts_rate_windows_lag_and_checkpoint():
    counts = Counter(flows_parsed=120_000, flows_aggregated=99_000, flows_late=1_000,
                     src_owned=150_000, dst_owned=40_000, dead_letter=3,
                     metadata_dead_letter=2)
    health = Health(counts, watermark_ms=int(NOW - 330) * 1000, consumer_lag_ms=2_500,
                    last_checkpoint_ms=int(NOW - 7) * 1000, restarts=1)
    line, mark = status_line(health, NOW, previous=(NOW - 60, 60_000, None))
    assert line == ("flows parsed 120,000 (1,000/s) | late 1,000 | dead letters 5 | attributed "
                    "95.0% | windows closed to 2026-01-01 00:54:30 UTC (5.5 min ago) | "
                    "consumer lag 2.5 s | last checkpoint 7 s ago | restarts 1")
    assert mark == (NOW, 120_000, (NOW, "95.0%"))


def test_a_first_line_or_one_after_a_restart_has_no_rate():
    """Flink's counters start again at a restart: a count below the last line's is no rate."""
    fresh = Health(Counter())
    line, _ = status_line(fresh, NOW)
    assert line == ("flows parsed 0 | late 0 | dead letters 0 | attributed n/a | no window "
                    "closed yet | consumer lag n/a | last checkpoint none yet | restarts 0")
    restarted = Health(Counter(flows_parsed=10), restarts=1)
    assert status_line(restarted, NOW, previous=(NOW - 60, 500, None))[0].startswith(
        "flows parsed 10 | late 0")


def test_with_no_flow_end_counted_the_line_says_the_last_share_read_and_its_age():
    """Every flow released by a timer (waiting for the changelog) and no input after: PyFlink
    counts them only at the attribution's next input, and the line said 'attributed n/a' with
    12,000 flows parsed; after a restart (counters at 0) too. The last share read is said with
    its age, and with none read yet, why there is none (a review)."""
    waited = Health(Counter(flows_parsed=12_000))
    line, mark = status_line(waited, NOW)
    assert "| attributed n/a (none counted yet: flows a timer releases count at the next " \
           "input) |" in line
    counted = Health(Counter(flows_parsed=12_000, flows_aggregated=1_000, src_owned=1_000))
    _, mark = status_line(counted, NOW + 60, mark)
    restarted = Health(Counter(flows_parsed=50), restarts=1)
    line, mark = status_line(restarted, NOW + 240, mark)
    assert "| attributed 50.0% (read 3.0 min ago) |" in line
    assert "| attributed 50.0% (read 4.0 min ago) |" in status_line(restarted, NOW + 300, mark)[0]


def test_ends_counted_none_owned_is_a_share_read_and_its_age_is_never_negative():
    """Flow ends counted and none owned is 0.0%, a share read (not the last one, nor none);
    a wall clock set back since it was read says it 0.0 min ago, not less."""
    line, mark = status_line(Health(Counter(flows_parsed=100, flows_aggregated=100)), NOW)
    assert "| attributed 0.0% |" in line
    line, _ = status_line(Health(Counter(flows_parsed=100)), NOW - 60, mark)
    assert "| attributed 0.0% (read 0.0 min ago) |" in line


class _Rest(JobRest):
    """The REST API's answers for a window operator whose subtasks have these watermarks."""

    def __init__(self, marks):
        super().__init__("http://unused", "j")
        self.marks = marks

    def get(self, path):
        if path == "/jobs/j":
            return {"vertices": [{"id": "v", "name": "WindowAggregate(...)"}]}
        return [{"id": f"{i}.currentInputWatermark", "value": str(m)}
                for i, m in enumerate(self.marks)]


@pytest.mark.unit
def test_a_watermark_before_any_event_time_is_no_window_closed():
    """At p2 before a window closed a review's status line said 'windows closed to 1969-12-31
    23:54:59 UTC (29,942,728.6 min ago)': a shard's first watermark less the out-of-orderness."""
    assert _Rest([-2**63, 1767225600000]).window_watermark_ms() is None
    assert _Rest([-300_001, 1767225600000]).window_watermark_ms() is None
    assert _Rest([1767225660000, 1767225600000]).window_watermark_ms() == 1767225600000


class _Lag(JobRest):
    """The REST API's answer for a flow stream's millisBehindLatest gauge."""

    def __init__(self, value):
        super().__init__("http://unused", "j")
        self.value = value

    def get(self, path):
        if path == "/jobs/j":
            return {"vertices": [{"id": "v", "name": "Source: flow stream"}]}
        return [{"id": "0.millisBehindLatest", "value": self.value}]


@pytest.mark.unit
@pytest.mark.parametrize("value", ["Infinity", "NaN", "soon"])
def test_a_metric_that_is_no_integer_is_no_status_not_a_traceback(value):
    """`flowdredge run` prints 'no status' for what READ_ERRORS holds; a gauge of Infinity
    raised OverflowError, which stopped the command with a traceback (a review)."""
    with pytest.raises(READ_ERRORS):
        _Lag(value).consumer_lag_ms()
    assert _Lag("2500.0").consumer_lag_ms() == 2500


def test_an_answer_cut_short_is_no_answer_not_a_traceback():
    """`flowdredge run` reads the exception history every second (and its status line): an
    answer whose connection closes before its body is whole (the REST API going as its
    mini-cluster ends) raised http.client.IncompleteRead, no OSError, which stopped the
    command with a traceback (a review)."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))

    def answer():
        for _ in range(2):
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n{\"exceptionHistory\": {\"ent")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    rest = JobRest(f"http://127.0.0.1:{server.getsockname()[1]}", "j")
    try:
        with pytest.raises(READ_ERRORS):
            rest.failures()
        assert rest.failure_traces() == []
    finally:
        thread.join(10)
        server.close()


_REFUSED = ("org.apache.flink.runtime.source.reader.fetcher.SplitFetcherException: fetch failed"
            "\nCaused by: java.net.ConnectException: Connection refused")
_FAILOVER = ("org.apache.flink.util.FlinkException: Global failure triggered by "
             "OperatorCoordinator for 'Source: flow stream f'.\nCaused by: java.lang."
             "UnsupportedOperationException: Partial recovery is not supported")
_UNWRITABLE = ("java.nio.file.FileSystemException: /out/counts/.c.inprogress: Operation "
               "not permitted")


class _History(JobRest):
    """A REST API whose exception history is each of `answers` in turn (newest first), or no
    answer where one is an exception."""

    def __init__(self, answers):
        super().__init__("http://127.0.0.1:9", "j")
        self.answers = iter(answers)

    def failures(self):
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_each_failure_is_said_once_oldest_first_and_a_cause_once_while_it_repeats():
    """What `flowdredge run` and the streaming demo say as a job restarts: the failures read
    since the last poll, oldest first; a cause once while it repeats, a failure that only
    followed from another (a Kinesis source's failover) breaking no repeat; none when the REST
    API does not answer (restarting), and those failures at the next answer."""
    import urllib.error
    watch = FailureWatch()
    rest = _History([
        [(11, _UNWRITABLE), (10, _REFUSED)],
        [(12, _FAILOVER), (11, _UNWRITABLE), (10, _REFUSED)],
        urllib.error.URLError("Connection refused"),
        [(14, _UNWRITABLE), (13, _REFUSED), (12, _FAILOVER), (11, _UNWRITABLE)],
        [(14, _UNWRITABLE), (13, _REFUSED), (12, _FAILOVER)],
        [(16, _UNWRITABLE), (15, _FAILOVER), (14, _UNWRITABLE)],
        [(17, _FAILOVER), (16, _UNWRITABLE)]])
    said = [watch.new_causes(rest) for _ in range(7)]
    refused = "java.net.ConnectException: Connection refused"
    assert said == [[refused, _UNWRITABLE], [], [], [refused, _UNWRITABLE], [], [], []]
    assert watch.last_trace == _UNWRITABLE   # what a job's end names: not the failover
