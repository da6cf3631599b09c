"""An upgrade through a savepoint with Kinesis sources, on a local standalone cluster
(operate.cluster) and the local Kinesis (kinesis-local over HTTP on 127.0.0.1): the streaming
job (job.submit without --flows) runs at parallelism 1, is stopped with a savepoint, deliveries
are written while it is stopped, and it resumes from the savepoint at parallelism 2 as a changed
job. Its aggregates over the estate equal the independent computation (tests/reference.py):
nothing lost, nothing counted twice."""
import json
import time

import pytest

from flowdredge.connectors.kinesis import client as kinesis_client
from helpers import ensure_running, read_records, total_counts, window_watermark
from flowdredge.connectors.kinesis.settings import KinesisSection
from streaming import (ACCOUNT_A, ACCOUNT_B, KEEP_ALIVE_S, POLL_S, TIMEOUT_S, Estate, Writer,
                       closed_aggregates, deliver_flows, expected_aggregates, scenario)

pytestmark = [pytest.mark.kinesis, pytest.mark.cluster]

FLOWS, META = "upgrade-flows", "upgrade-meta"
SHARD_IDLE_S = 5
# Flows wait for their metadata across the stop: the longest wait must outlast a stop and
# start on a loaded machine, or they would be attributed without it.
MAX_WAIT_S = 3600
# The upgrade: another parallelism, bundle size and metadata poll interval, and one output more.
# Aggregates files roll every second and one restart is allowed, as in streaming_config.
BASE = {"job": {"parallelism": 1, "checkpoint_interval_seconds": 2, "max_restarts": 1},
        "metadata": {"max_wait_seconds": MAX_WAIT_S},
        "outputs": {"enriched": False, "security": False, "aggregates_rollover_seconds": 1}}
UPGRADED = {"job": {"parallelism": 2, "checkpoint_interval_seconds": 2, "bundle_size": 20,
                    "max_restarts": 1},
            "metadata": {"max_wait_seconds": MAX_WAIT_S, "poll_interval_ms": 500},
            "outputs": {"enriched": True, "security": False, "aggregates_rollover_seconds": 1}}


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    # Four 5-minute deliveries: two before the savepoint, one while stopped, one after.
    return Estate(str(tmp_path_factory.mktemp("estate")), scenario(minutes=20,
                                                                   flows_per_minute=150))


def _config(tmp_path, name, sections, endpoint, snapshot) -> str:
    kinesis = {"endpoint": endpoint, "flow_streams": FLOWS, "metadata_stream": META,
               "metadata_snapshot": snapshot, "shard_idle_seconds": SHARD_IDLE_S}
    path = tmp_path / f"{name}.yaml"
    # flows.out_of_orderness_seconds keeps its default: see streaming_config (tests/streaming.py).
    path.write_text(json.dumps({**sections, "kinesis": kinesis}))  # JSON is YAML
    return str(path)


def _wait_for_parsed(cluster, job_id, output, records, metadata_events):
    """Until the committed counts show every record written parsed and every changelog event
    applied (the metadata counts are written by one attribution instance)."""
    def done():
        ensure_running(cluster, job_id)
        counts = total_counts(output)
        return counts["records_in"] == records and counts["metadata_events"] == metadata_events
    cluster.wait(done, TIMEOUT_S, f"job {job_id} to parse {records} records and "
                                  f"{metadata_events} metadata events", poll_s=1)


def _kept_alive(check, keep_alive):
    """`check`, calling `keep_alive` every KEEP_ALIVE_S as well, as streaming.wait_for does:
    the windows close at the first flush after the other shards have been idle
    (streaming.Writer.finish)."""
    kept_alive = [time.monotonic()]

    def poll():
        if time.monotonic() - kept_alive[0] >= KEEP_ALIVE_S:
            keep_alive()
            kept_alive[0] = time.monotonic()
        return check()
    return poll


def _parsed_at_least(cluster, job_id, output, records) -> bool:
    ensure_running(cluster, job_id)
    return total_counts(output)["records_in"] >= records


def _closed_windows_equal(cluster, job_id, output, first_open, expected) -> bool:
    ensure_running(cluster, job_id)
    return closed_aggregates(output, first_open) == expected


def test_upgrade_through_a_savepoint_on_kinesis_loses_and_repeats_nothing(
        kinesis_local, cluster, estate, tmp_path):
    endpoint = kinesis_local.endpoint
    kinesis = kinesis_client.client(KinesisSection(endpoint=endpoint))
    kinesis_client.create_stream(kinesis, FLOWS, 2)
    kinesis_client.create_stream(kinesis, META, 1)
    writer = Writer(kinesis, estate, {ACCOUNT_A: FLOWS, ACCOUNT_B: FLOWS}, META)
    with open(estate.snapshot) as fh:
        snapshot_events = sum(1 for line in fh if line.strip())
    output = str(tmp_path / "out")
    first, stopped, rest = estate.deliveries[:2], estate.deliveries[2:3], estate.deliveries[3:]
    assert first and stopped and rest

    # The second delivery's changelog is held back: its flows are in keyed state at the stop.
    writer.deliver(first[:1])
    deliver_flows(writer, first[1:])
    job = cluster.submit(_config(tmp_path, "base", BASE, endpoint, estate.snapshot), None, None,
                         output, job_name="flowdredge kinesis savepoint test")
    _wait_for_parsed(cluster, job, output, writer.records_written,
                     snapshot_events + writer.changes_written)
    # Windows are written when the watermark passes them: wait until some have been, so that
    # written windows (in the aggregates' in-progress file) cross the savepoint as well as open
    # ones (the flows' out-of-orderness keeps the latest 5 minutes open).
    first_window_end_ms = (estate.scenario.start + 60) * 1000
    cluster.wait(lambda: window_watermark(cluster, job, first_window_end_ms), TIMEOUT_S,
                 "the window operator's watermark to pass the first window")
    savepoint = cluster.stop_with_savepoint(job)
    before = total_counts(output)
    assert before["flows_aggregated"] < before["flows_parsed"], "no flows waited across the stop"
    assert not any(read_records(output, "enriched")), "enriched is off before the upgrade"

    # Written while the job is stopped, with the changelog held back so far: read from the
    # shard positions in the savepoint.
    writer.deliver(stopped)
    job = cluster.submit(_config(tmp_path, "upgraded", UPGRADED, endpoint, estate.snapshot),
                         None, None, output, savepoint=savepoint,
                         job_name="flowdredge kinesis savepoint test, upgraded")
    writer.deliver(rest)
    _wait_for_parsed(cluster, job, output, writer.records_written,
                     snapshot_events + writer.changes_written)
    assert max(v["parallelism"] for v in cluster.rest(f"/jobs/{job}")["vertices"]) == 2
    first_open = writer.finish(FLOWS)
    expected = expected_aggregates(estate)
    cluster.wait(_kept_alive(lambda: _closed_windows_equal(cluster, job, output, first_open,
                                                           expected), writer.flush),
                 TIMEOUT_S, "the estate's windows to equal the reference", poll_s=POLL_S)
    # The flushes sent meanwhile counted before the stop: it reads no record more.
    cluster.wait(lambda: _parsed_at_least(cluster, job, output, writer.records_written),
                 TIMEOUT_S, f"job {job} to count the {writer.records_written} records written",
                 poll_s=POLL_S)
    cluster.stop_with_savepoint(job, drain=True)

    # Each window's row written once: a repeat, even an equal one, fails (job_aggregates).
    assert closed_aggregates(output, first_open) == expected
    counts = total_counts(output)
    assert counts["records_in"] == writer.records_written
    assert counts["flows_aggregated"] == counts["flows_parsed"]
    assert counts["flows_late"] == 0 and counts["groups_after_max_wait"] == 0
    # The added output holds every flow attributed after the upgrade, once: those that waited
    # across the stop too.
    enriched = sum(1 for _ in read_records(output, "enriched"))
    assert enriched == counts["flows_aggregated"] - before["flows_aggregated"]
