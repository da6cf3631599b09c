"""The streaming job on a local mini-cluster reading the local Kinesis (kinesis-local), for the
`kinesis` tests: an estate split into deliveries, written to the streams as AWS and the
publisher would, the job run in this process until its outputs show what the test waits for."""
import contextlib
import json
import time

import reference
from flowdredge.synthetic.producer import put_changelog_lines, put_flow_records
from flowdredge.connectors.kinesis.client import read_all
from flowdredge.connectors.publisher.sinks import KinesisSink
from helpers import job_aggregates, total_counts
from flowdredge.job import config as config_mod
from flowdredge.schemas.cloudwatch import record
from flowdredge.synthetic.estate import Scenario
from flowdredge.synthetic.kinesis import Estate, EstateWriter

ACCOUNT_A, ACCOUNT_B = "123456789012", "210987654321"
TIMEOUT_S = 400   # a loaded 2-core machine; every wait polls and returns as soon as it can
# What a wait looks at changes at the job's checkpoints (every 2 s): a poll every second lost
# half a second on average at each wait.
POLL_S = 0.2
# The flush is sent again this often while windows are awaited: the windows close at the first
# flush that comes after the other shards have been idle (Writer.finish).
KEEP_ALIVE_S = 1


def scenario(minutes=10, flows_per_minute=200, seed=11) -> Scenario:
    # Recent, as a live stream's flows are (flows are checked against their delivery time).
    start = (int(time.time()) // 3600 - 3) * 3600
    return Scenario(start=start, minutes=minutes, flows_per_minute=flows_per_minute,
                    instances_per_app=3, churn_per_minute=3.0, seed=seed)


class Writer(EstateWriter):
    def finish_changelog(self) -> None:
        super().finish()

    def finish(self, stream: str) -> int:
        """The rest of the changelog, then the flush (flush()) on `stream`. Returns the first
        window start that is not the estate's. The flush moves event time only once the job
        judges every other shard idle: when a flush record comes more than
        kinesis.shard_idle_seconds after the job last heard from them (job.shards), which it
        shows by nothing else than the windows closing. So the wait for the windows keeps
        sending it (wait_for's keep_alive, every KEEP_ALIVE_S) and ends at the first that
        does, where a sleep of the idle time after the records were counted (up to a
        checkpoint after they were heard) waited a second or more past it."""
        super().finish()
        self.flush_stream, self.flushes = stream, 0
        self.flush()
        sc = self.estate.scenario
        return sc.start + sc.minutes * 60

    def flush(self) -> None:
        """A flow an hour after the estate on the flush stream and a HEARTBEAT past it: with
        the other shards idle, event time moves past every window of the estate. Called again
        while the windows are awaited (wait_for's keep_alive), as a live stream keeps sending:
        a job restarted from a checkpoint has forgotten which shards it heard from and judges
        a shard idle only when a later record comes (job.shards), and its changelog's
        watermark waits for a HEARTBEAT."""
        sc = self.estate.scenario
        late = sc.start + sc.minutes * 60 + 3600
        line = (f"2 {ACCOUNT_A} eni-flush 10.99.0.1 10.99.0.2 40000 443 6 1 60 {late} "
                f"{late + 1} ACCEPT OK")
        # Several: the records are spread over the parse instances, and each must see one.
        # Each its own log event id, as CloudWatch gives: equal records are one written twice
        # (connectors/jvm RawRecords).
        self.flushes += 1
        for i in range(4):
            self.put_raw(self.flush_stream, record(
                [(f"{self.flushes}-{i}", late * 1000, line)], compresslevel=6, owner=ACCOUNT_A,
                log_group="/flush", log_stream="eni-flush"), "flush")
        put_changelog_lines(self.metadata, [json.dumps({"type": "HEARTBEAT",
                                                        "ts": (late + 600) * 1000})])


def expected_aggregates(estate: Estate) -> dict:
    return reference.aggregates([estate.flow_dir], [estate.generated.metadata_file])


def streaming_config(endpoint: str, parallelism: int, **sections) -> config_mod.Config:
    # flows.out_of_orderness_seconds keeps its default (300 s): one delivery's records of
    # different interfaces each span its 5 minutes, interleaved in a shard, as CloudWatch's are.
    # Aggregates files roll every second: a closed window's rows are committed at the next
    # checkpoint, not a minute later. One restart for the Kinesis connector's start-up race (a
    # slow first ListShards on a loaded machine: docs/streaming.md).
    base = {"job": {"parallelism": parallelism, "checkpoint_interval_seconds": 2,
                    "max_restarts": 1},
            "outputs": {"enriched": False, "security": False, "aggregates_rollover_seconds": 1},
            "kinesis": {"endpoint": endpoint, "shard_idle_seconds": 5}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return config_mod.from_dict(base)


@contextlib.contextmanager
def running_job(config, output_dir: str, flink_options: dict = None):
    """The streaming job, started in this process; cancelled on leaving. A failed assertion
    inside carries the job's counts so far: a timeout on a loaded machine says how far it got."""
    from flowdredge.job.flink.run import kinesis_job
    client = kinesis_job(config, output_dir, flink_options).execute_async(
        "flowdredge kinesis test")
    try:
        yield client
    except AssertionError as err:
        with contextlib.suppress(Exception):
            err.add_note(f"the job's counts: {dict(+total_counts(output_dir))}")
        raise
    finally:
        with contextlib.suppress(Exception):
            client.cancel().result()


def wait_for(what: str, check, client=None, timeout_s: float = TIMEOUT_S, keep_alive=None):
    """Polls `check` every POLL_S until it returns something true; fails with `what` and the
    last value. `keep_alive` is called every KEEP_ALIVE_S meanwhile."""
    deadline = time.monotonic() + timeout_s
    kept_alive = time.monotonic()
    while True:
        value = check()
        if value:
            return value
        if client is not None:
            status = client.get_job_status().result()
            assert status.name in ("RUNNING", "CREATED", "RESTARTING", "INITIALIZING"), \
                f"the job is {status.name} while waiting for {what}"
        assert time.monotonic() < deadline, (f"timed out after {timeout_s} s waiting for {what} "
                                             f"(last value: {value!r:.300})")
        if keep_alive is not None and time.monotonic() - kept_alive >= KEEP_ALIVE_S:
            keep_alive()
            kept_alive = time.monotonic()
        time.sleep(POLL_S)


def parsed_records(output_dir: str) -> int:
    return total_counts(output_dir)["records_in"]


def closed_aggregates(output_dir: str, before_window: int) -> dict:
    return {k: v for k, v in job_aggregates(output_dir).items() if k[0] < before_window}


def read_stream(kinesis, name: str) -> list:
    """Every record of every shard (closed ones too) from the start, as bytes."""
    return [record["Data"] for _shard, record in read_all(kinesis, name)]


def deliver_flows(writer: Writer, deliveries) -> None:
    """The flow records of `deliveries` without the changelog that follows them (the next
    writer.deliver writes it): meanwhile their flows wait for metadata in keyed state."""
    for delivered in deliveries:
        for account, stream in writer.streams.items():
            records = [r for r in writer.estate.records
                       if r.delivered == delivered and r.account == account]
            put_flow_records(KinesisSink(writer.kinesis, stream, "unused"), records,
                             writer.partition_key)
            writer.records_written += len(records)
            writer.flows_written += sum(r.lines for r in records)
