"""Attribution of both ends of each flow to the owner at the flow's start. Pure Python.

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
from functools import lru_cache, partial
from itertools import repeat
from operator import itemgetter
from socket import AF_INET6, inet_pton

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowdredge.job.aggregate import PartialAggregates
from flowdredge.job.enriched import EnrichedWriter
from flowdredge.job.parse import FlowGroup
from flowdredge.job.parse_columns import column_values
from flowdredge.job.addresses import OTHER_ADDRESSES, address_codes, texts
from flowdredge.job.ownership import OwnershipIndex
from flowdredge.job.security import DEFAULT_SERVICE_PORTS, WindowViews, client_is_source
from flowdredge.job.groupby import grouped
from flowdredge.job.security_columns import End, codes_of, window_views
from flowdredge.schemas.metadata import ABSENT, OWNER_FIELDS
from flowdredge.schemas.flowlog import REJECT
from flowdredge.schemas.security import AWS_SERVICE_PREFIX, INTERNET, UNATTRIBUTED

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
    if ":" not in ip:
        return _is_private_v4(ip)
    try:
        # In C, a tenth of ipaddress's time: internet peers over IPv6, a new address each,
        # miss every cache.
        packed = inet_pton(AF_INET6, ip)
    except OSError:   # a form inet_pton refuses and ipaddress takes (a scope: fe80::1%eth0)
        addr = ipaddress.ip_address(ip)
        return any(addr in net for net in _NOT_INTERNET if net.version == addr.version)
    return ((packed[0] & 0xFE) == 0xFC or (packed[0] == 0xFE and (packed[1] & 0xC0) == 0x80)
            or packed == _LOOPBACK_V6)


# _NOT_INTERNET's IPv6 networks, as _is_private tests them on the packed address: fc00::/7,
# fe80::/10 and this one, ::1/128.
_LOOPBACK_V6 = bytes(15) + b"\x01"


# _NOT_INTERNET's IPv4 networks by the first two octets: (first, lowest second, highest
# second). ipaddress costs about 3 us an address, and internet peers (a new address each, past
# any cache) are common.
_PRIVATE_V4 = ((10, 0, 255), (127, 0, 255), (172, 16, 31), (192, 168, 168), (100, 64, 127),
               (169, 254, 254))


def _is_private_v4(ip: str) -> bool:
    first, second, _rest = ip.split(".", 2)
    a, b = int(first), int(second)
    return any(a == f and low <= b <= high for f, low, high in _PRIVATE_V4)


def _private_v4_table() -> np.ndarray:
    """_is_private_v4 by the first two octets as one 16-bit number."""
    table = np.zeros(1 << 16, bool)
    for first, low, high in _PRIVATE_V4:
        table[(first << 8) + low:(first << 8) + high + 1] = True
    return table


_PRIVATE_V4_TABLE = _private_v4_table()


def _private_v4(addresses: np.ndarray) -> np.ndarray:
    """_is_private_v4 of IPv4 addresses as integers (job.addresses)."""
    return _PRIVATE_V4_TABLE[addresses >> 16]


class UnownedClassifier:
    """The owner tuple of an address that has none: unattributed, aws:<service>:<region> (with
    AWS's ip-ranges, job.ipranges) or internet. `owner` one address (cached), `owners` many."""

    def __init__(self, ip_ranges=None, cache_size: int = 500_000):
        self._ranges = ip_ranges
        self.owner = lru_cache(maxsize=cache_size)(self._owner)

    def _owner(self, ip: str) -> tuple:
        if _is_private(ip):
            return UNOWNED[UNATTRIBUTED]
        label = self._ranges.classify(ip) if self._ranges is not None else None
        return _unowned(label) if label else UNOWNED[INTERNET]

    def owners(self, addresses: pa.Array, codes: np.ndarray = None,
               items: np.ndarray = None) -> tuple:
        """(owners, ids): the owner of each of `addresses` (a pyarrow string array of IP
        addresses as the parser accepts them; with `items`, of those at these positions only;
        `codes` their job.addresses codes, when the caller has them) is owners[ids[i]], the
        owners distinct. The IPv4 addresses are decided in arrays, but for the public ones with
        ip-ranges; the others by `owner`."""
        owners = [UNOWNED[UNATTRIBUTED], UNOWNED[INTERNET]]
        if items is None:
            items = np.arange(len(addresses))
        ids = np.full(len(items), -1, np.int64)
        if codes is None:
            codes = address_codes(addresses, {})[items]
        ipv4 = np.flatnonzero(codes < OTHER_ADDRESSES)
        if len(ipv4):
            private = _private_v4(codes[ipv4])
            ids[ipv4[private]] = 0
            if self._ranges is None:
                ids[ipv4[~private]] = 1
        rest = np.flatnonzero(ids < 0)
        if len(rest):
            position = {o: i for i, o in enumerate(owners)}
            ids[rest] = [position.setdefault(o, len(position))
                         for o in map(self.owner, texts(addresses, items[rest]))]
            owners = list(position)
        return owners, ids


default_classifier = UnownedClassifier()


def _count_key(app: str) -> str:
    return "aws" if app.startswith(AWS_SERVICE_PREFIX) else app


class Conversations:
    """`sums`: schemas.outputs.CONVERSATION dimensions -> [flows, packets, bytes] of both
    directions, then of the records from the client; rows() yields dimensions + sums."""

    def __init__(self):
        self.sums = {}

    def add(self, key: tuple, from_client: bool, packets: int, nbytes: int) -> None:
        sums = self.sums.get(key)
        if sums is None:
            self.sums[key] = ([1, packets, nbytes, 1, packets, nbytes] if from_client
                               else [1, packets, nbytes, 0, 0, 0])
            return
        sums[0] += 1
        sums[1] += packets
        sums[2] += nbytes
        if from_client:
            sums[3] += 1
            sums[4] += packets
            sums[5] += nbytes

    def rows(self):
        for key, sums in self.sums.items():
            yield key + tuple(sums)


@dataclass
class Attributed:
    partials: PartialAggregates = field(default_factory=PartialAggregates)
    enriched: bytes = b""   # JSON lines, one per flow, each ended by a newline (UTF-8)
    views: WindowViews = None   # the security views' share of the group, when asked for
    # The group's conversations, which the views are reduced from flow by flow (a group of
    # columns goes without them: job.security_columns).
    conversations: Conversations = field(default_factory=Conversations)
    counts: Counter = field(default_factory=Counter)


@lru_cache(maxsize=1000)
def enriched_writer(fmt) -> EnrichedWriter:
    return EnrichedWriter(fmt.keys, fmt.int_positions)


def _end_positions(fmt, pkt_name, name):
    return fmt.pos.get(pkt_name), fmt.pos[name]


_RESOURCE = OWNER_FIELDS.index("resource_id")



def attribute_group(group: FlowGroup, index: OwnershipIndex, enriched: bool,
                    extra: dict = None, conversations: bool = False,
                    unowned: UnownedClassifier = default_classifier,
                    service_ports: frozenset = DEFAULT_SERVICE_PORTS) -> Attributed:
    """Attributes every flow of the group; partial aggregates always, enriched JSON and the
    security views' share (job.security.WindowViews of the group's conversations,
    schemas.outputs.CONVERSATION) optionally.

    Conversations are oriented (job.security.client_is_source with `service_ports`) and
    keyed on the service side, without the client's ephemeral port, so that the flows of a
    group between the same client and service make one row. A REJECTed record from the server
    keeps the client's port (`client_port`): it was refused there, and the rejected and scans
    views report it in its logged direction.

    `extra` fields are added to each enriched line (the late output adds `window_start`).
    A group of columns (the vectorised parser's) is attributed on its columns, its views reduced
    there without conversations (job.security_columns) and its enriched lines rendered over
    them (job.enriched.EnrichedWriter.block); a group of flows, and one with `extra`, flow by
    flow, in one loop with the conversations' work. Either way the same result
    (tests/test_attribute.py holds the two to it).
    """
    if group.columns is not None and not extra:
        out = Attributed()
        _attribute_columns(group, index, unowned, out, enriched, conversations, service_ports)
        return out
    return _attribute_rows(group, index, enriched, extra, conversations, unowned, service_ports)


def _attribute_rows(group: FlowGroup, index: OwnershipIndex, enriched: bool, extra: dict,
                    conversations: bool, unowned, service_ports: frozenset) -> Attributed:
    """attribute_group flow by flow, over the fields it needs as lists (a group of columns
    never becomes tuples unless its enriched lines need the per-line path)."""
    values = _field_values(group)
    unowned = unowned.owner
    ends = _end_addresses(group)
    src_ips, dst_ips = (tuple(map(column_values, ends)) if group.columns is not None else ends)
    out = Attributed()
    partial_sums = out.partials.sums
    add_conversation = out.conversations.add if conversations else None
    # Ends without an owner by app; owned ends as plain ints, the common case.
    src_unowned, dst_unowned = Counter(), Counter()
    src_owned = dst_owned = 0
    window_start = group.window_start
    src_owners, dst_owners = _owners(group, index, ends, out.counts)
    srcs, dsts = [], []   # each flow's owners, for the enriched lines
    for src_ip, dst_ip, s, d, dst_port, protocol, verdict, n_packets, n_bytes, src_port, flags \
            in zip(src_ips, dst_ips, src_owners, dst_owners, values("dstport"), values("protocol"),
                   values("action"), values("packets"), values("bytes"), values("srcport"),
                   values("tcp-flags")):
        if s is None:
            s = unowned(src_ip)
            src_unowned[s[_APP]] += 1
        else:
            src_owned += 1
        if d is None:
            d = unowned(dst_ip)
            dst_unowned[d[_APP]] += 1
        else:
            dst_owned += 1
        n_packets = n_packets or 0
        n_bytes = n_bytes or 0
        key = (window_start, s[_APP], s[_REGION], d[_APP], d[_REGION], dst_port, protocol,
               verdict)
        sums = partial_sums.get(key)
        if sums is None:
            partial_sums[key] = [1, n_packets, n_bytes]
        else:
            sums[0] += 1
            sums[1] += n_packets
            sums[2] += n_bytes
        if add_conversation is not None:
            if client_is_source(src_port, dst_port, flags, service_ports):
                add_conversation((window_start, s[_APP], src_ip, d[_APP], dst_ip, d[_RESOURCE],
                                  dst_port, None, protocol, verdict), True, n_packets, n_bytes)
            else:
                add_conversation((window_start, d[_APP], dst_ip, s[_APP], src_ip, s[_RESOURCE],
                                  src_port, dst_port if verdict == REJECT else None, protocol,
                                  verdict), False, n_packets, n_bytes)
        if enriched:
            srcs.append(s)
            dsts.append(d)
    if enriched:
        out.enriched = _lines_text(group, srcs, dsts, extra)
    if conversations:
        out.views = WindowViews.of_conversation_sums(out.conversations.sums.items())
    counts = out.counts
    for side, owned, by_app in (("src", src_owned, src_unowned), ("dst", dst_owned, dst_unowned)):
        if owned:
            counts[f"{side}_owned"] += owned
        for app, n_ends in by_app.items():
            counts[f"{side}_{_count_key(app)}"] += n_ends
    return out


# EnrichedWriter.block costs about 140 us a group and 1.2 us a flow, lines() with the tuples it
# needs about 2.7 us a flow: block pays from about a hundred flows on (docs/performance.md, run 22).
BLOCK_MIN_FLOWS = 128


def _block_text(group: FlowGroup, src: End, dst: End, src_slots: list, dst_slots: list) -> bytes:
    """The enriched lines of a group of columns: over its columns when it has enough flows
    (EnrichedWriter.block), else, or where that declines, line by line. `src_slots`,
    `dst_slots`: the slots of each End's last owners (_end)."""
    tcp_flags = group.fmt.pos.get("tcp-flags")
    if len(group) >= BLOCK_MIN_FLOWS:
        text = enriched_writer(group.fmt).block(
            group.columns, (src.owners, src.owner_ids, src_slots),
            (dst.owners, dst.owner_ids, dst_slots), tcp_flags)
        if text is not None:
            return text
    srcs, dsts = (list(map(end.owners.__getitem__, end.owner_ids.tolist())) for end in (src, dst))
    return _lines_text(group, srcs, dsts, None)


def _lines_text(group: FlowGroup, srcs: list, dsts: list, extra: dict) -> bytes:
    """The group's enriched lines, each ended by a newline, as UTF-8, line by line."""
    lines = enriched_writer(group.fmt).lines(group.flows, srcs, dsts,
                                             group.fmt.pos.get("tcp-flags"), extra)
    return ("\n".join(lines) + "\n").encode("utf-8")


def _field_values(group: FlowGroup):
    """A function from a field's name to its values, one a flow (None when absent from the
    line), or an endless None when the format lacks the field."""
    pos = group.fmt.pos
    if group.columns is not None:
        def values(name):
            position = pos.get(name)
            return (repeat(None) if position is None
                    else column_values(group.columns.column(position)))
    else:
        def values(name):
            position = pos.get(name)
            return repeat(None) if position is None else map(itemgetter(position), group.flows)
    return values


def _end_addresses(group: FlowGroup) -> tuple:
    """Each flow's source and destination address (the pkt- one when the line has it): two
    Arrow arrays for a group of columns, two lists for a group of flows."""
    fmt = group.fmt
    if group.columns is not None:
        return tuple(_addresses(_column(group, f"pkt-{side}"), _column(group, side))
                     for side in ("srcaddr", "dstaddr"))
    return tuple([(pkt is not None and flow[pkt]) or flow[plain] for flow in group.flows]
                 for pkt, plain in (_end_positions(fmt, "pkt-srcaddr", "srcaddr"),
                                    _end_positions(fmt, "pkt-dstaddr", "dstaddr")))


def _owners(group: FlowGroup, index: OwnershipIndex, ends: tuple, counts: Counter) -> tuple:
    """The owners of both `ends` (_end_addresses) of each flow at its start (None: no owner),
    within the flow's VPC (its line's `vpc-id`, else its interface's) for an end without one
    of its own (counted in `counts`): from the columns in arrays (OwnershipIndex.owners_at),
    or flow by flow for a group of flows."""
    if group.columns is not None:
        t_ms = _column(group, "start").to_numpy() * 1000
        owners = tuple(index.owners_at(addresses, t_ms) for addresses in ends)
        vpcs = _flow_vpcs(group, index)
        for side, found, addresses in zip(("src", "dst"), owners, ends):
            _count_in_vpc(counts, side, index.owners_in_vpcs(found, addresses, t_ms, vpcs))
        return owners
    owner_at, owner_in_vpc, flow_vpc = index.owner_at, index.owner_in_vpc, index.flow_vpc
    start, pos = group.fmt.start_pos, group.fmt.pos
    vpc, interface = pos.get("vpc-id"), pos.get("interface-id")
    owners = tuple([owner_at(ip, flow[start] * 1000) for ip, flow in zip(addresses, group.flows)]
                   for addresses in ends)
    if (vpc is not None or interface is not None) and index.holds_vpc_claims():
        for side, addresses, found in zip(("src", "dst"), ends, owners):
            for i in [i for i, o in enumerate(found) if o is None]:
                flow = group.flows[i]
                in_vpc = flow_vpc(None if vpc is None else flow[vpc],
                                  None if interface is None else flow[interface])
                found[i] = owner_in_vpc(addresses[i], in_vpc, flow[start] * 1000)
                _count_in_vpc(counts, side, found[i] is not None)
    return owners


def _flow_vpcs(group: FlowGroup, index: OwnershipIndex):
    """The VPC of each flow of a group of columns (OwnershipIndex.flow_vpcs), None when none
    is known."""
    return index.flow_vpcs(_column(group, "vpc-id"), _column(group, "interface-id"))


def _count_in_vpc(counts: Counter, side: str, n: int) -> None:
    if n:
        counts[f"{side}_owned_in_vpc"] += n


def _column(group: FlowGroup, name: str):
    """The group's column of a field, None when its format lacks the field."""
    position = group.fmt.pos.get(name)
    return None if position is None else group.columns.column(position)


def _attribute_columns(group, index, unowned, out, enriched, conversations,
                       service_ports) -> None:
    """_attribute_rows on the group's arrow columns: the owners of the IPs with one owner since
    their first change by OwnershipIndex.codes_at, the others one by one; the partial sums by
    job.groupby.grouped on one integer key per flow; the enriched lines and the views over the
    columns."""
    n = group.columns.num_rows
    column = partial(_column, group)
    t_ms = column("start").to_numpy() * 1000
    with_owners = enriched or conversations
    others = {}
    vpcs = _flow_vpcs(group, index)
    (src_codes, src, src_slots), (dst_codes, dst, dst_slots) = (
        _end(index, addresses, t_ms, vpcs, unowned, out.counts, side, with_owners, others)
        for addresses, side in zip(_end_addresses(group), ("src", "dst")))
    dims = [codes_of(column(name), n) for name in ("dstport", "protocol", "action")]
    if n:   # job.groupby.grouped wants a row
        _partial_rows(out.partials.sums, group.window_start, index.pairs, src_codes, dst_codes,
                      dims, [column(name) for name in ("packets", "bytes")])
    if enriched:
        out.enriched = _block_text(group, src, dst, src_slots, dst_slots)
    if conversations:
        dst_port, protocol, action = dims
        out.views = window_views(src, dst, others, index.pairs, codes_of(column("srcport"), n),
                                 dst_port, protocol,
                                 action, *(_zero_filled(column(name), n)
                                           for name in ("packets", "bytes", "tcp-flags")),
                                 service_ports)


def _partial_rows(partial_sums: dict, window_start: int, pairs: list, src_codes, dst_codes,
                  dims: list, count_columns: list) -> None:
    """A group's partial rows into `partial_sums`, in the order of their first flow, as the row
    path makes them: one sort of a key packed from the ends' pair codes and `dims`' codes
    (job.groupby.grouped); the packets' and bytes' sums exact, a null or a missing column 0."""
    rows = grouped([(src_codes, len(pairs))] + [(dim.codes, len(dim.values)) for dim in dims]
                   + [(dst_codes, len(pairs))])
    at = rows.first
    sides = [[pairs[c] for c in codes[at].tolist()] for codes in (src_codes, dst_codes)]
    values = [list(map(dim.values.__getitem__, dim.codes[at].tolist())) for dim in dims]
    packets, nbytes = ([0] * len(at) if column is None else rows.sums(_filled(column))
                       for column in count_columns)
    for s, d, port, protocol, action, flows, n_packets, n_bytes in zip(
            *sides, *values, rows.counts(), packets, nbytes):
        partial_sums[(window_start, s[0], s[1], d[0], d[1], port, protocol, action)] = [
            flows, n_packets, n_bytes]


def _zero_filled(column, n) -> np.ndarray:
    return np.zeros(n, np.int64) if column is None else _filled(column)


def _filled(column) -> np.ndarray:
    """A column's values (int64), nulls 0. fill_null copies a column whether it holds a null or
    not, a few us a call, and a group's columns seldom hold one (docs/performance.md, run 64)."""
    return (column.fill_null(0) if column.null_count else column).to_numpy()


def _addresses(pkt, plain):
    """A flow end's address: pkt-srcaddr / pkt-dstaddr when the line has one, else srcaddr /
    dstaddr (empty fields never reach here: the parser refuses them)."""
    return plain if pkt is None else pc.coalesce(pkt, plain)


def _end(index, addresses, t_ms, vpcs, unowned, counts, side, with_owners, others) -> tuple:
    """(pair codes, End or None, slots) of the ends `addresses`' owners at `t_ms` (within the
    flow's VPC in `vpcs` for an end without one of its own): each flow's (app, region) code, and
    with `with_owners` the End (its owners as tuples; the last of them, the owners of IPs with
    one owner, are those of `slots`, for job.enriched.FragmentPool); their counts. Each
    distinct address is looked up once; only IPs with changes other than one owner (an IP's or a
    VPC's claim's) are looked up flow by flow. Addresses other than IPv4 are added to `others`
    (job.addresses)."""
    encoded = pc.dictionary_encode(addresses)
    distinct = encoded.dictionary
    at = encoded.indices.to_numpy().astype(np.int64)
    numbers = address_codes(distinct, others)
    slots = index.slots(distinct, numbers)[at]
    codes, others = index.codes_at(slots, t_ms)
    pair_code = index.pair_code
    owned = codes >= 0
    positions = np.flatnonzero(others)
    # By the slot already found: owner_at would find it again from the address's text.
    owner_in_slot = index.owner_in_slot
    found = [owner_in_slot(slot, t) for slot, t in zip(slots[positions].tolist(),
                                                       t_ms[positions].tolist())]
    found_at = positions[[o is not None for o in found]] if found else positions
    found = [o for o in found if o is not None]
    owned[found_at] = True
    # An end without an owner of its own, of an address its flow's VPC claims: a claim with one
    # owner in arrays, as an IP's, the others one by one.
    vpc_at, vpc_slots = index.vpc_slots(distinct, numbers, at, vpcs, owned)
    if len(vpc_at):
        vpc_codes, vpc_others = index.codes_at(vpc_slots, t_ms[vpc_at])
        single = vpc_codes >= 0
        slots[vpc_at[single]] = vpc_slots[single]
        codes[vpc_at[single]] = vpc_codes[single]
        owned[vpc_at[single]] = True
        multi_at = vpc_at[vpc_others]
        multi = [index.owner_in_slot(s, t) for s, t in zip(vpc_slots[vpc_others].tolist(),
                                                            t_ms[multi_at].tolist())]
        multi_at = multi_at[[o is not None for o in multi]] if multi else multi_at
        found_at = np.concatenate((found_at, multi_at))
        found += [o for o in multi if o is not None]
        owned[multi_at] = True
        _count_in_vpc(counts, side, int(single.sum()) + len(multi_at))
    codes[found_at] = [pair_code(o[_APP], o[_REGION]) for o in found]
    # An unowned end's owner depends on its address only.
    plain = np.flatnonzero(~owned)
    needed = np.unique(at[plain])
    # The needed addresses by position: their take cost 15-50 us an end (docs/performance.md,
    # run 64).
    unowned_owners, unowned_ids = unowned.owners(distinct, numbers[needed], needed)
    owner_of = np.zeros(len(distinct), np.int64)   # a needed address's among unowned_owners
    owner_of[needed] = unowned_ids
    plain_owners = owner_of[at[plain]]
    # Counted by owner (a few), then by pair code in order, as the counts' keys come: a sort of
    # the ends' codes cost more.
    pair_of_owner = np.zeros(len(unowned_owners), np.int64)
    ends_of_pair = Counter()
    for i, n_ends in enumerate(np.bincount(plain_owners, minlength=len(unowned_owners))
                               .tolist()):
        if n_ends:
            owner = unowned_owners[i]
            pair_of_owner[i] = code = pair_code(owner[_APP], owner[_REGION])
            ends_of_pair[code] += n_ends
    codes[plain] = pair_of_owner[plain_owners]
    by_app = Counter()
    for code in sorted(ends_of_pair):
        by_app[index.pairs[code][0]] += ends_of_pair[code]
    if len(codes) - len(plain):
        counts[f"{side}_owned"] += len(codes) - len(plain)
    for app, n_ends in by_app.items():
        counts[f"{side}_{_count_key(app)}"] += n_ends
    if not with_owners:
        return codes, None, ()
    # A key per flow naming its owner: the slot of an IP with one owner, else -1 - the
    # owner's position among the others (the unowned ones, most of them the same few, and
    # those found one by one).
    other_ids = {o: i for i, o in enumerate(unowned_owners)}
    keys = np.where(owned, slots, -1 - owner_of[at])
    keys[found_at] = [-1 - other_ids.setdefault(o, len(other_ids)) for o in found]
    unique_keys, ids = np.unique(keys, return_inverse=True)
    by_slot = unique_keys >= 0
    others = list(other_ids)
    owners = [others[-1 - k] for k in unique_keys[~by_slot].tolist()]
    slots = unique_keys[by_slot].tolist()
    owners += index.single_owners(slots)
    return codes, End(owners, ids.reshape(-1), codes, distinct, at, numbers), slots
