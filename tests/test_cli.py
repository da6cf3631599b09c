"""The `flowdredge` command as a user runs it (a subprocess)."""
import os
import subprocess
import sys

import pytest

from helpers import job_aggregates, subprocess_env
from job.generate import Scenario, generate
import reference

BIN = os.path.join(os.path.dirname(sys.executable), "flowdredge")


def flowdredge(*args, cwd=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env=subprocess_env())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-inputs")
    return folder, generate(Scenario(minutes=3, flows_per_minute=200, seed=5), str(folder))


@pytest.mark.minicluster
def test_replay_writes_the_contract_and_prints_a_summary(inputs, tmp_path):
    folder, out = inputs
    flows = str(folder / "flows")
    result = flowdredge("replay", "--flows", flows, "--metadata", out.metadata_file,
                        "--output", str(tmp_path / "out"), "--parallelism", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"flows aggregated: {out.flows:,}" in result.stdout
    assert "top app -> app edges by bytes" in result.stdout
    assert "[flowdredge] staged" in result.stderr          # progress lines on stderr
    assert job_aggregates(str(tmp_path / "out")) == reference.aggregates([flows], [out.metadata_file])

    again = flowdredge("replay", "--flows", flows, "--metadata", out.metadata_file,
                       "--output", str(tmp_path / "out"))
    assert again.returncode == 2 and "--overwrite" in again.stderr

    summary = flowdredge("summary", str(tmp_path / "out"))
    assert summary.returncode == 0 and f"flows aggregated: {out.flows:,}" in summary.stdout


@pytest.mark.unit
@pytest.mark.parametrize("args,message", [
    (["--metadata", "/nonexistent/changes.jsonl"], "no such metadata file"),
    (["--flows", "/nonexistent/flows"], "no such file or folder"),
    (["--config", "/nonexistent/c.yaml"], "cannot read config"),
])
def test_bad_arguments_are_clear_errors(inputs, tmp_path, args, message):
    folder, out = inputs
    base = {"--flows": str(folder / "flows"), "--metadata": out.metadata_file,
            "--output": str(tmp_path / "out")}
    base.update(dict(zip(args[::2], args[1::2])))
    result = flowdredge("replay", *[x for kv in base.items() for x in kv])
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
