"""Enriched flows as JSON Lines, fast. Pure Python.

json.dumps of a dict per flow cost about 10 us, most of the job's Python time. Here a group of
Arrow columns (the vectorised parser's) renders in one Arrow call over its columns and its
owners' JSON fragments (EnrichedWriter.block); a batch of flows as tuples, or a group with a
null or a value to escape, through its format's %-template, all in C calls (map over the
batch), or line by line where that cannot. Each owner's fragment is built once. The output is
the same JSON either way (tests compare it with json.dumps and the paths with each other).

A batch's lines leave the Python worker as one gzip member (gzip_block): at about 800 bytes a
flow, moving the text itself from Python to the JVM cost more than all the rest of the default
configuration (docs/performance.md, issue #15); compressed it is an eighth of the size, and the
files are gzip JSON Lines as AWS's own logs are.
"""
import json
import threading
from itertools import chain, repeat
from operator import itemgetter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

try:
    from isal.isal_zlib import compress as _compress
except ImportError:   # no isal build for this Python (a zip made for another): zlib, same format
    from zlib import compress as _compress

from flowdredge.job.parse import ClearingMemo, decode_tcp_flags
from flowdredge.schemas.outputs import ENRICHED_OWNER_KEYS, TCP_FLAGS_NAMES

_SIDE = len(ENRICHED_OWNER_KEYS) // 2
SRC_KEYS, DST_KEYS = ENRICHED_OWNER_KEYS[:_SIDE], ENRICHED_OWNER_KEYS[_SIDE:]

_SAFE = frozenset(chr(c) for c in range(0x20, 0x7f)) - {'"', "\\"}
# _SAFE as bytes, for bytes.translate(None, delete): what it leaves of a text needs escaping.
_SAFE_BYTES = bytes(sorted(ord(c) for c in _SAFE))


def _value(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, str):
        return f'"{v}"' if _SAFE.issuperset(v) else json.dumps(v)
    return str(v)


def _owner_fragment(keys: tuple, owner: tuple) -> str:
    """Owner tuple -> its `,"src_app":"api",...` fragment."""
    return "," + ",".join(f'"{k}":{_value(v)}' for k, v in zip(keys, owner))


class _OwnerFragments:
    """_owner_fragment for one side's keys, through a %-template when every value is a plain
    string (nothing to escape), as owners nearly always are: a tenth of its time. Each owner's
    fragment is built on first sight in a worker, and again whenever the memo below is emptied:
    in an estate of more owners than it holds, that is most flows."""

    def __init__(self, keys: tuple):
        self.keys = keys
        self.template = "".join(f',"{k}":"%s"' for k in keys)

    def __call__(self, owner: tuple) -> str:
        try:
            text = "".join(owner)
        except TypeError:   # a value not a string
            return _owner_fragment(self.keys, owner)
        if (len(owner) == len(self.keys) and text.isascii() and text.isprintable()
                and '"' not in text and "\\" not in text):
            return self.template % owner
        return _owner_fragment(self.keys, owner)


def _flags_end(flags: int) -> str:
    """tcp-flags value -> `,"tcp_flags_names":"SYN-ACK"}`, the end of its line."""
    return f',"{TCP_FLAGS_NAMES.name}":{json.dumps(decode_tcp_flags(flags))}}}'


# Built on first sight: owners and flag values repeat, and a dict subscript is the cheapest hit.
SRC_FRAGMENTS = ClearingMemo(_OwnerFragments(SRC_KEYS), 100_000)
DST_FRAGMENTS = ClearingMemo(_OwnerFragments(DST_KEYS), 100_000)
FLAG_ENDS = ClearingMemo(_flags_end, 4096)


class FragmentPool:
    """One side's owner fragments for EnrichedWriter.block, made once each and held back to back
    in one buffer, which a group's flows take their fragments from in one Arrow call (`take`).
    An owner of an IP with one owner (the index's own tuple, OwnershipIndex.single_owners) is
    found by its IP's slot and checked by identity: the id of the owner its slot's fragment was
    made of, compared in numpy (no hash, no string read, no Python code an owner); its fragment
    is made again when the slot holds another object (the slot changed, or another index's).
    Other owners (unowned ends, those found one by one) are found by hash. Before, each owner's
    fragment was found in Python (a list entry or a memo hit) and a group's made an Arrow array
    again: a third of the block's time (docs/performance.md, run 65). Each fragment's owner is
    held while the fragment is, so its id stays its own; emptied whole past `limit` fragments
    made, as ClearingMemo is, or past `max_bytes` of them (Arrow's string offsets are int32:
    a group adds far less than the rest up to 2 GiB); 4 bytes a slot up to the highest seen."""

    def __init__(self, fragment, limit: int, max_bytes: int = 1 << 30):
        self.fragment, self.limit, self.max_bytes = fragment, limit, max_bytes
        # Another instance of the operator may share the worker (a loopback worker's threads).
        self._lock = threading.Lock()
        self._empty(0)

    def _empty(self, slots: int) -> None:
        # New arrays, not the old ones cleared: an array a take reads may still be over them.
        self.data = np.empty(1 << 16, np.uint8)   # the fragments' UTF-8, back to back
        self.ends = np.zeros(1 << 10, np.int32)   # fragment i: data[ends[i]:ends[i + 1]]
        self.owner_ids = np.zeros(1 << 10, np.int64)   # fragment i's owner's id
        self.owners = []   # fragment i's owner, held
        self.by_owner = {}   # an owner not by slot -> its fragment's position
        self.slot_at = np.full(slots, -1, np.int32)   # per slot: its fragment's position, or -1

    def take(self, owners: list, ids, slots: list) -> pa.StringArray:
        """The fragment of each flow's owner, `owners[ids]`; the last len(slots) of `owners`
        are the owners of `slots`."""
        with self._lock:
            at = self._positions(owners, slots)
            n = len(self.owners)
            pool = pa.StringArray.from_buffers(n, pa.py_buffer(self.ends[:n + 1]),
                                               pa.py_buffer(self.data[:self.ends[n]]))
        return pool.take(at[ids])

    def _positions(self, owners: list, slots: list) -> np.ndarray:
        """Each of `owners`' fragment's position, the fragments not held made first."""
        alone = len(owners) - len(slots)
        slots = np.asarray(slots, np.int64)
        by_slot = owners[alone:]
        if len(slots) and slots.max() >= len(self.slot_at):
            grown = np.full(slots.max() + 1, -1, np.int32)
            grown[:len(self.slot_at)] = self.slot_at
            self.slot_at = grown
        ids = np.fromiter(map(id, by_slot), np.int64, len(by_slot))
        at = self.slot_at[slots]
        stale = np.flatnonzero((at < 0) | (self.owner_ids[at] != ids))
        missing = [o for o in dict.fromkeys(owners[:alone]) if o not in self.by_owner]
        if (len(self.owners) + len(stale) + len(missing) > self.limit
                or self.ends[len(self.owners)] > self.max_bytes):
            self._empty(len(self.slot_at))
            at = self.slot_at[slots]
            stale = np.arange(len(slots))
            missing = list(dict.fromkeys(owners[:alone]))
        if len(stale):
            at[stale] = self.slot_at[slots[stale]] = self._made([by_slot[i] for i in stale.tolist()])
        if missing:
            self.by_owner.update(zip(missing, self._made(missing).tolist()))
        return np.concatenate((np.fromiter(map(self.by_owner.__getitem__, owners[:alone]),
                                           np.int64, alone), at))

    def _made(self, owners: list) -> np.ndarray:
        """The positions of `owners`' fragments, made and added."""
        texts = [self.fragment(owner).encode("utf-8") for owner in owners]
        first, n = len(self.owners), len(owners)
        begin = int(self.ends[first])
        end = begin + sum(map(len, texts))
        if end > len(self.data):
            self.data = _grown(self.data, end, begin)
        self.data[begin:end] = np.frombuffer(b"".join(texts), np.uint8)
        if first + n + 1 > len(self.ends):
            self.ends = _grown(self.ends, first + n + 1, first + 1)
            self.owner_ids = _grown(self.owner_ids, first + n + 1, first)
        self.ends[first + 1:first + n + 1] = begin + np.cumsum(list(map(len, texts)))
        self.owner_ids[first:first + n] = list(map(id, owners))
        self.owners += owners
        return np.arange(first, first + n, dtype=np.int32)


def _grown(array: np.ndarray, size: int, used: int) -> np.ndarray:
    """A new array of at least `size` (twice the old), the first `used` items copied."""
    grown = np.zeros(max(size, 2 * len(array)), array.dtype)
    grown[:used] = array[:used]
    return grown


SRC_POOL = FragmentPool(_OwnerFragments(SRC_KEYS), 200_000)
DST_POOL = FragmentPool(_OwnerFragments(DST_KEYS), 200_000)


class EnrichedWriter:
    """Renders flows of one format. `int_positions`: the fields that are ints (or None), never
    another type (the template renders them with %d); the others are strings (or None)."""

    def __init__(self, keys: tuple, int_positions: tuple = ()):
        self.heads = tuple(('{' if i == 0 else ',') + f'"{k}":' for i, k in enumerate(keys))
        ints = self._ints = frozenset(int_positions)
        strings = tuple(i for i in range(len(keys)) if i not in ints)
        self._strings = itemgetter(*strings) if strings else None
        self._chain = len(strings) > 1   # itemgetter of one position gives the value, not a tuple
        # One %-template per format: a flow's fields render in one C call instead of one per
        # field. %d, not %s, for the ints: a null there raises TypeError instead of rendering
        # None. The owner fragments are joined to it after, not put in the template: a new
        # tuple of flow and fragments per flow cost as much as the template itself.
        self._template = "".join(h + ("%d" if i in ints else '"%s"')
                                 for i, h in enumerate(self.heads))

    def block(self, columns: pa.RecordBatch, src: tuple, dst: tuple, tcp_flags: int = None):
        """The lines of a group of columns (the vectorised parser's: int64 and string), each
        ended by a newline, as UTF-8 bytes: lines() of its flows, rendered by Arrow in one call
        over the columns (less than half the time of lines() and the tuples it needs: no tuple,
        no template per flow). `src`, `dst`: each end's distinct owners and, per flow, its
        owner's position among them (an int array), and optionally the slots of the last of
        the owners (FragmentPool). None when the group has a null or a string to escape:
        lines() then."""
        ints = self._ints
        args = []
        for i, (head, column) in enumerate(zip(self.heads, columns.columns)):
            if i in ints:
                if column.type != pa.int64():
                    return None
                args += (head, pc.cast(column, pa.string()))
            else:
                if column.type != pa.string() or not _plain_array(column):
                    return None
                args += (head + '"', column, '"')
        for (owners, ids, *slots), pool in ((src, SRC_POOL), (dst, DST_POOL)):
            args.append(pool.take(owners, ids, slots[0] if slots else ()))
        if tcp_flags is None:
            args.append("}\n")
        else:
            flags = pc.dictionary_encode(columns.column(tcp_flags))
            ends = [FLAG_ENDS[v] + "\n" for v in flags.dictionary.to_pylist()]
            args.append(pa.array(ends, pa.string()).take(flags.indices))
        # A null anywhere makes its line null (the join's default null handling).
        lines = pc.binary_join_element_wise(*args, "")
        if lines.null_count:
            return None
        return _text(lines)

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
        if extra:
            return self._by_line(flows, srcs, dsts, tcp_flags, extra)
        try:
            if self._plain(flows):
                # Without a null, one pass of C calls: each flow through the template, joined to
                # its fragments and the line's end, no Python code per flow.
                ends = repeat("}") if tcp_flags is None else \
                    map(FLAG_ENDS.__getitem__, map(itemgetter(tcp_flags), flows))
                return list(map("".join, zip(
                    map(self._template.__mod__, flows), map(SRC_FRAGMENTS.__getitem__, srcs),
                    map(DST_FRAGMENTS.__getitem__, dsts), ends)))
        except TypeError:   # a null: "".join refuses it among the strings, %d among the ints
            if self._plain(flows, nulls=True):
                return self._by_flow(flows, srcs, dsts, tcp_flags)
        return self._by_line(flows, srcs, dsts, tcp_flags, extra)

    def _by_line(self, flows, srcs, dsts, tcp_flags, extra) -> list:
        return [self.line(f, s, d, _more(f, tcp_flags, extra)) for f, s, d in zip(flows, srcs, dsts)]

    def _by_flow(self, flows, srcs, dsts, tcp_flags) -> list:
        """A plain batch with nulls: the template for each flow without one, line() for the
        others."""
        template, src, dst, line = self._template, SRC_FRAGMENTS, DST_FRAGMENTS, self.line
        if tcp_flags is None:
            return [template % f + src[s] + dst[d] + "}" if None not in f else line(f, s, d)
                    for f, s, d in zip(flows, srcs, dsts)]
        ends = FLAG_ENDS
        return [template % f + src[s] + dst[d] + ends[f[tcp_flags]] if None not in f
                else line(f, s, d, _more(f, tcp_flags, None))
                for f, s, d in zip(flows, srcs, dsts)]

    def _plain(self, flows, nulls: bool = False) -> bool:
        """Whether no string value of the batch needs escaping (what _value would escape: outside
        printable ASCII, or a quote or backslash). A null among them raises TypeError, unless
        `nulls`: then it counts as plain, and the template refuses it flow by flow."""
        if self._strings is None:
            return True
        values = map(self._strings, flows)
        if self._chain:
            values = chain.from_iterable(values)
        if nulls:
            values = map(str, values)
        # isascii is a flag test; isprintable, on ASCII, refuses exactly the control characters.
        text = "".join(values)
        return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def _text(strings: pa.StringArray) -> bytes:
    """A string array's values back to back (its data buffer between its first and last
    offsets)."""
    offsets = np.frombuffer(strings.buffers()[1], np.int32)
    begin, end = offsets[strings.offset], offsets[strings.offset + len(strings)]
    return strings.buffers()[2][int(begin):int(end)].to_pybytes()


def _plain_array(strings: pa.StringArray) -> bool:
    """Whether no value of a string array needs escaping (as EnrichedWriter._plain)."""
    if not len(strings) or strings.null_count == len(strings):
        return True
    return not _text(strings).translate(None, _SAFE_BYTES)


def _more(flow, tcp_flags, extra):
    if tcp_flags is None:
        return extra
    return {TCP_FLAGS_NAMES.name: decode_tcp_flags(flow[tcp_flags]), **(extra or {})}


# ISA-L's (python-isal) fast level: 8x smaller on these lines at about 750 MB/s; zlib's fastest
# made them 9x smaller at 200 MB/s, about 4 us of Python time a flow (docs/performance.md,
# issue #15). Level 1 is at the fast end of both.
GZIP_LEVEL = 1


def gzip_block(text: bytes) -> bytes:
    """Lines (UTF-8, each ended by a newline) as one gzip member; members concatenated are a
    gzip file (RFC 1952), so the sink writes them back to back."""
    return _compress(text, GZIP_LEVEL, wbits=31)
