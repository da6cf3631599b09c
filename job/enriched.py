"""Enriched flows as JSON Lines, fast. Pure Python.

json.dumps of a dict per flow cost about 10 us, most of the job's Python time. Here each field
is rendered by a per-format template and each owner's JSON fragment is built once: the output
is the same JSON (tests compare it with json.dumps).

A batch's lines leave the Python worker as one gzip member (gzip_block): at about 750 bytes a
flow, moving the text itself from Python to the JVM cost more than all the rest of the default
configuration (docs/performance.md, issue #15); compressed it is a ninth of the size, and the
files are gzip JSON Lines as AWS's own logs are.
"""
import json
import zlib
from functools import lru_cache

from schemas.outputs import ENRICHED_OWNER_KEYS

_SIDE = len(ENRICHED_OWNER_KEYS) // 2
SRC_KEYS, DST_KEYS = ENRICHED_OWNER_KEYS[:_SIDE], ENRICHED_OWNER_KEYS[_SIDE:]

_SAFE = frozenset(chr(c) for c in range(0x20, 0x7f)) - {'"', "\\"}


def _value(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, str):
        return f'"{v}"' if _SAFE.issuperset(v) else json.dumps(v)
    return str(v)


@lru_cache(maxsize=100_000)
def owner_fragment(keys: tuple, owner: tuple) -> str:
    """`"src_app":"api","src_cluster":...` for one owner tuple (cached: owners repeat)."""
    return ",".join(f'"{k}":{_value(v)}' for k, v in zip(keys, owner))


class EnrichedWriter:
    def __init__(self, keys: tuple):
        self.heads = tuple(('{' if i == 0 else ',') + f'"{k}":' for i, k in enumerate(keys))

    def line(self, flow: tuple, src: tuple, dst: tuple, extra: dict = None) -> str:
        parts = [h + _value(v) for h, v in zip(self.heads, flow)]
        parts.append("," + owner_fragment(SRC_KEYS, src))
        parts.append("," + owner_fragment(DST_KEYS, dst))
        if extra:
            parts.extend(f",{json.dumps(k)}:{json.dumps(v)}" for k, v in extra.items())
        parts.append("}")
        return "".join(parts)


# zlib's fastest level: 9x smaller on these lines at about 200 MB/s; higher levels gain little
# size and cost several times the CPU.
GZIP_LEVEL = 1


def gzip_block(lines) -> bytes:
    """The lines, each ended by a newline, as one gzip member; members concatenated are a gzip
    file (RFC 1952), so the sink writes them back to back."""
    return zlib.compress(("\n".join(lines) + "\n").encode("utf-8"), GZIP_LEVEL, wbits=31)
