"""Encoding of flow groups between the parse and attribution operators and in keyed state, of
the changelog's chunks of events on their way to the broadcast state, and of the security
views' batches (below).

Version byte + pickle (protocol 4) of plain tuples of str/int/None, or for a flow group's
columns Arrow's IPC format: no classes are pickled, so any later release can read what an
earlier one wrote.
"""
import pickle
from itertools import chain

import pyarrow as pa

from flowdredge.job.ownership import MetaEvent
from flowdredge.job.parse import FlowFormat, FlowGroup
from flowdredge.job.security import WindowViews

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
# operators: pickles of dicts, lists, tuples, sets, str, int and None, each with its version.
VIEWS_CODEC_VERSION = 2          # a batch's WindowViews (1: sets, record columns)
WINDOW_ROWS_CODEC_VERSION = 1    # a closed window's rows for the events
EVENTS_CODEC_VERSION = 1         # SecurityEvents.state()


def _encode(version: int, value) -> bytes:
    return bytes([version]) + pickle.dumps(value, protocol=5)


def _decode(version: int, what: str, payload: bytes):
    if payload[0] != version:
        raise ValueError(f"{what} codec version {payload[0]} is not readable by this release")
    return pickle.loads(payload[1:])


def encode_views(views: WindowViews) -> bytes:
    return _encode(VIEWS_CODEC_VERSION, views.parts())


def decode_views(payload: bytes) -> WindowViews:
    if payload[0] == 1:
        return _views_v1(pickle.loads(payload[1:]))
    return WindowViews(*_decode(VIEWS_CODEC_VERSION, "security views", payload))


def _views_v1(parts: tuple) -> WindowViews:
    """Version 1 (open windows in a savepoint of an earlier release) held the distinct
    addresses as sets, now dict keys, and the records as columns, now one flat list."""
    for part in parts[:3]:
        for sums in part.values():
            for i, value in enumerate(sums):
                if isinstance(value, set):
                    sums[i] = dict.fromkeys(value)
    return WindowViews(*parts[:4], list(chain.from_iterable(zip(*parts[4]))))


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
# (job.ownership.parse_chunk): pickle writes each once.
CHANGELOG_CODEC_VERSION = 1


def encode_events(events) -> bytes:
    return _encode(CHANGELOG_CODEC_VERSION, list(map(tuple, events)))


def decode_events(payload: bytes) -> list:
    return list(map(MetaEvent._make, _decode(CHANGELOG_CODEC_VERSION, "changelog events",
                                             payload)))
