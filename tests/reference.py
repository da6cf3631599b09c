"""An independent computation of the contract (issue #2), for tests.

Deliberately shares no code with `job`: it reads the input files itself and finds owners by
brute force over all changelog events, so a bug in the job's index or parser cannot hide here.
"""
import base64
import gzip
import ipaddress
import json
import os
from collections import defaultdict

# Unowned addresses that are not internet peers; loopback reaches an interface only in spoofed
# or broken packets, which name no internet host either.
PRIVATE = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128")]


def _read_bytes(path):
    with open(path, "rb") as fh:
        data = fh.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def flow_lines(paths):
    """Yields dicts (field name -> raw string) for every flow line in the inputs."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += [os.path.join(r, f) for r, _d, fs in os.walk(p) for f in fs]
        else:
            files.append(p)
    for path in sorted(files):
        text = _read_bytes(path).decode()
        if text.lstrip().startswith("{"):
            yield from _envelope_lines(json.loads(text))
            continue
        rows = [line for line in text.split("\n") if line.strip()]
        if rows and " " not in rows[0].strip():
            for row in rows:
                yield from _envelope_lines(json.loads(gzip.decompress(base64.b64decode(row))))
        else:
            header = rows[0].split()
            for row in rows[1:]:
                yield dict(zip(header, row.split()))


DEFAULT = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
           "bytes start end action log-status").split()


def _envelope_lines(envelope):
    if envelope["messageType"] != "DATA_MESSAGE":
        return
    for event in envelope["logEvents"]:
        yield dict(zip(DEFAULT, event["message"].split()))


def metadata_events(paths):
    # ip, or (vpc_id, ip) for a VPC_ASSIGN / VPC_UNASSIGN -> [(ts, rank, arrival, owner|None)]
    events = defaultdict(list)
    arrival = 0
    for path in paths:
        for line in _read_bytes(path).decode().splitlines():
            if not line.strip():
                continue
            e = json.loads(line)
            arrival += 1
            # The job's own names for ends without an owner end the IP's owner instead.
            reserved = e.get("app") in ("internet", "unattributed") \
                or str(e.get("app")).startswith("aws:")
            kind = e["type"].removeprefix("VPC_")
            key = str(ipaddress.ip_address(e["ip"])) if kind in ("ASSIGN", "UNASSIGN") else None
            if e["type"].startswith("VPC_"):
                key = (e["vpc_id"], key)
            if kind == "ASSIGN" and not reserved:
                owner = {k: e.get(k) or "-" for k in ("app", "cluster", "asg", "account",
                                                      "region", "zone")}
                events[key].append((e["ts"], 1, arrival, owner))
            elif kind in ("UNASSIGN", "ASSIGN"):
                events[key].append((e["ts"], 0, arrival, None))
    return events


def interface_vpcs(paths):
    """{interface_id: the VPC its VPC_ASSIGNs, and its ASSIGNs' interface_vpc_id, name it in},
    for those named in one VPC only."""
    vpcs = defaultdict(set)
    for path in paths:
        for line in _read_bytes(path).decode().splitlines():
            e = json.loads(line) if line.strip() else {}
            reserved = e.get("app") in ("internet", "unattributed") \
                or str(e.get("app")).startswith("aws:")
            vpc = {"VPC_ASSIGN": e.get("vpc_id"), "ASSIGN": e.get("interface_vpc_id")}.get(
                e.get("type"))
            if vpc not in (None, "", "-") and not reserved \
                    and e.get("interface_id") not in (None, "", "-"):
                vpcs[e["interface_id"]].add(vpc)
    return {interface: vpc for interface, (vpc, *others) in vpcs.items() if not others}


def owner_at(events, ip, t_ms, vpc_id="-"):
    """The owner of `ip` at `t_ms`: its own, else its VPC claim's in the flow's VPC `vpc_id`."""
    for key in (ip, (vpc_id, ip)):
        candidates = [e for e in events.get(key, ()) if e[0] <= t_ms]
        if candidates:
            latest = max(candidates, key=lambda e: (e[0], e[1], e[2]))
            if latest[3] is not None:
                return latest[3]
    addr = ipaddress.ip_address(ip)
    app = "unattributed" if any(addr in n for n in PRIVATE if n.version == addr.version) \
        else "internet"
    return {"app": app, "region": "-"}


def aggregates(flow_paths, metadata_paths, window_seconds=60, exclude=lambda flow: False,
               owner=None):
    """{(window_start, src_app, src_region, dst_app, dst_region, dst_port, protocol, action):
    (flows, packets, bytes)} over all lines with traffic. `owner`: another rule than owner_at
    (tests show a wrong one gives other rows)."""
    events = metadata_events(metadata_paths)
    vpc_of_interface = interface_vpcs(metadata_paths)
    find_owner = owner_at if owner is None else (lambda ev, ip, t, _vpc: owner(ev, ip, t))
    out = defaultdict(lambda: [0, 0, 0])
    for f in flow_lines(flow_paths):
        if f.get("log-status") in ("NODATA", "SKIPDATA") or exclude(f):
            continue
        start = int(f["start"])
        vpc = f.get("vpc-id", "-")
        if vpc == "-":   # the line's interface's VPC, as the VPC claims name it
            vpc = vpc_of_interface.get(f.get("interface-id"), "-")
        src = find_owner(events, f.get("pkt-srcaddr", "-") if f.get("pkt-srcaddr", "-") != "-"
                         else f["srcaddr"], start * 1000, vpc)
        dst = find_owner(events, f.get("pkt-dstaddr", "-") if f.get("pkt-dstaddr", "-") != "-"
                         else f["dstaddr"], start * 1000, vpc)
        num = lambda k: None if f.get(k, "-") == "-" else int(f[k])  # noqa: E731
        key = (start - start % window_seconds, src["app"], src["region"], dst["app"],
               dst["region"], num("dstport"), num("protocol"),
               None if f.get("action", "-") == "-" else f["action"])
        sums = out[key]
        sums[0] += 1
        sums[1] += num("packets") or 0
        sums[2] += num("bytes") or 0
    return {k: tuple(v) for k, v in out.items()}
