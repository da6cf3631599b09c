"""`flowdredge` command line: demo, replay, generate, summary.

main() only parses arguments, loads config and wires connectors; the dataflow is
job.flink.pipeline.build_pipeline.
"""
import argparse
import os
import sys
import time

from job import config as config_mod


def _progress(message: str) -> None:
    print(f"[flowdredge] {message}", file=sys.stderr, flush=True)


def _load_config(args):
    cfg = config_mod.load(args.config)
    if getattr(args, "parallelism", None):
        cfg = cfg.replace(job={"parallelism": args.parallelism})
    return cfg


def cmd_generate(args) -> int:
    from job.generate import Scenario, generate
    scenario = Scenario(minutes=args.minutes, flows_per_minute=args.flows_per_minute,
                        seed=args.seed)
    out = generate(scenario, args.output)
    _progress(f"generated {out.flows:,} flows in {len(out.flow_files)} files and "
              f"{out.changes:,} ownership changes under {args.output}")
    return 0


def _replay(flow_paths, metadata_paths, output_dir, cfg, overwrite) -> int:
    from job.flink.run import prepare_output, run_files
    from job.replay import stage_flows, stage_metadata
    from job.summary import render, summarize
    prepare_output(output_dir, overwrite)
    staged_flows = os.path.join(output_dir, "staging", "flow-records.txt")
    staged_metadata = os.path.join(output_dir, "staging", "metadata.jsonl")
    n_meta = stage_metadata(metadata_paths, staged_metadata)
    stats = stage_flows(flow_paths, staged_flows, cfg.flows.chunk_lines, _progress)
    _progress(f"staged {stats.files} flow files into {stats.records:,} records and {n_meta:,} "
              f"metadata events; starting Flink (parallelism {cfg.job.parallelism})")
    began = time.monotonic()
    run_files(staged_flows, staged_metadata, output_dir, cfg)
    _progress(f"job finished in {time.monotonic() - began:.1f} s")
    print(render(summarize(output_dir), output_dir))
    return 0


def cmd_replay(args) -> int:
    return _replay(args.flows, args.metadata, args.output, _load_config(args), args.overwrite)


def cmd_demo(args) -> int:
    from job.generate import Scenario, generate
    cfg = _load_config(args)
    inputs = os.path.join(args.output, "inputs")
    scenario = Scenario(minutes=args.minutes, flows_per_minute=args.flows_per_minute,
                        seed=args.seed)
    _progress(f"generating a synthetic estate: {scenario.minutes} minutes of traffic, "
              f"about {scenario.flows_per_minute:,} flows/minute, IPs reassigned as it runs")
    generated = generate(scenario, inputs)
    _progress(f"generated {generated.flows:,} flows, {generated.changes:,} ownership changes")
    return _replay([os.path.join(inputs, "flows")], [generated.metadata_file], args.output, cfg,
                   overwrite=True)


def cmd_summary(args) -> int:
    from job.summary import render, summarize
    print(render(summarize(args.output), args.output))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowdredge", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--config", help="YAML file or application_properties.json")
        sp.add_argument("--parallelism", type=int, help="overrides job.parallelism")

    demo = sub.add_parser("demo", help="generate a synthetic estate and replay it (no AWS needed)")
    demo.add_argument("--output", default="demo-output")
    demo.add_argument("--minutes", type=int, default=30)
    demo.add_argument("--flows-per-minute", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    common(demo)
    demo.set_defaults(func=cmd_demo)

    replay = sub.add_parser("replay", help="run the job bounded over flow-log and metadata files")
    replay.add_argument("--flows", nargs="+", required=True,
                        help="S3 .log.gz files, CloudWatch records, or folders of them")
    replay.add_argument("--metadata", nargs="+", required=True,
                        help="IP-metadata changelog, JSON Lines (.gz allowed)")
    replay.add_argument("--output", required=True)
    replay.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    common(replay)
    replay.set_defaults(func=cmd_replay)

    gen = sub.add_parser("generate", help="write synthetic flow-log and metadata files only")
    gen.add_argument("--output", required=True)
    gen.add_argument("--minutes", type=int, default=30)
    gen.add_argument("--flows-per-minute", type=int, default=2000)
    gen.add_argument("--seed", type=int, default=7)
    gen.set_defaults(func=cmd_generate)

    summary = sub.add_parser("summary", help="print the summary of an output folder")
    summary.add_argument("output")
    summary.set_defaults(func=cmd_summary)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (config_mod.ConfigError, FileExistsError, ValueError) as err:
        print(f"flowdredge: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
