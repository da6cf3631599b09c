"""Benchmark input at any size: the synthetic estate (synthetic.estate's model) at 50,000+ IPs
and its VPC flow logs, deterministic from a seed. `python -m flowdredge.synthetic.workload
--output DIR --flows N` writes one.

What makes it realistic enough to measure with:
- hundreds of apps whose traffic follows a dependency graph with Zipf-skewed popularity, in
  several accounts and regions, dual-stack instances (IPv6 inside the estate too);
- instances replaced during the run and their IPs handed to other apps, while stale traffic to
  the old instance goes on (the case that makes "owner now" wrong);
- REJECTs, internet ingress and egress (IPv4 and IPv6 clients), flows to unowned private
  addresses, NODATA lines;
- delivery as AWS does it: S3 files (gzip, header line, `AWSLogs/<account>/vpcflowlogs/<region>/
  YYYY/MM/DD/`, one per account, region and 5-minute slot, split when large) and, for the
  accounts that subscribe through CloudWatch Logs, gzip JSON envelopes of a few thousand events
  (base64, one per line, as job.replay stages them);
- the IP-metadata changelog (schemas/metadata.py): a snapshot of ASSIGNs, then changes delivered
  out of order within the metadata bound, and HEARTBEATs every minute.

Fast: the random draws are numpy vectors per minute of traffic, and a line is one f-string over
precomputed per-instance text; millions of lines take seconds, most of it gzip.
"""
import os
import time
from dataclasses import dataclass, field

import numpy as np

from flowdredge.synthetic.estate import ZONES, AddressPool, Ownership, account_id, owner
from flowdredge.synthetic.formats import stamp, write_changelog, write_cloudwatch, write_s3
from flowdredge.schemas.settings import integer

REGIONS = tuple(ZONES)
SERVICE_PORTS = (443, 8080, 8443, 9092, 6379, 7001, 9042, 5432, 3306, 9200, 53)
UDP_PORTS = (53,)
EGRESS_PORTS = (443, 443, 443, 80, 123)
# Unowned private destinations come from 10.250/15.., never handed to an instance (regions use
# 10.0-10.191).
UNOWNED_PREFIX = "10.25"


@dataclass(frozen=True)
class Workload:
    flows: int = 1_000_000
    minutes: int = 30
    start: int = 1767225600                  # 2026-01-01T00:00:00Z
    apps: int = 300
    instances: int = 50_000
    accounts: int = 6
    zipf_exponent: float = 1.1
    ipv6_instance_share: float = 0.1        # dual-stack instances (one more ASSIGN each)
    ipv6_flow_share: float = 0.5            # of flows between two dual-stack instances
    churn_share_per_minute: float = 0.002   # instances replaced per minute
    ip_reuse_share: float = 0.7             # new instances that get a released IPv4 address
    reject_share: float = 0.03
    internet_share: float = 0.08
    internet_ipv6_share: float = 0.2
    unowned_share: float = 0.02
    nodata_share: float = 0.002
    cloudwatch_accounts: int = 1            # the first N accounts deliver through CloudWatch Logs
    lines_per_envelope: int = 3000
    max_lines_per_file: int = 200_000
    metadata_disorder_seconds: int = 15     # within metadata.out_of_orderness_seconds (30)
    gzip_level: int = 1
    seed: int = 7


@dataclass
class Generated:
    flows_dir: str = ""
    s3_dir: str = ""
    metadata_file: str = ""
    flow_lines: int = 0                     # lines with traffic (what the job aggregates)
    nodata_lines: int = 0
    s3_files: int = 0
    s3_lines: int = 0
    cloudwatch_records: int = 0
    cloudwatch_lines: int = 0
    ips: int = 0
    changes: int = 0
    reassigned_ips: int = 0
    seconds: float = 0.0
    files: list = field(default_factory=list)


class _Estate:
    """Apps and their instances as arrays (numpy draws per minute of traffic pick from them)."""

    def __init__(self, w: Workload, rng: np.random.Generator):
        self.w, self.rng = w, rng
        ranks = rng.permutation(w.apps)
        pop = 1.0 / (ranks + 1.0) ** w.zipf_exponent
        self.popularity = pop / pop.sum()
        self.app_account_index = rng.integers(0, w.accounts, w.apps).tolist()
        self.app_account = [account_id(a) for a in self.app_account_index]
        self.app_region = [int(r) for r in rng.integers(0, len(REGIONS), w.apps)]
        self.app_port = [SERVICE_PORTS[int(p)] for p in rng.integers(0, len(SERVICE_PORTS), w.apps)]
        facing = rng.random(w.apps) < 0.05
        facing[int(np.argmax(self.popularity))] = True
        self.internet_facing = np.flatnonzero(facing)
        # A pool per region: 64 /16s each from 10.<64 * region>, hosts .4 to .253.
        self.addresses = [AddressPool(
            lambda region, h: f"10.{region * 64 + h // 64000}.{(h // 250) % 256}.{h % 250 + 4}",
            w.ip_reuse_share, rng.random, lambda n: int(rng.integers(n)))
            for _ in REGIONS]
        # Per instance: app, IPv4, IPv6 or None, "2 account eni" (a line's head), born ms.
        self.app, self.ipv4, self.ipv6, self.head, self.born = [], [], [], [], []
        self.ownership = Ownership(compact=True)
        self.alive = set()

    def _assign(self, i: int, ip: str, t_ms: int) -> None:
        app = self.app[i]
        region = REGIONS[self.app_region[app]]
        self.ownership.assign(t_ms, ip, owner(
            f"app-{app:03d}", i, i % 7, self.app_account[app], region,
            ZONES[region][i % len(ZONES[region])]))

    def launch(self, app: int, t_ms: int) -> None:
        i = len(self.app)
        region = self.app_region[app]
        ipv4 = self.addresses[region].take(region)
        ipv6 = None
        if self.rng.random() < self.w.ipv6_instance_share:
            ipv6 = f"2600:1f18:{region + 1:x}:{i // 0xfffe + 1:x}::{i % 0xfffe + 1:x}"
        self.app.append(app)
        self.ipv4.append(ipv4)
        self.ipv6.append(ipv6)
        self.head.append(f"2 {self.app_account[app]} eni-{i:017x}")
        self.born.append(t_ms)
        self._assign(i, ipv4, t_ms)
        if ipv6:
            self._assign(i, ipv6, t_ms)
        self.alive.add(i)

    def terminate(self, i: int, t_ms: int) -> None:
        self.alive.discard(i)
        self.addresses[self.app_region[self.app[i]]].release(self.ipv4[i])
        for ip in (self.ipv4[i], self.ipv6[i]):
            if ip:
                self.ownership.unassign(t_ms, ip)

    def populate(self, t_ms: int) -> None:
        w = self.w
        spare = max(w.instances - 2 * w.apps, 0)
        counts = 2 + np.floor(self.popularity * spare).astype(int)
        counts[np.argsort(-self.popularity)[:w.instances - int(counts.sum())]] += 1
        for app, n in enumerate(counts):
            for _ in range(int(n)):
                self.launch(app, t_ms)

    def churn(self, minute_start_ms: int) -> None:
        """Replaces instances: a release and, at least a second later, a launch of the same app
        (ASG replacement) or of another, which may get a released IP. Releases are handled in
        time order, so an IP is only handed out after its release and never has two changes at
        one instant. Every app keeps an instance alive through the minute."""
        w, rng = self.w, self.rng
        running = sorted(i for i in self.alive if self.born[i] <= minute_start_ms)
        per_app = {}
        for i in running:
            per_app[self.app[i]] = per_app.get(self.app[i], 0) + 1
        n = min(int(rng.poisson(w.churn_share_per_minute * len(running))), len(running))
        victims = rng.choice(running, size=n, replace=False).tolist()
        times = (minute_start_ms + rng.integers(0, 60_000, n)).tolist()
        for t, i in sorted(zip(times, victims)):
            app = self.app[i]
            if per_app[app] < 2:
                continue
            per_app[app] -= 1
            self.terminate(i, t)
            new_app = app if rng.random() < 0.5 else int(rng.choice(w.apps, p=self.popularity))
            self.launch(new_app, t + int(rng.choice((1000, 5000, 30_000))))

    def alive_by_app(self, at_ms: int):
        """Instances alive at `at_ms`, grouped by app: (flat ids, offset per app, count per app).
        Instances that die later in the minute stay in: traffic to them after their death is
        the stale traffic attribution must get right."""
        ids = np.array(sorted(i for i in self.alive if self.born[i] <= at_ms), dtype=np.int64)
        apps = np.array(self.app, dtype=np.int64)[ids]
        order = np.argsort(apps, kind="stable")
        ids, apps = ids[order], apps[order]
        counts = np.bincount(apps, minlength=self.w.apps)
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
        return ids, offsets, counts


def _edges(w: Workload, estate: _Estate, rng: np.random.Generator):
    """Each app calls 1-6 others, chosen by popularity; an edge carries traffic in proportion to
    the popularity of both ends."""
    src, dst = [], []
    for app in range(w.apps):
        k = int(rng.integers(1, 7))
        callees = rng.choice(w.apps, size=k + 1, replace=False, p=estate.popularity)
        for callee in callees[callees != app][:k]:
            src.append(app)
            dst.append(int(callee))
    src, dst = np.array(src), np.array(dst)
    weight = estate.popularity[src] * estate.popularity[dst]
    return src, dst, weight / weight.sum()


def _pick(rng, n, ids, offsets, counts, apps):
    """One alive instance of each of `apps` (every app keeps at least one)."""
    return ids[offsets[apps] + (rng.random(n) * counts[apps]).astype(np.int64)]


def _public_ipv4(rng, n):
    # 198.18.0.0/15 (benchmarking range: public, never in the metadata) gives many clients.
    return [f"198.{18 + a}.{b}.{c}" for a, b, c in
            zip(rng.integers(0, 2, n).tolist(), rng.integers(0, 256, n).tolist(),
                rng.integers(1, 255, n).tolist())]


def _public_ipv6(rng, n):
    return [f"2001:db8:{a:x}:{b:x}::{c:x}" for a, b, c in
            zip(rng.integers(1, 0xffff, n).tolist(), rng.integers(1, 0xffff, n).tolist(),
                rng.integers(1, 0xffff, n).tolist())]


def _minute_of_traffic(w, estate, edges, rng, minute_start, n):
    """Columns of `n` flows in one minute, sorted by start (as AWS files roughly are)."""
    ids, offsets, counts = estate.alive_by_app(minute_start * 1000)
    head = np.array(estate.head, dtype=object)
    ipv4 = np.array(estate.ipv4, dtype=object)
    ipv6 = np.array(estate.ipv6, dtype=object)
    app_of = np.array(estate.app)
    port_of = np.array(estate.app_port)
    edge_src, edge_dst, edge_p = edges

    kind = rng.random(n)
    internet = kind < w.internet_share
    unowned = (kind >= w.internet_share) & (kind < w.internet_share + w.unowned_share)

    edge = rng.choice(len(edge_src), size=n, p=edge_p)
    src = _pick(rng, n, ids, offsets, counts, edge_src[edge])
    dst = _pick(rng, n, ids, offsets, counts, edge_dst[edge])
    dport = port_of[edge_dst[edge]]
    src_ip = ipv4[src]
    dst_ip = ipv4[dst]
    dual_stack = np.array([a is not None for a in estate.ipv6])
    v6 = (rng.random(n) < w.ipv6_flow_share) & dual_stack[src] & dual_stack[dst]
    src_ip[v6] = ipv6[src[v6]]
    dst_ip[v6] = ipv6[dst[v6]]
    logged_by = src.copy()

    k = int(unowned.sum())
    dst_ip[unowned] = [f"{UNOWNED_PREFIX}{a}.{b}.{c}" for a, b, c in
                       zip(rng.integers(0, 6, k).tolist(), rng.integers(0, 256, k).tolist(),
                           rng.integers(1, 255, k).tolist())]

    k = int(internet.sum())
    facing = estate.internet_facing
    facing_p = estate.popularity[facing] / estate.popularity[facing].sum()
    edge_inst = _pick(rng, k, ids, offsets, counts, rng.choice(facing, size=k, p=facing_p))
    public = np.array(_public_ipv4(rng, k), dtype=object)
    use_v6 = rng.random(k) < w.internet_ipv6_share
    public[use_v6] = _public_ipv6(rng, int(use_v6.sum()))
    edge_ip = ipv4[edge_inst]
    ingress = rng.random(k) < 0.7
    src_ip[internet] = np.where(ingress, public, edge_ip)
    dst_ip[internet] = np.where(ingress, edge_ip, public)
    dport[internet] = np.where(ingress, 443,
                               np.array(EGRESS_PORTS)[rng.integers(0, len(EGRESS_PORTS), k)])
    logged_by[internet] = edge_inst

    protocol = np.where(np.isin(dport, UDP_PORTS), 17, 6)
    packets = 1 + rng.geometric(0.05, n)
    nbytes = packets * rng.integers(40, 1500, n)
    start = minute_start + rng.integers(0, 60, n)
    end = start + rng.integers(0, 60, n)
    action = np.where(rng.random(n) < w.reject_share, "REJECT", "ACCEPT").astype(object)
    order = np.argsort(start, kind="stable")
    return dict(logged_by=logged_by[order], head=head[logged_by[order]], src=src_ip[order],
                dst=dst_ip[order], sport=rng.integers(32768, 61000, n), dport=dport[order],
                protocol=protocol[order], packets=packets[order], bytes=nbytes[order],
                start=start[order], end=end[order], action=action[order],
                account=np.array(estate.app_account_index)[app_of[logged_by[order]]],
                region=np.array(estate.app_region)[app_of[logged_by[order]]])


def _lines(cols, rows):
    """Flow-log lines (default format) of the selected rows: one f-string each."""
    return [f"{h} {s} {d} {sp} {dp} {pr} {pk} {by} {st} {en} {ac} OK" for
            h, s, d, sp, dp, pr, pk, by, st, en, ac in zip(
                cols["head"][rows].tolist(), cols["src"][rows].tolist(),
                cols["dst"][rows].tolist(), cols["sport"][rows].tolist(),
                cols["dport"][rows].tolist(), cols["protocol"][rows].tolist(),
                cols["packets"][rows].tolist(), cols["bytes"][rows].tolist(),
                cols["start"][rows].tolist(), cols["end"][rows].tolist(),
                cols["action"][rows].tolist())]


class _Delivery:
    """Buffers one 5-minute slot of lines per (account, region) and writes them as AWS would:
    S3 files, or CloudWatch Logs envelopes for subscribed accounts."""

    def __init__(self, w: Workload, out_dir: str, result: Generated):
        self.w, self.out_dir, self.result = w, out_dir, result
        self.pending = {}   # (account index, region index) -> lines

    def add(self, key, lines):
        self.pending.setdefault(key, []).extend(lines)

    def flush(self, slot_start: int) -> None:
        delivered = stamp(slot_start + 300 + 60)   # a few minutes after the slot
        for (account_index, region_index), lines in sorted(self.pending.items()):
            account = account_id(account_index)
            region = REGIONS[region_index]
            if account_index < self.w.cloudwatch_accounts:
                self._cloudwatch(account, region, delivered, lines)
            else:
                self._s3(account, region, delivered, lines)
        self.pending = {}

    def _s3(self, account, region, delivered, lines):
        flows_dir = os.path.join(self.out_dir, "flows")
        for part, i in enumerate(range(0, len(lines), self.w.max_lines_per_file)):
            chunk = lines[i:i + self.w.max_lines_per_file]
            self.result.files.append(write_s3(flows_dir, account, region, delivered, chunk,
                                              flow_log="fl-0bench", part=part,
                                              compresslevel=self.w.gzip_level))
            self.result.s3_files += 1
            self.result.s3_lines += len(chunk)

    def _cloudwatch(self, account, region, delivered, lines):
        # Event ids number the CloudWatch lines of the whole workload; the timestamp is the
        # flow's start (a NODATA line's too: the fourth field from the end).
        seq = self.result.cloudwatch_lines
        events = [(f"{seq + j:056d}", int(line.rsplit(" ", 4)[1]) * 1000, line)
                  for j, line in enumerate(lines)]
        path, records = write_cloudwatch(os.path.join(self.out_dir, "flows"), account, region,
                                         delivered, events, log_stream=f"{region}-all-enis",
                                         events_per_record=self.w.lines_per_envelope,
                                         compresslevel=self.w.gzip_level, compact=True)
        self.result.files.append(path)
        self.result.cloudwatch_records += records
        self.result.cloudwatch_lines += len(events)


def _nodata_lines(estate, rng, minute_start, n):
    ids = np.array(sorted(estate.alive))
    picked = rng.choice(ids, size=n)
    start = minute_start + rng.integers(0, 60, n)
    return [(int(i), f"{estate.head[i]} - - - - - - - {s} {s + 60} - NODATA")
            for i, s in zip(picked.tolist(), start.tolist())]


def generate(w: Workload, out_dir: str) -> Generated:
    began = time.monotonic()
    rng = np.random.default_rng(w.seed)
    result = Generated(flows_dir=os.path.join(out_dir, "flows"),
                       s3_dir=os.path.join(out_dir, "flows", "AWSLogs"))
    estate = _Estate(w, rng)
    snapshot_ms = (w.start - 3600) * 1000
    estate.populate(snapshot_ms)
    edges = _edges(w, estate, rng)
    delivery = _Delivery(w, out_dir, result)
    per_minute = np.full(w.minutes, w.flows // w.minutes)
    per_minute[:w.flows % w.minutes] += 1
    for minute in range(w.minutes):
        minute_start = w.start + minute * 60
        estate.churn(minute_start * 1000)
        n = int(per_minute[minute])
        cols = _minute_of_traffic(w, estate, edges, rng, minute_start, n)
        key = cols["account"] * len(REGIONS) + cols["region"]
        for k in np.unique(key).tolist():
            rows = np.flatnonzero(key == k)
            delivery.add(divmod(k, len(REGIONS)), _lines(cols, rows))
        nodata = _nodata_lines(estate, rng, minute_start, int(rng.binomial(n, w.nodata_share)))
        for i, line in nodata:
            app = estate.app[i]
            delivery.add((estate.app_account_index[app], estate.app_region[app]), [line])
        result.flow_lines += n
        result.nodata_lines += len(nodata)
        if minute % 5 == 4 or minute == w.minutes - 1:
            delivery.flush(w.start + (minute - minute % 5) * 60)
    result.metadata_file = os.path.join(out_dir, "metadata", "changelog.jsonl")
    write_changelog(result.metadata_file, estate.ownership.changes,
                    snapshot_ts=snapshot_ms, start_ms=w.start * 1000,
                    end_ms=(w.start + w.minutes * 60) * 1000,
                    disorder_ms=w.metadata_disorder_seconds * 1000,
                    randbelow=lambda n: int(rng.integers(0, n)))
    changes = estate.ownership.changes
    result.ips = len(estate.ownership.apps_of)
    result.changes = len(changes) - sum(1 for ts, _line in changes if ts == snapshot_ms)
    result.reassigned_ips = estate.ownership.reassigned()
    result.seconds = time.monotonic() - began
    return result


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", required=True)
    p.add_argument("--flows", type=integer, default=Workload.flows)
    p.add_argument("--minutes", type=integer, default=Workload.minutes)
    p.add_argument("--cloudwatch-accounts", type=integer, default=Workload.cloudwatch_accounts)
    p.add_argument("--seed", type=integer, default=Workload.seed)
    args = p.parse_args(argv)
    g = generate(Workload(flows=args.flows, minutes=args.minutes, seed=args.seed,
                          cloudwatch_accounts=args.cloudwatch_accounts), args.output)
    print(f"{g.flow_lines:,} flows (+{g.nodata_lines:,} NODATA) in {g.s3_files} S3 files and "
          f"{g.cloudwatch_records} CloudWatch records; {g.ips:,} IPs, {g.changes:,} changes, "
          f"{g.reassigned_ips:,} IPs reassigned to another app; {g.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
