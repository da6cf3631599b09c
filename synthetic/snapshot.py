"""The ownership of a large estate, for the state benchmarks (bench.state, bench.streaming
--extra-ips): N private IPs, a changelog snapshot of one ASSIGN each, and S3 flow-log files of
flows between them. Deterministic from the numpy random generator passed in.

The estate's shape without its history: owners as synthetic.estate.owner() names them (the
changelog contract's fields, in order), but nobody is launched or replaced, so there is no
address pool; drawn as numpy vectors and written by hand (a million ASSIGNs in seconds), with
its own accounts, random ENI ids and a single HEARTBEAT, as the state benchmarks have always read.
"""

from flowdredge.synthetic.estate import ZONES
from flowdredge.synthetic.formats import stamp, write_s3

T0_MS = 1_767_225_600_000            # 2026-01-01 00:00 UTC: the snapshot's ts
FLOW_START_S = T0_MS // 1000 + 60    # flows start a minute after the snapshot
HEARTBEAT_TS = T0_MS + 15 * 60_000   # past every flow: they need not wait for metadata
ACCOUNTS = ("111111111111", "222222222222", "333333333333", "444444444444", "555555555555",
            "666666666666")
REGIONS = tuple(ZONES)
KINDS = ("instance", "instance", "instance", "instance", "load_balancer", "lambda")


def private_ips(n: int, rng) -> list:
    """n distinct private IPv4 addresses in 10.0.0.0/8 (hosts .1 to .254)."""
    hosts = rng.choice(1 << 24, size=min(2 * n, 1 << 24), replace=False)
    hosts = hosts[(hosts & 0xFF != 0) & (hosts & 0xFF != 255)][:n]
    if len(hosts) < n:
        raise SystemExit(f"--ips {n}: more than 10.0.0.0/8 holds")
    return [f"10.{h >> 16}.{(h >> 8) & 255}.{h & 255}" for h in hosts.tolist()]


def write_snapshot(path: str, ips: list, rng, apps: int = 2000) -> None:
    """One ASSIGN per IP at T0_MS, owners drawn from `apps` apps with Zipf-skewed sizes, then a
    HEARTBEAT at HEARTBEAT_TS. The JSON is written by hand: json.dumps takes three times as long
    a line, seconds for a million."""
    import numpy as np
    n = len(ips)
    app = np.minimum(rng.zipf(1.3, n), apps) - 1
    account = rng.integers(0, len(ACCOUNTS), n)
    region = app % len(REGIONS)
    zone = rng.integers(0, 3, n)
    asg = app * 7 % 40
    kind = rng.integers(0, len(KINDS), n)
    eni = rng.integers(0, 1 << 60, n)
    res = rng.integers(0, 1 << 60, n)
    with open(path, "w", encoding="utf-8") as out:
        for i, ip in enumerate(ips):
            a, r = int(app[i]), REGIONS[int(region[i])]
            out.write(
                f'{{"type":"ASSIGN","ts":{T0_MS},"ip":"{ip}","app":"app-{a:04d}",'
                f'"cluster":"app-{a:04d}-prod","asg":"app-{a:04d}-prod-v{int(asg[i]):03d}",'
                f'"account":"{ACCOUNTS[int(account[i])]}","region":"{r}",'
                f'"zone":"{r}{"abc"[int(zone[i])]}","interface_id":"eni-{int(eni[i]):017x}",'
                f'"resource_id":"i-{int(res[i]):017x}","kind":"{KINDS[int(kind[i])]}"}}\n')
        out.write(f'{{"type":"HEARTBEAT","ts":{HEARTBEAT_TS}}}\n')


def write_flows(flows_dir: str, ips: list, flows: int, rng, files: int = 4) -> None:
    """S3 delivery files of flows between the IPs, one file per minute from FLOW_START_S."""
    per_file = flows // files
    for f in range(files):
        start = FLOW_START_S + 60 * f
        src = rng.integers(0, len(ips), per_file)
        dst = rng.integers(0, len(ips), per_file)
        sport = rng.integers(32768, 61000, per_file)
        dport = rng.choice([443, 80, 5432, 6379, 9042], per_file)
        packets = rng.integers(1, 200, per_file)
        offset = rng.integers(0, 55, per_file)
        lines = []
        for i in range(per_file):
            s = start + int(offset[i])
            lines.append(f"2 {ACCOUNTS[0]} eni-0bench{i % 97:07d} {ips[int(src[i])]} "
                         f"{ips[int(dst[i])]} {int(sport[i])} {int(dport[i])} 6 "
                         f"{int(packets[i])} {int(packets[i]) * 900} {s} {s + 5} ACCEPT OK")
        write_s3(flows_dir, ACCOUNTS[0], REGIONS[0], stamp(start + 300), lines,
                 flow_log="fl-0bench", part=f)
