"""The attribution of flows whose addresses overlapping VPCs hold, in one process, without Flink.
`python -m bench.vpc_claims [--addresses 100000] [--contested 0.2] [--records 1000]`.

An estate of `--addresses` private IPv4 addresses, a share `--contested` of them held in two
VPCs at once (default VPCs, each team's 10.0.0.0/16). The records are CloudWatch Logs
subscription records as one interface's log stream delivers them (100 lines, one VPC, the
interface's address one end of each), parsed 50 at a time as a shard's batch is; a third of the
flows have a peer on the internet. The attribution
(job.attribute.attribute_group, aggregates only) is timed on the same groups against:

- `none contested`: every address has an owner of its own (the baseline);
- `UNASSIGN only`: the contested addresses have none (the publisher before VPC claims), the
  flow lines with `vpc-id`;
- `claims, no vpc-id`: VPC_ASSIGNs in both VPCs too, but the format lacks `vpc-id` (AWS's
  default): a line's VPC is its interface's, as the claims name it (a record of a contested
  address's interface; the others' interfaces no claim names: a publisher of an earlier
  release);
- `claims + ASSIGN VPCs, no vpc-id`: as the publisher writes them now, each other address's
  ASSIGN names its interface and that interface's VPC (`interface_vpc_id`): every record's
  interface has its VPC;
- `claims + vpc-id`: VPC_ASSIGNs, and the lines name their VPC.

Prints, per index, the best of `--passes` passes in µs a flow (variants alternate within each
pass: the machines are noisy) and the share of flow ends owned.
"""
import argparse
import gc
import random
import time

from flowdredge.job.attribute import attribute_group
from flowdredge.job.config import Config
from flowdredge.job.ownership import MetaEvent, OwnershipIndex, vpc_key
from flowdredge.job.parse import FlowFormat, parse_records
from flowdredge.schemas.cloudwatch import record
from flowdredge.schemas.flowlog import DEFAULT_FORMAT
from flowdredge.schemas.metadata import ASSIGN, OWNER_FIELDS, UNASSIGN

LINES = 100
START = 1767225600
VPCS = ("vpc-0a1b2c3d", "vpc-0123456789abcdef0")
WITH_VPC = DEFAULT_FORMAT + ["vpc-id"]


def addresses(n: int) -> list:
    return [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(n)]


def _owner(app: str, interface: str = "-") -> tuple:
    values = dict.fromkeys(OWNER_FIELDS, "-")
    values.update(app=app, region="us-east-1", interface_id=interface)
    return tuple(values[f] for f in OWNER_FIELDS)


def index_of(ips: list, contested: int, claims: bool,
             interface_vpcs: bool = False) -> OwnershipIndex:
    """The first `contested` addresses without an owner of their own (and with `claims`, one
    in each VPC, of an interface there: interface_of), the others each an app's of 50 (with
    `interface_vpcs`, its ASSIGN naming its interface and that interface's VPC, home_vpc)."""
    index = OwnershipIndex()
    for k, ip in enumerate(ips):
        if k < contested:
            index.apply(MetaEvent(UNASSIGN, START * 1000, ip, None))
            for v, vpc in enumerate(VPCS if claims else ()):
                index.apply(MetaEvent(ASSIGN, START * 1000, vpc_key(vpc, ip),
                                      _owner(vpc, interface_of(k, v))))
        elif interface_vpcs:
            v = home_vpc(k)
            index.apply(MetaEvent(ASSIGN, START * 1000, ip,
                                  _owner(f"app-{k % 50}", interface_of(k, v)), VPCS[v]))
        else:
            index.apply(MetaEvent(ASSIGN, START * 1000, ip, _owner(f"app-{k % 50}")))
    return index


def home_vpc(address: int) -> int:
    """The VPC of an address no two VPCs hold (the `address`th)."""
    return address % 2


def interface_of(address: int, vpc: int) -> str:
    """The interface holding the `address`th address in the `vpc`th VPC."""
    return f"eni-{vpc}{address:016x}"


def groups_of(ips: list, n_records: int, with_vpc: bool, contested: int, seed: int = 5) -> list:
    """The flow groups of `n_records` records (parsed 50 a call), each of one interface in one
    of the two VPCs: a contested address's in either, another's in its own (home_vpc)."""
    rng = random.Random(seed)
    fmt = FlowFormat(WITH_VPC if with_vpc else DEFAULT_FORMAT)
    records = []
    for r in range(n_records):
        k = rng.randrange(len(ips))
        v = r % 2 if k < contested else home_vpc(k)
        vpc = VPCS[v]
        own, interface = ips[k], interface_of(k, v)   # one end of every line
        events = []
        for i in range(LINES):
            start = START + 60 * (r // 100) + rng.randrange(60)
            peer = (ips[rng.randrange(len(ips))] if i % 3 else
                    f"198.51.{rng.randrange(256)}.{rng.randrange(256)}")
            src, dst = (own, peer) if i % 2 else (peer, own)
            line = (f"2 123456789012 {interface} {src} {dst} "
                    f"{rng.randrange(1024, 65535)} 443 6 {rng.randrange(1, 50)} "
                    f"{rng.randrange(40, 90000)} {start} {start + 30} ACCEPT OK"
                    + (f" {vpc}" if with_vpc else ""))
            events.append((str(i), start * 1000, line))
        raw = record(events, compresslevel=6, owner="123456789012", log_group="/vpc",
                     log_stream=interface)
        records.append((raw, f"r{r}", max(e[1] for e in events) // 1000 + 60))
    limits = Config().parse_limits
    return [group for i in range(0, len(records), 50)
            for group in parse_records(records[i:i + 50], fmt, limits).groups]


def measure(cases: dict, passes: int) -> dict:
    """{name: (best µs a flow, share of ends owned)} of cases {name: (index, groups)}."""
    best = dict.fromkeys(cases)
    owned = {}
    for _ in range(passes):
        for name, (index, groups) in cases.items():
            counts, flows = {}, 0
            began = time.perf_counter()
            for group in groups:
                out = attribute_group(group, index, enriched=False)
                for key, n in out.counts.items():
                    counts[key] = counts.get(key, 0) + n
                flows += len(group)
            seconds = time.perf_counter() - began
            us = seconds / flows * 1e6
            best[name] = us if best[name] is None else min(best[name], us)
            owned[name] = (counts.get("src_owned", 0) + counts.get("dst_owned", 0)) / (2 * flows)
    return {name: (best[name], owned[name]) for name in cases}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.vpc_claims", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--addresses", type=int, default=100_000)
    p.add_argument("--contested", type=float, default=0.2)
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--passes", type=int, default=5)
    args = p.parse_args(argv)
    ips = addresses(args.addresses)
    contested = int(args.addresses * args.contested)
    with_vpc, without_vpc = (groups_of(ips, args.records, v, contested) for v in (True, False))
    cases = {"none contested": (index_of(ips, 0, False), with_vpc),
             "UNASSIGN only": (index_of(ips, contested, False), with_vpc),
             "claims, no vpc-id": (index_of(ips, contested, True), without_vpc),
             "claims + ASSIGN VPCs, no vpc-id": (index_of(ips, contested, True, True),
                                                 without_vpc),
             "claims + vpc-id": (index_of(ips, contested, True), with_vpc)}
    gc.freeze()   # as the attribution's worker does once its index is loaded (docs/design.md)
    print(f"{args.addresses:,} addresses, {contested:,} of them held by two VPCs; "
          f"{args.records * LINES:,} flows")
    print("| index | µs a flow | flow ends owned |")
    print("| --- | --- | --- |")
    for name, (us, share) in measure(cases, args.passes).items():
        print(f"| {name} | {us:.2f} | {share * 100:.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
