"""IP ownership over time, from the metadata changelog. Pure Python (no pyflink).

Per IP the index keeps the changes ordered by `ts`: (ts, rank, owner) with owner None for
UNASSIGN. The owner of `ip` at `t` is the owner of the latest change with ts <= t. Changes with
equal ts are ordered UNASSIGN before ASSIGN (a release and a re-assignment at the same instant
leave the new owner), then by arrival. Consecutive changes form the ranges (owner, from, to).
"""
import ipaddress
import json
from bisect import bisect_right, insort_right
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from job.parse import EARLIEST_START, LATEST_START
from schemas.metadata import ABSENT, ASSIGN, EVENT_TYPES, HEARTBEAT, OWNER_FIELDS, UNASSIGN

_RANK = {UNASSIGN: 0, ASSIGN: 1}
STATE_VERSION = 1


def _order(change):
    return change[0], change[1]


@dataclass(frozen=True)
class MetaEvent:
    type: str
    ts: int
    ip: str = ""
    owner: tuple = None


class MetaEventError(ValueError):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


# Changes and HEARTBEATs are bounded as flow starts are (job.parse): [2010, 2100) always, and
# at most metadata.max_ahead_seconds after the record's delivery time when it is known. A single
# event far ahead would move the metadata clock for good.
EARLIEST_TS_MS = EARLIEST_START * 1000
LATEST_TS_MS = LATEST_START * 1000
# What job.replay stages a changelog file into: {"staged": STAGED, "source": path, "first_line":
# n, "not_after": the file's modification time, "lines": [...] (blank lines kept, for numbering),
# "long": [[position, excerpt]] of lines longer than metadata.max_line_bytes, blank in "lines"}.
STAGED = "changelog"


@dataclass(frozen=True)
class MetaLimits:
    max_line_bytes: int = 8192
    max_ahead_seconds: int = 120


@dataclass
class RecordLines:
    """The changelog lines of one record and where they came from."""
    lines: list          # text, blank lines included (they hold nothing)
    source: str          # file path or stream record
    first_line: int = 1  # line number of lines[0]
    not_after: int = None   # epoch seconds no event can be after (a file's modification time)
    long: list = field(default_factory=list)   # [(position, excerpt)] of lines too long to keep


def changelog_lines(record: str, source: str = "metadata") -> RecordLines:
    """The changelog lines a record holds: a file chunk staged by job.replay (STAGED) or text of
    one or many lines (a stream record)."""
    if record.startswith("{") and STAGED in record[:40]:
        try:
            doc = json.loads(record)
        except ValueError:
            doc = None
        if (isinstance(doc, dict) and doc.get("staged") == STAGED
                and isinstance(doc.get("lines"), list)
                and all(isinstance(line, str) for line in doc["lines"])):
            return RecordLines(doc["lines"], str(doc.get("source", source)),
                               _int_or(doc.get("first_line"), 1), _int_or(doc.get("not_after")),
                               _long_lines(doc.get("long")))
    return RecordLines(record.split("\n"), source)


def _long_lines(items) -> list:
    return [(item[0], str(item[1])) for item in items or ()
            if isinstance(item, list) and len(item) == 2 and _is_int(item[0])]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_or(value, default=None):
    return value if _is_int(value) else default


@dataclass
class ParsedChunk:
    events: list     # MetaEvent, in arrival order
    rejected: list   # (reason, location, line), in arrival order

    def event_time_ms(self, heartbeat_shift_ms: int):
        """The chunk's timestamp: its latest event's, a HEARTBEAT's shifted by
        `heartbeat_shift_ms`. A bounded-out-of-orderness watermark after the chunk is then what
        it would be after its events one by one. None without events."""
        return max((e.ts + heartbeat_shift_ms if e.type == HEARTBEAT else e.ts
                    for e in self.events), default=None)


def parse_chunk(record: str, source: str = "metadata", delivered: int = None,
                limits: MetaLimits = MetaLimits()) -> ParsedChunk:
    """Every changelog line of a record (changelog_lines), each as parse_event would; bad lines
    are rejected with a reason and their location (`<source>:<line>`). `delivered` (epoch
    seconds) is when the record was delivered, e.g. its Kinesis arrival time."""
    record_lines = changelog_lines(record, source)
    bounds = [t for t in (delivered, record_lines.not_after) if t is not None]
    latest_ms = LATEST_TS_MS
    if bounds:
        latest_ms = min(latest_ms, (min(bounds) + limits.max_ahead_seconds) * 1000 + 1)
    chunk = ParsedChunk([], [])
    where = record_lines.source
    first = record_lines.first_line
    for position, text in record_lines.long:
        chunk.rejected.append(("line_too_long", f"{where}:{first + position}", text))
    for position, line in enumerate(record_lines.lines):
        if not line.strip():
            continue
        if len(line) > limits.max_line_bytes:
            chunk.rejected.append(("line_too_long", f"{where}:{first + position}", line))
            continue
        try:
            chunk.events.append(parse_event(line, latest_ms))
        except MetaEventError as err:
            chunk.rejected.append((err.reason, f"{where}:{first + position}", line))
    return chunk


def parse_event(line: str, latest_ms: int = LATEST_TS_MS) -> MetaEvent:
    """One changelog line to a MetaEvent; raises MetaEventError with a reason code. `ts` must be
    in [2010, `latest_ms`) (epoch ms)."""
    try:
        doc = json.loads(line)
    except ValueError:
        raise MetaEventError("not_json") from None
    if not isinstance(doc, dict):
        raise MetaEventError("not_an_object")
    kind = doc.get("type")
    if kind not in EVENT_TYPES:
        raise MetaEventError("unknown_type")
    ts = doc.get("ts")
    if isinstance(ts, float) and ts.is_integer():
        ts = int(ts)
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise MetaEventError("missing_ts")
    if kind == HEARTBEAT:
        return MetaEvent(HEARTBEAT, _bounded(ts, latest_ms))
    ip = doc.get("ip")
    if not isinstance(ip, str):
        raise MetaEventError("missing_ip")
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        raise MetaEventError("bad_address") from None
    ts = _bounded(ts, latest_ms)
    if kind == UNASSIGN:
        return MetaEvent(UNASSIGN, ts, ip)
    owner = tuple(str(doc[f]) if doc.get(f) not in (None, "") else ABSENT for f in OWNER_FIELDS)
    return MetaEvent(ASSIGN, ts, ip, owner)


def _bounded(ts: int, latest_ms: int) -> int:
    if not EARLIEST_TS_MS <= ts < latest_ms:
        raise MetaEventError("ts_out_of_range")
    return ts


# Addresses are integer keys: an IPv4 address in canonical dotted form is its 32-bit value,
# any other address string (IPv6, or what tests use) is numbered from _OTHER on.
_OTHER = 1 << 32
# Owner codes of a change: an owner id, or one of these (owner None either way; the rank differs).
_UNASSIGNED, _ASSIGNED_NONE = -1, -2
_RANK_OF = {_UNASSIGNED: 0, _ASSIGNED_NONE: 1}
# Changed IPs kept as lists before their changes are merged into the arrays; lookups merge
# beyond this many, apply beyond this many or an eighth of the IPs (a merge copies them all).
_MERGE_ON_LOOKUP = 256
_MERGE_ON_APPLY = 4096
# Address strings already turned into keys, for flow ends (cleared beyond this many): a dict
# lookup per end cost less than parsing the dotted quads with arrow and numpy (0.15-0.25 against
# 0.35-0.45 us per end, groups of about 500 flows, measured).
_KNOWN_ADDRESSES = 1 << 18


def ipv4_key(ip: str):
    """The integer of a canonical dotted IPv4 address (what ipaddress prints), else None."""
    try:
        a, b, c, d = map(int, ip.split("."))
    except ValueError:
        return None
    # int() also reads "+1", "01", " 1", "1_0": only the canonical text prints back the same.
    if f"{a}.{b}.{c}.{d}" != ip or max(a, b, c, d) > 255 or min(a, b, c, d) < 0:
        return None
    return a << 24 | b << 16 | c << 8 | d


class _ChangeLists:
    """ip -> its changes [(ts, rank, owner tuple|None)] sorted by (ts, rank): a view of the
    index's arrays, for reading one IP at a time."""

    def __init__(self, index: "OwnershipIndex"):
        self._index = index

    def get(self, ip: str, default=None):
        key = self._index._key(ip)
        changes = None if key is None else self._index._changes_of(key)
        if not changes:
            return default
        owners = self._index.owner_list
        return [(ts, rank, owners[o] if o >= 0 else None) for ts, rank, o in changes]

    def __getitem__(self, ip: str) -> list:
        changes = self.get(ip)
        if changes is None:
            raise KeyError(ip)
        return changes


class OwnershipIndex:
    """Every IP's changes in arrays sorted by (address key, ts, rank): the key, ts and owner
    code of each change, 20 bytes; recently changed IPs as lists until they are merged in.
    Owners are interned: one tuple and one id per distinct owner (owner_list, owner_field)."""

    def __init__(self):
        self._owners = {}   # owner tuple -> id; owner_list[id] is the tuple
        self.owner_list = []
        self._fields = {}   # owner field position -> (codes by owner id, {value: code}, values)
        self._ranges = 0    # kept up to date: a metrics gauge reads it often
        self._ips = 0
        self._other_keys = {}   # address that is not IPv4 -> key
        self._other_ips = []
        self._known = {}   # address -> key (address_keys)
        self._unseen = 0   # the last negative key given to an address the index does not know
        self._classified = {}   # classifier -> {address key: owner id} (classified)
        self._key_of = np.zeros(0, np.int64)
        self._ts = np.zeros(0, np.int64)
        self._code = np.zeros(0, np.int32)
        # key -> [(ts, rank, owner code)] of the IPs changed since the last merge, in place of
        # what the arrays hold for them ([] when all are gone).
        self._recent = {}
        self._changes = _ChangeLists(self)

    def __len__(self):
        return self._ips

    def ranges(self) -> int:
        return self._ranges

    def owner_id(self, owner: tuple) -> int:
        """The id of an owner tuple, interned on first sight."""
        i = self._owners.get(owner)
        if i is None:
            i = self._owners[owner] = len(self.owner_list)
            self.owner_list.append(owner)
        return i

    def owner_field(self, position: int) -> tuple:
        """(codes, values): owner field `position` of every owner id as a code into values."""
        codes, index, values = self._fields.setdefault(position, (np.zeros(0, np.int64), {}, []))
        if len(codes) < len(self.owner_list):
            more = [index.setdefault(o[position], len(index))
                    for o in self.owner_list[len(codes):]]
            values.extend(list(index)[len(values):])
            codes = np.concatenate([codes, np.array(more, np.int64)])
            self._fields[position] = codes, index, values
        return codes, values

    def _key(self, ip: str, create: bool = False):
        key = ipv4_key(ip)
        if key is None:
            key = self._other_keys.get(ip)
            if key is None and create:
                key = self._other_keys[ip] = _OTHER + len(self._other_ips)
                # address_keys may have numbered it as unseen.
                self._known.pop(ip, None)
                self._other_ips.append(ip)
        return key

    def _ip(self, key: int) -> str:
        if key >= _OTHER:
            return self._other_ips[key - _OTHER]
        return ".".join(str(key >> shift & 255) for shift in (24, 16, 8, 0))

    def _rows(self, key: int) -> tuple:
        return (int(np.searchsorted(self._key_of, key)),
                int(np.searchsorted(self._key_of, key, "right")))

    def _changes_of(self, key: int) -> list:
        """[(ts, rank, owner code)] of one key."""
        changes = self._recent.get(key)
        if changes is None:
            lo, hi = self._rows(key)
            changes = [(ts, _RANK_OF.get(code, 1), code) for ts, code in zip(
                self._ts[lo:hi].tolist(), self._code[lo:hi].tolist())]
        return changes

    def _set(self, key: int, changes: list) -> None:
        before = self._changes_of(key)
        self._ranges += len(changes) - len(before)
        self._ips += bool(changes) - bool(before)
        self._recent[key] = changes

    def apply(self, event: MetaEvent) -> None:
        key = self._key(event.ip, create=True)
        changes = list(self._changes_of(key))
        if event.owner:
            code = self.owner_id(event.owner)
        else:
            code = _UNASSIGNED if event.type == UNASSIGN else _ASSIGNED_NONE
        insort_right(changes, (event.ts, _RANK[event.type], code), key=_order)
        self._set(key, changes)
        if len(self._recent) > max(_MERGE_ON_APPLY, self._ips >> 3):
            self._merge()

    def _merge(self) -> None:
        """Moves the recent changes into the arrays."""
        if not self._recent:
            return
        keys = np.fromiter(self._recent, np.int64, len(self._recent))
        kept = ~np.isin(self._key_of, keys)
        flat = [(key, ts, code) for key, changes in self._recent.items()
                for ts, _, code in changes]
        added = np.array(flat, np.int64).reshape(-1, 3)
        key_of = np.concatenate([self._key_of[kept], added[:, 0]])
        # Stable: each key's changes come from one side, already in order.
        order = np.argsort(key_of, kind="stable")
        self._key_of = key_of[order]
        self._ts = np.concatenate([self._ts[kept], added[:, 1]])[order]
        self._code = np.concatenate([self._code[kept], added[:, 2].astype(np.int32)])[order]
        self._recent = {}

    def address_keys(self, col):
        """The key of every address of an arrow string column (or of its values, a numpy
        object array); an address the index has never seen (not IPv4, no change) gets a
        negative number of its own."""
        values = col if isinstance(col, np.ndarray) else col.to_numpy(zero_copy_only=False)
        known = self._known
        try:
            return np.fromiter(map(known.__getitem__, values), np.int64, len(values))
        except KeyError:
            pass
        if len(known) > _KNOWN_ADDRESSES:
            known.clear()
        for ip in set(values.tolist()).difference(known):
            key = None if ip is None else self._key(ip)
            if key is None:
                # Kept like the others (an address seen once is seen again: every group would
                # otherwise look it up twice); forgotten when the index learns it (_key).
                self._unseen -= 1
                key = self._unseen
            known[ip] = key
        return np.fromiter(map(known.__getitem__, values), np.int64, len(values))

    def classified(self, keys, addresses, classify):
        """The owner ids of `classify(address)` (an owner tuple) for the address keys of ends
        the index does not own, classified once per address; `addresses()` lists their
        addresses, asked for only when one is new."""
        cache = self._classified.setdefault(classify, {})
        listed = keys.tolist()
        try:
            return np.fromiter(map(cache.__getitem__, listed), np.int64, len(listed))
        except KeyError:
            pass
        if len(cache) > _KNOWN_ADDRESSES:
            cache.clear()
        for key, address in zip(listed, addresses()):
            if key not in cache:
                cache[key] = self.owner_id(classify(address))
        return np.fromiter(map(cache.__getitem__, listed), np.int64, len(listed))

    def owners_of(self, keys, t_ms):
        """The owner id (-1: none) of every flow end: its address key (address_keys) and time;
        owner_at's answer, in the arrays."""
        if len(self._recent) > _MERGE_ON_LOOKUP:
            self._merge()
        key_of = self._key_of
        last = np.searchsorted(key_of, keys, "right") - 1
        known = (last >= 0) & (key_of[np.maximum(last, 0)] == keys) if len(key_of) else (
            np.zeros(len(keys), bool))
        last[~known] = 0
        owners = np.full(len(keys), -1, np.int64)
        if not known.any():
            return self._recent_owners(keys, t_ms, owners)
        settled = known & (self._ts[last] <= t_ms)
        owners[settled] = self._code[last[settled]]
        # An end whose IP changed owner after its time: bisect its changes, all at once.
        later = np.flatnonzero(known & ~settled)
        if len(later):
            t = t_ms[later]
            lo = np.searchsorted(key_of, keys[later])
            first = lo.copy()
            hi = last[later]
            while True:
                active = lo < hi
                if not active.any():
                    break
                mid = (lo + hi) >> 1
                before = self._ts[mid] <= t
                lo = np.where(active & before, mid + 1, lo)
                hi = np.where(active & ~before, mid, hi)
            found = lo > first
            owners[later[found]] = self._code[lo[found] - 1]
        owners[owners < 0] = -1
        return self._recent_owners(keys, t_ms, owners)

    def _recent_owners(self, keys, t_ms, owners):
        if self._recent:
            recent = np.fromiter(self._recent, np.int64, len(self._recent))
            for j in np.flatnonzero(np.isin(keys, recent)).tolist():
                changes = self._recent[int(keys[j])]
                i = bisect_right(changes, int(t_ms[j]), key=lambda c: c[0])
                owners[j] = max(changes[i - 1][2], -1) if i else -1
        return owners

    def owners_at(self, ips: list, ends, t_ms):
        """owners_of for `ips` the distinct addresses and `ends` an index into them per end."""
        return self.owners_of(self.address_keys(pa.array(ips, pa.string()))[ends], t_ms)

    def owner_at(self, ip: str, t_ms: int):
        key = self._key(ip)
        if key is None:
            return None
        owner = self.owners_of(np.array([key], np.int64), np.array([t_ms], np.int64))[0]
        return None if owner < 0 else self.owner_list[owner]

    def prune(self, horizon_ms: int) -> tuple:
        """Forgets what no flow at or after `horizon_ms` can need. Returns (changed, removed) IPs."""
        self._merge()
        key_of, ts, code = self._key_of, self._ts, self._code
        if not len(key_of):
            return [], []
        starts = np.flatnonzero(np.concatenate([[True], key_of[1:] != key_of[:-1]]))
        ends = np.append(starts[1:], len(key_of))
        at_or_before = np.add.reduceat((ts <= horizon_ms).astype(np.int64), starts)
        # From the last change at or before the horizon on (all of an IP's when none is).
        first_kept = starts + np.maximum(at_or_before - 1, 0)
        removed = (ends - first_kept == 1) & (at_or_before > 0) & (code[ends - 1] < 0)
        changed = ~removed & (first_kept > starts)
        keep = np.ones(len(key_of), bool)
        dropped = np.where(removed, ends, first_kept) - starts
        drop_rows = np.repeat(starts, dropped) + (np.arange(dropped.sum()) - np.repeat(
            np.cumsum(dropped) - dropped, dropped))
        keep[drop_rows] = False
        self._ranges -= int(dropped.sum())
        self._ips -= int(np.count_nonzero(removed))
        self._key_of, self._ts, self._code = key_of[keep], ts[keep], code[keep]
        return ([self._ip(k) for k in key_of[starts[changed]].tolist()],
                [self._ip(k) for k in key_of[starts[removed]].tolist()])

    def encode(self, ip: str) -> str:
        """The IP's changes as versioned JSON, the value kept in Flink broadcast state."""
        return json.dumps([STATE_VERSION, [[ts, rank, list(o) if o else None]
                                           for ts, rank, o in self._changes[ip]]],
                          separators=(",", ":"))

    def load(self, ip: str, encoded: str) -> None:
        version, changes = json.loads(encoded)
        if version != STATE_VERSION:
            raise ValueError(f"ownership state version {version} is not readable by this release")
        self._set(self._key(ip, create=True), [
            (ts, rank, self.owner_id(tuple(o)) if o else
             (_ASSIGNED_NONE if rank else _UNASSIGNED)) for ts, rank, o in changes])
        if len(self._recent) > max(_MERGE_ON_APPLY, self._ips >> 3):
            self._merge()


def apply_events(events, index: "OwnershipIndex", clock: "MetadataClock") -> tuple:
    """Applies `events` in order, exactly as one by one. Returns the counts (metadata_events,
    metadata_late, heartbeats) and the IPs whose changes moved, in first-change order, so
    that a caller writes each of them (and the clock) once."""
    late = heartbeats = 0
    changed = {}
    for event in events:
        if clock.observe(event):
            late += 1
        if event.type == HEARTBEAT:
            heartbeats += 1
        else:
            index.apply(event)
            changed[event.ip] = None
    counts = {"metadata_events": len(events), "metadata_late": late, "heartbeats": heartbeats}
    return {k: n for k, n in counts.items() if n}, list(changed)


class MetadataClock:
    """How far the metadata changelog is known to be complete.

    watermark = max(latest change ts - out_of_orderness, latest HEARTBEAT ts). A change older
    than the watermark when it arrives is late: it is applied, but flows already attributed
    are not revisited.
    """

    def __init__(self, out_of_orderness_ms: int, max_ts: int = None, heartbeat: int = None):
        self.out_of_orderness_ms = out_of_orderness_ms
        self.max_ts = max_ts
        self.heartbeat = heartbeat

    @property
    def watermark(self):
        candidates = [w for w in (self.heartbeat,
                                  None if self.max_ts is None else self.max_ts - self.out_of_orderness_ms)
                      if w is not None]
        return max(candidates) if candidates else None

    def observe(self, event: MetaEvent) -> bool:
        """Advances the clock; returns True if the event was late."""
        wm = self.watermark
        if event.type == HEARTBEAT:
            self.heartbeat = event.ts if self.heartbeat is None else max(self.heartbeat, event.ts)
            return False
        late = wm is not None and event.ts <= wm
        self.max_ts = event.ts if self.max_ts is None else max(self.max_ts, event.ts)
        return late

    def complete_up_to(self, t_ms: int) -> bool:
        wm = self.watermark
        return wm is not None and wm >= t_ms

    def encode(self) -> str:
        return json.dumps([STATE_VERSION, self.max_ts, self.heartbeat])

    @classmethod
    def decode(cls, encoded: str, out_of_orderness_ms: int) -> "MetadataClock":
        version, max_ts, heartbeat = json.loads(encoded)
        if version != STATE_VERSION:
            raise ValueError(f"metadata clock version {version} is not readable by this release")
        return cls(out_of_orderness_ms, max_ts, heartbeat)
