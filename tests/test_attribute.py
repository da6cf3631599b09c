import functools
import ipaddress
import json
import os
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from helpers import column_group, plain_views
from flowdredge.job import attribute, codec, groupby
from flowdredge.job.addresses import address_codes
from flowdredge.job.aggregate import LatenessHorizon, is_late
from flowdredge.job.enriched import EnrichedWriter
from flowdredge.job.attribute import (_NOT_INTERNET, _is_private, attribute_group,
                                      default_classifier)
from flowdredge.job.groupby import packed_key
from flowdredge.job.ownership import MetaEvent, OwnershipIndex, vpc_key
from flowdredge.job.parse import FlowFormat, FlowGroup, parse_line
from flowdredge.schemas.metadata import ASSIGN, OWNER_FIELDS, UNASSIGN
from flowdredge.schemas.outputs import CONVERSATION

pytestmark = pytest.mark.unit


def _owner(app, region, interface_id="-"):
    values = dict.fromkeys(OWNER_FIELDS, "-")
    values.update(app=app, region=region, interface_id=interface_id)
    return tuple(values[f] for f in OWNER_FIELDS)


@pytest.mark.parametrize("ip,app", [
    ("10.1.2.3", "unattributed"), ("172.20.0.1", "unattributed"), ("192.168.1.1", "unattributed"),
    ("100.64.0.1", "unattributed"), ("100.127.255.255", "unattributed"),
    ("169.254.169.254", "unattributed"), ("fd00::1", "unattributed"), ("fe80::1", "unattributed"),
    ("127.0.0.1", "unattributed"), ("127.255.255.254", "unattributed"), ("::1", "unattributed"),
    ("8.8.8.8", "internet"), ("172.32.0.1", "internet"), ("2001:db8::1", "internet"),
    ("100.128.0.1", "internet"), ("100.63.255.255", "internet"), ("128.0.0.1", "internet"),
])
def test_unowned_addresses(ip, app):
    assert default_classifier.owner(ip)[0] == app
    assert set(default_classifier.owner(ip)[1:]) == {"-"}
    # The independent computation the mini-cluster tests compare the job with says the same.
    assert reference.owner_at({}, ip, 0) == {"app": app, "region": "-"}


def test_both_ends_attributed_at_flow_start_and_pre_aggregated():
    index = OwnershipIndex()
    index.apply(MetaEvent(ASSIGN, 0, "10.0.0.1", _owner("api", "us-east-1")))
    index.apply(MetaEvent(ASSIGN, 0, "10.0.0.2", _owner("db", "us-east-1")))
    index.apply(MetaEvent(UNASSIGN, 100_000, "10.0.0.2", None))
    index.apply(MetaEvent(ASSIGN, 100_000, "10.0.0.2", _owner("cache", "eu-west-1")))
    fmt = FlowFormat.parse("srcaddr dstaddr dstport protocol packets bytes start action")
    flows = [parse_line(fmt, line) for line in (
        "10.0.0.1 10.0.0.2 5432 6 2 100 60 ACCEPT",
        "10.0.0.1 10.0.0.2 5432 6 3 200 99 ACCEPT",     # 99 s < 100 s: still db
        "10.0.0.1 10.0.0.2 5432 6 1 50 100 REJECT",     # at the change: cache
        "10.0.0.1 8.8.8.8 443 6 1 10 70 ACCEPT")]
    out = attribute_group(FlowGroup(fmt, 60, 100, flows, "t"), index, enriched=True)
    rows = sorted(out.partials.rows(), key=str)
    assert rows == sorted([
        (60, "api", "us-east-1", "db", "us-east-1", 5432, 6, "ACCEPT", 2, 5, 300),
        (60, "api", "us-east-1", "cache", "eu-west-1", 5432, 6, "REJECT", 1, 1, 50),
        (60, "api", "us-east-1", "internet", "-", 443, 6, "ACCEPT", 1, 1, 10)], key=str)
    assert out.counts == {"src_owned": 4, "dst_owned": 3, "dst_internet": 1}
    first = json.loads(out.enriched.splitlines()[0])
    assert first["src_app"] == "api" and first["dst_app"] == "db" and first["bytes"] == 100
    assert first["dst_region"] == "us-east-1" and "dst_cluster" in first


def test_pkt_addresses_win_over_interface_addresses():
    # Behind a NAT gateway or load balancer the interface addresses are the middlebox's; the
    # pkt-* addresses are the real ends. Every address here has its own owner.
    index = OwnershipIndex()
    for ip, app in (("10.0.0.5", "nat-src"), ("10.0.0.6", "nat-dst"),
                    ("10.0.0.9", "real-client"), ("10.0.0.10", "real-server")):
        index.apply(MetaEvent(ASSIGN, 0, ip, _owner(app, "us-east-1")))
    fmt = FlowFormat.parse("srcaddr dstaddr pkt-srcaddr pkt-dstaddr start bytes")
    flows = [parse_line(fmt, line) for line in (
        "10.0.0.5 10.0.0.6 10.0.0.9 10.0.0.10 60 1",
        "10.0.0.5 10.0.0.6 10.0.0.9 - 60 10",         # no pkt-dstaddr: the interface's
        "10.0.0.5 10.0.0.6 - 10.0.0.10 60 100",
        "10.0.0.5 10.0.0.6 - - 60 1000")]
    out = attribute_group(FlowGroup(fmt, 60, 60, flows, "t"), index, enriched=True)
    assert {(r[1], r[3]): r[-1] for r in out.partials.rows()} == {
        ("real-client", "real-server"): 1, ("real-client", "nat-dst"): 10,
        ("nat-src", "real-server"): 100, ("nat-src", "nat-dst"): 1000}
    first = json.loads(out.enriched.splitlines()[0])
    assert (first["src_app"], first["dst_app"]) == ("real-client", "real-server")


@pytest.mark.parametrize("columns", [False, True])
def test_an_address_overlapping_vpcs_hold_is_owned_within_the_flows_vpc(columns):
    # 172.31.0.10 is in two default VPCs: no owner of its own (the publisher's UNASSIGN), an
    # owner within each VPC. A flow is attributed within the VPC its line names, never across.
    index = OwnershipIndex()
    index.apply(MetaEvent(UNASSIGN, 0, "172.31.0.10", None))
    index.apply(MetaEvent(ASSIGN, 0, vpc_key("vpc-0a1b2c3d", "172.31.0.10"), _owner("api", "r1")))
    index.apply(MetaEvent(ASSIGN, 0, vpc_key("vpc-0b1b2c3d", "172.31.0.10"), _owner("db", "r2")))
    index.apply(MetaEvent(UNASSIGN, 100_000, vpc_key("vpc-0b1b2c3d", "172.31.0.10"), None))
    index.apply(MetaEvent(ASSIGN, 0, "172.31.0.20", _owner("web", "r1")))
    # An owner of its own wins over a VPC's (a claim the publisher has not taken back yet).
    index.apply(MetaEvent(ASSIGN, 0, vpc_key("vpc-0a1b2c3d", "172.31.0.20"), _owner("old", "r1")))
    fmt = FlowFormat.parse("srcaddr dstaddr start bytes vpc-id")
    flows = [parse_line(fmt, line) for line in (
        "172.31.0.20 172.31.0.10 60 1 vpc-0a1b2c3d",
        "172.31.0.20 172.31.0.10 60 10 vpc-0b1b2c3d",
        "172.31.0.10 172.31.0.20 100 100 vpc-0b1b2c3d",     # db's claim taken back at 100 s
        "172.31.0.10 172.31.0.20 60 1000 -",                # no VPC on the line: nobody's
        "172.31.0.10 172.31.0.20 60 10000 vpc-0c1b2c3d")]   # a VPC without a claim: nobody's
    group = FlowGroup(fmt, 60, 100, flows, "t")
    out = attribute_group(column_group(group) if columns else group, index, enriched=True)
    assert {(r[1], r[3]): r[-1] for r in out.partials.rows()} == {
        ("web", "api"): 1, ("web", "db"): 10, ("unattributed", "web"): 11100}
    assert out.counts == {"src_owned": 2, "src_unattributed": 3, "dst_owned": 5,
                          "dst_owned_in_vpc": 2}
    lines = [json.loads(line) for line in out.enriched.splitlines()]
    assert [(e["dst_app"], e["dst_region"]) for e in lines[:2]] == [("api", "r1"), ("db", "r2")]


@pytest.mark.parametrize("columns", [False, True])
def test_a_line_without_vpc_id_is_owned_within_the_vpc_its_interface_is_in(columns):
    """AWS's default format has no `vpc-id` but `interface-id`: the VPC the VPC claims name
    the interface in (OwnershipIndex.interface_vpc) stands for it. Never a guess: an interface
    no claim names, one claims name in two VPCs, `-`, or a VPC without a claim on the address
    leave the end unattributed; an owner of its own wins; a line's `vpc-id` wins."""
    a, b = "vpc-0a1b2c3d", "vpc-0b1b2c3d"
    index = OwnershipIndex()
    for ip in ("172.31.0.10", "172.31.0.40"):
        index.apply(MetaEvent(UNASSIGN, 0, ip, None))
    for ts, vpc, ip, app, interface in [
            (0, a, "172.31.0.10", "api", "eni-a"), (0, b, "172.31.0.10", "db", "eni-b"),
            (0, b, "172.31.0.40", "batch", "eni-b2"), (0, a, "172.31.0.20", "old", "eni-a2"),
            (0, a, "172.31.0.50", "c1", "eni-c"), (0, b, "172.31.0.51", "c2", "eni-c"),
            (90_000, a, "172.31.0.60", "late", "-")]:
        index.apply(MetaEvent(ASSIGN, ts, vpc_key(vpc, ip), _owner(app, "r1", interface)))
    index.apply(MetaEvent(ASSIGN, 0, "172.31.0.20", _owner("web", "r1", "eni-w")))
    fmt = FlowFormat.parse("interface-id srcaddr dstaddr start bytes vpc-id")
    flows = [parse_line(fmt, line) for line in (
        "eni-a 172.31.0.20 172.31.0.10 60 1 -",         # eni-a: VPC a's claims: api
        "eni-b 172.31.0.40 172.31.0.10 60 2 -",         # eni-b: b's: batch to db
        "eni-z 172.31.0.40 172.31.0.10 60 4 -",         # no claim names eni-z: nobody's
        "- 172.31.0.40 172.31.0.10 60 8 -",             # no interface: nobody's
        "eni-c 172.31.0.40 172.31.0.10 60 16 -",        # eni-c named in a and b: nobody's
        "eni-a 172.31.0.40 172.31.0.10 60 32 -",        # 172.31.0.40 only b claims: nobody's
        "eni-a2 172.31.0.60 172.31.0.10 60 64 -",       # 172.31.0.60 a's from 90 s only
        "eni-a2 172.31.0.60 172.31.0.10 90 128 -",
        "eni-a 172.31.0.40 172.31.0.10 60 256 " + b)]   # the line's VPC, not the interface's
    group = FlowGroup(fmt, 60, 90, flows, "t")
    out = attribute_group(column_group(group) if columns else group, index, enriched=True)
    assert {(r[1], r[3]): r[-1] for r in out.partials.rows()} == {
        ("web", "api"): 1, ("batch", "db"): 2 + 256, ("unattributed", "unattributed"): 4 + 8 + 16,
        ("unattributed", "api"): 32 + 64, ("late", "api"): 128}
    assert out.counts == {"src_owned": 4, "src_owned_in_vpc": 3, "src_unattributed": 5,
                          "dst_owned": 6, "dst_owned_in_vpc": 6, "dst_unattributed": 3}
    lines = [json.loads(line) for line in out.enriched.splitlines()]
    assert [(e["src_app"], e["dst_app"]) for e in lines[:2]] == [("web", "api"), ("batch", "db")]


@pytest.mark.parametrize("columns", [False, True])
def test_flows_after_a_restore_take_no_owner_an_earlier_release_took_past_todays_checks(columns):
    """Broadcast state of a release before the changelog's owner checks: 10.0.0.1's app " "
    (now `-`); 10.0.0.2 db's, then from 60 s an app holding an escape sequence (now refused:
    that ASSIGN an UNASSIGN, the address unattributed from 60 s); 10.0.0.3 db's, the same
    change after the flows. Before, the restored owners were taken as they were, into every
    output keyed or written by them."""
    part = '[2,"%s","-","-","-","r1","-","-"]'
    state = {"owner 0": part % " ", "owner 1": part % "api\\u001b[31m", "owner 2": part % "db",
             "10.0.0.1": '[2,0,1,0,"-","-"]',
             "10.0.0.2": '[2,0,1,2,"-","-",60000,1,1,"-","-"]',
             "10.0.0.3": '[2,0,1,2,"-","-",120000,1,1,"-","-"]'}
    index = OwnershipIndex()
    index.load(lambda: iter(list(state.items())))
    fmt = FlowFormat.parse("srcaddr dstaddr start bytes")
    flows = [parse_line(fmt, line) for line in (
        "10.0.0.1 10.0.0.2 30 1", "10.0.0.1 10.0.0.2 60 10", "10.0.0.1 10.0.0.3 100 100")]
    group = FlowGroup(fmt, 0, 100, flows, "t")
    out = attribute_group(column_group(group) if columns else group, index, enriched=True)
    assert {(r[1], r[3]): r[-1] for r in out.partials.rows()} == {
        ("-", "db"): 101, ("-", "unattributed"): 10}
    lines = [json.loads(line) for line in out.enriched.splitlines()]
    assert [(e["src_app"], e["dst_app"]) for e in lines] == [
        ("-", "db"), ("-", "unattributed"), ("-", "db")]


def test_lateness():
    assert not is_late(60, 60, 119_998)
    assert is_late(60, 60, 119_999)
    horizon = LatenessHorizon(producers=2, out_of_orderness_ms=1000)
    assert horizon.observe(0, 50_000, -1) == -1          # producer 1 not heard from yet
    assert horizon.observe(1, 10_000, -1) == 8_999       # min over producers, minus the bound
    assert horizon.observe(1, 90_000, 60_000) == 60_000  # never behind the watermark


def test_a_producers_older_record_does_not_take_the_lateness_horizon_back():
    """Per producer its latest timestamp counts, not its last: the bounded-out-of-orderness
    watermark after a record out of order stays where the later one put it, and a horizon
    taken back would judge on time a group whose window the window operator has fired."""
    horizon = LatenessHorizon(producers=1, out_of_orderness_ms=1000)
    assert horizon.observe(0, 90_000, -1) == 88_999
    assert horizon.observe(0, 50_000, -1) == 88_999


def test_private_ipv4_by_two_octets_is_ipaddress_rule():
    """_NOT_INTERNET's IPv4 networks by the first two octets, one address at a time and in
    arrays, for every pair of them."""
    import ipaddress

    import numpy as np

    from flowdredge.job.attribute import _NOT_INTERNET, _is_private_v4, _private_v4
    ips = [f"{a}.{b}.7.9" for a in range(256) for b in range(256)]
    truth = [any(ipaddress.ip_address(ip) in net for net in _NOT_INTERNET if net.version == 4)
             for ip in ips]
    assert [_is_private_v4(ip) for ip in ips] == truth
    ints = np.array([(a << 24) | (b << 16) | (7 << 8) | 9 for a in range(256)
                     for b in range(256)], np.int64)
    assert _private_v4(ints).tolist() == truth
    # 10/8, 127/8; 172.16/12, 192.168/16, 100.64/10, 169.254/16
    assert sum(truth) == 256 * 2 + 16 + 1 + 64 + 1


@pytest.mark.parametrize("with_ranges", [False, True])
def test_unowned_owners_in_arrays_are_those_one_by_one(with_ranges):
    import os

    import pyarrow as pa

    from flowdredge.job.attribute import UnownedClassifier
    from flowdredge.job.ipranges import load
    ranges = load(os.path.join(os.path.dirname(__file__), "data", "ip-ranges.json")) \
        if with_ranges else None
    ips = ["10.1.2.3", "8.8.8.8", "52.216.10.1", "52.95.128.179", "3.5.0.1", "172.31.0.9",
           "172.32.0.9", "fd00::1", "2001:db8::1", "::1", "100.64.0.1", "8.8.8.8",
           "54.239.28.85", "169.254.169.254", "::ffff:10.0.0.1"]
    classifier = UnownedClassifier(ranges)
    owners, ids = classifier.owners(pa.array(ips))
    assert len(set(owners)) == len(owners)
    assert [owners[i] for i in ids.tolist()] == [classifier.owner(ip) for ip in ips]
    assert with_ranges == any(o[0].startswith("aws:") for o in owners)
    # Some of a larger array's addresses, by position (job.attribute._end's unowned ends), with
    # or without their codes: each address's own owner, in the positions' order.
    among = ["8.8.4.4", "fe80::1"] + ips[::-1] + ["10.9.9.9"]
    items = np.array([12, 2, 9, 0, 16, 7, 7, 3])
    for codes in (None, address_codes(pa.array(among), {})[items]):
        owners, ids = classifier.owners(pa.array(among), codes, items)
        assert [owners[i] for i in ids.tolist()] == [classifier.owner(among[i]) for i in items]


def test_aws_ranges_name_public_addresses_without_owner():
    import os
    from flowdredge.job.attribute import UnownedClassifier
    from flowdredge.job.ipranges import load
    ranges = load(os.path.join(os.path.dirname(__file__), "data", "ip-ranges.json"))
    classifier = UnownedClassifier(ranges)
    classify = classifier.owner
    aws_ip = next(ip for ip in ("52.216.10.1", "52.95.128.179", "54.239.28.85", "3.5.0.1")
                  if ranges.classify(ip))
    assert classify(aws_ip)[0] == ranges.classify(aws_ip) and classify(aws_ip)[0].startswith("aws:")
    assert classify("10.0.0.1")[0] == "unattributed" and classify("198.51.100.7")[0] == "internet"
    fmt = FlowFormat.parse("srcaddr dstaddr start")
    group = FlowGroup(fmt, 60, 60, [parse_line(fmt, f"10.0.0.5 {aws_ip} 60")], "t")
    out = attribute_group(group, OwnershipIndex(), enriched=False, unowned=classifier)
    assert list(out.partials.rows())[0][3] == ranges.classify(aws_ip)
    assert out.counts == {"src_unattributed": 1, "dst_aws": 1}


CONVERSATION_FORMAT = FlowFormat.parse(
    "srcaddr dstaddr srcport dstport protocol packets bytes start action tcp-flags")


def _conversations(lines, fmt=CONVERSATION_FORMAT, **options):
    """attribute_group's conversation rows as dicts of schemas.outputs.CONVERSATION, keyed by
    (client_addr, server_addr, service_port, client_port, action)."""
    index = OwnershipIndex()
    index.apply(MetaEvent(ASSIGN, 0, "10.0.0.1", _owner("api", "us-east-1")))
    index.apply(MetaEvent(ASSIGN, 0, "10.0.0.2", _owner("db", "us-east-1")))
    flows = [parse_line(fmt, line) for line in lines]
    out = attribute_group(FlowGroup(fmt, 60, 119, flows, "t"), index, enriched=False,
                          conversations=True, **options)
    rows = [dict(zip(CONVERSATION.names, row)) for row in out.conversations.rows()]
    by_key = {(r["client_addr"], r["server_addr"], r["service_port"], r["client_port"],
               r["action"]): r for r in rows}
    assert len(by_key) == len(rows)
    return by_key


def _volume(row):
    return tuple(row[f] for f in ("flows", "packets", "bytes", "client_flows", "client_packets",
                                  "client_bytes"))


def test_conversations_are_oriented_and_keyed_on_the_service_side():
    # Three connections from ephemeral ports, both directions logged, no tcp-flags.
    lines = []
    for n, port in enumerate((50001, 50002, 61000)):
        lines.append(f"10.0.0.1 10.0.0.2 {port} 5432 6 {n + 1} {100 * (n + 1)} 60 ACCEPT -")
        lines.append(f"10.0.0.2 10.0.0.1 5432 {port} 6 10 1000 61 ACCEPT -")
    rows = _conversations(lines)
    assert list(rows) == [("10.0.0.1", "10.0.0.2", 5432, None, "ACCEPT")]
    row = rows[("10.0.0.1", "10.0.0.2", 5432, None, "ACCEPT")]
    assert (row["win_start"], row["client_app"], row["server_app"], row["protocol"]) == (
        60, "api", "db", 6)
    assert _volume(row) == (6, 6 + 30, 600 + 3000, 3, 6, 600)


def test_tcp_flags_orient_before_ports():
    # The client binds port 2000, lower than the service's 7443: only the flags tell.
    rows = _conversations(["10.0.0.1 10.0.0.2 2000 7443 6 2 100 60 ACCEPT 3",     # SYN-FIN
                           "10.0.0.2 10.0.0.1 7443 2000 6 1 400 60 ACCEPT 19"])   # SYN-ACK-FIN
    assert _volume(rows[("10.0.0.1", "10.0.0.2", 7443, None, "ACCEPT")]) == (2, 3, 500, 1, 2, 100)
    assert len(rows) == 1
    # Without flags the lower port would be the server's.
    rows = _conversations(["10.0.0.1 10.0.0.2 2000 7443 6 2 100 60 ACCEPT -"])
    assert list(rows) == [("10.0.0.2", "10.0.0.1", 2000, None, "ACCEPT")]


def test_configured_service_ports_decide():
    line = "10.0.0.1 10.0.0.2 80 9200 6 1 10 60 ACCEPT -"
    assert list(_conversations([line], service_ports=frozenset({9200}))) == [
        ("10.0.0.1", "10.0.0.2", 9200, None, "ACCEPT")]
    # Not listed: the well-known port is the server's.
    assert list(_conversations([line], service_ports=frozenset())) == [
        ("10.0.0.2", "10.0.0.1", 80, None, "ACCEPT")]


def test_rejected_records_from_the_server_keep_the_clients_port():
    rows = _conversations([
        "10.0.0.1 10.0.0.2 50001 5432 6 1 60 60 REJECT -",    # refused at the server
        "10.0.0.1 10.0.0.2 50002 5432 6 1 60 60 REJECT -",
        "10.0.0.2 10.0.0.1 5432 50001 6 2 80 60 REJECT -",    # an answer refused at the client
        "10.0.0.2 10.0.0.1 5432 50003 6 4 90 60 ACCEPT -"])   # accepted answers need no port
    assert {k: _volume(v) for k, v in rows.items()} == {
        ("10.0.0.1", "10.0.0.2", 5432, None, "REJECT"): (2, 2, 120, 2, 2, 120),
        ("10.0.0.1", "10.0.0.2", 5432, 50001, "REJECT"): (1, 2, 80, 0, 0, 0),
        ("10.0.0.1", "10.0.0.2", 5432, None, "ACCEPT"): (1, 4, 90, 0, 0, 0)}
    # The server end's owner and resource are the source's for records from the server.
    answer = rows[("10.0.0.1", "10.0.0.2", 5432, 50001, "REJECT")]
    assert (answer["client_app"], answer["server_app"]) == ("api", "db")


def test_records_without_ports_keep_their_direction():
    fmt = FlowFormat.parse("srcaddr dstaddr protocol packets bytes start action")
    rows = _conversations(["10.0.0.2 8.8.8.8 1 1 84 60 ACCEPT",
                           "8.8.8.8 10.0.0.2 1 1 84 61 ACCEPT"], fmt=fmt)
    assert {(k, r["client_app"], r["server_app"]) for k, r in rows.items()} == {
        (("10.0.0.2", "8.8.8.8", None, None, "ACCEPT"), "db", "internet"),
        (("8.8.8.8", "10.0.0.2", None, None, "ACCEPT"), "internet", "db")}


def test_a_batch_of_ephemeral_client_ports_makes_one_row_per_service():
    lines = [f"10.0.0.1 10.0.0.2 {32768 + n} {(5432, 6379)[n % 2]} 6 1 100 60 ACCEPT -"
             for n in range(2000)]
    rows = _conversations(lines)
    assert {k: r["flows"] for k, r in rows.items()} == {
        ("10.0.0.1", "10.0.0.2", 5432, None, "ACCEPT"): 1000,
        ("10.0.0.1", "10.0.0.2", 6379, None, "ACCEPT"): 1000}


@settings(max_examples=2000, deadline=None)
@given(st.ip_addresses(v=4).map(str)
       | st.sampled_from(["10.0.0.0", "172.15.255.255", "172.16.0.0", "172.31.255.255",
                          "172.32.0.0", "192.167.255.255", "192.168.0.1", "100.63.255.255",
                          "100.64.0.0", "100.127.255.255", "100.128.0.0", "169.254.1.1",
                          "127.0.0.1", "9.255.255.255", "11.0.0.0"]))
def test_the_ipv4_fast_path_agrees_with_the_networks(ip):
    addr = ipaddress.ip_address(ip)
    assert _is_private(ip) == any(addr in net for net in _NOT_INTERNET if net.version == 4)


@settings(max_examples=2000, deadline=None)
@given(st.ip_addresses(v=6).map(str)
       | st.ip_addresses(v=6).map(lambda a: a.exploded.upper())
       | st.sampled_from(["fc00::", "fbff:ffff::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                          "fe00::1", "fe80::", "FEBF::1", "fec0::", "::1", "::2", "::",
                          "0:0:0:0:0:0:0:1", "::ffff:10.0.0.1", "fe80::1%eth0", "2001:db8::1"]))
def test_the_ipv6_fast_path_agrees_with_the_networks(ip):
    addr = ipaddress.ip_address(ip)
    assert _is_private(ip) == any(addr in net for net in _NOT_INTERNET if net.version == 6)


_IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "8.8.8.8", "192.168.1.1", "2001:db8::1", "fd00::2"]
# Public addresses that tests/data/ip-ranges.json names (IPv4 and IPv6) or does not: without an
# owner they are classified by their text.
_PUBLIC_IPS = ["52.216.10.1", "54.239.28.85", "2600:1f00::5", "198.51.100.7"]
_VPCS = ["vpc-0a1b2c3d", "vpc-0123456789abcdef0"]
_INTERFACES = ["eni-1", "eni-2", "eni-3"]
_FORMATS = [FlowFormat.parse("srcaddr dstaddr srcport dstport protocol packets bytes start action"
                             " tcp-flags vpc-id interface-id"),
            FlowFormat.parse("version pkt-srcaddr srcaddr pkt-dstaddr dstaddr dstport packets "
                             "start bytes")]
_ends = st.sampled_from(_IPS + _PUBLIC_IPS)
_flow_values = st.fixed_dictionaries({
    "srcaddr": _ends, "dstaddr": _ends,
    "pkt-srcaddr": st.none() | _ends, "pkt-dstaddr": st.none() | _ends,
    "srcport": st.none() | st.sampled_from([22, 443, 5432, 40000, 65535]),
    # Neighbouring values: a key packed with a radix one too small makes two of them one.
    "dstport": st.none() | st.sampled_from([0, 1, 442, 443, 65534, 65535]),
    "protocol": st.none() | st.sampled_from([0, 1, 6, 17]),
    "packets": st.none() | st.integers(0, 10), "bytes": st.none() | st.integers(0, 2**63 - 1),
    "start": st.integers(60, 64), "action": st.none() | st.sampled_from(["ACCEPT", "REJECT"]),
    "tcp-flags": st.none() | st.sampled_from([2, 18, 19]), "version": st.just(5),
    "vpc-id": st.none() | st.sampled_from(_VPCS),
    "interface-id": st.none() | st.sampled_from(_INTERFACES)})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([ASSIGN, UNASSIGN]), st.integers(58, 66),
                          st.sampled_from(_IPS), st.sampled_from(["api", "db", "cache"]),
                          st.none() | st.sampled_from(_VPCS), st.sampled_from(_INTERFACES)),
                max_size=12),
       st.sampled_from(_FORMATS), st.lists(_flow_values, min_size=1, max_size=40),
       st.booleans(), st.booleans(), st.sampled_from(["batch", "slice", "codec"]))
def test_columns_and_rows_attribute_a_group_alike(events, fmt, values, late, ranges, form):
    """The column path (a group of columns, as the vectorised parser makes them, aggregates
    only) and the row path (a group of flows) give the same partial rows in the same order and
    counts, for any index: IPs with one owner, several, an UNASSIGN, none, an owner from after
    the flow, an owner within a VPC only (the line's or its interface's); ends without one
    classified with ip-ranges or without; the columns a batch's own, a slice of a larger one's
    (an offset) or decoded (job.codec); and with the enriched lines and the security views
    asked for, the same lines and views (a late group of columns goes flow by flow)."""
    unowned = attribute.UnownedClassifier(_test_ranges() if ranges else None)
    index = OwnershipIndex()
    for kind, ts, ip, app, vpc, interface in events:
        index.apply(MetaEvent(kind, ts * 1000, ip if vpc is None else vpc_key(vpc, ip),
                              _owner(app, "r", interface) if kind == ASSIGN else None))
    flows = [tuple(v[name] for name in fmt.fields) for v in values]
    group = FlowGroup(fmt, 60, max(v["start"] for v in values), flows, "t")
    rows = attribute_group(group, index, enriched=False, unowned=unowned)
    columns = attribute_group(_read_as(form, group), index, enriched=False, unowned=unowned)
    # Sums past int64 added in Python.
    with mock.patch.object(groupby, "_INT64_MAX", 40):
        small_ints = attribute_group(_read_as(form, group), index, enriched=False, unowned=unowned)
    for out in (columns, small_ints):
        assert list(out.partials.rows()) == list(rows.partials.rows())
        assert out.counts == rows.counts
    options = {"enriched": True, "extra": {"window_start": 60} if late else None,
               "conversations": not late, "unowned": unowned}
    for block_from in (attribute.BLOCK_MIN_FLOWS, 1):   # lines() and EnrichedWriter.block
        with mock.patch.object(attribute, "BLOCK_MIN_FLOWS", block_from):
            rows, columns = (attribute_group(g, index, **options)
                             for g in (group, _read_as(form, group)))
        assert list(columns.partials.rows()) == list(rows.partials.rows())
        assert columns.counts == rows.counts
        assert columns.enriched == rows.enriched
        if not late:
            assert plain_views(columns.views) == plain_views(rows.views)


@functools.lru_cache(maxsize=1)
def _test_ranges():
    from flowdredge.job.ipranges import load
    return load(os.path.join(os.path.dirname(__file__), "data", "ip-ranges.json"))


def _read_as(form: str, group: FlowGroup) -> FlowGroup:
    """The group as columns (helpers.column_group): the batch itself, a slice of a batch with
    rows before and after it (an offset), or decoded as job.codec carries it between
    operators."""
    columns = column_group(group)
    if form == "codec":
        return codec.decode_group(codec.encode_group(columns), group.window_start,
                                  group.max_start)
    if form == "slice":
        batch = columns.columns
        n = batch.num_rows
        # The rows before it in reverse: a slice read from its buffers' start reads other values.
        padded = pa.Table.from_batches([batch.take(np.arange(n)[::-1]), batch, batch])
        return FlowGroup(group.fmt, group.window_start, group.max_start, None, group.source,
                         padded.combine_chunks().to_batches()[0].slice(n, n))
    return columns


# Values without a null: a group of them renders its enriched lines over its columns.
_plain_flow_values = st.fixed_dictionaries({
    "srcaddr": st.sampled_from(_IPS), "dstaddr": st.sampled_from(_IPS),
    "pkt-srcaddr": st.sampled_from(_IPS), "pkt-dstaddr": st.sampled_from(_IPS),
    "srcport": st.sampled_from([22, 443, 5432, 40000, 65535]),
    "dstport": st.sampled_from([0, 1, 442, 443, 65534, 65535]),
    "protocol": st.sampled_from([0, 1, 6, 17]), "packets": st.integers(0, 10),
    "bytes": st.integers(0, 2**62), "start": st.integers(60, 64),
    "action": st.sampled_from(["ACCEPT", "REJECT"]), "tcp-flags": st.sampled_from([2, 18, 19]),
    "version": st.just(5), "vpc-id": st.sampled_from(_VPCS),
    "interface-id": st.sampled_from(_INTERFACES)})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([ASSIGN, UNASSIGN]), st.integers(58, 66),
                          st.sampled_from(_IPS), st.sampled_from(["api", "db", "cache"])),
                max_size=12),
       st.sampled_from(_FORMATS), st.lists(_plain_flow_values, min_size=1, max_size=40))
def test_a_group_of_columns_renders_its_enriched_lines_over_its_columns(events, fmt, values):
    """Without a null or a value to escape, a group of columns of enough flows never goes
    through lines(), and its lines are the row path's."""
    index = OwnershipIndex()
    for kind, ts, ip, app in events:
        index.apply(MetaEvent(kind, ts * 1000, ip, _owner(app, "r") if kind == ASSIGN else None))
    flows = [tuple(v[name] for name in fmt.fields) for v in values]
    group = FlowGroup(fmt, 60, max(v["start"] for v in values), flows, "t")
    rows = attribute_group(group, index, enriched=True, conversations=True)
    with mock.patch.object(attribute, "BLOCK_MIN_FLOWS", 1), mock.patch.object(
            EnrichedWriter, "lines", side_effect=AssertionError("rendered line by line")):
        columns = attribute_group(column_group(group), index, enriched=True, conversations=True)
    assert columns.enriched == rows.enriched
    assert list(columns.partials.rows()) == list(rows.partials.rows())
    assert plain_views(columns.views) == plain_views(rows.views)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=5).flatmap(
           lambda radixes: st.tuples(st.just(radixes), st.lists(
               st.tuples(*[st.integers(0, r - 1) for r in radixes]), min_size=1, max_size=30))),
       st.integers(1, 200))
def test_a_packed_key_tells_rows_apart_exactly_and_stays_below_its_limit(columns, limit):
    radixes, rows = columns
    codes = [np.array(column, np.int64) for column in zip(*rows)]
    key = packed_key(list(zip(codes, radixes)), limit).tolist()
    assert all((key[i] == key[j]) == (rows[i] == rows[j])
               for i in range(len(rows)) for j in range(len(rows)))
    assert max(key) < max(limit, len(rows) * max(radixes))


_CLAIM_IPS = ["10.0.0.1", "10.0.0.2", "8.8.8.8", "2001:db8::1", "fd00::2", "10.0.0.9"]
_CLAIM_FORMATS = [_FORMATS[0], FlowFormat.parse(
    "version vpc-id pkt-srcaddr srcaddr pkt-dstaddr dstaddr dstport packets start bytes srcport "
    "tcp-flags action protocol"), FlowFormat.parse(   # as AWS's default: no vpc-id
    "version interface-id srcaddr dstaddr srcport dstport protocol packets bytes start action")]
_claim_events = st.lists(st.tuples(st.sampled_from([ASSIGN, UNASSIGN]), st.integers(55, 70),
                                   st.sampled_from(_CLAIM_IPS),
                                   st.sampled_from(["api", "db", "cache"]),
                                   st.none() | st.sampled_from(_VPCS),
                                   st.sampled_from(["-", *_INTERFACES]),
                                   st.none() | st.sampled_from(_VPCS)), max_size=25)
_claim_flows = st.fixed_dictionaries({
    "srcaddr": st.sampled_from(_CLAIM_IPS), "dstaddr": st.sampled_from(_CLAIM_IPS),
    "pkt-srcaddr": st.none() | st.sampled_from(_CLAIM_IPS),
    "pkt-dstaddr": st.none() | st.sampled_from(_CLAIM_IPS),
    "srcport": st.none() | st.sampled_from([22, 443, 40000]),
    "dstport": st.none() | st.sampled_from([22, 443, 40000]),
    "protocol": st.none() | st.sampled_from([6, 17]), "packets": st.integers(0, 5),
    "bytes": st.integers(0, 100), "start": st.integers(58, 68),
    "action": st.sampled_from(["ACCEPT", "REJECT"]), "tcp-flags": st.none() | st.sampled_from([2, 18]),
    "version": st.just(5), "vpc-id": st.sampled_from([None, *_VPCS, "vpc-0c0c0c0c"]),
    "interface-id": st.sampled_from([None, *_INTERFACES, "eni-9"])})


def _claim_key(ip, vpc):
    return ip if vpc is None else vpc_key(vpc, ip)


def _interface_vpcs(index, events) -> dict:
    """The VPC of each interface, by brute force: the one VPC the VPC claims `index` holds
    name it in and the ASSIGNs of `events` give it (their interface_vpc_id), while a change
    `index` holds names it (None: two VPCs)."""
    vpcs, named = {}, set()
    for key in index._slots:
        for _ts, _rank, o in index.changes(key):
            if o is not None and o[OWNER_FIELDS.index("interface_id")] != "-":
                named.add(o[OWNER_FIELDS.index("interface_id")])
                if " " in key:
                    vpcs.setdefault(o[OWNER_FIELDS.index("interface_id")], set()).add(
                        key.split()[0])
    for kind, _ts, _ip, _app, vpc, interface, interface_vpc in events:
        if kind == ASSIGN and vpc is None and interface_vpc and interface in named:
            vpcs.setdefault(interface, set()).add(interface_vpc)
    return {interface: len(v) == 1 and next(iter(v)) or None for interface, v in vpcs.items()}


def _known_vpcs(index) -> dict:
    return {i: index.interface_vpc(i) for i in {*index._assigned_vpc, *index._interface_vpc}}


def _expected_app(events, ip, vpc, t_ms):
    """The contract, by brute force: the address's own owner at t, else its owner within the
    flow's VPC."""
    for key in (ip, vpc and vpc_key(vpc, ip)):
        changes = [(ts, kind == ASSIGN, n, app) for n, (kind, ts, e_ip, app, e_vpc, *_)
                   in enumerate(events) if _claim_key(e_ip, e_vpc) == key and ts * 1000 <= t_ms]
        if changes and max(changes)[1]:
            return max(changes)[3]
    return None


def _check_claims(index, events, fmt, values):
    flows = [tuple(v[name] for name in fmt.fields) for v in values]
    group = FlowGroup(fmt, 60, max(v["start"] for v in values), flows, "t")
    ends = [[v[f"pkt-{side}"] if f"pkt-{side}" in fmt.pos and v[f"pkt-{side}"] else v[side]
             for side in ("srcaddr", "dstaddr")] for v in values]
    interface_vpcs = _interface_vpcs(index, events)
    assert interface_vpcs == _known_vpcs(index)
    assert index.interface_conflicts == sum(v is None for v in interface_vpcs.values())
    vpcs = [v["vpc-id"] if "vpc-id" in fmt.pos and v["vpc-id"] else
            "interface-id" in fmt.pos and interface_vpcs.get(v["interface-id"]) for v in values]
    expected = [tuple(_expected_app(events, ip, vpc, v["start"] * 1000) or "nobody"
                      for ip in pair) for v, pair, vpc in zip(values, ends, vpcs)]
    outs = {}
    for name, g, options in [("rows", group, {"conversations": True}),
                             ("columns", column_group(group), {"conversations": True}),
                             ("late rows", group, {"extra": {"window_start": 60}}),
                             ("late columns", column_group(group), {"extra": {"window_start": 60}})]:
        for block_from in (attribute.BLOCK_MIN_FLOWS, 1):
            with mock.patch.object(attribute, "BLOCK_MIN_FLOWS", block_from):
                out = outs[name] = attribute_group(g, index, enriched=True, **options)
            got = [tuple(e[f"{side}_app"] if e[f"{side}_app"] in ("api", "db", "cache")
                         else "nobody" for side in ("src", "dst"))
                   for e in map(json.loads, out.enriched.splitlines())]
            assert got == expected, (name, block_from)
    for out in outs.values():
        assert list(out.partials.rows()) == list(outs["rows"].partials.rows())
        assert out.counts == outs["rows"].counts
    assert outs["late columns"].enriched == outs["late rows"].enriched
    assert plain_views(outs["columns"].views) == plain_views(outs["rows"].views)


@settings(max_examples=150, deadline=None)
@given(_claim_events, _claim_events, st.sampled_from(_CLAIM_FORMATS),
       st.lists(_claim_flows, min_size=1, max_size=30), st.integers(45, 58),
       st.none() | st.integers(35, 58))
def test_vpc_claims_answer_the_contract_after_changes_a_prune_and_a_restore(
        events, more, fmt, values, horizon, released):
    """Every path (rows, columns, late, enriched lines, views) gives each end its own owner at
    its flow's start, else its owner within the flow's VPC, else none: for IPv4 and IPv6
    claims, claims of several changes, pkt- addresses, flows of a VPC without claims or of
    none; after claims added and taken back once the lookup arrays were built, a prune, and a
    restore from broadcast state (a review's probe); a line without a VPC taking its
    interface's, as the claims held and the ASSIGNs' interface_vpc_id name it."""
    index = OwnershipIndex()
    state = {}

    def apply(batch):
        for kind, ts, ip, app, vpc, interface, interface_vpc in batch:
            index.apply(MetaEvent(kind, ts * 1000, _claim_key(ip, vpc),
                                  _owner(app, "r", interface) if kind == ASSIGN else None,
                                  interface_vpc if kind == ASSIGN and vpc is None else None))
        state.update(index.state_entries(list({_claim_key(e[2], e[4]): 0 for e in batch})))
    apply(events)
    _check_claims(index, events, fmt, values)
    apply(more)
    _check_claims(index, events + more, fmt, values)
    changed, removed = index.prune(horizon * 1000, None if released is None else released * 1000)
    state.update(index.state_entries(changed))
    for key in removed:
        state.pop(key, None)
    _check_claims(index, events + more, fmt, values)
    restored = OwnershipIndex()
    restored.load(lambda: iter(list(state.items())))
    assert (_known_vpcs(restored), restored.interface_conflicts) == (
        _known_vpcs(index), index.interface_conflicts)
    _check_claims(restored, events + more, fmt, values)
