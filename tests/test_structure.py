"""The pure-Python core must not import pyflink (tested without a JVM); every Flink operator
has a name and a stable uid."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = ["job.parse", "job.parse_columns", "job.ownership", "job.attribute", "job.aggregate", "job.codec",
        "job.enriched", "job.config", "job.replay", "synthetic.estate", "explore.summary", "job.outputs",
        "job.ipranges", "explore.query", "explore.report", "job.security", "job.managed", "operate.package",
        "operate.deploy", "operate.cluster", "job.submit", "schemas.outputs",
        "schemas.metadata", "schemas.flowlog", "schemas.security"]


@pytest.mark.unit
def test_core_does_not_import_pyflink():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE)
            + "bad = [m for m in sys.modules if m.startswith('pyflink')]\n"
            + "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.minicluster
def test_every_operator_has_a_name_and_uid(tmp_path):
    from connectors.files import file_sinks, file_sources
    from job.config import Config
    from job.flink.pipeline import build_pipeline
    from job.flink.run import make_env
    (tmp_path / "f.txt").write_text("")
    (tmp_path / "m.jsonl").write_text("")
    config = Config().replace(job={"parallelism": 2})
    env = make_env(config)
    build_pipeline(env, file_sources(str(tmp_path / "f.txt"), str(tmp_path / "m.jsonl")),
                   file_sinks(str(tmp_path / "out")), config)
    transformations = env._j_stream_execution_environment.getTransformations()
    stateful_uids = []
    for t in transformations:
        name, uid = t.getName(), t.getUid()
        # Partitioning steps (rebalance, key_by, union) hold no state and take no uid.
        if "Partition" in t.getClass().getSimpleName() or "Union" in t.getClass().getSimpleName():
            continue
        assert uid, f"operator {name!r} ({t.getClass().getSimpleName()}) has no uid"
        stateful_uids.append(uid)
    assert len(stateful_uids) == len(set(stateful_uids))
    assert {"attribute-flows", "parse-flow-records", "parse-metadata-events"} <= set(stateful_uids)


@pytest.mark.minicluster
def test_side_outputs_go_to_their_sinks_without_a_python_step(tmp_path):
    """PyFlink's get_side_output would put an identity map in Python behind every side output
    (job.flink.streams.side_output), the security views' too."""
    from connectors.files import file_sinks, file_sources
    from job.config import Config
    from job.flink.pipeline import build_pipeline
    from job.flink.run import make_env
    (tmp_path / "f.txt").write_text("")
    (tmp_path / "m.jsonl").write_text("")
    config = Config()
    env = make_env(config)
    build_pipeline(env, file_sources(str(tmp_path / "f.txt"), str(tmp_path / "m.jsonl")),
                   file_sinks(str(tmp_path / "out")), config)
    python_steps, side_outputs_read = [], []
    for t in env._j_stream_execution_environment.getTransformations():
        python = _is_python(t)
        if python:
            python_steps.append(t.getName())
        inputs = list(t.getInputs())
        while inputs:
            i = inputs.pop()
            kind = i.getClass().getSimpleName()
            if kind == "UnionTransformation":
                inputs.extend(i.getInputs())
            elif kind == "SideOutputTransformation":
                side_outputs_read.append((t.getName(), python))
    assert {"parse flow records", "parse metadata events", "attribute flows"} <= set(python_steps)
    assert not [name for name, python in side_outputs_read if python]
    # Dead letters (2), counts (3), data quality, late, enriched: straight to their sinks.
    core = [name for name, _ in side_outputs_read if name.endswith(" files")
            and name.split()[0] in ("counts", "dead_letter", "data_quality", "late", "enriched")]
    assert sorted(core) == sorted(["counts files"] * 3 + ["dead_letter files"] * 2
                                  + ["data_quality files", "late files", "enriched files"])


def _is_python(transformation) -> bool:
    kind = transformation.getClass().getSimpleName()
    if "Python" in kind:
        return True
    if kind != "OneInputTransformation":
        return False
    operator = transformation.getOperatorFactory().getStreamOperatorClass(
        transformation.getClass().getClassLoader())
    return "python" in operator.getName().lower()
