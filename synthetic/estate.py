"""A synthetic AWS estate and its traffic, deterministic from a seed. Pure Python.

Apps run as ASGs of instances across regions and zones; instances are replaced during the run
and their IPs handed to other apps (the case that makes "owner now" wrong). Traffic follows a
dependency graph, with REJECTs, internet ingress and egress, IPv6, and flows to unowned private
addresses. Outputs, as AWS and a metadata publisher would write them:
- S3-style gzip flow-log files with a header line (AWSLogs/<account>/vpcflowlogs/<region>/...),
- CloudWatch Logs subscription records (gzip JSON, base64, one per line) for one account,
- the metadata changelog (JSON Lines): a snapshot of ASSIGNs, then changes, some delivered out
  of order within the metadata out-of-orderness bound, and HEARTBEATs.
"""
import json
import os
import random
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
REGIONS = {"us-east-1": ("us-east-1a", "us-east-1b", "us-east-1c"),
           "eu-west-1": ("eu-west-1a", "eu-west-1b")}
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


@dataclass
class Instance:
    ip: str
    app: str
    owner: dict
    born: int
    died: int = None


@dataclass
class Generated:
    flow_files: list = field(default_factory=list)
    metadata_file: str = ""
    flows: int = 0
    changes: int = 0


class _Estate:
    def __init__(self, scenario: Scenario, rng: random.Random):
        self.s, self.rng = scenario, rng
        self.next_host = 10
        self.free_ips = []     # released IPs, reused first (as AWS does within a subnet)
        self.alive = {app: [] for app in APPS}
        self.events = []       # (ts_ms, event dict)
        self.counter = 0
        self.home = {app: (ACCOUNTS[i % len(ACCOUNTS)], list(REGIONS)[(i // 2) % len(REGIONS)])
                     for i, app in enumerate(sorted(APPS))}

    def _new_ip(self, region):
        if self.free_ips and self.rng.random() < 0.7:
            return self.free_ips.pop(self.rng.randrange(len(self.free_ips)))
        self.next_host += 1
        r = list(REGIONS).index(region)
        return f"10.{r}.{self.next_host // 250}.{self.next_host % 250 + 1}"

    def launch(self, app, t_ms):
        account, region = self.home[app]
        self.counter += 1
        zone = self.rng.choice(REGIONS[region])
        ip = self._new_ip(region)
        owner = {"app": app, "cluster": f"{app}-prod", "asg": f"{app}-prod-v{self.counter % 3:03d}",
                 "account": account, "region": region, "zone": zone,
                 "interface_id": f"eni-{self.counter:017x}", "resource_id": f"i-{self.counter:017x}",
                 "kind": "instance"}
        inst = Instance(ip, app, owner, t_ms)
        self.alive[app].append(inst)
        self.events.append((t_ms, {"type": ASSIGN, "ts": t_ms, "ip": ip, **owner}))
        return inst

    def terminate(self, inst, t_ms):
        self.alive[inst.app].remove(inst)
        inst.died = t_ms
        self.free_ips.append(inst.ip)
        self.events.append((t_ms, {"type": UNASSIGN, "ts": t_ms, "ip": inst.ip}))


def _flow_line(account, eni, src, dst, sport, dport, proto, packets, nbytes, start, end, action):
    return (f"2 {account} {eni} {src} {dst} {sport} {dport} {proto} {packets} {nbytes} "
            f"{start} {end} {action} OK")


def generate(scenario: Scenario, out_dir: str) -> Generated:
    rng = random.Random(scenario.seed)
    estate = _Estate(scenario, rng)
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
            key = (owner["account"], owner["region"], minute // 5)
            per_file.setdefault(key, []).append((start, line))
            total += 1
    out = Generated(flows=total)
    flows_dir = os.path.join(out_dir, "flows")
    for (account, region, slot), lines in sorted(per_file.items()):
        lines.sort(key=lambda x: x[0])
        delivered = stamp(t0 + slot * 300 + 300)
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
    write_changelog(out.metadata_file, [(ts, json.dumps(event)) for ts, event in estate.events],
                    snapshot_ts=(t0 - 3600) * 1000, start_ms=t0 * 1000,
                    end_ms=(t0 + scenario.minutes * 60) * 1000,
                    disorder_ms=scenario.metadata_disorder_seconds * 1000,
                    randbelow=lambda n: rng.randrange(0, n))
    out.changes = len(estate.events)
    return out


def _alive_at(estate, app, t_ms, rng):
    candidates = [i for i in estate.alive[app] if i.born <= t_ms]
    return rng.choice(candidates) if candidates else None


