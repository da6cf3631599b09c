"""The streaming demo (`flowdredge stream-demo`, `scripts/demo --streaming`): the local Kinesis
API server, the streams, a producer writing a synthetic estate's traffic as CloudWatch Logs
subscription records at a chosen rate (IPs change owner while it runs, their metadata reaching
the changelog stream after the flows), and the streaming job on a local mini-cluster. One line
per interval (flows in, attributed share, windows closed, consumer lag), the top edges at the
end. It ends once every record written is parsed; Ctrl-C stops it earlier, cleanly.
"""
import json
import os
import shlex
import sys
import threading
import time
from dataclasses import dataclass

from flowdredge.connectors import logs
from flowdredge.connectors.kinesis import client as kinesis_client
from flowdredge.connectors.kinesis.local import LocalKinesis, check_installed
from flowdredge.synthetic.kinesis import Estate, EstateWriter
from flowdredge.job.config import Config
from flowdredge.synthetic.estate import ACCOUNTS, DELIVERY_SECONDS, Scenario, check_size
from flowdredge.job.outputs import (REPORT_FILE, hold_output, read_records, remove_outputs,
                                     total_counts)
from flowdredge.explore.health import READ_ERRORS, FailureWatch, JobRest
from flowdredge.explore.summary import attributed_share, render, summarize

# account -> (stream, shards): two flow streams, as two regional log destinations would be.
FLOW_STREAMS = {ACCOUNTS[0]: ("flowdredge-demo-flows-a", 2),
                ACCOUNTS[1]: ("flowdredge-demo-flows-b", 4)}
METADATA_STREAM = "flowdredge-demo-metadata"
AGGREGATES_STREAM = "flowdredge-demo-aggregates"


@dataclass
class DemoOptions:
    output: str
    rate: int = 2000            # flows per second written by the producer
    minutes: int = Scenario.minutes     # minutes of traffic (event time)
    seed: int = Scenario.seed
    report_seconds: int = 60
    # False: no job here; the local Kinesis stays up for `flowdredge run` (run_command).
    job: bool = True

    @property
    def flows_per_minute(self) -> int:
        """The generated estate's flows a minute of event time: twice the rate, at least 600."""
        return max(600, self.rate * 2)


def _committed_windows(output: str) -> int:
    return len({row["window_start"] for row in read_records(output, "aggregates")})


def _windows_closed(rest: JobRest, first_window_s, window_s) -> int:
    try:
        watermark = rest.window_watermark_ms()
    except READ_ERRORS:
        return 0
    if watermark is None:
        return 0
    return max(0, (watermark // 1000 - first_window_s) // window_s)


def _settled(read, value: int, steady_s: int = 5, timeout_s: float = 60) -> int:
    """The highest `read()` once it has not grown for `steady_s` one-second polls (at most
    `timeout_s`), starting from `value`."""
    deadline, steady = time.monotonic() + timeout_s, 0
    while steady < steady_s and time.monotonic() < deadline:
        time.sleep(1)
        now = read()
        steady, value = (steady + 1, value) if now <= value else (0, now)
    return value


def _report_line(output, rest: JobRest, writer, total_flows, since, closed) -> tuple:
    """The progress line, the rate over the interval since `since` (monotonic time, flows
    parsed then), and this report's (time, flows parsed) for the next."""
    counts = total_counts(output)
    now = (time.monotonic(), counts["flows_parsed"])
    rate = (now[1] - since[1]) / max(now[0] - since[0], 1e-9)
    attributed = attributed_share(counts)
    try:
        lag = rest.consumer_lag_ms()
    except READ_ERRORS:
        lag = None
    return (f"{time.strftime('%H:%M:%S')} | written {writer.flows_written:,}/{total_flows:,} "
            f"flows | flows in {counts['flows_parsed']:,} ({rate:,.0f}/s) | attributed "
            f"{attributed} | windows closed {closed} | consumer lag "
            f"{'n/a' if lag is None else f'{lag / 1000:.1f} s'}", now)


def too_short(minutes: int, config: Config):
    """A warning when `minutes` of traffic may close no window, else None. Event time is the
    slowest shard's latest flow less flows.out_of_orderness_seconds, and a shard the last
    delivery (DELIVERY_SECONDS of flows) sent nothing to holds it at the delivery before:
    each stream's records go to its shards in turn (demo_writer), so every shard has some
    of every other delivery, but the last one's few records may leave shards out."""
    holding, window_s = config.flows.out_of_orderness_seconds, config.job.window_seconds
    needed = holding + DELIVERY_SECONDS + window_s
    if minutes * 60 >= needed:
        return None
    return (f"warning: {minutes} minutes of traffic may close no window: event time is the "
            f"slowest shard's latest flow (flows come in {DELIVERY_SECONDS // 60}-minute "
            f"deliveries) less flows.out_of_orderness_seconds ({holding} s); use --minutes "
            f"{-(-needed // 60)} or more")


class _Producer(threading.Thread):
    """`produce` in a thread of its own; an error it ends with is kept (the local Kinesis
    gone: the demo stops, saying why)."""

    def __init__(self, produce):
        super().__init__(name="producer", daemon=True)
        self.produce, self.failed = produce, None

    def run(self):
        try:
            self.produce()
        except Exception as err:
            self.failed = err

    def failure(self) -> str:
        return (f"writing the traffic to the local Kinesis failed: "
                f"{type(self.failed).__name__}: {self.failed}")


def demo_writer(kinesis, estate: Estate, rate: int, sleep) -> EstateWriter:
    """Creates the demo's streams; the writer of `estate` to them. Each flow stream's records
    go to its shards in turn: hashed by their keys, the few records of a delivery at a low
    rate left a shard without flows of several deliveries, and a job reading them all within
    kinesis.shard_idle_seconds held event time there, closing no window."""
    for name, shards in [*FLOW_STREAMS.values(), (METADATA_STREAM, 1), (AGGREGATES_STREAM, 1)]:
        kinesis_client.create_stream(kinesis, name, shards)
    hash_keys = {name: [shard["HashKeyRange"]["StartingHashKey"]
                        for shard in kinesis.list_shards(StreamName=name)["Shards"]]
                 for name, _ in FLOW_STREAMS.values()}
    return EstateWriter(kinesis, estate, {a: s for a, (s, _) in FLOW_STREAMS.items()},
                        METADATA_STREAM, rate=rate, sleep=sleep, hash_keys=hash_keys)


# The settings of the demo's own job that `flowdredge run` on its streams needs as well: see
# run_demo.
RUN_SETTINGS = {"job": {"max_restarts": 3}, "kinesis": {"shard_idle_seconds": 10}}


def run_command(kin, config_file: str, output: str) -> str:
    """The `flowdredge run` command line that reads the demo's streams, from any folder."""
    path = lambda p: shlex.quote(os.path.abspath(p))   # noqa: E731
    return (f"{path(sys.executable)} -m flowdredge.cli run --config {path(config_file)} "
            f"--output {path(output)} "
            f"--endpoint {kin.endpoint} --flow-streams {','.join(kin.flow_streams)} "
            f"--metadata-stream {kin.metadata_stream} --metadata-snapshot "
            f"{path(kin.metadata_snapshot)}")


def _serve(kin, folder: str, produce, writer, total_flows: int, rate: int, progress,
           report_seconds: int, stop: threading.Event) -> int:
    """Writes the traffic with no job of its own, with a line every `report_seconds` until it
    is written (at a low rate, an hour of silence before), then keeps the local Kinesis up
    until Ctrl-C: the streams for `flowdredge run` in another terminal (its settings in
    folder/run.json, its outputs in folder/run-output). `stop` ends `produce`."""
    config_file = os.path.join(folder, "run.json")
    with open(config_file, "w", encoding="utf-8") as fh:
        json.dump(RUN_SETTINGS, fh)
    command = run_command(kin, config_file, os.path.join(folder, "run-output"))
    progress(f"no job here (--no-job): in another terminal, run\n  {command}")
    progress(f"producing {total_flows:,} flows at {rate:,} flows/s; Ctrl-C stops")
    producer = _Producer(produce)
    producer.start()
    try:
        next_report = time.monotonic() + report_seconds
        while producer.is_alive():
            producer.join(timeout=1)
            if producer.is_alive() and time.monotonic() >= next_report:
                next_report += report_seconds
                progress(f"{time.strftime('%H:%M:%S')} | written {writer.flows_written:,}/"
                         f"{total_flows:,} flows")
        if producer.failed:
            progress(producer.failure())
            return 1
        progress(f"all {writer.flows_written:,} flows written; the local Kinesis stays up until "
                 f"Ctrl-C")
        while True:
            time.sleep(1)
    except KeyboardInterrupt as interrupt:
        stop.set()
        producer.join(timeout=30)
        progress(f"stopping ({logs.stopped_by(interrupt)}): the local Kinesis and its streams "
                 f"are gone")
    return logs.INTERRUPTED


def run_demo(config: Config, options: DemoOptions, progress) -> int:
    # Before the output folder is touched: the previous demo's files stay.
    check_size(options.minutes, options.flows_per_minute)
    check_installed()
    output = options.output
    # Held until the demo ends: a second demo there removed the inputs, checkpoints and
    # outputs of this one as it ran.
    lock = hold_output(output, holder="flowdredge stream-demo",
                       why="a demo would remove its inputs, checkpoints and outputs under it; "
                           "or give another --output")
    with lock:
        return _demo(config, options, progress)


def _demo(config: Config, options: DemoOptions, progress) -> int:
    from flowdredge.job.flink.run import failure_cause, job_status, kinesis_job, local_rest_options
    output = options.output
    # A report of the previous demo's outputs goes with them, as a replay's does.
    replaced = remove_outputs(output, ("inputs", "checkpoints", "kinesis-local.log",
                                       "run-output", "run.json", REPORT_FILE))
    if replaced:
        progress(f"replacing the previous demo's {', '.join(replaced)} in {output} (other files "
                 f"there stay)")
    now = int(time.time())
    # Traffic of the last `minutes` minutes, as if AWS were delivering it now.
    scenario = Scenario(start=now - now % 60 - options.minutes * 60 - 300,
                        minutes=options.minutes, flows_per_minute=options.flows_per_minute,
                        seed=options.seed)
    progress(f"generating {scenario.minutes} minutes of a synthetic estate's traffic "
             f"({scenario.flows_per_minute:,} flows/minute, IPs changing owner)")
    estate = Estate(os.path.join(output, "inputs"), scenario)
    total_flows = estate.generated.flows
    window_s = config.job.window_seconds
    warning = too_short(options.minutes, config)
    if warning:
        progress(warning)
    stop = threading.Event()
    with LocalKinesis(os.path.join(output, "kinesis-local.log")) as server:
        progress(f"local Kinesis on {server.endpoint}; creating streams")
        # The last delivery's few records can leave a shard out, which holds event time at
        # the delivery before until it is idle, and the producer may be done within a
        # minute: 10 s here. Restarts: the Kinesis connector's start-up race on a loaded
        # machine (docs/streaming.md).
        cfg = config.replace(
            job={"checkpoint_interval_seconds": 5, **RUN_SETTINGS["job"]},
            kinesis={"endpoint": server.endpoint, **RUN_SETTINGS["kinesis"],
                     "flow_streams": ",".join(name for name, _ in FLOW_STREAMS.values()),
                     "metadata_stream": METADATA_STREAM, "metadata_snapshot": estate.snapshot,
                     "aggregates_stream": AGGREGATES_STREAM})
        # Its pauses end at Ctrl-C: at a low rate one lasts up to a minute.
        writer = demo_writer(kinesis_client.client(cfg.kinesis), estate, options.rate,
                             stop.wait)

        def produce():
            writer.deliver(estate.deliveries, stop=stop.is_set)
            if not stop.is_set():
                writer.finish()

        if not options.job:
            return _serve(cfg.kinesis, output, produce, writer, total_flows, options.rate,
                          progress, options.report_seconds, stop)
        rest = local_rest_options()
        rest_url = f"http://127.0.0.1:{rest['rest.port']}"
        job = kinesis_job(cfg, output, flink_options=rest).execute_async("flowdredge stream demo")
        job_id = str(job.get_job_id())
        job_rest = JobRest(rest_url, job_id)
        progress(f"job {job_id} running (Flink UI and REST API: {rest_url}); producing "
                 f"{total_flows:,} flows at {options.rate:,} flows/s; Ctrl-C stops")
        producer = _Producer(produce)
        began = time.monotonic()
        producer.start()
        finished, closed, since, failures = False, 0, (began, 0), FailureWatch()
        try:
            next_report = began + options.report_seconds
            while True:
                time.sleep(1)
                if producer.failed:
                    progress(producer.failure())
                    return 1
                status = job_status(job)
                if status in ("FAILED", "CANCELED", "FINISHED", "ENDED"):
                    # The REST API goes with a mini-cluster whose job ended: the last failure
                    # read before.
                    cause = failure_cause(job, lambda: job_rest.failure_traces()
                                          or [failures.last_trace])
                    progress(f"the job ended: {cause or status} (the whole trace: the Flink "
                             f"log, pyflink/log/ in the virtualenv)")
                    return 1
                for cause in failures.new_causes(job_rest):
                    progress(f"the job failed and restarts from its last checkpoint while "
                             f"job.max_restarts allows: {cause}")
                # Every record written read, and every changelog event: the flows of the last
                # deliveries wait for the changelog written after them (writer.finish).
                counts = total_counts(output)
                done = not producer.failed and not producer.is_alive() and \
                    counts["records_in"] >= writer.records_written and \
                    counts["metadata_events"] + counts["metadata_dead_letter"] >= \
                    estate.snapshot_events + writer.changes_written
                if time.monotonic() >= next_report or done:
                    next_report += options.report_seconds
                    closed = _windows_closed(job_rest, scenario.start, window_s)
                    line, since = _report_line(output, job_rest, writer, total_flows,
                                               since, closed)
                    progress(line)
                if done:
                    finished = True
                    break
            # The last records' event time reaches the windows through the job a moment after
            # they are read (on a loaded machine, seconds): until the count holds still.
            closed = _settled(lambda: _windows_closed(job_rest, scenario.start,
                                                      window_s), closed)
            progress(f"every record and changelog event written was read; windows closed: {closed}. Waiting for "
                     f"their aggregates to be committed (files roll every minute)")
            deadline = time.monotonic() + 150
            while _committed_windows(output) < closed and time.monotonic() < deadline:
                time.sleep(2)
        except KeyboardInterrupt as interrupt:
            progress(f"stopping ({logs.stopped_by(interrupt)})")
        finally:
            stop.set()
            try:
                job.cancel().result()
            except Exception as err:   # already gone: nothing left to stop
                progress(f"the job had already stopped ({type(err).__name__})")
            producer.join(timeout=30)
        print(render(summarize(output), output))
        if finished:
            progress("the windows of the last minutes stay open until newer traffic moves "
                     "event time past them (docs/streaming.md)")
    return 0 if finished else logs.INTERRUPTED
