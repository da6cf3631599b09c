"""Upgrades through savepoints on a local standalone cluster (operate.cluster, the Flink that ships
with PyFlink): the job follows folders of input, is stopped with a savepoint midway, resumed
from it as a changed job, and its aggregates over the whole input equal the independent
computation (tests/reference.py): nothing lost, nothing counted twice.

The unbounded input here is the file source in follow mode; tests/test_kinesis_savepoint.py does
the same with Kinesis sources. The plan tests hold every layout's operators to a name and a uid,
and each stateful operator to its uid when outputs are added."""
import gzip
import json
import os
from collections import Counter

import pytest

import plans
import reference
from helpers import ensure_running, job_aggregates, read_records, window_watermark
from flowdredge.operate.cluster import feed
from flowdredge.operate.cluster import main as cluster_main
from flowdredge.synthetic.estate import Scenario, generate
from flowdredge.job.replay import delivery_order, expand

# 20 minutes in four 5-minute deliveries: the first two are fed before the savepoint.
SCENARIO = Scenario(minutes=20, flows_per_minute=150, instances_per_app=3,
                    churn_per_minute=3.0, seed=5)
CHUNK_LINES = 100
# The changelog fed before the savepoint stops this long before the last flow fed with it:
# the latest flows of the first part wait for metadata in keyed state across the savepoint.
METADATA_SHORTFALL_S = 120
TIMEOUT_S = 600   # a loaded 2-core machine; every wait polls and returns as soon as it can

BASE = {"job": {"parallelism": 1, "checkpoint_interval_seconds": 2},
        "outputs": {"enriched": False, "security": False}}
# The upgrade: another parallelism, bundle size and metadata poll interval, and one output more.
UPGRADED = {"job": {"parallelism": 2, "checkpoint_interval_seconds": 2, "bundle_size": 20},
            "metadata": {"poll_interval_ms": 500},
            "outputs": {"enriched": True, "security": False}}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("inputs"))
    out = generate(SCENARIO, folder)
    files = sorted(expand([os.path.join(folder, "flows")]), key=delivery_order)
    stamps = sorted({delivery_order(f)[0] for f in files})
    first = [f for f in files if delivery_order(f)[0] in stamps[:2]]
    rest = [f for f in files if f not in first]
    # Flows of the first two deliveries start before this (synthetic.estate: 5-minute slots).
    first_end_ms = (SCENARIO.start + 600) * 1000
    with open(out.metadata_file) as fh:
        lines = [line for line in fh if line.strip()]
    cut_ms = first_end_ms - METADATA_SHORTFALL_S * 1000
    split = next(i for i, line in enumerate(lines)
                 if json.loads(line)["type"] == "HEARTBEAT"
                 and json.loads(line)["ts"] >= cut_ms) + 1
    meta = []
    for name, part in (("changelog-1.jsonl", lines[:split]), ("changelog-2.jsonl", lines[split:])):
        path = os.path.join(folder, name)
        with open(path, "w") as fh:
            fh.writelines(part)
        meta.append(path)
    return {"generated": out, "flows": (first, rest), "metadata": meta}


def _config(tmp_path, name, sections) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(sections))   # JSON is YAML
    return str(path)


def _counts(output):
    """Totals per stage of the counts output (committed files only)."""
    totals = {}
    for record in read_records(output, "counts"):
        totals.setdefault(record.pop("stage"), Counter()).update(record)
    return totals


def _wait_for_counts(cluster, job_id, output, records, metadata_events):
    """Until the committed counts show every record fed parsed and every changelog event
    applied (the metadata counts are written by one attribution instance)."""
    def done():
        ensure_running(cluster, job_id)
        counts = _counts(output)
        return (counts.get("parse", Counter())["records_in"] == records
                and counts.get("metadata", Counter())["metadata_events"] == metadata_events)
    cluster.wait(done, TIMEOUT_S, f"job {job_id} to process {records} records and "
                                  f"{metadata_events} metadata events", poll_s=1)


@pytest.mark.cluster
def test_upgrade_through_a_savepoint_loses_and_repeats_nothing(cluster, inputs, tmp_path,
                                                               capsys):
    out = inputs["generated"]
    first, rest = inputs["flows"]
    output = str(tmp_path / "out")
    flows_dir, meta_dir = str(tmp_path / "watch" / "flows"), str(tmp_path / "watch" / "meta")

    job = cluster.submit(_config(tmp_path, "base", BASE), flows_dir, meta_dir, output,
                         follow_seconds=1, job_name="flowdredge savepoint test",
                         flows_layout="staged")
    cluster.wait_for_state(job, ("RUNNING",), TIMEOUT_S)
    records_1, events_1 = feed(first, inputs["metadata"][:1], flows_dir, meta_dir, "part-1",
                               CHUNK_LINES)
    _wait_for_counts(cluster, job, output, records_1, events_1)
    # Windows are written when the watermark passes them: wait until some have been, so that
    # written windows (in the aggregates' in-progress file) cross the savepoint as well as open
    # ones (window state; the flows' out-of-orderness keeps the latest 5 minutes open).
    first_window_end_ms = (SCENARIO.start + 60) * 1000
    watermark = cluster.wait(
        lambda: window_watermark(cluster, job, first_window_end_ms), TIMEOUT_S,
        "the window operator's watermark to pass the first window")
    savepoint = cluster.stop_with_savepoint(job)

    counts_before = _counts(output)
    assert counts_before["attribute"]["groups_waited"] > 0, "no flows waited across the savepoint"
    assert not any(read_records(output, "enriched")), "enriched is off before the upgrade"

    job = cluster.submit(_config(tmp_path, "upgraded", UPGRADED), flows_dir, meta_dir, output,
                         savepoint=savepoint, follow_seconds=1,
                         job_name="flowdredge savepoint test, upgraded", flows_layout="staged")
    cluster.wait_for_state(job, ("RUNNING",), TIMEOUT_S)
    records_2, events_2 = feed(rest, inputs["metadata"][1:], flows_dir, meta_dir, "part-2",
                               CHUNK_LINES)
    _wait_for_counts(cluster, job, output, records_1 + records_2, events_1 + events_2)
    # `scripts/cluster status`: the upgraded job's counters (since its start) summed over its
    # two parse instances, as the REST API's metric store has them (refreshed every second: the
    # cluster fixture).
    parsed = _counts(output)["parse"]["flows_parsed"] - counts_before["parse"]["flows_parsed"]

    def status():
        assert cluster_main(["--dir", cluster.folder, "status", job]) == 0
        return capsys.readouterr().out.startswith(f"RUNNING | flows parsed {parsed:,} ")
    cluster.wait(status, 60, f"scripts/cluster status to say {parsed:,} flows parsed")
    cluster.stop_with_savepoint(job, drain=True)

    # Each window's row written once: a repeat, even an equal one, fails (job_aggregates).
    assert job_aggregates(output) == reference.aggregates(first + rest, inputs["metadata"])
    counts = _counts(output)
    attributed = counts["attribute"]
    assert attributed["flows_aggregated"] == out.flows
    assert attributed["flows_late"] == 0
    assert attributed["groups_after_max_wait"] == 0
    assert attributed["metadata_late"] == 0
    # The added output is there, for flows attributed after the upgrade only.
    enriched = sum(1 for _ in read_records(output, "enriched"))
    assert 0 < enriched < out.flows
    print(f"savepoint {savepoint} at window watermark {watermark}")


def _layout(tmp_path, layout) -> tuple:
    """(flows, metadata) for a job over files of `layout` (job.flink.run.deployed_job): empty
    staged folders, or one AWS flow file (the job is built, not run)."""
    flows, metadata = tmp_path / "f", tmp_path / "m"
    flows.mkdir(exist_ok=True)
    metadata.mkdir(exist_ok=True)
    if layout == "aws":
        name = "123456789012_vpcflowlogs_us-east-1_fl-1_20260101T0005Z_a.log.gz"
        (flows / name).write_bytes(gzip.compress(b"version account-id\n"))
    return str(flows), str(metadata)


@pytest.fixture(scope="module", params=["staged", "aws"])
def layout(request):
    return request.param


VIEWS = {**BASE, "outputs": {"enriched": False, "security": True}}
# Every plan the tests below hold to their uids, by name.
PLANS = {"base": BASE, "every output": {"job": {"parallelism": 2}}, "upgraded": UPGRADED,
         "views": VIEWS, "views, 120-s windows": {**VIEWS, "job": {**BASE["job"],
                                                                    "window_seconds": 120}},
         "views and enriched": {**BASE, "outputs": {"enriched": True, "security": True}}}


@pytest.fixture(scope="module")
def built(tmp_path_factory, layout):
    """PLANS' plans over files of `layout`, built in one process (plans.operators)."""
    folder = tmp_path_factory.mktemp("plan")
    return plans.operators(folder, PLANS, *_layout(folder, layout), layout)


@pytest.fixture(scope="module")
def base_plan(built):
    return plans.stateful(built["base"])


@pytest.mark.minicluster
def test_every_operator_has_a_name_and_a_uid(built):
    ops = built["every output"]
    assert plans.missing_uids(ops) == []
    assert {"attribute-flows", "parse-flow-records", "parse-metadata-events"} <= {
        uid for uid, *_ in ops}


@pytest.mark.minicluster
def test_an_added_output_keeps_every_stateful_uid(base_plan, built):
    assert plans.lost(base_plan, built["upgraded"]) == []


@pytest.mark.minicluster
def test_another_window_length_keeps_no_window_state(built):
    """job.window_seconds may not change on a resume (docs/operations.md): a reviewer's resume
    at 120 s of a 60-s job was taken silently and wrote windows of both lengths. The windows'
    uids carry their length now: the resume is refused, or drops them with
    --allow-non-restored-state; the ownership state and the sources' stay."""
    before = plans.stateful(built["views"])
    lost = plans.lost(before, built["views, 120-s windows"])
    assert any(uid.endswith("_global-window-aggregate") for uid in lost)
    assert {"security-windows", "security-events"} <= set(lost)
    assert all(uid.startswith(("aggregates-", "security-")) for uid in lost), lost


@pytest.mark.minicluster
def test_adding_the_security_views_keeps_every_stateful_uid(base_plan, built):
    after = built["views"]
    assert plans.lost(base_plan, after) == []
    # And the views' own state stays where it is when another output is added next.
    with_views = plans.stateful(after)
    assert {"security-windows", "security-events"} <= set(with_views)
    assert plans.lost(with_views, built["views and enriched"]) == []
