"""The job's pure-Python core without Flink, on staged records: what one Python worker could do
if the framework cost nothing. `python -m bench.core --staged-flows F --staged-metadata M`.

Per changelog event: its chunk's parse, encode and decode (job.codec, the trip to the
attribution), the ownership index (job.ownership.apply_events) and the broadcast-state values
of the IPs it changed. Per flow, in the order the job runs them: parse a record (job.parse.parse_record), encode and
decode its flow groups (job.codec, the trip through keyed state and the shuffle), attribute them
(job.attribute.attribute_group) with each optional output on its own and with both (`attribute,
default outputs`: the default configuration's step, the views encoded and the lines gzipped), the
security views' share of each batch (reduced and encoded, job.security.WindowViews) and each
window's close (decode, merge, every view: job.security.window_results). For comparison, every
record is also parsed one line at a time (`parse, per line`: the parser before the vectorised
path, job.parse.parse_record with vectorise_from=math.inf), alternately with the job's parse, so that the load of a
shared machine falls on both; their results are checked equal. Times are the CPU time of this
process (the reader runs on this thread: use_threads off). The groups' count and mean size are
reported too: the column path's fixed cost is per group (docs/performance.md, run 18).
"""
import argparse
import json
import math
import time

from flowdredge.job.attribute import attribute_group
from flowdredge.job.codec import (decode_events, decode_group, decode_views, encode_events,
                                  encode_group, encode_views)
from flowdredge.job.config import Config
from flowdredge.job.enriched import gzip_block
from flowdredge.job.ownership import MetadataClock, OwnershipIndex, apply_events, parse_chunk
from flowdredge.job.parse import parse_record, staged_records
from flowdredge.job.security import ScanRules, ViewRules, WindowViews, window_results


def _parse_per_line(raw, config):
    """parse_record with the vectorised path off."""
    return parse_record(raw, "bench", config.flow_format, config.parse_limits,
                        vectorise_from=math.inf)


def _same(a, b) -> bool:
    return ([(g.window_start, g.max_start, g.flows) for g in a.groups], a.dead_letters, a.counts,
            a.no_traffic) == ([(g.window_start, g.max_start, g.flows) for g in b.groups],
                              b.dead_letters, b.counts, b.no_traffic)


def measure(staged_flows: str, staged_metadata: str) -> dict:
    config = Config()
    with open(staged_flows, encoding="utf-8") as fh:
        # One record at a time, a staged line of several CloudWatch records as each of them.
        records = [record if isinstance(record, str) else json.dumps(record)
                   for line in fh.read().splitlines()
                   for record, _source, _delivered in staged_records(line)]
    clock = time.process_time
    index = OwnershipIndex()
    meta_clock = MetadataClock(config.metadata.out_of_orderness_seconds * 1000)
    changelog = dict.fromkeys(("parse", "encode", "decode", "apply", "state entries"), 0.0)
    events = 0
    with open(staged_metadata, encoding="utf-8") as fh:
        # Staged in chunks, as the job reads it (job.replay.stage_metadata); each chunk as
        # ParseMetadataEvents and AttributeFlows.process_broadcast_element take it.
        for line in fh:
            began = clock()
            chunk = parse_chunk(line)
            parsed = clock()
            payload = encode_events(chunk.events)
            encoded = clock()
            decoded_events, _ = decode_events(payload)
            decoded = clock()
            _counts, changed = apply_events(decoded_events, index, meta_clock)
            applied = clock()
            index.state_entries(changed)
            written = clock()
            for stage, spent in zip(changelog, (parsed - began, encoded - parsed,
                                                decoded - encoded, applied - decoded,
                                                written - applied)):
                changelog[stage] += spent
            events += len(chunk.events)
    seconds = dict.fromkeys(("parse", "parse, per line", "encode", "decode", "attribute",
                             "attribute + enriched", "attribute + security batch",
                             "attribute, default outputs", "security window close"), 0.0)
    sec = config.security
    rules = ViewRules(sec.scan_report_min_targets, ScanRules(
        sec.port_scan_min_ports, sec.port_scan_max_hosts, sec.host_sweep_min_hosts,
        sec.host_sweep_max_ports, sec.scan_min_reject_percent, sec.evidence_samples),
        sec.risk_weights, sec.risk_scales)
    batches = {}   # window start -> encoded WindowViews
    # A long-running worker knows most addresses: warm job.parse's address cache first, or the
    # per-line parser, its only user for IPv4, would pay every first sight alone.
    for raw in records:
        _parse_per_line(raw, config)
    by_kind = {}
    flows = groups = column_groups = 0
    for n, raw in enumerate(records):
        # Alternate which parser meets a record first (caches: addresses, formats).
        for stage in (("parse", "parse, per line") if n % 2 else ("parse, per line", "parse")):
            began = clock()
            if stage == "parse":
                result = parse_record(raw, "bench", config.flow_format, config.parse_limits)
            else:
                reference = _parse_per_line(raw, config)
            spent = clock() - began
            seconds[stage] += spent
            kind = by_kind.setdefault("S3 chunks" if raw.startswith("{") else "CloudWatch records",
                                      {"parse": 0.0, "parse, per line": 0.0, "flows": 0})
            kind[stage] += spent
        if not _same(result, reference):
            raise AssertionError(f"record {n}: the vectorised parse differs from the per-line one")
        kind["flows"] += result.counts["flows_parsed"]
        for group in result.groups:
            flows += len(group)
            groups += 1
            began = clock()
            payload = encode_group(group)
            encoded = clock()
            group = decode_group(payload, group.window_start, group.max_start)
            decoded = clock()
            column_groups += group.columns is not None
            seconds["encode"] += encoded - began
            seconds["decode"] += decoded - encoded
            for stage, options in (("attribute", {}), ("attribute + enriched", {"enriched": True}),
                                   ("attribute + security batch", {"conversations": True}),
                                   ("attribute, default outputs",
                                    {"enriched": True, "conversations": True})):
                began = clock()
                out = attribute_group(group, index, **{"enriched": False, **options})
                if options.get("conversations"):
                    payload = encode_views(out.views)
                    if not options.get("enriched"):
                        batches.setdefault(group.window_start, []).append(payload)
                if options.get("enriched") and options.get("conversations"):
                    gzip_block(out.enriched)
                seconds[stage] += clock() - began
    for window_start, payloads in batches.items():
        began = clock()
        views = WindowViews()
        for payload in payloads:
            views.merge(decode_views(payload))
        window_results(window_start, views, rules)
        seconds["security window close"] += clock() - began
    stages = {k: {"seconds": round(v, 2), "us_per_flow": round(1e6 * v / flows, 2),
                  "flows_per_s": round(flows / v)} for k, v in seconds.items()}
    parse_by_kind = {k: {"flows": v["flows"], **{
        stage: {"us_per_flow": round(1e6 * v[stage] / v["flows"], 2)}
        for stage in ("parse", "parse, per line")}} for k, v in by_kind.items() if v["flows"]}
    path = seconds["parse"] + seconds["encode"] + seconds["decode"] + seconds["attribute"]
    per_line_path = path - seconds["parse"] + seconds["parse, per line"]
    return {"flows": flows, "records": len(records), "changelog_events": events,
            # The column path's fixed cost is per group: its share of a flow follows their size.
            "groups": groups, "groups_as_columns": column_groups,
            "flows_per_group": round(flows / max(groups, 1), 1),
            "changelog_us_per_event": {k: round(1e6 * v / max(events, 1), 2)
                                       for k, v in changelog.items()},
            "stages": stages, "parse_by_record_kind": parse_by_kind,
            "aggregates_path_flows_per_s": round(flows / path),
            "aggregates_path_flows_per_s_parsing_per_line": round(flows / per_line_path)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--staged-flows", required=True)
    p.add_argument("--staged-metadata", required=True)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.staged_flows, args.staged_metadata), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
