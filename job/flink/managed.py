"""The job's entry point in the application zip (Amazon Managed Service for Apache Flink, or the
unpacked zip anywhere): loads the runtime properties and wires the connectors; the dataflow is
job.flink.pipeline.build_pipeline. The zip's main.py calls main(); docs/managed-flink.md.
"""
import argparse
import os
import sys

from flowdredge.job import managed
from flowdredge.job.config import JOB_NAME, ConfigError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py", description=__doc__.splitlines()[0])
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
    except ConfigError as err:
        print(f"flowdredge: error: {err}", file=sys.stderr)
        return 2
    from flowdredge.job.flink.run import files_job, kinesis_job
    io = props.io
    # The service puts the jar named in the run options on the classpath itself.
    jars = ["file://" + os.path.abspath(jar)] if jar and \
        props.path != managed.SERVICE_PROPERTIES else []
    if props.config.kinesis.flow_streams:
        try:
            # The service's own checkpoint storage stands (checkpoint_dir None).
            env = kinesis_job(props.config, io.output, jars=jars, checkpoint_dir=None,
                              python_files=code_dirs)
        except ConfigError as err:
            print(f"flowdredge: error: {err}", file=sys.stderr)
            return 2
    elif io.flows_layout == "aws":
        from flowdredge.job.replay import InputError, flow_files
        from flowdredge.job.flink.run import aws_files_job
        try:
            env = aws_files_job(props.config, flow_files([io.flows])[0], io.metadata, io.output,
                                jars=jars, python_files=code_dirs)
        except InputError as err:
            print(f"flowdredge: error: {err}", file=sys.stderr)
            return 2
    else:
        env = files_job(props.config, io.flows, io.metadata, io.output,
                        io.follow_seconds or None, jars=jars, python_files=code_dirs)
    env.execute(args.job_name)
    return 0
