"""The job's entry point in the application zip (Amazon Managed Service for Apache Flink, or the
unpacked zip anywhere): loads the runtime properties and wires the connectors; the dataflow is
job.flink.pipeline.build_pipeline. The zip's main.py calls main(); docs/managed-flink.md.
"""
import argparse
import sys

from flowdredge.connectors.jars import jar_url
from flowdredge.job import managed
from flowdredge.job.config import JOB_NAME, ConfigError
from flowdredge.job.startup import check_at_start


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--properties",
                   help=f"application_properties.json to use when {managed.SERVICE_PROPERTIES} "
                        f"does not exist (outside the service)")
    p.add_argument("--job-name", default=JOB_NAME)
    return p


def main(code_dirs, jar: str = None, argv=None) -> int:
    """`code_dirs`: the zip's folders of Python code, shipped to the Python workers. `jar`: the
    zip's connector jar, if it has one."""
    args = parser().parse_args(argv)
    try:
        props = managed.load(managed.properties_path(args.properties))
        check_at_start(props.config, streaming=bool(props.config.kinesis.flow_streams))
        note = managed.check_metadata(props)
    except ConfigError as err:
        print(f"flowdredge: error: {err}", file=sys.stderr)
        return 2
    if note:
        print(f"flowdredge: note: {note}", file=sys.stderr)
    from flowdredge.job.flink.run import deployed_job
    from flowdredge.job.replay import InputError
    io = props.io
    # The service puts the jar named in the run options on the classpath itself.
    jars = [jar_url(jar)] if jar and \
        props.path != managed.SERVICE_PROPERTIES else []
    # The streaming job reads the kinesis group's streams; io.flows is not read then.
    flows = None if props.config.kinesis.flow_streams else io.flows
    try:
        env = deployed_job(props.config, io.output, flows, io.metadata, io.flows_layout,
                           io.follow_seconds or None, jars=jars, python_files=code_dirs)
    except (ConfigError, InputError) as err:
        print(f"flowdredge: error: {err}", file=sys.stderr)
        return 2
    env.execute(args.job_name)
    return 0
