"""Enriched flows as JSON Lines, fast. Pure Python.

json.dumps of a dict per flow cost about 10 us, most of the job's Python time. Here a batch of
flows of one format renders through that format's %-template (one C call per flow) when no
value needs escaping, and each owner's JSON fragment is built once: the output is the same JSON
(tests compare it with json.dumps).

A batch's lines leave the Python worker as one gzip member (gzip_block): at about 750 bytes a
flow, moving the text itself from Python to the JVM cost more than all the rest of the default
configuration (docs/performance.md, issue #15); compressed it is a ninth of the size, and the
files are gzip JSON Lines as AWS's own logs are.
"""
import json
import re
import zlib
from functools import partial
from itertools import chain
from operator import itemgetter

from flowdredge.job.parse import ClearingMemo, decode_tcp_flags
from flowdredge.schemas.outputs import ENRICHED_OWNER_KEYS

_SIDE = len(ENRICHED_OWNER_KEYS) // 2
SRC_KEYS, DST_KEYS = ENRICHED_OWNER_KEYS[:_SIDE], ENRICHED_OWNER_KEYS[_SIDE:]

_SAFE = frozenset(chr(c) for c in range(0x20, 0x7f)) - {'"', "\\"}


def _value(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, str):
        return f'"{v}"' if _SAFE.issuperset(v) else json.dumps(v)
    return str(v)


def _owner_fragment(keys: tuple, owner: tuple) -> str:
    """Owner tuple -> its `,"src_app":"api",...` fragment."""
    return "," + ",".join(f'"{k}":{_value(v)}' for k, v in zip(keys, owner))


def _flags_fragment(flags: int) -> str:
    """tcp-flags value -> `,"tcp_flags_names":"SYN-ACK"`."""
    return f',"tcp_flags_names":{json.dumps(decode_tcp_flags(flags))}'


# Built on first sight: owners and flag values repeat, and a dict subscript is the cheapest hit.
SRC_FRAGMENTS = ClearingMemo(partial(_owner_fragment, SRC_KEYS), 100_000)
DST_FRAGMENTS = ClearingMemo(partial(_owner_fragment, DST_KEYS), 100_000)
FLAG_FRAGMENTS = ClearingMemo(_flags_fragment, 4096)


class EnrichedWriter:
    """Renders flows of one format. `int_positions`: the fields that are ints (or None); the
    others are strings (or None)."""

    def __init__(self, keys: tuple, int_positions: tuple = ()):
        self.heads = tuple(('{' if i == 0 else ',') + f'"{k}":' for i, k in enumerate(keys))
        ints = set(int_positions)
        self._strings = tuple(i for i in range(len(keys)) if i not in ints)
        # One %-template per format: a flow renders in one C call instead of one per field.
        self._template = "".join(h + ("%s" if i in ints else '"%s"')
                                 for i, h in enumerate(self.heads)) + "%s%s%s}"

    def line(self, flow: tuple, src: tuple, dst: tuple, extra: dict = None) -> str:
        parts = [h + _value(v) for h, v in zip(self.heads, flow)]
        parts.append(SRC_FRAGMENTS[src])
        parts.append(DST_FRAGMENTS[dst])
        if extra:
            parts.extend(f",{json.dumps(k)}:{json.dumps(v)}" for k, v in extra.items())
        parts.append("}")
        return "".join(parts)

    def lines(self, flows: list, srcs: list, dsts: list, tcp_flags: int = None,
              extra: dict = None) -> list:
        """line() of each flow with its owners; with `tcp_flags` (the field's position) each
        line also names the flags (`tcp_flags_names`), then `extra`. Through the template when
        every string value of the batch is plain (nothing to escape) and the flow has no null;
        otherwise line() for that batch or flow."""
        if extra or not self._plain(flows):
            return [self.line(f, s, d, _more(f, tcp_flags, extra))
                    for f, s, d in zip(flows, srcs, dsts)]
        template, src, dst, line = self._template, SRC_FRAGMENTS, DST_FRAGMENTS, self.line
        if tcp_flags is None:
            return [template % (*f, src[s], dst[d], "") if None not in f else line(f, s, d)
                    for f, s, d in zip(flows, srcs, dsts)]
        flags = FLAG_FRAGMENTS
        return [template % (*f, src[s], dst[d], flags[f[tcp_flags]]) if None not in f
                else line(f, s, d, _more(f, tcp_flags, None))
                for f, s, d in zip(flows, srcs, dsts)]

    def _plain(self, flows) -> bool:
        if not self._strings:
            return True
        pick = itemgetter(*self._strings)
        values = map(pick, flows) if len(self._strings) == 1 else \
            chain.from_iterable(map(pick, flows))
        # str(None) is plain: nulls are the template's to refuse, flow by flow.
        return _UNPLAIN.search("".join(map(str, values))) is None


_UNPLAIN = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')   # what _value would escape


def _more(flow, tcp_flags, extra):
    if tcp_flags is None:
        return extra
    return {"tcp_flags_names": decode_tcp_flags(flow[tcp_flags]), **(extra or {})}


# zlib's fastest level: 9x smaller on these lines at about 200 MB/s; higher levels gain little
# size and cost several times the CPU.
GZIP_LEVEL = 1


def gzip_block(lines) -> bytes:
    """The lines, each ended by a newline, as one gzip member; members concatenated are a gzip
    file (RFC 1952), so the sink writes them back to back."""
    return zlib.compress(("\n".join(lines) + "\n").encode("utf-8"), GZIP_LEVEL, wbits=31)
