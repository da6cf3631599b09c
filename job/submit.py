"""The job's entry point on a Flink cluster: `flink run --pyModule flowdredge.job.submit ...`.

Loads the config and wires the connectors: the Kinesis streams of the config's `kinesis`
section (job.flink.run.kinesis_job, as `flowdredge run` and Managed Flink), or, with --flows
and --metadata, files; file outputs. --flows-layout says what --flows holds: `aws` (default),
flow files as AWS writes them (a folder, file or s3:// prefix of S3 delivery files, CloudWatch
Logs records or Firehose objects of them), listed once and read to the end with the changelog
files (bounded: a backfill); `staged`, folders of staged flow records (job.replay) read with the
changelog files in follow mode (the file source keeps looking for new files, so the job is
unbounded). operate.cluster submits it;
docs/operations.md, "Standalone cluster and savepoints".
"""
import argparse
import sys

from flowdredge.job import config as config_mod, managed, startup
from flowdredge.schemas.settings import integer

# What --flows holds (as io.flows_layout in job.managed, with its default).
FLOWS_LAYOUTS = managed.FLOWS_LAYOUTS
FLOWS_LAYOUT = managed.IoSection.flows_layout
FOLLOW_SECONDS = 5


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowdredge.job.submit", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML file or application_properties.json")
    p.add_argument("--flows", help="folder of flow files as --flows-layout says (default: the "
                                   "config's kinesis streams)")
    p.add_argument("--flows-layout", choices=FLOWS_LAYOUTS, default=FLOWS_LAYOUT,
                   help="aws (default): flow files as AWS writes them (folder, file or s3:// "
                        "prefix), read once (bounded); staged: job.replay's flow records, "
                        "followed")
    p.add_argument("--metadata", help="folder of changelog files (with --flows)")
    p.add_argument("--output", required=True)
    p.add_argument("--follow-seconds", type=integer,
                   help=f"how often the sources look for new files (staged layout; default "
                        f"{FOLLOW_SECONDS})")
    p.add_argument("--parallelism", type=integer, help="overrides job.parallelism")
    p.add_argument("--job-name", default=config_mod.JOB_NAME)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    # The arguments first: they say whether the job streams, which check_at_start goes by.
    if bool(args.flows) != bool(args.metadata):
        print("flowdredge: error: --flows and --metadata go together", file=sys.stderr)
        return 2
    if args.flows_layout == "aws" and args.follow_seconds:
        print("flowdredge: error: --flows-layout aws reads the files listed at start to their "
              "end (bounded); --follow-seconds is for staged records", file=sys.stderr)
        return 2
    try:
        cfg = config_mod.load(args.config)
        if args.parallelism is not None:
            cfg = cfg.replace(job={"parallelism": args.parallelism})
        startup.check_at_start(cfg, streaming=not args.flows)
    except config_mod.ConfigError as err:
        print(f"flowdredge: error: {err}", file=sys.stderr)
        return 2
    from flowdredge.job.flink.run import deployed_job
    from flowdredge.job.replay import InputError
    try:
        env = deployed_job(cfg, args.output, args.flows, args.metadata, args.flows_layout,
                           FOLLOW_SECONDS if args.follow_seconds is None else args.follow_seconds)
    except (config_mod.ConfigError, InputError) as err:
        print(f"flowdredge: error: {err}", file=sys.stderr)
        return 2
    env.execute(args.job_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
