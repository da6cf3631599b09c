"""The tiers stay apart: `scripts/test -m unit` promises no JVM, so no test may be both `unit`
and a tier that starts Flink or a server (a module-wide `pytestmark = pytest.mark.unit` once
put mini-cluster tests into the fast tier)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.unit
def test_no_test_is_unit_and_another_tier():
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--continue-on-collection-errors",
         "-m", "unit and (minicluster or kinesis or aws or cluster)", "tests"],
        cwd=ROOT, capture_output=True, text=True)
    both = [line for line in run.stdout.splitlines() if "::" in line]
    assert both == []
    assert "deselected" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
