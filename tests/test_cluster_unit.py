"""operate.cluster without a cluster: its conf, the shipped code, feeding watched folders."""
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import zipfile

import pytest

from helpers import wrapper_calls
from flowdredge.operate.cluster import Cluster, feed, flink_home, ship_code
from flowdredge.synthetic.estate import Scenario, generate

pytestmark = pytest.mark.unit


def test_conf_keeps_the_cluster_in_its_folder(tmp_path):
    cluster = Cluster(folder=str(tmp_path / "c"), rest_port=18123, rpc_port=16999, slots=3)
    cluster.write_conf()
    conf = {}
    for line in (tmp_path / "c" / "conf" / "config.yaml").read_text().splitlines():
        key, value = line.split(": ", 1)
        conf[key] = json.loads(value)
    assert conf["rest.port"] == 18123 and conf["jobmanager.rpc.port"] == 16999
    assert conf["taskmanager.numberOfTaskSlots"] == 3
    assert conf["env.pid.dir"] == str(tmp_path / "c" / "pid")
    assert conf["env.log.dir"] == str(tmp_path / "c" / "log")
    assert "--add-opens=java.base/java.util=ALL-UNNAMED" in conf["env.java.opts.all"]
    assert (tmp_path / "c" / "conf" / "log4j.properties").is_file()
    assert os.path.isfile(os.path.join(flink_home(), "bin", "flink"))


def test_shipped_code_holds_the_packages_and_no_caches(tmp_path):
    names = zipfile.ZipFile(ship_code(str(tmp_path / "code.zip"))).namelist()
    for module in ("__init__.py", "job/submit.py", "job/flink/pipeline.py", "connectors/files.py",
                   "schemas/outputs.py"):
        assert f"flowdredge/{module}" in names
    assert all(n.endswith(".py") and "__pycache__" not in n for n in names)


def test_feed_writes_one_visible_file_per_folder(tmp_path):
    out = generate(Scenario(minutes=2, flows_per_minute=50, seed=3), str(tmp_path / "in"))
    records, events = feed([str(tmp_path / "in" / "flows")], [out.metadata_file],
                           str(tmp_path / "w" / "f"), str(tmp_path / "w" / "m"), "part-1",
                           chunk_lines=10)
    assert os.listdir(tmp_path / "w" / "f") == ["part-1"]
    assert os.listdir(tmp_path / "w" / "m") == ["part-1"]
    assert records == len((tmp_path / "w" / "f" / "part-1").read_text().splitlines())
    with open(out.metadata_file) as fh:
        assert events == sum(1 for line in fh if line.strip())


class _RecordingCluster(Cluster):
    """Records the `flink` CLI arguments instead of running them; a cluster that answers."""
    state = "RUNNING"
    listed = False   # whether the job it submitted is in the cluster's list of jobs

    def flink(self, *args):
        self.args = args
        return "Job has been submitted with JobID " + "0" * 32

    def rest(self, path, timeout_s=5):
        return {"state": self.state,
                "jobs": [{"jid": "0" * 32, "state": self.state}] if self.listed else []}


def test_the_cluster_script_says_in_one_line_what_stops_it(tmp_path, monkeypatch, capsys):
    from flowdredge.operate import cluster as cluster_mod
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    refused = _RecordingCluster(folder=str(tmp_path / "cluster"))
    for java, message in (
            ("...IllegalStateException: Failed to rollback to checkpoint/savepoint file:/sp/1. "
             "Cannot map checkpoint/savepoint state for operator 9b2d01e2 to the new program, "
             "because the operator is not available in the new program. If you want to allow "
             "to skip this, you can set the --allowNonRestoredState option on the CLI.",
             "--from-savepoint file:///sp/1: it holds state of operators this job no longer has"),
            ("...FileNotFoundException: Cannot find checkpoint or savepoint file/directory",
             "--from-savepoint file:///sp/1: no savepoint there")):
        refused.flink = lambda *args, java=java: (_ for _ in ()).throw(
            cluster_mod.ClusterError(f"flink run failed (1):\n{java}\nlogs: x"))
        with pytest.raises(cluster_mod.ClusterError, match="^" + re.escape(message)):
            refused.submit("c.yaml", str(tmp_path / "f"), str(tmp_path / "m"),
                           str(tmp_path / "out"), savepoint="file:///sp/1")
    finished = _RecordingCluster(folder=str(tmp_path / "cluster"))
    finished.state = "FINISHED"
    with pytest.raises(cluster_mod.ClusterError, match="is FINISHED: there is nothing to stop"):
        finished.stop_with_savepoint("0" * 32)
    # A second start is refused while this folder's daemons live; a pid file naming another
    # process (a crash's, the pid reused) is not one of them.
    up = Cluster(folder=str(tmp_path / "up"))
    os.makedirs(os.path.join(up.folder, "pid"))
    daemon = subprocess.Popen(["bash", "-c", "sleep 60; exit", "org.apache.flink.Daemon",
                               f"-Dlog.file={up.log_dir}/jm.log"], start_new_session=True)
    deadline = time.monotonic() + 10
    while b"org.apache.flink" not in open(f"/proc/{daemon.pid}/cmdline", "rb").read():
        assert time.monotonic() < deadline, "the stand-in daemon did not start"
        time.sleep(0.01)   # until the child has become bash (it stays: two commands)
    try:
        with open(os.path.join(up.folder, "pid", "flink-standalonesession.pid"), "w") as fh:
            fh.write(f"{os.getpid()}\n{daemon.pid}\n")
        assert up.running_pids() == [daemon.pid]
        with pytest.raises(cluster_mod.ClusterError, match="is running already"):
            up.start()
    finally:
        os.killpg(daemon.pid, signal.SIGKILL)   # bash and its sleep
        daemon.wait()
    assert up.running_pids() == []
    # A job the cluster does not know.
    unknown = _RecordingCluster(folder=str(tmp_path / "cluster"))
    unknown.rest = lambda path, timeout_s=5: (_ for _ in ()).throw(urllib.error.HTTPError(
        unknown.url + path, 404, "Not Found", None, None))
    with pytest.raises(cluster_mod.ClusterError, match="no job x on the cluster at"):
        unknown.stop_with_savepoint("x")
    # Not a job id at all: Flink answers 400, which read "no cluster answers" (a review).
    unknown.rest = lambda path, timeout_s=5: (_ for _ in ()).throw(urllib.error.HTTPError(
        unknown.url + path, 400, "Bad Request", None, None))
    with pytest.raises(cluster_mod.ClusterError, match="no job nonsense on the cluster at .* "
                                                       r"\(a job id is 32 hex digits"):
        unknown.stop_with_savepoint("nonsense")
    # The commands after start talk to the ports it was started with.
    Cluster(folder=str(tmp_path / "ports"), rest_port=18082, rpc_port=16124).write_conf()
    args = cluster_mod.parser().parse_args(["--dir", str(tmp_path / "ports"), "jobs"])
    assert (cluster_mod._cluster(args).rest_port, cluster_mod._cluster(args).rpc_port) == (
        18082, 16124)
    args = cluster_mod.parser().parse_args(["stop-job", "x", "--dir", str(tmp_path / "ports"),
                                            "--rest-port", "18083"])
    assert cluster_mod._cluster(args).rest_port == 18083
    args = cluster_mod.parser().parse_args(["--dir", str(tmp_path / "ports"), "start"])
    assert cluster_mod._cluster(args).rest_port == cluster_mod.DEFAULT_REST_PORT
    # No cluster: one line naming where it looked.
    assert cluster_mod.main(["--dir", str(tmp_path / "none"), "--rest-port", "1", "jobs"]) == 2
    assert capsys.readouterr().err.startswith(
        "cluster: error: no cluster answers at http://127.0.0.1:1 (")


def test_a_second_job_on_a_running_jobs_output_is_refused(tmp_path, monkeypatch, capsys):
    """Two jobs submitted with one --output both ran and committed every flow twice; a local
    output that cannot be made failed the job after its id was printed; a stop with no
    cluster there was a Python error."""
    from flowdredge.operate import cluster as cluster_mod
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))
    cluster.listed = True
    where = ("c.yaml", str(tmp_path / "flows"), str(tmp_path / "meta"))
    cluster.submit(*where, str(tmp_path / "out"))
    with pytest.raises(cluster_mod.ClusterError, match=f"job {'0' * 32} still writes .*out/: "
                                                       f"stop it first"):
        cluster.submit(*where, str(tmp_path / "out") + "/")
    # Another job to another output: the first job's is still refused (the record held the
    # last job only, a review: a third submit to the first output was taken).
    cluster.flink = lambda *args: "Job has been submitted with JobID " + "1" * 32
    cluster.rest = lambda path, timeout_s=5: {"state": "RUNNING", "jobs": [
        {"jid": "0" * 32, "state": "RUNNING"}, {"jid": "1" * 32, "state": "RUNNING"}]}
    cluster.submit(*where, str(tmp_path / "other"))
    for output, job in (("out", "0"), ("other", "1")):
        with pytest.raises(cluster_mod.ClusterError, match=f"job {job * 32} still writes"):
            cluster.submit(*where, str(tmp_path / output))
    del cluster.flink, cluster.rest
    cluster.state = "FINISHED"   # stopped with a savepoint: its output may be resumed
    cluster.submit(*where, str(tmp_path / "out"), savepoint="file:///sp/1")
    (tmp_path / "file").write_text("")
    with pytest.raises(cluster_mod.ClusterError, match="--output .*file/out: Not a directory"):
        cluster.submit(*where, str(tmp_path / "file" / "out"))
    assert cluster_mod.main(["--dir", str(tmp_path / "none"), "stop"]) == 2
    assert capsys.readouterr().err == f"cluster: error: no cluster in {tmp_path / 'none'}: " \
                                      f"nothing to stop\n"


def test_a_job_of_more_instances_than_the_cluster_has_slots_is_refused(tmp_path, monkeypatch):
    """A standalone TaskManager's slots are fixed: a job of job.parallelism (or --parallelism)
    above them was submitted, and waited for slots it could not get until Flink failed it."""
    from flowdredge.operate import cluster as cluster_mod
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))
    cluster.rest = lambda path, timeout_s=5: {"slots-total": 2, "jobs": []}
    (tmp_path / "c.yaml").write_text("job:\n  parallelism: 3\n")
    where = (str(tmp_path / "c.yaml"), "s3://f/AWSLogs/", "s3://m/changelog/")
    for parallelism, said in ((None, 3), (4, 4)):
        with pytest.raises(cluster_mod.ClusterError, match=re.escape(
                f"parallelism {said} (--parallelism, or the config's job.parallelism) is more "
                f"than the cluster's 2 slots: the job would wait for slots it cannot get, then "
                f"fail; restart the cluster with more (scripts/cluster stop, then start --slots "
                f"{said}), or lower it")):
            cluster.submit(*where, str(tmp_path / "out"), parallelism=parallelism)
    assert not hasattr(cluster, "args") and not (tmp_path / "out").exists()
    cluster.submit(*where, str(tmp_path / "out"), parallelism=2)
    assert cluster.args[cluster.args.index("--parallelism") + 1] == "2"


def test_a_cluster_whose_taskmanager_is_gone_is_said_so_not_to_want_more_slots(
        tmp_path, monkeypatch):
    """A TaskManager that stopped (killed, out of memory) leaves the overview 0 slots: submit
    said the job's parallelism was more than the cluster's 0 slots and to start the cluster
    with --slots 2, which start refuses while its JobManager runs."""
    from flowdredge.operate import cluster as cluster_mod
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))
    cluster.rest = lambda path, timeout_s=5: {"slots-total": 0, "taskmanagers": 0, "jobs": []}
    (tmp_path / "c.yaml").write_text("job:\n  parallelism: 2\n")
    with pytest.raises(cluster_mod.ClusterError, match="^" + re.escape(
            "the cluster has no TaskManager (0 slots): it stopped (its log is under "
            f"{cluster.log_dir}); scripts/cluster stop, then start") + "$"):
        cluster.submit(str(tmp_path / "c.yaml"), "s3://f/AWSLogs/", "s3://m/changelog/",
                       str(tmp_path / "out"))
    assert not hasattr(cluster, "args") and not (tmp_path / "out").exists()


def test_an_s3_output_with_a_trailing_slash_is_the_same_output(tmp_path, monkeypatch):
    # Both name one prefix: a second job there would commit every flow twice.
    from flowdredge.operate import cluster as cluster_mod
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))
    cluster.listed = True
    where = ("c.yaml", str(tmp_path / "flows"), str(tmp_path / "meta"))
    cluster.submit(*where, "s3://b/out/")
    with pytest.raises(cluster_mod.ClusterError, match=f"job {'0' * 32} still writes s3://b/out:"):
        cluster.submit(*where, "s3://b/out")


def test_a_refused_submit_leaves_no_output_folder(tmp_path, monkeypatch):
    """The output's check makes the folder (a job that cannot write it fails after its id was
    printed); a submit that flink run then refuses left it behind, empty."""
    from flowdredge.operate import cluster as cluster_mod
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))

    def refuse(*args):
        raise cluster_mod.ClusterError("flink run failed (1)")
    cluster.flink = refuse
    where = ("c.yaml", str(tmp_path / "flows"), str(tmp_path / "meta"))
    (tmp_path / "kept").mkdir()
    for output in (tmp_path / "new" / "deeper" / "out", tmp_path / "kept" / "out",
                   tmp_path / "kept"):
        with pytest.raises(cluster_mod.ClusterError, match="flink run failed"):
            cluster.submit(*where, str(output))
    assert not (tmp_path / "new").exists() and not (tmp_path / "kept" / "out").exists()
    assert (tmp_path / "kept").is_dir()   # there before the submit
    del cluster.flink
    cluster.submit(*where, str(tmp_path / "new" / "out"))
    assert (tmp_path / "new" / "out").is_dir()


@pytest.mark.parametrize("layout", ["staged", "aws"])
def test_submit_passes_the_flow_layout(tmp_path, monkeypatch, layout):
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))
    flows = "s3://bucket/AWSLogs/" if layout == "aws" else str(tmp_path / "flows")
    cluster.submit("c.yaml", flows, str(tmp_path / "meta"), str(tmp_path / "out"),
                   flows_layout=layout)
    args = list(cluster.args)
    assert args[args.index("--flows") + 1] == flows
    if layout == "aws":
        assert args[args.index("--flows-layout") + 1] == "aws"
        assert args[args.index("--follow-seconds") + 1] == "0"
    else:
        assert args[args.index("--flows-layout") + 1] == "staged" and os.path.isdir(flows)
    # Without a layout: AWS's own files, the production default.
    cluster.submit("c.yaml", flows, str(tmp_path / "meta"), str(tmp_path / "out"))
    assert cluster.args[cluster.args.index("--flows-layout") + 1] == "aws"


def test_follow_seconds_is_refused_where_nothing_is_followed(tmp_path, monkeypatch, capsys):
    """AWS's flow files are read once to their end: --follow-seconds was dropped without a word,
    and a user who wanted the folder followed got a bounded job."""
    from flowdredge.operate import cluster as cluster_mod
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))
    where = ("c.yaml", str(tmp_path / "flows"), str(tmp_path / "meta"))
    for layout, flows in (("aws", where[1]), ("aws", None), ("staged", None)):
        with pytest.raises(ValueError, match="--follow-seconds is for staged records"):
            cluster.submit(where[0], flows, flows and where[2], str(tmp_path / "out"),
                           follow_seconds=7, flows_layout=layout)
    assert not hasattr(cluster, "args") and not (tmp_path / "out").exists()
    cluster.submit(*where, str(tmp_path / "out"), follow_seconds=7, flows_layout="staged")
    assert cluster.args[cluster.args.index("--follow-seconds") + 1] == "7"
    cluster.submit(*where, str(tmp_path / "out2"), flows_layout="staged")
    assert cluster.args[cluster.args.index("--follow-seconds") + 1] == \
        str(cluster_mod.FOLLOW_SECONDS)
    assert cluster_mod.main(["--dir", str(tmp_path / "none"), "submit", "--config", "c.yaml",
                             "--flows", where[1], "--metadata", where[2], "--output",
                             str(tmp_path / "out3"), "--follow-seconds", "7"]) == 2
    assert capsys.readouterr().err.startswith("cluster: error: --follow-seconds is for staged")


def test_a_changelog_the_jobs_reader_fails_or_waits_on_is_refused_before_submit(
        tmp_path, monkeypatch, capsys):
    """The AWS-layout job reads its changelog files with a stream's snapshot's reader
    (connectors/jvm ChangelogFiles), which fails on a cut .gz (its restarts spent), waits for
    ever on a FIFO in the folder and fails at start on a link to a folder above it (seen on a
    mini-cluster); `flowdredge run` checks its snapshot, the submit checked nothing (a
    review)."""
    import gzip
    from flowdredge.operate import cluster as cluster_mod
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "a.jsonl.gz").write_bytes(gzip.compress(b'{"type":"HEARTBEAT","ts":1}\n' * 999)[:99])
    where = ("c.yaml", str(tmp_path / "flows"), str(meta), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="--metadata: .*a.jsonl.gz: cannot read"):
        cluster.submit(*where)
    (meta / "a.jsonl.gz").unlink()
    os.mkfifo(meta / "b.fifo")
    with pytest.raises(ValueError, match="--metadata: .*b.fifo: not a regular file"):
        cluster.submit(*where)
    assert not hasattr(cluster, "args") and not (tmp_path / "out").exists()
    assert cluster_mod.main(["--dir", str(tmp_path / "none"), "submit", "--config", "c.yaml",
                             "--flows", where[1], "--metadata", where[2], "--output",
                             where[3]]) == 2
    assert re.match(r"cluster: error: --metadata: \S*b.fifo: not a regular file",
                    capsys.readouterr().err)
    (meta / "b.fifo").unlink()
    cluster.submit(*where)   # an empty folder: the job's own business
    # A name Flink leaves out, even given it, is refused before the code is shipped, as the
    # job's client refuses it (a review), wherever it is: the check before had passed it.
    for hidden in (str(tmp_path / "_meta"), str(tmp_path / ".meta.jsonl"), "s3://b/_changes/"):
        with pytest.raises(ValueError, match=f"--metadata: {re.escape(hidden)}: Flink does not "
                                             f"read a file or folder whose name starts with"):
            cluster.submit(*where[:2], hidden, str(tmp_path / "out3"))
    # The staged layout's folders are feed's, followed: their reader (Flink's file source)
    # waits on a FIFO there as well, which the submit passed (a review).
    os.mkfifo(meta / "b.fifo")
    with pytest.raises(ValueError, match="--metadata: .*b.fifo: not a regular file"):
        cluster.submit(*where[:3], str(tmp_path / "out2"), flows_layout="staged")
    (meta / "b.fifo").unlink()
    (tmp_path / "flows").mkdir()
    os.mkfifo(tmp_path / "flows" / "c.fifo")
    with pytest.raises(ValueError, match="--flows: .*c.fifo: not a regular file"):
        cluster.submit(*where[:3], str(tmp_path / "out2"), flows_layout="staged")
    assert not (tmp_path / "out2").exists()


def test_s3_locations_reach_the_job_as_given(tmp_path, monkeypatch):
    """Made absolute, s3://b/out became the local folder <cwd>/s3:/b/out: the job wrote there."""
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))
    cluster.submit("c.yaml", "s3://flows/AWSLogs/", "s3://meta/changelog/", "s3://out/fd/")
    args = list(cluster.args)
    given = {flag: args[args.index(flag) + 1] for flag in ("--flows", "--metadata", "--output")}
    assert given == {"--flows": "s3://flows/AWSLogs/", "--metadata": "s3://meta/changelog/",
                     "--output": "s3://out/fd/"}
    monkeypatch.chdir(tmp_path)
    cluster.submit("c.yaml", "flows", "meta", "out")
    args = list(cluster.args)
    assert args[args.index("--output") + 1] == str(tmp_path / "out")
    assert args[args.index("--metadata") + 1] == str(tmp_path / "meta")


def test_the_flink_cli_talks_to_the_port_the_python_calls_use(tmp_path, monkeypatch):
    """--rest-port may differ from the port in the conf of --dir: the `flink` CLI, which reads
    that conf, is told the port the REST calls use."""
    ran = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: ran.append(cmd) or
                        subprocess.CompletedProcess(cmd, 0, "Savepoint completed. Path: x", ""))
    Cluster(folder=str(tmp_path / "c"), rest_port=18123).flink("stop", "--drain", "a" * 32)
    assert ran[0][1:] == ["stop", "-m", "localhost:18123", "--drain", "a" * 32]


def test_submit_drops_unclaimed_state_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))
    where = ("c.yaml", str(tmp_path / "flows"), str(tmp_path / "meta"), str(tmp_path / "out"))
    cluster.submit(*where, savepoint="file:///sp/1")
    assert "--allowNonRestoredState" not in cluster.args
    cluster.submit(*where, savepoint="file:///sp/1", allow_non_restored_state=True)
    args = list(cluster.args)
    assert args[args.index("--fromSavepoint") + 1] == "file:///sp/1"
    assert "--allowNonRestoredState" in args[:args.index("--pyModule")]   # flink run's own
    with pytest.raises(ValueError, match="needs a savepoint"):
        cluster.submit(*where, allow_non_restored_state=True)


def test_feed_stages_with_the_limits_of_the_jobs_config(tmp_path, capsys):
    """`scripts/cluster feed --config`: the changelog staged with the config's metadata limits
    (a line of 10,000 bytes kept whole under max_line_bytes 20,000, three lines a record) and
    the flows with its flows.chunk_lines; without a config, the defaults (the line too long)."""
    from flowdredge.job.replay import stage_flows
    from flowdredge.operate.cluster import main

    out = generate(Scenario(minutes=2, flows_per_minute=50, seed=3), str(tmp_path / "in"))
    changelog = tmp_path / "changelog.jsonl"
    long_line = json.dumps({"type": "ASSIGN", "ts": 1767225600000, "ip": "10.9.9.9",
                            "app": "a" * 10_000})
    changelog.write_text(long_line + "\n" + open(out.metadata_file).read())
    config = tmp_path / "job.yaml"
    config.write_text("metadata: {max_line_bytes: 20000, chunk_lines: 3}\n"
                      "flows: {chunk_lines: 7}\n")

    def staged(name, *config_args):
        assert main(["feed", "--flows", str(tmp_path / "in" / "flows"), "--metadata",
                     str(changelog), "--flows-dir", str(tmp_path / "f"), "--metadata-dir",
                     str(tmp_path / "m"), "--name", name, *config_args]) == 0
        records = [json.loads(line) for line in (tmp_path / "m" / name).read_text().splitlines()]
        flow_records = len((tmp_path / "f" / name).read_text().splitlines())
        return records, flow_records

    records, flow_records = staged("configured", "--config", str(config))
    assert records[0]["lines"][0] == long_line and "long" not in records[0]
    assert {len(record["lines"]) for record in records[:-1]} == {3}
    assert flow_records == stage_flows([str(tmp_path / "in" / "flows")],
                                       str(tmp_path / "seven"), 7).records
    records, default_flow_records = staged("defaults")
    assert records[0]["lines"][0] == "" and records[0]["long"][0][0] == 0
    assert default_flow_records < flow_records
    assert capsys.readouterr().out.count("metadata events") == 2


def test_the_wrapper_runs_the_full_setup_to_start_or_submit_but_not_for_help(tmp_path):
    """`scripts/cluster start --help` ran the full setup (Java, npm, the jars) before printing
    (a review)."""
    python = "python -m flowdredge.operate.cluster"
    for args, setup in ((["start", "--help"], "setup --python"),
                        (["submit", "-h"], "setup --python"),
                        (["--rest-port", "8082", "start"], "setup"),
                        (["submit", "--flows", "f"], "setup"),
                        (["stop-job", "start"], "setup --python"),
                        (["jobs"], "setup --python")):
        assert wrapper_calls(tmp_path, "cluster", args) == [setup, f"{python} {' '.join(args)}"]
