"""The security views from batches (job.security.WindowViews, window_results): the same rows as
the Flink SQL of earlier releases computed from the conversation rows, here restated as plain
filters and group-bys over them; whatever the batches, after encoding and merging."""
import json
import random
from collections import defaultdict

import pytest

from flowdredge.job import security as s
from helpers import plain_views
from flowdredge.job.codec import decode_views, encode_views
from flowdredge.schemas import security as out
from flowdredge.schemas.outputs import CONVERSATION

pytestmark = pytest.mark.unit

W = 600
RULES = s.ViewRules(3, s.ScanRules(5, 9, 20, 1, 0, 3), s.parse_factors(
    "exposed_ports=30,rejected_flows=15,scan_sources=20,egress_bytes=20,dependencies=5,"
    "dependents=10"), s.parse_factors(
    "exposed_ports=3,rejected_flows=100,scan_sources=2,egress_bytes=100000000,"
    "dependencies=10,dependents=10"))


def _conversations(n, seed):
    """Random conversation rows of window W over a small estate, so that keys repeat."""
    rnd = random.Random(seed)
    ends = [("api", "10.0.0.1", "i-1"), ("api", "10.0.0.2", "i-2"), ("db", "10.0.1.1", "i-3"),
            ("aws:S3:us-east-1", "52.216.0.1", "-"), ("unattributed", "10.9.9.9", "-")] + [
        ("internet", f"198.51.100.{i}", "-") for i in range(1, 6)]
    rows = []
    for _ in range(n):
        (capp, caddr, _), (sapp, saddr, sres) = rnd.sample(ends, 2)
        action = rnd.choice(("ACCEPT", "ACCEPT", "REJECT", None))
        flows = rnd.randint(1, 3)
        client_flows = rnd.randint(0, flows)
        client_port = (rnd.choice((50001, 50002, None))
                       if action == "REJECT" and client_flows < flows else None)
        packets, nbytes = flows * rnd.randint(1, 5), flows * rnd.randint(40, 900)
        rows.append((W, capp, caddr, sapp, saddr, sres, rnd.choice((22, 443, 5432, 7001, None)),
                     client_port, rnd.choice((6, 17, None)), action, flows, packets, nbytes,
                     client_flows, min(packets, client_flows * 2), min(nbytes, client_flows * 40)))
    return rows


def _group(rows, key, **aggregates):
    """{key(row): {name: aggregate(rows of the group)}}, as SQL's GROUP BY."""
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {k: {name: f(members) for name, f in aggregates.items()} for k, members in groups.items()}


def _sum(field):
    return lambda rows: sum(r[field] for r in rows)


def _distinct(field):
    return lambda rows: {r[field] for r in rows if r[field] is not None}


def _internet(app):
    """docs/security.md: `internet`, and AWS's published ranges (aws:<service>:<region>)."""
    return app == "internet" or app.startswith("aws:")


def _unowned(app):
    return app == "unattributed" or _internet(app)


def _expected(conversations):
    """The views as the SQL of docs/security.md states them, over dicts of the rows."""
    conn = [dict(zip(CONVERSATION.names, r)) for r in conversations]
    records = [dict(src_app=c["client_app"], src_addr=c["client_addr"],
                    dst_app=c["server_app"], dst_addr=c["server_addr"],
                    dst_port=c["service_port"], protocol=c["protocol"], action=c["action"],
                    flows=c["client_flows"], packets=c["client_packets"],
                    bytes=c["client_bytes"]) for c in conn if c["client_flows"] > 0] + [
        dict(src_app=c["server_app"], src_addr=c["server_addr"], dst_app=c["client_app"],
             dst_addr=c["client_addr"], dst_port=c["client_port"], protocol=c["protocol"],
             action=c["action"], flows=c["flows"] - c["client_flows"],
             packets=c["packets"] - c["client_packets"], bytes=c["bytes"] - c["client_bytes"])
        for c in conn if c["action"] == "REJECT" and c["flows"] > c["client_flows"]]
    volume = dict(flows=_sum("flows"), packets=_sum("packets"), bytes=_sum("bytes"))

    deps = _group([c for c in conn if c["action"] == "ACCEPT" and not _unowned(c["client_app"])
                   and not _unowned(c["server_app"])],
                  lambda c: (c["client_app"], c["server_app"], c["service_port"], c["protocol"]),
                  **volume, clients=_distinct("client_addr"), servers=_distinct("server_addr"))
    exposure = _group([c for c in conn if c["action"] == "ACCEPT"
                       and _internet(c["client_app"]) and not _unowned(c["server_app"])],
                      lambda c: (c["server_app"], c["server_resource"], c["service_port"],
                                 c["protocol"]), **volume, clients=_distinct("client_addr"))
    egress = _group([c for c in conn if _internet(c["server_app"])
                     and not _internet(c["client_app"])],
                    lambda c: (c["client_app"], c["service_port"], c["protocol"], c["action"]),
                    **volume, sent=_sum("client_bytes"), dests=_distinct("server_addr"))
    rejects = _group([r for r in records if r["action"] == "REJECT"],
                     lambda r: (r["dst_app"], r["dst_port"], r["protocol"], r["src_app"],
                                r["src_addr"]), **volume)
    sources = _group(records, lambda r: r["src_addr"],
                     hosts=_distinct("dst_addr"), ports=_distinct("dst_port"),
                     apps=_distinct("dst_app"), owners=_distinct("src_app"), flows=_sum("flows"),
                     rejected=lambda rs: sum(r["flows"] for r in rs if r["action"] == "REJECT"))

    scans, events, scan_sources = [], [], defaultdict(set)
    for addr, g in sources.items():
        if max(len(g["hosts"]), len(g["ports"])) < RULES.scan_report_min_targets:
            continue
        evidence = s.scan_evidence(addr, g["owners"], len(g["hosts"]), len(g["ports"]), g["flows"],
                                   g["rejected"], g["apps"], g["hosts"], g["ports"],
                                   RULES.scans.evidence_samples)
        pattern = s.classify_scan(len(g["hosts"]), len(g["ports"]),
                                  s.reject_percent(g["rejected"], g["flows"]), RULES.scans)
        scans.append(s.json_line(out.SCAN, (W,) + evidence + (pattern or "",)))
        if pattern:
            events.append(s.event_line(out.SCAN_ALERTS[pattern], W, evidence))
            for target in s.scanned_apps(g["apps"]):
                scan_sources[target].add(addr)

    risk = defaultdict(lambda: dict(exposed=set(), rejected_flows=0, egress_bytes=0,
                                    dependencies=set(), dependents=set()))
    for (app, _res, port, proto) in exposure:
        risk[app]["exposed"].add(s.port_label(port, proto))
    for (app, *_rest), g in rejects.items():
        if not _unowned(app):
            risk[app]["rejected_flows"] += g["flows"]
    for (app, *_rest), g in egress.items():
        if not _unowned(app):
            risk[app]["egress_bytes"] += g["sent"]
    for client, server, port, proto in deps:
        risk[client]["dependencies"].add((server, port, proto))
        risk[server]["dependents"].add(client)
    for app in scan_sources:
        risk[app]   # a row for the app
    risk_rows = {}
    for app, f in risk.items():
        row = (W, app, len(f["exposed"]), f["exposed"], f["rejected_flows"],
               len(scan_sources[app]), f["egress_bytes"], len(f["dependencies"]),
               len(f["dependents"]))
        risk_rows[app] = row

    return dict(
        dependencies={(W,) + k + (g["flows"], g["packets"], g["bytes"], len(g["clients"]),
                                  len(g["servers"])) for k, g in deps.items()},
        exposure={(W,) + k + (g["flows"], g["packets"], g["bytes"], len(g["clients"]))
                  for k, g in exposure.items()},
        egress={(W,) + k + (g["flows"], g["packets"], g["bytes"], g["sent"], len(g["dests"]))
                for k, g in egress.items()},
        reject_sources={(W,) + k + (g["flows"], g["packets"], g["bytes"])
                        for k, g in rejects.items()},
        scans=sorted(scans), events=sorted(events), risk=risk_rows)


def _actual(results: s.WindowResults):
    for rows, schema in ((results.dependencies, out.DEPENDENCY), (results.exposure, out.EXPOSURE),
                         (results.egress, out.INTERNET_EGRESS),
                         (results.reject_sources, out.REJECT_SOURCE)):
        assert all(len(row) == len(schema.fields) for row in rows), schema.name
    risk = {}
    for line in results.risk:
        r = json.loads(line)
        assert (r["score"], r["score_parts"]) == s.risk_score(r, RULES.risk_weights,
                                                             RULES.risk_scales)
        exposed = set((r["exposed_port_list"] or "").split(",")) - {""}
        assert len(exposed) == r["exposed_ports"]
        risk[r["app"]] = (r["window_start"], r["app"], r["exposed_ports"], exposed,
                          r["rejected_flows"], r["scan_sources"], r["egress_bytes"],
                          r["dependencies"], r["dependents"])
    return dict(dependencies=set(results.dependencies), exposure=set(results.exposure),
                egress=set(results.egress), reject_sources=set(results.reject_sources),
                scans=sorted(results.scans), events=sorted(results.events), risk=risk)


def _in_batches(conversations, sizes):
    """Encoded batches of the rows, merged as the window's close does."""
    views, at = s.WindowViews(), 0
    for size in sizes:
        views.merge(decode_views(encode_views(
            s.WindowViews.of_conversations(conversations[at:at + size]))))
        at += size
    return views


@pytest.mark.parametrize("seed", range(5))
def test_one_batch_equals_the_sql_views(seed):
    rows = _conversations(300, seed)
    expected = _expected(rows)
    assert _actual(s.window_results(W, s.WindowViews.of_conversations(rows), RULES)) == expected
    assert expected["scans"] and expected["events"] and expected["exposure"]


@pytest.mark.parametrize("seed", range(5))
def test_any_split_into_batches_gives_the_same_views(seed):
    rows = _conversations(300, seed)
    rnd = random.Random(seed)
    sizes = []
    while sum(sizes) < len(rows):
        sizes.append(rnd.randint(1, 60))
    assert _actual(s.window_results(W, _in_batches(rows, sizes), RULES)) == _expected(rows)


@pytest.mark.parametrize("seed", range(3))
def test_batches_with_ipv6_addresses_merge_as_one(seed):
    """Each batch numbers the addresses other than IPv4 it holds in its own table
    (job.addresses); merged, the views are those of one batch."""
    v6 = {"10.0.0.2": "2001:db8::2", "198.51.100.3": "2001:db8::c:3", "10.9.9.9": "fd00::9",
          "198.51.100.5": "::ffff:198.51.100.5"}
    rows = [tuple(v6.get(value, value) if i in (2, 4) else value for i, value in enumerate(row))
            for row in _conversations(300, seed)]
    rnd = random.Random(seed)
    sizes = []
    while sum(sizes) < len(rows):
        sizes.append(rnd.randint(1, 40))
    merged = _in_batches(rows, sizes)
    assert len(merged.others) == len(v6)
    assert plain_views(merged) == plain_views(s.WindowViews.of_conversations(rows))
    assert _actual(s.window_results(W, merged, RULES)) == _expected(rows)


def test_a_source_is_a_scan_only_over_the_whole_window():
    """Ten REJECTed probes to ten ports, one per batch: no batch sees a scan, the window does."""
    rows = [(W, "internet", "198.51.100.9", "db", "10.0.1.1", "i-3", port, None, 6, "REJECT",
             1, 1, 40, 1, 1, 40) for port in range(1000, 1010)]
    rules = s.ViewRules(10, s.ScanRules(10, 1, 20, 1, 0, 3), RULES.risk_weights,
                        RULES.risk_scales)
    assert all(not s.window_results(W, s.WindowViews.of_conversations([r]), rules).scans
               for r in rows)
    results = s.window_results(W, _in_batches(rows, [1] * 10), rules)
    assert [json.loads(e)["ports_sample"] for e in results.events] == ["1000,1001,1002"]
    risk = [json.loads(line) for line in results.risk]
    assert [(r["app"], r["rejected_flows"], r["scan_sources"]) for r in risk] == [("db", 10, 1)]


def test_a_source_that_changed_owner_inside_the_window_is_one_source():
    """10.0.0.5 probes two hosts as api, then two more as web: one host sweep of four hosts,
    both owners named, not two sources of two hosts each below every threshold."""
    rows = [(W, app, "10.0.0.5", "db", f"10.0.1.{host}", f"i-{host}", 22, None, 6, "REJECT",
             1, 1, 40, 1, 1, 40) for app, host in (("api", 1), ("api", 2), ("web", 3),
                                                     ("web", 4))]
    rules = s.ViewRules(4, s.ScanRules(10, 1, 4, 1, 0, 3), RULES.risk_weights,
                        RULES.risk_scales)
    results = s.window_results(W, _in_batches(rows, [2, 2]), rules)
    assert [(r["src_addr"], r["src_app"], r["hosts"], r["pattern"])
            for r in map(json.loads, results.scans)] == [("10.0.0.5", "api,web", 4, "host_sweep")]
    assert [(e["event"], e["src_app"]) for e in map(json.loads, results.events)] == [
        ("host_sweep", "api,web")]


def test_the_batch_codec_is_versioned():
    payload = encode_views(s.WindowViews.of_conversations(_conversations(5, 0)))
    with pytest.raises(ValueError, match="codec version"):
        decode_views(bytes([payload[0] + 1]) + payload[1:])


# encode_views(WindowViews.of_conversations(_conversations(4, 32))) by the release before
# VIEWS_CODEC_VERSION 2 (address sets pickled as sets): an open window's batch in its savepoints.
_VERSION_1_BATCH = bytes.fromhex(
    "018005953c01000000000000287d94288c03617069948c106177733a53333a75732d656173742d31944b164e"
    "74945d94284b024b044d48048f94288c0831302e302e302e3294908f94288c0a35322e3231362e302e319490"
    "65737d942868018c03692d31944dbb014b1174945d94284b034b0c4d3c098f94288c0c3139382e35312e3130"
    "302e35949065737d942868024b164e8c064143434550549474945d94284b024b024d84044b008f94288c0c31"
    "39382e35312e3130302e33949065737d94282868014d591b4b1168018c0831302e302e302e319474945d9428"
    "4b024b044b50652868014d51c34b116801680674945d94284b014b0b4d71086575285d942868066816680665"
    "5d9428680168016801655d9428680868066816655d94284b164d591b4d51c3655d9428680268016801655d94"
    "284b024b024b01655d942889888865749474942e")


# The same batch by the release before VIEWS_CODEC_VERSION 3 (address dicts, the records one
# flat list).
_VERSION_2_BATCH = bytes.fromhex(
    "028005952101000000000000287d94288c03617069948c106177733a53333a75732d656173742d31944b164e"
    "74945d94284b024b044d48047d948c0831302e302e302e32944e737d948c0a35322e3231362e302e31944e73"
    "65737d942868018c03692d31944dbb014b1174945d94284b034b0c4d3c097d948c0c3139382e35312e313030"
    "2e35944e7365737d942868024b164e8c064143434550549474945d94284b024b024d84044b007d948c0c3139"
    "382e35312e3130302e33944e7365737d94282868014d591b4b1168018c0831302e302e302e319474945d9428"
    "4b024b044b50652868014d51c34b116801680674945d94284b014b0b4d710865755d94286806680168084b16"
    "68024b02896816680168064d591b68014b02886806680168164d51c368014b01886574942e")


# The same batch in this release's encoding (VIEWS_CODEC_VERSION 3): a change of the encoding
# that cannot read it must bump the version and keep a reader for this one.
_VERSION_3_BATCH = bytes.fromhex(
    "03800595ae01000000000000287d94288c03617069948c106177733a53333a75732d656173742d31944b164e"
    "74945d94284b024b044d480465737d942868018c03692d31944dbb014b1174945d94284b034b0c4d3c096573"
    "7d942868024b164e8c064143434550549474945d94284b024b024d84044b0065737d94282868014d591b4b11"
    "68018c0831302e302e302e319474945d94284b024b044b50652868014d51c34b1168018c0831302e302e302e"
    "329474945d94284b014b0b4d710865755d942868016802655d945d94288c037c7531944301009486948c033c"
    "75349443040200000a94869486948c037c753194681886948c033c75349443040100d83494869486948c037c"
    "753194681886948c033c7534944304056433c694869486948c037c753194681886948c033c75349443040364"
    "33c69486948694655d94288c033c753494430c0200000a0100000a0200000a9486948c037c75319443030000"
    "009486948c033c753494430c0100d8340200000a0100000a9486948c033c75329443061600591b51c3948694"
    "8c037c75319443030100009486948c037c75319443030202019486948c037c75319443030001019486946574"
    "942e")


@pytest.mark.parametrize("payload", [_VERSION_1_BATCH, _VERSION_2_BATCH, _VERSION_3_BATCH],
                         ids=["v1", "v2", "v3"])
def test_a_batch_of_each_encoding_decodes_to_the_same_views(payload, monkeypatch):
    # Reduced under the rule of their releases, when AWS's published ranges were apps.
    def earlier_internet(app):
        return app == "internet"

    def earlier_unowned(app):
        return app in ("internet", "unattributed")

    monkeypatch.setattr(s, "is_internet", earlier_internet)
    monkeypatch.setattr(s, "is_unowned", earlier_unowned)
    monkeypatch.setitem(globals(), "_internet", earlier_internet)
    monkeypatch.setitem(globals(), "_unowned", earlier_unowned)
    rows = _conversations(4, 32)
    old = decode_views(payload)
    assert old.dependencies and old.exposure and old.egress and old.rejects
    assert plain_views(old) == plain_views(s.WindowViews.of_conversations(rows))
    # Restored next to batches of this release, in one window.
    more = _conversations(300, 1)
    merged = decode_views(payload)
    merged.merge(decode_views(encode_views(s.WindowViews.of_conversations(more))))
    assert _actual(s.window_results(W, merged, RULES)) == _expected(rows + more)


def test_views_restored_from_a_release_that_took_aws_ranges_for_apps():
    """A savepoint of an earlier release holds views and dependency edges where AWS's published
    ranges were apps: the first windows after the restore wrote dependency and risk rows
    naming aws:..., and every such edge, never seen again, went silent as dependency_gone."""
    from flowdredge.job.config import Config
    old = decode_views(_VERSION_3_BATCH)   # reduced when aws:S3:us-east-1 was an app
    assert any(k[0].startswith("aws:") or k[1].startswith("aws:") for k in old.dependencies)
    results = s.window_results(W, old, RULES)
    assert not any(app.startswith("aws:") for row in results.dependencies for app in row[1:3])
    assert not any(row[1].startswith("aws:") for row in results.exposure + results.egress)
    assert not any(json.loads(line)["app"].startswith("aws:") for line in results.risk)
    assert results.exposure and results.risk

    rules = Config().replace(security={"warmup_seconds": 0,
                                       "dependency_silence_seconds": 60}).security
    edges = {("api", "aws:S3:us-east-1", 443, 6): ("api", "aws:S3:us-east-1", 443, 6, W, W, 1, 9),
             ("api", "db", 5432, 6): ("api", "db", 5432, 6, W, W, 1, 9)}
    events = s.SecurityEvents(60, rules, (W, W, edges, {}, {}))
    events.add_window(W + 600, [(W + 600, "web", "aws:S3:us-east-1", 443, 6, 1, 1, 9, 1, 1)],
                      [(W + 600, "aws:S3:us-east-1", "-", 443, 6, 3, 3, 900, 2)], [])
    lines, _rejected, _timers = events.advance(10 ** 12, True)
    gone = [json.loads(line) for line in lines if json.loads(line)["event"] == "dependency_gone"]
    assert [(e["client_app"], e["server_app"]) for e in gone] == [("api", "db")]
    assert not any("aws:" in line for line in lines)
