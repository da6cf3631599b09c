"""The decisions of the security views (job.security), without a JVM."""
import json
import os
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdredge.job import security as s
from flowdredge.job.config import Config, ConfigError
from flowdredge.schemas.security import DEPENDENCY_GONE, REJECTED, RISK_FACTORS

pytestmark = pytest.mark.unit
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVICE = s.parse_ports("443,7001,9200")


@pytest.mark.parametrize("src_port,dst_port,flags,expected,why", [
    (50000, 443, 2, True, "SYN without ACK: the source opened"),
    (443, 50000, 18, False, "SYN-ACK: the source answered"),
    (443, 50000, 19, False, "SYN-ACK and FIN ORed in one record"),
    (2000, 7443, 3, True, "SYN and FIN: flags beat a lower client port"),
    (7443, 2000, 19, False, "the answer to it"),
    (50000, 443, 0, True, "no supported flag (ACK/PSH only): ports decide"),
    (443, 50000, 1, False, "FIN only: ports decide"),
    (443, 50000, None, False, "no tcp-flags field: ports decide"),
    (80, 9200, None, True, "a listed service port beats a well-known one"),
    (9200, 80, None, False, "and the other way round"),
    (443, 7001, None, False, "both listed: the lower port decides"),
    (40000, 22, None, True, "a well-known port is the lower: the server"),
    (22, 40000, None, False, "a well-known port is the lower: the server (reply)"),
    (40000, 30000, None, True, "neither known: the lower port is the server"),
    (30000, 40000, None, False, "lower port on the source side"),
    (0, 0, None, True, "ICMP (ports 0): the record's direction"),
    (None, 443, None, True, "missing port: the record's direction"),
])
def test_client_is_source(src_port, dst_port, flags, expected, why):
    assert s.client_is_source(src_port, dst_port, flags, SERVICE) is expected, why


def test_source_class():
    assert [s.source_class(src, "api") for src in ("api", "auth", "internet", "unattributed",
                                                   "aws:ec2:us-east-1")] \
        == ["same_app", "other_app", "internet", "unattributed", "internet"]


def test_aws_published_ranges_are_the_internet_to_the_views():
    """metadata.ip_ranges names public addresses in AWS's ranges aws:<service>:<region>: the
    views took them for apps, so with AWS's ip-ranges.json (every public EC2 address in it)
    a scanner hosted on EC2 was in no exposure row, egress to S3 in no internet_egress row,
    and both were dependencies, and aws:... an app with a risk row (a review)."""
    ec2, s3 = "aws:ec2:us-east-1", "aws:s3:us-east-1"
    conversations = [
        # win, client, its addr, server, its addr, resource, port, client port, proto, action,
        # flows, packets, bytes, and those of the client's records
        (60, ec2, "3.5.0.9", "api", "10.0.0.1", "i-1", 443, None, 6, "ACCEPT", 2, 4, 400, 1, 2,
         100),
        (60, "api", "10.0.0.1", s3, "52.216.0.7", "-", 443, None, 6, "ACCEPT", 2, 6, 900, 1, 3,
         700),
        (60, ec2, "3.5.0.9", "api", "10.0.0.1", "i-1", 22, 51000, 6, "REJECT", 1, 1, 40, 1, 1, 40),
    ]
    views = s.WindowViews.of_conversations(conversations)
    rules = s.ViewRules(3, s.ScanRules(5, 9, 20, 1, 0, 3), s.parse_factors(
        "exposed_ports=30,rejected_flows=15,scan_sources=20,egress_bytes=20,dependencies=5,"
        "dependents=10"), s.parse_factors(
        "exposed_ports=3,rejected_flows=100,scan_sources=2,egress_bytes=100000000,"
        "dependencies=10,dependents=10"))
    out = s.window_results(60, views, rules)
    assert out.dependencies == []
    assert [(r[1], r[3], r[5], r[-1]) for r in out.exposure] == [("api", 443, 2, 1)]
    assert [(r[1], r[2], r[5], r[-1]) for r in out.egress] == [("api", 443, 2, 1)]
    rejected = s.reject_rows(60, "api", [s.RejectSource(*r[2:]) for r in out.reject_sources],
                             top_n=2, spike=False)
    assert [r[REJECTED.names.index("source_class")] for r in rejected] == ["internet"]
    assert [json.loads(line)["app"] for line in out.risk] == ["api"]


def test_warm_up_and_silence_in_event_time():
    assert not s.warmed_up(1000, None, 0)
    assert not s.warmed_up(1239, 1000, 240) and s.warmed_up(1240, 1000, 240)
    assert s.silence_deadline(600, 60, 180) == 840
    # In whole windows: a window starting before 600 + 60 + 90 may hold traffic within 90 s.
    assert s.silence_deadline(600, 60, 90) == s.silence_deadline(600, 60, 120) == 780
    edge = s.Edge("a", "b", 80, 6, 0, 60, 5, 500).seen(0, 2, 10)
    assert (edge.first_seen, edge.last_seen, edge.flows, edge.bytes) == (0, 60, 7, 510)


def _source(port, src_app, addr, flows, protocol=6):
    return s.RejectSource(port, protocol, src_app, addr, flows, flows * 2, flows * 100)


def test_reject_rows_by_port_protocol_and_source_class():
    sources = [_source(22, "internet", "198.18.0.1", 5), _source(22, "internet", "198.18.0.2", 9),
               _source(22, "api", "10.0.0.1", 1), _source(22, "db", "10.0.0.7", 2),
               _source(22, "auth", "10.0.0.2", 2), _source(None, "unattributed", "10.9.9.9", 1,
                                                          protocol=1)]
    rows = {(r[2], r[3], r[4]): dict(zip(REJECTED.names, r))
            for r in s.reject_rows(600, "db", sources, top_n=2, spike=True)}
    assert set(rows) == {(22, 6, "internet"), (22, 6, "other_app"), (22, 6, "same_app"),
                         (None, 1, "unattributed")}
    internet = rows[(22, 6, "internet")]
    assert (internet["flows"], internet["packets"], internet["bytes"], internet["sources"]) == (
        14, 28, 1400, 2)
    assert internet["top_sources"] == "198.18.0.2=9,198.18.0.1=5"
    other = rows[(22, 6, "other_app")]
    assert (other["source_apps"], other["top_sources"]) == ("api,auth", "10.0.0.2=2,10.0.0.1=1")
    assert {(r["app_rejected_flows"], r["spike"], r["window_start"]) for r in rows.values()} \
        == {(20, 1, 600)}


def test_spike_evidence():
    sources = [_source(22, "internet", "a", 5), _source(23, "internet", "a", 1),
               _source(22, "internet", "b", 3)]
    assert s.spike_evidence(sources, 5) == ("22/6=8,23/6=1", "a=6,b=3")


def test_reject_baseline_counts_missing_windows_as_zero():
    history = {0: 10, 120: 20, 240: 99}
    # Previous 3 windows of 240: 60 (none), 120, 180 (none).
    assert s.reject_baseline(history, 240, 0, 60, 3) == (20, 3)
    # Only windows since the job's first one count.
    assert s.reject_baseline(history, 240, 180, 60, 3) == (0, 1)
    assert s.reject_baseline(history, 0, 0, 60, 3) == (0, 0)


@pytest.mark.parametrize("flows,base_flows,base_windows,spike", [
    (50, 0, 5, True),      # from nothing to the minimum
    (49, 0, 5, False),     # under the minimum
    (50, 0, 0, False),     # no baseline yet (the job's first window)
    (61, 100, 5, True),    # mean 20: 61 > 3 x 20
    (60, 100, 5, False),   # 60 is not more than 3 x 20
])
def test_spike_rule(flows, base_flows, base_windows, spike):
    assert s.is_spike(flows, base_flows, base_windows, factor=3, min_flows=50) is spike


RULES = s.ScanRules(port_scan_min_ports=20, port_scan_max_hosts=3, host_sweep_min_hosts=20,
                    host_sweep_max_ports=2, min_reject_percent=0, evidence_samples=3)


@pytest.mark.parametrize("hosts,ports,pct,pattern", [
    (1, 1000, 100, "port_scan"),
    (3, 20, 0, "port_scan"),
    (4, 20, 100, None),          # many ports on many hosts: neither pattern
    (1, 19, 100, None),
    (20, 1, 100, "host_sweep"),
    (250, 2, 0, "host_sweep"),
    (250, 3, 100, None),         # a client of three services on many hosts
    (19, 1, 100, None),
])
def test_classify_scan(hosts, ports, pct, pattern):
    assert s.classify_scan(hosts, ports, pct, RULES) == pattern


def test_scan_alerts_can_require_a_reject_share():
    rules = s.ScanRules(20, 3, 20, 2, min_reject_percent=50, evidence_samples=3)
    assert s.classify_scan(200, 1, 49, rules) is None
    assert s.classify_scan(200, 1, 50, rules) == "host_sweep"


def test_scan_evidence_sorts_and_samples():
    evidence = s.scan_evidence("198.18.0.1", ["internet"], 4, 5, 9, 3,
                               ["kafka", "internet", "api"],
                               ["10.0.0.10", "10.0.0.9", "2001:db8::1", "10.0.0.100"],
                               [443, 22, 8080, 3, 1000], samples=3)
    assert evidence == ("198.18.0.1", "internet", 4, 5, 9, 3, 33, "api,internet,kafka", 3, 8080,
                        "10.0.0.9,10.0.0.10,10.0.0.100", "3,22,443")
    assert s.scan_evidence("a", ["b"], 0, 0, 0, 0, [], [], [], 3)[6:] == (
        0, "", None, None, "", "")
    assert s.scanned_apps(["kafka", "internet", "unattributed", "api", "kafka"]) == ["api",
                                                                                    "kafka"]


def test_an_app_whose_name_holds_a_comma_is_one_app_in_the_scans_and_the_risk():
    """Joined with commas and split again, it made two apps that do not exist, each scanned,
    and left the real one unscanned (a review)."""
    rows = [(600, "internet", "203.0.113.9", "payments,prod", "10.0.0.1", "i-1", port, None, 6,
             "REJECT", 1, 1, 40, 1, 1, 40) for port in range(1, 8)]
    rules = s.ViewRules(3, s.ScanRules(5, 9, 20, 1, 0, 3),
                        s.parse_factors("exposed_ports=50,scan_sources=50"),
                        s.parse_factors("exposed_ports=3,scan_sources=2"))
    results = s.window_results(600, s.WindowViews.of_conversations(rows), rules)
    [scan] = map(json.loads, results.scans)
    assert scan["target_apps"] == "payments,prod" and scan["pattern"] == "port_scan"
    risk = {r["app"]: r for r in map(json.loads, results.risk)}
    assert set(risk) == {"payments,prod"} and risk["payments,prod"]["scan_sources"] == 1


def _sweep_rules():
    return s.ViewRules(3, s.ScanRules(5, 9, 20, 1, 0, 3),
                       s.parse_factors("exposed_ports=50,scan_sources=50"),
                       s.parse_factors("exposed_ports=3,scan_sources=2"))


def _sweep(owners, targets):
    """A host sweep's conversations: from 10.9.9.9, owned by each of `owners` in turn, REJECTed
    on port 22 of a host of each of `targets`."""
    return [(600, owners[i % len(owners)], "10.9.9.9", app, f"10.{i >> 16}.{i >> 8 & 255}."
             f"{i & 255}", "i-1", 22, None, 6, "REJECT", 1, 1, 40, 1, 1, 40)
            for i, app in enumerate(targets)]


def test_a_scan_alert_lists_its_apps_within_a_bound_and_counts_the_others():
    """A scan alert listed every app the scan reached (target_apps) and every owner its source
    had in the window (src_app): a sweep across 30,000 apps made a 989,999-byte target_apps,
    and with kinesis.security_events_stream each alert is one Kinesis record, which the
    connector's sink refuses past 1 MiB, failing the job at every restart. Each list now
    keeps its first apps within ALERT_APPS_BYTES of JSON text and counts the others; the scans
    row keeps them all."""
    from flowdredge.connectors.kinesis.settings import MAX_RECORD_BYTES
    from flowdredge.job.config import EVENT_RECORD_EXTRA
    targets = [f"app-{i:05d}-of-a-sweep-across-many" for i in range(30_000)]
    # Owners of 10,000 characters, 6 bytes of JSON each ("\u00e9").
    owners = [f"{i:02d}" + "\u00e9" * 10_000 for i in range(40)]
    results = s.window_results(600, s.WindowViews.of_conversations(
        _sweep(owners, targets)), _sweep_rules())
    [line] = results.events
    alert = json.loads(line)
    assert alert["event"] == "host_sweep" and alert["hosts"] == 30_000
    kept = alert["target_apps"].split(",")
    assert kept == targets[:len(kept)]
    assert alert["target_apps_left_out"] == 30_000 - len(kept)
    assert s.ALERT_APPS_BYTES - 35 < len(json.dumps(alert["target_apps"])) - 2 \
        <= s.ALERT_APPS_BYTES
    kept = alert["src_app"].split(",")
    assert kept == owners[:4] and alert["src_apps_left_out"] == 36
    assert len(line) + EVENT_RECORD_EXTRA < MAX_RECORD_BYTES
    [scan] = map(json.loads, results.scans)
    assert scan["target_apps"] == ",".join(targets) and scan["src_app"] == ",".join(owners)
    assert "target_apps_left_out" not in scan
    # Within the bounds the alert is the evidence as it was, without the counts.
    results = s.window_results(600, s.WindowViews.of_conversations(
        _sweep(["scanner"], targets[:30])), _sweep_rules())
    [scan] = map(json.loads, results.scans)
    evidence = tuple(scan[name] for name in s.SCAN.names[1:-1])
    assert results.events == [s.event_line(s.SCAN_ALERTS["host_sweep"], 600, evidence)]


def test_a_list_of_apps_is_cut_where_its_json_text_passes_the_bound():
    apps = ["bb", "a", "\u00e9", "", "a"]   # "a,bb,\u00e9" is 11 bytes of JSON text
    assert s.bounded_app_list(apps, 11) == ("a,bb,\u00e9", 0)
    assert s.bounded_app_list(apps, 10) == ("a,bb", 1)
    assert s.bounded_app_list(apps, 3) == ("a", 2)
    assert s.bounded_app_list(apps, 0) == ("", 3)
    assert s.bounded_app_list([], 0) == ("", 0)


def test_an_event_line_is_within_its_bound_at_the_longest_values():
    """event_bytes_bound, which the config's check of metadata.max_line_bytes with
    kinesis.security_events_stream goes by, holds each event kind's longest line: owners of
    code points past U+FFFF (12 bytes of JSON each), numbers at their largest, samples and top
    lists of IPv6 addresses of the longest text."""
    from flowdredge.schemas.security import (DEPENDENCY_GONE, EXPOSURE_NEW, NEW_DEPENDENCY,
                                             REJECT_SPIKE)
    big, chars, samples, top = s.MAX_LONG, 300, 50, 40
    owner = "\U0001f600" * chars
    bound = s.event_bytes_bound(chars, samples, top)

    def address(i):
        return f"ffff:ffff:ffff:ffff:ffff:ffff:ffff:{0x1000 + i:x}"
    lines = {
        "new_dependency": s.event_line(NEW_DEPENDENCY, big, (owner, owner, 65535, 255, big, big,
                                                             big, big, big, big)),
        "dependency_gone": s.event_line(DEPENDENCY_GONE, big, (owner, owner, 65535, 255, big,
                                                               big, big, big)),
        "exposure_new": s.event_line(EXPOSURE_NEW, big, (owner, owner, 65535, 255, big, big, 1)),
        "reject_spike": s.event_line(REJECT_SPIKE, big, (owner, big, big, 2**31 - 1)
                                     + s.spike_evidence([s.RejectSource(
                                         60000 + i, 255, "a", address(i), 10**18 + i, 1, 1)
                                         for i in range(2 * top)], top)),
    }
    evidence = s.scan_evidence(address(0), [], big, big, big, big, [], [address(i) for i in
                               range(2 * samples)], list(range(60000, 60000 + 2 * samples)),
                               samples)
    apps = [f"\U0001f600{i:06d}" for i in range(100_000)]
    lines["host_sweep"] = s.scan_alert_line("host_sweep", big, evidence, apps, apps)
    assert "target_apps_left_out" in json.loads(lines["host_sweep"])
    for name, line in lines.items():
        assert line.isascii() and bound[name] - 100 < len(line) <= bound[name], name


def test_risk_score_shows_each_factor():
    weights = s.parse_factors("exposed_ports=30,rejected_flows=20,scan_sources=50")
    scales = s.parse_factors("exposed_ports=3,rejected_flows=100,scan_sources=1")
    zero = dict.fromkeys(RISK_FACTORS, 0)
    assert s.risk_score(zero, weights, scales) == (0, "")
    full = {**zero, "exposed_ports": 9, "rejected_flows": 100, "scan_sources": 2,
            "egress_bytes": 10**12}
    assert s.risk_score(full, weights, scales) == (
        100, "scan_sources=50,exposed_ports=30,rejected_flows=20")
    assert s.risk_score({**zero, "exposed_ports": 1, "rejected_flows": 1}, weights, scales) == (
        10, "exposed_ports=10")


def test_config_values_parse_with_clear_errors():
    assert s.parse_ports(" 22, 443,,") == {22, 443}
    with pytest.raises(ValueError, match="not a port: '70000'"):
        s.parse_ports("22,70000")
    assert s.parse_factors("")["dependencies"] == 0
    with pytest.raises(ValueError, match="unknown risk factor 'blast'"):
        s.parse_factors("blast=3")
    with pytest.raises(ValueError, match="expected an integer from 0 to 2147483647"):
        s.parse_factors("dependencies=-1")
    assert s.parse_factors("dependencies=7", {"dependencies": 5, "dependents": 10}) == {
        **dict.fromkeys(RISK_FACTORS, 0), "dependencies": 7, "dependents": 10}


@pytest.mark.parametrize("values,message", [
    ({"warmup_seconds": -1}, "warmup_seconds must not be negative"),
    ({"port_scan_min_ports": 0}, "port_scan_min_ports must be positive"),
    ({"port_scan_max_hosts": 20}, "cannot be both a port scan and a host sweep"),
    ({"scan_report_min_targets": 25}, "scan_report_min_targets must not exceed"),
    ({"dependency_silence_seconds": 30}, "must be at least job.window_seconds"),
    ({"scan_min_reject_percent": 101}, "at most 100"),
    ({"exposure_max_ports": 100001},
     r"security.exposure_max_ports must not exceed exposure_max_total_ports"),
    ({"dependency_max_ports": 5, "dependency_max_total_edges": 4},
     r"security.dependency_max_ports must not exceed dependency_max_total_edges"),
    ({"dependency_max_total_edges": 0}, "dependency_max_total_edges must be positive"),
    ({"service_ports": "ssh"}, "not a port"),
    ({"risk_weights": "exposed_ports=0,rejected_flows=0,scan_sources=0,egress_bytes=0,"
                      "dependencies=0,dependents=0"}, "at least one factor needs a weight"),
    ({"risk_scales": "dependencies=0"}, "need a positive scale"),
])
def test_bad_security_config_is_a_clear_error(values, message):
    with pytest.raises(ConfigError, match=message):
        Config().replace(security=values)


def test_defaults_enable_the_views():
    config = Config()
    assert config.outputs.security
    assert Config().replace(security={"warmup_seconds": "60"}).security.warmup_seconds == 60


def test_output_lines_carry_the_schema():
    line = s.event_line(DEPENDENCY_GONE, 900, s.Edge("a", "b", 80, 6, 0, 60, 5, 500))
    assert json.loads(line) == {"event": "dependency_gone", "time": 900, "client_app": "a",
                                "server_app": "b", "port": 80, "protocol": 6, "first_seen": 0,
                                "last_seen": 60, "flows": 5, "bytes": 500}
    assert s.top(Counter({"b": 2, "a": 2, "c": 5}), 2) == "c=5,a=2"


def test_docs_name_every_field_and_key():
    from dataclasses import fields
    from flowdredge.job.config import SecuritySection
    from flowdredge.schemas import security as schemas
    with open(os.path.join(ROOT, "docs", "security.md"), encoding="utf-8") as fh:
        doc = fh.read()
    outputs = (schemas.DEPENDENCY, schemas.EXPOSURE, schemas.INTERNET_EGRESS, schemas.REJECTED,
               schemas.SCAN, schemas.RISK) + schemas.EVENT_SCHEMAS
    missing = {f"{o.name}.{f.name}" for o in outputs for f in o.fields if f"`{f.name}`" not in doc}
    missing |= {f"`{name}`" for name in schemas.OUTPUTS + tuple(
        f.name for f in fields(SecuritySection)) if f"`{name}`" not in doc}
    assert not missing


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_addresses_order_as_ipaddress_orders_them(address):
    text = str(address)
    assert s._address_order(text) == (address.version, int(address))
