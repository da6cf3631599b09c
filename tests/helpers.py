"""Running the job on files and reading its outputs back, for the mini-cluster tests."""
import os

from job.cluster import child_env
from job.config import Config
from job.outputs import read_records, total_counts  # noqa: F401 (re-exported for tests)
from job.replay import stage_flows, stage_metadata


def subprocess_env() -> dict:
    """This process's environment for a child that starts Flink (job.cluster.child_env)."""
    return child_env()


def run_replay(flow_paths, metadata_paths, output_dir, config: Config):
    from job.flink.run import run_files
    staged_flows = os.path.join(output_dir, "staging", "flow-records.txt")
    staged_metadata = os.path.join(output_dir, "staging", "metadata.jsonl")
    stage_flows(flow_paths, staged_flows, config.flows.chunk_lines)
    stage_metadata(metadata_paths, staged_metadata, config.metadata.chunk_lines)
    run_files(staged_flows, staged_metadata, output_dir, config, job_name="flowdredge test")
    return output_dir


def job_aggregates(output_dir):
    """Aggregate rows keyed like tests.reference.aggregates; fails on duplicate keys."""
    rows = {}
    for r in read_records(output_dir, "aggregates"):
        key = (r["window_start"], r["src_app"], r["src_region"], r["dst_app"], r["dst_region"],
               r["dst_port"], r["protocol"], r["action"])
        assert key not in rows, f"aggregate row emitted twice: {key}"
        rows[key] = (r["flows"], r["packets"], r["bytes"])
    return rows

