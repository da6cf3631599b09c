"""What a columnar attribution could cost: the aggregates' owner lookup and group-by on a whole
record's arrow and numpy columns, against the job's row path on the same records, without Flink.
`python -m bench.columnar_probe --staged-flows F --staged-metadata M`.

A probe for the next step of issue #15 (docs/performance.md, run 16), not the job's code: it
reads the staged S3 chunks (CloudWatch records are left out), only the columns the aggregates
need, with no line checks (NODATA lines are counted); only IPv4 addresses with one
owner since their first change are looked up (every other end counts as unowned, the job's row
path would look it up one by one); no counts, no lateness. Its figure is a floor for the
columnar path, the row path's the job's own (job.parse.parse_record, then
job.attribute.attribute_group per group). Times are the CPU time of this process.
"""
import argparse
import io
import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from flowdredge.job.attribute import attribute_group
from flowdredge.job.config import Config
from flowdredge.job.ownership import OwnershipIndex, parse_chunk
from flowdredge.job.parse import parse_record
from flowdredge.schemas.metadata import HEARTBEAT, OWNER_FIELDS

_APP, _REGION = OWNER_FIELDS.index("app"), OWNER_FIELDS.index("region")
_OCTETS = np.array([1 << 24, 1 << 16, 1 << 8, 1], np.int64)
_NUMBERS = ("dstport", "protocol", "packets", "bytes", "start")
_COLUMNS = ("srcaddr", "dstaddr", "action") + _NUMBERS


def load_index(staged_metadata: str) -> tuple:
    """The ownership index of the staged changelog, and the IPs it names."""
    index, ips = OwnershipIndex(), {}
    with open(staged_metadata, encoding="utf-8") as fh:
        for line in fh:
            for event in parse_chunk(line).events:
                if event.type != HEARTBEAT:
                    index.apply(event)
                    ips[event.ip] = None
    return index, ips


def snapshot(index: OwnershipIndex, ips) -> tuple:
    """(address keys sorted, first change ms, owner code) of the IPv4 addresses with one owner
    since their first change; an owner code per (app, region)."""
    keys, first_ms, codes, by_owner = [], [], [], {}
    for ip in ips:
        changes = index.changes(ip)
        if ":" in ip or len(changes) != 1 or changes[0][2] is None:
            continue
        ts, _rank, owner = changes[0]
        keys.append(int(np.array(ip.split("."), np.int64) @ _OCTETS))
        first_ms.append(ts)
        codes.append(by_owner.setdefault((owner[_APP], owner[_REGION]), len(by_owner)))
    order = np.argsort(keys)
    return (np.array(keys, np.int64)[order], np.array(first_ms, np.int64)[order],
            np.array(codes, np.int64)[order])


def ipv4_keys(column) -> np.ndarray:
    """Dotted quads as integers; anything else (IPv6, a null) as 0, which no IP has."""
    dotted = pc.fill_null(pc.match_substring_regex(column, r"^\d+\.\d+\.\d+\.\d+$"), False)
    parts = pc.split_pattern(pc.if_else(dotted, column, "0.0.0.0"), ".")
    return pc.list_flatten(parts).cast(pa.int64()).to_numpy().reshape(-1, 4) @ _OCTETS


def owner_codes(keys: np.ndarray, t_ms: np.ndarray, snap: tuple) -> np.ndarray:
    """The owner code at each time, -1 where there is none."""
    sorted_keys, first_ms, codes = snap
    at = np.searchsorted(sorted_keys, keys)
    at[at == len(sorted_keys)] = 0
    found = (sorted_keys[at] == keys) & (first_ms[at] <= t_ms)
    return np.where(found, codes[at], -1)


def columnar(record: str, snap: tuple, window_seconds: int) -> tuple:
    """(partial aggregate rows, flows) of one staged record, on columns."""
    doc = json.loads(record)
    names = doc["format"].split()
    table = csv.read_csv(
        io.BytesIO("\n".join(doc["lines"]).encode()),
        read_options=csv.ReadOptions(column_names=names, use_threads=False),
        parse_options=csv.ParseOptions(delimiter=" "),
        convert_options=csv.ConvertOptions(
            null_values=["-"], strings_can_be_null=True, include_columns=list(_COLUMNS),
            column_types={**{c: pa.string() for c in _COLUMNS[:3]},
                          **{c: pa.int64() for c in _NUMBERS}}))
    number = {c: table.column(c).fill_null(0).to_numpy() for c in _NUMBERS}
    start = number["start"]
    t_ms = start * 1000
    src = owner_codes(ipv4_keys(table.column("srcaddr")), t_ms, snap)
    dst = owner_codes(ipv4_keys(table.column("dstaddr")), t_ms, snap)
    window = (start - start % window_seconds) // window_seconds
    accept = pc.fill_null(pc.equal(table.column("action"), "ACCEPT"), False).to_numpy(
        zero_copy_only=False)
    key = (((window - window.min()) * 4096 + src + 1) * 4096 + dst + 1) * 65536 + number["dstport"]
    key = (key * 256 + number["protocol"]) * 2 + accept
    _keys, group = np.unique(key, return_inverse=True)
    flows = np.bincount(group)
    np.bincount(group, weights=number["packets"])
    np.bincount(group, weights=number["bytes"])
    return len(flows), len(start)


def rows(record: str, index: OwnershipIndex, config: Config) -> tuple:
    """(partial aggregate rows, flows) of one staged record, as the job's Python does it."""
    result = parse_record(record, "probe", config.flow_format, config.parse_limits)
    partials = flows = 0
    for group in result.groups:
        partials += len(attribute_group(group, index, enriched=False).partials.sums)
        flows += len(group)
    return partials, flows


def measure(staged_flows: str, staged_metadata: str, rounds: int = 3) -> dict:
    config = Config()
    index, ips = load_index(staged_metadata)
    snap = snapshot(index, ips)
    with open(staged_flows, encoding="utf-8") as fh:
        records = [r for r in fh.read().splitlines() if '"format"' in r[:2000]]
    paths = {"columnar": lambda r: columnar(r, snap, config.job.window_seconds),
             "rows": lambda r: rows(r, index, config)}
    out = {"records": len(records), "ips_in_snapshot": len(snap[0]), "rounds": []}
    for n in range(rounds):
        figures = {}
        # Alternate which path meets the records first.
        for name in (sorted(paths) if n % 2 == 0 else sorted(paths, reverse=True)):
            began = time.process_time()
            results = [paths[name](r) for r in records]
            spent = time.process_time() - began
            flows = sum(f for _, f in results)
            figures[name] = {"us_per_flow": round(1e6 * spent / max(flows, 1), 2),
                             "flows": flows, "partial_rows": sum(p for p, _ in results)}
        out["rounds"].append(figures)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--staged-flows", required=True)
    p.add_argument("--staged-metadata", required=True)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.staged_flows, args.staged_metadata, args.rounds), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
