"""The columnar attribution (job.attribute.attribute_group) against the rules stated flow by
flow: owner_at per end, client_is_source per record, a dict per output, EnrichedWriter's line
per flow. Any group of flows, any changes of owner inside the group's span."""
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job.attribute import (REJECT, _Ints, _count_key, attribute_group, clients_are_sources,
                           unowned_owner)
from job.codec import decode_group, encode_group
from job.enriched import EnrichedWriter
from job.ownership import MetaEvent, OwnershipIndex
from job.parse import FlowFormat, FlowGroup, decode_tcp_flags
from job.security import DEFAULT_SERVICE_PORTS, client_is_source
from schemas.metadata import ASSIGN, OWNER_FIELDS, UNASSIGN

pytestmark = pytest.mark.unit
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FORMATS = [FlowFormat.parse(f) for f in (
    "srcaddr dstaddr srcport dstport protocol packets bytes start action tcp-flags",
    "version srcaddr dstaddr dstport start pkt-srcaddr pkt-dstaddr action bytes",
    "srcaddr dstaddr start")]
ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "8.8.8.8", "2001:db8::1", "192.168.1.9",
             "fd00::7"]
OWNERS = [tuple(f"{app}-{f}" if f != "app" else app for f in OWNER_FIELDS)
          for app in ("api", "db", "cache")] + [
    tuple("api" if f == "app" else "x" for f in OWNER_FIELDS)]   # another owner, same app
APP, REGION, RESOURCE = (OWNER_FIELDS.index(f) for f in ("app", "region", "resource_id"))
PORTS = st.one_of(st.none(), st.sampled_from([22, 443, 5432, 1023, 1024, 40000, 65535]))
VALUES = {"srcport": PORTS, "dstport": PORTS, "protocol": st.sampled_from([None, 6, 17]),
          "packets": st.one_of(st.none(), st.integers(0, 2**41)),
          "bytes": st.one_of(st.none(), st.integers(0, 2**41)),
          "action": st.sampled_from([None, "ACCEPT", "REJECT"]),
          "tcp-flags": st.sampled_from([None, 0, 1, 2, 3, 18, 19, 16]),
          "version": st.just(2), "srcaddr": st.sampled_from(ADDRESSES),
          "dstaddr": st.sampled_from(ADDRESSES),
          "pkt-srcaddr": st.sampled_from([None] + ADDRESSES),
          "pkt-dstaddr": st.sampled_from([None] + ADDRESSES),
          "start": st.integers(60, 119)}


@st.composite
def groups(draw):
    fmt = draw(st.sampled_from(FORMATS))
    flows = draw(st.lists(st.tuples(*[VALUES[name] for name in fmt.fields]),
                          min_size=1, max_size=40))
    index = OwnershipIndex()
    for ip, ts, owner in draw(st.lists(st.tuples(
            st.sampled_from(ADDRESSES), st.integers(0, 130).map(lambda s: s * 1000),
            st.sampled_from([None] + OWNERS)), max_size=12)):
        index.apply(MetaEvent(UNASSIGN if owner is None else ASSIGN, ts, ip, owner))
    starts = [flow[fmt.start_pos] for flow in flows]
    return FlowGroup(fmt, 60, max(starts), flows, "t"), index


def _per_flow(group, index, extra):
    """The outputs computed one flow at a time."""
    fmt = group.fmt
    partials, conversations, counts, lines = {}, {}, {}, []
    writer = EnrichedWriter(fmt.keys)

    def get(flow, name):
        return flow[fmt.pos[name]] if name in fmt.pos else None

    def add(table, key, values):
        table[key] = [a + b for a, b in zip(table.get(key, [0] * len(values)), values)]

    for flow in group.flows:
        t_ms = get(flow, "start") * 1000
        ends = []
        for side in ("src", "dst"):
            ip = get(flow, f"pkt-{side}addr") or get(flow, f"{side}addr")
            owner = index.owner_at(ip, t_ms)
            what = "owned" if owner is not None else _count_key(unowned_owner(ip)[APP])
            counts[f"{side}_{what}"] = counts.get(f"{side}_{what}", 0) + 1
            ends.append((ip, owner if owner is not None else unowned_owner(ip)))
        (sip, s), (dip, d) = ends
        port, proto, verdict = get(flow, "dstport"), get(flow, "protocol"), get(flow, "action")
        packets, nbytes = get(flow, "packets") or 0, get(flow, "bytes") or 0
        add(partials, (60, s[APP], s[REGION], d[APP], d[REGION], port, proto, verdict), [1, packets, nbytes])
        sport = get(flow, "srcport")
        if client_is_source(sport, port, get(flow, "tcp-flags"), DEFAULT_SERVICE_PORTS):
            add(conversations, (60, s[APP], sip, d[APP], dip, d[RESOURCE], port, None, proto, verdict),
                [1, packets, nbytes, 1, packets, nbytes])
        else:
            add(conversations, (60, d[APP], dip, s[APP], sip, s[RESOURCE], sport,
                                port if verdict == REJECT else None, proto, verdict),
                [1, packets, nbytes, 0, 0, 0])
        more = dict(extra or {})
        if "tcp-flags" in fmt.pos:
            more = {"tcp_flags_names": decode_tcp_flags(get(flow, "tcp-flags")), **more}
        lines.append(writer.line(flow, s, d, more))
    return ([k + tuple(v) for k, v in partials.items()],
            [k + tuple(v) for k, v in conversations.items()], counts, "\n".join(lines))


@SETTINGS
@given(groups(), st.sampled_from([None, {"window_start": 60}]))
def test_columns_equal_the_rules_flow_by_flow(case, extra):
    group, index = case
    expected = _per_flow(group, index, extra)
    # Through the codec too, as the job does: the columns it carries are what is attributed.
    for attributed in (group, decode_group(encode_group(group), 60, group.max_start)):
        out = attribute_group(attributed, index, enriched=True, extra=extra, conversations=True)
        assert (list(out.partials.rows()), list(out.conversations.rows()), dict(out.counts),
                "\n".join(out.enriched)) == expected


@SETTINGS
@given(st.lists(st.tuples(PORTS, PORTS, st.one_of(st.none(), st.integers(0, 63))), min_size=1),
       st.sampled_from([DEFAULT_SERVICE_PORTS, frozenset(), frozenset({40000})]))
def test_clients_are_sources_as_client_is_source(records, service_ports):
    sport, dport, flags = (_Ints.of(pa.array(list(c), pa.int64())) for c in zip(*records))
    assert clients_are_sources(sport, dport, flags, service_ports).tolist() == [
        client_is_source(s, d, f, service_ports) for s, d, f in records]
