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


class OwnershipIndex:
    """Per IP its changes (a dict of lists), and, for looking up many flow ends at once, numpy
    arrays by IP slot: the first change's ts, the last change's ts and owner id. Owners are
    interned: one tuple and one id per distinct owner (owner_list, owner_field)."""

    def __init__(self):
        self._changes = {}  # ip -> [(ts, rank, owner|None)], sorted by (ts, rank)
        self._owners = {}   # owner tuple -> id; owner_list[id] is the tuple
        self.owner_list = []
        self._fields = {}   # owner field position -> (codes by owner id, {value: code}, values)
        self._ranges = 0    # kept up to date: a metrics gauge reads it often
        self._slots = {}    # ip -> slot of the arrays
        self._free = []     # slots of pruned IPs, reused
        # One slot more than ever used: ends of unknown IPs read slot 0 before being masked.
        self._first = np.zeros(1, np.int64)
        self._last = np.zeros(1, np.int64)
        self._last_owner = np.zeros(1, np.int64)

    def __len__(self):
        return len(self._changes)

    def ranges(self) -> int:
        return self._ranges

    def owner_id(self, owner: tuple) -> int:
        """The id of an owner tuple, interned on first sight."""
        i = self._owners.get(owner)
        if i is None:
            i = self._owners[owner] = len(self.owner_list)
            self.owner_list.append(owner)
        return i

    def _interned(self, owner):
        return None if owner is None else self.owner_list[self.owner_id(owner)]

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

    def _refresh(self, ip: str) -> None:
        """Brings the arrays of `ip` up to date with its changes."""
        changes = self._changes.get(ip)
        slot = self._slots.get(ip)
        if not changes:
            if slot is not None:
                del self._slots[ip]
                self._free.append(slot)
            return
        if slot is None:
            if self._free:
                slot = self._free.pop()
            else:
                slot = len(self._slots)
                if slot >= len(self._first) - 1:
                    grown = max(1024, 2 * slot)
                    self._first, self._last, self._last_owner = (
                        np.resize(a, grown) for a in (self._first, self._last, self._last_owner))
            self._slots[ip] = slot
        last = changes[-1]
        self._first[slot] = changes[0][0]
        self._last[slot] = last[0]
        self._last_owner[slot] = -1 if last[2] is None else self._owners[last[2]]

    def apply(self, event: MetaEvent) -> None:
        owner = self._interned(event.owner) if event.owner else None
        changes = self._changes.setdefault(event.ip, [])
        insort_right(changes, (event.ts, _RANK[event.type], owner), key=_order)
        self._ranges += 1
        self._refresh(event.ip)

    def owners_at(self, ips: list, ends, t_ms):
        """The owner id (-1: none) of every flow end: `ips` the distinct addresses, `ends` an
        index into them per end, `t_ms` its time. owner_at's answer, looked up in the arrays;
        owner_at itself only for an end whose IP changed owner after its time."""
        slot_of = self._slots.get
        slots = np.array([slot_of(ip, -1) for ip in ips], np.int64)[ends]
        known = slots >= 0
        slots[~known] = 0
        last = self._last[slots]
        owners = np.where(known & (last <= t_ms), self._last_owner[slots], -1)
        for j in np.flatnonzero(known & (last > t_ms) & (self._first[slots] <= t_ms)).tolist():
            owner = self.owner_at(ips[ends[j]], int(t_ms[j]))
            owners[j] = -1 if owner is None else self._owners[owner]
        return owners

    def owner_at(self, ip: str, t_ms: int):
        changes = self._changes.get(ip)
        if changes is None:
            return None
        last = changes[-1]
        if last[0] <= t_ms:
            return last[2]
        i = bisect_right(changes, t_ms, key=lambda c: c[0])
        return changes[i - 1][2] if i else None

    def prune(self, horizon_ms: int) -> tuple:
        """Forgets what no flow at or after `horizon_ms` can need. Returns (changed, removed) IPs."""
        changed, removed = [], []
        for ip, changes in self._changes.items():
            if changes[0][0] > horizon_ms:
                continue
            i = bisect_right(changes, horizon_ms, key=lambda c: c[0])
            keep = changes[i - 1:]
            if len(keep) == 1 and keep[0][2] is None:
                removed.append(ip)
            elif len(keep) != len(changes):
                self._ranges -= len(changes) - len(keep)
                self._changes[ip] = keep
                changed.append(ip)
        for ip in removed:
            self._ranges -= len(self._changes.pop(ip))
        for ip in changed + removed:
            self._refresh(ip)
        return changed, removed

    def encode(self, ip: str) -> str:
        """The IP's changes as versioned JSON, the value kept in Flink broadcast state."""
        return json.dumps([STATE_VERSION, [[ts, rank, list(o) if o else None]
                                           for ts, rank, o in self._changes[ip]]],
                          separators=(",", ":"))

    def load(self, ip: str, encoded: str) -> None:
        version, changes = json.loads(encoded)
        if version != STATE_VERSION:
            raise ValueError(f"ownership state version {version} is not readable by this release")
        self._ranges += len(changes) - len(self._changes.get(ip, ()))
        self._changes[ip] = [(ts, rank, self._interned(tuple(o)) if o else None)
                             for ts, rank, o in changes]
        self._refresh(ip)


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
