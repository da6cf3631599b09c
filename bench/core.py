"""The job's pure-Python core without Flink, on staged records: what one Python worker could do
if the framework cost nothing. `python -m bench.core --staged-flows F --staged-metadata M`.

Per stage, in the order the job runs them: parse a record (job.parse.parse_record), encode and
decode its flow groups (job.codec, the trip through keyed state and the shuffle), attribute them
(job.attribute.attribute_group) with each optional output on its own. For comparison, the same
S3 chunks parsed into typed columns by pyarrow's CSV reader (a sketch of vectorised parsing: no
validation, no grouping by window).
"""
import argparse
import io
import json
import time

import pyarrow as pa
from pyarrow import csv

from job.attribute import attribute_group
from job.codec import decode_group, encode_group
from job.config import Config
from job.ownership import OwnershipIndex, parse_event
from job.parse import parse_record
from schemas.metadata import HEARTBEAT


INT_COLUMNS = ("srcport", "dstport", "protocol", "packets", "bytes", "start", "end")


def _arrow_parse_seconds(records) -> float:
    """S3 chunks (job.replay's JSON records) to typed columns, '-' as null."""
    total = 0.0
    for raw in records:
        began = time.perf_counter()
        chunk = json.loads(raw)
        names = chunk["format"].split()
        text = "\n".join(chunk["lines"]).encode()
        csv.read_csv(io.BytesIO(text),
                     read_options=csv.ReadOptions(column_names=names),
                     parse_options=csv.ParseOptions(delimiter=" "),
                     convert_options=csv.ConvertOptions(
                         null_values=["-"], strings_can_be_null=True,
                         column_types={n: pa.int64() for n in INT_COLUMNS}))
        total += time.perf_counter() - began
    return total


def measure(staged_flows: str, staged_metadata: str) -> dict:
    config = Config()
    with open(staged_flows, encoding="utf-8") as fh:
        records = fh.read().splitlines()
    index = OwnershipIndex()
    with open(staged_metadata, encoding="utf-8") as fh:
        events = [parse_event(line) for line in fh]
    for event in events:
        if event.type != HEARTBEAT:
            index.apply(event)
    seconds = dict.fromkeys(("parse", "encode", "decode", "attribute", "attribute + enriched",
                             "attribute + conversations"), 0.0)
    # Staged S3 chunks are JSON text; CloudWatch records (base64) are left to the job's parser.
    records_s3 = [r for r in records if r.startswith("{")]
    flows = 0
    clock = time.perf_counter
    for raw in records:
        began = clock()
        result = parse_record(raw, "bench", config.flow_format, config.parse_limits)
        seconds["parse"] += clock() - began
        for group in result.groups:
            flows += len(group.flows)
            began = clock()
            payload = encode_group(group)
            encoded = clock()
            group = decode_group(payload, group.window_start, group.max_start)
            decoded = clock()
            seconds["encode"] += encoded - began
            seconds["decode"] += decoded - encoded
            for stage, options in (("attribute", {}), ("attribute + enriched", {"enriched": True}),
                                   ("attribute + conversations", {"conversations": True})):
                began = clock()
                attribute_group(group, index, **{"enriched": False, **options})
                seconds[stage] += clock() - began
    seconds["parse, vectorised sketch (pyarrow.csv)"] = _arrow_parse_seconds(records_s3)
    stages = {k: {"seconds": round(v, 2), "us_per_flow": round(1e6 * v / flows, 2),
                  "flows_per_s": round(flows / v)} for k, v in seconds.items()}
    path = seconds["parse"] + seconds["encode"] + seconds["decode"] + seconds["attribute"]
    return {"flows": flows, "records": len(records), "changelog_events": len(events),
            "stages": stages, "aggregates_path_flows_per_s": round(flows / path)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--staged-flows", required=True)
    p.add_argument("--staged-metadata", required=True)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.staged_flows, args.staged_metadata), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
