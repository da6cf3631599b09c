"""The job's entry point on a Flink cluster: `flink run --pyModule job.submit ...`.

Loads the config and wires the connectors: the Kinesis streams of the config's `kinesis`
section (job.flink.run.kinesis_job, as `flowdredge run` and Managed Flink), or, with --flows
and --metadata, folders of staged flow records and changelog files read in follow mode (the
file source keeps looking for new files, so the job is unbounded); file outputs. operate.cluster
submits it; docs/operations.md, "Standalone cluster and savepoints".
"""
import argparse
import sys

from job import config as config_mod


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="job.submit", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML file or application_properties.json")
    p.add_argument("--flows", help="folder of staged flow records (default: the config's "
                                   "kinesis streams)")
    p.add_argument("--metadata", help="folder of changelog files (with --flows)")
    p.add_argument("--output", required=True)
    p.add_argument("--follow-seconds", type=int, default=5,
                   help="how often the sources look for new files")
    p.add_argument("--parallelism", type=int, help="overrides job.parallelism")
    p.add_argument("--job-name", default="flowdredge")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as err:
        print(f"flowdredge: error: {err}", file=sys.stderr)
        return 2
    if args.parallelism:
        cfg = cfg.replace(job={"parallelism": args.parallelism})
    if bool(args.flows) != bool(args.metadata):
        print("flowdredge: error: --flows and --metadata go together", file=sys.stderr)
        return 2
    from job.flink.run import files_job, kinesis_job
    if args.flows:
        env = files_job(cfg, args.flows, args.metadata, args.output, args.follow_seconds)
    else:
        try:
            env = kinesis_job(cfg, args.output, checkpoint_dir=None)
        except config_mod.ConfigError as err:
            print(f"flowdredge: error: {err}", file=sys.stderr)
            return 2
    env.execute(args.job_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
