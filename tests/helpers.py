"""Running the job on files and reading its outputs back, for the mini-cluster tests; a job on a
local standalone cluster; the moto server the AWS tests talk to; the scripts/ wrappers with a
stand-in setup and Python."""
import contextlib
import ctypes
import errno
import gc
import logging
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pyarrow as pa
import pytest

from flowdredge.connectors.kinesis.local import free_port
from flowdredge.explore.health import JobRest
from flowdredge.operate.cluster import TERMINAL, Cluster, ClusterError, child_env
from flowdredge.job.config import Config
from flowdredge.job.parse import FlowGroup
from flowdredge.job.outputs import read_records, total_counts  # noqa: F401 (re-exported for tests)
from flowdredge.job.replay import stage_flows, stage_metadata


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wrapper_calls(tmp_path, script: str, args) -> list:
    """What `scripts/<script> ARGS` calls: its copy runs beside a scripts/setup, a
    .venv/bin/python and a .venv/bin/flowdredge that only say their arguments ("setup ARGS",
    "python ARGS", "flowdredge ARGS")."""
    calls = tmp_path / "calls"
    (tmp_path / "scripts").mkdir(exist_ok=True)
    (tmp_path / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    for path, name in ((tmp_path / "scripts" / "setup", "setup"),
                       (tmp_path / ".venv" / "bin" / "python", "python"),
                       (tmp_path / ".venv" / "bin" / "flowdredge", "flowdredge")):
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n')
        path.chmod(0o755)
    shutil.copy(os.path.join(ROOT, "scripts", script), tmp_path / "scripts" / script)
    calls.write_text("")
    subprocess.run(["bash", str(tmp_path / "scripts" / script), *args], check=True)
    return [line.rstrip() for line in calls.read_text().splitlines()]


def ctrl_c_as_in_a_terminal() -> None:
    """A child's preexec_fn: SIGINT at its default, as a terminal's Ctrl-C finds it. A shell
    starts a background job with SIGINT ignored (`cmd &`, nohup), children inherit that, and
    Python then installs no KeyboardInterrupt: a test pressing Ctrl-C would wait forever."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def open_fifo_for_writing(fifo: str, timeout_s: float) -> int:
    """The FIFO's write end (a blocking descriptor) once a job's source has opened it to read;
    fails after the deadline, where a blocking open would hang if the job never got there."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:   # ENXIO: no reader yet
            if error.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        os.set_blocking(fd, True)
        return fd


def subprocess_env() -> dict:
    """This process's environment for a child that starts Flink (operate.cluster.child_env)."""
    return child_env()


def run_files(staged_flows: str, staged_metadata: str, output_dir: str, config: Config):
    """The job over staged files (job.replay), bounded; blocks until done. Checkpoints go to
    output_dir/checkpoints unless job.checkpoint_dir says otherwise."""
    from flowdredge.job.flink.run import files_job
    files_job(config, staged_flows, staged_metadata, output_dir,
              checkpoint_dir=os.path.join(output_dir, "checkpoints")).execute("flowdredge test")


def run_replay(flow_paths, metadata_paths, output_dir, config: Config):
    staged_flows = os.path.join(output_dir, "staging", "flow-records.txt")
    staged_metadata = os.path.join(output_dir, "staging", "metadata.jsonl")
    stage_flows(flow_paths, staged_flows, config.flows.chunk_lines)
    stage_metadata(metadata_paths, staged_metadata, config.metadata.chunk_lines)
    run_files(staged_flows, staged_metadata, output_dir, config)
    return output_dir


def ensure_running(cluster: Cluster, job_id: str) -> None:
    """Raises, with the job's exception, if the job has ended."""
    state = cluster.job_state(job_id)
    if state in TERMINAL:
        raise ClusterError(f"job {job_id} is {state}; {cluster.exception(job_id)}; "
                           f"logs: {cluster.log_dir}")


def window_watermark(cluster: Cluster, job_id: str, at_least_ms: int):
    """The job's windows' watermark once it is at least `at_least_ms`, else None."""
    ensure_running(cluster, job_id)
    watermark = JobRest(cluster.url, job_id).window_watermark_ms()
    return watermark if watermark is not None and watermark >= at_least_ms else None


def job_running_then(ended: str, polls: int):
    """A stand-in for a submitted job (PyFlink's JobClient) that is RUNNING at `polls` status
    polls, then `ended`, and ends without an error."""
    from types import SimpleNamespace
    statuses = iter(["RUNNING"] * polls + [ended])
    return SimpleNamespace(
        get_job_id=lambda: "j",
        get_job_status=lambda: SimpleNamespace(result=lambda: SimpleNamespace(
            name=next(statuses))),
        get_job_execution_result=lambda: SimpleNamespace(result=lambda: None),
        cancel=lambda: SimpleNamespace(result=lambda: None))


def rest_with_failures(histories: list):
    """A JobRest class whose exception history is each of `histories` in turn, one a read
    (each newest first, (epoch ms, trace))."""
    polls = iter(histories)

    class Rest(JobRest):
        def failures(self):
            return next(polls)
    return Rest


def job_aggregates(output_dir):
    """Aggregate rows keyed like tests.reference.aggregates; fails on duplicate keys."""
    rows = {}
    for r in read_records(output_dir, "aggregates"):
        key = (r["window_start"], r["src_app"], r["src_region"], r["dst_app"], r["dst_region"],
               r["dst_port"], r["protocol"], r["action"])
        assert key not in rows, f"aggregate row emitted twice: {key}"
        rows[key] = (r["flows"], r["packets"], r["bytes"])
    return rows



@contextlib.contextmanager
def moto_server(scratch_dir):
    """moto's server over HTTP on 127.0.0.1 (yields its URL), with fake credentials and no AWS
    config or profile in this process's environment meanwhile."""
    from moto.server import ThreadedMotoServer
    with pytest.MonkeyPatch.context() as env:
        empty = os.path.join(str(scratch_dir), "no-aws-config")
        open(empty, "w").close()
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            env.delenv(name, raising=False)
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_CONFIG_FILE", empty),
                            ("AWS_SHARED_CREDENTIALS_FILE", empty),
                            ("AWS_EC2_METADATA_DISABLED", "true")):
            env.setenv(name, value)
        # One line per request is noise in a failing test's report.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


def column_group(group: FlowGroup) -> FlowGroup:
    """The group as the vectorised parser makes it: its flows as a RecordBatch of the format's
    fields, typed as job.parse_columns reads them."""
    fmt = group.fmt
    arrays = [pa.array(list(values), pa.int64() if i in fmt.int_positions else pa.string())
              for i, values in enumerate(zip(*group.flows))]
    batch = pa.RecordBatch.from_arrays(arrays, names=[f"f{i}" for i in range(len(arrays))])
    return FlowGroup(fmt, group.window_start, group.max_start, None, group.source, batch)


def plain_views(views) -> list:
    """A job.security.WindowViews as plain values to compare: each view's rows in order, the
    distinct addresses of a row (as text) after its sums; the scans' records summed by all
    their other fields (the columns group them by those, the conversations by conversation)."""
    import collections
    from flowdredge.job.addresses import address_text
    from flowdredge.job.security import ADDRESS_BITS, ADDRESS_MASK
    others, apps = list(views.others), list(views.apps)
    sets = []
    for chunks in views.sets:
        members = collections.defaultdict(set)
        for chunk in chunks:
            for member in chunk.tolist():
                members[member >> ADDRESS_BITS].add(address_text(member & ADDRESS_MASK, others))
        sets.append(members)
    rows = [[(key, list(sums) + [sets[i][row] for i in which])
             for row, (key, sums) in enumerate(view.items())]
            for view, which in ((views.dependencies, (0, 1)), (views.exposure, (2,)),
                                (views.egress, (3,)))]
    records = collections.Counter()
    if views.records[0]:
        for src, src_app, dst, port, dst_app, flows, rejected in zip(
                *(np.concatenate(chunks).tolist() for chunks in views.records)):
            records[(address_text(src, others), apps[src_app], address_text(dst, others),
                     None if port < 0 else port, apps[dst_app], bool(rejected))] += flows
    # The rejects in no order: the conversations list a conversation's records of both
    # directions together, the columns each in its first flow's place (no contract of an output).
    return rows + [sorted(views.rejects.items(), key=repr), records]


class PeakGrowth:
    """How far this process's resident memory rose above what it held at the block's start (a
    loopback job's staging and Python workers run in it: tests/test_bad_input.py). The
    kernel's own peak (VmHWM), reset at the start (/proc/self/clear_refs), not samples, and not
    the whole process tree's: the JVM, started by the first job of the process, keeps its
    first heap cap and what earlier tests grew, as this process keeps the allocator's free
    memory, which is given back first so that it cannot hide a rise."""

    def __enter__(self):
        gc.collect()
        ctypes.CDLL(None).malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        self.start = _status_bytes("VmRSS")
        return self

    def __exit__(self, *exc):
        self.peak = _status_bytes("VmHWM")
        self.growth = self.peak - self.start


def _status_bytes(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(field)
