"""The state benchmark of issue #5: N IPs of ownership state, the job's memory, its checkpoints,
and the time to restore it. `python -m bench.state --ips 1000000 --work DIR`.

1. Inputs: a changelog snapshot of N ASSIGN events (owner fields as the publisher writes them),
   then a HEARTBEAT that releases the flows; a few S3 flow-log files whose flows touch some of
   the IPs. Staged as `flowdredge replay` stages them (job.replay), into folders the job follows,
   so it keeps running after the input.
2. Run: the job (`make_env`, `build_pipeline`, file sources in follow mode, file sinks;
   outputs.enriched and outputs.security off) in a process of its own (`python -m bench.state
   job ...`) on the local mini-cluster, REST API on a fixed port, checkpoints to files. This
   process polls the REST API and psutil until the `ownership_ips` gauge of every attribution
   instance reports N, then records the next checkpoints that complete (duration, size), the
   JVM's heap (REST, and the live heap after a full GC through jcmd) and the resident memory
   of the job's processes (client, JVM, Python workers).
3. Savepoint: REST `POST /jobs/<id>/savepoints` with cancel-job, timed until the trigger
   completes.
4. Restore: a new process submits the job with `execution.state-recovery.path` = the savepoint.
   Measured from submission: (a) the attribution vertex RUNNING (Flink has restored its state
   into the backend: tasks are INITIALIZING while they restore); (b) the first checkpoint after
   the restore completed; (c) `ownership_ips` = N again on every instance. The Python cache is
   filled from broadcast state on the first element an instance sees, and a resumed source does
   not read its files again, so (c) waits for a one-HEARTBEAT changelog file written once (b)
   holds, and is reported as its own span from that write as well.

Prints the results as one JSON line and a markdown table (also WORK/results.{json,md}).
"""
import argparse
import glob
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil

from bench.harness import machine
from flowdredge.connectors import logs
from flowdredge.operate.cluster import child_env
from flowdredge.synthetic.snapshot import HEARTBEAT_TS, private_ips, write_flows, write_snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTRIBUTE_VERTEX = "attribute flows"
SAMPLE_S = 1.0
# A REST request that timed out is made this many times in all before the step fails: the
# JobManager can be too busy to answer for a while (a full heap collected), no end of the run.
REST_ATTEMPTS = 3


log = logging.getLogger("bench.state")   # not __name__: "__main__" under python -m


# -- inputs --------------------------------------------------------------------------------

def prepare(work: str, n_ips: int, flows: int, seed: int) -> dict:
    import numpy as np
    from flowdredge.job.replay import stage_flows, stage_metadata
    rng = np.random.default_rng(seed)
    inputs = os.path.join(work, "inputs")
    shutil.rmtree(inputs, ignore_errors=True)
    os.makedirs(inputs)
    began = time.monotonic()
    ips = private_ips(n_ips, rng)
    snapshot = os.path.join(inputs, "snapshot.jsonl")
    write_snapshot(snapshot, ips, rng)
    write_flows(os.path.join(inputs, "flows"), ips, flows, rng)
    generated_s = time.monotonic() - began
    staged = os.path.join(work, "staged")
    shutil.rmtree(staged, ignore_errors=True)
    began = time.monotonic()
    stats = stage_flows([os.path.join(inputs, "flows")],
                        os.path.join(staged, "flows", "flow-records.txt"), 5000)
    lines = stage_metadata([snapshot], os.path.join(staged, "metadata", "changelog.jsonl"))
    return {"ips": n_ips, "flows": stats.lines, "flow_records": stats.records,
            "changelog_lines": lines, "snapshot_bytes": os.path.getsize(snapshot),
            "generate_s": round(generated_s, 1), "stage_s": round(time.monotonic() - began, 1),
            "flows_dir": os.path.join(staged, "flows"),
            "metadata_dir": os.path.join(staged, "metadata")}


def feed_heartbeat(metadata_dir: str, ts_ms: int) -> None:
    """A new changelog file of one HEARTBEAT, written under a hidden name (the file source
    skips those) and renamed, so it is never read half-written."""
    hidden = os.path.join(metadata_dir, ".probe.tmp")
    with open(hidden, "w") as fh:
        fh.write(json.dumps({"type": "HEARTBEAT", "ts": ts_ms}) + "\n")
    os.rename(hidden, os.path.join(metadata_dir, f"probe-{ts_ms}.jsonl"))


# -- the job, in a process of its own --------------------------------------------------------

def job_config(work: str, parallelism: int, checkpoint_s: int, local_heap_mb: int = None):
    from flowdredge.job.config import Config
    heap = {} if local_heap_mb is None else {"local_heap_mb": local_heap_mb}
    return Config().replace(
        job={"parallelism": parallelism, "checkpoint_interval_seconds": checkpoint_s,
             "checkpoint_dir": os.path.join(work, "checkpoints"), **heap},
        outputs={"enriched": False, "security": False})


def run_job(args) -> int:
    """`python -m bench.state job ...`: submits the job, prints its id, waits for its end."""
    from flowdredge.job.flink.run import files_job
    config = job_config(args.work, args.parallelism, args.checkpoint_interval,
                        args.local_heap_mb)
    options = {"rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1",
               "rest.port": str(args.rest_port),
               # The REST API's metrics are refreshed this often (default 10 s).
               "metrics.fetcher.update-interval": "1000"}
    options.update(dict(o.split("=", 1) for o in args.flink_option))
    if args.restore:
        options["execution.state-recovery.path"] = args.restore
    staged = os.path.join(args.work, "staged")
    env = files_job(config, os.path.join(staged, "flows"), os.path.join(staged, "metadata"),
                    os.path.join(args.work, "out"), follow_seconds=2, flink_options=options)
    submit = time.time()
    client = env.execute_async("flowdredge state bench")
    print(json.dumps({"job_id": str(client.get_job_id()), "submit_epoch": submit,
                      "submitted_epoch": time.time()}), flush=True)
    try:
        client.get_job_execution_result().result()
    except Exception as err:   # cancelled by the benchmark: the expected end
        log.info(f"job ended: {str(err).splitlines()[0][:200]}")
    return 0


# -- observing it --------------------------------------------------------------------------

class Rest:
    def __init__(self, port: int, timeout_s: float = 10, send_timeout_s: float = 30,
                 attempts: int = REST_ATTEMPTS):
        self.base = f"http://127.0.0.1:{port}"
        self.timeout_s, self.send_timeout_s, self.attempts = timeout_s, send_timeout_s, attempts

    def get(self, path: str):
        return json.loads(self._call(urllib.request.Request(self.base + path), f"GET {path}",
                                     self.timeout_s, read_again=True))

    def send(self, method: str, path: str, body: dict = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        raw = self._call(request, f"{method} {path}", self.send_timeout_s, read_again=False)
        return json.loads(raw) if raw.strip() else {}

    def _call(self, request, what: str, timeout_s: float, read_again: bool) -> bytes:
        """The answer's body. A request whose connection timed out (urllib's URLError, not a
        TimeoutError: it ended the run) is made again, up to `attempts` times in all, and so
        is one whose answer timed out if `read_again` (a GET: a POST may have been done);
        then a TimeoutError naming it (a timeout's own words, 'timed out', name none). Any
        other error at once: refused is the cluster gone."""
        for attempt in range(1, self.attempts + 1):
            try:
                with urllib.request.urlopen(request, timeout=timeout_s) as response:
                    return response.read()
            except urllib.error.URLError as err:
                if not isinstance(err.reason, TimeoutError):
                    raise
                cause, where = err, "connecting"
            except TimeoutError as err:
                cause, where = err, "answering"
                if not read_again:
                    break
            log.warning(f"{what}: timed out {where} ({attempt} of {self.attempts})")
        raise TimeoutError(f"{what}: no answer within {timeout_s:g} s ({where}, {attempt} "
                           f"time{'s' if attempt > 1 else ''})") from cause


def process_tree(root: int) -> dict:
    """pid -> (command name, RSS bytes) of `root` and its descendants."""
    tree = {}
    try:
        top = psutil.Process(root)
        procs = [top, *top.children(recursive=True)]
    except psutil.Error:
        return tree
    for proc in procs:
        try:
            with proc.oneshot():
                tree[proc.pid] = (proc.name(), proc.memory_info().rss)
        except psutil.Error:   # ended between the listing and the reading
            continue
    return tree


def memory(root: int) -> dict:
    """Resident memory of the job's processes, MB: the client (root), the JVM, Python workers."""
    tree = process_tree(root)
    jvm = sum(rss for name, rss in tree.values() if name == "java")
    workers = sum(rss for pid, (name, rss) in tree.items()
                  if pid != root and name.startswith("python"))
    total = sum(rss for _name, rss in tree.values())
    mb = 1024 * 1024
    return {"rss_total_mb": round(total / mb), "rss_jvm_mb": round(jvm / mb),
            "rss_python_workers_mb": round(workers / mb),
            "rss_client_mb": round(tree.get(root, ("", 0))[1] / mb),
            "python_workers": sum(1 for pid, (name, _r) in tree.items()
                                  if pid != root and name.startswith("python"))}


def jvm_pid(root: int):
    return next((pid for pid, (name, _r) in process_tree(root).items() if name == "java"), None)


def live_heap_mb(pid: int):
    """The JVM's heap in use after a full GC (jcmd), MB: what the state really occupies."""
    try:
        subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, timeout=120, check=True)
        info = subprocess.run(["jcmd", str(pid), "GC.heap_info"], capture_output=True, text=True,
                              timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return heap_used_mb(info)


def heap_used_mb(heap_info: str):
    """The heap in use in jcmd GC.heap_info's text, MB (None if it names none): the sum over
    its generations. The parallel collector, the local JVM's, prints a young and an old one,
    G1 one heap; the young one alone, after a full GC, read 1 MB at a million IPs."""
    used = re.findall(r"total \d+K, used (\d+)K", heap_info)
    return round(sum(map(int, used)) / 1024) if used else None


def live_heap_classes(pid: int, top: int = 6) -> list:
    """The classes that hold most of the live heap (jcmd's histogram, itself after a full GC):
    [[class, MB, instances]], largest first; [] if jcmd fails."""
    try:
        text = subprocess.run(["jcmd", str(pid), "GC.class_histogram"], capture_output=True,
                              text=True, timeout=180, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = re.findall(r"^\s*\d+:\s+(\d+)\s+(\d+)\s+(\S+)", text, re.MULTILINE)
    return [[name, round(int(size) / 1024 / 1024, 1), int(count)]
            for count, size, name in rows[:top]]


class Job:
    """One run of the job in a child process, observed through REST and psutil."""

    def __init__(self, args, label: str, restore: str = None):
        self.args, self.rest = args, Rest(args.rest_port)
        self.folder = os.path.join(args.work, "runs", label)
        os.makedirs(self.folder, exist_ok=True)
        self.command = [sys.executable, "-m", "bench.state", "job", "--work", args.work,
                        "--parallelism", str(args.parallelism), "--rest-port",
                        str(args.rest_port), "--checkpoint-interval",
                        str(args.checkpoint_interval)]
        self.command += [f"--flink-option={o}" for o in args.flink_option]
        if args.local_heap_mb is not None:
            self.command += ["--local-heap-mb", str(args.local_heap_mb)]
        self.command += ["--restore", restore] if restore else []
        env = child_env(FLINK_LOG_DIR=os.path.join(self.folder, "logs"))
        self.stderr = open(os.path.join(self.folder, "stderr.txt"), "w")
        self.started = time.time()
        self.proc = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the job process ended before submitting: see "
                               f"{self.folder}/stderr.txt")
        info = json.loads(line)
        self.job_id, self.submitted = info["job_id"], info["submit_epoch"]
        self.client_s = round(self.submitted - self.started, 1)
        self.peak = {}
        self.failed = {}   # checkpoint id -> failure message
        self.timeline = open(os.path.join(self.folder, "timeline.jsonl"), "w")

    def since_submit(self) -> float:
        return round(time.time() - self.submitted, 1)

    def sample(self) -> dict:
        """Gauges, checkpoint counts and memory now (REST failures leave fields out)."""
        s = {"t": self.since_submit(), **memory(self.proc.pid)}
        try:
            job = self.rest.get(f"/jobs/{self.job_id}")
            s["job_state"] = job["state"]
            vertex = next(v for v in job["vertices"] if v["name"].startswith(ATTRIBUTE_VERTEX))
            s["attribute_status"] = vertex["status"]
            ids = [m["id"] for m in self.rest.get(f"/jobs/{self.job_id}/vertices/{vertex['id']}"
                                                  "/subtasks/metrics")
                   if m["id"].endswith(".flowdredge.ownership_ips")]
            if ids:
                got = self.rest.get(f"/jobs/{self.job_id}/vertices/{vertex['id']}/subtasks/"
                                    f"metrics?agg=min&get={ids[0]}")
                s["ownership_ips_min"] = int(float(got[0]["min"]))
            tms = self.rest.get("/taskmanagers")["taskmanagers"]
            heap = self.rest.get(f"/taskmanagers/{tms[0]['id']}/metrics?get="
                                 "Status.JVM.Memory.Heap.Used,Status.JVM.Memory.Heap.Committed,"
                                 "Status.JVM.Memory.Heap.Max,Status.JVM.Memory.NonHeap.Used")
            for m in heap:
                s[m["id"].rsplit("Memory.", 1)[1].replace(".", "_").lower() + "_mb"] = \
                    round(float(m["value"]) / 1024 / 1024)
            counts = self.rest.get(f"/jobs/{self.job_id}/checkpoints")
            s["checkpoints_completed"] = counts["counts"]["completed"]
            s["checkpoints_failed"] = counts["counts"]["failed"]
        except (OSError, StopIteration, ValueError, KeyError, IndexError):
            pass
        for key, value in s.items():
            if key.startswith(("rss_", "heap_used", "nonheap_used")):
                self.peak[key] = max(self.peak.get(key, 0), value)
        self.timeline.write(json.dumps(s) + "\n")
        self.timeline.flush()
        return s

    def wait(self, what: str, done, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the job process ended while waiting for {what}: see "
                                   f"{self.folder}/stderr.txt")
            s = self.sample()
            if done(s):
                log.info(f"{what}: {s['t']} s after submission")
                return s
            time.sleep(SAMPLE_S)
        raise TimeoutError(f"no {what} within {timeout_s:.0f} s; last sample: {s}")

    def running(self, vertex_prefix: str) -> dict:
        """Seconds after submission when the vertex's last subtask went INITIALIZING and
        RUNNING (restoring state happens in between), from Flink's own timestamps; None until
        every subtask is RUNNING. The vertex status of /jobs/<id> lags by up to
        web.refresh-interval."""
        job = self.rest.get(f"/jobs/{self.job_id}")
        vertex = next(v for v in job["vertices"] if v["name"].startswith(vertex_prefix))
        times = self.rest.get(f"/jobs/{self.job_id}/vertices/{vertex['id']}/subtasktimes")
        stamps = [t["timestamps"] for t in times["subtasks"]]
        if not stamps or not all(t.get("RUNNING") for t in stamps):
            return None
        at = lambda state: round(max(t[state] for t in stamps) / 1000 - self.submitted, 1)  # noqa: E731
        return {"initializing_after_submit_s": at("INITIALIZING"),
                "running_after_submit_s": at("RUNNING"),
                "restoring_s": round(max(t["RUNNING"] - t["INITIALIZING"] for t in stamps)
                                     / 1000, 1)}

    def checkpoints(self) -> dict:
        return self.rest.get(f"/jobs/{self.job_id}/checkpoints")

    def checkpoint_after(self, epoch_ms: int, timeout_s: float) -> dict:
        """The first checkpoint triggered after `epoch_ms` that completed (a failure: raised)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sample()
            history = self.checkpoints()["history"]
            for c in sorted(history, key=lambda c: c["id"]):
                if c["trigger_timestamp"] <= epoch_ms or c.get("is_savepoint"):
                    continue
                if c["status"] == "FAILED" and c["id"] not in self.failed:
                    self.failed[c["id"]] = c.get("failure_message")
                    log.warning(f"checkpoint {c['id']} failed: {self.failed[c['id']]}")
                if c["status"] == "COMPLETED":
                    return self._checkpoint_figures(c)
            time.sleep(SAMPLE_S)
        raise TimeoutError(f"no checkpoint completed within {timeout_s:.0f} s")

    def _checkpoint_figures(self, c: dict) -> dict:
        detail = self.rest.get(f"/jobs/{self.job_id}/checkpoints/details/{c['id']}")
        vertices = {v["id"]: v["name"] for v in self.rest.get(f"/jobs/{self.job_id}")["vertices"]}
        attribution = next((t for vid, t in detail.get("tasks", {}).items()
                            if vertices.get(vid, "").startswith(ATTRIBUTE_VERTEX)), {})
        mb = 1024 * 1024
        return {"id": c["id"], "end_to_end_s": round(c["end_to_end_duration"] / 1000, 1),
                "state_size_mb": round(c["state_size"] / mb, 1),
                "checkpointed_size_mb": round(c.get("checkpointed_size", 0) / mb, 1),
                "attribution_state_mb": round(attribution.get("state_size", 0) / mb, 1),
                "attribution_end_to_end_s": round(
                    attribution.get("end_to_end_duration", 0) / 1000, 1),
                "completed_after_submit_s": round(
                    (c["latest_ack_timestamp"] / 1000) - self.submitted, 1)}

    def savepoint(self, target: str, timeout_s: float) -> dict:
        began = time.time()
        trigger = self.rest.send("POST", f"/jobs/{self.job_id}/savepoints",
                                 {"target-directory": f"file://{target}", "cancel-job": True})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                status = self.rest.get(f"/jobs/{self.job_id}/savepoints/{trigger['request-id']}")
            except OSError as err:
                # The local cluster ends with its job, which the savepoint cancels: a small
                # state's savepoint can complete, and the REST server go, between two polls.
                # Complete on disk means its _metadata, written last.
                written = glob.glob(os.path.join(target, "savepoint-*", "_metadata"))
                if not written and self.proc.poll() is not None:
                    raise RuntimeError(f"the job ended without its savepoint ({err}): see "
                                       f"{self.folder}/logs") from err
                if not written and isinstance(err, TimeoutError):
                    continue   # the JobManager too busy to answer (a full heap collected)
                if not written:
                    raise
                location = "file:" + os.path.dirname(written[0])
                return {"location": location, "seconds": round(time.time() - began, 1),
                        "size_mb": round(_du(location) / 1024 / 1024, 1)}
            if status["status"]["id"] == "COMPLETED":
                operation = status["operation"]
                if "failure-cause" in operation:
                    raise RuntimeError(f"savepoint failed: "
                                       f"{operation['failure-cause'].get('stack-trace', '')[:2000]}")
                location = operation["location"]
                return {"location": location, "seconds": round(time.time() - began, 1),
                        "size_mb": round(_du(location) / 1024 / 1024, 1)}
            time.sleep(0.5)
        raise TimeoutError(f"savepoint not complete within {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 120) -> None:
        if self.proc.poll() is None:
            try:
                self.rest.send("PATCH", f"/jobs/{self.job_id}?mode=cancel")
            except (OSError, ValueError):
                pass
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.timeline.close()
        self.stderr.close()


def _du(location: str) -> int:
    path = re.sub(r"^file:(//)?", "", location)
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _d, files in os.walk(path)
               for f in files)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As a server binds: connections of a previous run in TIME_WAIT do not hold the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# -- the benchmark -------------------------------------------------------------------------

def run_bench(args) -> dict:
    args.work = os.path.abspath(args.work)
    if not _port_free(args.rest_port):
        raise SystemExit(f"--rest-port {args.rest_port} is in use; pick another")
    for sub in ("checkpoints", "savepoints", "out", "runs"):
        shutil.rmtree(os.path.join(args.work, sub), ignore_errors=True)
    info = {**machine(), "load_start": _load()}
    report = {"command": "python -m bench.state " + " ".join(args.argv), "machine": info,
              "parallelism": args.parallelism,
              "checkpoint_interval_s": args.checkpoint_interval, "errors": []}
    n = args.ips
    inputs = prepare(args.work, n, args.flows, args.seed)
    report["inputs"] = {k: v for k, v in inputs.items() if not k.endswith("_dir")}
    log.info(f"inputs: {n:,} IPs ({inputs['snapshot_bytes'] / 1e6:.0f} MB of changelog), "
             f"{inputs['flows']:,} flows; generated in {inputs['generate_s']} s, staged in "
             f"{inputs['stage_s']} s")
    full = lambda s: s.get("ownership_ips_min") == n   # noqa: E731

    run = {}
    job = Job(args, "run")
    try:
        loaded = job.wait(f"ownership_ips = {n:,} on every instance", full, args.timeout)
        run.update(client_start_s=job.client_s, loaded_after_submit_s=loaded["t"])
        after = int((job.submitted + loaded["t"]) * 1000)
        run["checkpoints"] = []
        for _ in range(args.checkpoints):
            c = job.checkpoint_after(after, args.timeout)
            run["checkpoints"].append(c)
            after = int((job.submitted + c["completed_after_submit_s"]) * 1000) + 1
        run["memory"] = job.sample()
        pid = jvm_pid(job.proc.pid)
        run["memory"]["live_heap_after_gc_mb"] = live_heap_mb(pid) if pid else None
        run["memory"]["live_heap_classes"] = live_heap_classes(pid) if pid else []
        run["memory"]["peak"] = dict(job.peak)
        run["savepoint"] = job.savepoint(os.path.join(args.work, "savepoints"), args.timeout)
        log.info(f"savepoint {run['savepoint']['location']} in {run['savepoint']['seconds']} s")
    except (RuntimeError, TimeoutError, OSError, ValueError, KeyError) as err:
        report["errors"].append(f"run: {err}")
    finally:
        run["failed_checkpoints"] = job.failed
        job.stop()
    report["run"] = run

    if "savepoint" in run:
        job = Job(args, "restore", restore=run["savepoint"]["location"])
        restored = {"client_start_s": job.client_s}
        try:
            c = job.checkpoint_after(int(job.submitted * 1000), args.timeout)
            # A checkpoint completes only once every task is RUNNING; REST may show it later.
            running = None
            while running is None:
                running = job.running(ATTRIBUTE_VERTEX)
                time.sleep(0 if running else SAMPLE_S)
            restored.update(running)
            restored["first_checkpoint"] = c
            restored["first_checkpoint_after_submit_s"] = c["completed_after_submit_s"]
            fed = time.time()
            feed_heartbeat(inputs["metadata_dir"], HEARTBEAT_TS + 60_000)
            s = job.wait(f"ownership_ips = {n:,} again", full, args.timeout)
            restored["loaded_after_submit_s"] = s["t"]
            restored["loaded_after_probe_s"] = round(time.time() - fed, 1)
            restored["memory"] = job.sample()
            restored["memory"]["peak"] = dict(job.peak)
        except (RuntimeError, TimeoutError, OSError, ValueError, KeyError) as err:
            report["errors"].append(f"restore: {err}")
        finally:
            restored["failed_checkpoints"] = job.failed
            job.stop()
        report["restore"] = restored
    info["load_end"] = _load()
    return report


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _f(value, unit="") -> str:
    return "n/a" if value is None else f"{value}{unit}"


def render(r: dict) -> str:
    m, i, run, res = r["machine"], r["inputs"], r.get("run", {}), r.get("restore", {})
    lines = [f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
             f"Python {m['python']}, {m['java']}, commit {m['commit']}, by `{r['command']}`. "
             f"Load average {m['load_start']} at the start, {m.get('load_end')} at the end.",
             "",
             f"Input: {i['ips']:,} IPs in a snapshot changelog of {i['changelog_lines']:,} lines "
             f"({i['snapshot_bytes'] / 1e6:.0f} MB), {i['flows']:,} flows; parallelism "
             f"{r['parallelism']}, checkpoints every {r['checkpoint_interval_s']} s to files, "
             "outputs.enriched and outputs.security off.", "",
             "| figure | value | goal |", "| --- | --- | --- |"]
    row = lambda k, v, goal="": lines.append(f"| {k} | {v} | {goal} |")  # noqa: E731
    row("client start-up (process start to submission), s", _f(run.get("client_start_s")))
    row(f"changelog loaded (ownership_ips = {i['ips']:,}), s after submission",
        _f(run.get("loaded_after_submit_s")))
    for c in run.get("checkpoints", []):
        row(f"checkpoint {c['id']}: end to end s / full size MB / attribution's part MB",
            f"{c['end_to_end_s']} / {c['state_size_mb']} / {c['attribution_state_mb']}",
            "< 10 s")
    mem = run.get("memory", {})
    peak = mem.get("peak", {})
    row("JVM heap used / committed / max, MB (REST, after the checkpoints)",
        f"{_f(mem.get('heap_used_mb'))} / {_f(mem.get('heap_committed_mb'))} / "
        f"{_f(mem.get('heap_max_mb'))}")
    row("JVM live heap after a full GC, MB (jcmd)", _f(mem.get("live_heap_after_gc_mb")))
    row("its largest classes, MB (instances)", ", ".join(
        f"`{name}` {size} ({count:,})" for name, size, count in mem.get("live_heap_classes", [])))
    row("resident memory: all processes / JVM / Python workers, MB (after the checkpoints)",
        f"{_f(mem.get('rss_total_mb'))} / {_f(mem.get('rss_jvm_mb'))} / "
        f"{_f(mem.get('rss_python_workers_mb'))}", "< 2 GB")
    row("peak resident memory: all processes / JVM / Python workers, MB",
        f"{_f(peak.get('rss_total_mb'))} / {_f(peak.get('rss_jvm_mb'))} / "
        f"{_f(peak.get('rss_python_workers_mb'))}", "< 2 GB")
    sp = run.get("savepoint", {})
    row("savepoint (trigger to completed, with cancel): s / MB",
        f"{_f(sp.get('seconds'))} / {_f(sp.get('size_mb'))}")
    row("restore: client start-up, s", _f(res.get("client_start_s")))
    row("restore: submission to attribution RUNNING (state restored in the JVM), s; of it "
        "INITIALIZING (restoring), s",
        f"{_f(res.get('running_after_submit_s'))}; {_f(res.get('restoring_s'))}", "< 30 s")
    row("restore: submission to first checkpoint completed, s",
        _f(res.get("first_checkpoint_after_submit_s")), "< 30 s")
    c = res.get("first_checkpoint") or {}
    row("restore: that checkpoint end to end s / size MB",
        f"{_f(c.get('end_to_end_s'))} / {_f(c.get('state_size_mb'))}")
    row("restore: Python cache filled (ownership_ips = N) after the probe HEARTBEAT, s "
        "(after submission)",
        f"{_f(res.get('loaded_after_probe_s'))} ({_f(res.get('loaded_after_submit_s'))})")
    rmem = res.get("memory", {})
    row("restore: resident memory all / JVM / Python workers, MB (peak all)",
        f"{_f(rmem.get('rss_total_mb'))} / {_f(rmem.get('rss_jvm_mb'))} / "
        f"{_f(rmem.get('rss_python_workers_mb'))} ({_f(rmem.get('peak', {}).get('rss_total_mb'))})")
    for name, part in (("run", run), ("restore", res)):
        for cid, message in part.get("failed_checkpoints", {}).items():
            row(f"{name}: checkpoint {cid} FAILED", message)
    if r["errors"]:
        lines += ["", "Failed:", ""] + [f"- {e}" for e in r["errors"]]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.state", description=__doc__.split("\n\n")[0])
    p.add_argument("--ips", type=int, default=1_000_000)
    p.add_argument("--flows", type=int, default=20_000)
    p.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                  "flowdredge-state"),
                   help="folder for inputs, checkpoints, savepoints and logs (replaced)")
    p.add_argument("--parallelism", type=int, default=1)
    p.add_argument("--checkpoint-interval", type=int, default=10, help="seconds")
    p.add_argument("--checkpoints", type=int, default=3,
                   help="completed checkpoints to record once the state is loaded")
    p.add_argument("--rest-port", type=int, default=18093)
    p.add_argument("--timeout", type=float, default=900, help="seconds, per step")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--flink-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a Flink setting for both runs (a what-if), e.g. "
                        "execution.checkpointing.snapshot-compression=true")
    p.add_argument("--local-heap-mb", type=int,
                   help="job.local_heap_mb (the JVM's heap cap); default: the job's default")
    return p


def job_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.state job")
    p.add_argument("--work", required=True)
    p.add_argument("--parallelism", type=int, required=True)
    p.add_argument("--rest-port", type=int, required=True)
    p.add_argument("--checkpoint-interval", type=int, required=True)
    p.add_argument("--restore")
    p.add_argument("--flink-option", action="append", default=[])
    p.add_argument("--local-heap-mb", type=int)
    return p


def main(argv=None) -> int:
    logs.setup("bench", "[bench.state]")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["job"]:
        return run_job(job_parser().parse_args(argv[1:]))
    args = parser().parse_args(argv)
    args.argv = argv
    bad = [o for o in args.flink_option if "=" not in o]
    if bad:
        raise SystemExit(f"--flink-option: expected KEY=VALUE, got {bad}")
    report = run_bench(args)
    text = render(report)
    with open(os.path.join(args.work, "results.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    with open(os.path.join(args.work, "results.md"), "w") as fh:
        fh.write(text + "\n")
    print(json.dumps(report))
    print(text)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
