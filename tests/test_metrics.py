"""Flink metrics of a running job, read through the mini-cluster's REST API."""
import json
import os
import time
import urllib.request
from collections import Counter

import pytest

from flowdredge.connectors.kinesis.local import free_port

from flowdredge.job.config import Config
from flowdredge.job.outputs import read_records
from flowdredge.job.flink.run import files_job
from flowdredge.job.replay import stage_flows, stage_metadata
from flowdredge.synthetic.estate import Scenario, generate

pytestmark = pytest.mark.minicluster

SCENARIO = Scenario(minutes=3, flows_per_minute=200, seed=5)


def test_counters_and_gauges_are_published(tmp_path):
    out = generate(SCENARIO, str(tmp_path / "in"))
    stage_flows([str(tmp_path / "in" / "flows")], str(tmp_path / "flows.txt"), 5000)
    # The changelog in two parts, the second written once flows wait for it, then a heartbeat.
    meta = tmp_path / "meta"
    parts = _split(out.metadata_file, SCENARIO.start + 90, tmp_path)
    _stage(parts[0], meta, tmp_path)
    config = Config().replace(job={"parallelism": 2, "checkpoint_interval_seconds": 2},
                              metadata={"poll_interval_ms": 200})
    port = free_port()
    # Following the files keeps the job running, so its metrics stay readable. The REST API's
    # metrics at most a second old, not Flink's default 10 s: each wait below ends sooner.
    env = files_job(config, str(tmp_path / "flows.txt"), str(meta), str(tmp_path / "out"),
                    follow_seconds=1,
                    flink_options={"rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1",
                                   "rest.port": str(port),
                                   "metrics.fetcher.update-interval": "1000"})
    client = env.execute_async("flowdredge metrics test")
    job_id = str(client.get_job_id())
    with open(parts[0]) as fh:
        events = sum(1 for line in fh if line.strip())
    try:
        parse = _wait_for(port, job_id, "parse flow records",
                          lambda m: m.get("lines_in") == out.flows)
        assert parse["flows_parsed"] == out.flows and parse["records_in"] > 0
        # Counters at 0 read 0 (Beam reports a counter once incremented; a REST query of
        # several ids answers nothing when one is missing), each on its own operator only.
        assert parse["dead_letter"] == parse["records_skipped"] == 0
        assert "flows_late" not in parse
        # Every metadata event reaches both instances (broadcast).
        metrics = _wait_for(port, job_id, "attribute flows",
                            lambda m: m.get("metadata_events") == 2 * events
                            and m.get("ownership_ips", 0) > 0)
        assert metrics["ownership_ranges"] >= metrics["ownership_ips"]
        assert metrics["ownership_interface_conflicts"] == 0   # the scenario has no VPC claims
        assert metrics["ownership_restored_cleaned"] == 0   # a start, from no state
        assert {"event_time_lag_ms", "pending_groups", "heartbeats"} <= set(metrics)
        assert metrics["flows_late"] == metrics["groups_after_max_wait"] == 0
        assert "dead_letter" not in metrics
        metrics = _wait_for(port, job_id, "attribute flows",
                            lambda m: m.get("groups_waited", 0) > 0)
        # Flows that waited for metadata are attributed in timer callbacks, whose counts the
        # operator adds at its next element (job.flink.operators.Metrics): one more heartbeat,
        # which reaches both instances, brings every flow into flows_aggregated.
        _stage(parts[1], meta, tmp_path)
        counts = _wait_for_counts(tmp_path / "out", out.flows)
        assert counts["groups_after_max_wait"] == 0 and counts["flows_late"] == 0
        _stage(parts[2], meta, tmp_path)
        metrics = _wait_for(port, job_id, "attribute flows",
                            lambda m: m.get("heartbeats", 0) > metrics["heartbeats"]
                            and m.get("flows_aggregated") == out.flows)
        assert metrics["groups_waited"] == counts["groups_waited"]
    finally:
        client.cancel().result()


def _split(changelog, at_s: int, folder) -> list:
    """`changelog` in two files, the second from its first heartbeat at `at_s` or later, and a
    third of one heartbeat after its last event."""
    with open(changelog) as fh:
        lines = [line for line in fh if line.strip()]
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["type"] == "HEARTBEAT"
               and json.loads(line)["ts"] >= at_s * 1000) + 1
    last = max(json.loads(line)["ts"] for line in lines)
    parts = (lines[:cut], lines[cut:], [json.dumps({"type": "HEARTBEAT", "ts": last + 1000})])
    paths = [folder / f"changelog-{n}.jsonl" for n in (1, 2, 3)]
    for path, part in zip(paths, parts):
        path.write_text("".join(line.rstrip("\n") + "\n" for line in part))
    return [str(path) for path in paths]


def _wait_for_counts(output, flows, timeout_s=120) -> Counter:
    """The counts output's attribution totals once every flow is attributed (committed at a
    checkpoint)."""
    deadline, totals = time.monotonic() + timeout_s, Counter()
    while time.monotonic() < deadline:
        totals = Counter()
        for record in read_records(str(output), "counts"):
            if record.pop("stage") == "attribute":
                totals.update(record)
        if totals["flows_aggregated"] == flows:
            return totals
        time.sleep(1)
    raise AssertionError(f"the counts output did not reach {flows} flows: {totals}")


def _stage(changelog, folder, scratch) -> None:
    """Stages `changelog` into the followed `folder`, whole: written beside it, then moved."""
    staged = scratch / ("staging-" + os.path.basename(changelog))
    stage_metadata([changelog], str(staged))
    folder.mkdir(exist_ok=True)
    os.replace(staged, folder / os.path.basename(changelog))


def _wait_for(port, job_id, vertex_prefix, done, timeout_s=120):
    """Sums over subtasks of the vertex's flowdredge metrics, once `done` holds for them."""
    base = f"http://127.0.0.1:{port}/jobs/{job_id}"
    get = lambda path: json.load(urllib.request.urlopen(base + path, timeout=5))  # noqa: E731
    deadline, metrics = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            vertex = next(v for v in get("")["vertices"] if v["name"].startswith(vertex_prefix))
            ids = [m["id"] for m in get(f"/vertices/{vertex['id']}/subtasks/metrics")
                   if ".flowdredge." in m["id"]]
            if not ids:
                continue
            values = get(f"/vertices/{vertex['id']}/subtasks/metrics?agg=sum&get={','.join(ids)}")
        except (OSError, StopIteration, ValueError):
            continue
        metrics = {v["id"].rsplit(".", 1)[1]: int(v["sum"]) for v in values}
        if done(metrics):
            return metrics
    raise AssertionError(f"metrics of {vertex_prefix!r} did not settle: {metrics}")
