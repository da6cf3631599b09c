"""`scripts/demo --streaming` (synthetic.demo): the local Kinesis, the producer and the streaming
job end to end, as a user first runs it, shortened."""
import os
import re

import pytest

from helpers import (ctrl_c_as_in_a_terminal, job_aggregates, job_running_then,
                     rest_with_failures, subprocess_env, total_counts)
from flowdredge.job.config import Config
from flowdredge.synthetic.demo import DemoOptions, run_demo, too_short


@pytest.fixture
def server_installed(monkeypatch):
    """The demo's unit tests stand in for kinesis-local: they need not have it installed (the
    demo checks before it touches its output folder)."""
    from flowdredge.synthetic import demo
    monkeypatch.setattr(demo, "check_installed", lambda: None)


@pytest.mark.unit
def test_a_demo_too_short_to_close_a_window_says_so():
    config = Config()   # out-of-orderness 300 s, windows of 60 s
    assert "use --minutes 11 or more" in too_short(8, config)
    assert too_short(10, config) is not None
    assert too_short(11, config) is None


class ShardedKinesis:
    """Kinesis as the demo's writer uses it: streams of evenly split shards, a record in the
    shard of its ExplicitHashKey, else of its partition key's MD5, as AWS places them."""

    def __init__(self):
        self.streams = {}   # name -> [records of each shard]

    def create_stream(self, StreamName, ShardCount):
        self.streams[StreamName] = [[] for _ in range(ShardCount)]

    def describe_stream_summary(self, StreamName):
        return {"StreamDescriptionSummary": {"StreamStatus": "ACTIVE", "StreamARN": StreamName}}

    def list_shards(self, StreamName):
        n = len(self.streams[StreamName])
        return {"Shards": [{"ShardId": f"shardId-{i:012d}",
                            "HashKeyRange": {"StartingHashKey": str(i * 2**128 // n)}}
                           for i in range(n)]}

    def put_records(self, Records, StreamName):
        import hashlib
        shards = self.streams[StreamName]
        for entry in Records:
            key = int(entry.get("ExplicitHashKey") or
                      int(hashlib.md5(entry["PartitionKey"].encode()).hexdigest(), 16))
            shards[key * len(shards) >> 128].append(entry["Data"])
        return {"FailedRecordCount": 0, "Records": [{} for _ in Records]}


@pytest.mark.unit
def test_the_demos_traffic_at_a_low_rate_closes_windows_once_read_at_once(tmp_path):
    """`--minutes 12 --rate 300` closed no window: hashed by their keys, the few records of
    a delivery (5 on the second stream's 4 shards) left a shard with flows of the first
    delivery only, and the job, reading every record within kinesis.shard_idle_seconds, held
    event time (the slowest shard's latest flow start) there. Spread over the shards in turn,
    every shard has flows of every delivery but the last."""
    import gzip
    import json
    from flowdredge.synthetic.demo import demo_writer
    from flowdredge.synthetic.estate import Scenario
    from flowdredge.synthetic.kinesis import Estate
    # The demo's estate at --rate 300 (its fewest flows) of a start whose keys left a shard out.
    scenario = Scenario(start=1796621040, minutes=12, flows_per_minute=600)
    estate = Estate(str(tmp_path / "inputs"), scenario)
    kinesis = ShardedKinesis()
    writer = demo_writer(kinesis, estate, rate=None, sleep=None)
    writer.deliver(estate.deliveries)
    starts = [max(int(event["message"].split()[10]) for record in shard
                  for event in json.loads(gzip.decompress(record))["logEvents"])
              for name, shards in kinesis.streams.items() if "flows" in name
              for shard in shards]
    config = Config()
    event_time = min(starts) - config.flows.out_of_orderness_seconds
    assert (event_time - scenario.start) // config.job.window_seconds >= 4, starts
    assert too_short(scenario.minutes, config) is None


@pytest.mark.unit
def test_a_progress_line_gives_the_rate_of_its_interval(monkeypatch):
    """The rate was an average since the start: a stalled job showed 119/s, 59/s, 40/s."""
    from collections import Counter
    from types import SimpleNamespace
    from flowdredge.synthetic import demo
    parsed = iter([6000, 6000])
    monkeypatch.setattr(demo, "total_counts", lambda output: Counter(flows_parsed=next(parsed)))
    monkeypatch.setattr(demo.time, "monotonic", iter([110.0, 120.0]).__next__)
    writer = SimpleNamespace(flows_written=6000)
    rest = demo.JobRest("http://127.0.0.1:9", "job")   # nothing there: the lag is n/a
    line, since = demo._report_line("out", rest, writer, 9000, (100.0, 5000), 2)
    assert "flows in 6,000 (100/s)" in line and since == (110.0, 6000)
    line, since = demo._report_line("out", rest, writer, 9000, since, 2)
    assert "flows in 6,000 (0/s)" in line and "consumer lag n/a" in line

@pytest.mark.kinesis
def test_the_stream_demo_runs_and_closes_windows(tmp_path, capsys):
    lines = []
    output = str(tmp_path / "demo")
    # 10 minutes of event time against an out-of-orderness of 5: the first minutes' windows
    # close even when a shard lags (at 8 a clean-clone CI run closed none, once in thirteen).
    options = DemoOptions(output, rate=4000, minutes=10, report_seconds=5)
    # Aggregates files rolled every 5 s, not every minute: the demo waits for them.
    config = Config().replace(outputs={"aggregates_rollover_seconds": 5})
    assert run_demo(config, options, lines.append) == 0
    [read] = [line for line in lines
              if "every record and changelog event written was read" in line]
    counts = total_counts(output)
    assert counts["flows_parsed"] == options.minutes * 2 * options.rate
    assert counts["dead_letter"] == 0
    # The whole changelog (snapshot and changes) was read before the demo stopped the job.
    with open(os.path.join(output, "inputs", "metadata", "changelog.jsonl")) as fh:
        assert counts["metadata_events"] == sum(1 for line in fh if line.strip())
    # Event time reaches past the first minutes only: the windows the demo says closed are
    # committed. How many varies with the reads' timing (event time is the slowest shard's,
    # until a shard is judged idle).
    closed = int(re.search(r"windows closed: (\d+)", read).group(1))
    windows = {key[0] for key in job_aggregates(output)}
    assert len(windows) >= closed >= 1, lines[-3:]
    assert "top app -> app edges by bytes" in capsys.readouterr().out


@pytest.mark.kinesis
def test_flowdredge_run_reads_the_streams_of_a_demo_without_a_job(tmp_path):
    """`flowdredge stream-demo --no-job` keeps the local Kinesis up with the traffic written;
    the `flowdredge run` command it prints, run as printed, reads every flow of it. Both are
    processes of their own, stopped with Ctrl-C as in a terminal."""
    import shlex
    import signal
    import subprocess
    import sys
    import time
    demo_dir = tmp_path / "demo"
    # Every flow read is what is asserted, no window: 4 minutes of traffic (8 s of writing).
    demo = subprocess.Popen(
        [sys.executable, "-m", "flowdredge.cli", "stream-demo", "--no-job", "--output",
         str(demo_dir), "--minutes", "4", "--rate", "4000"],
        stderr=subprocess.PIPE, text=True, start_new_session=True, env=subprocess_env(),
        preexec_fn=ctrl_c_as_in_a_terminal)
    run = None
    try:
        lines = []
        for line in demo.stderr:
            lines.append(line)
            if "flows written; the local Kinesis stays up" in line:
                break
        text = "".join(lines)
        written = int(re.search(r"all ([\d,]+) flows written", text).group(1).replace(",", ""))
        command = shlex.split(re.search(r"^\s+(\S+ -m flowdredge.cli run .*)$", text,
                                        re.M).group(1))
        args = command[command.index("run") + 1:]
        run_log = open(tmp_path / "run.log", "w")
        run = subprocess.Popen([sys.executable, "-m", "flowdredge.cli", "run", *args],
                               stderr=run_log, start_new_session=True, env=subprocess_env(),
                               preexec_fn=ctrl_c_as_in_a_terminal)
        output = args[args.index("--output") + 1]
        deadline = time.monotonic() + 240
        while total_counts(output)["flows_parsed"] < written:
            assert run.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, total_counts(output)
            time.sleep(1)
    finally:
        for process in (run, demo):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=120)
                except subprocess.TimeoutExpired:   # not left running after the test
                    os.killpg(process.pid, signal.SIGKILL)
                    raise
    counts = total_counts(output)
    assert counts["flows_parsed"] == written and counts["dead_letter"] == 0
    assert run.returncode == 130 and demo.returncode == 130, (tmp_path / "run.log").read_text()


@pytest.mark.unit
def test_a_second_demo_on_one_output_is_refused_and_removes_nothing(tmp_path, monkeypatch,
                                                                    server_installed):
    """A second `scripts/demo --streaming` on the output of one still running removed its
    inputs, checkpoints and outputs under it (a review: the first's printed `flowdredge run`
    command named a snapshot of another estate)."""
    from flowdredge.job.outputs import OutputError, hold_output
    from flowdredge.synthetic import demo

    def went_on(*args):
        raise AssertionError("the demo went on")
    monkeypatch.setattr(demo, "Estate", went_on)
    output = tmp_path / "demo"
    (output / "inputs").mkdir(parents=True)
    (output / "inputs" / "snapshot.jsonl").write_text("{}\n")
    with hold_output(str(output)):   # the first demo, running
        with pytest.raises(OutputError, match=r"flowdredge run \(pid \d+\) writes there .*"
                                              r"a demo would remove its inputs"):
            run_demo(Config(), DemoOptions(str(output), job=False), print)
    assert (output / "inputs" / "snapshot.jsonl").read_text() == "{}\n"


@pytest.mark.unit
def test_a_demo_without_kinesis_local_says_so_in_one_line_and_keeps_the_last_demo(
        tmp_path, monkeypatch, capsys):
    """Without kinesis-local (scripts/setup installs it only where npm is) `scripts/demo
    --streaming` ended in a traceback, after it had removed the previous demo's files and
    generated an estate (a review)."""
    from flowdredge import cli
    from flowdredge.connectors.kinesis import local
    from flowdredge.synthetic import demo

    def went_on(*args):
        raise AssertionError("the demo went on")
    monkeypatch.setattr(demo, "Estate", went_on)
    monkeypatch.setattr(local, "SERVER", str(tmp_path / "nowhere" / "kinesis-local"))
    output = tmp_path / "demo"
    (output / "inputs").mkdir(parents=True)
    (output / "inputs" / "snapshot.jsonl").write_text("{}\n")
    assert cli.main(["stream-demo", "--output", str(output)]) == 2
    assert capsys.readouterr().err == (
        f"flowdredge: error: kinesis-local is not installed in {tmp_path / 'nowhere'}: "
        f"install Node.js with npm, then run scripts/setup\n")
    assert (output / "inputs" / "snapshot.jsonl").read_text() == "{}\n"


@pytest.mark.unit
def test_a_demo_removes_the_report_of_the_previous_ones_outputs(tmp_path, monkeypatch,
                                                                server_installed):
    """A second `scripts/demo --streaming` replaced the outputs and left the report.html of
    the first, describing a run no longer there; the replay demo removes it (a review)."""
    from flowdredge.synthetic import demo

    class WentOn(Exception):
        pass

    def went_on(*args):
        raise WentOn
    monkeypatch.setattr(demo, "Estate", went_on)
    output = tmp_path / "demo"
    (output / "aggregates").mkdir(parents=True)
    (output / "report.html").write_text("<html>the first demo's</html>\n")
    (output / "notes.txt").write_text("mine\n")
    lines = []
    with pytest.raises(WentOn):
        run_demo(Config(), DemoOptions(str(output), job=False), lines.append)
    assert sorted(os.listdir(output)) == [".flowdredge-run.lock", "notes.txt"]
    assert lines[0] == (f"replacing the previous demo's aggregates, report.html in {output} "
                        f"(other files there stay)")


@pytest.mark.unit
def test_a_run_on_a_demos_output_is_refused_naming_the_demo(tmp_path):
    """A `flowdredge run` into the folder of a running stream-demo was refused as held by
    "another flowdredge run" (a review): the lock file now names its holder, and the next
    holder, once the first has ended, its own."""
    from flowdredge.job.outputs import RUN_LOCK, OutputError, hold_output
    output = tmp_path / "demo"
    with hold_output(str(output), holder="flowdredge stream-demo"):
        with pytest.raises(OutputError, match=rf"^--output {output}: flowdredge stream-demo "
                                              rf"\(pid {os.getpid()}\) writes there \(it "
                                              rf"holds {RUN_LOCK}\); stop it first: two jobs"):
            hold_output(str(output))
    with hold_output(str(output)):
        assert (output / RUN_LOCK).read_text() == f"flowdredge run (pid {os.getpid()})\n"


@pytest.mark.unit
def test_a_lock_held_without_a_name_is_refused_as_another_command_s(tmp_path):
    """A lock file that names no holder (one an earlier release holds, or a holder between
    taking the lock and writing its name) is refused all the same, in words."""
    import fcntl

    from flowdredge.job.outputs import RUN_LOCK, OutputError, hold_output
    output = tmp_path / "out"
    output.mkdir()
    with open(output / RUN_LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OutputError, match=rf"^--output {output}: another flowdredge command "
                                              rf"writes there \(it holds {RUN_LOCK}\); stop "):
            hold_output(str(output))


@pytest.mark.unit
def test_the_demo_says_why_its_job_restarts_while_it_runs(tmp_path, monkeypatch,
                                                          server_installed):
    """`flowdredge run` names a running job's failures as they happen; the demo with its job
    said nothing until the job ended (a review). The estate, the local Kinesis and the job are
    stand-ins: what is tested is what the demo's loop says."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from flowdredge.job.flink import run
    from flowdredge.synthetic import demo
    refused = ("org.apache.flink.runtime.source.reader.fetcher.SplitFetcherException: fetch "
               "failed\nCaused by: java.net.ConnectException: Connection refused")
    job = job_running_then("CANCELED", 3)
    estate = SimpleNamespace(generated=SimpleNamespace(flows=10), snapshot="s", deliveries=[],
                             snapshot_events=0)
    # One record never read: the demo waits on, until the job ends.
    writer = SimpleNamespace(deliver=lambda deliveries, stop: None, finish=lambda: None,
                             records_written=1, changes_written=0)
    monkeypatch.setattr(demo, "Estate", lambda folder, scenario: estate)
    monkeypatch.setattr(demo, "LocalKinesis", lambda log: nullcontext(
        SimpleNamespace(endpoint="http://127.0.0.1:9")))
    monkeypatch.setattr(demo.kinesis_client, "client", lambda settings: None)
    monkeypatch.setattr(demo, "demo_writer", lambda *args: writer)
    monkeypatch.setattr(demo, "JobRest", rest_with_failures(
        [[], [(10, refused)], [(11, refused), (10, refused)]]))
    monkeypatch.setattr(demo.time, "sleep", lambda s: None)
    monkeypatch.setattr(run, "kinesis_job", lambda *args, **kwargs: SimpleNamespace(
        execute_async=lambda name: job))
    monkeypatch.setattr(run, "local_rest_options", lambda: {"rest.port": 9})
    lines = []
    assert run_demo(Config(), DemoOptions(str(tmp_path / "demo"), report_seconds=3600),
                    lines.append) == 1
    assert [line for line in lines if "restarts" in line or "ended" in line] == [
        "the job failed and restarts from its last checkpoint while job.max_restarts allows: "
        "java.net.ConnectException: Connection refused",
        "the job ended: CANCELED (the whole trace: the Flink log, pyflink/log/ in the "
        "virtualenv)"]


@pytest.mark.unit
def test_the_demo_without_a_job_says_how_far_its_producer_is(tmp_path):
    """`--no-job` printed no line between "producing" and "all written": at a low --rate, an
    hour of silence (a review). It now gives the flows written every --report-seconds."""
    import threading
    from types import SimpleNamespace
    from flowdredge.connectors.logs import INTERRUPTED
    from flowdredge.synthetic import demo
    writer, stop = SimpleNamespace(flows_written=0), threading.Event()

    def produce():   # 1,000 flows a second, until stopped
        while not stop.wait(0.1):
            writer.flows_written += 100
    lines = []

    def progress(line):
        lines.append(line)
        if "written" in line and "/100,000 flows" in line:
            raise KeyboardInterrupt
    kin = SimpleNamespace(endpoint="http://127.0.0.1:9", flow_streams=("f",),
                          metadata_stream="m", metadata_snapshot=str(tmp_path / "s.jsonl"))
    assert demo._serve(kin, str(tmp_path), produce, writer, 100_000, 1000, progress,
                       report_seconds=1, stop=stop) == INTERRUPTED
    assert stop.is_set() and lines[-1].startswith("stopping (Ctrl-C)")
    assert re.search(r"\| written [\d,]+/100,000 flows$", lines[-2]), lines
