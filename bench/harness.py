"""`bench/run`: the benchmark of issue #5, in one command.

Generates the workload (synthetic.workload), stages it as `flowdredge replay` does (job.replay),
runs the job and the pure Flink SQL baseline (bench.sql_baseline) side by side, each run in a
fresh process (bench.measure), checks that both computed the same aggregates (bench.compare),
optionally tries changes to the job (--what-ifs) and profiles it (--profile), and reports with
the machine, the date and every command: printed, in WORK/results.{json,md}, and in
docs/performance.md between the `bench:results` markers.

Method (docs/performance.md): each pipeline runs on three inputs drawn from one estate, so with
the same changelog: tiny (fixed cost: JVM, mini-cluster, Python workers, loading the
changelog), small (a quarter of full) and full. A run's processing span is from job submission
to the last write to an output (the final checkpoint's wait comes after). The steady rate is
(flows_full - flows_small) / (span_full - span_small): start-up and changelog loading cancel
out. Runs alternate between pipelines so that load from other users of the machine falls on
both alike. With `--rounds N` every run is repeated in N passes over all of them, and each
figure is the median of the N rounds' (their range beside it); a ratio between two pipelines is
taken within each round, so both of its runs met the same minutes of the machine.
"""
import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from statistics import median

import psutil

from bench.compare import aggregates_agree
from flowdredge.synthetic.workload import Workload, generate
from flowdredge.connectors import logs
from flowdredge.operate.cluster import child_env
from flowdredge.job.config import FlowsSection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "performance.md")
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
CHUNK_LINES = FlowsSection().chunk_lines

AGGREGATES_ONLY = {"outputs": {"enriched": False, "security": False}}
# Pipeline variants compared side by side, and the job configuration of each.
VARIANTS = {
    "ours-aggregates": ("flowdredge with outputs.enriched and outputs.security off: aggregates "
                        "and counts, what the SQL baseline computes", AGGREGATES_ONLY),
    "ours-aws": ("flowdredge with outputs.enriched and outputs.security off, reading the flow "
                 "files as AWS wrote them (the path of `flowdredge replay`: only the changelog "
                 "staged)", AGGREGATES_ONLY),
    "ours-security": ("flowdredge with outputs.enriched off: aggregates and the security "
                      "views", {"outputs": {"enriched": False}}),
    "ours": ("flowdredge, default configuration: every output", None),
    "sql": ("the pure Flink SQL baseline, bench/sql_baseline.py, on the S3 folder as "
            "delivered", None),
    "sql-ordered": ("the SQL baseline on one file of the S3 files in delivery order "
                    "(sql_baseline.stage_in_delivery_order), the 300 s watermark bound", None),
}
# Configurations tried at parallelism 1 on the what-if input (--what-ifs):
# (name, job configuration, input[, "aws": the files read by the job, not staged]). The first
# is the reference.
SMALL_ENVELOPE_LINES = 100
WHAT_IFS = (
    ("aggregates only (reference)", AGGREGATES_ONLY, "s3"),
    ("+ enriched output", {"outputs": {"security": False}}, "s3"),
    ("+ security views", {"outputs": {"enriched": False}}, "s3"),
    ("default configuration (+ enriched, + security views)", None, "s3"),
    ("aggregates only, flows.chunk_lines 20000",
     {**AGGREGATES_ONLY, "flows": {"chunk_lines": 20000}}, "s3"),
    ("aggregates only, flows.chunk_lines 1000",
     {**AGGREGATES_ONLY, "flows": {"chunk_lines": 1000}}, "s3"),
    ("aggregates only, job.bundle_size 1000, bundle_time_ms 1000",
     {**AGGREGATES_ONLY, "job": {"bundle_size": 1000, "bundle_time_ms": 1000}}, "s3"),
    ("aggregates only, job.python_workers loopback",
     {**AGGREGATES_ONLY, "job": {"python_workers": "loopback"}}, "s3"),
    ("aggregates only, a third of the input as CloudWatch envelopes", AGGREGATES_ONLY,
     "cloudwatch"),
    # CloudWatch Logs writes one log stream per network interface, so a record holds one
    # interface's flows of one delivery: often tens or hundreds, where the bench's files hold
    # thousands. The per-record and per-group costs, which large records hide.
    (f"aggregates only, all the input as CloudWatch envelopes of {SMALL_ENVELOPE_LINES} lines",
     AGGREGATES_ONLY, "cloudwatch-small"),
    (f"default configuration, all the input as CloudWatch envelopes of {SMALL_ENVELOPE_LINES} "
     "lines", None, "cloudwatch-small"),
    # The same files read by the job itself, as `flowdredge replay` does: a file's small
    # records are parsed together (job.parse.parse_batches), where a staged line is one call.
    (f"aggregates only, CloudWatch envelopes of {SMALL_ENVELOPE_LINES} lines read by the job "
     "(flowdredge replay)", AGGREGATES_ONLY, "cloudwatch-small", "aws"),
    (f"default configuration, CloudWatch envelopes of {SMALL_ENVELOPE_LINES} lines read by the "
     "job (flowdredge replay)", None, "cloudwatch-small", "aws"),
)
# What-if inputs by source: (input name, accounts through CloudWatch, lines an envelope).
WHAT_IF_INPUTS = {"s3": ("what-if", 0, None), "cloudwatch": ("what-if-cloudwatch", 2, None),
                  "cloudwatch-small": ("what-if-cloudwatch-small", Workload.accounts,
                                       SMALL_ENVELOPE_LINES)}


@dataclass
class Run:
    variant: str
    parallelism: int
    input: str                 # tiny, small, full, or a what-if input
    flows: int
    command: list
    wall_s: float = 0.0
    timings: dict = field(default_factory=dict)
    output: str = ""
    what_if: str = ""
    round: int = 0


def machine() -> dict:
    with open("/proc/cpuinfo") as fh:
        model = next((line.split(":", 1)[1].strip() for line in fh
                      if line.startswith("model name")), "?")
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return {"cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": model, "python": platform.python_version(),
            "java": java.splitlines()[0] if java else "?",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": _commit()}


def _commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout
    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no").strip()
    return head + (" with uncommitted changes" if changed else "")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _short(arg: str) -> str:
    return os.path.relpath(arg, ROOT) if os.path.isabs(arg) and arg.startswith(ROOT) else arg


log = logging.getLogger("bench.harness")   # not __name__: "__main__" under python -m


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        self.inputs, self.staged, self.runs = {}, {}, []

    def generate(self, name: str, flows: int, cloudwatch_accounts: int = 0,
                 lines_per_envelope: int = None) -> None:
        w = Workload(flows=flows, minutes=self.args.minutes, instances=self.args.ips,
                     cloudwatch_accounts=cloudwatch_accounts, seed=self.args.seed,
                     lines_per_envelope=lines_per_envelope or Workload.lines_per_envelope)
        folder = os.path.join(self.work, "inputs", name)
        shutil.rmtree(folder, ignore_errors=True)
        g = self.inputs[name] = generate(w, folder)
        log.info(f"input {name}: {g.flow_lines:,} flows, {g.ips:,} IPs, {g.changes:,} ownership "
                 f"changes ({g.reassigned_ips:,} IPs reassigned to another app), {g.s3_files} S3 "
                 f"files, {g.cloudwatch_records} CloudWatch records; {g.seconds:.1f} s")

    def stage(self, name: str, chunk_lines: int = CHUNK_LINES) -> dict:
        """job.replay's staging (part of `flowdredge replay`, timed apart from the job)."""
        key = f"{name}-{chunk_lines}"
        if key not in self.staged:
            from flowdredge.job.replay import stage_flows, stage_metadata
            folder = os.path.join(self.work, "staged", key)
            began = time.monotonic()
            stats = stage_flows([self.inputs[name].flows_dir],
                                os.path.join(folder, "flow-records.txt"), chunk_lines)
            stage_metadata([self.inputs[name].metadata_file],
                           os.path.join(folder, "metadata.jsonl"))
            self.staged[key] = {"flows": os.path.join(folder, "flow-records.txt"),
                                "metadata": os.path.join(folder, "metadata.jsonl"),
                                "records": stats.records,
                                "seconds": round(time.monotonic() - began, 2)}
        return self.staged[key]

    def stage_changelog(self, name: str) -> str:
        """The changelog staged as `flowdredge replay` stages it (the flows are not)."""
        path = os.path.join(self.work, "staged", f"{name}-changelog", "metadata.jsonl")
        if not os.path.exists(path):
            from flowdredge.job.replay import stage_metadata
            stage_metadata([self.inputs[name].metadata_file], path)
        return path

    def config_file(self, overrides: dict) -> str:
        import yaml
        folder = os.path.join(self.work, "configs")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"config-{len(os.listdir(folder))}.yaml")
        with open(path, "w") as fh:
            yaml.safe_dump(overrides, fh)
        return path

    def ours(self, name: str, overrides: dict = None, chunk_lines: int = CHUNK_LINES) -> list:
        staged = self.stage(name, chunk_lines)
        command = ["ours", "--staged-flows", staged["flows"],
                   "--staged-metadata", staged["metadata"]]
        if overrides:
            command += ["--config", self.config_file(overrides)]
        return command

    def ours_aws(self, name: str, overrides: dict = None) -> list:
        command = ["ours", "--aws-flows", self.inputs[name].flows_dir,
                   "--staged-metadata", self.stage_changelog(name)]
        if overrides:
            command += ["--config", self.config_file(overrides)]
        return command

    def sql(self, name: str) -> list:
        # The filesystem source reads the files in directory-listing order, not delivery
        # order: a watermark bound over the whole span keeps every flow in time, as the job's
        # ordered staging does (docs/performance.md).
        return ["sql", "--s3-dir", self.inputs[name].s3_dir,
                "--changelog", self.inputs[name].metadata_file,
                "--out-of-orderness", str(self.args.minutes * 60 + 900)]

    def sql_ordered(self, name: str) -> list:
        from bench.sql_baseline import stage_in_delivery_order
        path = os.path.join(self.work, "staged", f"{name}-sql", "flows.log.gz")
        if not os.path.exists(path):
            stage_in_delivery_order(self.inputs[name].s3_dir, path)
        return ["sql", "--s3-dir", path, "--changelog", self.inputs[name].metadata_file,
                "--out-of-orderness", str(FlowsSection().out_of_orderness_seconds)]

    def command(self, variant: str, name: str) -> list:
        if variant == "sql":
            return self.sql(name)
        if variant == "sql-ordered":
            return self.sql_ordered(name)
        if variant == "ours-aws":
            return self.ours_aws(name, VARIANTS[variant][1])
        return self.ours(name, VARIANTS[variant][1])

    def measure(self, variant: str, parallelism: int, name: str, command: list,
                what_if: str = "", round_: int = 0) -> Run:
        run = Run(variant, parallelism, name, self.inputs[name].flow_lines, command,
                  what_if=what_if, round=round_)
        label = f"{len(self.runs):02d}-{variant}-p{parallelism}-{name}"
        if self.args.rounds > 1:
            label += f"-r{round_ + 1}"
        run.output = os.path.join(self.work, "runs", label)
        shutil.rmtree(run.output, ignore_errors=True)
        os.makedirs(run.output)
        run.command = [sys.executable, "-m", "bench.measure", *command,
                       "--output", os.path.join(run.output, "out"),
                       "--checkpoint-dir", os.path.join(run.output, "checkpoints"),
                       "--parallelism", str(parallelism)]
        env = child_env(FLINK_LOG_DIR=os.path.join(run.output, "logs"))
        load = _load()
        began = time.monotonic()
        done = subprocess.run(run.command, cwd=ROOT, env=env, capture_output=True, text=True)
        run.wall_s = round(time.monotonic() - began, 2)
        with open(os.path.join(run.output, "stderr.txt"), "w") as fh:
            fh.write(done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"run {label} failed (exit {done.returncode}): see "
                               f"{run.output}/stderr.txt and {run.output}/logs/")
        run.timings = {**json.loads(done.stdout.strip().splitlines()[-1]), "load_before": load}
        # Only the aggregates and counts are read back; enriched flows take gigabytes.
        for name in ("out/enriched", "checkpoints"):
            shutil.rmtree(os.path.join(run.output, name), ignore_errors=True)
        log.info(f"{label}: {run.flows:,} flows, job {run.timings['net_runtime_s']:.1f} s, process "
                 f"{run.wall_s:.1f} s, CPU {run.timings['cpu_s']:.1f} s, of it the Python "
                 f"workers' {run.timings.get('cpu_by_kind', {}).get('python_workers', 0):.1f} s "
                 f"(load {load})")
        self.runs.append(run)
        return run


def run_all(args) -> dict:
    bench = Bench(args)
    os.makedirs(bench.work, exist_ok=True)
    info = {**machine(), "load_start": _load()}
    log.info(f"{info['cores']} cores, {info['memory_gib']} GiB, load {info['load_start']}; work "
             f"folder {bench.work}")
    sizes = {"tiny": args.fixed_cost_size} if args.fixed_cost_size else {}
    sizes.update(small=args.size // 4, full=args.size)
    for name, flows in sizes.items():
        bench.generate(name, flows)
    for round_ in range(args.rounds):
        for p in args.parallelism:
            for name in sizes:
                for variant in args.variants:
                    bench.measure(variant, p, name, bench.command(variant, name),
                                  round_=round_)
    what_ifs = []
    if args.what_ifs:
        for data, accounts, envelope_lines in WHAT_IF_INPUTS.values():
            bench.generate(data, args.what_if_size, accounts, envelope_lines)
        for name, overrides, source, *layout in WHAT_IFS:
            lines = (overrides or {}).get("flows", {}).get("chunk_lines", CHUNK_LINES)
            data = WHAT_IF_INPUTS[source][0]
            command = (bench.ours_aws(data, overrides) if layout == ["aws"]
                       else bench.ours(data, overrides, lines))
            bench.measure("ours", 1, data, command, name)
            what_ifs.append({"what_if": name, "run": len(bench.runs) - 1})
    profiles = []
    if args.profile:
        profiles.append(profile_run(bench, "ours-aggregates", "full"))
        if args.what_ifs:
            profiles.append(profile_run(bench, "ours", "what-if"))
    info["load_end"] = _load()
    report = summarize(bench, info, args, what_ifs, profiles)
    with open(os.path.join(bench.work, "results.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    text = render(report)
    with open(os.path.join(bench.work, "results.md"), "w") as fh:
        fh.write(text)
    print(text)
    if args.docs:
        write_docs(text)
        log.info(f"results written to {os.path.relpath(DOCS, ROOT)}")
    return report


def profile_run(bench: Bench, variant: str, name: str) -> dict:
    from bench import profile
    log.info(f"profiling {variant} at parallelism 1 on the {name} input (py-spy, JFR)")
    folder = os.path.join(bench.work, "profile", f"{variant}-{name}")
    shutil.rmtree(folder, ignore_errors=True)
    result = profile.profile(bench.command(variant, name) + [
        "--parallelism", "1", "--output", os.path.join(folder, "out"),
        "--checkpoint-dir", os.path.join(folder, "checkpoints")], folder)
    for sub in ("out/enriched", "checkpoints"):
        shutil.rmtree(os.path.join(folder, sub), ignore_errors=True)
    return {"variant": variant, "input": name, "flows": bench.inputs[name].flow_lines, **result}


def summarize(bench: Bench, info: dict, args, what_ifs: list, profiles: list) -> dict:
    runs = bench.runs
    rows = [_figures(variant, p, runs) for p in args.parallelism for variant in args.variants]
    for row in rows:
        same_p = {r["variant"]: r for r in rows if r["parallelism"] == row["parallelism"]}
        if row["variant"].startswith("ours") and "sql" in same_p:
            row["vs_sql"] = _ratios(row, same_p["sql"], ("steady_flows_per_s",
                                                         "steady_flows_per_cpu_s",
                                                         "end_to_end_flows_per_s"))
        if row["variant"].startswith("ours") and row["variant"] != "ours-aggregates" \
                and "ours-aggregates" in same_p:
            # Issue #15's "no more than 1.3x the time of aggregates only": job time, full input.
            row["vs_aggregates"] = _ratios(row, same_p["ours-aggregates"], ("runtime_s",))
    checks = []
    # Every run of ours against every SQL run on the same input, parallelism and round.
    for run in runs:
        for ours in (r for r in runs if r.variant.startswith("ours") and r.input == run.input
                     and r.parallelism == run.parallelism and r.round == run.round
                     and not r.what_if):
            if run.variant.startswith("sql") and not run.what_if:
                checks.append({"variant": run.variant, "ours": ours.variant,
                               "parallelism": run.parallelism, "input": run.input,
                               "round": run.round,
                               **aggregates_agree(os.path.join(ours.output, "out"),
                                                  os.path.join(run.output, "out"),
                                                  bench.inputs[run.input].flow_lines)})
    for w in what_ifs:
        run = runs[w["run"]]
        w.update(flows=run.flows, runtime_s=run.timings["net_runtime_s"], span_s=span(run),
                 cpu_s=run.timings["cpu_s"], process_s=run.wall_s,
                 command=" ".join(_short(c) for c in run.command))
    return {"machine": info, "args": vars(args), "rows": rows, "checks": checks,
            "what_ifs": what_ifs, "profiles": profiles,
            "inputs": {k: {f: x for f, x in asdict(v).items() if f != "files"}
                       for k, v in bench.inputs.items()},
            "staging": bench.staged, "runs": [asdict(r) for r in runs]}


def span(run: Run) -> float:
    """Seconds from job submission to the last write to an output."""
    return run.timings["last_output_s"] - run.timings["submitted_s"]


def _figures(variant: str, p: int, runs: list) -> dict:
    """The pipeline's figures at parallelism p: each the median of its rounds' (`rounds`, one
    dict each), with `ranges` (min, max) when there is more than one round."""
    rounds = sorted({r.round for r in runs if r.variant == variant and r.parallelism == p
                     and not r.what_if})
    per_round = [_round_figures(variant, p, [r for r in runs if r.round == k and not r.what_if])
                 for k in rounds]
    row = {"variant": variant, "parallelism": p, "flows": per_round[0]["flows"],
           "command": per_round[-1]["command"], "rounds": per_round}
    # A round's figure is None where its spans gave none (a full run no longer than the small).
    numbers = [k for k in dict.fromkeys(k for f in per_round for k in f)
               if k not in ("flows", "command")]
    for key in numbers:
        values = [f[key] for f in per_round if f.get(key) is not None]
        row[key] = median(values) if values else None
    if len(per_round) > 1:
        row["ranges"] = {key: (min(v), max(v)) for key in numbers
                         if (v := [f[key] for f in per_round if f.get(key) is not None])}
    return row


def _round_figures(variant: str, p: int, runs: list) -> dict:
    by_input = {r.input: r for r in runs if r.variant == variant and r.parallelism == p}
    full, small, tiny = by_input.get("full"), by_input.get("small"), by_input.get("tiny")
    row = {"flows": full.flows, "runtime_s": full.timings["net_runtime_s"],
           "process_s": full.wall_s, "span_s": span(full), "cpu_s": full.timings["cpu_s"],
           "end_to_end_flows_per_s": full.flows / full.wall_s,
           "command": " ".join(_short(c) for c in full.command)}
    if small:
        n = full.flows - small.flows
        seconds = span(full) - span(small)
        cpu = full.timings["cpu_s"] - small.timings["cpu_s"]
        row["steady_flows_per_s"] = n / seconds if seconds > 0 else None
        row["steady_flows_per_s_per_core"] = row["steady_flows_per_s"] and \
            row["steady_flows_per_s"] / p
        row["steady_flows_per_cpu_s"] = n / cpu if cpu > 0 else None
    if tiny:
        row.update(fixed_flows=tiny.flows, fixed_span_s=span(tiny),
                   fixed_process_s=tiny.wall_s, fixed_client_s=tiny.timings["submitted_s"],
                   fixed_cpu_s=tiny.timings["cpu_s"])
    return row


def _ratios(row: dict, other: dict, keys: tuple) -> dict:
    """row ÷ other for each key, taken round by round (both runs of a ratio met the same
    minutes of the machine): the median, and `ranges` (min, max) over the rounds."""
    ratios, ranges = {}, {}
    for key in keys:
        values = [a[key] / b[key] for a, b in zip(row["rounds"], other["rounds"])
                  if a.get(key) and b.get(key)]
        if values:
            ratios[key] = median(values)
            ranges[key] = (min(values), max(values))
    if len(row["rounds"]) > 1:
        ratios["ranges"] = ranges
    return ratios


def _num(x, digits=0) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _ranged(figures: dict, key: str, digits: int = 0) -> str:
    """The figure, and its range over the rounds in brackets when there are several."""
    low_high = figures.get("ranges", {}).get(key)
    text = _num(figures.get(key), digits)
    return text if low_high is None else f"{text} ({_num(low_high[0], digits)}–" \
                                          f"{_num(low_high[1], digits)})"


def render(report: dict) -> str:
    m, a, inputs = report["machine"], report["args"], report["inputs"]
    full = inputs["full"]
    options = (f"--size {a['size']} --parallelism {' '.join(map(str, a['parallelism']))} "
               f"--variants {' '.join(a['variants'])}"
               + (f" --fixed-cost-size {a['fixed_cost_size']}" if a["fixed_cost_size"] != 2000
                  else "")
               + (f" --what-ifs --what-if-size {a['what_if_size']}" if a["what_ifs"] else "")
               + (" --profile" if a["profile"] else "")
               + (f" --rounds {a['rounds']}" if a["rounds"] > 1 else ""))
    lines = [
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}, {m['java']}, commit {m['commit']}, by `bench/run {options}`. "
        f"Load average {m['load_start']} at the start and {m['load_end']} at the end: the "
        "machine is shared, single figures are noisy, compare within one run."
        + (f" Each figure is the median of {a['rounds']} rounds (every run repeated in "
           f"{a['rounds']} passes over all of them), their range in brackets; a ratio is taken "
           "within each round." if a["rounds"] > 1 else ""),
        "",
        f"Input: {full['flow_lines']:,} flows (+{full['nodata_lines']:,} NODATA lines) in "
        f"{full['s3_files']} S3 files; {full['ips']:,} IPs, {full['changes']:,} ownership "
        f"changes in {a['minutes']} minutes ({full['reassigned_ips']:,} IPs handed to another "
        f"app). Small: {inputs['small']['flow_lines']:,} flows"
        + (f"; tiny (fixed cost): {inputs['tiny']['flow_lines']:,} flows" if "tiny" in inputs
           else "") + ", same estate and changelog size.",
        "",
        "| pipeline | p | full input: process s / job s / processing s | fixed cost (tiny "
        "input): client start-up s / processing s / process s | steady flows/s | "
        "steady flows/s per core (÷ p) | steady flows per CPU-second | "
        "end to end flows/s (full input, process) | ours ÷ SQL, steady flows/s | "
        "ours ÷ SQL, per CPU-second | ÷ aggregates only, job s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["rows"]:
        vs, agg = r.get("vs_sql", {}), r.get("vs_aggregates", {})
        lines.append(
            f"| {r['variant']} | {r['parallelism']} | {_num(r['process_s'], 1)} / "
            f"{_num(r['runtime_s'], 1)} / {_num(r['span_s'], 1)} | "
            f"{_num(r.get('fixed_client_s'), 1)} / {_num(r.get('fixed_span_s'), 1)} / "
            f"{_num(r.get('fixed_process_s'), 1)} | "
            f"{_ranged(r, 'steady_flows_per_s')} | {_ranged(r, 'steady_flows_per_s_per_core')} "
            f"| {_ranged(r, 'steady_flows_per_cpu_s')} | {_num(r['end_to_end_flows_per_s'])} | "
            f"{_ranged(vs, 'steady_flows_per_s', 2)} | "
            f"{_ranged(vs, 'steady_flows_per_cpu_s', 2)} | {_ranged(agg, 'runtime_s', 2)} |")
    lines += ["", "SQL baseline against the job, every aggregate row compared:", ""]
    lines += [f"- {c['ours']} against {c['variant']}, p{c['parallelism']}, {c['input']} input"
              f"{', round ' + str(c['round'] + 1) if a['rounds'] > 1 else ''}: {c['summary']}"
              for c in report["checks"]]
    if report["what_ifs"]:
        ref = report["what_ifs"][0]
        w_in = inputs["what-if"]
        lines += ["", f"What-ifs: the job at p1 on {w_in['flow_lines']:,} flows of the same "
                      "estate, one run each (they include the fixed cost):", "",
                  "| change | processing s | job runtime s | CPU s | processing ÷ reference "
                  "| CPU ÷ reference |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for w in report["what_ifs"]:
            lines.append(f"| {w['what_if']} | {w['span_s']:.1f} | {w['runtime_s']:.1f} | "
                         f"{w['cpu_s']:.1f} | {w['span_s'] / ref['span_s']:.2f} | "
                         f"{w['cpu_s'] / ref['cpu_s']:.2f} |")
    for prof in report["profiles"]:
        from bench import profile
        lines += ["", f"Profile: {prof['variant']}, p1, {prof['flows']:,} flows: "
                      f"`{' '.join(_short(c) for c in prof['command'])}`", "",
                  profile.render(prof)]
    lines += ["", "Staging (job.replay; part of `flowdredge replay`, outside the job runtime): "
              + "; ".join(f"{k}: {v['records']:,} records, {v['seconds']:.1f} s"
                          for k, v in report["staging"].items()),
              "", "<details><summary>The command of every run</summary>", ""]
    lines += [f"- {r['variant']} p{r['parallelism']} {r['input']}"
              f"{' round ' + str(r['round'] + 1) if a['rounds'] > 1 else ''}"
              f"{' (' + r['what_if'] + ')' if r['what_if'] else ''}: "
              f"`{' '.join(_short(c) for c in r['command'])}`" for r in report["runs"]]
    lines += ["", "</details>"]
    return "\n".join(lines)


def write_docs(text: str) -> None:
    with open(DOCS, encoding="utf-8") as fh:
        doc = fh.read()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOCS} lacks the {BEGIN} ... {END} markers")
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(DOCS, "w", encoding="utf-8") as fh:
        fh.write(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2_000_000,
                   help="flows in the full input (the small one has a quarter)")
    p.add_argument("--parallelism", type=int, nargs="+", default=[1, 2])
    p.add_argument("--variants", nargs="+", default=["ours-aggregates", "sql"],
                   choices=list(VARIANTS))
    p.add_argument("--fixed-cost-size", type=int, default=2000,
                   help="flows in the tiny input that measures the fixed cost (0: skip)")
    p.add_argument("--rounds", type=_at_least_one, default=1,
                   help="run every pipeline this many times, in passes over all of them; "
                        "figures are the medians, ratios taken within each round")
    p.add_argument("--what-ifs", action="store_true",
                   help="also run the job at p1 with each change of bench.harness.WHAT_IFS")
    p.add_argument("--what-if-size", type=int, default=400_000)
    p.add_argument("--profile", action="store_true",
                   help="also profile the job at p1 (needs py-spy: .venv/bin/pip install py-spy)")
    p.add_argument("--ips", type=int, default=Workload.instances,
                   help="instances in the estate (IPs: about 10%% more)")
    p.add_argument("--minutes", type=int, default=Workload.minutes)
    p.add_argument("--seed", type=int, default=Workload.seed)
    p.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                  "flowdredge-bench"),
                   help="folder for inputs, outputs and logs (replaced)")
    p.add_argument("--no-docs", dest="docs", action="store_false",
                   help="do not write the results into docs/performance.md")
    return p


def main(argv=None) -> int:
    logs.setup("bench", "[bench]")
    run_all(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
