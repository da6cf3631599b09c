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
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowdredge.job.parse_columns import column_values
from flowdredge.job.security import ACCEPT, ACK, REJECT, SYN, WELL_KNOWN_PORTS, WindowViews
from flowdredge.schemas.metadata import OWNER_FIELDS
from flowdredge.schemas.security import INTERNET, UNOWNED_APPS

_RESOURCE = OWNER_FIELDS.index("resource_id")
_INT64_MAX = 2**63 - 1


class End(NamedTuple):
    """One end (source or destination) of each flow of a group, attributed: `owners` its
    distinct owner tuples and `owner_ids` each flow's position among them, `pair_codes` each
    flow's owner's (app, region) code (job.ownership.OwnershipIndex.pair_code); `addresses`
    its distinct addresses (a pyarrow string array) and `address_ids` each flow's among
    them."""
    owners: list
    owner_ids: np.ndarray
    pair_codes: np.ndarray
    addresses: pa.Array
    address_ids: np.ndarray


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


def packed_key(columns, limit: int = _INT64_MAX) -> np.ndarray:
    """One int64 per row, equal where the rows' codes are, from (codes, radix) columns (codes
    in [0, radix)); every key is below `limit`, the rows' count or the product of the radixes,
    whichever is larger."""
    key, size = columns[0]
    for codes, radix in columns[1:]:
        if size * radix > limit:
            # Renumbered densely, the key so far is below the number of rows.
            key = np.unique(key, return_inverse=True)[1]
            size = len(key)
        key = key * radix + codes
        size *= radix
    return key


class Grouped(NamedTuple):
    """Rows grouped by a key: `first` the position of each group's first row, groups in the
    order of their first row, and `group` each row's group."""
    first: np.ndarray
    group: np.ndarray

    def counts(self) -> list:
        return np.bincount(self.group, minlength=len(self.first)).tolist()

    def sums(self, values: np.ndarray) -> list:
        """`values` (int64, one a row) summed by group, exactly (in Python past int64)."""
        k = len(self.first)
        if max(int(values.max()), -int(values.min())) * len(values) > _INT64_MAX:
            totals = [0] * k
            for g, v in zip(self.group.tolist(), values.tolist()):
                totals[g] += v
            return totals
        order = np.argsort(self.group, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(self.group, minlength=k))[:-1]))
        return np.add.reduceat(values[order], bounds).tolist()

    def distinct(self, ids: np.ndarray, values: np.ndarray) -> list:
        """Per group, the distinct `values[ids]` of its rows (`values` an object array) as the
        keys of a dict (values None: job.security.WindowViews says why)."""
        pairs = np.unique(self.group * len(values) + ids)
        bounds = np.searchsorted(pairs, np.arange(len(self.first) + 1) * len(values)).tolist()
        found = values[pairs % len(values)].tolist()
        return [dict.fromkeys(found[begin:end]) for begin, end in zip(bounds, bounds[1:])]


def grouped(columns) -> Grouped:
    """Rows (at least one) grouped by (codes, radix) columns (packed_key)."""
    _keys, first, inverse = np.unique(packed_key(columns), return_index=True, return_inverse=True)
    by_first = np.argsort(first)
    rank = np.empty_like(by_first)
    rank[by_first] = np.arange(len(by_first))
    return Grouped(first[by_first], rank[inverse.reshape(-1)])


def client_is_source(src_port: Codes, dst_port: Codes, tcp_flags: np.ndarray,
                     service_ports: frozenset) -> np.ndarray:
    """job.security.client_is_source for every flow: its rules applied from the last to the
    first, each overriding those after it where it decides. `tcp_flags` 0 where null."""
    listed = np.array(sorted(service_ports), np.int64)
    (src, src_null, src_listed), (dst, dst_null, dst_listed) = (
        (values[port.codes], nulls[port.codes], np.isin(values, listed)[port.codes])
        for port in (src_port, dst_port) for values, nulls in [_values(port)])
    src_known, dst_known = src < WELL_KNOWN_PORTS, dst < WELL_KNOWN_PORTS
    source = dst <= src
    source = np.where(src_known != dst_known, dst_known, source)
    source = np.where(src_listed != dst_listed, dst_listed, source)
    source |= src_null | dst_null
    source |= (tcp_flags & SYN) != 0
    source &= (tcp_flags & ACK) == 0
    return source


def _values(column: Codes) -> tuple:
    """(values, null mask) per code of an int column's codes (0 where null)."""
    return (column.dictionary.fill_null(0).to_numpy(),
            column.dictionary.is_null().to_numpy(zero_copy_only=False))


class _Side(NamedTuple):
    """The codes of one end or one side (client, server) of each flow, in spaces shared by
    both ends."""
    app: np.ndarray
    address: np.ndarray
    port: np.ndarray


def window_views(src: End, dst: End, pairs: list, src_port: Codes, dst_port: Codes,
                 protocol: Codes, action: Codes, packets: np.ndarray, nbytes: np.ndarray,
                 tcp_flags: np.ndarray, service_ports: frozenset) -> WindowViews:
    """A group's WindowViews from its columns: WindowViews.of_conversation_sums of its
    conversations (job.attribute), but for the grouping of the scans' records. `pairs`: the
    (app, region) of each pair code; `packets`, `nbytes` and `tcp_flags` int64 with 0 for
    null."""
    views = WindowViews()
    if not len(packets):
        return views
    # The codes of apps and ports in spaces shared by both ends; the resources (the exposure
    # view's only) from each end's owners.
    used = np.unique(np.concatenate((src.pair_codes, dst.pair_codes)))
    apps, (app_of_used, _) = _shared([pairs[c][0] for c in used.tolist()], [])
    app_of_pair = np.zeros(int(used[-1]) + 1, np.int64)
    app_of_pair[used] = app_of_used
    addresses = np.concatenate([end.addresses.to_numpy(zero_copy_only=False)
                                for end in (src, dst)])
    ports, (src_ports, dst_ports) = _shared_ints(src_port, dst_port)
    src_side = _Side(app_of_pair[src.pair_codes], src.address_ids, src_ports[src_port.codes])
    dst_side = _Side(app_of_pair[dst.pair_codes], dst.address_ids + len(src.addresses),
                     dst_ports[dst_port.codes])
    from_client = client_is_source(src_port, dst_port, tcp_flags, service_ports)
    client = _Side(*(np.where(from_client, s, d) for s, d in zip(src_side, dst_side)))
    server = _Side(*(np.where(from_client, d, s) for s, d in zip(src_side, dst_side)))
    unowned = np.array([a in UNOWNED_APPS for a in apps], bool)
    internet = np.array([a == INTERNET for a in apps], bool)
    accepted = np.array([a == ACCEPT for a in action.values], bool)[action.codes]
    rejected = np.array([a == REJECT for a in action.values], bool)[action.codes]
    app, address = (apps, len(apps)), (addresses, len(addresses))
    port, proto, verdict = (ports, len(ports)), (protocol.values, len(protocol.values)), \
        (action.values, len(action.values))

    def reduce(target, mask, key, more=()):
        """target[key] = [flows, packets, bytes, *more] for the flows of `mask` grouped by
        `key`, (codes a flow, (values by code, their count)) pairs; `more`: functions of the
        grouping and the flows' positions giving a list a group."""
        at = np.flatnonzero(mask)
        if not len(at):
            return
        g = grouped([(codes[at], size) for codes, (_, size) in key])
        rows = at[g.first].tolist()
        keys = zip(*([values[c] for c in codes[rows].tolist()] for codes, (values, _) in key))
        for k, *sums in zip(keys, g.counts(), g.sums(packets[at]), g.sums(nbytes[at]),
                            *(f(g, at) for f in more)):
            target[k] = sums

    def distinct(side):
        return lambda g, at: g.distinct(side.address[at], addresses)

    server_owned = ~unowned[server.app]
    reduce(views.dependencies, server_owned & accepted & ~unowned[client.app],
           [(client.app, app), (server.app, app), (server.port, port), (protocol.codes, proto)],
           [distinct(client), distinct(server)])
    exposed = server_owned & accepted & internet[client.app]
    resources, server_resource = _server_resources(src, dst, from_client, exposed)
    reduce(views.exposure, exposed,
           [(server.app, app), (server_resource, (resources, len(resources))),
            (server.port, port), (protocol.codes, proto)], [distinct(client)])
    client_bytes = np.where(from_client, nbytes, 0)
    reduce(views.egress, internet[server.app] & ~internet[client.app],
           [(client.app, app), (server.port, port), (protocol.codes, proto),
            (action.codes, verdict)],
           [lambda g, at: g.sums(client_bytes[at]), distinct(server)])
    # The REJECTed records and the scans' records in the direction logged: every record from
    # the client, and the REJECTed ones from the server too.
    reduce(views.rejects, rejected,
           [(dst_side.app, app), (dst_side.port, port), (protocol.codes, proto),
            (src_side.app, app), (src_side.address, address)])
    at = np.flatnonzero(from_client | rejected)
    if len(at):
        app_objects = _objects(apps)
        fields = [(src_side.address, addresses), (src_side.app, app_objects),
                  (dst_side.address, addresses), (dst_side.port, _objects(ports)),
                  (dst_side.app, app_objects)]
        g = grouped([(codes[at], len(objects)) for codes, objects in fields]
                    + [(rejected[at].astype(np.int64), 2)])
        rows = at[g.first]
        records = np.empty((len(rows), len(WindowViews.RECORD_COLUMNS)), object)
        for i, (codes, objects) in enumerate(fields):
            records[:, i] = objects[codes[rows]]
        records[:, 5] = g.counts()
        records[:, 6] = rejected[rows].tolist()
        views.records = records.ravel().tolist()
    return views


def _shared_ints(first: Codes, second: Codes) -> tuple:
    """_shared for the values of two int columns' codes (ports: thousands of distinct ones)."""
    values, nulls = (np.concatenate(parts) for parts in zip(_values(first), _values(second)))
    distinct, codes = np.unique(values, return_inverse=True)
    codes = np.where(nulls, len(distinct), codes.reshape(-1))
    return distinct.tolist() + [None], (codes[:len(first.values)], codes[len(first.values):])


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


def _objects(values: list) -> np.ndarray:
    array = np.empty(len(values), object)
    array[:] = values
    return array


def _shared(first: list, second: list) -> tuple:
    """(distinct values, for each of the two lists an int64 array mapping its positions to
    their codes)."""
    encoded = pc.dictionary_encode(pa.array(first + second), null_encoding="encode")
    codes = encoded.indices.to_numpy().astype(np.int64)
    return encoded.dictionary.to_pylist(), (codes[:len(first)], codes[len(first):])
