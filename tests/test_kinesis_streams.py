"""The streams of the `kinesis` section resolved before Flink starts (connectors.kinesis.client),
against the local Kinesis API server: every mistake a one-line ConfigError."""
import json
import logging
import os
import re
import shutil

import pytest

from flowdredge.connectors.kinesis import client as kinesis_client
from flowdredge.connectors.kinesis.settings import source_labels
from flowdredge.job.config import Config
from flowdredge.schemas.settings import ConfigError

A = "arn:aws:kinesis:us-east-1:111111111111:stream/flows"
B = "arn:aws:kinesis:us-east-1:222222222222:stream/flows"


@pytest.mark.unit
def test_sources_of_streams_of_one_name_in_two_accounts_get_labels_of_their_own():
    other = "arn:aws:kinesis:us-east-1:111111111111:stream/more"
    assert source_labels([A, other]) == ["flows", "more"]
    # A stream of the name in another account added at the end leaves the first one's label
    # (each account has a stream of one name; relabelled, its positions were dropped).
    assert source_labels([A, other, B]) == ["flows", "more", "222222222222-flows"]
    assert source_labels([B, A]) == ["flows", "111111111111-flows"]


@pytest.mark.kinesis
def test_unknown_streams_other_regions_and_a_stream_named_twice_are_config_errors(
        kinesis_local):
    def section(**streams):
        return Config().replace(kinesis={"endpoint": kinesis_local.endpoint,
                                         "metadata_stream": "resolve-meta", **streams}).kinesis

    kinesis = kinesis_client.client(section(flow_streams="x"))
    flows = kinesis_client.create_stream(kinesis, "resolve-flows", 1)
    kinesis_client.create_stream(kinesis, "resolve-meta", 1)
    resolved = kinesis_client.resolve(section(flow_streams=flows))
    assert resolved.flows == (flows,) and resolved.metadata.endswith(":stream/resolve-meta")

    unknown_arn = flows.replace("resolve-flows", "resolve-nothing")
    for streams, message in (
            ({"flow_streams": "resolve-nothing"}, "'resolve-nothing': ResourceNotFound"),
            ({"flow_streams": unknown_arn}, f"'{unknown_arn}': ResourceNotFound"),
            ({"flow_streams": flows, "aggregates_stream": unknown_arn}, "ResourceNotFound"),
            ({"flow_streams": flows.replace("us-east-1", "eu-west-1")},
             "is in eu-west-1, not in kinesis.region \\(us-east-1\\)"),
            ({"flow_streams": f"resolve-flows,{flows}"}, "names a stream twice"),
            # One stream in two roles (a review: flow records read as changelog lines).
            ({"flow_streams": "resolve-flows", "metadata_stream": flows},
             "^kinesis.metadata_stream is the stream kinesis.flow_streams names"),
            ({"flow_streams": flows, "aggregates_stream": "resolve-meta"},
             "^kinesis.aggregates_stream is the stream kinesis.metadata_stream names"),
            ({"flow_streams": flows, "aggregates_stream": "resolve-meta",
              "metadata_stream": "resolve-flows"}, "^kinesis.metadata_stream is the stream")):
        with pytest.raises(ConfigError, match=message):
            kinesis_client.resolve(section(**streams))
    with pytest.raises(ConfigError, match="ResourceNotFound"):
        kinesis_client.shards(kinesis, [unknown_arn])
    # kinesis-local's TLS port, its certificate its own: trusted on this machine only (a
    # review: Python refused it where the connector took it).
    over_tls = Config().replace(kinesis={"endpoint": kinesis_local.tls_endpoint,
                                         "metadata_stream": "resolve-meta",
                                         "flow_streams": "resolve-flows"}).kinesis
    assert kinesis_client.resolve(over_tls) == resolved
    assert kinesis_client.client_properties(over_tls)["aws.trust.all.certificates"] == "true"
    # A changelog on several shards keeps its order only if written with one partition key.
    assert kinesis_client.changelog_order_warning(kinesis, resolved.metadata) is None
    two = kinesis_client.create_stream(kinesis, "resolve-meta-2", 2)
    assert "has 2 open shards: the changelog's order holds within a shard only" in \
        kinesis_client.changelog_order_warning(kinesis, two)


@pytest.mark.unit
def test_the_kinesis_tables_options_are_sql_strings_a_quote_doubled(monkeypatch):
    """The options went into the Kinesis sink tables' SQL as they are: a key with a quote (the
    AWS_* variables a local endpoint takes) ended its string, and the job's SQL failed."""
    from flowdredge.connectors.kinesis.flink import _connector_options
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "it's")
    kin = Config().replace(kinesis={"endpoint": "http://localhost:4567"}).kinesis
    arn = "arn:aws:kinesis:us-east-1:000000000000:stream/out"
    options = _connector_options(kin, arn)
    pairs = re.findall(r"'((?:[^']|'')*)' = '((?:[^']|'')*)'", options)
    assert ", ".join(f"'{k}' = '{v}'" for k, v in pairs) == options
    read = {k.replace("''", "'"): v.replace("''", "'") for k, v in pairs}
    assert read["aws.credentials.basic.secretkey"] == "it's" and read["stream.arn"] == arn


@pytest.mark.unit
def test_resume_takes_the_newest_completed_checkpoint(tmp_path, caplog):
    import time
    from flowdredge.cli import run_options
    from flowdredge.job.outputs import latest_checkpoint
    config = Config()
    output = tmp_path / "out"
    with pytest.raises(ConfigError, match="no completed checkpoint"):
        run_options(config, str(output), "latest")
    for job, chk, done in (("a", "chk-3", True), ("b", "chk-1", True), ("b", "chk-2", False)):
        folder = output / "checkpoints" / job / chk
        folder.mkdir(parents=True)
        if done:
            (folder / "_metadata").write_bytes(b"x")
            time.sleep(0.01)
    newest = str(output / "checkpoints" / "b" / "chk-1")
    assert latest_checkpoint(str(output / "checkpoints")) == newest
    latest = run_options(config, str(output), "latest")
    assert latest["execution.state-recovery.path"] == newest
    older = str(output / "checkpoints" / "a" / "chk-3")
    named = run_options(config, str(output), older)
    assert named["execution.state-recovery.path"] == older
    # The newest checkpoint of this output's runs is claimed (deleted once subsumed); with no
    # run noted (job.checkpoint_dir may be shared), or one named, it is not.
    assert "execution.state-recovery.claim-mode" not in latest
    assert "execution.state-recovery.claim-mode" not in named
    from flowdredge.cli import note_run_shape
    note_run_shape(config, str(output), "c")   # a run stopped before its first checkpoint
    with pytest.raises(ConfigError, match="no completed checkpoint under .* of the runs of"):
        run_options(config, str(output), "latest")   # not another output's job's
    note_run_shape(config, str(output), "a")
    latest = run_options(config, str(output), "latest")
    assert latest["execution.state-recovery.path"] == older   # b is no run of this output
    assert latest["execution.state-recovery.claim-mode"] == "CLAIM"
    # A resume with kinesis.metadata_snapshot set where the run had none, or the reverse,
    # failed at every restart with the connector's VersionMismatchException (a review).
    # Each job's own: job b read a snapshot, job a did not.
    snapshot = config.replace(kinesis={"metadata_snapshot": "snap.jsonl"})
    note_run_shape(config, str(output), "a")
    note_run_shape(snapshot, str(output), "b")
    with pytest.raises(ConfigError, match="^--resume: the run in .* read its changelog from "
                                          "kinesis.metadata_snapshot, then the stream: set it"):
        run_options(config, str(output), "latest")
    assert run_options(snapshot, str(output), "latest")["execution.state-recovery.path"] == newest
    with pytest.raises(ConfigError, match="from the stream alone: leave kinesis.metadata_snap"):
        run_options(snapshot, str(output), older)
    assert run_options(config, str(output), older)["execution.state-recovery.path"] == older
    # A stream deleted and created again under its name since the run: its positions are the
    # old stream's (a review: a new changelog stream never read, 73 flows unattributed).
    note_run_shape(config, str(output), "a", {"arn:meta": 1_767_225_600_000})
    with pytest.raises(ConfigError, match="^--resume: stream arn:meta was created again since "
                                          "the run in .* began \\(created 2026-01-01T00:00:00Z "
                                          "then, 2026-01-01T01:00:00Z now\\)"):
        run_options(config, str(output), older, born={"arn:meta": 1_767_229_200_000})
    for born in ({"arn:meta": 1_767_225_600_000}, {"arn:other": 5}):
        assert run_options(config, str(output), older, born=born)[
            "execution.state-recovery.path"] == older
    # Streams of one name reordered swap their sources' uids: refused, named.
    a_flows, b_flows = ("arn:aws:kinesis:us-east-1:111111111111:stream/flows",
                        "arn:aws:kinesis:us-east-1:222222222222:stream/flows")
    note_run_shape(config, str(output), "a", {a_flows: 1, b_flows: 2, "arn:meta": 3})
    with pytest.raises(ConfigError, match=f"^--resume: the source of stream {a_flows} would be "
                                          f"flow-stream-111111111111-flows, and was "
                                          f"flow-stream-flows in the run in .*: .* List them"):
        run_options(config, str(output), older, born={b_flows: 2, a_flows: 1, "arn:meta": 3})
    for born in ({a_flows: 1, b_flows: 2, "arn:meta": 3},
                 {a_flows: 1, b_flows: 2, "arn:c": 4, "arn:meta": 3}):
        assert run_options(config, str(output), older, born=born)[
            "execution.state-recovery.path"] == older
    # Other windows cannot take the open ones: with --allow-non-restored-state, as the refusal
    # of the unmapped state offered, they were dropped, half the flows lost (a review).
    wider = config.replace(job={"window_seconds": 120})
    for allow in (False, True):
        with pytest.raises(ConfigError, match="^--resume: job.window_seconds is 120, and was 60 "
                                              "in the run in .*: .* Set it back to 60"):
            run_options(wider, str(output), older, allow_non_restored_state=allow)
    # An optional output turned on starts with the resumed job: said, not refused.
    bare = config.replace(outputs={"security": False, "enriched": False})
    note_run_shape(bare, str(output), "a")
    every = config.replace(kinesis={"aggregates_stream": "aggs",
                                    "security_events_stream": "events"})
    with caplog.at_level(logging.INFO, logger="flowdredge.cli"):
        assert run_options(every, str(output), older)["execution.state-recovery.path"] == older
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "outputs.enriched is on, and was off in the run in " + str(output),
        "outputs.security is on, and was off in the run in " + str(output),
        "kinesis.aggregates_stream is on, and was off in the run in " + str(output),
        "kinesis.security_events_stream is on, and was off in the run in " + str(output)]
    assert [r.getMessage().endswith("lack the flows read before it)")
            for r in caplog.records] == [False, True, True, False]
    caplog.clear()
    run_options(bare, str(output), older)
    note_run_shape(every, str(output), "a")
    run_options(every, str(output), older)
    assert not caplog.records
    # A run noted by a release that did not note the Kinesis outputs: nothing said of them.
    shapes = json.loads((output / ".flowdredge-run.json").read_text())
    del shapes["a"]["kinesis_outputs"]
    (output / ".flowdredge-run.json").write_text(json.dumps(shapes))
    run_options(every, str(output), older)
    assert not caplog.records
    # A savepoint from elsewhere is not judged by this output's jobs.
    elsewhere = tmp_path / "savepoint-1"
    elsewhere.mkdir()
    (elsewhere / "_metadata").write_bytes(b"x")
    assert run_options(snapshot, str(output), str(elsewhere))["execution.state-recovery.path"] \
        == str(elsewhere)
    os.remove(output / ".flowdredge-run.json")
    for not_one in ("/x/chk-9", str(output / "checkpoints" / "b" / "chk-2")):   # no _metadata
        with pytest.raises(ConfigError, match="is not a checkpoint or savepoint"):
            run_options(config, str(output), not_one)
    # A run stopped before its first checkpoint left in-progress files only: not outputs.
    (output / "counts" / "dt=2026-12-05" / "hour=02").mkdir(parents=True)
    (output / "counts" / "dt=2026-12-05" / "hour=02" / ".counts-0.inprogress.1").write_text("")
    run_options(config, str(output), None)
    # A fresh run into a folder of outputs is refused; into an empty one it starts anew.
    (output / "aggregates").mkdir()
    (output / "aggregates" / "part-0").write_text("{}\n")
    with pytest.raises(FileExistsError, match="--resume"):
        run_options(config, str(output), None)
    fresh = run_options(config, str(tmp_path / "new"), None)
    assert fresh == {"execution.checkpointing.externalized-checkpoint-retention":
                     "RETAIN_ON_CANCELLATION"} and os.path.isdir(tmp_path / "new")
    # A replay's outputs have no checkpoint: --resume would not help.
    replayed = tmp_path / "replayed"
    (replayed / "aggregates").mkdir(parents=True)
    (replayed / "aggregates" / "part-0").write_text("{}\n")
    with pytest.raises(FileExistsError, match="no checkpoint to resume from: choose another"):
        run_options(config, str(replayed), None)


@pytest.mark.unit
def test_a_run_that_did_not_start_leaves_no_empty_folder_it_made(tmp_path, monkeypatch):
    from flowdredge import cli

    def refused(cfg, args):
        # As Flink does before a resume is refused: the new job's checkpoint folders.
        os.makedirs(os.path.join(args.output, "checkpoints", "new-job", "shared"))
        raise ConfigError("--resume: refused")

    def run(output):
        # cmd_run as main() calls it, without main's logging set-up (it outlives the test).
        args = cli.parser().parse_args(["run", "--output", str(output), "--flow-streams", "f",
                                        "--metadata-stream", "m"])
        with pytest.raises(ConfigError, match="^--resume: refused$"):
            cli.cmd_run(args)

    monkeypatch.setattr(cli, "_start_run", refused)
    # A folder of an earlier run keeps everything, its empty folders too; the new job's go,
    # and an earlier job's of this output that holds no file.
    out = tmp_path / "out"
    (out / "checkpoints" / "old-job" / "chk-4").mkdir(parents=True)
    (out / "checkpoints" / "old-job" / "chk-4" / "_metadata").write_bytes(b"x")
    (out / "checkpoints" / "old-job" / "shared").mkdir()
    # A run whose checkpoint a resumed run claimed, and Flink deleted: only folders left.
    (out / "checkpoints" / ("5" * 32) / "shared").mkdir(parents=True)
    # Another output's job (a shared job.checkpoint_dir), just started: not this output's.
    (out / "checkpoints" / ("6" * 32) / "shared").mkdir(parents=True)
    (out / ".flowdredge-run.json").write_text(json.dumps({"5" * 32: False, "old-job": False}))
    (out / "aggregates").mkdir()
    run(out)
    assert sorted(os.listdir(out / "checkpoints")) == ["6" * 32, "old-job"]
    assert sorted(os.listdir(out / "checkpoints" / "old-job")) == ["chk-4", "shared"]
    assert (out / "aggregates").is_dir()
    # A new output goes whole, with the folders made above it; a folder that was there stays.
    run(tmp_path / "a" / "b" / "out")
    assert sorted(os.listdir(tmp_path)) == ["out"]
    # A new checkpoint folder elsewhere goes with the folders made above it.
    monkeypatch.setattr(cli, "_start_run", lambda cfg, args: (
        os.makedirs(cfg.job.checkpoint_dir + "/new-job/shared"),
        (_ for _ in ()).throw(ConfigError("--resume: refused"))))
    config = tmp_path / "c.yaml"
    config.write_text(f"job: {{checkpoint_dir: {tmp_path}/ck/team/flowdredge}}\n")
    args = cli.parser().parse_args(["run", "--output", str(out), "--flow-streams", "f",
                                    "--metadata-stream", "m", "--config", str(config)])
    with pytest.raises(ConfigError, match="^--resume: refused$"):
        cli.cmd_run(args)
    assert sorted(os.listdir(tmp_path)) == ["c.yaml", "out"]
    # A folder that cannot go (a file appeared) leaves the refusal its own error.
    monkeypatch.setattr(cli, "_start_run", refused)
    monkeypatch.setattr(os, "rmdir", lambda *args, **kwargs: (_ for _ in ()).throw(
        OSError(39, "busy")))
    run(tmp_path / "c")


@pytest.mark.unit
def test_a_second_run_on_an_output_a_run_writes_is_refused(tmp_path, monkeypatch, caplog):
    """Two `flowdredge run --resume` on one output (a service manager restarting while the
    old process lives, a second terminal) restored one checkpoint and committed every flow
    twice (a review: 2,400 flows over-counted)."""
    from flowdredge import cli
    from flowdredge.job.outputs import RUN_LOCK, OutputError, hold_output
    out = tmp_path / "out"
    held = hold_output(str(out))
    started = []

    class Job:
        def get_job_id(self):
            return "j1"

    def start(cfg, args):
        started.append(args.output)
        return Job(), "http://127.0.0.1:9", {"arn:f": 1}

    def run_until_stopped(job, rest_url, report_seconds, checkpoints, guard):
        # Held while the job runs.
        with pytest.raises(OutputError, match=r"flowdredge run \(pid \d+\) writes there"):
            hold_output(str(out))
        caplog.clear()   # the start's warning of job.max_restarts 0
        guard.check()
        assert not caplog.records
        # The folder deleted while the job runs (it makes its folders again): a --resume then
        # found no lock and no notes, took the running job's checkpoint, and both committed
        # the same flows (a review: 438 duplicate rows). The job takes both again.
        shutil.rmtree(out)
        with caplog.at_level(logging.WARNING, logger="flowdredge.cli"):
            guard.check()
        assert [r.getMessage().split(":")[0] for r in caplog.records] == [
            f"{out / RUN_LOCK} was deleted while this job ran (its output folder with it?)"]
        with pytest.raises(OutputError, match=r"flowdredge run \(pid \d+\) writes there"):
            hold_output(str(out))
        notes = out / ".flowdredge-run.json"
        assert json.loads(notes.read_text())["j1"]["streams"] == {"arn:f": 1}
        # The notes alone deleted: noted again.
        caplog.clear()
        notes.unlink()
        with caplog.at_level(logging.WARNING, logger="flowdredge.cli"):
            guard.check()
            guard.check()
        assert [r.getMessage().split(":")[0] for r in caplog.records] == [
            f"{notes} was deleted while this job ran (its output folder with it?)"]
        assert "j1" in json.loads(notes.read_text())
        # The folder replaced by a file: said once, the job left running.
        caplog.clear()
        shutil.rmtree(out)
        out.write_text("")
        with caplog.at_level(logging.WARNING, logger="flowdredge.cli"):
            guard.check()
            guard.check()
        assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
            f"{out / RUN_LOCK} or .flowdredge-run.json was deleted while this job ran, and "
            f"cannot be made again"]
        out.unlink()
        guard.check()
        return 0

    monkeypatch.setattr(cli, "_start_run", start)
    monkeypatch.setattr(cli, "_run_until_stopped", run_until_stopped)
    args = cli.parser().parse_args(["run", "--output", str(out), "--flow-streams", "f",
                                    "--metadata-stream", "m"])
    with pytest.raises(OutputError, match=r"flowdredge run \(pid \d+\) writes there"):
        cli.cmd_run(args)
    assert started == [] and (out / RUN_LOCK).exists()
    held.close()   # as the system does when the first process ends, however it ends
    assert cli.cmd_run(args) == 0 and started == [str(out)]
    # How it read its changelog, for its --resume.
    assert json.loads((out / ".flowdredge-run.json").read_text()) == {
        "j1": {"snapshot": False, "streams": {"arn:f": 1}, "window_seconds": 60,
               "outputs": ["enriched", "security"], "kinesis_outputs": [], "labels": {}}}
    # Released when the run ends.
    hold_output(str(out)).close()
    # Not a folder: said so, as before the lock.
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="file: not a folder"):
        hold_output(str(tmp_path / "file"))


@pytest.mark.unit
def test_replaced_outputs_take_the_report_of_the_old_ones_with_them(tmp_path):
    from flowdredge.job.outputs import REPORT_FILE, replace_outputs
    (tmp_path / "run" / "aggregates").mkdir(parents=True)
    (tmp_path / "run" / "aggregates" / "part-0").write_text("new\n")
    (tmp_path / "out" / "aggregates").mkdir(parents=True)
    (tmp_path / "out" / "aggregates" / "part-0").write_text("old\n")
    (tmp_path / "out" / REPORT_FILE).write_text("<html>old</html>")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    replace_outputs(str(tmp_path / "run"), str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == ["aggregates", "notes.txt"]
    assert (tmp_path / "out" / "aggregates" / "part-0").read_text() == "new\n"


@pytest.mark.minicluster
def test_flinks_json_format_writes_an_owner_character_in_at_most_the_bytes_config_counts(
        tmp_path):
    """The aggregates stream's records are Flink's json format (Jackson): job.config bounds
    metadata.max_line_bytes by AGGREGATE_OWNER_CHAR_BYTES a character. It counted 6 (a control
    character's \\u001b), but a code point past U+FFFF is written as its surrogate pair
    escaped, 12 bytes: a row could pass the 1 MiB the sink fails the job on."""
    from pyflink.table import EnvironmentSettings, TableEnvironment
    from flowdredge.job.config import AGGREGATE_OWNER_CHAR_BYTES
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.get_config().set("parallelism.default", "1")
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE `sink` (`n` BIGINT, `a` STRING) WITH (
        'connector' = 'filesystem', 'path' = '{tmp_path / "out"}', 'format' = 'json')""")
    chars = ["\U0001F600", "\U0010FFFF", "\x1b", "\x00", "\x7f", "\x85", "\u2028", "\uffff",
             '"', "\\", "\n"]
    t_env.from_elements(list(enumerate(chars)), ["n", "a"]).execute_insert("sink").wait()
    (part,) = (tmp_path / "out").iterdir()
    written = {}
    for line in part.read_bytes().splitlines():
        row = json.loads(line)
        written[chars[row["n"]]] = len(line) - len(b'{"n":0,"a":""}') - (row["n"] > 9)
    assert max(written.values()) == AGGREGATE_OWNER_CHAR_BYTES == written["\U0001F600"]


@pytest.mark.minicluster
def test_dedup_keys_differ_for_rows_that_differ_only_in_where_a_separator_falls():
    from pyflink.table import EnvironmentSettings, TableEnvironment
    from flowdredge.connectors.kinesis.flink import dedup_key
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    rows = t_env.sql_query(f"""
        SELECT n, {dedup_key(["a", "b"])} FROM (VALUES (0, 'x|y', 'z'), (1, 'x', 'y|z'),
            (2, 'x', CAST(NULL AS STRING)), (3, 'x', ''), (4, 'x', 'y|z')) AS t(n, a, b)""")
    with rows.execute().collect() as results:
        keys = dict(tuple(row) for row in results)   # rows in no set order
    assert sorted(keys) == [0, 1, 2, 3, 4]
    assert len(set(keys.values())) == 4 and keys[1] == keys[4]


@pytest.mark.unit
def test_the_stream_demo_replaces_a_previous_demo_and_leaves_other_files(tmp_path):
    from flowdredge.job.outputs import remove_outputs
    (tmp_path / "aggregates" / "dt=2026-12-05").mkdir(parents=True)
    (tmp_path / "inputs").mkdir()
    (tmp_path / "kinesis-local.log").write_text("log")
    (tmp_path / "notes.txt").write_text("mine")
    assert remove_outputs(str(tmp_path), ("inputs", "checkpoints", "kinesis-local.log")) == [
        "aggregates", "inputs", "kinesis-local.log"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _run_until_a_checkpoint(args, checkpoints, after=None):
    """`flowdredge run ARGS` in a process group of its own, as in a terminal, until it has
    completed a checkpoint other than `after`; then SIGINT to the group (Ctrl-C). Returns
    (exit status, stderr)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from helpers import ctrl_c_as_in_a_terminal, subprocess_env
    from flowdredge.job.outputs import latest_checkpoint
    run = subprocess.Popen([sys.executable, "-m", "flowdredge.cli", "run", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True, env=subprocess_env(),
                           preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 180
        while latest_checkpoint(checkpoints) in (None, after):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "no checkpoint in 180 s"
            time.sleep(0.5)
        os.killpg(run.pid, signal.SIGINT)
        _out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    return run.returncode, err


@pytest.mark.kinesis
def test_ctrl_c_stops_flowdredge_run_cleanly_and_a_changed_job_resumes(kinesis_local, tmp_path):
    """Ctrl-C: the job is cancelled, no traceback, exit status 130, and the checkpoints stay
    for --resume. An output turned off then: a resume is refused in one line, which names
    --allow-non-restored-state; with it the job resumes."""
    import subprocess
    import sys
    import time
    from helpers import subprocess_env
    from flowdredge.job.outputs import latest_checkpoint
    kinesis = kinesis_client.client(Config().replace(
        kinesis={"endpoint": kinesis_local.endpoint}).kinesis)
    kinesis_client.create_stream(kinesis, "ctrl-c-flows", 1)
    kinesis_client.create_stream(kinesis, "ctrl-c-meta", 1)
    output = tmp_path / "out"
    checkpoints = str(output / "checkpoints")

    def args(name, enriched, *more):
        config = tmp_path / f"{name}.json"
        config.write_text(json.dumps({"job": {"checkpoint_interval_seconds": 1},
                                      "outputs": {"enriched": enriched, "security": False}}))
        return ["--config", str(config), "--output", str(output), "--endpoint",
                kinesis_local.endpoint, "--flow-streams", "ctrl-c-flows", "--metadata-stream",
                "ctrl-c-meta", *more]

    status, err = _run_until_a_checkpoint(args("first", True), checkpoints)
    assert status == 130, err
    assert "stopping (Ctrl-C)" in err and "Traceback" not in err, err
    first = latest_checkpoint(checkpoints)
    assert first is not None

    refused = subprocess.run([sys.executable, "-m", "flowdredge.cli", "run",
                              *args("without-enriched", False, "--resume")],
                             capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert refused.returncode == 2, refused.stderr
    assert "--allow-non-restored-state drops it" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) == 2, \
        refused.stderr   # the start line and the error

    status, err = _run_until_a_checkpoint(
        args("without-enriched", False, "--resume", "--allow-non-restored-state"), checkpoints,
        after=first)
    assert status == 130 and f"resuming from {first}" in err, err

    # The resumed run claimed the checkpoint it started from: deleted once one of its own
    # completed; the next start removes the first run's folder it left empty.
    deadline = time.monotonic() + 30
    while os.path.exists(first):
        assert time.monotonic() < deadline, f"{first} was kept"
        time.sleep(0.5)
    refused = subprocess.run([sys.executable, "-m", "flowdredge.cli", "run",
                              *args("without-enriched", False, "--resume",
                                    str(tmp_path / "nowhere"))],
                             capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert refused.returncode == 2 and "is not a checkpoint" in refused.stderr, refused.stderr
    assert sorted(os.listdir(checkpoints)) == [os.path.basename(os.path.dirname(
        latest_checkpoint(checkpoints)))]
    # The changelog stream deleted and created again: a resume is refused, naming it (the
    # resumed job read nothing of the new stream, without a word).
    kinesis.delete_stream(StreamName="ctrl-c-meta")
    deadline = time.monotonic() + 60
    while "ctrl-c-meta" in kinesis.list_streams()["StreamNames"]:
        assert time.monotonic() < deadline, "ctrl-c-meta not deleted"
        time.sleep(0.2)
    kinesis_client.create_stream(kinesis, "ctrl-c-meta", 1)
    refused = subprocess.run([sys.executable, "-m", "flowdredge.cli", "run",
                              *args("without-enriched", False, "--resume")],
                             capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert refused.returncode == 2 and "stream/ctrl-c-meta was created again since the run" \
        in refused.stderr, refused.stderr


@pytest.mark.kinesis
def test_flowdredge_run_says_how_the_job_is_doing_every_report_seconds(kinesis_local, tmp_path):
    """`flowdredge run` said nothing after its start line while it ran. Its status line sums
    the job's counters over subtasks (parallelism 2, flows on two shards): it reaches the
    flows written, the dead letter and a checkpoint."""
    import signal
    import subprocess
    import sys
    import threading
    import time
    from helpers import ctrl_c_as_in_a_terminal, subprocess_env
    from flowdredge.connectors.publisher.sinks import KinesisSink
    from flowdredge.schemas.cloudwatch import record
    from flowdredge.synthetic.producer import put_flow_records
    kinesis = kinesis_client.client(Config().replace(
        kinesis={"endpoint": kinesis_local.endpoint}).kinesis)
    kinesis_client.create_stream(kinesis, "status-flows", 2)
    kinesis_client.create_stream(kinesis, "status-meta", 1)
    start = int(time.time()) - 600
    records = []
    for r in range(8):
        lines = [f"2 123456789012 eni-{r} 10.0.{r}.{i} 10.1.0.1 40000 443 6 1 60 {start + i} "
                 f"{start + i + 5} ACCEPT OK" for i in range(25)]
        events = [(f"{r}-{i}", (start + 60) * 1000, line) for i, line in enumerate(lines)]
        if r == 0:
            events.append(("bad", (start + 60) * 1000, "2 123456789012 eni-0 not a flow line"))
        data = record(events, compresslevel=6, owner="123456789012", log_group="/vpc",
                      log_stream=f"eni-{r}")
        records.append(type("Record", (), {"data": data, "partition_key": f"key-{r}"})())
    put_flow_records(KinesisSink(kinesis, "status-flows", "unused"), records)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"job": {"checkpoint_interval_seconds": 1, "parallelism": 2},
                                  "outputs": {"enriched": False, "security": False}}))
    run = subprocess.Popen([sys.executable, "-m", "flowdredge.cli", "run", "--config",
                            str(config), "--output", str(tmp_path / "out"), "--endpoint",
                            kinesis_local.endpoint, "--flow-streams", "status-flows",
                            "--metadata-stream", "status-meta", "--report-seconds", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True, env=subprocess_env(),
                           preexec_fn=ctrl_c_as_in_a_terminal)
    lines, wanted = [], "flows parsed 200 "
    reader = threading.Thread(target=lambda: lines.extend(iter(run.stderr.readline, "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any(wanted in line and "| dead letters 1 |" in line
                      and "last checkpoint none yet" not in line for line in list(lines)):
            assert run.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        os.killpg(run.pid, signal.SIGINT)
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    reader.join(timeout=10)
    status = [line for line in lines if "flows parsed" in line]
    assert run.returncode == 130 and "Traceback" not in "".join(lines), "".join(lines)
    assert all(" | late 0 | " in line and "| restarts 0" in line for line in status), status
    assert any("its checkpoints stay for --resume" in line for line in lines), lines
    # The run's Flink log in a folder of its own (one file, replaced at every start, before).
    assert list((tmp_path / "out" / "logs").glob("*/flink-*-python-*.log")), lines[0]
    assert re.search(r"flows parsed 200 \([0-9,]+/s\) \| late 0 \| dead letters 1 \| attributed "
                     r"(0\.0%( \(read [0-9.,]+ min ago\))?|n/a \(none counted yet[^|]*\)) \| "
                     r"(no window closed yet|windows closed to [-0-9 :]+ UTC \([0-9.,]+ "
                     r"min ago\)) \| consumer lag [0-9.,]+ s \| last checkpoint [0-9,]+ s ago \| "
                     r"restarts 0$", "\n".join(status), re.MULTILINE), status


@pytest.mark.kinesis
def test_ctrl_c_before_the_first_checkpoint_says_there_is_nothing_to_resume(kinesis_local,
                                                                            tmp_path):
    """It said "its checkpoints stay for --resume" with none there (a fault review: the
    checkpoint folder deleted, then Ctrl-C; the --resume it promised was refused)."""
    import signal
    import subprocess
    import sys
    import threading
    import time
    from helpers import ctrl_c_as_in_a_terminal, subprocess_env
    kinesis = kinesis_client.client(Config().replace(
        kinesis={"endpoint": kinesis_local.endpoint}).kinesis)
    kinesis_client.create_stream(kinesis, "early-flows", 1)
    kinesis_client.create_stream(kinesis, "early-meta", 1)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"job": {"checkpoint_interval_seconds": 3600}}))
    run = subprocess.Popen([sys.executable, "-m", "flowdredge.cli", "run", "--config",
                            str(config), "--output", str(tmp_path / "out"), "--endpoint",
                            kinesis_local.endpoint, "--flow-streams", "early-flows",
                            "--metadata-stream", "early-meta", "--report-seconds", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True, env=subprocess_env(),
                           preexec_fn=ctrl_c_as_in_a_terminal)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(run.stderr.readline, "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any("flows parsed" in line for line in list(lines)):
            assert run.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        os.killpg(run.pid, signal.SIGINT)
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    reader.join(timeout=10)
    assert run.returncode == 130, "".join(lines)
    assert any("cancelled with no completed checkpoint under" in line
               and "nothing of this run to --resume from" in line for line in lines), lines


@pytest.mark.unit
def test_what_a_local_run_cannot_reach_is_refused_before_flink_starts(tmp_path, monkeypatch):
    from flowdredge.cli import check_local_locations
    config = Config().replace(kinesis={"metadata_snapshot": str(tmp_path / "snapshot.jsonl")})
    with pytest.raises(ConfigError, match="snapshot.jsonl does not exist"):
        check_local_locations(config, str(tmp_path / "out"))
    (tmp_path / "snapshot.jsonl").write_text("")
    check_local_locations(config, str(tmp_path / "out"))
    # A Flink of its own (FLINK_HOME): PyFlink then keeps its FLINK_PLUGINS_DIR.
    monkeypatch.setenv("FLINK_HOME", str(tmp_path / "flink"))
    monkeypatch.setenv("FLINK_PLUGINS_DIR", str(tmp_path / "plugins"))
    with pytest.raises(ConfigError, match="--output s3://b/out: this local Flink has no S3"):
        check_local_locations(config, "s3://b/out")
    with pytest.raises(ConfigError, match="--resume s3://b/chk-1: this local Flink has no S3"):
        check_local_locations(config, str(tmp_path / "out"), "s3://b/chk-1")
    (tmp_path / "plugins" / "s3").mkdir(parents=True)
    (tmp_path / "plugins" / "s3" / "flink-s3-fs-hadoop-2.2.1.jar").write_bytes(b"")
    check_local_locations(config, "s3://b/out")
    with pytest.raises(ConfigError, match="does not exist"):
        check_local_locations(config.replace(kinesis={"metadata_snapshot": "file:///nope.jsonl"}),
                              str(tmp_path / "out"))


@pytest.mark.unit
def test_a_snapshot_its_reader_would_fail_on_is_refused_before_flink_starts(tmp_path):
    """Flink's reader goes by the name: a cut .gz failed the job once Flink ran (its restarts
    spent, a Java trace naming no file), and gzip named otherwise was read as lines of
    compressed bytes, every one a dead letter."""
    import gzip
    from flowdredge.cli import check_local_locations
    events = "".join('{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.%d.%d","app":"a"}\n'
                     % (i // 256, i % 256) for i in range(5000)).encode()
    whole = gzip.compress(events)
    folder = tmp_path / "snapshot"
    folder.mkdir()
    cases = {"cut.jsonl.gz": (whole[:len(whole) // 2], "cut.jsonl.gz: cannot read: Compressed"),
             "plain.jsonl.gz": (events, "plain.jsonl.gz: cannot read: Not a gzipped file"),
             "packed.jsonl": (whole, "packed.jsonl: gzip, but its name does not end in .gz")}
    for name, (data, message) in cases.items():
        for where in (tmp_path / name, folder / name):
            where.write_bytes(data)
            config = Config().replace(kinesis={"metadata_snapshot": str(
                where if where.parent == tmp_path else folder)})
            with pytest.raises(ConfigError, match="kinesis.metadata_snapshot: .*" + message):
                check_local_locations(config, str(tmp_path / "out"))
            where.unlink()
    for name, data in (("whole.jsonl.gz", whole), ("plain.jsonl", events),
                       ("_left_out.jsonl.gz", whole[:9])):
        (folder / name).write_bytes(data)
    check_local_locations(Config().replace(kinesis={"metadata_snapshot": str(folder)}),
                          str(tmp_path / "out"))


@pytest.mark.unit
def test_a_snapshot_file_flinks_decompression_by_name_fails_on_is_refused(tmp_path):
    """Flink's reader decompresses by the name's end: an empty .gz (no gzip header: Java's
    EOFException, where Python's gzip reads nothing) failed the job once Flink ran, as did a
    name ending in xz (no xz library in Flink's), and bz2 or deflate on what is not so."""
    import bz2
    import zlib
    from flowdredge.cli import check_local_locations
    lines = b'{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.0.1","app":"a"}\n'
    cases = {"empty.jsonl.gz": (b"", "empty.jsonl.gz: empty, but its name ends in gz"),
             "changes.gzip": (b"", "changes.gzip: empty, but its name ends in gz"),
             "changes.xz": (lines, "changes.xz: Flink's reader would decompress it as xz"),
             "changes.jsonl.bz2": (bz2.compress(lines), "changes.jsonl.bz2: Flink's reader "
                                                         "would decompress it as bz2"),
             "changes.deflate": (zlib.compress(lines), "would decompress it as deflate")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        config = Config().replace(kinesis={"metadata_snapshot": str(tmp_path / name)})
        with pytest.raises(ConfigError, match="kinesis.metadata_snapshot: .*" + message):
            check_local_locations(config, str(tmp_path / "out"))


@pytest.mark.unit
def test_a_snapshot_folders_subfolder_flink_leaves_out_is_not_checked(tmp_path):
    """Flink's file source leaves out a folder whose name starts with '.' or '_' with all it
    holds: a cut .gz under the snapshot folder's _tmp/ or .git/ refused a snapshot the job
    reads whole."""
    from flowdredge.cli import check_local_locations
    folder = tmp_path / "snapshot"
    for hidden in ("_tmp", ".git", "_tmp/sub"):
        (folder / hidden).mkdir(parents=True)
        (folder / hidden / "cut.jsonl.gz").write_bytes(b"\x1f\x8b\x08")
    (folder / "changes.jsonl").write_text("{}\n")
    check_local_locations(Config().replace(kinesis={"metadata_snapshot": str(folder)}),
                          str(tmp_path / "out"))
    (folder / "sub").mkdir()
    (folder / "sub" / "cut.jsonl.gz").write_bytes(b"\x1f\x8b\x08")
    with pytest.raises(ConfigError, match="sub/cut.jsonl.gz: cannot read"):
        check_local_locations(Config().replace(kinesis={"metadata_snapshot": str(folder)}),
                              str(tmp_path / "out"))


@pytest.mark.unit
def test_a_snapshot_folder_flinks_reader_hangs_on_or_reads_twice_is_refused(tmp_path):
    """Flink's file source lists a snapshot folder otherwise than the replay (a review): it
    opened a FIFO in it and waited for a writer (the snapshot never ended, the metadata stream
    was never read, the job RUNNING), followed a link to a folder above it until the path was
    too long (the job failed at start, a Java trace), and read a folder or file reached twice
    twice."""
    from flowdredge.cli import check_local_locations
    folder = tmp_path / "snapshot"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jsonl").write_text('{"type":"HEARTBEAT","ts":1767225600000}\n')
    config = Config().replace(kinesis={"metadata_snapshot": str(folder)})
    (folder / "sub" / "c.jsonl").write_text('{"type":"HEARTBEAT","ts":1767225600000}\n')
    # The link is named, wherever the walk meets it (before what it links to, latest.jsonl to
    # sub/c.jsonl, named the file, "remove the link": a review), and at once when it links
    # to a folder holding the snapshot's, whatever else that folder holds.
    cases = [(lambda: os.mkfifo(folder / "sub" / "b.fifo"),
              "sub/b.fifo: not a regular file"),
             (lambda: os.symlink(folder, folder / "sub" / "up"),
              f"sub/up: a link to {folder}, the folder or one holding it"),
             (lambda: os.symlink(tmp_path, folder / "sub" / "up"),
              f"sub/up: a link to {tmp_path}, the folder or one holding it"),
             (lambda: os.symlink(folder / "a.jsonl", folder / "sub" / "latest.jsonl"),
              f"sub/latest.jsonl: a link to {folder}/a.jsonl, which the folder holds already:"),
             (lambda: os.symlink(folder / "sub" / "c.jsonl", folder / "latest.jsonl"),
              f"{folder}/latest.jsonl: a link to {folder}/sub/c.jsonl, which the folder holds "
              f"already:"),
             (lambda: os.symlink(folder / "sub", folder / "current"),
              f"{folder}/current: a link to {folder}/sub, which the folder holds already:")]
    for make, message in cases:
        make()
        with pytest.raises(ConfigError, match="kinesis.metadata_snapshot: .*" + re.escape(message)):
            check_local_locations(config, str(tmp_path / "out"))
        for made in (folder / "sub" / "b.fifo", folder / "sub" / "up", folder / "latest.jsonl",
                     folder / "sub" / "latest.jsonl", folder / "current"):
            if os.path.lexists(made):
                os.unlink(made)
    # What a user may well have: the folder a link itself, links to two files outside it, a
    # link to a folder Flink leaves out (a version swapped in by its link).
    (tmp_path / "x.jsonl").write_text('{"type":"HEARTBEAT","ts":1767225600000}\n')
    (tmp_path / "y.jsonl").write_text('{"type":"HEARTBEAT","ts":1767225600000}\n')
    os.symlink(tmp_path / "x.jsonl", folder / "x.jsonl")
    os.symlink(tmp_path / "y.jsonl", folder / "y.jsonl")
    (folder / ".versions" / "v2").mkdir(parents=True)
    (folder / ".versions" / "v2" / "d.jsonl").write_text("")
    os.symlink(folder / ".versions" / "v2", folder / "v")
    os.symlink(folder, tmp_path / "snapshot-link")
    check_local_locations(config.replace(kinesis={"metadata_snapshot":
                                                  str(tmp_path / "snapshot-link")}),
                          str(tmp_path / "out"))
    # Flink leaves out what is named so, with all a folder holds.
    (folder / "_tmp").mkdir()
    os.mkfifo(folder / "_tmp" / "b.fifo")
    os.symlink(folder, folder / ".up")
    check_local_locations(config, str(tmp_path / "out"))


@pytest.mark.unit
def test_a_snapshot_fifo_is_left_to_the_job_unread(tmp_path):
    """The job reads a FIFO as its snapshot (connectors.files); the check before Flink started
    opened it and read ahead, taking the lines the job was to read (or waited for a writer)."""
    from flowdredge.cli import check_local_locations
    fifo = tmp_path / "snapshot.jsonl"
    os.mkfifo(fifo)
    line = b'{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.0.1","app":"a"}\n'
    # Read and write ends of our own: opening it to read does not wait, what is read is seen.
    end = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(end, line)
        check_local_locations(Config().replace(kinesis={"metadata_snapshot": str(fifo)}),
                              str(tmp_path / "out"))
        assert os.read(end, 1000) == line
    finally:
        os.close(end)


@pytest.mark.unit
def test_a_changelog_named_as_flink_leaves_it_out_is_refused_before_it_is_read(tmp_path):
    """Flink's file source leaves out files and folders whose names start with "." or "_",
    even the one it is given: such a snapshot or changelog was read as empty, every flow
    unattributed and nothing counted."""
    from flowdredge.connectors.files import changelog_files
    for name in ("_snapshot.jsonl", ".changelog", "_folder/"):
        with pytest.raises(ConfigError, match=f"metadata snapshot .*{name.rstrip('/')}.*"
                                              f"starts with '.' or '_'"):
            changelog_files(str(tmp_path / name), 10, 100, label="metadata snapshot ")
    with pytest.raises(ConfigError, match="^changelog s3://b/_changes"):
        changelog_files("s3://b/_changes", 10, 100)


@pytest.mark.unit
def test_an_aws_error_is_one_line_even_when_the_endpoint_answers_with_a_web_page():
    """A review's kinesis.endpoint at a web server: the error was 13 lines of HTML."""
    from botocore.exceptions import ClientError
    page = "<!DOCTYPE HTML>\n<html>\n<body>\n<p>Error code: 501</p>\n</body>\n</html>\n"
    for message, shown in ((page, "an HTML page, not a Kinesis API's answer"),
                           ("a\n  b " + "c" * 300, "a b " + "c" * 193 + "...")):
        def fails():
            raise ClientError({"Error": {"Code": "501", "Message": message}}, "DescribeStream")
        with pytest.raises(ConfigError) as refused:
            kinesis_client._asked("a", fails)
        assert "\n" not in str(refused.value)
        assert str(refused.value).startswith(f"kinesis: stream 'a': 501: {shown}")


@pytest.mark.unit
def test_an_endpoint_answering_without_a_kinesis_error_says_so():
    """A review's kinesis.endpoint at a server that answered 404 with no body: the error was
    "kinesis: stream 'a': 404: ", naming nothing."""
    from botocore.exceptions import ClientError

    def fails():
        raise ClientError({"Error": {"Code": "404", "Message": ""}}, "DescribeStreamSummary")
    with pytest.raises(ConfigError) as refused:
        kinesis_client._asked("a", fails)
    assert str(refused.value) == ("kinesis: stream 'a': 404: an answer without a Kinesis "
                                  "error (is kinesis.endpoint right?)")


@pytest.mark.unit
def test_only_a_server_on_this_machine_has_its_certificate_trusted_as_it_is():
    """The connector trusted every certificate of any kinesis.endpoint; a VPC endpoint's is
    checked."""
    for endpoint, local in (("https://127.0.0.1:4567", True), ("https://localhost:1", True),
                            ("https://[::1]:4567", True), ("http://127.0.0.2:4568", True),
                            ("https://vpce-1.kinesis.us-east-1.vpce.amazonaws.com", False),
                            ("https://10.0.0.1:443", False), ("https://127.example.com", False)):
        assert kinesis_client.on_loopback(endpoint) is local, endpoint
        props = kinesis_client.client_properties(
            Config().replace(kinesis={"endpoint": endpoint}).kinesis)
        assert ("aws.trust.all.certificates" in props) is local


@pytest.mark.unit
def test_a_checkpoint_gone_before_the_job_read_it_is_said_in_a_line(tmp_path, monkeypatch):
    """A review's second --resume chose a running job's checkpoint, which that job replaced
    before it was read: a raw Py4J trace of a java.io.FileNotFoundException."""
    from flowdredge import cli
    from flowdredge.connectors.kinesis import client
    from flowdredge.job.flink import run
    checkpoint = tmp_path / "elsewhere" / "chk-43"
    checkpoint.mkdir(parents=True)
    (checkpoint / "_metadata").write_bytes(b"x")

    class Env:
        def execute_async(self, name):
            raise RuntimeError("An error occurred while calling o1.executeAsync.\n"
                               f": java.io.FileNotFoundException: {checkpoint}/_metadata")

    monkeypatch.setenv("FLINK_LOG_DIR", str(tmp_path / "logs"))   # else set for good
    monkeypatch.setattr(client, "stream_births", lambda kin: {})
    monkeypatch.setattr(run, "kinesis_job", lambda cfg, output, flink_options: Env())
    args = cli.parser().parse_args(["run", "--output", str(tmp_path / "out"), "--flow-streams",
                                    "f", "--metadata-stream", "m", "--resume", str(checkpoint)])
    with pytest.raises(ConfigError, match=f"^--resume {checkpoint}: gone before the job could "
                                          "read it"):
        cli._start_run(cli._streaming_config(args), args)
