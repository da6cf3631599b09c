"""The job's plan as a savepoint sees it: every operator the job's entry point builds, with its
uid, for the tests that hold operators to a name and a stable uid (house rule 4: savepoints map
state back by uid)."""
import json
import os
import re
import subprocess
import sys

from helpers import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Builds the job as a cluster and Managed Flink do (job.flink.run.deployed_job) and prints every
# transformation it holds, sources included.
PLAN = """
import json, sys
from flowdredge.job.config import from_dict
from flowdredge.job.flink.run import deployed_job
from flowdredge.connectors.streams import transformations
config = from_dict(json.loads(sys.argv[1]))
flows, metadata, output, layout = sys.argv[2:6]
env = deployed_job(config, output, flows or None, metadata, layout)
seen = {}
for t in transformations(env):
    for p in t.getTransitivePredecessors():
        seen[p.getId()] = [p.getUid(), p.getName(), p.getClass().getSimpleName(),
                           p.getDescription()]
print(json.dumps(list(seen.values())))
"""

# The job's functions with keyed or operator state that are not broadcast functions (Python's
# and the AWS layout's flow-file gate): their transformations' classes are every stateless
# step's too.
STATE_UIDS = ("parse-flow-records", "parse-metadata-events", "security-windows",
              "security-events", "flow-file-gate")


def operators(folder, sections: dict, flows: str = "", metadata: str = "",
              layout: str = "staged") -> list:
    """[uid, name, transformation class, description] of every operator of the job built with
    the config `sections` in a fresh process (as `flink run` builds it: SQL operators are
    numbered per process): over the Kinesis streams of `sections` without `flows`, else over
    files of `layout` (deployed_job). A SQL operator's description spells out its query."""
    output = os.path.join(str(folder), "out")
    done = subprocess.run([sys.executable, "-c", PLAN, json.dumps(sections), flows, metadata,
                           output, layout], capture_output=True, text=True,
                          env=subprocess_env(), cwd=ROOT)
    assert done.returncode == 0, (done.stderr[-3000:], {
        k: v for k, v in subprocess_env().items() if k.startswith(("JAVA", "FLINK", "PYFLINK"))})
    return json.loads(done.stdout.strip().splitlines()[-1])


# Steps that only route records (rebalance, key_by, union, a side output) hold no state and
# take no uid.
VIRTUAL = ("PartitionTransformation", "UnionTransformation", "SideOutputTransformation")


def missing_uids(ops: list) -> list:
    """Operators without a name or a uid, and uids given twice."""
    bare = [f"{name!r} ({kind})" for uid, name, kind, _ in ops
            if not (uid and name) and not kind.startswith(VIRTUAL)]
    uids = [uid for uid, *_ in ops if uid]
    return bare + sorted({f"uid {uid!r} twice" for uid in uids if uids.count(uid) > 1})


def stateful(ops: list) -> dict:
    """The operators a savepoint holds state for (sources, sinks, functions with keyed or
    broadcast state, SQL window aggregates and file writers): uid -> what it is (a SQL
    operator's description without its planner node number, which is not part of its state)."""
    return {uid: (kind, re.sub(r"^\[\d+\]:", "", what or ""))
            for uid, _, kind, what in ops
            if kind in ("SourceTransformation", "SinkTransformation",
                        "PythonKeyedBroadcastStateTransformation")
            or uid in STATE_UIDS
            or (uid or "").endswith(("_global-window-aggregate", "_streaming-writer"))}


def lost(before: dict, after: list) -> list:
    """Stateful operators of `before` (stateful) that `after` (operators) lacks, or has as
    another operator under the same uid (the state would be restored into it, or fail to)."""
    after = stateful(after)
    return sorted(uid for uid, what in before.items() if after.get(uid) != what)
