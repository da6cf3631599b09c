"""A local standalone Flink cluster from the distribution inside PyFlink, and the job on it:
start, stop, submit (optionally from a savepoint), stop a job with a savepoint, feed inputs.

Pure Python (no pyflink import): it drives Flink's own scripts (`bin/jobmanager.sh`,
`bin/taskmanager.sh`, `bin/flink`) and REST API. Everything the cluster writes (conf, logs, pid
files, savepoints, the shipped code) stays under one folder, `.cluster/` by default, so several
clusters (or users) on one machine do not meet. See docs/operations.md, "Standalone cluster and
savepoints". `scripts/cluster` is the command line.
"""
import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass

from flowdredge.connectors import s3
from flowdredge.connectors.jars import JARS_DIR
from flowdredge.job.config import JOB_NAME, Config, FlowsSection
from flowdredge.explore.health import JobRest, read_health, status_line
from flowdredge.job.config import load as load_config
from flowdredge.job.outputs import UNMAPPED_STATE, unmapped_state_error
from flowdredge.job.submit import FLOWS_LAYOUT, FLOWS_LAYOUTS, FOLLOW_SECONDS
from flowdredge.schemas.settings import integer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DIR = os.path.join(ROOT, ".cluster")
# The packages the Python workers import; shipped with every submission (--pyFiles).
PACKAGES = ("job", "connectors", "schemas")
TERMINAL = ("FINISHED", "FAILED", "CANCELED")
DEFAULT_REST_PORT, DEFAULT_RPC_PORT = 8081, 6123


class ClusterError(RuntimeError):
    """A cluster or CLI step that failed; the message says which and where its log is."""


def flink_home() -> str:
    """The Flink distribution that ships inside the installed apache-flink package."""
    spec = importlib.util.find_spec("pyflink")   # finds the package without importing it
    if spec is None:
        raise ClusterError("apache-flink is not installed in this Python (run scripts/setup)")
    return spec.submodule_search_locations[0]


# What an in-process PyFlink run (loopback mode) leaves in its process's environment: with it, a
# child Python refuses to start its own gateway or talks to a worker server that is gone.
_IN_PROCESS_PYFLINK = ("PYFLINK_GATEWAY_DISABLED", "_python_worker_execution_mode",
                       "_PYFLINK_CONN_INFO_PATH", "PYTHON_LOOPBACK_SERVER_ADDRESS",
                       "BOOT_LOG_DIR", "SEMI_PERSISTENT_DIRECTORY", "_PYTHON_WORKER_MEMORY_LIMIT")


def child_env(**extra) -> dict:
    """This process's environment for a child that starts Flink (a `flink run` client, a
    PyFlink program): without in-process PyFlink leftovers, and without an empty JAVA_HOME,
    which PyFlink would turn into the command `bin/java`."""
    env = {k: v for k, v in os.environ.items() if k not in _IN_PROCESS_PYFLINK}
    if not env.get("JAVA_HOME", "x"):
        del env["JAVA_HOME"]
    env.update(extra)
    return env


@dataclass
class Cluster:
    """One local standalone cluster: a JobManager and a TaskManager with `slots` slots, all
    state under `folder`. The conf written there also serves the `flink` CLI."""
    folder: str = DEFAULT_DIR
    rest_port: int = DEFAULT_REST_PORT
    rpc_port: int = DEFAULT_RPC_PORT
    slots: int = 2
    python: str = sys.executable

    @property
    def conf_dir(self) -> str:
        return os.path.join(self.folder, "conf")

    @property
    def log_dir(self) -> str:
        return os.path.join(self.folder, "log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def _env(self) -> dict:
        # FLOWDREDGE_JARS: `flink run` unpacks the shipped code elsewhere, where no .jars/ is
        # beside it; the job's client (kinesis_job) adds the jars from here to pipeline.jars,
        # and Flink uploads them with the job to the TaskManagers.
        return child_env(FLINK_CONF_DIR=self.conf_dir, FLINK_LOG_DIR=self.log_dir,
                         FLINK_PID_DIR=os.path.join(self.folder, "pid"),
                         FLOWDREDGE_JARS=JARS_DIR)

    def write_conf(self) -> None:
        home = flink_home()
        for sub in ("conf", "log", "pid", "savepoints"):
            os.makedirs(os.path.join(self.folder, sub), exist_ok=True)
        with open(os.path.join(self.folder, ".gitignore"), "w") as fh:
            fh.write("*\n")
        for name in os.listdir(os.path.join(home, "conf")):
            if name.startswith("log4j") or name.startswith("logback"):
                shutil.copy(os.path.join(home, "conf", name), self.conf_dir)
        with open(os.path.join(home, "conf", "config.yaml")) as fh:
            # The distribution's JVM options (module opens Flink needs on Java 17) are kept.
            java_opts = re.search(r"^\s+all: (.*)$", fh.read(), re.M).group(1)
        settings = {
            # JSON, not CBOR, to Kinesis: the AWS SDK's CBOR parser fails on the local Kinesis
            # server's records of a few KB (connectors.kinesis.flink.local_endpoint_workarounds).
            "env.java.opts.all": java_opts + " -Daws.cborEnabled=false",
            "env.log.dir": self.log_dir,
            "env.pid.dir": os.path.join(self.folder, "pid"),
            "jobmanager.bind-host": "localhost",
            "jobmanager.rpc.address": "localhost",
            "jobmanager.rpc.port": self.rpc_port,
            "jobmanager.memory.process.size": "1200m",
            "taskmanager.bind-host": "localhost",
            "taskmanager.host": "localhost",
            "taskmanager.numberOfTaskSlots": self.slots,
            "taskmanager.memory.process.size": "2048m",
            "rest.address": "localhost",
            "rest.bind-address": "localhost",
            "rest.port": self.rest_port,
            "parallelism.default": 1,
            # Python workers run this interpreter unless a submission ships its own (-pyexec).
            "python.executable": self.python,
            "python.client.executable": self.python,
            "execution.checkpointing.savepoint-dir": "file://" + os.path.join(
                self.folder, "savepoints"),
            # The JobManager's memory refuses state above 5 MB: a real estate's ownership state.
            "execution.checkpointing.storage": "filesystem",
            "execution.checkpointing.dir": "file://" + os.path.join(self.folder, "checkpoints"),
        }
        with open(os.path.join(self.conf_dir, "config.yaml"), "w") as fh:
            for key, value in settings.items():
                fh.write(f"{key}: {json.dumps(value)}\n")
        for name, content in (("masters", f"localhost:{self.rest_port}\n"),
                              ("workers", "localhost\n")):
            with open(os.path.join(self.conf_dir, name), "w") as fh:
                fh.write(content)

    def _script(self, *args, check=True) -> subprocess.CompletedProcess:
        cmd = [os.path.join(flink_home(), "bin", args[0]), *args[1:]]
        # Run from the cluster folder: a Python worker puts its working directory first on
        # sys.path, and must import the shipped code, not whatever checkout it was started in.
        done = subprocess.run(cmd, env=self._env(), capture_output=True, text=True,
                              cwd=self.folder)
        if check and done.returncode != 0:
            raise ClusterError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}"
                               f"{done.stderr}\nlogs: {self.log_dir}")
        return done

    def running_pids(self) -> list:
        """The live daemons this folder's pid files name: Flink processes logging here (a
        pid file a crash left may name another process now, which stop would kill)."""
        live = []
        folder = os.path.join(self.folder, "pid")
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            with open(os.path.join(folder, name)) as fh:
                for pid in fh.read().split():
                    try:
                        with open(f"/proc/{int(pid)}/cmdline", "rb") as cmd:
                            cmdline = cmd.read()
                    except (ValueError, OSError):
                        continue
                    if b"org.apache.flink" in cmdline and self.log_dir.encode() in cmdline:
                        live.append(int(pid))
        return live

    def start(self, timeout_s: float = 120) -> None:
        # A second start added a TaskManager to the first cluster, which stop then left up.
        if self.running_pids():
            raise ClusterError(f"a cluster of {self.folder} is running already "
                               f"(pids {', '.join(map(str, self.running_pids()))}): "
                               f"scripts/cluster stop first")
        self.write_conf()
        self._script("jobmanager.sh", "start")
        self._script("taskmanager.sh", "start")
        self.wait(lambda: self.rest("/overview").get("slots-available", 0) >= self.slots,
                  timeout_s, "the TaskManager to register its slots")

    def stop(self) -> None:
        """Stops the daemons this folder's pid files name (and only those)."""
        if not os.path.isdir(self.folder):
            raise ClusterError(f"no cluster in {self.folder}: nothing to stop")
        self._script("taskmanager.sh", "stop", check=False)
        self._script("jobmanager.sh", "stop", check=False)

    def rest(self, path: str, timeout_s: float = 5) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=timeout_s) as response:
            return json.load(response)

    def wait(self, ready, timeout_s: float, what: str, poll_s: float = 0.5):
        """Polls `ready()` until truthy (REST errors count as not yet)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = ready()
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out after {timeout_s:.0f} s waiting for {what}; "
                                   f"logs: {self.log_dir}")
            time.sleep(poll_s)

    def job_state(self, job_id: str) -> str:
        try:
            return self.rest(f"/jobs/{job_id}")["state"]
        except urllib.error.HTTPError as err:
            # 400: not a job id at all (Flink's are 32 hex digits), which read "no cluster".
            if err.code in (400, 404):
                raise ClusterError(f"no job {job_id} on the cluster at {self.url} (a job id "
                                   f"is 32 hex digits: scripts/cluster jobs lists them)") from None
            raise

    def jobs(self) -> list:
        return self.rest("/jobs/overview")["jobs"]

    def wait_for_state(self, job_id: str, states, timeout_s: float = 180) -> str:
        """Waits until the job is in one of `states`; a job that ends otherwise is an error."""
        def reached():
            state = self.job_state(job_id)
            if state in TERMINAL and state not in states:
                raise ClusterError(f"job {job_id} is {state}, not {'/'.join(states)}; "
                                   f"{self.exception(job_id)}; logs: {self.log_dir}")
            return state if state in states else None
        return self.wait(reached, timeout_s, f"job {job_id} to be {'/'.join(states)}")

    def exception(self, job_id: str) -> str:
        try:
            root = self.rest(f"/jobs/{job_id}/exceptions").get("exceptionHistory", {})
            entries = root.get("entries") or [{}]
            return (entries[0].get("stacktrace") or "no exception recorded")[:4000]
        except (urllib.error.URLError, ConnectionError, socket.timeout) as err:
            return f"exceptions unavailable ({err})"

    def flink(self, *args, timeout_s: float = 300) -> str:
        """Runs the `flink` CLI action `args[0]` against this cluster, at the REST port the
        Python calls use (which --rest-port may set apart from the conf's)."""
        cmd = [os.path.join(flink_home(), "bin", "flink"), args[0],
               "-m", f"localhost:{self.rest_port}", *args[1:]]
        try:
            done = subprocess.run(cmd, env=self._env(), capture_output=True, text=True,
                                  timeout=timeout_s, cwd=self.folder)
        except subprocess.TimeoutExpired as err:
            raise ClusterError(f"flink {args[0]} timed out after {timeout_s} s: {err.stdout}"
                               f"{err.stderr}") from None
        if done.returncode != 0:
            raise ClusterError(f"flink {' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout}\n{done.stderr}\nlogs: {self.log_dir}")
        return done.stdout + done.stderr

    def submit(self, config_file: str, flows: str | None, metadata: str | None, output: str,
               savepoint: str = None, parallelism: int = None,
               follow_seconds: int = None, job_name: str = JOB_NAME,
               flows_layout: str = FLOWS_LAYOUT, allow_non_restored_state: bool = False) -> str:
        """Submits the job detached (`flink run -d -pym flowdredge.job.submit`) with the code shipped as
        a zip; returns the job id. `flows` and `metadata` as `flows_layout` says, or both None:
        the config's `kinesis` streams. `flows_layout` "aws": `flows` holds flow files as AWS
        writes them (or is an s3:// prefix), read to their end once, not followed; "staged":
        folders of staged records the job follows, looking for new ones every
        `follow_seconds` (FOLLOW_SECONDS by default). `savepoint` resumes from it: a state that
        no operator of the new job claims fails the submission, unless
        `allow_non_restored_state` (an upgrade that removes an operator: its state is dropped)."""
        if (flows is None) != (metadata is None):
            raise ValueError("flows and metadata go together (both None: Kinesis)")
        if follow_seconds is not None and (flows is None or flows_layout == "aws"):
            raise ValueError("--follow-seconds is for staged records (--flows-layout staged): "
                             "AWS's flow files are read to their end once, streams followed")
        if flows is not None and flows_layout == "aws":
            _check_changelog(metadata)
        elif flows is not None:
            _check_followed(flows, metadata)
        # No cluster: one line now, not flink run's trace a minute on.
        overview = self.rest("/overview")
        _check_slots(overview.get("slots-total"), config_file, parallelism, self.log_dir)
        made = self._check_output(output)
        try:
            job_id = self._submit(config_file, flows, metadata, output, savepoint, parallelism,
                                  follow_seconds, job_name, flows_layout,
                                  allow_non_restored_state)
        except BaseException:
            _remove_empty(made, output)   # a refused submit leaves no folder behind it
            raise
        self._note_output(job_id, output)
        return job_id

    def _submit(self, config_file, flows, metadata, output, savepoint, parallelism,
                follow_seconds, job_name, flows_layout, allow_non_restored_state) -> str:
        code = ship_code(os.path.join(self.folder, "flowdredge-code.zip"))
        args = ["run", "--detached", "--pyClientExecutable", self.python,
                "--pyExecutable", self.python, "--pyFiles", code,
                "--pyModule", "flowdredge.job.submit"]
        if allow_non_restored_state and not savepoint:
            raise ValueError("allow_non_restored_state needs a savepoint")
        if savepoint:
            args[1:1] = ["--fromSavepoint", savepoint] + (
                ["--allowNonRestoredState"] if allow_non_restored_state else [])
        args += ["--config", os.path.abspath(config_file), "--output", _location(output),
                 "--job-name", job_name]
        if flows is not None and flows_layout == "aws":
            args += ["--flows", _location(flows), "--flows-layout", "aws", "--metadata",
                     _location(metadata), "--follow-seconds", "0"]
        elif flows is not None:
            # The file source fails on a missing folder; an empty one it watches.
            for folder in (flows, metadata):
                os.makedirs(folder, exist_ok=True)
            args += ["--flows", os.path.abspath(flows), "--flows-layout", "staged",
                     "--metadata", os.path.abspath(metadata),
                     "--follow-seconds", str(FOLLOW_SECONDS if follow_seconds is None
                                             else follow_seconds)]
        if parallelism:   # job.submit applies it as job.parallelism: the config stays the source
            args += ["--parallelism", str(parallelism)]
        try:
            out = self.flink(*args)
        except ClusterError as err:
            raise ClusterError(_refused_savepoint(str(err), savepoint) or str(err)) from None
        match = re.search(r"JobID ([0-9a-f]{32})", out)
        if not match:
            raise ClusterError(f"flink run printed no job id:\n{out}")
        return match.group(1)

    # The output each job submitted here writes, by job id: a second job writing one output
    # beside a running one committed every flow twice.
    OUTPUTS_FILE = "outputs.json"

    def _outputs(self) -> dict:
        try:
            with open(os.path.join(self.folder, self.OUTPUTS_FILE)) as file:
                found = json.load(file)
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def _note_output(self, job_id: str, output: str) -> None:
        outputs = {**self._outputs(), job_id: _output_key(output)}   # read before the write
        os.makedirs(self.folder, exist_ok=True)
        with open(os.path.join(self.folder, self.OUTPUTS_FILE), "w") as file:
            json.dump(outputs, file)

    def _check_output(self, output: str) -> str | None:
        """Refuses an output a job of this cluster still writes, and a local output that
        cannot be made (the job failed after its id was printed, the reason in its
        exception history only). Returns the folder if it made it."""
        for job_id, written in self._outputs().items():
            if written == _output_key(output) and job_id in {
                    job["jid"] for job in self.jobs() if job["state"] not in TERMINAL}:
                raise ClusterError(f"job {job_id} still writes {output}: stop it first "
                                   f"(scripts/cluster stop-job {job_id}), or choose another "
                                   f"--output")
        if s3.is_s3(output):
            return None
        made = os.path.abspath(output)   # the first of its folders this makes
        while not os.path.isdir(os.path.dirname(made)):
            made = os.path.dirname(made)
        made = None if os.path.isdir(made) else made
        try:
            os.makedirs(output, exist_ok=True)
        except OSError as err:
            raise ClusterError(f"--output {output}: {err.strerror}") from None
        if not os.access(output, os.W_OK | os.X_OK):
            raise ClusterError(f"--output {output}: not writable")
        return made

    def stop_with_savepoint(self, job_id: str, drain: bool = False,
                            timeout_s: float = 180) -> str:
        """`flink stop`: a final savepoint (its files committed by the sinks), then the job
        ends. `drain` first sends the end-of-time watermark, closing every window: for a job
        that will not resume. Returns the savepoint path."""
        state = self.job_state(job_id)
        if state in TERMINAL:
            raise ClusterError(f"job {job_id} is {state}: there is nothing to stop")
        target = os.path.join(self.folder, "savepoints")
        args = ["stop", "--savepointPath", "file://" + target]
        if drain:
            args.append("--drain")
        out = self.flink(*args, job_id, timeout_s=timeout_s)
        match = re.search(r"Savepoint completed\. Path: (\S+)", out)
        if not match:
            raise ClusterError(f"flink stop printed no savepoint path:\n{out}")
        self.wait_for_state(job_id, ("FINISHED",), timeout_s)
        return match.group(1)


def _check_slots(slots, config_file: str, parallelism: int = None, log_dir: str = "") -> None:
    """Refuses a job of more parallel instances than the cluster has slots (`slots`, from its
    overview; None: not said): its TaskManager's slots are fixed, so the job would wait for
    slots it cannot get until Flink's slot.request.timeout (5 minutes) failed it. None at all
    is a TaskManager gone (start waits for its slots): more slots would not help."""
    if slots is None:
        return
    if slots == 0:
        raise ClusterError(f"the cluster has no TaskManager (0 slots): it stopped (its log is "
                           f"under {log_dir}); scripts/cluster stop, then start")
    wanted = parallelism or load_config(config_file).job.parallelism
    if wanted > slots:
        raise ClusterError(f"parallelism {wanted} (--parallelism, or the config's "
                           f"job.parallelism) is more than the cluster's {slots} slots: the "
                           f"job would wait for slots it cannot get, then fail; restart the "
                           f"cluster with more (scripts/cluster stop, then start --slots "
                           f"{wanted}), or lower it")


def _check_changelog(metadata: str) -> None:
    """ValueError for a local changelog file or folder the job's reader (connectors/jvm
    ChangelogFiles, a stream's snapshot's too) would fail on on the cluster, its restarts
    spent, or wait on for ever, or a name it leaves out (job.replay.check_changelog)."""
    from flowdredge.job.replay import InputError, check_changelog
    try:
        check_changelog(metadata)
    except InputError as err:
        raise ValueError(f"--metadata: {err}") from None


def _check_followed(flows: str, metadata: str) -> None:
    """ValueError for a local folder of staged records the job would follow (`feed`'s) that its
    reader would wait on or fail on (job.replay.check_followed_folder)."""
    from flowdredge.job.replay import InputError, check_followed_folder
    for option, path in (("--flows", flows), ("--metadata", metadata)):
        try:
            check_followed_folder(path)
        except InputError as err:
            raise ValueError(f"{option}: {err}") from None


def _location(path: str) -> str:
    """A path as the job, started elsewhere, must be given it: an s3:// URL as it is (made
    absolute, it became a local folder named s3:), a local path absolute."""
    return path if s3.is_s3(path) else os.path.abspath(path)


def _remove_empty(top: str | None, leaf: str) -> None:
    """Removes `leaf` and its parents up to `top`, each only if empty."""
    if top is None:
        return
    folder = os.path.abspath(leaf)
    while True:
        with contextlib.suppress(OSError):
            os.rmdir(folder)
        if folder == top or len(folder) <= len(top):
            return
        folder = os.path.dirname(folder)


def _output_key(output: str) -> str:
    return output.rstrip("/") if s3.is_s3(output) else os.path.realpath(output)


def ship_code(zip_path: str) -> str:
    """The job's packages as one zip for --pyFiles: the workers import this copy, not the
    checkout (the zip comes first on their PYTHONPATH)."""
    os.makedirs(os.path.dirname(zip_path), exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        # The installed layout (flowdredge/__init__.py): the layers inside the package.
        zf.write(os.path.join(ROOT, "flowdredge", "__init__.py"), "flowdredge/__init__.py")
        for package in PACKAGES:
            for folder, dirs, files in os.walk(os.path.join(ROOT, package)):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in sorted(files):
                    if name.endswith(".py"):
                        path = os.path.join(folder, name)
                        zf.write(path, "flowdredge/" + os.path.relpath(path, ROOT))
    return zip_path


def feed(flow_paths, metadata_paths, flows_dir: str, metadata_dir: str, name: str,
         chunk_lines: int = None, config: Config = Config()):
    """Stages inputs (job.replay) as one new file in each watched folder, with the limits of
    the `config` the job runs with (`chunk_lines` overrides its flows.chunk_lines). Written
    under a hidden name, then renamed: Flink's file source skips hidden files, so it never reads
    a half-written one. Returns (records, metadata events) written."""
    from flowdredge.job.replay import stage_flows, stage_metadata
    written = [0, 0]
    for i, (paths, folder) in enumerate(((flow_paths, flows_dir), (metadata_paths, metadata_dir))):
        if not paths:
            continue
        os.makedirs(folder, exist_ok=True)
        hidden = os.path.join(folder, f".{name}.tmp")
        if i == 0:
            written[0] = stage_flows(paths, hidden, chunk_lines or config.flows.chunk_lines,
                                     flows=config.flows).records
        else:
            written[1] = stage_metadata(paths, hidden, config.metadata.chunk_lines,
                                        config.metadata.max_line_bytes)
        os.rename(hidden, os.path.join(folder, name))
    return tuple(written)


def _refused_savepoint(message: str, savepoint: str):
    """Flink's refusal of a savepoint as one line naming this tool's options, or None."""
    if not savepoint:
        return None
    if UNMAPPED_STATE in message:
        return unmapped_state_error(f"--from-savepoint {savepoint}")
    if "Cannot find checkpoint or savepoint" in message:
        return f"--from-savepoint {savepoint}: no savepoint there"
    return None


def _written_ports(folder: str) -> dict:
    """rest.port and jobmanager.rpc.port of the cluster last started in `folder`."""
    try:
        with open(os.path.join(folder, "conf", "config.yaml")) as fh:
            conf = dict(line.split(": ", 1) for line in fh.read().splitlines() if ": " in line)
        return {key: int(json.loads(conf[key])) for key in ("rest.port", "jobmanager.rpc.port")
                if key in conf}
    except (OSError, ValueError):   # no cluster started there, or a conf edited by hand
        return {}


def _cluster(args) -> Cluster:
    """The cluster of --dir: a command other than start talks to it at the ports it was
    started with, unless told others."""
    folder = os.path.abspath(args.dir)
    written = {} if args.command == "start" else _written_ports(folder)
    return Cluster(folder=folder, rpc_port=args.rpc_port or written.get(
                       "jobmanager.rpc.port", DEFAULT_RPC_PORT),
                   rest_port=args.rest_port or written.get("rest.port", DEFAULT_REST_PORT),
                   slots=args.slots)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.split("\n\n")[0])
    # Before or after the command; the defaults once, here (a subcommand's would override).
    shared = argparse.ArgumentParser(add_help=False)
    for parser_, default in ((p, None), (shared, argparse.SUPPRESS)):
        parser_.add_argument("--dir", default=DEFAULT_DIR if default is None else default,
                             help="conf, logs, pids, savepoints (default .cluster/ in the "
                                  "checkout)")
        parser_.add_argument("--rest-port", type=integer, default=default,
                             help=f"start: default {DEFAULT_REST_PORT}; the other commands: "
                                  f"the port the cluster of --dir was started with")
        parser_.add_argument("--rpc-port", type=integer, default=default,
                             help=f"as --rest-port (default {DEFAULT_RPC_PORT})")
        parser_.add_argument("--slots", type=integer, default=2 if default is None else default,
                             help="TaskManager slots (>= parallelism)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("start", parents=[shared], help="start a JobManager and a TaskManager")
    sub.add_parser("stop", parents=[shared], help="stop them")
    sub.add_parser("jobs", parents=[shared], help="list the cluster's jobs and their states")
    run = sub.add_parser("submit", parents=[shared],
                         help="submit the job: the config's Kinesis streams, or files "
                              "(--flows, --metadata)")
    run.add_argument("--config", required=True, help="YAML or application_properties.json")
    run.add_argument("--flows", help="flow files as --flows-layout says; without it, the "
                                     "config's kinesis streams")
    run.add_argument("--metadata", help="the changelog, with --flows: a file or folder of "
                                        "changelog files (staged layout: the folder feed "
                                        "writes to)")
    run.add_argument("--output", required=True)
    run.add_argument("--from-savepoint", help="resume from this savepoint")
    run.add_argument("--allow-non-restored-state", action="store_true",
                     help="with --from-savepoint: drop the state of operators the new job no "
                          "longer has (docs/operations.md, upgrades)")
    run.add_argument("--parallelism", type=integer, help="overrides job.parallelism")
    run.add_argument("--follow-seconds", type=integer,
                     help=f"how often the sources look for new files (staged layout only; "
                          f"default {FOLLOW_SECONDS})")
    run.add_argument("--flows-layout", choices=FLOWS_LAYOUTS, default=FLOWS_LAYOUT,
                     help="aws (default): flow files as AWS writes them (a folder or s3:// "
                          "prefix), read once to their end; staged: --flows is a folder of "
                          "staged records (see feed), followed")
    status = sub.add_parser("status", parents=[shared],
                            help="a job's status line: flows parsed, late, dead letters, "
                                 "attributed share, windows closed, consumer lag, last "
                                 "checkpoint, restarts (as flowdredge run prints it)")
    status.add_argument("job_id")
    stop = sub.add_parser("stop-job", parents=[shared],
                          help="stop a job with a savepoint; prints its path")
    stop.add_argument("job_id")
    stop.add_argument("--drain", action="store_true",
                      help="close every window first (the job will not be resumed)")
    fd = sub.add_parser("feed", help="stage flow-log and changelog files into the watched "
                                     "folders, one new file each")
    fd.add_argument("--flows", nargs="*", default=[], help="flow-log files or folders")
    fd.add_argument("--metadata", nargs="*", default=[], help="changelog files, in order")
    fd.add_argument("--flows-dir", required=True)
    fd.add_argument("--metadata-dir", required=True)
    fd.add_argument("--name", help="file name (default: feed-<epoch ms>)")
    fd.add_argument("--config", help="the job's YAML or application_properties.json: its "
                                      "flows and metadata limits (default: the defaults)")
    fd.add_argument("--chunk-lines", type=integer,
                    help=f"flow lines a staged record (default: the config's flows.chunk_lines, "
                         f"{FlowsSection().chunk_lines} by default)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    cluster = _cluster(args)
    try:
        if args.command == "start":
            cluster.start()
            print(f"cluster up: {cluster.url} (logs {cluster.log_dir})")
        elif args.command == "stop":
            cluster.stop()
        elif args.command == "jobs":
            for job in cluster.jobs():
                print(job["jid"], job["state"], job["name"])
        elif args.command == "submit":
            print(cluster.submit(args.config, args.flows, args.metadata, args.output,
                                 args.from_savepoint, args.parallelism, args.follow_seconds,
                                 flows_layout=args.flows_layout,
                                 allow_non_restored_state=args.allow_non_restored_state))
        elif args.command == "status":
            state = cluster.job_state(args.job_id)
            line, _ = status_line(read_health(JobRest(cluster.url, args.job_id)), time.time())
            print(f"{state} | {line}")
        elif args.command == "stop-job":
            print(cluster.stop_with_savepoint(args.job_id, args.drain))
        elif args.command == "feed":
            name = args.name or f"feed-{time.time_ns() // 1_000_000}"
            records, events = feed(args.flows, args.metadata, args.flows_dir,
                                   args.metadata_dir, name, args.chunk_lines,
                                   load_config(args.config))
            print(f"{records} flow records, {events} metadata events")
    except urllib.error.HTTPError as err:   # it answered: no "no cluster" then
        print(f"cluster: error: the cluster at {cluster.url} answered {err.code} {err.reason} "
              f"to {err.url}", file=sys.stderr)
        return 2
    except urllib.error.URLError as err:
        print(f"cluster: error: no cluster answers at {cluster.url} ({err.reason}): "
              f"scripts/cluster start starts one", file=sys.stderr)
        return 2
    except (ClusterError, ValueError, OSError) as err:
        print(f"cluster: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
