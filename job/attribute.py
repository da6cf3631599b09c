"""Attribution of both ends of each flow to the owner at the flow's start. Pure Python, on the
group's columns (numpy, pyarrow): every flow end's owner is looked up at once in the ownership
index's arrays (address keys, np.searchsorted), the partial aggregates are a group-by over code
columns, the conversations a dict over the rows (about one conversation per flow).

Rule: the address used for an end is `pkt-srcaddr` / `pkt-dstaddr` when the format has it and
the line carries a value (the real endpoint behind NAT or a load balancer), else `srcaddr` /
`dstaddr`. The owner is looked up at `start` (seconds, as milliseconds). An address with no
owner is `unattributed` when private (RFC 1918, 100.64/10, fc00::/7, link-local, loopback),
`aws:<service>:<region>` when AWS's published ip-ranges are given and contain it, and
`internet` otherwise; its other owner fields are `-`.
"""
import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from job.aggregate import PartialAggregates, group_by, sums
from job.enriched import render_lines
from job.parse import FlowGroup
from job.ownership import OwnershipIndex
from job.security import ACCEPT, ACK, DEFAULT_SERVICE_PORTS, SYN, WELL_KNOWN_PORTS, WindowViews
from schemas.metadata import ABSENT, OWNER_FIELDS
from schemas.security import UNOWNED_APPS

UNATTRIBUTED = "unattributed"
INTERNET = "internet"
REJECT = "REJECT"

# Loopback traffic never leaves a host, so a flow record with a loopback address is a spoofed or
# broken packet seen at the interface: not an internet peer, and not one to count as exposure.
_NOT_INTERNET = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128"))

_APP = OWNER_FIELDS.index("app")
_REGION = OWNER_FIELDS.index("region")


def _unowned(app):
    return (app,) + (ABSENT,) * (len(OWNER_FIELDS) - 1)


UNOWNED = {UNATTRIBUTED: _unowned(UNATTRIBUTED), INTERNET: _unowned(INTERNET)}


def _is_private(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr in net for net in _NOT_INTERNET if net.version == addr.version)


class UnownedClassifier:
    """The owner tuple of an address that has none: unattributed, aws:<service>:<region> (with
    AWS's ip-ranges, job.ipranges) or internet. Cached per address."""

    def __init__(self, ip_ranges=None, cache_size: int = 500_000):
        self._ranges = ip_ranges
        self.owner = lru_cache(maxsize=cache_size)(self._owner)

    def _owner(self, ip: str) -> tuple:
        if _is_private(ip):
            return UNOWNED[UNATTRIBUTED]
        label = self._ranges.classify(ip) if self._ranges is not None else None
        return _unowned(label) if label else UNOWNED[INTERNET]


unowned_owner = UnownedClassifier().owner


def _count_key(app: str) -> str:
    return "aws" if app.startswith("aws:") else app


class Conversations:
    """schemas.outputs.CONVERSATION dimensions -> [flows, packets, bytes] of both directions,
    then of the records from the client; rows() yields dimensions + sums."""

    def __init__(self):
        self._sums = {}

    def add_flows(self, keys, from_client, packets, nbytes) -> None:
        """One flow per item: its key, whether it is from the client, packets, bytes."""
        table = self._sums
        for key, client, p, b in zip(keys, from_client, packets, nbytes):
            totals = table.get(key)
            if totals is None:
                table[key] = [1, p, b, 1, p, b] if client else [1, p, b, 0, 0, 0]
            else:
                totals[0] += 1
                totals[1] += p
                totals[2] += b
                if client:
                    totals[3] += 1
                    totals[4] += p
                    totals[5] += b

    def rows(self):
        for key, totals in self._sums.items():
            yield key + tuple(totals)


@dataclass
class Attributed:
    partials: PartialAggregates = field(default_factory=PartialAggregates)
    enriched: list = field(default_factory=list)   # blocks of JSON lines, a line per flow
    conversations: Conversations = field(default_factory=Conversations)   # when asked for
    counts: Counter = field(default_factory=Counter)
    views: WindowViews = None   # when asked for


_RESOURCE = OWNER_FIELDS.index("resource_id")
# The security views of a group from its columns cost a few hundred microseconds per group more
# than from its conversations' rows, and less per flow: they are cheaper from about 300 flows
# on (docs/performance.md, the columnar path).
VIEWS_BY_COLUMNS_MIN = 300


class _Ints:
    """An integer column as int64 values (nulls read 0) and a null mask (None: no nulls)."""

    def __init__(self, values, nulls=None):
        self.values, self.nulls = values, nulls

    @classmethod
    def of(cls, col):
        if not col.null_count:
            return cls(col.to_numpy())
        return cls(col.fill_null(0).to_numpy(), col.is_null().to_numpy(zero_copy_only=False))

    def where(self, mask, other: "_Ints") -> "_Ints":
        nulls = None
        if self.nulls is not None or other.nulls is not None:
            nulls = np.where(mask, self._mask(), other._mask())
        return _Ints(np.where(mask, self.values, other.values), nulls)

    def _mask(self):
        return np.zeros(len(self.values), bool) if self.nulls is None else self.nulls

    def codes(self):
        """(codes, how many there can be): dense codes of the values, 0 for null."""
        values = self.values
        lowest = int(values.min())
        if int(values.max()) - lowest < 1 << 24:
            codes = values - (lowest - 1)
            card = int(values.max()) - lowest + 2
        else:
            _, codes = np.unique(values, return_inverse=True)
            codes = codes.astype(np.int64) + 1
            card = int(codes.max()) + 1
        if self.nulls is not None:
            codes[self.nulls] = 0
        return codes, card

    def list(self) -> list:
        return self.pick(slice(None))

    def pick(self, rows) -> list:
        values = self.values[rows].tolist()
        if self.nulls is not None:
            for j in np.flatnonzero(self.nulls[rows]).tolist():
                values[j] = None
        return values


def _nulls(n: int) -> _Ints:
    """A field the format lacks: null on every flow."""
    return _Ints(np.zeros(n, np.int64), np.ones(n, bool))


def _string_codes(col):
    """(codes, how many there can be, values): dictionary codes, 0 for null."""
    encoded = pc.dictionary_encode(col)
    codes = encoded.indices.fill_null(-1).to_numpy().astype(np.int64) + 1
    return codes, len(encoded.dictionary) + 1, [None] + encoded.dictionary.to_pylist()


def _address(columns, fmt, pkt_name: str, name: str):
    col = columns.column(fmt.pos[name])
    pkt = fmt.pos.get(pkt_name)
    return col if pkt is None else pc.coalesce(columns.column(pkt), col)


def _owner_ids(ends, t_ms, index: OwnershipIndex, unowned):
    """Each flow end's owner id in `index` at `t_ms` (ends: an arrow string column of both
    sides), whether the index owns it, its address key and its address (ends as a numpy array);
    an end without an owner gets its classification's (unowned, once per address:
    OwnershipIndex.classified)."""
    addresses = ends.to_numpy(zero_copy_only=False)
    keys = index.address_keys(addresses)
    ids = index.owners_of(keys, t_ms)
    owned = ids >= 0
    if not owned.all():
        rows = np.flatnonzero(~owned)
        ids[rows] = index.classified(keys[rows], lambda: addresses[rows].tolist(), unowned)
    return ids, owned, keys, addresses


def clients_are_sources(src_port: _Ints, dst_port: _Ints, tcp_flags: _Ints,
                        service_ports: frozenset):
    """job.security.client_is_source of every flow, as a boolean array: the first rule that
    decides, in its order."""
    flags = tcp_flags.values
    result = np.ones(len(flags), bool)
    decided = (flags & ACK) != 0
    result[decided] = False
    decided |= (flags & SYN) != 0
    missing = src_port._mask() | dst_port._mask()
    decided |= missing
    sp, dp = src_port.values, dst_port.values
    listed = np.array(sorted(service_ports), np.int64)

    def is_listed(ports):
        # A lookup table over the listed ports' range: several times faster than sorting.
        return np.isin(ports, listed, kind="table")

    for src_side, dst_side in ((is_listed(sp), is_listed(dp)),
                               (sp < WELL_KNOWN_PORTS, dp < WELL_KNOWN_PORTS)):
        rule = ~decided & (src_side != dst_side)
        result[rule] = dst_side[rule]
        decided |= rule
    rest = ~decided
    result[rest] = dp[rest] <= sp[rest]
    return result


def attribute_group(group: FlowGroup, index: OwnershipIndex, enriched: bool,
                    extra: dict = None, conversations: bool = False,
                    unowned=unowned_owner,
                    service_ports: frozenset = DEFAULT_SERVICE_PORTS,
                    views: bool = False) -> Attributed:
    """Attributes every flow of the group; partial aggregates always, enriched JSON,
    conversations (schemas.outputs.CONVERSATION) and the security views' share of the group
    (job.security.WindowViews, the same views as of its conversations) optionally. Rows come
    in the order of their first flow.

    Conversations are oriented here (job.security.client_is_source with `service_ports`) and
    keyed on the service side, without the client's ephemeral port, so that the flows of a
    group between the same client and service make one row. A REJECTed record from the server
    keeps the client's port (`client_port`): it was refused there, and the rejected and scans
    views report it in its logged direction.

    `extra` fields are added to each enriched line (the late output adds `window_start`).
    """
    out = Attributed()
    n = len(group)
    if not n:
        return out
    fmt, columns = group.fmt, group.columns
    window_start = group.window_start
    ends = pa.concat_arrays([_address(columns, fmt, "pkt-srcaddr", "srcaddr"),
                             _address(columns, fmt, "pkt-dstaddr", "dstaddr")])
    t_ms = columns.column(fmt.start_pos).to_numpy() * 1000
    ids, owned, keys, addresses = _owner_ids(ends, np.concatenate([t_ms, t_ms]), index, unowned)
    src, dst = ids[:n], ids[n:]
    app_codes, apps = index.owner_field(_APP)

    def ints(name):
        pos = fmt.pos.get(name)
        return _Ints.of(columns.column(pos)) if pos is not None else _nulls(n)

    for side, codes, is_owned in (("src", src, owned[:n]), ("dst", dst, owned[n:])):
        if is_owned.any():
            out.counts[f"{side}_owned"] += int(np.count_nonzero(is_owned))
        for code, k in enumerate(np.bincount(app_codes[codes[~is_owned]]).tolist()):
            if k:
                out.counts[f"{side}_{_count_key(apps[code])}"] += k

    dst_port, protocol = ints("dstport"), ints("protocol")
    action_pos = fmt.pos.get("action")
    if action_pos is not None:
        action_codes, action_card, actions = _string_codes(columns.column(action_pos))
    else:
        action_codes, action_card, actions = np.zeros(n, np.int64), 1, [None]
    packets, nbytes = ints("packets").values, ints("bytes").values

    region_codes, regions = index.owner_field(_REGION)
    firsts, rows = group_by([(app_codes[src], len(apps)), (region_codes[src], len(regions)),
                             (app_codes[dst], len(apps)), (region_codes[dst], len(regions)),
                             dst_port.codes(), protocol.codes(),
                             (action_codes, action_card)], n)
    s, d = src[firsts], dst[firsts]
    for sa, sr, da, dr, port, proto, verdict, f, p, b in zip(
            app_codes[s].tolist(), region_codes[s].tolist(), app_codes[d].tolist(),
            region_codes[d].tolist(), dst_port.pick(firsts), protocol.pick(firsts),
            action_codes[firsts].tolist(), np.bincount(rows).tolist(),
            sums(rows, packets, len(firsts)), sums(rows, nbytes, len(firsts))):
        out.partials.add_sums((window_start, apps[sa], regions[sr], apps[da], regions[dr], port,
                               proto, actions[verdict]), f, p, b)

    if conversations:
        _conversations(out.conversations, window_start, n, src, dst, addresses,
                       index, ints("srcport"), dst_port, ints("tcp-flags"), protocol,
                       (action_codes, action_card, actions), packets, nbytes, service_ports)
    if views and n < VIEWS_BY_COLUMNS_MIN:
        rows = Conversations()
        _conversations(rows, window_start, n, src, dst, addresses,
                       index, ints("srcport"), dst_port, ints("tcp-flags"), protocol,
                       (action_codes, action_card, actions), packets, nbytes, service_ports)
        out.views = WindowViews.of_conversations(rows.rows())
    elif views:
        out.views = _views(n, src, dst, addresses, keys, index, ints("srcport"), dst_port,
                           ints("tcp-flags"), protocol, (action_codes, action_card, actions),
                           packets, nbytes, service_ports)
    if enriched:
        distinct, local = np.unique(ids, return_inverse=True)
        tcp_flags = fmt.pos.get("tcp-flags")
        out.enriched.append(render_lines(
            fmt.keys, columns, [index.owner_list[i] for i in distinct.tolist()], local[:n],
            local[n:], None if tcp_flags is None else columns.column(tcp_flags), extra))
    return out


def _conversations(conversations: Conversations, window_start, n, src, dst, addresses, index,
                   src_port, dst_port, tcp_flags, protocol, action, packets, nbytes,
                   service_ports):
    # About one conversation per flow on real traffic (ephemeral client addresses and ports):
    # a dict over the rows costs less than a group-by over nine columns, then the dict anyway.
    action_codes, _, actions = action
    from_client = clients_are_sources(src_port, dst_port, tcp_flags, service_ports)
    client = np.where(from_client, src, dst)
    server = np.where(from_client, dst, src)
    client_addr = np.where(from_client, addresses[:n], addresses[n:]).tolist()
    server_addr = np.where(from_client, addresses[n:], addresses[:n]).tolist()
    service_port = dst_port.where(from_client, src_port)
    rejected = ~from_client & (action_codes == actions.index(REJECT) if REJECT in actions
                               else np.zeros(n, bool))
    client_port = dst_port.where(rejected, _nulls(n))
    app_codes, apps = index.owner_field(_APP)
    resource_codes, resources = index.owner_field(_RESOURCE)
    keys = zip([window_start] * n, [apps[c] for c in app_codes[client].tolist()], client_addr,
               [apps[c] for c in app_codes[server].tolist()], server_addr,
               [resources[r] for r in resource_codes[server].tolist()], service_port.list(),
               client_port.list(), protocol.list(), [actions[a] for a in action_codes.tolist()])
    conversations.add_flows(keys, from_client.tolist(), packets.tolist(), nbytes.tolist())


def _code_of(values: list, value) -> int:
    """value's code in an interned field's values, -1 when absent."""
    return values.index(value) if value in values else -1


def _reduce(rows, dimensions, key_columns, sum_columns, set_columns) -> dict:
    """{key: [flows, sums..., sets...]} over the flows `rows`, grouped by the code columns
    `dimensions` ((codes, cardinality) by flow); each key from `key_columns` (functions from
    flows to their values) at its group's first flow, in the order of the first flows."""
    if not len(rows):
        return {}
    firsts, group = group_by([(codes[rows], card) for codes, card in dimensions], len(rows))
    n_groups = len(firsts)
    first_rows = rows[firsts]
    sizes = np.bincount(group, minlength=n_groups)
    totals = [sizes.tolist()] + [sums(group, values[rows], n_groups) for values in sum_columns]
    if set_columns:
        # Each group's values together, then one set per group from a slice.
        order = np.argsort(group, kind="stable")
        ends = np.cumsum(sizes).tolist()
        starts = [0] + ends[:-1]
        for values in set_columns:
            together = values[rows][order].tolist()
            totals.append([set(together[a:b]) for a, b in zip(starts, ends)])
    keys = zip(*[column(first_rows) for column in key_columns])
    return dict(zip(keys, map(list, zip(*totals))))


def _views(n, src, dst, addresses, keys, index, src_port, dst_port, tcp_flags, protocol,
           action, packets, nbytes, service_ports) -> WindowViews:
    # WindowViews.of_conversations over this group's conversations, from the flows' columns:
    # each view sums and counts distinct values per key, the same over the flows as over their
    # conversations, without a Python row per conversation. The scans view's records (the
    # direction logged: from the client, and REJECTed ones) are one per flow instead of one per
    # conversation and direction; WindowViews.sources sums their flows and counts distinct
    # targets, which is the same either way.
    action_codes, action_card, actions = action
    from_client = clients_are_sources(src_port, dst_port, tcp_flags, service_ports)
    client = np.where(from_client, src, dst)
    server = np.where(from_client, dst, src)
    src_addr, dst_addr = addresses[:n], addresses[n:]
    client_addr = np.where(from_client, src_addr, dst_addr)
    server_addr = np.where(from_client, dst_addr, src_addr)
    service_port = dst_port.where(from_client, src_port)
    app_codes, apps = index.owner_field(_APP)
    resource_codes, resources = index.owner_field(_RESOURCE)
    n_apps = len(apps)
    unowned = [_code_of(apps, app) for app in UNOWNED_APPS]
    internet = _code_of(apps, INTERNET)
    client_app, server_app = app_codes[client], app_codes[server]
    src_app, dst_app = app_codes[src], app_codes[dst]

    def owned(codes):
        result = codes != unowned[0]
        for code in unowned[1:]:
            result &= codes != code
        return result

    accepted = owned(server_app) & (action_codes == _code_of(actions, ACCEPT))
    rejected = action_codes == _code_of(actions, REJECT)
    from_internet = client_app == internet
    port_codes, protocol_codes = service_port.codes(), protocol.codes()

    def names(codes, values):
        return lambda rows: list(map(values.__getitem__, codes[rows].tolist()))

    views = WindowViews()
    views.dependencies = _reduce(
        np.flatnonzero(accepted & owned(client_app)),
        [(client_app, n_apps), (server_app, n_apps), port_codes, protocol_codes],
        [names(client_app, apps), names(server_app, apps), service_port.pick, protocol.pick],
        [packets, nbytes], [client_addr, server_addr])
    views.exposure = _reduce(
        np.flatnonzero(accepted & from_internet),
        [(server_app, n_apps), (resource_codes[server], len(resources)), port_codes,
         protocol_codes],
        [names(server_app, apps), names(resource_codes[server], resources), service_port.pick,
         protocol.pick],
        [packets, nbytes], [client_addr])
    views.egress = _reduce(
        np.flatnonzero((server_app == internet) & ~from_internet),
        [(client_app, n_apps), port_codes, protocol_codes, (action_codes, action_card)],
        [names(client_app, apps), service_port.pick, protocol.pick, names(action_codes, actions)],
        [packets, nbytes, np.where(from_client, nbytes, 0)], [server_addr])
    # REJECTed records in the direction logged: from the client to the service port, or from
    # the server to the client's port, which is each flow's own direction and port.
    rejects = np.flatnonzero(rejected)
    _, src_addr_codes = np.unique(keys[:n][rejects], return_inverse=True)
    src_addr_key = np.zeros(n, np.int64)
    src_addr_key[rejects] = src_addr_codes.reshape(-1)
    views.rejects = _reduce(
        rejects,
        [(dst_app, n_apps), dst_port.codes(), protocol_codes, (src_app, n_apps),
         (src_addr_key, len(rejects) + 1)],
        [names(dst_app, apps), dst_port.pick, protocol.pick, names(src_app, apps),
         lambda rows: src_addr[rows].tolist()],
        [packets, nbytes], [])
    logged = np.flatnonzero(from_client | rejected)
    views.records = (src_addr[logged].tolist(), names(src_app, apps)(logged),
                     dst_addr[logged].tolist(), dst_port.pick(logged),
                     names(dst_app, apps)(logged), [1] * len(logged),
                     rejected[logged].tolist())
    return views
