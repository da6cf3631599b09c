"""The streaming benchmark of issue #13: added latency and sustained rate of the streaming job on
the local Kinesis API server (kinesis-local). `python -m bench.streaming --rate 50000 --minutes 5
--parallelism 1 --work DIR`.

1. Inputs: a synthetic estate (synthetic.estate) whose whole changelog, dated before the traffic,
   is the metadata snapshot; its flow lines (every field but start and end) are the pool the
   producer cycles through.
2. Run: kinesis-local, a flow stream of `--shards` shards, the changelog stream, the aggregates
   stream; the job (job.flink.run.kinesis_job, aggregates also to Kinesis) on the local
   mini-cluster; then the producer, a process of its own (`python -m bench.streaming produce`):
   CloudWatch Logs subscription records of `--events-per-record` flows each, paced at `--rate`
   flows/s. Event time runs `--speedup` times faster than the wall clock (a 5-minute run then
   closes 100 one-minute windows, enough for a p99), 20 hours behind it (within the job's
   max_clock_skew and max_ahead checks). Every second the producer writes the changelog's next
   changes (`--churn` IPs a second handed to another owner) and a HEARTBEAT `--heartbeat-lead`
   wall seconds ahead of the flows it is about to write, so the changelog is always ahead and
   flows never wait for metadata (the figures say whether one did).
3. Samples every `--sample-seconds` from Flink's REST API: consumer lag (the connector's
   millisBehindLatest), records read by the flow source against records written (backlog), the
   window operator's input watermark; CPU seconds and resident memory per process
   (kinesis-local, producer, JVM, Python workers, this client) and the whole machine's CPU
   (psutil).
4. At the end every stream is read back (GetRecords) for the records' ApproximateArrivalTimestamp.

Added latency of window w (end e, flows.out_of_orderness_seconds b):
- A_flows(w): per shard, the arrival of the first record after which the shard's latest flow
  start is at least e + b; the latest of these over the shards (event time is the slowest
  active shard's, job.shards: e + b is when the bounded-out-of-orderness watermark passes e).
- A_meta(w): the arrival of the first changelog record that moves the metadata watermark to e
  (a HEARTBEAT at ts >= e, or a change at ts >= e + metadata.out_of_orderness_seconds).
- A(w) = max(A_flows, A_meta): the earliest moment the window could close.
- O(w): the arrival on the aggregates stream of w's last row (first arrival of each dedup_key);
  also of its first row.
- added latency = O(w) - A(w); p50 and p99 over the windows with A(w) after the warm-up and
  before the producer stopped. A window without rows by the end of the drain is counted apart.
- The same from the acknowledgement: a flow record's arrival taken as the later of its arrival
  time and the return of the PutRecords call that wrote it (a server slower than the stream
  stamps records it cannot serve yet).
"""
import argparse
import bisect
import contextlib
import gzip
import itertools
import json
import logging
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time

import psutil

from flowdredge.connectors import logs
from flowdredge.explore.health import READ_ERRORS, JobRest
from flowdredge.schemas.cloudwatch import record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stream_names(prefix: str) -> tuple:
    """The flow, changelog and aggregates streams."""
    return f"{prefix}-flows", f"{prefix}-metadata", f"{prefix}-aggregates"


def kinesis_section(endpoint: str, region: str):
    """`endpoint`: a Kinesis API URL, or "aws" for the region's own (boto3's credentials)."""
    from flowdredge.connectors.kinesis.settings import KinesisSection
    return KinesisSection(region=region, endpoint="" if endpoint == "aws" else endpoint)
# Event time starts this far behind the wall clock: inside flows.max_clock_skew_seconds (24 h),
# and it may gain on the wall clock for (EVENT_BEHIND_S / (speedup - 1)) seconds of a run.
EVENT_BEHIND_S = 20 * 3600
JITTER_S = 60          # flows of a record start up to a minute (event time) before its latest
DEFAULT_FIELDS = 14    # version ... log-status (schemas.flowlog.DEFAULT_FORMAT)


PUT_ATTEMPTS = 5
log = logging.getLogger("bench.streaming")   # not __name__: "__main__" under python -m


def _load() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


# -- inputs --------------------------------------------------------------------------------

def prepare(work: str, event_start: int, seed: int, minutes: int) -> dict:
    """The estate's changelog as the snapshot (every line dated before event_start) and its
    flow lines as the producer's pool: "prefix<TAB>duration<TAB>suffix" per line."""
    from flowdredge.synthetic.producer import flow_records
    from flowdredge.synthetic.estate import Scenario, generate
    scenario = Scenario(start=event_start - minutes * 60 - 600, minutes=minutes,
                        flows_per_minute=20000, seed=seed)
    estate = os.path.join(work, "estate")
    shutil.rmtree(estate, ignore_errors=True)
    generated = generate(scenario, estate)
    pool_path = os.path.join(work, "pool.tsv")
    lines = 0
    with open(pool_path, "w", encoding="utf-8") as out:
        for record in flow_records([os.path.join(estate, "flows")]):
            for event in json.loads(gzip.decompress(record.data))["logEvents"]:
                f = event["message"].split()
                if len(f) == DEFAULT_FIELDS and f[13] == "OK":
                    out.write(f"{' '.join(f[:10])}\t{int(f[11]) - int(f[10])}\t"
                              f"{f[12]} {f[13]}\n")
                    lines += 1
    with open(generated.metadata_file) as snapshot:
        snapshot_lines = sum(1 for _ in snapshot)
    return {"snapshot": generated.metadata_file, "pool": pool_path, "pool_flows": lines,
            "snapshot_lines": snapshot_lines}


def with_extra_ips(snapshot: str, n: int, seed: int) -> str:
    """The snapshot and ASSIGNs of `n` more IPs (bench.state's: owned, dated before the traffic,
    never in a flow): the ownership state of a large estate, for the state figures."""
    import numpy as np
    from flowdredge.synthetic.snapshot import private_ips as _ips, write_snapshot
    with open(snapshot, encoding="utf-8") as fh:
        lines = [line for line in fh if '"HEARTBEAT"' not in line]
    taken = {json.loads(line)["ip"] for line in lines}
    rng = np.random.default_rng(seed)
    extra = [ip for ip in _ips(n + len(taken), rng) if ip not in taken][:n]
    path = snapshot + f".plus{n}"
    write_snapshot(path + ".extra", extra, rng)
    with open(path, "w", encoding="utf-8") as out, \
            open(path + ".extra", encoding="utf-8") as fh:
        # Older first: the changelog is read in order, and changes far behind the ones
        # already read would be late.
        out.writelines(line for line in fh if '"HEARTBEAT"' not in line)
        out.writelines(lines)
    os.remove(path + ".extra")
    return path


# -- the producer (a process of its own) -----------------------------------------------------

class Producer:
    """CloudWatch records of pool lines retimed to the moving event time, and the changelog."""

    def __init__(self, args):
        from flowdredge.connectors.kinesis.client import client
        self.kinesis = client(kinesis_section(args.endpoint, args.region))
        self.flow_stream, self.metadata_stream, _ = stream_names(args.stream_prefix)
        self.args = args
        with open(args.pool, encoding="utf-8") as fh:
            self.pool = [(p, int(d), s) for p, d, s in (line.rstrip("\n").split("\t")
                                                        for line in fh)]
        with open(args.snapshot, encoding="utf-8") as fh:
            assigns = [json.loads(line) for line in fh if '"ASSIGN"' in line]
        self.assigns, self.ips = assigns, [a["ip"] for a in assigns]
        self.rng = random.Random(args.seed)
        self.next_line = 0
        self.log = open(args.log, "w", encoding="utf-8")
        self.records = self.flows = 0

    def event_time(self, wall: float) -> float:
        return self.args.event_start + self.args.speedup * (wall - self.args.wall_start)

    def record(self, latest: int) -> tuple:
        """(data, partition key): the next pool lines, the first starting at `latest`."""
        n, start = self.args.events_per_record, self.next_line
        lines = [self.pool[(start + i) % len(self.pool)] for i in range(n)]
        self.next_line = (start + n) % len(self.pool)
        rand, ts = self.rng.random, latest * 1000
        starts = [latest] + [latest - int(rand() * JITTER_S) for _ in range(n - 1)]
        events = [(i, ts, "%s %d %d %s" % (prefix, s, s + dur, suffix))
                  for i, ((prefix, dur, suffix), s) in enumerate(zip(lines, starts))]
        head = lines[0][0].split(" ", 3)
        # Level 1: CloudWatch's own level does not matter to the job, the producer's CPU does.
        # Plain: the pool is the synthetic estate's flow-log fields.
        data = record(events, compresslevel=1, owner=head[1], log_group="/vpc/flowlogs",
                      log_stream=f"{head[2]}-all", plain=True)
        return data, f"{head[2]}-{start}"

    def put_flows(self, batch) -> None:
        from botocore.exceptions import ReadTimeoutError
        for attempt in range(PUT_ATTEMPTS):
            began = time.time()
            try:
                answer = self.kinesis.put_records(
                    StreamName=self.flow_stream,
                    Records=[{"Data": d, "PartitionKey": k} for d, k, _ in batch])
                break
            except ReadTimeoutError:
                # A server slower than the SDK's retries (kinesis-local after an hour): the
                # batch again; copies of a call given up on are counted apart (unlogged).
                if attempt == PUT_ATTEMPTS - 1:
                    raise
        ended = time.time()
        retry = []
        for (data, key, latest), result in zip(batch, answer["Records"]):
            if "ErrorCode" in result:
                retry.append((data, key, latest))
                continue
            self.log.write(json.dumps([result["ShardId"], result["SequenceNumber"], latest,
                                       round(began, 4), round(ended, 4)]) + "\n")
            self.records += 1
            self.flows += self.args.events_per_record
        if retry:
            self.put_flows(retry)

    def put_changelog(self, heartbeat_ms: int, changes: int) -> None:
        lines = []
        for _ in range(changes):
            event = dict(self.rng.choice(self.assigns))
            event.update(ip=self.rng.choice(self.ips), ts=heartbeat_ms)
            lines.append(json.dumps(event))
        lines.append(json.dumps({"type": "HEARTBEAT", "ts": heartbeat_ms}))
        # The changes and their HEARTBEAT in one record: sent again until it is in (throttled).
        records = [{"Data": "\n".join(lines).encode("utf-8"), "PartitionKey": "ip-metadata"}]
        for attempt in range(10):
            answer = self.kinesis.put_records(StreamName=self.metadata_stream, Records=records)
            if not answer.get("FailedRecordCount"):
                return
            time.sleep(0.1 * 2 ** attempt)
        raise RuntimeError(f"the changelog record was refused 10 times: {answer['Records'][0]}")

    def run(self) -> None:
        args = self.args
        end = args.wall_start + args.seconds
        next_beat, beats = args.wall_start, 0
        while True:
            now = time.time()
            if now >= end:
                break
            if now >= next_beat:
                ts = int(self.event_time(now + args.heartbeat_lead) * 1000)
                self.put_changelog(ts, args.churn if beats else 0)
                beats += 1
                next_beat += 1.0
            due = int((now - args.wall_start) * args.rate) // args.events_per_record
            batch = []
            while self.records + len(batch) < due and len(batch) < 50:
                # Event time by schedule, not by clock: a stalled PutRecords delays records,
                # it does not leave windows without flows.
                latest = int(self.event_time(args.wall_start + (self.records + len(batch))
                                             * args.events_per_record / args.rate))
                data, key = self.record(latest)
                batch.append((data, key, latest))
            if batch:
                self.put_flows(batch)
                with open(args.status + ".tmp", "w") as fh:
                    json.dump({"records": self.records, "flows": self.flows,
                               "time": time.time()}, fh)
                os.replace(args.status + ".tmp", args.status)
            else:
                time.sleep(min(0.02, max(0.0, next_beat - time.time())))
        self.log.close()


def produce(args) -> int:
    Producer(args).run()
    return 0


# -- observing the job -----------------------------------------------------------------------

class Rest(JobRest):
    def last_checkpoint(self) -> dict:
        """The latest completed checkpoint's size and duration, and the counts so far."""
        answer = self.get(f"/jobs/{self.job_id}/checkpoints")
        latest = (answer.get("latest") or {}).get("completed") or {}
        counts = answer.get("counts", {})
        return {"id": latest.get("id"), "size_mb": round(latest.get("checkpointed_size", 0)
                                                         / 2 ** 20, 2),
                "duration_ms": latest.get("end_to_end_duration"),
                "completed": counts.get("completed"), "failed": counts.get("failed")}

    def source_records(self):
        """Records the flow source has emitted (numRecordsOut summed over its subtasks)."""
        for vertex in self.get(f"/jobs/{self.job_id}")["vertices"]:
            if "flow stream" in vertex["name"]:
                values = self.get(f"/jobs/{self.job_id}/vertices/{vertex['id']}/subtasks/"
                                  f"metrics?get=numRecordsOut&agg=sum")
                return int(float(values[0]["sum"])) if values else None
        return None


def cpu_by_role(producer_pid: int, server_pid) -> tuple:
    """CPU seconds so far of the processes of a run, by role, and of the whole machine; and
    their resident memory now (MB), by role."""
    def tree(pid) -> set:
        if pid is None:     # psutil.Process(None) would be this process
            return set()
        try:
            root = psutil.Process(pid)
            return {root, *root.children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()
    roles = {"kinesis_local": 0, "producer": 0, "jvm": 0, "python_workers": 0, "client": 0,
             "other_children": 0}
    resident = dict.fromkeys(roles, 0.0)
    producer, server, client = tree(producer_pid), tree(server_pid), psutil.Process()
    for proc in tree(client.pid):
        try:
            with proc.oneshot():
                name, cpu, rss = proc.name(), proc.cpu_times(), proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
        if proc in producer:
            role = "producer"
        elif proc in server:
            role = "kinesis_local"
        elif proc == client:
            role = "client"
        elif name == "java":
            role = "jvm"
        elif name.startswith("python"):
            role = "python_workers"
        else:
            role = "other_children"
        roles[role] += cpu.user + cpu.system
        resident[role] += rss / 2 ** 20
    machine = psutil.cpu_times()
    roles["machine_busy"] = sum(machine) - machine.idle - machine.iowait
    return roles, {role: round(mb) for role, mb in resident.items() if mb}


class Sampler(threading.Thread):
    def __init__(self, rest: Rest, status_path: str, every_s: float, pids: tuple):
        super().__init__(daemon=True)
        self.rest, self.status_path, self.every_s, self.pids = rest, status_path, every_s, pids
        self.samples, self._halt = [], threading.Event()

    def sample(self) -> dict:
        cpu, resident = cpu_by_role(*self.pids)
        row = {"time": time.time(), "cpu": cpu, "resident_mb": resident}
        try:
            with open(self.status_path) as fh:
                row["produced_records"] = json.load(fh)["records"]
        except (OSError, ValueError):
            row["produced_records"] = 0
        try:
            row["checkpoint"] = self.rest.last_checkpoint()
            row["lag_ms"] = self.rest.consumer_lag_ms()
            row["window_watermark_ms"] = self.rest.window_watermark_ms()
            row["consumed_records"] = self.rest.source_records()
        except READ_ERRORS:
            pass
        return row

    def run(self):
        while not self._halt.wait(self.every_s):
            self.samples.append(self.sample())

    def stop(self):
        self._halt.set()
        self.join()


# -- reading the streams back ----------------------------------------------------------------

def read_back(kinesis, stream: str, parse) -> list:
    """(shard id, sequence number, arrival epoch s, parse(data)) of every record."""
    from flowdredge.connectors.kinesis.client import read_all
    return [(shard, r["SequenceNumber"], r["ApproximateArrivalTimestamp"].timestamp(),
             parse(r["Data"])) for shard, r in read_all(kinesis, stream)]


def metadata_reach_ms(data: bytes, meta_ooo_ms: int) -> int:
    """How far a changelog record moves the metadata watermark (ms)."""
    reach = -1
    for line in data.decode("utf-8").splitlines():
        event = json.loads(line)
        reach = max(reach, event["ts"] if event["type"] == "HEARTBEAT"
                    else event["ts"] - meta_ooo_ms)
    return reach


def first_reaching(arrivals: list, reach: list, target) -> float:
    """The first arrival after which the running maximum of `reach` is >= target (lists in
    arrival order; `reach` already a running maximum), or None."""
    i = bisect.bisect_left(reach, target)
    return arrivals[i] if i < len(arrivals) else None


def _running(rows) -> tuple:
    """(arrivals, running max of reach) of (arrival, reach) rows, in arrival order."""
    arrivals, reach, top = [], [], float("-inf")
    for arrival, value in sorted(rows):
        top = max(top, value)
        arrivals.append(arrival)
        reach.append(top)
    return arrivals, reach


def percentile(values: list, q: float):
    """Nearest-rank percentile (q in 0-100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)] if ordered else None


def window_latencies(flow_rows, meta_rows, agg_rows, window_s, flow_ooo_s,
                     measure_from, measure_to) -> dict:
    """flow_rows: (shard, arrival s, latest flow start s); meta_rows: (arrival s, reach ms);
    agg_rows: (arrival s, window_start s, dedup_key). See the module docstring."""
    per_shard = {}
    for shard, arrival, latest in flow_rows:
        per_shard.setdefault(shard, []).append((arrival, latest))
    shards = {shard: _running(rows) for shard, rows in per_shard.items()}
    meta = _running(meta_rows)
    outputs = {}
    seen = set()
    for arrival, window_start, key in sorted(agg_rows):
        if key in seen:       # at least once: a repeat after a restart counts once
            continue
        seen.add(key)
        first, last, rows = outputs.get(window_start, (arrival, arrival, 0))
        outputs[window_start] = (min(first, arrival), max(last, arrival), rows + 1)
    # Windows holding flows: a record's flows start up to JITTER_S before its latest.
    starts = sorted({(latest - back) - (latest - back) % window_s
                     for rows in per_shard.values() for _a, latest in rows
                     for back in (0, JITTER_S - 1)})
    windows, missing, meta_bound = [], [], 0
    for start in starts:
        end = start + window_s
        flow_ready = [first_reaching(*shards[s], end + flow_ooo_s) for s in shards]
        if None in flow_ready:
            continue
        a_flows = max(flow_ready)
        a_meta = first_reaching(*meta, end * 1000)
        if a_meta is None:
            continue
        ready = max(a_flows, a_meta)
        if not measure_from <= ready <= measure_to:
            continue
        meta_bound += a_meta > a_flows
        if start not in outputs:
            missing.append(start)
            continue
        first, last, rows = outputs[start]
        windows.append({"window_start": start, "ready": round(ready, 3),
                        "metadata_bound": a_meta > a_flows, "rows": rows,
                        "first_row_s": round(first - ready, 3),
                        "last_row_s": round(last - ready, 3)})
    last = [w["last_row_s"] for w in windows]
    first = [w["first_row_s"] for w in windows]
    return {
        "windows": len(windows), "windows_without_rows": len(missing),
        "windows_metadata_bound": meta_bound,
        "added_latency_p50_s": percentile(last, 50), "added_latency_p99_s": percentile(last, 99),
        "added_latency_max_s": max(last, default=None),
        "first_row_p50_s": percentile(first, 50), "first_row_p99_s": percentile(first, 99),
        "rows_per_window_median": statistics.median([w["rows"] for w in windows])
        if windows else None,
        "per_window": windows}


def lag_figures(samples: list, measure_from: float, measure_to: float) -> dict:
    """Consumer lag and backlog over the measured span (samples inside it)."""
    span = [s for s in samples if measure_from <= s["time"] <= measure_to
            and s.get("consumed_records") is not None]
    if len(span) < 2:
        return {"samples": len(span)}
    first, last = span[0], span[-1]
    dt = last["time"] - first["time"]
    produced = (last["produced_records"] - first["produced_records"]) / dt
    consumed = (last["consumed_records"] - first["consumed_records"]) / dt
    backlog = [s["produced_records"] - s["consumed_records"] for s in span]
    lags = [s["lag_ms"] for s in span if s.get("lag_ms") is not None]
    # Intervals that ended with more left to read than was written meanwhile: the source
    # did not run dry, so what it read is what it could read.
    busy = [(b["consumed_records"] - a["consumed_records"], b["time"] - a["time"])
            for a, b in itertools.pairwise(span)
            if b["produced_records"] - b["consumed_records"]
            > b["produced_records"] - a["produced_records"]]
    half = len(span) // 2
    cpu = {role: round((last["cpu"][role] - first["cpu"][role]) / dt, 2)
           for role in first["cpu"]}
    return {
        "samples": len(span), "span_s": round(dt, 1),
        "produced_records_per_s": round(produced, 1),
        "consumed_records_per_s": round(consumed, 1),
        "backlog_records_first": backlog[0], "backlog_records_last": backlog[-1],
        "backlog_records_max": max(backlog),
        "consumed_records_per_s_while_backlog":
            round(sum(n for n, _ in busy) / sum(t for _, t in busy), 1) if busy else None,
        "lag_ms_first_half_mean": round(statistics.mean(lags[:half]), 1) if lags[:half] else None,
        "lag_ms_second_half_mean": round(statistics.mean(lags[half:]), 1) if lags[half:] else None,
        "lag_ms_max": max(lags, default=None),
        # Sustained: the source kept up with the producer over the measured span.
        "sustained": consumed >= 0.99 * produced,
        "cores_used": cpu}


def state_figures(samples: list, checkpoints: dict) -> dict:
    """Peak resident memory by role over the run, and the job's checkpoints (REST)."""
    peak = {}
    for s in samples:
        for role, mb in s.get("resident_mb", {}).items():
            peak[role] = max(peak.get(role, 0), mb)
    latest = (checkpoints.get("latest") or {}).get("completed") or {}
    summary = checkpoints.get("summary", {})
    return {"resident_mb_peak": peak,
            "checkpoints_completed": checkpoints.get("counts", {}).get("completed"),
            "checkpoint_last_size_mb": round(latest.get("checkpointed_size", 0) / 2 ** 20, 1),
            "checkpoint_last_duration_ms": latest.get("end_to_end_duration"),
            "checkpoint_max_duration_ms": summary.get("end_to_end_duration", {}).get("max")}


def growth_figures(samples: list, measure_from: float, measure_to: float) -> dict:
    """Resident memory by role and the checkpoint's size, the medians of the first and the last
    tenth of the measured span: state that grows with the run's length shows here."""
    span = [s for s in samples if measure_from <= s["time"] <= measure_to]
    tenth = max(1, len(span) // 10)
    if len(span) < 2 * tenth:
        return {}
    first, last = span[:tenth], span[-tenth:]

    def median(rows, value):
        values = [v for v in map(value, rows) if v is not None]
        return statistics.median(values) if values else None
    figures = {"tenth_s": round(first[-1]["time"] - first[0]["time"], 1)}
    for role in ("jvm", "python_workers"):
        figures[f"resident_mb_{role}"] = [
            median(rows, lambda s, role=role: s.get("resident_mb", {}).get(role))
            for rows in (first, last)]
    figures["checkpoint_size_mb"] = [
        median(rows, lambda s: (s.get("checkpoint") or {}).get("size_mb")) for rows in (first, last)]
    figures["checkpoint_duration_ms"] = [
        median(rows, lambda s: (s.get("checkpoint") or {}).get("duration_ms"))
        for rows in (first, last)]
    failed = [(s.get("checkpoint") or {}).get("failed") for s in span]
    figures["checkpoints_failed"] = max((f for f in failed if f is not None), default=None)
    return figures


# -- the run ---------------------------------------------------------------------------------

def job_config(args, endpoint: str, snapshot: str):
    from flowdredge.job import config as config_mod
    flows, metadata, aggregates = stream_names(args.stream_prefix)
    kin = kinesis_section(endpoint, args.region)
    doc = {"job": {"parallelism": args.parallelism},
           "kinesis": {"endpoint": kin.endpoint, "region": kin.region, "flow_streams": flows,
                       "metadata_stream": metadata, "metadata_snapshot": snapshot,
                       "aggregates_stream": aggregates}}
    if args.variant == "aggregates":
        doc["outputs"] = {"enriched": False, "security": False}
    if args.sink_flush_ms is not None:
        doc["kinesis"]["output_flush_ms"] = args.sink_flush_ms
    if args.batch_records is not None:
        doc["kinesis"]["batch_records"] = args.batch_records
    return config_mod.from_dict(doc)


def run_bench(args, report: dict) -> dict:
    """Fills `report` as the run goes (its samples too), so that a run that fails still leaves
    what it measured."""
    from bench.harness import machine
    from flowdredge.connectors.kinesis import client as kinesis_client
    from flowdredge.connectors.kinesis.local import LocalKinesis, free_port
    from flowdredge.job.flink.run import kinesis_job
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    os.environ.setdefault("FLINK_LOG_DIR", os.path.join(work, "flink-logs"))
    produce_s = args.backlog_seconds + args.warmup_seconds + args.minutes * 60
    if (produce_s + args.drain_seconds) * (args.speedup - 1) > EVENT_BEHIND_S - 600:
        raise SystemExit("--speedup too high for the run's length: event time would pass the "
                         "wall clock")
    now = int(time.time())
    event_start = (now - EVENT_BEHIND_S) // 60 * 60
    report.update(machine=machine(), load_start=_load(), args=vars(args))
    log.info(f"generating the estate (load {report['load_start']})")
    inputs = prepare(work, event_start, args.seed, args.estate_minutes)
    if args.extra_ips:
        log.info(f"adding {args.extra_ips:,} IPs to the snapshot")
        inputs["snapshot"] = with_extra_ips(inputs["snapshot"], args.extra_ips, args.seed)
        inputs["snapshot_lines"] += args.extra_ips
    report["inputs"] = {k: v for k, v in inputs.items() if k.endswith(("flows", "lines"))}
    output = os.path.join(work, "out")
    shutil.rmtree(output, ignore_errors=True)
    flow_stream, metadata_stream, aggregates_stream = stream_names(args.stream_prefix)
    server = (contextlib.nullcontext(None) if args.endpoint
              else LocalKinesis(os.path.join(work, "kinesis-local.log")))
    with server as local:
        endpoint = args.endpoint or local.endpoint
        config = job_config(args, endpoint, inputs["snapshot"])
        kinesis = kinesis_client.client(config.kinesis)
        for name, shards in ((flow_stream, args.shards), (metadata_stream, 1),
                             (aggregates_stream, 1)):
            kinesis_client.create_stream(kinesis, name, shards)
        status = os.path.join(work, "producer-status.json")
        producer_log = os.path.join(work, "producer-records.jsonl")
        wall_start = time.time() + 1

        def start_producer():
            return subprocess.Popen(
                [sys.executable, "-m", "bench.streaming", "produce",
                 "--endpoint", endpoint, "--region", args.region,
                 "--stream-prefix", args.stream_prefix, "--pool", inputs["pool"],
                 "--snapshot", inputs["snapshot"], "--rate", str(args.rate),
                 "--seconds", str(produce_s), "--events-per-record", str(args.events_per_record),
                 "--speedup", str(args.speedup), "--event-start", str(event_start),
                 "--wall-start", str(wall_start), "--heartbeat-lead", str(args.heartbeat_lead),
                 "--churn", str(args.churn), "--seed", str(args.seed), "--log", producer_log,
                 "--status", status], cwd=ROOT)
        if args.backlog_seconds:
            producer = start_producer()
            log.info(f"producing for {args.backlog_seconds} s before the job starts (a backlog)")
            time.sleep(args.backlog_seconds)
        rest_port = free_port()
        job = kinesis_job(config, output, flink_options={
            "rest.port": str(rest_port),
            # REST metrics (lag, watermark) at most a second old, not Flink's default 10 s.
            "metrics.fetcher.update-interval": "1000"}).execute_async("flowdredge bench")
        rest = Rest(f"http://127.0.0.1:{rest_port}", str(job.get_job_id()))
        log.info(f"job {rest.job_id} submitted (REST {rest.url}); waiting for its sources")
        deadline = time.monotonic() + 180
        while True:
            try:
                if rest.source_records() is not None:
                    break
            except READ_ERRORS:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the job's flow source did not report within 180 s")
            time.sleep(1)
        sources_ready = time.time()
        if not args.backlog_seconds:
            wall_start = time.time() + 1
            producer = start_producer()
        sampler = Sampler(rest, status, args.sample_seconds, (producer.pid, local.process.pid if local else None))
        report["samples"] = sampler.samples
        sampler.start()
        measure_from = max(wall_start, sources_ready) + args.warmup_seconds
        report["measure_from"] = measure_from
        log.info(f"producing {args.rate:,} flows/s for {produce_s:.0f} s (measured after "
                 f"{args.warmup_seconds} s of warm-up), then {args.drain_seconds} s of drain")
        next_line = time.time() + 30
        while producer.poll() is None:
            time.sleep(1)
            state = job.get_job_status().result().name
            if state in ("FAILED", "CANCELED", "FINISHED"):
                producer.kill()
                raise SystemExit(f"the job is {state}; see {os.environ['FLINK_LOG_DIR']}")
            if time.time() >= next_line and sampler.samples:
                s = sampler.samples[-1]
                log.info(f"produced {s['produced_records']:,} records, read "
                         f"{s.get('consumed_records')}, lag {s.get('lag_ms')} ms, "
                         f"load {_load()}")
                next_line += 30
        if producer.returncode:
            raise SystemExit(f"the producer failed ({producer.returncode})")
        measure_to = time.time()
        time.sleep(args.drain_seconds)
        sampler.stop()
        checkpoints = rest.get(f"/jobs/{rest.job_id}/checkpoints")
        report["load_end"] = _load()
        job.cancel().result()
        log.info("reading the streams back")
        produced = {}
        with open(producer_log) as fh:
            for line in fh:
                shard, sequence, latest, _began, ended = json.loads(line)
                produced[(shard, sequence)] = latest, ended
        # A record's arrival time is stamped as the server takes the PutRecords call; a
        # slow server (kinesis-local under load) lets it be read only once the call is done.
        flows, flows_acked, unlogged = [], [], 0
        for shard, sequence, arrival, _ in read_back(kinesis, flow_stream, lambda data: None):
            if (shard, sequence) not in produced:
                # Written by a PutRecords attempt the SDK gave up on (read timeout) and
                # retried: the retry's copy is the one logged.
                unlogged += 1
                continue
            latest, ended = produced[(shard, sequence)]
            flows.append((shard, arrival, latest))
            flows_acked.append((shard, max(arrival, ended), latest))
        meta_ooo_ms = config.metadata.out_of_orderness_seconds * 1000
        meta = [(arrival, reach) for _s, _q, arrival, reach in read_back(
            kinesis, metadata_stream, lambda data: metadata_reach_ms(data, meta_ooo_ms))]

        def aggregate(data):
            row = json.loads(data)
            return row["window_start"], row["dedup_key"]
        aggs = [(arrival, start, key) for _s, _q, arrival, (start, key) in read_back(
            kinesis, aggregates_stream, aggregate)]
    report["latency"] = window_latencies(
        flows, meta, aggs, config.job.window_seconds, config.flows.out_of_orderness_seconds,
        measure_from, measure_to)
    report["latency_from_ack"] = window_latencies(
        flows_acked, meta, aggs, config.job.window_seconds,
        config.flows.out_of_orderness_seconds, measure_from, measure_to)
    report["lag"] = lag_figures(sampler.samples, measure_from, measure_to)
    report["state"] = state_figures(sampler.samples, checkpoints)
    report["growth"] = growth_figures(sampler.samples, measure_from, measure_to)
    report["produced"] = {"records": len(produced),
                          "flows": len(produced) * args.events_per_record,
                          "flow_records_read_back": len(flows),
                          "flow_records_unlogged": unlogged}
    return report


def python_us_per_flow(lag: dict, events_per_record: int):
    """The Python workers' CPU time per flow the source read over the measured span: the job's
    cost whatever rate the Kinesis server could take."""
    cores = lag.get("cores_used", {}).get("python_workers")
    flows_per_s = (lag.get("consumed_records_per_s") or 0) * events_per_record
    return round(cores / flows_per_s * 1e6, 1) if cores is not None and flows_per_s else None


def render(r: dict) -> str:
    lat, ack, lag, a, st = (r["latency"], r["latency_from_ack"], r["lag"], r["args"],
                            r["state"])
    cores = lag.get("cores_used", {})
    rows = [
        ("variant, parallelism", f"{a['variant']}, p{a['parallelism']}"
         + (f", sink flush {a['sink_flush_ms']} ms" if a["sink_flush_ms"] is not None else "")
         + (f", batches of {a['batch_records']} records" if a.get("batch_records") is not None
            else "")),
        ("rate asked, flows/s", f"{a['rate']:,}"),
        ("records read by the source / written, per s",
         f"{lag.get('consumed_records_per_s')} / {lag.get('produced_records_per_s')}"),
        ("sustained (source kept up over the measured span)", lag.get("sustained")),
        ("records read per s while a backlog was left (drain rate)",
         lag.get("consumed_records_per_s_while_backlog")),
        ("backlog, records: first / last / max",
         f"{lag.get('backlog_records_first')} / {lag.get('backlog_records_last')} / "
         f"{lag.get('backlog_records_max')}"),
        ("millisBehindLatest: mean 1st half / 2nd half / max",
         f"{lag.get('lag_ms_first_half_mean')} / {lag.get('lag_ms_second_half_mean')} / "
         f"{lag.get('lag_ms_max')}"),
        ("windows measured (without rows; metadata-bound)",
         f"{lat['windows']} ({lat['windows_without_rows']}; {lat['windows_metadata_bound']})"),
        ("added latency, last row: p50 / p99 / max, s",
         f"{lat['added_latency_p50_s']} / {lat['added_latency_p99_s']} / "
         f"{lat['added_latency_max_s']}"),
        ("added latency, first row: p50 / p99, s",
         f"{lat['first_row_p50_s']} / {lat['first_row_p99_s']}"),
        ("the same from the PutRecords call's return, last row: p50 / p99 / max, s",
         f"{ack['added_latency_p50_s']} / {ack['added_latency_p99_s']} / "
         f"{ack['added_latency_max_s']}"),
        ("aggregate rows per window (median)", lat["rows_per_window_median"]),
        ("cores used: kinesis-local / producer / JVM / Python workers / client / machine",
         " / ".join(str(cores.get(k)) for k in ("kinesis_local", "producer", "jvm",
                                                 "python_workers", "client", "machine_busy"))),
        ("Python workers' CPU a flow read, us", python_us_per_flow(lag, a["events_per_record"])),
        ("ownership snapshot, lines", f"{r['inputs']['snapshot_lines']:,}"),
        ("resident memory, peak MB: JVM / Python workers",
         f"{st['resident_mb_peak'].get('jvm')} / {st['resident_mb_peak'].get('python_workers')}"),
        ("checkpoints: completed / last size MB / last and max duration, ms",
         f"{st['checkpoints_completed']} / {st['checkpoint_last_size_mb']} / "
         f"{st['checkpoint_last_duration_ms']} and {st['checkpoint_max_duration_ms']}"),
        ("first / last tenth of the measured span (medians): resident MB JVM; Python "
         "workers; checkpoint MB; its duration, ms",
         "; ".join(" → ".join(str(v) for v in r.get("growth", {}).get(k, ()))
                   for k in ("resident_mb_jvm", "resident_mb_python_workers",
                             "checkpoint_size_mb", "checkpoint_duration_ms"))),
        ("load average start / end", f"{r['load_start']} / {r.get('load_end')}"),
    ]
    return "\n".join(["| figure | value |", "| --- | --- |"]
                     + [f"| {k} | {v} |" for k, v in rows])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=50000, help="flows per second written")
    p.add_argument("--minutes", type=float, default=5, help="measured minutes (after warm-up)")
    p.add_argument("--warmup-seconds", type=int, default=60)
    p.add_argument("--drain-seconds", type=int, default=30,
                   help="after the producer stops, for the last windows' rows")
    p.add_argument("--parallelism", type=int, default=1)
    p.add_argument("--variant", choices=("aggregates", "default"), default="aggregates",
                   help="aggregates: outputs.enriched and outputs.security off")
    p.add_argument("--shards", type=int, default=4, help="shards of the flow stream")
    p.add_argument("--events-per-record", type=int, default=1000)
    p.add_argument("--speedup", type=float, default=20,
                   help="event seconds per wall second")
    p.add_argument("--heartbeat-lead", type=float, default=2.0,
                   help="wall seconds the changelog's HEARTBEAT is ahead of the flows")
    p.add_argument("--churn", type=int, default=5, help="IPs handed to another owner per s")
    p.add_argument("--backlog-seconds", type=int, default=0,
                   help="the producer runs this long before the job starts: the job then "
                        "reads a backlog, and the records it reads per second while one is "
                        "left are its drain rate")
    p.add_argument("--sink-flush-ms", type=int,
                   help="kinesis.output_flush_ms: the aggregates' Kinesis sink sends what it "
                        "holds at least this often (default: the config's, 200 ms)")
    p.add_argument("--batch-records", type=int,
                   help="kinesis.batch_records: a shard's records parsed together, at most this "
                        "many (1: one record a Python call; default: the config's, 500)")
    p.add_argument("--sample-seconds", type=float, default=5)
    p.add_argument("--estate-minutes", type=int, default=10,
                   help="minutes of the synthetic estate's traffic (20,000 flows a minute) "
                        "whose flow lines the producer cycles through")
    p.add_argument("--extra-ips", type=int, default=0,
                   help="IPs added to the ownership snapshot (owned, never in a flow), for "
                        "the state figures: e.g. 1000000")
    p.add_argument("--endpoint",
                   help="a Kinesis to use instead of starting kinesis-local: its API URL, or "
                        "'aws' for the region's (credentials from boto3's usual chain); the "
                        "streams are created if missing and left in place")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--stream-prefix", default="bench",
                   help="the streams are PREFIX-flows, PREFIX-metadata, PREFIX-aggregates")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--work", default="/tmp/bench-streaming")
    p.add_argument("--json", help="also write the report (with every sample) here")
    return p


def produce_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.streaming produce")
    for name in ("--endpoint", "--region", "--stream-prefix", "--pool", "--snapshot", "--log",
                 "--status"):
        p.add_argument(name, required=True)
    for name in ("--rate", "--events-per-record", "--churn", "--seed", "--event-start"):
        p.add_argument(name, type=int, required=True)
    for name in ("--seconds", "--speedup", "--wall-start", "--heartbeat-lead"):
        p.add_argument(name, type=float, required=True)
    return p


def _write(path: str, report: dict) -> None:
    with open(path, "w") as fh:
        json.dump(report, fh, indent=1)


def main(argv=None) -> int:
    logs.setup("bench", "[bench.streaming]", timestamps=True)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["produce"]:
        return produce(produce_parser().parse_args(argv[1:]))
    args = parser().parse_args(argv)
    report = {}
    try:
        run_bench(args, report)
    except (Exception, SystemExit) as err:
        # What the run measured until then (a soak's hour of samples) is kept with its cause.
        report["failure"] = str(err)
        report["growth"] = growth_figures(report.get("samples", []),
                                          report.get("measure_from", 0), time.time())
        if args.json:
            _write(args.json, report)
            log.info(f"the run failed; what it measured until then is in {args.json}: "
                     f"{json.dumps(report['growth'])}")
        raise
    if args.json:
        _write(args.json, report)
    summary = {k: v for k, v in report.items() if k != "samples"}
    for name in ("latency", "latency_from_ack"):
        summary[name] = {k: v for k, v in report[name].items() if k != "per_window"}
    print(json.dumps(summary))
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
