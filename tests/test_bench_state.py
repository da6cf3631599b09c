"""bench.state on a few thousand IPs: the state benchmark keeps working (no timing asserted)."""
import json
import os
import subprocess
import sys

import pytest

from flowdredge.connectors.kinesis.local import free_port

from tests.helpers import subprocess_env

pytestmark = pytest.mark.minicluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_state_bench_loads_checkpoints_and_restores(tmp_path):
    ips = 3000
    done = subprocess.run(
        [sys.executable, "-m", "bench.state", "--ips", str(ips), "--flows", "2000",
         "--work", str(tmp_path), "--checkpoint-interval", "2", "--checkpoints", "1",
         "--rest-port", str(free_port()), "--timeout", "240"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    assert report["errors"] == []
    assert report["inputs"]["changelog_lines"] == ips + 1   # the snapshot and one HEARTBEAT
    run, restore = report["run"], report["restore"]
    assert run["memory"]["ownership_ips_min"] == ips
    assert run["checkpoints"][0]["attribution_state_mb"] > 0
    assert run["memory"]["live_heap_classes"][0][1] > 0
    assert os.path.isdir(run["savepoint"]["location"].replace("file:", "", 1))
    assert restore["first_checkpoint"]["attribution_state_mb"] > 0
    assert restore["running_after_submit_s"] is not None
    assert restore["memory"]["ownership_ips_min"] == ips
    assert "| restore: submission to first checkpoint completed, s |" in done.stdout
