"""The streaming job's plan (job.flink.run.kinesis_job, as a cluster and Managed Flink build it)
against a savepoint's needs: every operator has a name and a uid, and each stateful operator
keeps its uid when an output is added (enriched, the security views, the Kinesis outputs) or the
parallelism and batching change. The job is built over streams on the local Kinesis API server,
not run; tests/test_kinesis_savepoint.py restores a real savepoint for one of these upgrades."""
import pytest

import plans
from flowdredge.connectors.kinesis import client as kinesis_client
from flowdredge.job.config import Config

pytestmark = pytest.mark.kinesis

FLOWS = ("plan-flows-a", "plan-flows-b")
META, AGGREGATES, EVENTS = "plan-meta", "plan-aggregates", "plan-events"
BASE = {"job": {"parallelism": 1},
        "outputs": {"enriched": False, "security": False}}
# What an upgrade may change, one at a time and then together.
CHANGES = {
    "enriched": {"outputs": {"enriched": True, "security": False}},
    "security": {"outputs": {"enriched": False, "security": True}},
    "aggregates stream": {"kinesis": {"aggregates_stream": AGGREGATES}},
    "parallelism and batches": {"job": {"parallelism": 2, "bundle_size": 20},
                                "kinesis": {"batch_records": 50, "batch_wait_ms": 100}},
    "everything": {"job": {"parallelism": 2},
                   "outputs": {"enriched": True, "security": True},
                   "kinesis": {"aggregates_stream": AGGREGATES,
                               "security_events_stream": EVENTS}},
}


@pytest.fixture(scope="module")
def streams(kinesis_local, tmp_path_factory):
    kinesis = kinesis_client.client(Config().replace(
        kinesis={"endpoint": kinesis_local.endpoint}).kinesis)
    for name, shards in ((FLOWS[0], 2), (FLOWS[1], 1), (META, 1), (AGGREGATES, 1),
                         (EVENTS, 1)):
        kinesis_client.create_stream(kinesis, name, shards)
    snapshot = tmp_path_factory.mktemp("snapshot") / "snapshot.jsonl"
    snapshot.write_text("")
    return {"endpoint": kinesis_local.endpoint, "flow_streams": list(FLOWS),
            "metadata_stream": META, "metadata_snapshot": str(snapshot)}


def _sections(streams, change: dict) -> dict:
    sections = {name: {**values, **change.get(name, {})} for name, values in BASE.items()}
    sections["kinesis"] = {**streams, **change.get("kinesis", {})}
    return sections


# Every plan the tests below hold to their uids, by name: the base's, each change's, and the
# security views' with the Kinesis outputs.
PLANS = {"base": {}, **CHANGES, "security and the Kinesis outputs": {
    **CHANGES["security"],
    "kinesis": {"aggregates_stream": AGGREGATES, "security_events_stream": EVENTS}}}


@pytest.fixture(scope="module")
def built(tmp_path_factory, streams):
    """PLANS' plans over the streams, built in one process (plans.operators)."""
    return plans.operators(tmp_path_factory.mktemp("plan"), {
        name: _sections(streams, change) for name, change in PLANS.items()})


@pytest.fixture(scope="module")
def base_plan(built):
    return plans.stateful(built["base"])


def test_every_operator_of_the_streaming_job_has_a_name_and_a_uid(built):
    ops = built["everything"]
    assert plans.missing_uids(ops) == []
    uids = {uid for uid, *_ in ops}
    assert {f"flow-stream-{name}" for name in FLOWS} | {"metadata-stream", "shard-batches",
                                                        "attribute-flows"} <= uids


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_an_upgrade_keeps_every_stateful_uid_of_the_streaming_job(base_plan, built, change):
    assert {"flow-stream-plan-flows-a", "metadata-stream"} <= set(base_plan)
    assert plans.lost(base_plan, built[change]) == []


def test_the_kinesis_outputs_keep_the_security_views_uids(built):
    before = plans.stateful(built["security"])
    assert {"security-windows", "security-events"} <= set(before)
    assert plans.lost(before, built["security and the Kinesis outputs"]) == []
