"""The synthetic AWS estate every synthetic input is made from, and its traffic. Pure Python.

The estate model: accounts, regions and zones, apps running as ASGs of instances (one ENI each),
IPs assigned, released and handed to other instances, reused first as AWS does within a subnet
(AddressPool), and the changelog of every ownership change (Ownership, owner()). Three shapes
are built on it, each with its own random draws (kept in their order, so a seed gives the same
files as ever):
- the demo's and the tests' estate (Scenario, generate below; tests/reference.py computes what
  the job must make of it): a dozen named apps, a dependency graph, instances replaced during the
  run (the case that makes "owner now" wrong), REJECTs, internet ingress and egress, IPv6, flows
  to unowned private addresses;
- the benchmark workload at any size (synthetic.workload: numpy, hundreds of apps, 50,000+ IPs);
- a large estate's ownership alone, for the state benchmarks (synthetic.snapshot).
All write through synthetic.formats, as AWS and a metadata publisher would:
- S3-style gzip flow-log files with a header line (AWSLogs/<account>/vpcflowlogs/<region>/...),
- CloudWatch Logs subscription records (gzip JSON, base64, one per line) for one account,
- the metadata changelog (JSON Lines): a snapshot of ASSIGNs, then changes, some delivered out
  of order within the metadata out-of-orderness bound, and HEARTBEATs.
"""
import json
import os
import random
import shutil
from dataclasses import dataclass, field

from flowdredge.schemas.metadata import ASSIGN, UNASSIGN
from flowdredge.synthetic.formats import stamp, write_changelog, write_cloudwatch, write_s3

# app -> (service port, callees); the dependency graph the traffic follows.
APPS = {
    "edge-gateway": (443, ["api", "auth"]),
    "api": (8080, ["cassandra-users", "redis-cache", "auth", "recs", "search"]),
    "auth": (8443, ["cassandra-users", "redis-cache"]),
    "recs": (8080, ["kafka", "redis-cache"]),
    "search": (9200, []),
    "cassandra-users": (7001, []),
    "redis-cache": (6379, []),
    "kafka": (9092, []),
    "billing": (8080, ["payments", "kafka"]),
    "payments": (8443, ["cassandra-billing"]),
    "cassandra-billing": (9042, []),
}
INTERNET_FACING = ("edge-gateway",)
ACCOUNTS = ("123456789012", "210987654321")
# AWS delivers a flow some minutes after it happened, in per-interval files: one each this long.
DELIVERY_SECONDS = 300
# The estate's regions and their zones; the demo's estate lives in the first two.
ZONES = {"us-east-1": ("us-east-1a", "us-east-1b", "us-east-1c"),
         "eu-west-1": ("eu-west-1a", "eu-west-1b"),
         "ap-southeast-2": ("ap-southeast-2a", "ap-southeast-2b", "ap-southeast-2c")}
REGIONS = {region: ZONES[region] for region in ("us-east-1", "eu-west-1")}
PUBLIC_CLIENTS = ("203.0.113.", "198.51.100.", "192.0.2.")
EGRESS_TARGETS = ("52.216.10.", "54.239.28.")


@dataclass
class Scenario:
    start: int = 1767225600          # 2026-01-01T00:00:00Z
    minutes: int = 30
    flows_per_minute: int = 2000
    instances_per_app: int = 6
    churn_per_minute: float = 2.0    # instance replacements per minute
    reject_share: float = 0.03
    internet_share: float = 0.08
    unowned_share: float = 0.02
    metadata_disorder_seconds: int = 15   # must stay within metadata.out_of_orderness_seconds
    cloudwatch_account: str = ACCOUNTS[1]
    seed: int = 7

    def __post_init__(self):
        check_size(self.minutes, self.flows_per_minute)


# generate() holds every flow line in memory until it writes the files (about 0.5 KB a flow, and
# an ownership change or two a minute): past these, a mistyped --minutes filled the machine's
# memory (21 GB before it was stopped) instead of saying so.
MAX_FLOWS = 5_000_000
MAX_MINUTES = 43_200   # 30 days


def check_size(minutes: int, flows_per_minute: int) -> None:
    """ValueError, in one line, when an estate of `minutes` of `flows_per_minute` is more than
    generate() is meant to hold."""
    if minutes > MAX_MINUTES:
        raise ValueError(f"{minutes:,} minutes of traffic is more than a synthetic estate is "
                         f"generated for: at most {MAX_MINUTES:,} (30 days)")
    if minutes * flows_per_minute > MAX_FLOWS:
        raise ValueError(f"{minutes:,} minutes of {flows_per_minute:,} flows a minute is "
                         f"{minutes * flows_per_minute:,} flows: a synthetic estate is generated "
                         f"in memory (about 0.5 KB a flow), at most {MAX_FLOWS:,}")


def account_id(index: int) -> str:
    """The synthetic account ids of a generated estate, by index."""
    return f"{100000000000 + 111111111 * (index + 1):012d}"


def owner(app: str, number: int, version: int, account: str, region: str, zone: str) -> dict:
    """The owner an ASSIGN names for instance `number` of `app` (its ENI and instance ids are
    the number), in ASG version `version`."""
    return {"app": app, "cluster": f"{app}-prod", "asg": f"{app}-prod-v{version:03d}",
            "account": account, "region": region, "zone": zone,
            "interface_id": f"eni-{number:017x}", "resource_id": f"i-{number:017x}",
            "kind": "instance"}


class Ownership:
    """Every ownership change of an estate in the order it happens, as the changelog's JSON lines
    (`compact`: without spaces)."""

    def __init__(self, compact: bool = False):
        self.separators = (",", ":") if compact else None
        self.changes = []      # (ts ms, JSON line), for formats.write_changelog
        self.apps_of = {}      # ip -> the apps that ever owned it

    def assign(self, ts_ms: int, ip: str, owner: dict) -> None:
        self.changes.append((ts_ms, json.dumps({"type": ASSIGN, "ts": ts_ms, "ip": ip, **owner},
                                               separators=self.separators)))
        self.apps_of.setdefault(ip, set()).add(owner["app"])

    def unassign(self, ts_ms: int, ip: str) -> None:
        self.changes.append((ts_ms, json.dumps({"type": UNASSIGN, "ts": ts_ms, "ip": ip},
                                               separators=self.separators)))

    def reassigned(self) -> int:
        """IPs owned by more than one app over the run."""
        return sum(1 for apps in self.apps_of.values() if len(apps) > 1)


class AddressPool:
    """Private addresses for new instances: a released one (with chance `reuse_share`, drawn by
    `random()`; which one by `randbelow(n)`), else the next new one, `address(region, n)` for
    the n-th taken."""

    def __init__(self, address, reuse_share: float, random, randbelow):
        self.address, self.reuse_share = address, reuse_share
        self.random, self.randbelow = random, randbelow
        self.free = []
        self.taken = 0

    def take(self, region) -> str:
        if self.free and self.random() < self.reuse_share:
            return self.free.pop(self.randbelow(len(self.free)))
        self.taken += 1
        return self.address(region, self.taken - 1)

    def release(self, ip: str) -> None:
        self.free.append(ip)


@dataclass
class Instance:
    ip: str
    app: str
    owner: dict
    born: int


@dataclass
class Generated:
    flow_files: list = field(default_factory=list)
    metadata_file: str = ""
    flows: int = 0
    changes: int = 0


class _Estate:
    """The named apps' instances: alive per app, in launch order (the traffic draws from it)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        # One pool for both regions (an address released in one may be taken in the other;
        # kept so the files stay as they were); new hosts numbered from 11, 250 to a /24.
        self.addresses = AddressPool(
            lambda region, n: f"10.{list(REGIONS).index(region)}.{(n + 11) // 250}."
                              f"{(n + 11) % 250 + 1}", 0.7, rng.random, rng.randrange)
        self.alive = {app: [] for app in APPS}
        self.ownership = Ownership()
        self.counter = 0
        self.home = {app: (ACCOUNTS[i % len(ACCOUNTS)], list(REGIONS)[(i // 2) % len(REGIONS)])
                     for i, app in enumerate(sorted(APPS))}

    def launch(self, app, t_ms):
        account, region = self.home[app]
        self.counter += 1
        zone = self.rng.choice(REGIONS[region])
        ip = self.addresses.take(region)
        inst = Instance(ip, app, owner(app, self.counter, self.counter % 3, account, region,
                                       zone), t_ms)
        self.alive[app].append(inst)
        self.ownership.assign(t_ms, ip, inst.owner)
        return inst

    def terminate(self, inst, t_ms):
        self.alive[inst.app].remove(inst)
        self.addresses.release(inst.ip)
        self.ownership.unassign(t_ms, inst.ip)


def _flow_line(account, eni, src, dst, sport, dport, proto, packets, nbytes, start, end, action):
    return (f"2 {account} {eni} {src} {dst} {sport} {dport} {proto} {packets} {nbytes} "
            f"{start} {end} {action} OK")


# What generate writes under its folder: the flow-log files and the changelog.
GENERATED = ("flows", "metadata")


def generate(scenario: Scenario, out_dir: str, replace: bool = False) -> Generated:
    """Writes the scenario's flow-log files under `out_dir`/flows and its changelog under
    `out_dir`/metadata. Those folders must not hold files (a replay of `flows/` would read an
    earlier estate's with this one's), unless `replace` says to remove them first."""
    held = [name for name in GENERATED if _holds_files(os.path.join(out_dir, name))]
    if held and not replace:
        raise FileExistsError(f"{out_dir} already holds {' and '.join(n + '/' for n in held)}: "
                              f"pass --overwrite to replace them, or choose another --output")
    for name in GENERATED:
        if os.path.islink(os.path.join(out_dir, name)):
            raise FileExistsError(f"{os.path.join(out_dir, name)} is a link: remove it, or "
                                  f"choose another --output")
    for name in GENERATED:
        shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)
    rng = random.Random(scenario.seed)
    estate = _Estate(rng)
    t0 = scenario.start
    for app in APPS:
        for _ in range(scenario.instances_per_app):
            estate.launch(app, (t0 - 3600) * 1000)
    callers = [(a, c) for a, (_p, callees) in APPS.items() for c in callees]
    # Skewed popularity: the k-th edge carries about 1/k of the first one's traffic.
    edge_weights = [1.0 / (k + 1) for k in range(len(callers))]
    per_file = {}   # (account, region, delivery minute) -> lines
    total = 0
    for minute in range(scenario.minutes):
        base = t0 + minute * 60
        churn = int(scenario.churn_per_minute) + (rng.random() < scenario.churn_per_minute % 1)
        for _ in range(churn):
            app = rng.choice(list(APPS))
            if len(estate.alive[app]) > 1:
                t = (base + rng.randrange(60)) * 1000 + rng.randrange(1000)
                estate.terminate(rng.choice(estate.alive[app]), t)
                estate.launch(rng.choice(list(APPS)), t + rng.choice((0, 0, 1000, 20000)))
        for _ in range(scenario.flows_per_minute):
            start = base + rng.randrange(60)
            t_ms = start * 1000
            r = rng.random()
            action = "REJECT" if rng.random() < scenario.reject_share else "ACCEPT"
            sport = rng.randrange(32768, 61000)
            if r < scenario.internet_share:
                edge = _alive_at(estate, rng.choice(INTERNET_FACING), t_ms, rng)
                if edge is None:
                    continue
                if rng.random() < 0.1:
                    client = f"2001:db8:{rng.randrange(1, 99)}::{rng.randrange(1, 9999):x}"
                else:
                    client = rng.choice(PUBLIC_CLIENTS) + str(rng.randrange(1, 255))
                if rng.random() < 0.7:
                    src, dst, dport, owner = client, edge.ip, 443, edge.owner
                else:
                    src, dst, dport, owner = edge.ip, rng.choice(EGRESS_TARGETS) + str(
                        rng.randrange(1, 255)), 443, edge.owner
            else:
                caller_app, callee_app = rng.choices(callers, edge_weights)[0]
                caller = _alive_at(estate, caller_app, t_ms, rng)
                callee = _alive_at(estate, callee_app, t_ms, rng)
                if caller is None or callee is None:
                    continue
                src, owner = caller.ip, caller.owner
                if r < scenario.internet_share + scenario.unowned_share:
                    dst, dport = f"10.250.{rng.randrange(0, 4)}.{rng.randrange(1, 255)}", APPS[callee_app][0]
                else:
                    dst, dport = callee.ip, APPS[callee_app][0]
            packets = rng.randrange(1, 200)
            line = _flow_line(owner["account"], owner["interface_id"], src, dst, sport, dport,
                              6, packets, packets * rng.randrange(60, 1500), start,
                              start + rng.randrange(0, 60), action)
            # AWS delivers a flow some minutes after it happened, in per-interval files.
            key = (owner["account"], owner["region"], minute * 60 // DELIVERY_SECONDS)
            per_file.setdefault(key, []).append((start, line))
            total += 1
    out = Generated(flows=total)
    flows_dir = os.path.join(out_dir, "flows")
    for (account, region, slot), lines in sorted(per_file.items()):
        lines.sort(key=lambda x: x[0])
        delivered = stamp(t0 + (slot + 1) * DELIVERY_SECONDS)
        if account == scenario.cloudwatch_account:
            events = [(str(rng.getrandbits(56)), start * 1000, line) for start, line in lines]
            path, _records = write_cloudwatch(flows_dir, account, region, delivered, events,
                                              log_stream="eni-demo-all", events_per_record=500,
                                              compresslevel=1)
        else:
            path = write_s3(flows_dir, account, region, delivered,
                            [line for _start, line in lines], flow_log="fl-0demo")
        out.flow_files.append(path)
    out.metadata_file = os.path.join(out_dir, "metadata", "changelog.jsonl")
    write_changelog(out.metadata_file, estate.ownership.changes,
                    snapshot_ts=(t0 - 3600) * 1000, start_ms=t0 * 1000,
                    end_ms=(t0 + scenario.minutes * 60) * 1000,
                    disorder_ms=scenario.metadata_disorder_seconds * 1000,
                    randbelow=lambda n: rng.randrange(0, n))
    out.changes = len(estate.ownership.changes)
    return out


def _holds_files(folder: str) -> bool:
    return any(files for _root, _dirs, files in os.walk(folder))


def _alive_at(estate, app, t_ms, rng):
    candidates = [i for i in estate.alive[app] if i.born <= t_ms]
    return rng.choice(candidates) if candidates else None


