"""Inputs with known security facts, for tests/test_security.py.

Background: synthetic.estate's estate and traffic without instance churn (ownership is static, so
expectations need no time-aware lookup): known dependencies, internet ingress to edge-gateway,
egress, a few REJECTs. Crafted on top, in S3 flow-log files with tcp-flags (delivered with the
background files of the same five minutes) and changelog ASSIGNs:
- minutes 5-7: a new dependency billing -> search on 7443; the clients use ports 2000-2005,
  lower than the server's, so only tcp-flags (SYN / SYN-ACK) orient it right; then silence;
- minute 6: an internet port scan of two edge-gateway hosts, ports 1-60 (REJECT);
- minute 8: an internet sweep of port 22 over 24 owned and 6 unowned hosts (REJECT);
- minute 9: an internal (unattributed) port scan of a kafka host, ports 1000-1039, no flags;
- minute 10: a redis-cache instance sweeping port 3389 over 25 hosts (REJECT);
- minutes 7-9: a new search instance accepting internet traffic on 9200 (a port search never
  exposed); minutes 9-10: a new edge-gateway instance accepting it on 443 (a known port);
- minute 11: an internet server's answers (SYN-ACK) refused at a billing host on 12 of its
  ephemeral ports: REJECTed records from the server, counted in the direction logged.
"""
import json
import os
from dataclasses import dataclass, field

from flowdredge.synthetic.estate import Scenario, generate
from flowdredge.synthetic.formats import stamp, write_s3
from flowdredge.schemas.metadata import ASSIGN, HEARTBEAT, OWNER_FIELDS

WINDOW = 60
BACKGROUND = Scenario(minutes=14, flows_per_minute=200, instances_per_app=3,
                      churn_per_minute=0.0, reject_share=0.02, seed=23)
START = BACKGROUND.start
HEADER = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
          "bytes start end action log-status tcp-flags")
SYN_FIN, SYN_ACK_FIN, SYN, SYN_ACK = 3, 19, 2, 18

# The test's `security` config section: short warm-up and silence for a 14-minute run.
SECURITY = {"warmup_seconds": 240, "dependency_silence_seconds": 180,
            "reject_baseline_windows": 5, "reject_spike_factor": 3,
            "reject_spike_min_flows": 30, "scan_report_min_targets": 10,
            "port_scan_min_ports": 20, "port_scan_max_hosts": 3,
            "host_sweep_min_hosts": 20, "host_sweep_max_ports": 2, "evidence_samples": 5}

NEW_EDGE = ("billing", "search", 7443, 6)
NEW_EDGE_MINUTES = (5, 6, 7)
PORT_SCANNER = "198.18.6.6"
SWEEPER = "198.18.7.7"
INTERNAL_SCANNER = "10.0.250.9"
REFUSED_SERVER = "198.51.100.77"
REFUSED_PORTS = range(50100, 50112)
EXPOSED_SEARCH = ("10.0.9.50", "i-0000000exposedsearch")
EXPOSED_EDGE = ("10.0.9.51", "i-0000000exposededge0")


def minute(m: int) -> int:
    return START + m * WINDOW


@dataclass
class Alert:
    """A planted scan: the alert expected and its evidence (all its flows are REJECTed)."""
    event: str
    minute: int
    src_addr: str
    src_app: str
    hosts: int
    ports: int
    flows: int
    target_apps: str


@dataclass
class Built:
    flows_dir: str
    metadata_file: str
    owners: dict                      # ip -> (app, resource_id)
    scan_alerts: list = field(default_factory=list)   # the Alerts planted


def _line(start, src, dst, sport, dport, action, flags, packets=3, nbytes=180):
    return (f"2 123456789012 eni-0crafted {src} {dst} {sport} {dport} 6 {packets} {nbytes} "
            f"{start} {start + 1} {action} OK {'-' if flags is None else flags}")


def _instances(snapshot):
    """app -> [(ip, owner dict)] in snapshot order."""
    by_app = {}
    for e in snapshot:
        by_app.setdefault(e["app"], []).append((e["ip"], e))
    return by_app


def build(folder: str) -> Built:
    generated = generate(BACKGROUND, folder)
    with open(generated.metadata_file, encoding="utf-8") as fh:
        changelog = [json.loads(line) for line in fh]
    snapshot = [e for e in changelog if e["type"] == ASSIGN]
    apps = _instances(snapshot)
    owners = {e["ip"]: (e["app"], e["resource_id"]) for e in snapshot}
    built = Built(os.path.join(folder, "flows"), generated.metadata_file, owners)
    lines = []   # (start, line)

    def add(m, offset, *args, **kwargs):
        start = minute(m) + offset
        lines.append((start, _line(start, *args, **kwargs)))

    # New dependency, both directions of short connections.
    billing, search = apps["billing"], apps["search"]
    for m in NEW_EDGE_MINUTES:
        for i in range(6):
            client, server = billing[i % 3][0], search[i % 2][0]
            add(m, 5 + i, client, server, 2000 + i, 7443, "ACCEPT", SYN_FIN, 10, 1500)
            add(m, 5 + i, server, client, 7443, 2000 + i, "ACCEPT", SYN_ACK_FIN, 8, 4000)

    edge_hosts = [ip for ip, _ in apps["edge-gateway"][:2]]
    for n, host in enumerate(edge_hosts):
        for port in range(1, 61):
            add(6, n, PORT_SCANNER, host, 40000, port, "REJECT", SYN)
    built.scan_alerts.append(Alert("port_scan", 6, PORT_SCANNER, "internet", 2, 60, 120,
                                   "edge-gateway"))

    owned = [e["ip"] for e in snapshot]
    sweep = owned[:24] + [f"10.0.200.{i}" for i in range(1, 7)]
    for n, host in enumerate(sweep):
        add(8, n, SWEEPER, host, 41000, 22, "REJECT", SYN)
    built.scan_alerts.append(Alert("host_sweep", 8, SWEEPER, "internet", 30, 1, 30, ",".join(
        sorted({owners[h][0] for h in owned[:24]} | {"unattributed"}))))

    kafka_host = apps["kafka"][0][0]
    for port in range(1000, 1040):
        add(9, port % 50, INTERNAL_SCANNER, kafka_host, 45000, port, "REJECT", None)
    built.scan_alerts.append(Alert("port_scan", 9, INTERNAL_SCANNER, "unattributed", 1, 40, 40,
                                   "kafka"))

    sweeper = apps["redis-cache"][0][0]
    targets = [ip for ip in owned if owners[ip][0] != "redis-cache"][:25]
    for n, host in enumerate(targets):
        add(10, n, sweeper, host, 46000, 3389, "REJECT", SYN)
    built.scan_alerts.append(Alert("host_sweep", 10, sweeper, "redis-cache", 25, 1, 25,
                                   ",".join(sorted({owners[h][0] for h in targets}))))

    for n, port in enumerate(REFUSED_PORTS):
        add(11, n, REFUSED_SERVER, billing[0][0], 443, port, "REJECT", SYN_ACK)

    new_owners = []
    for (ip, resource), app, assigned_at, minutes, port, client_net in (
            (EXPOSED_SEARCH, "search", minute(4) + 30, (7, 8, 9), 9200, "198.19.1."),
            (EXPOSED_EDGE, "edge-gateway", minute(8) + 10, (9, 10), 443, "198.19.2.")):
        template = apps[app][0][1]
        owner = {**{k: template[k] for k in OWNER_FIELDS}, "resource_id": resource,
                 "interface_id": "eni-" + resource[2:], "asg": f"{app}-prod-v009"}
        new_owners.append({"type": ASSIGN, "ts": assigned_at * 1000, "ip": ip, **owner})
        owners[ip] = (app, resource)
        clients = 5 if app == "search" else 4
        for m in minutes:
            for c in range(clients):
                add(m, 20 + c, f"{client_net}{c + 1}", ip, 50000 + c, port, "ACCEPT", SYN_FIN,
                    12, 2400)

    _write_flow_files(built.flows_dir, lines)
    _write_changelog(generated.metadata_file, changelog, new_owners)
    return built


def _write_flow_files(flows_dir, lines):
    """One S3 file per five minutes, stamped like synthetic.estate's files of those minutes so the
    replay delivers them together (later files would be late)."""
    slots = {}
    for start, line in lines:
        slots.setdefault((start - START) // 300, []).append((start, line))
    for slot, slot_lines in slots.items():
        write_s3(flows_dir, "123456789012", "us-east-1", stamp(START + slot * 300 + 300),
                 [line for _start, line in sorted(slot_lines)], flow_log="fl-0crafted",
                 header=HEADER)


def _write_changelog(path, changelog, new_owners):
    """Each ASSIGN goes before the first HEARTBEAT that covers its ts (a heartbeat promises
    every change up to its ts has been sent)."""
    out = []
    pending = sorted(new_owners, key=lambda e: e["ts"])
    for event in changelog:
        while pending and event["type"] == HEARTBEAT and event["ts"] >= pending[0]["ts"]:
            out.append(pending.pop(0))
        out.append(event)
    out.extend(pending)
    with open(path, "w", encoding="utf-8") as fh:
        for event in out:
            fh.write(json.dumps(event) + "\n")
