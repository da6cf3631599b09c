"""`scripts/demo --streaming` (synthetic.demo): the local Kinesis, the producer and the streaming
job end to end, as a user first runs it, shortened."""
import pytest

from helpers import job_aggregates, total_counts
from flowdredge.job.config import Config
from flowdredge.synthetic.demo import DemoOptions, run_demo, too_short


@pytest.mark.unit
def test_a_demo_too_short_to_close_a_window_says_so():
    config = Config()   # out-of-orderness 300 s, windows of 60 s
    assert "use --minutes 7 or more" in too_short(5, config)
    assert too_short(6, config) is None


@pytest.mark.kinesis
def test_the_stream_demo_runs_and_closes_windows(tmp_path, capsys):
    lines = []
    output = str(tmp_path / "demo")
    options = DemoOptions(output, rate=4000, minutes=8, report_seconds=5)
    # Aggregates files rolled every 5 s, not every minute: the demo waits for them.
    config = Config().replace(outputs={"aggregates_rollover_seconds": 5})
    assert run_demo(config, options, lines.append) == 0
    assert any("every record written was read" in line for line in lines), lines
    counts = total_counts(output)
    assert counts["flows_parsed"] == 8 * 2 * options.rate and counts["dead_letter"] == 0
    # Event time reaches past the first minutes only: those windows are committed.
    windows = {key[0] for key in job_aggregates(output)}
    assert len(windows) >= 2, lines
    assert "top app -> app edges by bytes" in capsys.readouterr().out
