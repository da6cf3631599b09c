"""Encoding of flow groups between the parse and attribution operators and in keyed state.

Version byte + pickle (protocol 4) of plain tuples of str/int/None: no classes are pickled, so
any later release can read what an earlier one wrote.
"""
import pickle

from job.parse import FlowFormat, FlowGroup

GROUP_CODEC_VERSION = 1
_formats: dict = {}


def encode_group(group: FlowGroup) -> bytes:
    return bytes([GROUP_CODEC_VERSION]) + pickle.dumps(
        (group.fmt.names, group.source, group.flows), protocol=4)


def decode_group(payload: bytes, window_start: int, max_start: int) -> FlowGroup:
    if payload[0] != GROUP_CODEC_VERSION:
        raise ValueError(f"flow group codec version {payload[0]} is not readable by this release")
    names, source, flows = pickle.loads(payload[1:])
    fmt = _formats.get(names)
    if fmt is None:
        fmt = _formats[names] = FlowFormat(names)
    return FlowGroup(fmt, window_start, max_start, flows, source)
