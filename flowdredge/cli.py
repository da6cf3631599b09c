"""`flowdredge` command line: demo, stream-demo, run, replay, generate, summary, query, report, athena-ddl.

main() only parses arguments, loads config and wires connectors; the dataflow is
job.flink.pipeline.build_pipeline.
"""
import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time

from flowdredge.connectors import logs
from flowdredge.job import config as config_mod
from flowdredge.schemas.settings import integer, quoted
from flowdredge.synthetic.estate import Scenario

SCENARIO = Scenario()

# Progress lines on stderr, "[flowdredge] message" (main sets it up). Named, not __name__:
# that is "__main__" under python -m.
log = logging.getLogger("flowdredge.cli")


def _load_config(args, checkpoints: bool = True):
    """`checkpoints` False: the command checks job.checkpoint_dir with its other locations
    (`run`: check_local_locations, one line naming every s3:// one)."""
    cfg = config_mod.load(args.config)
    parallelism = getattr(args, "parallelism", None)
    if parallelism is not None:
        if parallelism < 1:
            raise config_mod.ConfigError(f"--parallelism must be at least 1, got {parallelism}")
        cfg = cfg.replace(job={"parallelism": parallelism})
    # Every command with a config runs its job here: refused before it generates or touches
    # anything (the demo replaced the previous demo's inputs first).
    _check_local_parallelism(cfg)
    _check_local_heap(cfg)
    # A replay's and a demo's checkpoints: Flink failed on it once it ran.
    if checkpoints:
        _check_s3_file_system((("job.checkpoint_dir", cfg.job.checkpoint_dir),))
    # `run`'s metadata snapshot, which its options may change, with them (check_local_locations).
    from flowdredge.job import startup
    startup.check_at_start(cfg)
    return cfg


# A local run (replay, demo) starts Python workers per parallel instance in this machine's
# memory: beyond a few per CPU they only cost memory (1000 took the JVM to 6.5 GB and failed).
LOCAL_PARALLELISM_PER_CPU = 4


def _check_local_heap(cfg) -> None:
    """A job.local_heap_mb above this machine's memory caps nothing, and past what the JVM can
    reserve (on 24 GB, 100,000 MB started and 1,000,000 did not) the JVM did not start: the
    run said only 'the job failed: Stderr:', after staging its inputs."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    if cfg.job.local_heap_mb > memory:
        raise config_mod.ConfigError(
            f"job.local_heap_mb {cfg.job.local_heap_mb:,} is more than this machine's memory "
            f"({memory:,} MB)")


def _check_local_parallelism(cfg) -> None:
    cpus = os.cpu_count() or 1
    most = LOCAL_PARALLELISM_PER_CPU * cpus
    if cfg.job.parallelism > most:
        raise config_mod.ConfigError(
            f"job.parallelism (or --parallelism) {cfg.job.parallelism} is more than this "
            f"machine runs well: at most "
            f"{most} ({LOCAL_PARALLELISM_PER_CPU} per CPU, {cpus} CPUs)")


def cmd_generate(args) -> int:
    from flowdredge.synthetic.estate import generate
    scenario = Scenario(minutes=args.minutes, flows_per_minute=args.flows_per_minute,
                        seed=args.seed)
    out = generate(scenario, args.output, replace=args.overwrite)
    log.info(f"generated {out.flows:,} flows in {len(out.flow_files)} files and "
             f"{out.changes:,} ownership changes under {args.output}")
    return 0


def _replay(flow_paths, metadata_paths, output_dir, cfg, overwrite) -> int:
    """Checks the inputs and stages the changelog first, runs the job over the flow files as
    AWS wrote them into a folder of its own, and replaces the previous outputs only once it has
    succeeded."""
    import shutil
    import tempfile
    from flowdredge.job.flink.run import aws_files_job
    from flowdredge.job.outputs import check_output, remove_empty_folders, replace_outputs
    from flowdredge.job.replay import InputError, flow_files, stage_metadata
    from flowdredge.explore.summary import render, summarize
    # The inputs first, and a refused replay leaves no folder behind.
    files, duplicates = flow_files(list(flow_paths))
    created, finished = first_missing_folder(output_dir), False
    run_dir = None
    try:
        check_output(output_dir, overwrite)
        run_dir = tempfile.mkdtemp(prefix=".replay-", dir=output_dir)
        # A replay is not resumed: its checkpoints (for its own restarts) go with its run folder.
        if not cfg.job.checkpoint_dir:
            cfg = cfg.replace(job={"checkpoint_dir": os.path.join(run_dir, "checkpoints")})
        staged_metadata = os.path.join(run_dir, "staging", "metadata.jsonl")
        n_meta = stage_metadata(metadata_paths, staged_metadata, cfg.metadata.chunk_lines,
                                cfg.metadata.max_line_bytes)
        if not n_meta:
            raise InputError(f"the metadata changelog {list(metadata_paths)} holds no line: "
                             f"every flow would be unattributed")
        if duplicates:
            log.warning(f"{duplicates} file(s) reached more than once through --flows: "
                        f"read once")
        log.info(f"{len(files)} flow files and {n_meta:,} metadata lines; starting Flink "
                 f"(parallelism {cfg.job.parallelism}); the job reads the files")
        began = time.monotonic()
        try:
            aws_files_job(cfg, files, staged_metadata, run_dir).execute(
                config_mod.REPLAY_JOB_NAME)
        except Exception as err:   # py4j's error, the Java trace in its text
            # flows.strict refusing a file in the parse step: an input error like the others.
            refused = f"{InputError.__module__}.{InputError.__name__}: "
            if logs.python_error(str(err)).startswith(refused):
                raise InputError(logs.python_error(str(err))[len(refused):]) from None
            cause = logs.failure_line(str(err)) or type(err).__name__
            log.error(f"the job failed: {cause} (the whole trace: the Flink log, pyflink/log/ "
                      f"in the virtualenv); the outputs in {output_dir} are as they were")
            return 1
        log.info(f"job finished in {time.monotonic() - began:.1f} s")
        replace_outputs(run_dir, output_dir)
        finished = True
    finally:
        if run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
        if created and not finished:
            with contextlib.suppress(OSError):   # never another error in place of the first
                remove_empty_folders(created)
    print(render(summarize(output_dir), output_dir))
    return 0


def cmd_replay(args) -> int:
    return _replay(args.flows, args.metadata, args.output, _load_config(args), args.overwrite)


def cmd_demo(args) -> int:
    from flowdredge.synthetic.estate import generate
    cfg = _load_config(args)
    inputs = os.path.join(args.output, "inputs")
    scenario = Scenario(minutes=args.minutes, flows_per_minute=args.flows_per_minute,
                        seed=args.seed)
    log.info(f"generating a synthetic estate: {scenario.minutes} minutes of traffic, "
             f"about {scenario.flows_per_minute:,} flows/minute, IPs reassigned as it runs")
    generated = generate(scenario, inputs, replace=True)
    log.info(f"generated {generated.flows:,} flows, {generated.changes:,} ownership changes")
    return _replay([os.path.join(inputs, "flows")], [generated.metadata_file], args.output, cfg,
                   overwrite=True)


def _streaming_config(args):
    cfg = _load_config(args, checkpoints=False)
    overrides = {key: value for key, value in (
        ("endpoint", args.endpoint), ("flow_streams", args.flow_streams),
        ("metadata_stream", args.metadata_stream),
        ("metadata_snapshot", args.metadata_snapshot)) if value is not None}
    return cfg.replace(kinesis=overrides) if overrides else cfg


def run_options(cfg, output: str, resume, allow_non_restored_state: bool = False,
                born: dict = None) -> dict:
    """The Flink settings of `flowdredge run`: checkpoints kept when the job stops, and with
    `resume` the state to start from (a checkpoint or savepoint path, or "latest": the newest
    checkpoint under the run's checkpoint folder), dropping the state of operators the job no
    longer has if `allow_non_restored_state`. Without `resume`, a local output folder that
    holds a run's outputs is refused: a new job would start over beside them. `born`: the
    input streams' creation times now (connectors.kinesis.client.stream_births), checked
    against the resumed run's."""
    from flowdredge.job.outputs import check_output, latest_checkpoint
    options = {"execution.checkpointing.externalized-checkpoint-retention":
               "RETAIN_ON_CANCELLATION"}
    local = "://" not in output
    if resume == "latest":
        checkpoints = _checkpoints(cfg, output)
        if "://" in checkpoints:
            raise config_mod.ConfigError(f"--resume: checkpoints in {checkpoints} are not "
                                         f"searched; pass --resume <checkpoint path>")
        # The newest of this output's runs (a job.checkpoint_dir may be shared), which the
        # resumed job owns and deletes once a checkpoint of its own completes (a restarted run
        # kept every earlier run's last state); of any job if none of them is noted.
        runs = set(_run_shapes(output)) if local else set()
        resume = latest_checkpoint(checkpoints, runs or None)
        if resume is None:
            raise config_mod.ConfigError(f"--resume: no completed checkpoint under "
                                         f"{checkpoints}"
                                         + (f" of the runs of {output}" if runs else ""))
        if runs:
            options["execution.state-recovery.claim-mode"] = "CLAIM"
    elif resume and "://" not in resume and not (
            os.path.isfile(resume) or os.path.isfile(os.path.join(resume, "_metadata"))):
        raise config_mod.ConfigError(f"--resume: {resume} is not a checkpoint or savepoint "
                                     f"(a chk-N or savepoint folder holding _metadata)")
    if allow_non_restored_state and not resume:
        raise config_mod.ConfigError("--allow-non-restored-state: only with --resume")
    if resume:
        if local:
            _check_resumed_run(cfg, output, resume, born or {})
        options["execution.state-recovery.path"] = resume
        if allow_non_restored_state:
            options["execution.state-recovery.ignore-unclaimed-state"] = "true"
    elif local:
        try:
            check_output(output, overwrite=False)
        except FileExistsError:
            checkpoints = _checkpoints(cfg, output)
            if "://" not in checkpoints and latest_checkpoint(checkpoints) is None:
                raise FileExistsError(f"{output} already holds outputs, and no checkpoint to "
                                      f"resume from: choose another --output") from None
            raise FileExistsError(f"{output} already holds a run's outputs: pass --resume to "
                                  f"continue that run from its last checkpoint, or choose "
                                  f"another --output") from None
    return options


# How each job of a local output read its inputs, by job id (its checkpoints' folder), for a
# --resume: {"snapshot": a snapshot then the changelog stream, or the stream alone (one source
# uid either way, and neither's state is readable as the other's), "streams": the input
# streams' creation times by ARN, "window_seconds", "outputs": the optional outputs on,
# "kinesis_outputs": the Kinesis outputs set, "labels": each flow stream's source label by
# ARN}; a run noted by an earlier release has the snapshot's bool, or fewer keys.
RUN_SHAPES = ".flowdredge-run.json"


def _run_shapes(output: str) -> dict:
    try:
        with open(os.path.join(output, RUN_SHAPES)) as shapes:
            found = json.load(shapes)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def note_run_shape(cfg, output: str, job_id: str, born: dict = None) -> None:
    shapes = {**_run_shapes(output), job_id: {"snapshot": bool(cfg.kinesis.metadata_snapshot),
                                              "streams": born or {},
                                              "window_seconds": cfg.job.window_seconds,
                                              "outputs": _optional_outputs(cfg),
                                              "kinesis_outputs": _kinesis_outputs(cfg),
                                              "labels": _flow_labels(born or {})}}
    with open(os.path.join(output, RUN_SHAPES), "w") as file:
        json.dump(shapes, file)


def _flow_labels(born: dict) -> dict:
    """Each flow stream's source label (connectors.kinesis.settings.source_labels) by ARN, from
    stream_births: its flow streams in their order, then the changelog's."""
    from flowdredge.connectors.kinesis.settings import source_labels
    flows = list(born)[:-1]
    return dict(zip(flows, source_labels(flows)))


def _optional_outputs(cfg) -> list:
    return [name for name in ("enriched", "security") if getattr(cfg.outputs, name)]


def _kinesis_outputs(cfg) -> list:
    return [name for name in ("aggregates_stream", "security_events_stream")
            if getattr(cfg.kinesis, name)]


def _check_resumed_run(cfg, output: str, resume: str, born: dict) -> None:
    """A resume from a checkpoint of this output's jobs is refused when kinesis.metadata_snapshot
    is set where its job had none, or the reverse (the job failed at every restart with the
    connector's VersionMismatchException, naming no setting), when an input stream was
    created again since (its positions are the old stream's: a new changelog stream was
    never read, every flow after the old one's end unattributed), or when job.window_seconds
    changed (with --allow-non-restored-state the open windows' flows were dropped: half a
    review's flows), or when a flow stream's source label would change (two streams of one
    name reordered: the positions of each would be dropped). An optional output turned on is
    named: it starts with this job."""
    within = os.path.relpath(os.path.abspath(resume), os.path.abspath(_checkpoints(cfg, output)))
    if within.startswith(os.pardir):
        return
    noted = _run_shapes(output).get(within.split(os.sep)[0])
    if isinstance(noted, dict):
        before, streams = noted.get("snapshot"), noted.get("streams") or {}
        window, outputs = noted.get("window_seconds"), noted.get("outputs")
        labels, kinesis_outputs = noted.get("labels") or {}, noted.get("kinesis_outputs")
    else:
        before, streams, window, outputs, labels, kinesis_outputs = noted, {}, None, None, {}, None
    now = _flow_labels(born) if born else {}
    for arn, label in sorted(labels.items()):
        if now.get(arn, label) != label:
            raise config_mod.ConfigError(
                f"--resume: the source of stream {arn} would be flow-stream-{now[arn]}, and was "
                f"flow-stream-{label} in the run in {output}: streams of one name in several "
                f"accounts are told apart by their place in kinesis.flow_streams (the first "
                f"keeps its name), and its positions would be dropped. List them in that "
                f"run's order, new ones at the end; a stream of that name left out before it "
                f"moves it too: keep that one listed, or start a new run into another "
                f"--output")
    if window is not None and window != cfg.job.window_seconds:
        raise config_mod.ConfigError(
            f"--resume: job.window_seconds is {cfg.job.window_seconds}, and was {window} in the "
            f"run in {output}: its checkpoint holds the open windows of {window} s, which a "
            f"job of other windows cannot take (they would be dropped, their flows lost). Set "
            f"it back to {window}, or start a new run into another --output")
    # Windowed outputs added lack, in the windows open at the stop, the flows read before it.
    added = [(f"outputs.{name}", name == "security") for name in
             sorted(set(_optional_outputs(cfg)) - set(outputs or ())) if outputs is not None]
    added += [(f"kinesis.{name}", name == "aggregates_stream") for name in
              sorted(set(_kinesis_outputs(cfg)) - set(kinesis_outputs or ()))
              if kinesis_outputs is not None]
    for setting, windowed in added:
        log.info(f"{setting} is on, and was off in the run in {output}: its output starts "
                 f"with this job, from the flows read from now on"
                 + (" (the windows open at the stop lack the flows read before it)"
                    if windowed else ""))
    for arn, then in sorted(streams.items()):
        if arn in born and born[arn] != then:
            raise config_mod.ConfigError(
                f"--resume: stream {arn} was created again since the run in {output} began "
                f"(created {_utc_ms(then)} then, {_utc_ms(born[arn])} now): the checkpoint's "
                f"positions are the old stream's, which the new one never reaches. Start a new "
                f"run into another --output (kinesis.start_position: where to begin)")
    if not isinstance(before, bool) or before == bool(cfg.kinesis.metadata_snapshot):
        return
    raise config_mod.ConfigError(
        f"--resume: the run in {output} read its changelog "
        + ("from kinesis.metadata_snapshot, then the stream: set it (--metadata-snapshot) as "
           "before; it is not read again" if before else
           "from the stream alone: leave kinesis.metadata_snapshot (--metadata-snapshot) unset "
           "as before")
        + " (its checkpoints hold that source's place)")


def _utc_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def first_missing_folder(path: str):
    """The outermost folder of `path` that does not exist yet (what a command that makes
    `path` creates), or None."""
    missing, path = None, os.path.abspath(path)
    while not os.path.exists(path):
        missing, path = path, os.path.dirname(path)
    return missing


def _checkpoints(cfg, output: str) -> str:
    """Where `flowdredge run` keeps its checkpoints (job.flink.run.kinesis_job)."""
    return cfg.job.checkpoint_dir or os.path.join(output, "checkpoints")


def check_local_locations(cfg, output: str, resume: str = None) -> None:
    """What a local mini-cluster cannot reach or read stops `flowdredge run` before Flink starts
    (it failed after its restarts, with a Java trace): a snapshot that is not there or that
    its reader would fail on (job.replay.check_snapshot), `s3://` without Flink's S3 file
    system."""
    from flowdredge.job import startup
    startup.check_metadata_snapshot(cfg)
    _check_s3_file_system((
        ("--output", output), ("kinesis.metadata_snapshot", cfg.kinesis.metadata_snapshot),
        ("job.checkpoint_dir", cfg.job.checkpoint_dir), ("--resume", resume or "")))


def _check_s3_file_system(locations) -> None:
    """ConfigError for `s3://` locations, (name, location) pairs, when the local Flink has no
    S3 file system."""
    from flowdredge.connectors.jars import plugins_dir, s3_file_system
    in_s3 = [f"{name} {where}" for name, where in locations if where.startswith("s3://")]
    if in_s3 and not s3_file_system():
        raise config_mod.ConfigError(
            f"{', '.join(in_s3)}: this local Flink has no S3 file system (apache-flink ships "
            f"none): put Flink's flink-s3-fs-hadoop jar in a folder of its own under "
            f"{plugins_dir()}, or write to a local folder here and to S3 from a cluster or "
            f"Managed Flink (docs/streaming.md)")


def cmd_run(args) -> int:
    from flowdredge.job.outputs import RUN_LOCK, hold_output, remove_empty_folders
    cfg = _streaming_config(args)
    check_local_locations(cfg, args.output, args.resume)
    checkpoints = _checkpoints(cfg, args.output)
    # Folders a job that did not start made and leaves empty: those it created (its output,
    # a new checkpoint folder and the folders above them), and the checkpoint folder's new
    # entries (Flink's folder for the job, when a --resume is refused).
    created = [first_missing_folder(path) for path in (args.output, checkpoints)
               if "://" not in path]
    held = set(os.listdir(checkpoints)) if os.path.isdir(checkpoints) else set()
    lock_path = os.path.join(args.output, RUN_LOCK)
    lock_made = "://" not in args.output and not os.path.exists(lock_path)
    lock = None
    try:
        lock = hold_output(args.output) if "://" not in args.output else None
        if lock is not None:
            # What a resumed run leaves of the run before it once it claimed its checkpoint:
            # the folder of one of this output's jobs (job.checkpoint_dir may hold others')
            # with no file left.
            for name in held & set(_run_shapes(args.output)):
                folder = os.path.join(checkpoints, name)
                if not any(files for _root, _dirs, files in os.walk(folder)):
                    remove_empty_folders(folder)
        job, rest_url, born = _start_run(cfg, args)
        if lock is not None:
            note_run_shape(cfg, args.output, str(job.get_job_id()), born)
    except BaseException:
        # Never another error in place of the refusal's.
        with contextlib.suppress(OSError):
            if lock is not None:
                lock.close()
            if lock_made and os.path.exists(lock_path):
                os.remove(lock_path)
            if "://" not in checkpoints and os.path.isdir(checkpoints):
                for name in set(os.listdir(checkpoints)) - held:
                    remove_empty_folders(os.path.join(checkpoints, name))
            for folder in filter(None, created):
                remove_empty_folders(folder)
        raise
    if not cfg.job.max_restarts:   # the default, a replay's: a failure is a bug to see there
        log.warning("job.max_restarts is 0: the first failure ends this run, the Kinesis "
                    "connector's start-up race included (docs/streaming.md); set it above 0 "
                    "to restart from the last checkpoint")
    guard = None if lock is None else _OutputGuard(cfg, args.output, str(job.get_job_id()),
                                                   born, lock)
    try:
        return _run_until_stopped(job, rest_url, args.report_seconds, checkpoints, guard)
    finally:
        if guard is not None:
            guard.lock.close()


class _OutputGuard:
    """Keeps a running job's lock and notes in its output folder. Deleted (the folder removed
    while the job ran, which then made its folders again), a --resume found neither: it took
    the running job's newest checkpoint, and both jobs committed the same flows (a review: 438
    duplicate aggregate rows, no message). `check` takes the lock again and notes the run
    again."""

    def __init__(self, cfg, output: str, job_id: str, born: dict, lock):
        self.cfg, self.output, self.job_id, self.born, self.lock = cfg, output, job_id, born, lock
        self.warned = False

    def check(self) -> None:
        from flowdredge.job.outputs import RUN_LOCK, OutputError, hold_output
        path = os.path.join(self.output, RUN_LOCK)
        try:
            held = os.stat(path).st_ino == os.fstat(self.lock.fileno()).st_ino
        except OSError:   # gone, or the folder replaced by a file
            held = False
        try:
            if not held:
                lock = hold_output(self.output)
                self.lock.close()
                self.lock = lock
            if self.job_id in _run_shapes(self.output) and held:
                return
            note_run_shape(self.cfg, self.output, self.job_id, self.born)
        except (OSError, OutputError) as err:
            if not self.warned:
                log.warning(f"{path} or {RUN_SHAPES} was deleted while this job ran, and cannot "
                            f"be made again ({err}): another run could write there")
                self.warned = True
            return
        self.warned = False
        log.warning(f"{path if not held else os.path.join(self.output, RUN_SHAPES)} was deleted "
                    f"while this job ran (its output folder with it?): made again, the run "
                    f"noted for --resume; the outputs deleted with it are gone for good")


def _start_run(cfg, args):
    """Starts the job: (its client, the REST API's URL, the input streams' creation times)."""
    from flowdredge.connectors.kinesis.client import stream_births
    from flowdredge.job.flink.run import kinesis_job, local_rest_options
    from flowdredge.job.outputs import UNMAPPED_STATE, unmapped_state_error
    born = stream_births(cfg.kinesis)
    options = {**run_options(cfg, args.output, args.resume, args.allow_non_restored_state,
                             born),
               **local_rest_options(args.rest_port)}
    rest_port = options["rest.port"]
    if "://" not in args.output and "FLINK_LOG_DIR" not in os.environ:
        # PyFlink's JVM writes one log file, replaced at every start: a run's own folder keeps
        # what failed it past the next --resume.
        os.environ["FLINK_LOG_DIR"] = os.path.join(
            os.path.abspath(args.output), "logs", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    env = kinesis_job(cfg, args.output, flink_options=options)
    resumed = options.get("execution.state-recovery.path")
    log.info(f"reading flow logs from {', '.join(cfg.kinesis.flow_streams)} and the changelog "
             f"from {cfg.kinesis.metadata_stream} (parallelism {cfg.job.parallelism}); outputs "
             f"under {args.output}{f'; resuming from {resumed}' if resumed else ''}; Flink UI "
             f"and REST API: http://127.0.0.1:{rest_port}; Flink log in {_flink_log_dir()}; "
             f"Ctrl-C stops (its checkpoints, from the first, stay for --resume)")
    try:
        return env.execute_async(args.job_name), f"http://127.0.0.1:{rest_port}", born
    except Exception as err:   # py4j's error, the Java trace in its text
        if resumed and UNMAPPED_STATE in str(err):
            raise config_mod.ConfigError(unmapped_state_error(f"--resume {resumed}")) from None
        if resumed and "java.io.FileNotFoundException" in str(err):
            # A raw Java trace before: the checkpoint was deleted after it was chosen (a
            # running job's, subsumed by its next one).
            raise config_mod.ConfigError(
                f"--resume {resumed}: gone before the job could read it (deleted, or replaced "
                f"by a newer checkpoint of a job still running there)") from None
        raise


def _run_until_stopped(job, rest_url: str, report_seconds: int, checkpoints: str,
                       guard: "_OutputGuard" = None) -> int:
    """Waits for a running job's end, with a status line every `report_seconds` (0: none);
    Ctrl-C cancels it (RETAIN_ON_CANCELLATION keeps its checkpoints, under `checkpoints`).
    Polls rather than blocks in the JVM, so Ctrl-C lands in Python's sleep. `guard` keeps a
    local output's lock and notes, every second."""
    from flowdredge.job.flink.run import failure_cause, job_status
    from flowdredge.job.outputs import latest_checkpoint
    from flowdredge.explore.health import (READ_ERRORS, FailureWatch, JobRest, read_health,
                                           status_line)
    rest = JobRest(rest_url, str(job.get_job_id()))
    next_report, previous, failures = time.monotonic() + report_seconds, None, FailureWatch()
    try:
        while True:
            time.sleep(1)
            status = job_status(job)
            if status in ("FAILED", "CANCELED", "FINISHED", "ENDED"):
                break
            if guard is not None:
                guard.check()
            for cause in failures.new_causes(rest):
                log.warning(f"the job failed and restarts from its last checkpoint while "
                            f"job.max_restarts allows: {cause}")
            if report_seconds and time.monotonic() >= next_report:
                next_report = time.monotonic() + report_seconds
                try:
                    line, previous = status_line(read_health(rest), time.time(), previous)
                except READ_ERRORS as err:   # restarting: its vertices come back
                    line = f"{status.lower()}; no status from {rest_url} ({err})"
                log.info(line)
    except KeyboardInterrupt as stop:
        if "://" in checkpoints or latest_checkpoint(checkpoints, {str(job.get_job_id())}):
            log.info(f"stopping ({logs.stopped_by(stop)}): the job is cancelled, its "
                     f"checkpoints stay for --resume")
        else:   # before its first, or its folder was deleted: --resume would be refused
            log.info(f"stopping ({logs.stopped_by(stop)}): the job is cancelled with no "
                     f"completed checkpoint under {checkpoints}: nothing of this run to "
                     f"--resume from")
        try:
            job.cancel().result()
        except Exception:   # py4j's error: it had ended meanwhile, nothing left to stop
            pass
        return logs.INTERRUPTED
    # The REST API goes with a mini-cluster whose job ended: the last failure read before.
    cause = failure_cause(job, lambda: rest.failure_traces() or [failures.last_trace])
    if not cause:
        return 0
    log.error(f"the job ended: {cause} (the whole trace: the Flink log in {_flink_log_dir()})")
    return 1


def _flink_log_dir() -> str:
    return os.environ.get("FLINK_LOG_DIR") or "pyflink/log/ in the virtualenv"


def cmd_stream_demo(args) -> int:
    from flowdredge.connectors.kinesis.local import LocalKinesisError
    from flowdredge.synthetic.demo import DemoOptions, run_demo
    cfg = _load_config(args)
    given = {name: getattr(args, name) for name in ("rate", "minutes", "seed", "report_seconds")
             if getattr(args, name) is not None}
    try:
        return run_demo(cfg, DemoOptions(output=args.output, job=not args.no_job, **given),
                        log.info)
    except LocalKinesisError as err:
        print(f"flowdredge: error: {err}", file=sys.stderr)
        return 2


def cmd_summary(args) -> int:
    from flowdredge.connectors.s3 import is_s3
    from flowdredge.explore.query import local_folder
    from flowdredge.explore.summary import render, summarize
    if is_s3(args.output):
        raise config_mod.ConfigError(f"{args.output}: summary reads a local output folder "
                                     f"(query and report read s3://)")
    print(render(summarize(local_folder(args.output)), args.output))
    return 0


def cmd_query(args) -> int:
    from flowdredge.explore import query
    if args.question == "views":
        print(query.describe_views())
        return 0
    if args.question == "sql":
        result = query.answer(args.output, sql=args.sql, cache_dir=args.cache)
    else:
        values = {p.name: getattr(args, p.name) for p in query.QUESTIONS[args.question].params}
        result = query.answer(args.output, question=args.question, values=values,
                              cache_dir=args.cache)
    for view in result.missing:
        log.warning(f"note: {args.output} has no {view}/ (that output was off in the run, or "
                    f"nothing is written yet): read as empty")
    for note in result.notes:
        log.warning(f"note: {note}")
    if result.cut:
        log.warning(f"note: the first {len(result.rows):,} rows only (--limit 0 gives all)")
    print(query.format_result(result, args.format))
    return 0


def cmd_report(args) -> int:
    from flowdredge.explore.report import write_report
    path = write_report(args.output, args.html, args.cache)
    log.info(f"report written to {path}")
    return 0


def cmd_athena_ddl(args) -> int:
    from flowdredge.explore.query import athena_ddl
    print(athena_ddl(args.location, args.database, args.first_date, args.table_prefix))
    return 0


def _query_parser(sub) -> None:
    from flowdredge.explore import query
    q = sub.add_parser("query", help="SQL or a named question over an output folder (DuckDB)",
                       description="Views: " + ", ".join(query.VIEW_COLUMNS)
                       + ". See docs/query.md.")
    q.add_argument("output", help="output folder, or s3://bucket/prefix")
    questions = q.add_subparsers(dest="question", required=True, metavar="QUESTION")
    q.commands = questions.choices   # each question's parser by name, for main's errors
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--format", choices=query.FORMATS, default="table")
    shared.add_argument("--cache", help="local copy of an s3:// output folder "
                                        "(default ~/.cache/flowdredge/s3/BUCKET/PREFIX)")
    sql = questions.add_parser("sql", parents=[shared], help="run the SQL given")
    sql.add_argument("sql", help="e.g. \"SELECT * FROM aggregates LIMIT 10\"")
    questions.add_parser("views", help="list the views and their columns")
    for question in query.QUESTIONS.values():
        qp = questions.add_parser(question.name, parents=[shared], help=question.help)
        for p in question.params:
            flag = "--" + p.name.replace("_", "-")
            if p.parse is query.parse_flag:
                qp.add_argument(flag, dest=p.name, action="store_true", default=None, help=p.help)
                continue
            shown = ",".join(p.default) if isinstance(p.default, tuple) else p.default
            qp.add_argument(flag, dest=p.name, required=p.required, choices=p.choices,
                            help=p.help + ("" if p.default is None else f" (default {shown})"))
    q.set_defaults(func=cmd_query)


def _at_least(least: int, kind: str):
    def parse(text: str) -> int:
        try:
            number = integer(text)
        except ValueError:
            number = None
        if number is None or number < least:
            raise argparse.ArgumentTypeError(f"expected a {kind} integer, got {quoted(text)}")
        return number
    return parse


_positive = _at_least(1, "positive")
_non_negative = _at_least(0, "non-negative")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowdredge", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    p.commands = sub.choices   # each command's parser by name, for main's errors

    def estate_options(sp):
        sp.add_argument("--minutes", type=_positive, default=SCENARIO.minutes,
                        help=f"minutes of the estate's traffic (default {SCENARIO.minutes})")
        sp.add_argument("--flows-per-minute", type=_positive, default=SCENARIO.flows_per_minute,
                        help=f"flows a minute (default {SCENARIO.flows_per_minute})")
        sp.add_argument("--seed", type=integer, default=SCENARIO.seed,
                        help=f"seed of the estate's random choices (default {SCENARIO.seed})")

    def common(sp):
        sp.add_argument("--config", help="YAML file or application_properties.json")
        sp.add_argument("--parallelism", type=integer, help="overrides job.parallelism")

    demo = sub.add_parser("demo", help="generate a synthetic estate and replay it (no AWS needed)",
                          epilog="The streaming demo (a local Kinesis, a producer, the job): "
                                 "scripts/demo --streaming, or flowdredge stream-demo --help.")
    demo.add_argument("--output", default="demo-output",
                      help="folder of the inputs and outputs; a previous demo's inputs/ and "
                           "outputs there are replaced and its report.html removed, other files "
                           "stay (default demo-output)")
    estate_options(demo)
    common(demo)
    demo.set_defaults(func=cmd_demo)

    stream_demo = sub.add_parser(
        "stream-demo", help="the streaming job on a local Kinesis with a synthetic producer")
    stream_demo.add_argument("--output", default="stream-demo-output",
                             help="folder of the inputs, outputs and checkpoints; a previous "
                                  "demo's there are replaced and its report.html removed, "
                                  "other files stay (refused while a demo or run writes "
                                  "there; default stream-demo-output)")
    # Defaults: synthetic.demo.DemoOptions' (imported only when the command runs).
    stream_demo.add_argument("--rate", type=_positive,
                             help="flows per second the producer writes")
    stream_demo.add_argument("--minutes", type=_positive,
                             help="minutes of the estate's traffic (event time) to write")
    stream_demo.add_argument("--seed", type=integer)
    stream_demo.add_argument("--report-seconds", type=_positive,
                             help="seconds between progress lines")
    stream_demo.add_argument("--no-job", action="store_true",
                             help="run no job: write the traffic and keep the local Kinesis up "
                                  "until Ctrl-C, for `flowdredge run` in another terminal (the "
                                  "command is printed)")
    common(stream_demo)
    stream_demo.set_defaults(func=cmd_stream_demo)

    run = sub.add_parser("run", help="the streaming job: flow logs and the changelog from "
                                     "Kinesis (config section kinesis), until stopped")
    run.add_argument("--output", required=True, help="folder (or s3:// URL) of the outputs")
    run.add_argument("--endpoint", help="overrides kinesis.endpoint")
    run.add_argument("--flow-streams", help="overrides kinesis.flow_streams (comma-separated)")
    run.add_argument("--metadata-stream", help="overrides kinesis.metadata_stream")
    run.add_argument("--metadata-snapshot", help="overrides kinesis.metadata_snapshot")
    run.add_argument("--job-name", default=config_mod.JOB_NAME)
    run.add_argument("--rest-port", type=integer, default=0,
                     help="port of the local Flink UI and REST API (default: a free one, printed)")
    run.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                     help="continue an earlier run into the same --output from its newest "
                          "checkpoint, or from the checkpoint or savepoint given")
    run.add_argument("--allow-non-restored-state", action="store_true",
                     help="with --resume: drop the state of operators the job no longer has "
                          "(an output turned off)")
    run.add_argument("--report-seconds", type=_non_negative, default=60,
                     help="seconds between status lines: flows parsed, late, dead letters, "
                          "attributed share, windows closed, consumer lag, last checkpoint, "
                          "restarts (default 60; 0: none)")
    common(run)
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser("replay", help="run the job bounded over flow-log and metadata files")
    replay.add_argument("--flows", nargs="+", required=True,
                        help="S3 .log.gz files, CloudWatch records, or folders of them")
    replay.add_argument("--metadata", nargs="+", required=True,
                        help="IP-metadata changelog, JSON Lines (.gz allowed)")
    replay.add_argument("--output", required=True)
    replay.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (a report.html of them is removed)")
    common(replay)
    replay.set_defaults(func=cmd_replay)

    gen = sub.add_parser("generate", help="write synthetic flow-log and metadata files only")
    gen.add_argument("--output", required=True)
    gen.add_argument("--overwrite", action="store_true",
                     help="replace the flows/ and metadata/ already under --output (all "
                          "of their files)")
    estate_options(gen)
    gen.set_defaults(func=cmd_generate)

    summary = sub.add_parser("summary", help="print the summary of an output folder")
    summary.add_argument("output")
    summary.set_defaults(func=cmd_summary)

    _query_parser(sub)

    report = sub.add_parser("report",
                            help="write one self-contained HTML page about an output folder")
    report.add_argument("output", help="output folder, or s3://bucket/prefix")
    report.add_argument("--html", help="where to write it (default OUTPUT/report.html; "
                                       "./report.html for s3://)")
    report.add_argument("--cache", help="local copy of an s3:// output folder")
    report.set_defaults(func=cmd_report)

    ddl = sub.add_parser("athena-ddl",
                         help="print Amazon Athena / AWS Glue tables for outputs in S3")
    ddl.add_argument("--location", required=True,
                     help="s3://bucket/prefix holding aggregates/, enriched/, ... "
                          "in dt=YYYY-MM-DD/hour=HH/ folders")
    ddl.add_argument("--database", default="flowdredge")
    ddl.add_argument("--table-prefix", default="", help="prepended to each table name")
    ddl.add_argument("--first-date", default=time.strftime("%Y-%m-%d", time.gmtime()),
                     help="first dt partition, YYYY-MM-DD (default today, UTC)")
    ddl.set_defaults(func=cmd_athena_ddl)
    return p


def _unknown_options(top, args, argv, unknown) -> None:
    """Exits with the usage of the (sub)command an unknown option was given to, not the
    top-level one (scripts/demo --bogus showed flowdredge's)."""
    leaf = top
    if argv.index(unknown[0]) > argv.index(args.command):
        for name in (args.command, getattr(args, "question", None)):
            commands = getattr(leaf, "commands", {})
            if name not in commands:
                break
            leaf = commands[name]
    leaf.error(f"unrecognized arguments: {' '.join(unknown)}")


def main(argv=None) -> int:
    top = parser()
    args, unknown = top.parse_known_args(argv)
    if unknown:
        _unknown_options(top, args, sys.argv[1:] if argv is None else argv, unknown)
    logs.setup("flowdredge", "[flowdredge]")
    terminated = []

    def terminate(signum, frame):
        # SIGTERM (kill, systemd, a container's stop) takes the command's Ctrl-C path: Python's
        # default ended it at once, leaving the streaming demo's kinesis-local running (a review).
        terminated.append(signum)
        raise logs.Terminated

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        status = _run_command(args)
    finally:
        signal.signal(signal.SIGTERM, before)
    return logs.TERMINATED if terminated and status == logs.INTERRUPTED else status


def _run_command(args) -> int:
    try:
        return args.func(args)
    except KeyboardInterrupt as stop:   # before a command's own handling (starting up)
        print(f"flowdredge: interrupted ({logs.stopped_by(stop)})", file=sys.stderr)
        return logs.INTERRUPTED
    except BrokenPipeError:   # `flowdredge summary DIR | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (config_mod.ConfigError, FileExistsError, ValueError) as err:
        print(f"flowdredge: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:   # a file or folder the command needs: one line, not a traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"flowdredge: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
