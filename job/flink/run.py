"""Building the job: the Flink environment, the connectors and the pipeline. build_job is the one
place they are put together; every entry point (flowdredge run and replay, job.submit on a
cluster, job.flink.managed on Managed Flink, the benchmarks, the tests) goes through it or
through files_job / aws_files_job / kinesis_job (deployed_job picks one for a cluster and
Managed Flink), which describe the sources and sinks it gets."""
import logging
import os
import sys
import time

from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment

from flowdredge.connectors.files import aws_file_sources, file_sinks, file_sources
from flowdredge.connectors.io import Sinks, Sources
from flowdredge.connectors.jars import adapter_jars, class_archive
from flowdredge.connectors.logs import NO_CAUSE, failure_line
from flowdredge.connectors.s3 import flink_uri
from flowdredge.connectors.staged import staged_changelog_max, staged_flows_max
from flowdredge.connectors.streams import add_jars, jvm
from flowdredge.job.config import Config, local_jvm_args
from flowdredge.job.flink.pipeline import build_pipeline, configure
from flowdredge.job.replay import (check_followed_folder, delivered_after, delivery_stamps_ms,
                                   flows_end)


def start_jvm(config: Config) -> None:
    """Starts PyFlink's JVM unless it runs already. One this process launches (a local
    mini-cluster, not `flink run` nor Managed Flink, which hand PyFlink theirs) gets
    job.config.local_jvm_args (the heap cap, job.local_jvm_options, the class-data archive)
    through the JVM_ARGS variable PyFlink's launcher reads; what the user put there wins. The
    variable is set for the launch only, so processes started later do not inherit it."""
    before = os.environ.get("JVM_ARGS")
    if "PYFLINK_GATEWAY_PORT" not in os.environ:
        os.environ["JVM_ARGS"] = local_jvm_args(config, before or "", class_archive())
    try:
        jvm()
    finally:
        if before is None:
            os.environ.pop("JVM_ARGS", None)
        else:
            os.environ["JVM_ARGS"] = before


def flink_configuration(config: Config, checkpoint_dir: str = None) -> Configuration:
    """`checkpoint_dir` is where checkpoints go unless job.checkpoint_dir says; with neither,
    the cluster's own setting stands."""
    start_jvm(config)   # a Configuration is made in the JVM
    conf = Configuration()
    if "PYFLINK_GATEWAY_PORT" not in os.environ:
        # Started by us, not by `flink run` or the managed service (whose -pyexec or cluster
        # settings name the workers' interpreter): the workers must run this interpreter,
        # which has flowdredge and pyflink installed.
        conf.set_string("python.executable", sys.executable)
        conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.fn-execution.bundle.size", str(config.job.bundle_size))
    conf.set_string("python.fn-execution.bundle.time", str(config.job.bundle_time_ms))
    conf.set_string("pipeline.auto-watermark-interval", f"{config.job.watermark_interval_ms}ms")
    if config.job.max_restarts:
        conf.set_string("restart-strategy.type", "failure-rate")
        conf.set_string("restart-strategy.failure-rate.max-failures-per-interval",
                        str(config.job.max_restarts))
        conf.set_string("restart-strategy.failure-rate.failure-rate-interval",
                        f"{config.job.restart_interval_seconds}s")
    else:
        conf.set_string("restart-strategy.type", "none")
    # Without compression Flink restores broadcast state entry by entry with unbuffered reads:
    # 121 s for 1M IPs against 3.5 s compressed (bench.state, docs/performance.md).
    conf.set_string("execution.checkpointing.snapshot-compression", "true")
    checkpoint_dir = config.job.checkpoint_dir or checkpoint_dir
    if checkpoint_dir:
        # Files, not the JobManager's memory, which refuses state above 5 MB.
        conf.set_string("execution.checkpointing.storage", "filesystem")
        conf.set_string("execution.checkpointing.dir", flink_uri(checkpoint_dir))
    return conf


def make_env(config: Config, flink_options: dict = None,
             checkpoint_dir: str = None) -> StreamExecutionEnvironment:
    """`flink_options` are extra Flink settings (for example `rest.port`); `checkpoint_dir` as
    in flink_configuration."""
    conf = flink_configuration(config, checkpoint_dir)
    for key, value in (flink_options or {}).items():
        conf.set_string(key, value)
    # Read by PyFlink when the environment starts (a private switch; see docs/operations.md).
    os.environ["_python_worker_execution_mode"] = config.job.python_workers
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    configure(env, config)
    return env


def build_job(config: Config, sources: Sources, sinks: Sinks, flink_options: dict = None,
              checkpoint_dir: str = None, jars=(), python_files=()) -> StreamExecutionEnvironment:
    """The whole job on a new environment; the caller runs it (execute, or execute_async for a
    job client). `flink_options` and `checkpoint_dir` as in make_env; `jars`: URLs of jars to
    ship with the job; `python_files`: code folders or files to ship to the Python workers."""
    env = make_env(config, flink_options, checkpoint_dir)
    if jars:
        add_jars(env, jars)
    for path in python_files:
        env.add_python_file(path)
    build_pipeline(env, sources, sinks, config)
    return env


def _file_sinks(config: Config, output_dir: str):
    return file_sinks(output_dir, config.outputs.aggregates_rollover_seconds)


def files_job(config: Config, flows: str, metadata: str, output_dir: str,
              follow_seconds: int = None, **options) -> StreamExecutionEnvironment:
    """build_job over staged files (job.replay: flow records, changelog lines) with file
    outputs under output_dir; with `follow_seconds` the sources keep looking for new files
    (unbounded). `options` go to build_job; `jars` defaults to the project's adapters (the
    enriched output's encoder). InputError for a local folder its reader would wait on or
    fail on (job.replay.check_followed_folder)."""
    for path in (flows, metadata):
        check_followed_folder(path)
    if "jars" not in options:
        options["jars"] = adapter_jars()
    return build_job(config, file_sources(
        flows, metadata, staged_flows_max(config.flows.chunk_lines, config.flows.max_line_bytes,
                                          config.flows.max_decompressed_bytes),
        staged_changelog_max(config.metadata.chunk_lines, config.metadata.max_line_bytes),
        follow_seconds),
                     _file_sinks(config, output_dir), **options)


def aws_files_job(config: Config, files: list, metadata: str, output_dir: str,
                  **options) -> StreamExecutionEnvironment:
    """build_job over flow files as AWS writes them (connectors.files.aws_file_sources: `files`
    as job.replay.flow_files lists them, in delivery order) and changelog files, with file
    outputs under output_dir; bounded. `options` as in files_job."""
    if "jars" not in options:
        options["jars"] = adapter_jars()
    listed = int(time.time())   # the job's start: no file was delivered after it
    end = flows_end(files, config.flows.max_ahead_seconds, listed)
    ahead = delivered_after(files, listed)
    if ahead:
        logging.getLogger(__name__).warning(
            f"{len(ahead)} flow file(s) stamped (or modified) after the job's start, not a "
            f"time AWS delivered them: they do not move the flows' end (their flows at or after it "
            f"are dead-lettered as timestamp_out_of_range; first: {ahead[0]})")
    logging.getLogger(__name__).info(
        "the flows' end is not known (an s3:// flow object without a delivery stamp in its "
        "name, or a file gone): every changelog event is read" if end is None else
        f"the flows' end: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(end))} (the latest "
        f"flow file's delivery stamp or modification time, at most the job's start, plus "
        f"flows.max_ahead_seconds): "
        f"changelog events from then on are not read")
    sources = aws_file_sources(files, metadata, delivery_stamps_ms(files),
                               config.metadata.out_of_orderness_seconds * 1000, end,
                               config.metadata.chunk_lines, config.metadata.max_line_bytes)
    return build_job(config, sources, _file_sinks(config, output_dir),
                     **options)


def kinesis_job(config: Config, output_dir: str, flink_options: dict = None,
                jars: list = None, checkpoint_dir: str = "",
                python_files=()) -> StreamExecutionEnvironment:
    """build_job with the Kinesis sources and file outputs under output_dir, plus the Kinesis
    outputs config.kinesis names. The one code path of `flowdredge run`, a cluster
    (job.submit) and Managed Flink (job.flink.managed). `jars`: URLs of the connector jars to
    ship with the job; None: those scripts/setup put in .jars/; []: none (the service puts
    the application's jar on the classpath itself). Checkpoints go to `checkpoint_dir` unless
    job.checkpoint_dir says otherwise ("": output_dir/checkpoints; None: the cluster's own
    setting). Raises ConfigError for streams that are missing or unknown."""
    from flowdredge.connectors.kinesis.client import (changelog_order_warning, client,
                                                      register_consumers, resolve, shards)
    from flowdredge.connectors.jars import connector_jars
    from flowdredge.connectors.kinesis.flink import (kinesis_sources, local_endpoint_workarounds,
                                          with_kinesis_outputs)
    kinesis = client(config.kinesis)
    streams = resolve(config.kinesis, kinesis)
    order_warning = changelog_order_warning(kinesis, streams.metadata)
    if order_warning:
        logging.getLogger(__name__).warning(order_warning)
    if config.kinesis.reader == "efo":
        register_consumers(kinesis, streams.flows + (streams.metadata,),
                           config.kinesis.efo_consumer_name)
        logging.getLogger(__name__).warning(
            "kinesis.reader efo: after a failover a shard may stop being read, silently "
            "(flink-connector-aws 6.0.0; docs/streaming.md, Local Kinesis): watch records_in "
            "and the consumer lag, or use polling")
    if checkpoint_dir == "":
        checkpoint_dir = os.path.join(output_dir, "checkpoints")
    if config.job.max_restarts:
        # A task's failure also fails each Kinesis source's split enumerator once (it refuses
        # the splits handed back, "Partial recovery is not supported", to force a global
        # failover), a restart each: job.max_restarts counts failures, so each may take one
        # restart per Kinesis source more.
        sources = len(streams.flows) + 1
        flink_options = {"restart-strategy.failure-rate.max-failures-per-interval":
                         str(config.job.max_restarts * (1 + sources)), **(flink_options or {})}
    start_jvm(config)   # before the workarounds, which use the JVM
    local_endpoint_workarounds(config.kinesis)
    return build_job(config,
                     kinesis_sources(config.kinesis, streams, shards(kinesis, streams.flows),
                                     config.metadata.chunk_lines,
                                     config.metadata.max_line_bytes),
                     with_kinesis_outputs(_file_sinks(config, output_dir), config.kinesis,
                                          streams),
                     flink_options, checkpoint_dir,
                     connector_jars() if jars is None else jars, python_files)


def deployed_job(config: Config, output_dir: str, flows: str = None, metadata: str = None,
                 flows_layout: str = "aws", follow_seconds: int = None,
                 **options) -> StreamExecutionEnvironment:
    """The job of a cluster (job.submit) and of Managed Flink (job.flink.managed): without
    `flows`, the config's Kinesis streams (the cluster's or service's own checkpoint storage);
    with them, files as `flows_layout` says (io.flows_layout in job.managed): "aws", flow files
    as AWS writes them, listed once (bounded); "staged", job.replay's records, followed every
    `follow_seconds`. ConfigError or job.replay.InputError for what cannot start."""
    if not flows:
        return kinesis_job(config, output_dir, checkpoint_dir=None, **options)
    if flows_layout == "aws":
        from flowdredge.job.replay import flow_files
        return aws_files_job(config, flow_files([flows])[0], metadata, output_dir, **options)
    return files_job(config, flows, metadata, output_dir, follow_seconds, **options)


def local_rest_options(port: int = 0) -> dict:
    """Flink settings for a local job's UI and REST API on 127.0.0.1 only (Flink's default
    listens on every interface, unauthenticated: anyone on the network could cancel the job):
    `port`, or a free one for 0. ConfigError for a port out of range or in use."""
    import socket
    from flowdredge.connectors.kinesis.local import free_port
    from flowdredge.job.config import ConfigError
    if not 0 <= port <= 65535:
        raise ConfigError(f"--rest-port {port}: expected a port, 1-65535 (0: a free one)")
    if port == 0:
        port = free_port()
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as err:
            raise ConfigError(f"--rest-port {port}: {err.strerror}") from None
    return {"rest.port": str(port), "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1"}


def job_status(job) -> str:
    """A submitted job's status name (FAILED, CANCELED, FINISHED once it ended); ENDED when it
    can no longer be asked: a local mini-cluster shuts down as soon as its job ends."""
    try:
        return job.get_job_status().result().name
    except Exception:   # py4j's error for a mini-cluster that is gone
        return "ENDED"


def failure_cause(job, earlier=lambda: ()) -> str:
    """Why a job failed, in a line (connectors.logs.failure_line; its Java trace is in the
    Flink log), or "" when it did not. `earlier()`: the traces of its earlier failures, newest
    first (explore.health.JobRest.failure_traces), asked only when the last one names none of
    its own."""
    try:
        job.get_job_execution_result().result()
        return ""
    except Exception as err:   # py4j's error, the Java trace in its text
        line = failure_line(str(err))
        if ("named in the Flink log" in line or "Caused by: " not in str(err)
                or line.endswith(NO_CAUSE)):
            line = failure_line(str(err), earlier())
        return line or type(err).__name__
