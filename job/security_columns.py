"""A group of columns' share of the security views (job.security.WindowViews), reduced in
numpy. Pure Python (no pyflink).

WindowViews.of_conversation_sums reduces a group's conversations, which the flow-by-flow
attribution makes one flow at a time. Every view is a sum over flows, so the conversations need
not be made: each flow is oriented (job.security.client_is_source's rules, in arrays), and each
view groups the flows it reads by its own key (docs/performance.md, run 23, measures both). The rows are made in the order of their key's first
flow, as the conversations make them (the risk view lists an app's exposed ports in that order).
The scans' records are grouped by every field they hold rather than by conversation: the scans
view sums them and counts their distinct targets, whatever the grouping.
"""
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowdredge.job.groupby import grouped
from flowdredge.job.parse_columns import column_values
from flowdredge.job.security import ACK, SYN, WindowViews
from flowdredge.schemas.flowlog import ACCEPT, REJECT
from flowdredge.schemas.metadata import OWNER_FIELDS
from flowdredge.schemas.security import is_internet, is_unowned

_RESOURCE = OWNER_FIELDS.index("resource_id")


class End(NamedTuple):
    """One end (source or destination) of each flow of a group, attributed: `owners` its
    distinct owner tuples and `owner_ids` each flow's position among them, `pair_codes` each
    flow's owner's (app, region) code (job.ownership.OwnershipIndex.pair_code); `addresses`
    its distinct addresses (a pyarrow string array), `address_ids` each flow's among them
    and `address_codes` their codes (job.addresses)."""
    owners: list
    owner_ids: np.ndarray
    pair_codes: np.ndarray
    addresses: pa.Array
    address_ids: np.ndarray
    address_codes: np.ndarray


class Codes(NamedTuple):
    """A column as int64 codes, one a flow, and the distinct values by code: as a list (None
    for null) and as the Arrow array they came from."""
    codes: np.ndarray
    values: list
    dictionary: pa.Array


def codes_of(column, n: int) -> Codes:
    """A key column's codes; a missing column is all null."""
    if column is None:
        return Codes(np.zeros(n, np.int64), [None], pa.nulls(1, pa.int64()))
    encoded = pc.dictionary_encode(column, null_encoding="encode")
    return Codes(encoded.indices.to_numpy().astype(np.int64),
                 column_values(encoded.dictionary), encoded.dictionary)


def client_is_source(src_port: Codes, dst_port: Codes, tcp_flags: np.ndarray,
                     service_ports: frozenset, port_values: tuple = None) -> np.ndarray:
    """job.security.client_is_source for every flow: its rules applied from the last to the
    first, each overriding those after it where it decides. `tcp_flags` 0 where null;
    `port_values`: _values of the two ports, when the caller has them."""
    (src, src_null, src_listed), (dst, dst_null, dst_listed) = (
        (values[port.codes], nulls[port.codes], _listed(values, service_ports)[port.codes])
        for port, (values, nulls) in zip((src_port, dst_port),
                                         port_values or map(_values, (src_port, dst_port))))
    source = dst <= src
    source = np.where(src_listed != dst_listed, dst_listed, source)
    source |= src_null | dst_null
    source |= (tcp_flags & SYN) != 0
    source &= (tcp_flags & ACK) == 0
    return source


_PORTS = 1 << 16


@lru_cache(maxsize=8)
def _port_table(service_ports: frozenset) -> np.ndarray:
    """Whether each port is listed, by port; one more entry, False, for any other value."""
    table = np.zeros(_PORTS + 1, bool)
    table[[p for p in service_ports if 0 <= p < _PORTS]] = True
    return table


def _listed(values: np.ndarray, service_ports: frozenset) -> np.ndarray:
    """np.isin(values, service_ports), by a table: a fifth of its time here."""
    return _port_table(service_ports)[np.where((values >= 0) & (values < _PORTS), values,
                                               _PORTS)]


def _values(column: Codes) -> tuple:
    """(values, null mask) per code of an int column's codes (0 where null)."""
    dictionary = column.dictionary
    if not dictionary.null_count:
        return dictionary.to_numpy(), np.zeros(len(dictionary), bool)
    return (dictionary.fill_null(0).to_numpy(),
            dictionary.is_null().to_numpy(zero_copy_only=False))


class _Side(NamedTuple):
    """The codes of one end or one side (client, server) of each flow, in spaces shared by
    both ends."""
    app: np.ndarray
    address: np.ndarray
    port: np.ndarray


def window_views(src: End, dst: End, others: dict, pairs: list, src_port: Codes,
                 dst_port: Codes, protocol: Codes, action: Codes, packets: np.ndarray,
                 nbytes: np.ndarray, tcp_flags: np.ndarray,
                 service_ports: frozenset) -> WindowViews:
    """A group's WindowViews from its columns: WindowViews.of_conversation_sums of its
    conversations (job.attribute), but for the grouping of the scans' records. `others`: the
    addresses other than IPv4 that the ends' address codes name (job.addresses); `pairs`: the
    (app, region) of each pair code; `packets`, `nbytes` and `tcp_flags` int64 with 0 for
    null."""
    views = WindowViews()
    views.others = others
    if not len(packets):
        return views
    # The codes of apps and ports in spaces shared by both ends; the resources (the exposure
    # view's only) from each end's owners.
    used = np.unique(np.concatenate((src.pair_codes, dst.pair_codes)))
    apps, (app_of_used, _) = _shared([pairs[c][0] for c in used.tolist()], [])
    app_of_pair = np.zeros(int(used[-1]) + 1, np.int64)
    app_of_pair[used] = app_of_used
    n_addresses = len(src.addresses) + len(dst.addresses)
    both_values = _values(src_port), _values(dst_port)
    ports, port_values, (src_ports, dst_ports) = _shared_ints(src_port, *both_values)
    src_side = _Side(app_of_pair[src.pair_codes], src.address_ids, src_ports[src_port.codes])
    dst_side = _Side(app_of_pair[dst.pair_codes], dst.address_ids + len(src.addresses),
                     dst_ports[dst_port.codes])
    from_client = client_is_source(src_port, dst_port, tcp_flags, service_ports, both_values)
    client = _Side(*(np.where(from_client, s, d) for s, d in zip(src_side, dst_side)))
    server = _Side(*(np.where(from_client, d, s) for s, d in zip(src_side, dst_side)))
    # Each flow's addresses as codes (job.addresses), for the sets and the records.
    src_codes, dst_codes = (end.address_codes[end.address_ids] for end in (src, dst))
    client_codes = np.where(from_client, src_codes, dst_codes)
    server_codes = np.where(from_client, dst_codes, src_codes)
    unowned = np.array([is_unowned(a) for a in apps], bool)
    internet = np.array([is_internet(a) for a in apps], bool)
    accepted = np.array([a == ACCEPT for a in action.values], bool)[action.codes]
    rejected = np.array([a == REJECT for a in action.values], bool)[action.codes]
    app, port = (apps, len(apps)), (ports, len(ports))
    proto, verdict = (protocol.values, len(protocol.values)), (action.values, len(action.values))

    def reduce(target, mask, key, more=(), sets=()):
        """target[key] = [flows, packets, bytes, *more] for the flows of `mask` grouped by
        `key`, (codes a flow, (values by code, their count)) pairs; `more`: functions of the
        grouping and the flows' positions giving a list a group; `sets`: (set, address codes
        a flow) pairs, each group's addresses added to that set of the views."""
        at = np.flatnonzero(mask)
        if not len(at):
            return
        g = grouped([(codes[at], size) for codes, (_, size) in key])
        rows = at[g.first].tolist()
        keys = zip(*([values[c] for c in codes[rows].tolist()] for codes, (values, _) in key))
        for k, *sums in zip(keys, g.counts(), g.sums(packets[at]), g.sums(nbytes[at]),
                            *(f(g, at) for f in more)):
            target[k] = sums
        for which, codes in sets:
            views.add_set(which, g.group, codes[at])

    server_owned = ~unowned[server.app]
    reduce(views.dependencies, server_owned & accepted & ~unowned[client.app],
           [(client.app, app), (server.app, app), (server.port, port), (protocol.codes, proto)],
           sets=[(0, client_codes), (1, server_codes)])
    exposed = server_owned & accepted & internet[client.app]
    resources, server_resource = _server_resources(src, dst, from_client, exposed)
    reduce(views.exposure, exposed,
           [(server.app, app), (server_resource, (resources, len(resources))),
            (server.port, port), (protocol.codes, proto)], sets=[(2, client_codes)])
    client_bytes = np.where(from_client, nbytes, 0)
    reduce(views.egress, internet[server.app] & ~internet[client.app],
           [(client.app, app), (server.port, port), (protocol.codes, proto),
            (action.codes, verdict)],
           [lambda g, at: g.sums(client_bytes[at])], sets=[(3, server_codes)])
    # The REJECTed records and the scans' records in the direction logged: every record from
    # the client, and the REJECTed ones from the server too.
    reduce(views.rejects, rejected,
           [(dst_side.app, app), (dst_side.port, port), (protocol.codes, proto),
            (src_side.app, app), (src_side.address, (_Texts(src.addresses), n_addresses))])
    at = np.flatnonzero(from_client | rejected)
    if len(at):
        fields = [src_side.address, src_side.app, dst_side.address, dst_side.port,
                  dst_side.app, rejected.astype(np.int64)]
        g = grouped([(codes[at], size) for codes, size in zip(
            fields, (n_addresses, len(apps), n_addresses, len(ports), len(apps), 2))])
        rows = at[g.first]
        views.apps = {a: code for code, a in enumerate(apps)}
        views.add_records(src_codes[rows], src_side.app[rows], dst_codes[rows],
                          port_values[dst_side.port[rows]], dst_side.app[rows],
                          np.bincount(g.group, minlength=len(rows)), fields[5][rows])
    return views


class _Texts:
    """A string array read as a list: a value made only when asked for (the few REJECT keys'
    addresses among a group's many)."""

    def __init__(self, array: pa.Array):
        self.array = array

    def __getitem__(self, i: int) -> str:
        return self.array[i].as_py()


def _shared_ints(first: Codes, first_values: tuple, second_values: tuple) -> tuple:
    """_shared for the values of two int columns' codes (ports: thousands of distinct ones),
    given as their _values, the values also as an array, -1 for null."""
    values, nulls = (np.concatenate(parts) for parts in zip(first_values, second_values))
    distinct, codes = np.unique(values, return_inverse=True)
    codes = np.where(nulls, len(distinct), codes.reshape(-1))
    return (distinct.tolist() + [None], np.append(distinct, -1),
            (codes[:len(first.values)], codes[len(first.values):]))


def _server_resources(src: End, dst: End, from_client: np.ndarray, mask: np.ndarray) -> tuple:
    """(resources, each flow's server's resource code) for the flows of `mask` (0 for the
    others): read from the owners of those flows only."""
    codes = np.zeros(len(from_client), np.int64)
    at = np.flatnonzero(mask)
    if not len(at):
        return [], codes
    ends = [(end, at[side]) for end, side in ((dst, from_client[at]), (src, ~from_client[at]))]
    needed = [np.unique(end.owner_ids[rows]) for end, rows in ends]
    resources, end_codes = _shared(*([end.owners[i][_RESOURCE] for i in ids.tolist()]
                                     for (end, _), ids in zip(ends, needed)))
    for (end, rows), ids, found in zip(ends, needed, end_codes):
        by_owner = np.zeros(len(end.owners), np.int64)
        by_owner[ids] = found
        codes[rows] = by_owner[end.owner_ids[rows]]
    return resources, codes


def _shared(first: list, second: list) -> tuple:
    """(distinct values in the order of their first sight, for each of the two lists an int64
    array mapping its positions to their codes). A dict: the lists are a group's apps or
    servers, hundreds at most, where Arrow's dictionary_encode costs five times as much."""
    codes = {}
    first_codes, second_codes = ([codes.setdefault(v, len(codes)) for v in values]
                                 for values in (first, second))
    return list(codes), (np.array(first_codes, np.int64), np.array(second_codes, np.int64))
