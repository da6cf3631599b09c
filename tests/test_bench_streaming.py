"""bench.streaming at a tiny rate for a few seconds: the streaming benchmark keeps producing
well-formed figures (no speed asserted)."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.unit
def test_a_failed_run_keeps_what_it_measured(tmp_path, monkeypatch):
    """An hour's soak whose producer died at its end printed a traceback and nothing else."""
    from bench import streaming
    samples = [{"time": t, "resident_mb": {"jvm": 700 + t, "python_workers": 300},
                "checkpoint": {"size_mb": 0.7, "duration_ms": 40, "failed": 0}}
               for t in range(100, 200)]

    def failing(args, report):
        report.update(samples=samples, measure_from=100)
        raise SystemExit("the producer failed (1)")
    monkeypatch.setattr(streaming, "run_bench", failing)
    with pytest.raises(SystemExit, match="the producer failed"):
        streaming.main(["--json", str(tmp_path / "r.json"), "--work", str(tmp_path)])
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failure"] == "the producer failed (1)" and len(report["samples"]) == 100
    assert report["growth"]["resident_mb_jvm"] == [804.5, 894.5]
    assert report["growth"]["checkpoint_size_mb"] == [0.7, 0.7]


@pytest.mark.kinesis
def test_streaming_bench_measures_windows_and_lag(kinesis_local, tmp_path):
    # A given server (--endpoint), as for real Kinesis: the bench starts none of its own. A
    # window's last row comes about a second after it could close (p99 1.05 s on a loaded
    # 2-core machine): a 10-s drain is ample, and 5 s of warm-up cover the job's first reads.
    done = subprocess.run(
        [sys.executable, "-m", "bench.streaming", "--endpoint", kinesis_local.endpoint,
         "--stream-prefix", "smoke", "--rate", "1000", "--minutes", "0.25",
         "--warmup-seconds", "5", "--drain-seconds", "10",
         "--estate-minutes", "1", "--speedup", "60",
         "--events-per-record", "100", "--sample-seconds", "2", "--extra-ips", "1000",
         "--work", str(tmp_path)],
        cwd=ROOT, env={**subprocess_env(), "FLINK_LOG_DIR": str(tmp_path / "logs")},
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    produced, latency, lag = report["produced"], report["latency"], report["lag"]
    assert produced["records"] > 0
    assert produced["flow_records_read_back"] == produced["records"]
    # 15 s at 60 event seconds per second: a window a second, each closed and written.
    assert latency["windows"] >= 5
    assert latency["windows_without_rows"] == 0
    assert 0 < latency["added_latency_p50_s"] <= latency["added_latency_p99_s"]
    assert latency["rows_per_window_median"] > 0
    assert lag["samples"] >= 2 and lag["produced_records_per_s"] > 0
    assert set(lag["cores_used"]) >= {"kinesis_local", "producer", "jvm", "python_workers"}
    assert report["inputs"]["snapshot_lines"] > 1000
    assert report["state"]["resident_mb_peak"]["jvm"] > 0
    assert report["state"]["resident_mb_peak"]["python_workers"] > 0
    growth = report["growth"]
    assert all(mb > 0 for mb in growth["resident_mb_jvm"] + growth["resident_mb_python_workers"])
    assert "| added latency, last row: p50 / p99 / max, s |" in done.stdout
    assert "| Python workers' CPU a flow read, us | " in done.stdout
