"""The parse of small Kinesis records, one a call against a shard's batch parsed together
(job.parse.parse_record against job.parse.parse_records), in one process, without Flink.
`python -m bench.parse_batches [--records 2000] [--batches 8 50 500]`.

The records are CloudWatch Logs subscription records as one interface's log stream delivers
them: 100 flow lines each, a minute of flows, their log events stamped with the flows' starts
and the record arriving a minute after its last flow. Prints, for one record a call and for
each batch size, the best of `--passes` passes in µs a flow and the flow groups made (each group
costs the attribution a fixed amount downstream: docs/performance.md, run 30).
"""
import argparse
import random
import time

from flowdredge.job.config import Config
from flowdredge.job.parse import FlowFormat, parse_record, parse_records
from flowdredge.schemas.cloudwatch import record
from flowdredge.schemas.flowlog import DEFAULT_FORMAT

LINES = 100
START = 1767225600


def cloudwatch_records(n: int, seed: int = 5) -> list:
    """(raw, source, arrival) of `n` records, a hundred records a minute of event time."""
    rng = random.Random(seed)
    records = []
    for r in range(n):
        events = []
        for i in range(LINES):
            start = START + 60 * (r // 100) + rng.randrange(60)
            src = ".".join(str(rng.randrange(256)) for _ in range(3))
            dst = ".".join(str(rng.randrange(256)) for _ in range(3))
            line = (f"2 123456789012 eni-{r:05d} 10.{src} 10.{dst} {rng.randrange(1024, 65535)} "
                    f"443 6 {rng.randrange(1, 50)} {rng.randrange(40, 90000)} {start} "
                    f"{start + 30} ACCEPT OK")
            events.append((str(i), start * 1000, line))
        raw = record(events, compresslevel=6, owner="123456789012", log_group="/vpc",
                     log_stream=f"eni-{r:05d}")
        records.append((raw, f"r{r}", max(e[1] for e in events) // 1000 + 60))
    return records


def measure(records: list, batch: int, passes: int) -> tuple:
    """(best µs a flow, flow groups) parsing `records` `batch` at a time (1: parse_record)."""
    limits, fmt = Config().parse_limits, FlowFormat(DEFAULT_FORMAT)
    best, groups = None, 0
    for _ in range(passes):
        began = time.perf_counter()
        if batch == 1:
            results = [parse_record(raw, source, fmt, limits, arrival)
                       for raw, source, arrival in records]
        else:
            results = [parse_records(records[i:i + batch], fmt, limits)
                       for i in range(0, len(records), batch)]
        seconds = time.perf_counter() - began
        best = seconds if best is None else min(best, seconds)
        if any(r.dead_letters for r in results):
            raise SystemExit("a record was dead-lettered: the input is not what it should be")
        groups = sum(len(r.groups) for r in results)
    return best / (len(records) * LINES) * 1e6, groups


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.parse_batches", description=__doc__)
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--batches", type=int, nargs="+", default=[8, 50, 500])
    p.add_argument("--passes", type=int, default=5)
    args = p.parse_args(argv)
    records = cloudwatch_records(args.records)
    print("| records a call | µs a flow | flow groups |")
    print("| --- | --- | --- |")
    for batch in [1] + args.batches:
        us, groups = measure(records, batch, args.passes)
        print(f"| {batch} | {us:.2f} | {groups:,} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
