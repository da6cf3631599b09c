"""The decisions of the security and dependency views. Pure Python (no pyflink).

job.flink.security runs these inside Flink; docs/security.md states the rules for users.
"""
import ipaddress
import json
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

from schemas.fields import Schema
from schemas.security import HOST_SWEEP, INTERNET, PORT_SCAN, RISK_FACTORS, UNATTRIBUTED

UNOWNED_APPS = (INTERNET, UNATTRIBUTED)

# AWS's tcp-flags field: FIN 1, SYN 2, RST 4, SYN-ACK 18 (ACK only ever appears with SYN),
# ORed over the aggregation interval.
SYN = 2
ACK = 16
WELL_KNOWN_PORTS = 1024


# --- configuration values (validated in job.config) ------------------------------------------

def parse_ports(text: str) -> frozenset:
    """"22,443,8080" -> {22, 443, 8080}; ValueError names the bad item."""
    ports = set()
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if not item.isdigit() or not 0 <= int(item) <= 65535:
            raise ValueError(f"not a port: {item!r}")
        ports.add(int(item))
    return frozenset(ports)


def parse_factors(text: str) -> dict:
    """"exposed_ports=30,dependencies=5" -> {factor: int} over RISK_FACTORS (absent ones 0)."""
    values = dict.fromkeys(RISK_FACTORS, 0)
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in values:
            raise ValueError(f"unknown risk factor {name!r}; known: {', '.join(RISK_FACTORS)}")
        if not value.strip().isdigit():
            raise ValueError(f"{name}: expected a non-negative integer, got {value.strip()!r}")
        values[name] = int(value)
    return values


# --- who is the client -----------------------------------------------------------------------

def client_is_source(src_port, dst_port, tcp_flags, service_ports: frozenset) -> bool:
    """Whether the source end of a flow record opened the connection.

    In order, the first rule that decides:
    1. tcp-flags: SYN-ACK means the source answered (server); SYN without ACK means it opened.
    2. configured service ports: the end whose port is listed is the server.
    3. well-known ports: the end whose port is below 1024 is the server.
    4. the lower port is the server's; equal or missing ports: the record's direction.
    """
    if tcp_flags:
        if tcp_flags & ACK:
            return False
        if tcp_flags & SYN:
            return True
    if src_port is None or dst_port is None:
        return True
    src_listed, dst_listed = src_port in service_ports, dst_port in service_ports
    if src_listed != dst_listed:
        return dst_listed
    src_known, dst_known = src_port < WELL_KNOWN_PORTS, dst_port < WELL_KNOWN_PORTS
    if src_known != dst_known:
        return dst_known
    return dst_port <= src_port


def source_class(src_app: str, dst_app: str) -> str:
    if src_app in UNOWNED_APPS:
        return src_app
    return "same_app" if src_app == dst_app else "other_app"


# --- event time ------------------------------------------------------------------------------

def warmed_up(window_start: int, first_window: int, warmup_seconds: int) -> bool:
    """Events (new_dependency, exposure_new) start once the warm-up has passed since the first
    window the job saw: before that every edge would look new."""
    return first_window is not None and window_start >= first_window + warmup_seconds


def silence_deadline(last_seen: int, window_seconds: int, silence_seconds: int) -> int:
    """Epoch seconds at which a key last seen in the window starting at last_seen has been
    silent for silence_seconds."""
    return last_seen + window_seconds + silence_seconds


class Edge(NamedTuple):
    """What is kept of a known dependency edge."""
    client_app: str
    server_app: str
    port: int
    protocol: int
    first_seen: int
    last_seen: int
    flows: int
    bytes: int

    def seen(self, window_start: int, flows: int, nbytes: int) -> "Edge":
        return self._replace(last_seen=max(self.last_seen, window_start),
                             flows=self.flows + flows, bytes=self.bytes + nbytes)


class Seen(NamedTuple):
    """First and last windows a resource accepted internet traffic on a port."""
    first_seen: int
    last_seen: int


# --- rejected traffic ------------------------------------------------------------------------

def top(counts: Counter, n: int) -> str:
    """"key=count,..." with the n largest counts, ties by key."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:n]
    return ",".join(f"{k}={v}" for k, v in ranked)


def port_label(port, protocol) -> str:
    return f"{'-' if port is None else port}/{'-' if protocol is None else protocol}"


@dataclass(frozen=True)
class RejectSource:
    """REJECTed flows of one window from one source address to one port of the app."""
    port: int
    protocol: int
    src_app: str
    src_addr: str
    flows: int
    packets: int
    bytes: int


def reject_rows(window_start: int, app: str, sources, top_n: int, spike: bool) -> list:
    """schemas.security.REJECTED rows: one per port, protocol and source class."""
    sources = list(sources)
    app_total = sum(s.flows for s in sources)
    groups = {}
    for s in sources:
        groups.setdefault((s.port, s.protocol, source_class(s.src_app, app)), []).append(s)
    rows = []
    for (port, protocol, klass), members in groups.items():
        by_addr = Counter()
        for s in members:
            by_addr[s.src_addr] += s.flows
        rows.append((window_start, app, port, protocol, klass,
                     sum(s.flows for s in members), sum(s.packets for s in members),
                     sum(s.bytes for s in members), len(by_addr),
                     ",".join(sorted({s.src_app for s in members})), top(by_addr, top_n),
                     app_total, int(spike)))
    return rows


def spike_evidence(sources, n: int):
    """(top ports, top source addresses) of a window's REJECTs."""
    ports, addrs = Counter(), Counter()
    for s in sources:
        ports[port_label(s.port, s.protocol)] += s.flows
        addrs[s.src_addr] += s.flows
    return top(ports, n), top(addrs, n)


def reject_baseline(history: dict, window_start: int, first_window: int, window_seconds: int,
                    windows: int):
    """(REJECTed flows, windows) over the up to `windows` windows before window_start since
    the job's first window; history maps window start -> flows (absent windows had none)."""
    since = max(first_window, window_start - windows * window_seconds)
    n = max(0, (window_start - since) // window_seconds)
    return sum(v for w, v in history.items() if since <= w < window_start), n


def is_spike(flows: int, baseline_flows: int, baseline_windows: int, factor: int,
             min_flows: int) -> bool:
    """More than factor x the baseline mean, and at least min_flows; no baseline, no spike."""
    return (baseline_windows > 0 and flows >= min_flows
            and flows * baseline_windows > factor * baseline_flows)


# --- scans -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScanRules:
    port_scan_min_ports: int
    port_scan_max_hosts: int
    host_sweep_min_hosts: int
    host_sweep_max_ports: int
    min_reject_percent: int
    evidence_samples: int


def reject_percent(rejected: int, flows: int) -> int:
    return rejected * 100 // flows if flows else 0


def classify_scan(hosts: int, ports: int, reject_pct: int, rules: ScanRules):
    """port_scan: many ports on few hosts; host_sweep: few ports on many hosts; else None."""
    if reject_pct < rules.min_reject_percent:
        return None
    if ports >= rules.port_scan_min_ports and hosts <= rules.port_scan_max_hosts:
        return PORT_SCAN
    if hosts >= rules.host_sweep_min_hosts and ports <= rules.host_sweep_max_ports:
        return HOST_SWEEP
    return None


def _address_order(text):
    addr = ipaddress.ip_address(text)
    return addr.version, int(addr)


def scan_evidence(src_addr, src_app, hosts, ports, flows, rejected, target_apps, host_list,
                  port_list, samples: int) -> tuple:
    """The fields of schemas.security._SCAN_EVIDENCE from one SQL candidate row."""
    host_items = sorted((h for h in (host_list or "").split(",") if h), key=_address_order)
    port_items = sorted(int(p) for p in (port_list or "").split(",") if p)
    return (src_addr, src_app, hosts, ports, flows, rejected, reject_percent(rejected, flows),
            ",".join(sorted(a for a in (target_apps or "").split(",") if a)),
            port_items[0] if port_items else None, port_items[-1] if port_items else None,
            ",".join(host_items[:samples]), ",".join(map(str, port_items[:samples])))


def scanned_apps(target_apps: str) -> list:
    """The owned apps a scan reached (risk factor scan_sources)."""
    return sorted(a for a in set((target_apps or "").split(",")) if a and a not in UNOWNED_APPS)


# --- risk ------------------------------------------------------------------------------------

def risk_score(values: dict, weights: dict, scales: dict):
    """(score 0..100, "factor=points,...") where each factor with a weight adds
    weight * min(1, value / scale), normalised so all weights at full scale make 100."""
    total = sum(weights.values())
    points = {f: 100 * w * min(1.0, values[f] / scales[f]) / total
              for f, w in weights.items() if w and values.get(f)}
    ranked = sorted(points.items(), key=lambda kv: (-kv[1], kv[0]))
    return round(sum(points.values())), ",".join(
        f"{f}={round(p)}" for f, p in ranked if round(p))


# --- output ----------------------------------------------------------------------------------

def json_line(schema: Schema, values) -> str:
    return json.dumps(dict(zip(schema.names, values)), separators=(",", ":"))


def event_line(schema: Schema, time: int, values) -> str:
    return json_line(schema, (schema.name, time) + tuple(values))
