"""Where the job's time goes: one run of bench.measure under py-spy (the Python workers, only
samples that hold the interpreter lock, i.e. Python CPU) and Java Flight Recorder (the JVM).

py-spy is not a dependency of the project: `.venv/bin/pip install py-spy` first. It follows the
Python workers that the JVM starts (job.python_workers: process) with --subprocesses.
"""
import collections
import os
import re
import shutil
import subprocess
import sys

from flowdredge.operate.cluster import child_env

# First match wins, so the more specific come first.
PYTHON_CATEGORIES = (
    ("enriched JSON lines and their gzip (job/enriched.py)", "_block_text"),
    ("enriched JSON lines and their gzip (job/enriched.py)", "_lines_text"),
    ("enriched JSON lines and their gzip (job/enriched.py)", "EnrichedWriter.line"),
    ("enriched JSON lines and their gzip (job/enriched.py)", "gzip_block"),
    # A batch's share of the security views, reduced and encoded (AttributeFlows).
    ("security views (job/flink/security.py, job/security.py)", "encode_views"),
    ("security views (job/flink/security.py, job/security.py)", "window_views"),
    ("security views (job/flink/security.py, job/security.py)", "of_conversation_sums"),
    ("attribution: owner lookup, partial aggregation (job/attribute.py)", "attribute_group"),
    ("flow group decode (job/codec.py)", "decode_group"),
    ("flow group encode (job/codec.py)", "encode_group"),
    ("parsing: gzip, JSON, split, convert, validate (job/parse.py)", "parse_record"),
    ("changelog events: parse (ParseMetadataEvents)", "ParseMetadataEvents.process_element"),
    ("changelog events: ownership index, broadcast state", "process_broadcast_element"),
    ("metrics gauges (OwnershipIndex.ranges over every IP)", "OwnershipIndex.ranges"),
    ("security views (job/flink/security.py, job/security.py)", "security.py"),
    ("counts and dead-letter JSON lines", "counts_line"),
    ("waiting groups: keyed state, timers", "AttributeFlows.on_timer"),
    ("waiting groups: keyed state, timers", "AttributeFlows.process_element"),
    ("Python worker start-up (imports)", "_find_and_load"),
    ("Beam data plane, gRPC (framework)", "grpc"),
    ("Beam data plane, gRPC (framework)", "data_plane"),
    ("PyFlink/Beam element handling and coders (framework)", "bundle_processor"),
    ("PyFlink/Beam element handling and coders (framework)", "fn_execution"),
)


# A sample holding the interpreter lock with no Python frame: the cyclic garbage collector,
# mostly (`py-spy record --native` names it, gc_collect_main), which runs outside any frame.
NO_PYTHON_FRAME = "no Python frame (the garbage collector, mostly)"


def python_summary(raw_path: str) -> dict:
    """Shares of the Python workers' lock-holding samples, by category and by leaf function.
    Categories match the frames only: the process entries name pyflink.fn_execution too."""
    categories, leaves, total = collections.Counter(), collections.Counter(), 0
    with open(raw_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if "beam_boot" not in stack or not n.isdigit():
                continue
            n = int(n)
            total += n
            frames = [f for f in stack.split(";") if not f.startswith("process ")]
            if not frames:
                categories[NO_PYTHON_FRAME] += n
                leaves[NO_PYTHON_FRAME] += n
                continue
            text = ";".join(frames)
            category = next((name for name, key in PYTHON_CATEGORIES if key in text), "other")
            categories[category] += n
            leaves[re.sub(r":\d+\)$", ")", frames[-1])] += n
    share = lambda c: [(k, round(100 * v / total, 1)) for k, v in c.most_common(12)]  # noqa: E731
    return {"samples": total, "categories": share(categories), "functions": share(leaves)}


def jvm_summary(jfr_path: str) -> dict:
    """Top leaf frames of the JVM's execution samples, with the task (thread) they ran in."""
    text = subprocess.run(["jfr", "print", "--events", "jdk.ExecutionSample", "--stack-depth",
                           "3", jfr_path], capture_output=True, text=True).stdout
    frames, total = collections.Counter(), 0
    for event in text.split("jdk.ExecutionSample")[1:]:
        thread = re.search(r'sampledThread = "([^"(]*)', event)
        top = re.search(r"^\s+([\w.$<>]+)\(", event, re.M)
        if top:
            total += 1
            task = re.sub(r"\s*->.*|\d+", "", thread.group(1) if thread else "?").strip()
            frames[(".".join(top.group(1).rsplit(".", 2)[-2:]), task[:40])] += 1
    return {"samples": total,
            "frames": [(f"{frame} ({task})", round(100 * n / total, 1))
                       for (frame, task), n in frames.most_common(12)]}


def profile(measure_args: list, out_dir: str) -> dict:
    py_spy = shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if not py_spy:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    os.makedirs(out_dir, exist_ok=True)
    raw, jfr = os.path.join(out_dir, "python.txt"), os.path.join(out_dir, "jvm.jfr")
    env = child_env(FLINK_LOG_DIR=os.path.join(out_dir, "logs"),
                    JAVA_TOOL_OPTIONS=f"-XX:StartFlightRecording=filename={jfr},settings=profile,"
                                      "dumponexit=true")
    command = [py_spy, "record", "--subprocesses", "--gil", "--rate", "100", "--format", "raw",
               "-o", raw, "--", sys.executable, "-m", "bench.measure", *measure_args]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"profiled run failed: {done.stderr[-2000:]}")
    return {"command": command, "python": python_summary(raw), "jvm": jvm_summary(jfr)}


def render(result: dict) -> str:
    lines = [f"Python workers: {result['python']['samples']:,} samples at 100 Hz holding the "
             "interpreter lock (Python CPU time), by stage:", "",
             "| stage | share |", "| --- | --- |"]
    lines += [f"| {k} | {v} % |" for k, v in result["python"]["categories"]]
    lines += ["", "Python functions with the most samples of their own:", "",
              "| function | share |", "| --- | --- |"]
    lines += [f"| `{k}` | {v} % |" for k, v in result["python"]["functions"]]
    lines += ["", f"JVM: {result['jvm']['samples']:,} execution samples (Java Flight Recorder), "
                  "top frames and the task that ran them:", "",
              "| frame (task) | share |", "| --- | --- |"]
    lines += [f"| `{k}` | {v} % |" for k, v in result["jvm"]["frames"]]
    return "\n".join(lines)
