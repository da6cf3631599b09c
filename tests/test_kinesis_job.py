"""The streaming job end to end through the local Kinesis API server (kinesis-local over HTTP on
127.0.0.1) on a local Flink mini-cluster, at parallelism 1 and 2: flow logs as CloudWatch Logs
subscription records on two streams (2 and 4 shards), the changelog bootstrapped from a snapshot
and then read from its stream, deliveries whose metadata arrives after their flows, bad records
on the stream, a record written twice, outputs to files and to Kinesis; a reshard at
parallelism 1 and a stream never written to at 2. Then, at both, a failure mid-stream and the restart from the checkpoint: while
flows wait for their metadata, and while windows hold security batches."""
import gzip
import json
import os
import re
import signal
import time
import urllib.request
from collections import Counter

import pytest

from flowdredge.connectors.kinesis import client as kinesis_client
from flowdredge.connectors.kinesis.local import free_port
from flowdredge.synthetic.producer import put_changelog_lines
from flowdredge.schemas.cloudwatch import control_record, record
from flowdredge.schemas.security import DEPENDENCIES, UNOWNED_APPS
from helpers import read_records, total_counts
from streaming import (ACCOUNT_A, ACCOUNT_B, Estate, Writer, closed_aggregates,
                       deliver_flows, expected_aggregates, parsed_records, read_stream,
                       running_job, scenario, streaming_config, wait_for)

pytestmark = pytest.mark.kinesis


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    return Estate(str(tmp_path_factory.mktemp("estate")), scenario())


def _streams(kinesis, prefix, **shards):
    return {name: kinesis_client.create_stream(kinesis, f"{prefix}-{name}", n)
            for name, n in shards.items()}


def _bad_records(writer, stream):
    """Not gzip, gzip but not JSON, one log event of 1 MB, a flow starting 30 days after the
    record's arrival (its log event's timestamp too: only the arrival, carried through the
    shard's batch, bounds it), and a CONTROL_MESSAGE; a changelog record that is not JSON."""
    writer.put_raw(stream, b"this is not gzip")
    writer.put_raw(stream, gzip.compress(b"{not json"))
    writer.put_raw(stream, record([("0", 0, "x" * 1_000_000)], compresslevel=6, owner=ACCOUNT_A,
                                  log_group="/big", log_stream="eni-big"))
    future = int(time.time()) + 30 * 86400
    writer.put_raw(stream, record([("0", future * 1000, f"2 {ACCOUNT_A} eni-f 10.0.0.1 10.0.0.2 "
                                   f"1 2 6 1 100 {future} {future + 5} ACCEPT OK")],
                                  compresslevel=6, owner=ACCOUNT_A, log_group="/future",
                                  log_stream="eni-f"))
    writer.put_raw(stream, control_record())
    put_changelog_lines(writer.metadata, ["{not json"])


def test_the_enhanced_fan_out_reader_reads_every_record(kinesis_local, estate, tmp_path, caplog):
    """kinesis.reader efo (SubscribeToShard, which kinesis-local serves): every subscription
    failed with NoClassDefFoundError until the connectors jar held the event-stream decoder
    (connectors/jvm/pom.xml). The job registers the consumer before it starts and leaves it
    (a failover's closing enumerator could deregister the consumer its successor had taken).
    A failover is not part of this test: after one, the connector (6.0.0) may never read a
    shard again (docs/streaming.md, Local Kinesis), and the job warns of it at start."""
    kinesis = kinesis_client.client(streaming_config(kinesis_local.endpoint, 1).kinesis)
    _streams(kinesis, "efo", flows=2, meta=1)
    config = streaming_config(
        kinesis_local.endpoint, 1,
        kinesis={"reader": "efo", "efo_consumer_name": "flowdredge-test",
                 "flow_streams": "efo-flows", "metadata_stream": "efo-meta",
                 "metadata_snapshot": estate.snapshot})
    writer = Writer(kinesis, estate, {ACCOUNT_A: "efo-flows", ACCOUNT_B: "efo-flows"},
                    "efo-meta")
    output = str(tmp_path / "out")
    with running_job(config, output) as job:
        assert "after a failover a shard may stop being read" in caplog.text
        writer.deliver(estate.deliveries)
        wait_for("every record parsed", lambda: parsed_records(output) == writer.records_written,
                 job)
        first_open = writer.finish("efo-flows")
        wait_for("the estate's windows", lambda: closed_aggregates(output, first_open)
                 == expected_aggregates(estate), job, keep_alive=writer.flush)
    for stream in ("efo-flows", "efo-meta"):
        consumers = kinesis.list_stream_consumers(
            StreamARN=kinesis.describe_stream_summary(StreamName=stream)
            ["StreamDescriptionSummary"]["StreamARN"])["Consumers"]
        assert [(c["ConsumerName"], c["ConsumerStatus"]) for c in consumers] == [
            ("flowdredge-test", "ACTIVE")]


def _reshard(kinesis, stream):
    kinesis.update_shard_count(StreamName=stream, TargetShardCount=4,
                               ScalingType="UNIFORM_SCALING")
    kinesis_client.wait_active(kinesis, stream)
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    assert len([s for s in shards if "EndingSequenceNumber" not in
                s["SequenceNumberRange"]]) == 4


# One job per parallelism, each with a property more: at 1, stream a is resharded from 2 to 4
# shards once the first half is parsed (nothing lost across it); at 2, a third flow stream of
# 2 shards is never written to (its shards, expected from the start, must not hold windows
# open).
@pytest.mark.parametrize("parallelism", [pytest.param(1, id="1-reshard"),
                                         pytest.param(2, id="2-shards-without-records")])
def test_streaming_aggregates_equal_the_contract(kinesis_local, estate, tmp_path, parallelism):
    kinesis = kinesis_client.client(streaming_config(kinesis_local.endpoint, 1).kinesis)
    prefix = f"e2e-p{parallelism}"
    idle = {"idle": 2} if parallelism == 2 else {}
    arns = _streams(kinesis, prefix, a=2, b=4, meta=1, aggs=2, events=1, **idle)
    flow_streams = ",".join([f"{prefix}-a", arns["b"]] + [f"{prefix}-{n}" for n in idle])
    config = streaming_config(
        kinesis_local.endpoint, parallelism,
        outputs={"security": True}, security={"warmup_seconds": 0},
        kinesis={"flow_streams": flow_streams, "metadata_stream": f"{prefix}-meta",
                 "metadata_snapshot": estate.snapshot, "aggregates_stream": f"{prefix}-aggs",
                 "security_events_stream": f"{prefix}-events"})
    writer = Writer(kinesis, estate, {ACCOUNT_A: f"{prefix}-a", ACCOUNT_B: f"{prefix}-b"},
                    f"{prefix}-meta")
    output = str(tmp_path / "out")
    half = len(estate.deliveries) // 2
    writer.deliver(estate.deliveries[:half])
    with running_job(config, output) as job:
        if parallelism == 1:
            wait_for("the first half parsed",
                     lambda: parsed_records(output) == writer.records_written, job)
            _reshard(kinesis, f"{prefix}-a")
        _bad_records(writer, f"{prefix}-a")
        # The second half's flows, their changelog only once some wait for it in keyed state:
        # certain, whatever the order in which the job reads its sources.
        deliver_flows(writer, estate.deliveries[half:])
        # A producer's retry: a record written again, to its shard (its partition key). Parsed
        # twice, its flows would be counted twice and the aggregates would not match.
        second_half = set(estate.deliveries[half:])
        again = [r for r in estate.records
                 if r.account == ACCOUNT_A and r.delivered in second_half][-1]
        writer.put_raw(f"{prefix}-a", again.data, again.partition_key)
        wait_for("a group waiting for its metadata",
                 lambda: total_counts(output)["groups_waited"] > 0, job)
        writer.finish_changelog()
        first_open, expected = _estate_closed(writer, output, job, f"{prefix}-a", estate)
        kinesis_rows = wait_for("the aggregates on Kinesis", lambda: _kinesis_aggregates(
            kinesis, f"{prefix}-aggs", first_open) == expected and _kinesis_aggregates(
            kinesis, f"{prefix}-aggs", first_open), job)
        file_events = sorted(json.dumps(e, sort_keys=True)
                             for e in read_records(output, "security_events"))
        assert file_events, "the scenario makes security events (warmup 0)"
        stream_events = wait_for("the security events on Kinesis", lambda: (
            _kinesis_events(kinesis, f"{prefix}-events") >= set(file_events)
            and _kinesis_events(kinesis, f"{prefix}-events")), job)
        # Every flow parsed was attributed on time (the estate's, and the flush's).
        counts = wait_for("every flow attributed", lambda: (
            lambda c: c["flows_aggregated"] == c["flows_parsed"] and c)(total_counts(output)),
            job)
    assert kinesis_rows == expected
    assert set(file_events) <= stream_events
    assert counts["flows_late"] == 0
    # Flows waited for their metadata, none beyond the max wait.
    assert counts["groups_waited"] > 0 and counts["groups_after_max_wait"] == 0
    assert counts["records_skipped"] == 1   # the CONTROL_MESSAGE
    assert counts["records_repeated"] == 1  # the producer's retry
    dead = [d for d in read_records(output, "dead_letter") if d["stage"] == "flows"]
    assert sorted(d["reason"] for d in dead) == ["line_too_long", "not_gzip", "not_json",
                                                 "timestamp_out_of_range"]
    assert all(d["source"].startswith(f"kinesis:{prefix}-a/shardId-") for d in dead), dead
    bad_changes = [d for d in read_records(output, "dead_letter") if d["stage"] == "metadata"]
    assert [d["reason"] for d in bad_changes] == ["not_json"]
    # The record that holds it: its stream, shard and sequence number, then the line.
    assert re.fullmatch(rf"kinesis:{prefix}-meta/shardId-\d+/\d+:1", bad_changes[0]["source"])
    if parallelism == 2:
        # Its windows closed with shards that had no record at all.
        assert len(kinesis.list_shards(StreamName=f"{prefix}-idle")["Shards"]) == 2
        assert read_stream(kinesis, f"{prefix}-idle") == []


def _kinesis_aggregates(kinesis, stream, before_window):
    """Aggregate rows read back from the stream, deduplicated on dedup_key; a repeat must
    equal the row it repeats."""
    rows, by_key = {}, {}
    for data in read_stream(kinesis, stream):
        r = json.loads(data)
        value = (r["flows"], r["packets"], r["bytes"])
        assert by_key.setdefault(r["dedup_key"], value) == value
        key = (r["window_start"], r["src_app"], r["src_region"], r["dst_app"], r["dst_region"],
               r["dst_port"], r["protocol"], r["action"])
        if key[0] < before_window:
            rows[key] = value
    return rows


def _kinesis_events(kinesis, stream):
    events = set()
    for data in read_stream(kinesis, stream):
        event = json.loads(data)
        assert len(event.pop("dedup_key")) == 32
        events.add(json.dumps(event, sort_keys=True))
    return events


def _python_workers():
    """Pids of this test's Python worker processes (job.python_workers: process): descendants
    of this process (through its Flink JVM) running PyFlink's worker."""
    parents, commands = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                parents[int(pid)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                commands[int(pid)] = fh.read()
        except (OSError, IndexError, ValueError):
            continue

    def mine(pid):
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False
    return [pid for pid, command in commands.items()
            if b"pyflink.fn_execution.beam.beam_boot" in command and mine(pid)]


def _failures(rest_url, job_id) -> list:
    """The job's failures so far, each restarted from (REST exception history)."""
    with urllib.request.urlopen(f"{rest_url}/jobs/{job_id}/exceptions", timeout=5) as response:
        return json.load(response)["exceptionHistory"]["entries"]


def _failure_run(kinesis_local, estate, tmp_path, prefix, parallelism, first_half):
    """Both accounts on one 2-shard stream. `first_half(writer, output, job, half)` writes the
    first half of the deliveries and waits until the checkpoint that commits it holds what is
    to be restored; then the Python workers are killed, and the rest of the changelog and the
    second half are written. Python bundles end only at checkpoints here, so that checkpoint
    ended the bundle in which what it holds arrived (ParseFlowRecords._ticks: how such a
    checkpoint lost timers). Returns the output folder once the estate's windows and their
    dependencies equal the reference (_dependency_flows), and the job's failures by then."""
    kinesis = kinesis_client.client(streaming_config(kinesis_local.endpoint, 1).kinesis)
    _streams(kinesis, prefix, flows=2, meta=1)
    config = streaming_config(
        kinesis_local.endpoint, parallelism,
        # One failure allowed: it costs a restart more per Kinesis source (kinesis_job).
        job={"max_restarts": 1, "bundle_time_ms": 3_600_000, "bundle_size": 1_000_000},
        outputs={"security": True},
        kinesis={"flow_streams": f"{prefix}-flows", "metadata_stream": f"{prefix}-meta",
                 "metadata_snapshot": estate.snapshot})
    writer = Writer(kinesis, estate, {ACCOUNT_A: f"{prefix}-flows", ACCOUNT_B: f"{prefix}-flows"},
                    f"{prefix}-meta")
    output, rest_port = str(tmp_path / "out"), free_port()
    half = len(estate.deliveries) // 2
    with running_job(config, output, {"rest.port": str(rest_port)}) as job:
        first_half(writer, output, job, half)
        workers = _python_workers()
        assert workers, "no Python worker process found"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        # The job fails when its next records reach the dead workers: the second half.
        writer.deliver(estate.deliveries[half:])
        _estate_closed(writer, output, job, f"{prefix}-flows", estate)
        failures = _failures(f"http://127.0.0.1:{rest_port}", str(job.get_job_id()))
        # Read once: never more records parsed than written, now that every window closed.
        assert parsed_records(output) <= writer.records_written
    return output, failures


def _flows_waiting(writer, output, job, half) -> None:
    """The first half's flows without their changelog: their groups wait for metadata in
    keyed state."""
    deliver_flows(writer, writer.estate.deliveries[:half])
    wait_for("the first half parsed", lambda: parsed_records(output) == writer.records_written,
             job)
    assert total_counts(output)["groups_waited"] > 0, \
        "no group of the first half waited in the checkpoint: nothing would be tested"


def _windows_open(writer, output, job, half) -> None:
    """The first half with its changelog, on one shard of the two: with the other unheard
    from, event time stands still, so the first half's windows stay open, their security
    batches held in keyed state."""
    writer.partition_key = "one-shard"
    writer.deliver(writer.estate.deliveries[:half])
    writer.partition_key = None
    wait_for("the first half attributed",
             lambda: total_counts(output)["flows_aggregated"] == writer.flows_written, job)
    assert not _dependency_flows(output), \
        "a window of the first half closed before the failure: nothing would be tested"


def _estate_closed(writer, output, job, stream, estate) -> tuple:
    """Waits for every record written to be parsed, then, `stream` finished, for the estate's
    windows and dependencies to equal the contract's; (first open window, the aggregates)."""
    wait_for("every record parsed", lambda: parsed_records(output) == writer.records_written,
             job)
    first_open = writer.finish(stream)
    expected = expected_aggregates(estate)
    wait_for("the estate's windows", lambda: closed_aggregates(output, first_open) == expected,
             job, keep_alive=writer.flush)
    dependencies = _dependency_flows(expected)
    assert dependencies, "the estate has no dependency edge: nothing would be tested"
    wait_for("the estate's dependencies", lambda: {
        w: n for w, n in _dependency_flows(output).items() if w < first_open}
        == dependencies, job, keep_alive=writer.flush)
    return first_open, expected


def _dependency_flows(source) -> dict:
    """Window start -> the flows of its dependency edges: from the committed dependencies
    output (an output folder), or what they must be by the reference aggregates (a dict):
    the ACCEPTed flows with both ends owned, whichever end is the client."""
    totals = Counter()
    if isinstance(source, dict):
        for (window, src_app, _, dst_app, _, _, _, action), (flows, _, _) in source.items():
            if action == "ACCEPT" and not {src_app, dst_app} & set(UNOWNED_APPS):
                totals[window] += flows
    else:
        for row in read_records(source, DEPENDENCIES):
            totals[row["window_start"]] += row["flows"]
    return dict(totals)


@pytest.mark.parametrize("parallelism", [1, 2])
@pytest.mark.parametrize("first_half", [_flows_waiting, _windows_open],
                         ids=["flows-waiting", "windows-open"])
def test_a_failure_mid_stream_restarts_from_the_checkpoint_and_counts_once(
        kinesis_local, estate, tmp_path, first_half, parallelism):
    prefix = f"failure{first_half.__name__.replace('_', '-')}-p{parallelism}"
    output, failures = _failure_run(kinesis_local, estate, tmp_path, prefix, parallelism,
                                    first_half)
    assert failures, "the job did not fail: nothing was tested"
    counts = total_counts(output)
    # Committed outputs count every record once, though records after the last checkpoint
    # before the failure were read twice; a record read again is no producer's repeat.
    assert counts["flows_late"] == 0 and counts["dead_letter"] == 0
    assert counts["records_repeated"] == 0


def test_a_run_stopped_and_resumed_from_its_checkpoint_counts_every_record_once(
        kinesis_local, estate, tmp_path):
    """`flowdredge run` stopped (cancelled, as Ctrl-C does) keeps its checkpoints; `--resume`
    continues from the newest: the records written meanwhile read, none counted twice."""
    from flowdredge.cli import run_options
    kinesis = kinesis_client.client(streaming_config(kinesis_local.endpoint, 1).kinesis)
    _streams(kinesis, "resume", flows=2, meta=1)
    # Batches go out only when full or at a checkpoint (the wait is ten minutes): a checkpoint
    # sends on the records its offsets have passed, which the resume does not read again.
    config = streaming_config(kinesis_local.endpoint, 1, kinesis={
        "flow_streams": "resume-flows", "metadata_stream": "resume-meta",
        "metadata_snapshot": estate.snapshot, "batch_wait_ms": 600_000})
    writer = Writer(kinesis, estate, {ACCOUNT_A: "resume-flows", ACCOUNT_B: "resume-flows"},
                    "resume-meta")
    output = str(tmp_path / "out")
    half = len(estate.deliveries) // 2
    with running_job(config, output, run_options(config, output, None)) as job:
        writer.deliver(estate.deliveries[:half])
        wait_for("the first half parsed", lambda: parsed_records(output) == writer.records_written,
                 job)
    with pytest.raises(FileExistsError, match="--resume"):
        run_options(config, output, None)
    options = run_options(config, output, "latest")
    assert "/chk-" in options["execution.state-recovery.path"]

    writer.deliver(estate.deliveries[half:])   # while stopped: read after the resume
    with running_job(config, output, options) as job:
        wait_for("every record parsed", lambda: parsed_records(output) == writer.records_written,
                 job)
        first_open = writer.finish("resume-flows")
        expected = expected_aggregates(estate)
        wait_for("the estate's windows", lambda: closed_aggregates(output, first_open) == expected,
                 job, keep_alive=writer.flush)
        # The flushes sent while the windows were awaited counted too (at a checkpoint after
        # they were read); none is sent after this, so records_in can only reach the count.
        counts = wait_for("every flush counted", lambda: (
            lambda c: c["records_in"] >= writer.records_written and c)(total_counts(output)),
            job)
    assert counts["records_in"] == writer.records_written
    assert counts["flows_late"] == 0 and counts["dead_letter"] == 0
    assert counts["records_repeated"] == 0
