"""Encoding of flow groups between the parse and attribution operators and in keyed state, and
of the security views' batches (below).

Flow groups: a version byte, then
- version 2 (written): an Arrow IPC stream of the group's columns (job.parse.FlowGroup), the
  format's names and the source in the schema's metadata;
- version 1 (read only, from the keyed state of earlier releases): pickle (protocol 4) of plain
  tuples of str/int/None.
Neither pickles a class, so any later release can read what an earlier one wrote.
"""
import pickle

import pyarrow as pa

from job.parse import FlowFormat, FlowGroup
from job.security import WindowViews

GROUP_CODEC_VERSION = 2
_TUPLES_VERSION = 1
_formats: dict = {}


def encode_group(group: FlowGroup) -> bytes:
    columns = group.columns.replace_schema_metadata(
        {b"names": " ".join(group.fmt.names).encode(),
         b"source": group.source.encode("utf-8", "surrogateescape")})
    sink = pa.BufferOutputStream()
    sink.write(bytes([GROUP_CODEC_VERSION]))
    with pa.ipc.new_stream(sink, columns.schema) as writer:
        writer.write_batch(columns)
    return sink.getvalue().to_pybytes()


def _format(names: tuple) -> FlowFormat:
    fmt = _formats.get(names)
    if fmt is None:
        fmt = _formats[names] = FlowFormat(names)
    return fmt


def decode_group(payload: bytes, window_start: int, max_start: int) -> FlowGroup:
    version = payload[0]
    if version == GROUP_CODEC_VERSION:
        columns = pa.ipc.open_stream(memoryview(payload)[1:]).read_next_batch()
        meta = columns.schema.metadata
        return FlowGroup(_format(tuple(meta[b"names"].decode().split(" "))), window_start,
                         max_start, None, meta[b"source"].decode("utf-8", "surrogateescape"), columns)
    if version == _TUPLES_VERSION:
        names, source, flows = pickle.loads(payload[1:])
        return FlowGroup(_format(names), window_start, max_start, flows, source)
    raise ValueError(f"flow group codec version {version} is not readable by this release")


# The security views (job.security, job.flink.security), in keyed state and between their
# operators: pickles of dicts, lists, tuples, sets, str, int and None, each with its version.
VIEWS_CODEC_VERSION = 1          # a batch's WindowViews
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
    return WindowViews(*_decode(VIEWS_CODEC_VERSION, "security views", payload))


def encode_window_rows(window_start: int, dependencies, exposure, reject_sources) -> bytes:
    return _encode(WINDOW_ROWS_CODEC_VERSION,
                   (window_start, dependencies, exposure, reject_sources))


def decode_window_rows(payload: bytes) -> tuple:
    return _decode(WINDOW_ROWS_CODEC_VERSION, "security window rows", payload)


def encode_events_state(state: tuple) -> bytes:
    return _encode(EVENTS_CODEC_VERSION, state)


def decode_events_state(payload: bytes) -> tuple:
    return _decode(EVENTS_CODEC_VERSION, "security events state", payload)
