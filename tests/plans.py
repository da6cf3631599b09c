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

# Builds the job as a cluster and Managed Flink do (job.flink.run.deployed_job), once per config,
# and prints every transformation each holds, sources included. The planner numbers SQL
# operators (their names, descriptions and own uids) across everything a process translates,
# where `flink run` builds one plan in a fresh process: its count starts again before each build.
# Only the names of anonymous tables' scans, which hold no state, go on counting.
PLAN = """
import json, sys
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment
from flowdredge.job.config import from_dict
from flowdredge.job.flink.run import deployed_job
from flowdredge.connectors.streams import transformations

def renumber_sql_operators():
    gateway = get_gateway()
    planner = StreamTableEnvironment.create(
        StreamExecutionEnvironment.get_execution_environment())._j_tenv.getPlanner()
    planner.getClass().getClassLoader().loadClass(
        "org.apache.flink.table.planner.plan.nodes.exec.ExecNodeContext").getMethod(
        "resetIdCounter", gateway.new_array(gateway.jvm.java.lang.Class, 0)).invoke(
        None, gateway.new_array(gateway.jvm.java.lang.Object, 0))

flows, metadata, output, layout = sys.argv[2:6]
built = {}
for name, sections in json.loads(sys.argv[1]).items():
    if built:
        renumber_sql_operators()
    env = deployed_job(from_dict(sections), output, flows or None, metadata, layout)
    seen = {}
    for t in transformations(env):
        for p in t.getTransitivePredecessors():
            seen[p.getId()] = [p.getUid(), p.getName(), p.getClass().getSimpleName(),
                               p.getDescription()]
    built[name] = list(seen.values())
print(json.dumps(built))
"""

# The job's functions with keyed or operator state that are not broadcast functions (Python's
# and the AWS layout's flow-file gate): their transformations' classes are every stateless
# step's too.
STATE_UIDS = ("parse-flow-records", "parse-metadata-events", "security-windows",
              "security-events", "flow-file-gate")


def operators(folder, configs: dict, flows: str = "", metadata: str = "",
              layout: str = "staged") -> dict:
    """Name -> [uid, name, transformation class, description] of every operator of the job
    built with each config (sections) of `configs`, all in one fresh process (a JVM's start
    each took 6 s): over the Kinesis streams of the config without `flows`, else over files of
    `layout` (deployed_job). A SQL operator's description spells out its query."""
    output = os.path.join(str(folder), "out")
    done = subprocess.run([sys.executable, "-c", PLAN, json.dumps(configs), flows, metadata,
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
