"""The security and dependency views on the mini-cluster (tests/security_scenario.py): every
alert where the scenario put it and nowhere else, and the windowed views equal to what the input
lines say."""
import gzip
from collections import Counter, defaultdict

import pytest

import reference
import security_scenario as sc
from helpers import job_aggregates, read_records, run_replay, total_counts
from flowdredge.job.config import Config
from flowdredge.schemas.security import UNOWNED_APPS

pytestmark = pytest.mark.minicluster


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return sc.build(str(tmp_path_factory.mktemp("security-inputs")))


# Every view at parallelism 1 and 2: broadcast and keyed state bugs hide at 1.
@pytest.fixture(scope="module", params=[1, 2], ids=["p1", "p2"])
def config(request):
    return Config().replace(job={"parallelism": request.param, "checkpoint_interval_seconds": 2},
                            outputs={"security": True, "enriched": False},
                            security=sc.SECURITY)


@pytest.fixture(scope="module")
def output(scenario, config, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("security-run"))
    run_replay([scenario.flows_dir], [scenario.metadata_file], folder, config)
    return folder


@pytest.fixture(scope="module")
def expected(scenario):
    """The views computed from the input lines by simple rules that hold for this scenario
    (background clients use ephemeral ports above the service port; crafted flows carry
    tcp-flags); owners are static but for the two crafted instances, which get traffic only
    after their ASSIGN."""
    views = defaultdict(Counter)
    egress_destinations = defaultdict(set)
    for f in reference.flow_lines([scenario.flows_dir]):
        window = int(f["start"]) - int(f["start"]) % sc.WINDOW
        src, dst = _owner(scenario, f["srcaddr"]), _owner(scenario, f["dstaddr"])
        sport, dport, proto = int(f["srcport"]), int(f["dstport"]), int(f["protocol"])
        flags = None if f.get("tcp-flags", "-") == "-" else int(f["tcp-flags"])
        client_is_src = not flags & 16 if flags else sport >= dport
        (client, caddr), (server, saddr, port) = (
            ((src, f["srcaddr"]), (dst, f["dstaddr"], dport)) if client_is_src
            else ((dst, f["dstaddr"]), (src, f["srcaddr"], sport)))
        nbytes = int(f["bytes"])
        if f["action"] == "REJECT":
            views["rejected"][(window, dst[0], dport, proto, _class(src[0], dst[0]))] += 1
            views["rejected_by_app"][(dst[0], window)] += 1
        if f["action"] == "ACCEPT" and _owned(client[0]) and _owned(server[0]):
            views["dependencies"][(window, client[0], server[0], port, proto)] += 1
        if f["action"] == "ACCEPT" and client[0] == "internet" and _owned(server[0]):
            views["exposure"][(window, server[0], server[1], port, proto)] += 1
        if server[0] == "internet" and client[0] != "internet":
            key = (window, client[0], port, proto, f["action"])
            views["egress"][key] += 1
            views["egress_bytes_sent"][key] += nbytes if client_is_src else 0
            egress_destinations[key].add(saddr)
    views["egress_destinations"] = {k: len(v) for k, v in egress_destinations.items()}
    return views


def _owner(scenario, ip):
    return scenario.owners.get(ip) or (reference.owner_at({}, ip, 0)["app"], "-")


def _owned(app):
    return app not in UNOWNED_APPS


def _class(src_app, dst_app):
    if src_app in UNOWNED_APPS:
        return src_app
    return "same_app" if src_app == dst_app else "other_app"


def _events(output, *kinds):
    return [e for e in read_records(output, "security_events") if e["event"] in kinds]


def test_every_flow_is_aggregated_on_time(scenario, output):
    counts = total_counts(output)
    assert counts["flows_late"] == 0 and counts["dead_letter"] == 0
    assert counts["flows_aggregated"] == sum(v[0] for v in job_aggregates(output).values())
    assert counts["flows_aggregated"] == sum(1 for _ in reference.flow_lines([scenario.flows_dir]))


def test_scan_alerts_exactly_where_expected(scenario, output):
    alerts = {(a["event"], a["time"], a["src_addr"]): a
              for a in _events(output, "port_scan", "host_sweep")}
    assert set(alerts) == {(x.event, sc.minute(x.minute), x.src_addr)
                           for x in scenario.scan_alerts}
    for x in scenario.scan_alerts:
        a = alerts[(x.event, sc.minute(x.minute), x.src_addr)]
        assert (a["src_app"], a["hosts"], a["ports"], a["flows"], a["rejected_flows"],
                a["reject_percent"], a["target_apps"]) == (
            x.src_app, x.hosts, x.ports, x.flows, x.flows, 100, x.target_apps)
    port_scan = alerts[("port_scan", sc.minute(6), sc.PORT_SCANNER)]
    assert (port_scan["min_port"], port_scan["max_port"], port_scan["ports_sample"]) == (
        1, 60, "1,2,3,4,5")
    assert len(port_scan["hosts_sample"].split(",")) == 2

    scans = list(read_records(output, "scans"))
    assert {(s["pattern"], s["window_start"], s["src_addr"]) for s in scans if s["pattern"]} \
        == set(alerts)
    assert any(not s["pattern"] for s in scans), "busy normal sources are reported unflagged"


def test_refused_answers_count_in_the_direction_logged(output):
    """REJECTed records from a server go to its client's ephemeral ports: the scans row of the
    server shows those ports (rejected and internet_egress: test_windowed_views_equal_the_input)."""
    rows = [(r["window_start"], r["src_app"], r["hosts"], r["ports"], r["flows"],
             r["rejected_flows"], r["min_port"], r["max_port"], r["pattern"])
            for r in read_records(output, "scans") if r["src_addr"] == sc.REFUSED_SERVER]
    assert rows == [(sc.minute(11), "internet", 1, len(sc.REFUSED_PORTS), len(sc.REFUSED_PORTS),
                     len(sc.REFUSED_PORTS), sc.REFUSED_PORTS[0], sc.REFUSED_PORTS[-1], "")]


def test_dependency_events(output):
    client, server, port, protocol = sc.NEW_EDGE
    first, last = sc.minute(sc.NEW_EDGE_MINUTES[0]), sc.minute(sc.NEW_EDGE_MINUTES[-1])
    assert _events(output, "new_dependency") == [{
        "event": "new_dependency", "time": first, "client_app": client, "server_app": server,
        "port": port, "protocol": protocol, "first_seen": first,
        "flows": 12, "packets": 6 * 10 + 6 * 8, "bytes": 6 * 1500 + 6 * 4000,
        "clients": 3, "servers": 2}]
    silence = sc.SECURITY["dependency_silence_seconds"]
    assert _events(output, "dependency_gone") == [{
        "event": "dependency_gone", "time": last + sc.WINDOW + silence,
        "client_app": client, "server_app": server, "port": port, "protocol": protocol,
        "first_seen": first, "last_seen": last, "flows": 36, "bytes": 3 * 6 * 5500}]


def test_exposure_events(output):
    events = sorted(_events(output, "exposure_new"), key=lambda e: e["time"])
    assert events == [
        {"event": "exposure_new", "time": sc.minute(7), "app": "search",
         "resource": sc.EXPOSED_SEARCH[1], "port": 9200, "protocol": 6, "flows": 5,
         "internet_clients": 5, "app_port_known": 0},
        {"event": "exposure_new", "time": sc.minute(9), "app": "edge-gateway",
         "resource": sc.EXPOSED_EDGE[1], "port": 443, "protocol": 6, "flows": 4,
         "internet_clients": 4, "app_port_known": 1}]


def test_reject_spikes(output, expected):
    rejected = expected["rejected_by_app"]
    windows = sc.SECURITY["reject_baseline_windows"]
    spikes = {(e["app"], e["time"]): e for e in _events(output, "reject_spike")}
    assert set(spikes) == {("edge-gateway", sc.minute(6)), ("kafka", sc.minute(9))}
    for (app, time), spike in spikes.items():
        window = (time - sc.START) // sc.WINDOW
        baseline = sum(rejected[(app, sc.minute(m))] for m in range(window - windows, window))
        assert (spike["rejected_flows"], spike["baseline_flows"], spike["baseline_windows"]) \
            == (rejected[(app, time)], baseline, windows)
    assert spikes[("edge-gateway", sc.minute(6))]["top_sources"].startswith(
        f"{sc.PORT_SCANNER}=120")
    assert spikes[("kafka", sc.minute(9))]["top_sources"].startswith(
        f"{sc.INTERNAL_SCANNER}=40")


def test_windowed_views_equal_the_input(output, expected):
    def sums(name, key_fields, value="flows"):
        out = {}
        for r in read_records(output, name):
            key = tuple(r[k] for k in key_fields)
            assert key not in out, f"{name}: row emitted twice: {key}"
            out[key] = r[value]
        return out

    assert sums("dependencies", ("window_start", "client_app", "server_app", "port",
                                 "protocol")) == expected["dependencies"]
    assert sums("exposure", ("window_start", "app", "resource", "port", "protocol")) \
        == expected["exposure"]
    egress_key = ("window_start", "app", "port", "protocol", "action")
    assert sums("internet_egress", egress_key) == expected["egress"]
    assert sums("internet_egress", egress_key, "bytes_sent") == expected["egress_bytes_sent"]
    assert sums("internet_egress", egress_key, "destinations") == \
        expected["egress_destinations"]
    rejected = sums("rejected", ("window_start", "app", "port", "protocol", "source_class"))
    assert rejected == expected["rejected"]


def test_rejected_rows_show_top_sources_and_spikes(output):
    rows = [r for r in read_records(output, "rejected")
            if r["app"] == "edge-gateway" and r["window_start"] == sc.minute(6)
            and r["source_class"] == "internet" and r["port"] == 1]
    assert len(rows) == 1
    assert (rows[0]["flows"], rows[0]["sources"], rows[0]["top_sources"], rows[0]["spike"]) == (
        2, 1, f"{sc.PORT_SCANNER}=2", 1)
    assert {r["spike"] for r in read_records(output, "rejected")
            if (r["app"], r["window_start"]) not in (("edge-gateway", sc.minute(6)),
                                                     ("kafka", sc.minute(9)))} == {0}


# security.risk_weights and risk_scales by default (docs/security.md): factor -> (weight,
# scale). The weights add up to 100, so a factor's points are weight * min(1, value / scale).
RISK = {"exposed_ports": (30, 3), "rejected_flows": (15, 100), "scan_sources": (20, 2),
        "egress_bytes": (20, 100_000_000), "dependencies": (5, 10), "dependents": (10, 10)}


def _risk(values):
    """(score, score_parts) as docs/security.md defines them."""
    points = {name: weight * min(1, values[name] / scale)
              for name, (weight, scale) in RISK.items() if values[name]}
    ranked = sorted(points.items(), key=lambda kv: (-kv[1], kv[0]))
    return round(sum(points.values())), ",".join(
        f"{name}={round(p)}" for name, p in ranked if round(p))


def test_risk_factors_per_app_and_window(scenario, output, expected):
    factors = defaultdict(lambda: {"exposed": set(), "rejected_flows": 0, "scan_sources": 0,
                                   "egress_bytes": 0, "dependencies": set(),
                                   "dependents": set()})
    for (w, app, _resource, port, proto), _n in expected["exposure"].items():
        factors[(w, app)]["exposed"].add(f"{port}/{proto}")
    for (app, w), n in expected["rejected_by_app"].items():
        if _owned(app):
            factors[(w, app)]["rejected_flows"] += n
    for (w, app, *_rest), n in expected["egress_bytes_sent"].items():
        if _owned(app):
            factors[(w, app)]["egress_bytes"] += n
    for w, client, server, port, proto in expected["dependencies"]:
        factors[(w, client)]["dependencies"].add((server, port, proto))
        factors[(w, server)]["dependents"].add(client)
    for alert in scenario.scan_alerts:
        for app in alert.target_apps.split(","):
            if _owned(app):
                factors[(sc.minute(alert.minute), app)]["scan_sources"] += 1

    rows = {}
    for r in read_records(output, "risk"):
        key = (r["window_start"], r["app"])
        assert key not in rows
        rows[key] = r
    assert set(rows) == set(factors)
    for key, f in factors.items():
        r = rows[key]
        assert (r["exposed_ports"], r["rejected_flows"], r["scan_sources"], r["egress_bytes"],
                r["dependencies"], r["dependents"]) == (
            len(f["exposed"]), f["rejected_flows"], f["scan_sources"], f["egress_bytes"],
            len(f["dependencies"]), len(f["dependents"])), key
        assert set((r["exposed_port_list"] or "").split(",")) - {""} == f["exposed"]
        assert (r["score"], r["score_parts"]) == _risk({
            "exposed_ports": len(f["exposed"]), "rejected_flows": f["rejected_flows"],
            "scan_sources": f["scan_sources"], "egress_bytes": f["egress_bytes"],
            "dependencies": len(f["dependencies"]), "dependents": len(f["dependents"])}), key
    assert rows[(sc.minute(6), "edge-gateway")]["scan_sources"] == 1


def test_configured_service_ports_orient_the_job_s_conversations(tmp_path):
    """security.service_ports reaches the attribution step: a flow from port 60000 to 50000
    (no tcp-flags) has its server at 60000 when 60000 is a service port, and at the lower
    port, 50000, by the default rule."""
    start = 1767225600
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(
        f'{{"type":"ASSIGN","ts":{(start - 3600) * 1000},"ip":"{ip}","app":"{app}",'
        f'"region":"us-east-1"}}\n' for ip, app in (("10.0.0.1", "cache"), ("10.0.0.2", "web"))))
    flows = tmp_path / "flows"
    flows.mkdir()
    lines = [f"2 123456789012 eni-1 10.0.0.1 10.0.0.2 60000 50000 6 2 200 {start + i} "
             f"{start + i + 5} ACCEPT OK" for i in range(5)]
    with gzip.open(flows / "x_vpcflowlogs_us-east-1_fl-1_20260101T0005Z_0001.log.gz", "wt") as fh:
        fh.write("\n".join(["version account-id interface-id srcaddr dstaddr srcport dstport "
                            "protocol packets bytes start end action log-status"] + lines) + "\n")

    def edges(service_ports, parallelism):
        output = tmp_path / f"out-{service_ports}"
        run_replay([str(flows)], [str(meta)], str(output), Config().replace(
            job={"parallelism": parallelism, "checkpoint_interval_seconds": 2},
            outputs={"security": True, "enriched": False},
            security={"service_ports": service_ports}))
        return {(r["client_app"], r["server_app"], r["port"], r["flows"])
                for r in read_records(str(output), "dependencies")}

    assert edges("22,60000", parallelism=2) == {("web", "cache", 60000, 5)}
    assert edges("22", parallelism=1) == {("cache", "web", 50000, 5)}


# Small caps and totals, each reached by a sweep (docs/security.md): api sweeps ports
# 10000-10019 of db and of cache, and an internet address those of web and shop (10000-10009),
# every minute from minute 2 to 5; each pair and app has its known edge or port every minute.
CAPS = {"warmup_seconds": 0, "dependency_silence_seconds": 600,
        "exposure_silence_seconds": 600, "dependency_max_ports": 5,
        "dependency_max_total_edges": 8, "exposure_max_ports": 4, "exposure_max_total_ports": 6}


@pytest.mark.parametrize("parallelism", [1, 2], ids=["p1", "p2"])
def test_sweeps_past_the_caps_are_counted_and_not_reported_end_to_end(tmp_path, parallelism):
    start = 1767225600
    owners = {"10.0.0.1": ("api", "i-api"), "10.0.0.2": ("db", "i-db"),
              "10.0.0.3": ("web", "i-web"), "10.0.0.4": ("shop", "i-shop"),
              "10.0.0.5": ("cache", "i-cache")}
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(
        f'{{"type":"ASSIGN","ts":{(start - 3600) * 1000},"ip":"{ip}","app":"{app}",'
        f'"resource_id":"{resource}","region":"us-east-1"}}\n'
        for ip, (app, resource) in owners.items()))
    scanner = "198.51.100.9"
    lines = []
    for minute in range(6):
        t = start + minute * 60 + 10
        known = [("10.0.0.1", "10.0.0.2", 5432), ("10.0.0.1", "10.0.0.5", 6379),
                 (scanner, "10.0.0.3", 443), (scanner, "10.0.0.4", 443)]
        sweep = [("10.0.0.1", server, port) for server in ("10.0.0.2", "10.0.0.5")
                 for port in range(10000, 10020)] + [
                 (scanner, server, port) for server in ("10.0.0.3", "10.0.0.4")
                 for port in range(10000, 10010)] if minute >= 2 else []
        lines += [f"2 123456789012 eni-1 {src} {dst} 50000 {port} 6 2 200 {t} {t + 5} ACCEPT OK"
                  for src, dst, port in known + sweep]
    flows = tmp_path / "flows"
    flows.mkdir()
    with gzip.open(flows / "x_vpcflowlogs_us-east-1_fl-1_20260101T0010Z_0001.log.gz", "wt") as fh:
        fh.write("\n".join(["version account-id interface-id srcaddr dstaddr srcport dstport "
                            "protocol packets bytes start end action log-status"] + lines) + "\n")
    output = str(tmp_path / "out")
    run_replay([str(flows)], [str(meta)], output, Config().replace(
        job={"parallelism": parallelism, "checkpoint_interval_seconds": 2},
        outputs={"security": True, "enriched": False}, security=CAPS))

    def minute(m):
        return start + m * 60

    # The room each pair and app had, once, the lowest ports first: api->cache before api->db
    # in the total of 8 edges; shop, then web, in the total of 6 ports, shop at its cap of 4.
    assert sorted((e["time"], e["server_app"], e["port"])
                  for e in _events(output, "new_dependency")) == [
        (minute(0), "cache", 6379), (minute(0), "db", 5432)] + [
        (minute(2), "cache", p) for p in range(10000, 10004)] + [
        (minute(2), "db", p) for p in (10000, 10001)]
    assert sorted((e["time"], e["app"], e["port"], e["app_port_known"])
                  for e in _events(output, "exposure_new")) == [
        (minute(0), "shop", 443, 0), (minute(0), "web", 443, 0),
        (minute(2), "shop", 10000, 0), (minute(2), "shop", 10001, 0),
        (minute(2), "shop", 10002, 0), (minute(2), "web", 10000, 0)]
    assert not _events(output, "dependency_gone")
    # Every minute of the sweep: each pair's 16 past its cap (db's other 2 past the total);
    # shop's 7 past its cap, web's 9 past the total.
    counts = total_counts(output)
    assert (counts["dependency_edges_capped"], counts["dependency_edges_total_capped"],
            counts["exposure_ports_capped"], counts["exposure_ports_total_capped"]) == (
        4 * 32, 4 * 2, 4 * 7, 4 * 9)
    # The windowed rows hold the whole sweep, and api's is a port scan every minute.
    assert sum(r["port"] >= 10000 for r in read_records(output, "dependencies")) == 4 * 40
    assert sum(r["port"] >= 10000 for r in read_records(output, "exposure")) == 4 * 20
    assert sorted(e["time"] for e in _events(output, "port_scan")
                  if e["src_addr"] == "10.0.0.1") == [minute(m) for m in range(2, 6)]
    assert counts["flows_late"] == 0 and counts["dead_letter"] == 0
