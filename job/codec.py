"""Encoding of flow groups between the parse and attribution operators and in keyed state, of
the changelog's chunks of events on their way to the broadcast state, and of the security
views' batches (below).

Version byte + pickle (protocol 4) of plain tuples of str/int/None, or for a flow group's
columns Arrow's IPC format: no classes are pickled, so any later release can read what an
earlier one wrote.
"""
import pickle
from itertools import chain

import numpy as np
import pyarrow as pa

from flowdredge.job.ownership import MetaEvent
from flowdredge.job.parse import FlowFormat, FlowGroup
from flowdredge.job.security import ADDRESS_BITS, ADDRESS_MASK, WindowViews

# 1: a group's flows as tuples; 2: its columns (FlowGroup.columns) as an Arrow IPC stream
# after the pickled names and source. Either is written, as the group holds its flows.
GROUP_ROWS_VERSION = 1
GROUP_COLUMNS_VERSION = 2
_formats: dict = {}


def encode_group(group: FlowGroup) -> bytes:
    if group.columns is None:
        return bytes([GROUP_ROWS_VERSION]) + pickle.dumps(
            (group.fmt.names, group.source, group.flows), protocol=4)
    head = pickle.dumps((group.fmt.names, group.source), protocol=4)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, group.columns.schema) as writer:
        writer.write_batch(group.columns)
    return b"".join((bytes([GROUP_COLUMNS_VERSION]), len(head).to_bytes(4, "big"), head,
                     sink.getvalue().to_pybytes()))


def decode_group(payload: bytes, window_start: int, max_start: int) -> FlowGroup:
    version = payload[0]
    if version == GROUP_ROWS_VERSION:
        names, source, flows = pickle.loads(payload[1:])
        columns = None
    elif version == GROUP_COLUMNS_VERSION:
        end = 5 + int.from_bytes(payload[1:5], "big")
        names, source = pickle.loads(payload[5:end])
        flows = None
        columns = pa.ipc.open_stream(pa.py_buffer(payload[end:])).read_next_batch()
    else:
        raise ValueError(f"flow group codec version {version} is not readable by this release")
    fmt = _formats.get(names)
    if fmt is None:
        fmt = _formats[names] = FlowFormat(names)
    return FlowGroup(fmt, window_start, max_start, flows, source, columns)


# The security views (job.security, job.flink.security), in keyed state and between their
# operators: pickles of dicts, lists, tuples, sets, str, int and None, each with its version; a
# batch's arrays as (numpy dtype, bytes), in the narrowest integer type that holds them.
VIEWS_CODEC_VERSION = 3          # a batch's WindowViews (1: address sets, record columns of
                                 # values; 2: address dicts, the records one flat list)
WINDOW_ROWS_CODEC_VERSION = 1    # a closed window's rows for the events
EVENTS_CODEC_VERSION = 1         # SecurityEvents.state()


def _encode(version: int, value) -> bytes:
    return bytes([version]) + pickle.dumps(value, protocol=5)


def _decode(version: int, what: str, payload: bytes):
    if payload[0] != version:
        raise ValueError(f"{what} codec version {payload[0]} is not readable by this release")
    return pickle.loads(payload[1:])


def encode_views(views: WindowViews) -> bytes:
    sets = [_packed_set(np.concatenate(chunks)) if chunks else None for chunks in views.sets]
    records = [_packed(np.concatenate(chunks)) for chunks in views.records] \
        if views.records[0] else None
    return _encode(VIEWS_CODEC_VERSION, (views.dependencies, views.exposure, views.egress,
                                         views.rejects, list(views.apps), list(views.others),
                                         sets, records))


def decode_views(payload: bytes) -> WindowViews:
    if payload[0] == 1:
        return _views_v1(pickle.loads(payload[1:]))
    if payload[0] == 2:
        return WindowViews.of_sets(*pickle.loads(payload[1:]))
    (dependencies, exposure, egress, rejects, apps, others, sets,
     records) = _decode(VIEWS_CODEC_VERSION, "security views", payload)
    views = WindowViews()
    views.dependencies, views.exposure, views.egress, views.rejects = (dependencies, exposure,
                                                                       egress, rejects)
    views.apps = {app: code for code, app in enumerate(apps)}
    views.others = {address: i for i, address in enumerate(others)}
    for which, packed in enumerate(sets):
        if packed is not None:
            rows, codes = map(_unpacked, packed)
            views.sets[which].append(rows << ADDRESS_BITS | codes)
    if records is not None:
        views.add_records(*map(_unpacked, records))
    return views


def _packed_set(members: np.ndarray) -> tuple:
    return _packed(members >> ADDRESS_BITS), _packed(members & ADDRESS_MASK)


def _packed(values: np.ndarray) -> tuple:
    """An int64 array as (dtype, bytes) in the narrowest type that holds its values: codes,
    ports and counts fit in one to four bytes. Address codes past 32 bits (job.security:
    OTHER_ADDRESSES + i) as four bytes each and their 33rd bits, one a bit."""
    low, high = (int(values.min()), int(values.max())) if len(values) else (0, 0)
    if 0 <= low and (1 << 32) <= high < (1 << 33):
        return (np.dtype(np.uint32).str, (values & 0xFFFFFFFF).astype(np.uint32).tobytes(),
                np.packbits((values >> 32).astype(np.uint8)).tobytes())
    for dtype in (np.uint8, np.uint16, np.uint32) if low >= 0 else (np.int8, np.int16, np.int32):
        limits = np.iinfo(dtype)
        if limits.min <= low and high <= limits.max:
            values = values.astype(dtype)
            break
    return values.dtype.str, values.tobytes()


def _unpacked(packed: tuple) -> np.ndarray:
    values = np.frombuffer(packed[1], packed[0]).astype(np.int64)
    if len(packed) == 3:
        values |= np.unpackbits(np.frombuffer(packed[2], np.uint8))[:len(values)].astype(
            np.int64) << 32
    return values


def _views_v1(parts: tuple) -> WindowViews:
    """Version 1 (open windows in a savepoint of an earlier release) held the distinct
    addresses as sets and the records as columns."""
    return WindowViews.of_sets(*parts[:4], list(chain.from_iterable(zip(*parts[4]))))


def encode_window_rows(window_start: int, dependencies, exposure, reject_sources) -> bytes:
    return _encode(WINDOW_ROWS_CODEC_VERSION,
                   (window_start, dependencies, exposure, reject_sources))


def decode_window_rows(payload: bytes) -> tuple:
    return _decode(WINDOW_ROWS_CODEC_VERSION, "security window rows", payload)


def encode_events_state(state: tuple) -> bytes:
    return _encode(EVENTS_CODEC_VERSION, state)


def decode_events_state(payload: bytes) -> tuple:
    return _decode(EVENTS_CODEC_VERSION, "security events state", payload)


# A chunk of changelog events (job.ownership.MetaEvent) as one value, never kept in state: as
# a list of rows, each event cost a row object made, encoded and decoded in Python, about as
# much as its parse. Equal owner values are one object in a parsed chunk
# (job.ownership.parse_chunk): pickle writes each once. 2: and whether they are a snapshot's.
CHANGELOG_CODEC_VERSION = 2


def encode_events(events, from_snapshot: bool = False) -> bytes:
    return _encode(CHANGELOG_CODEC_VERSION, (from_snapshot, list(map(tuple, events))))


def decode_events(payload: bytes) -> tuple:
    """(the events, whether they are a snapshot's)."""
    from_snapshot, events = _decode(CHANGELOG_CODEC_VERSION, "changelog events", payload)
    return list(map(MetaEvent._make, events)), from_snapshot
