"""One timed run of one pipeline, in a process of its own (a fresh JVM each time), as the
harness starts it: `python -m bench.measure ours|sql ...`. Prints one JSON object.

Timings, in seconds from this process's start:
- `gateway_s`: the JVM gateway is up (PyFlink starts a JVM per client process);
- `submitted_s`: the job graph is built and handed to the local mini-cluster;
- `first_output_s`: the first output file (hidden in-progress files included) appeared;
- `last_output_s`: the last write to any output file: the input is processed, what follows is
  the final checkpoint (a bounded job waits for the next periodic one to commit its files,
  0 to checkpoint_interval_seconds later) and the shutdown;
- `finished_s`: the bounded job has ended and its outputs are committed.
`net_runtime_s` is Flink's own job runtime (deployment to end). `cpu_s` is the CPU time of
this process and all its descendants (JVM, Python workers), sampled with psutil; `cpu_by_kind`
splits it: this process (`driver`), the JVM (`jvm`) and the Python workers (`python_workers`),
whose CPU is what the job's Python code costs.
"""
import argparse
import json
import os
import sys
import threading
import time

import psutil

PROCESS_START = time.monotonic()
PROCESS_START_EPOCH = time.time()


def _since_start() -> float:
    return round(time.monotonic() - PROCESS_START, 3)


class OutputWatcher(threading.Thread):
    """Notes when the first file appears under `folder` and the latest modification time of
    any file there (polled every 50 ms; renames at commit keep modification times)."""

    def __init__(self, folder: str):
        super().__init__(daemon=True)
        self.folder, self.first, self.last_mtime = folder, None, None
        self._halt = threading.Event()

    def _poll(self):
        for root, _dirs, files in os.walk(self.folder):
            for name in files:
                try:
                    mtime = os.stat(os.path.join(root, name)).st_mtime
                except OSError:   # renamed at commit between listing and stat
                    continue
                if self.first is None:
                    self.first = _since_start()
                if self.last_mtime is None or mtime > self.last_mtime:
                    self.last_mtime = mtime

    def run(self):
        while not self._halt.wait(0.05):
            self._poll()

    def stop(self):
        self._halt.set()
        self._poll()

    @property
    def last(self):
        return None if self.last_mtime is None else round(self.last_mtime - PROCESS_START_EPOCH, 3)


class TreeCpuSampler(threading.Thread):
    """CPU seconds (user + system) of this process and its descendants. Children are sampled
    every 0.2 s, so a process that ends loses at most its last 0.2 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.last = {}   # (pid, create time) -> cpu seconds
        self.kinds = {}  # (pid, create time) -> driver, jvm or python_workers
        self._halt = threading.Event()
        self._root = psutil.Process()

    def _sample(self):
        for proc in [self._root, *self._root.children(recursive=True)]:
            try:
                with proc.oneshot():
                    cpu = proc.cpu_times()
                    key = (proc.pid, proc.create_time())
                    self.last[key] = cpu.user + cpu.system
                    if key not in self.kinds:
                        self.kinds[key] = ("driver" if proc.pid == self._root.pid else
                                           "jvm" if proc.name() == "java" else "python_workers")
            except psutil.Error:   # ended between the listing and the reading
                pass

    def run(self):
        while not self._halt.wait(0.2):
            self._sample()

    def stop(self) -> float:
        self._halt.set()
        self._sample()
        return round(sum(self.last.values()), 2)

    def by_kind(self) -> dict:
        totals = dict.fromkeys(("driver", "jvm", "python_workers"), 0.0)
        for key, seconds in self.last.items():
            totals[self.kinds[key]] += seconds
        return {kind: round(seconds, 2) for kind, seconds in totals.items()}


def run_ours(args) -> dict:
    from flowdredge.job import config as config_mod
    from flowdredge.job.flink.run import aws_files_job, files_job, start_jvm
    timings = {}
    config = config_mod.load(args.config).replace(job={"parallelism": args.parallelism})
    start_jvm(config)   # as `flowdredge replay` starts it: job.local_heap_mb's heap cap
    timings["gateway_s"] = _since_start()
    # Submitted asynchronously only to note when the job graph has been handed over.
    if args.aws_flows:
        from flowdredge.job.replay import flow_files
        env = aws_files_job(config, flow_files([args.aws_flows])[0], args.staged_metadata,
                            args.output, checkpoint_dir=args.checkpoint_dir)
    else:
        env = files_job(config, args.staged_flows, args.staged_metadata, args.output,
                        checkpoint_dir=args.checkpoint_dir)
    client = env.execute_async("flowdredge bench")
    timings["submitted_s"] = _since_start()
    result = client.get_job_execution_result().result()
    timings["net_runtime_s"] = result.get_net_runtime() / 1000
    return timings


def run_sql(args) -> dict:
    from flowdredge.connectors.streams import jvm
    from bench import sql_baseline
    timings = {}
    jvm()   # starts the JVM
    timings["gateway_s"] = _since_start()

    def submitted():
        timings["submitted_s"] = _since_start()

    # Without --out-of-orderness, the job's default bound (sql_baseline.run's).
    bound = {} if args.out_of_orderness is None else \
        {"flow_out_of_orderness_seconds": args.out_of_orderness}
    result = sql_baseline.run(args.s3_dir, args.changelog, args.output, args.parallelism,
                              checkpoint_dir=args.checkpoint_dir, on_submitted=submitted,
                              **bound)
    timings["net_runtime_s"] = result.get_net_runtime() / 1000
    return timings


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pipeline", choices=("ours", "sql"))
    p.add_argument("--output", required=True)
    p.add_argument("--parallelism", type=int, required=True)
    p.add_argument("--checkpoint-dir", required=True)
    p.add_argument("--staged-flows", help="ours: job.replay's staged flow records")
    p.add_argument("--aws-flows", help="ours: flow files as AWS wrote them, read by the job "
                   "(instead of --staged-flows)")
    p.add_argument("--staged-metadata", help="ours: job.replay's staged changelog")
    p.add_argument("--config", help="ours: a job config file (YAML)")
    p.add_argument("--s3-dir", help="sql: the S3 flow-log files (a folder, or one file)")
    p.add_argument("--changelog", help="sql: the changelog file")
    p.add_argument("--out-of-orderness", type=int,
                   help="sql: the flows' watermark bound, seconds (default: the job's, "
                   "flows.out_of_orderness_seconds)")
    args = p.parse_args(argv)
    watcher = OutputWatcher(args.output)
    sampler = TreeCpuSampler()
    watcher.start()
    sampler.start()
    timings = run_ours(args) if args.pipeline == "ours" else run_sql(args)
    timings["finished_s"] = _since_start()
    watcher.stop()
    timings["first_output_s"] = watcher.first
    timings["last_output_s"] = watcher.last
    timings["cpu_s"] = sampler.stop()
    timings["cpu_by_kind"] = sampler.by_kind()
    print(json.dumps({"pipeline": args.pipeline, "parallelism": args.parallelism, **timings}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
