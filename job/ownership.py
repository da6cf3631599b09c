"""IP ownership over time, from the metadata changelog. Pure Python (no pyflink).

Per IP the index keeps the changes ordered by `ts`: (ts, rank, owner) with owner None for
UNASSIGN. The owner of `ip` at `t` is the owner of the latest change with ts <= t. Changes with
equal ts are ordered UNASSIGN before ASSIGN (a release and a re-assignment at the same instant
leave the new owner), then by arrival. Consecutive changes form the ranges (owner, from, to).
"""
import ipaddress
import json
from bisect import bisect_right, insort_right
from dataclasses import dataclass

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


def changelog_lines(record: str) -> list:
    """The changelog lines one record holds: a chunk staged by job.replay (a JSON array of
    lines; an array is never an event) or text of one or many lines (a line of a changelog
    file, a stream record). Blank lines hold nothing."""
    if record.startswith("["):
        try:
            lines = json.loads(record)
        except ValueError:
            lines = None
        if isinstance(lines, list) and all(isinstance(line, str) for line in lines):
            return [line for line in lines if line.strip()]
    return [line for line in record.split("\n") if line.strip()]


@dataclass
class ParsedChunk:
    events: list     # MetaEvent, in arrival order
    rejected: list   # (reason, line), in arrival order

    def event_time_ms(self, heartbeat_shift_ms: int):
        """The chunk's timestamp: its latest event's, a HEARTBEAT's shifted by
        `heartbeat_shift_ms`. A bounded-out-of-orderness watermark after the chunk is then what
        it would be after its events one by one. None without events."""
        return max((e.ts + heartbeat_shift_ms if e.type == HEARTBEAT else e.ts
                    for e in self.events), default=None)


def parse_chunk(record: str) -> ParsedChunk:
    """Every changelog line of a record (changelog_lines), each as parse_event would."""
    chunk = ParsedChunk([], [])
    for line in changelog_lines(record):
        try:
            chunk.events.append(parse_event(line))
        except MetaEventError as err:
            chunk.rejected.append((err.reason, line))
    return chunk


def parse_event(line: str) -> MetaEvent:
    """One changelog line to a MetaEvent; raises MetaEventError with a reason code."""
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
        return MetaEvent(HEARTBEAT, ts)
    ip = doc.get("ip")
    if not isinstance(ip, str):
        raise MetaEventError("missing_ip")
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        raise MetaEventError("bad_address") from None
    if kind == UNASSIGN:
        return MetaEvent(UNASSIGN, ts, ip)
    owner = tuple(str(doc[f]) if doc.get(f) not in (None, "") else ABSENT for f in OWNER_FIELDS)
    return MetaEvent(ASSIGN, ts, ip, owner)


class OwnershipIndex:
    def __init__(self):
        self._changes = {}  # ip -> [(ts, rank, owner|None)], sorted by (ts, rank)
        self._owners = {}   # interning: many IPs share an owner tuple
        self._ranges = 0    # kept up to date: a metrics gauge reads it often

    def __len__(self):
        return len(self._changes)

    def ranges(self) -> int:
        return self._ranges

    def apply(self, event: MetaEvent) -> None:
        owner = self._owners.setdefault(event.owner, event.owner) if event.owner else None
        changes = self._changes.setdefault(event.ip, [])
        insort_right(changes, (event.ts, _RANK[event.type], owner), key=_order)
        self._ranges += 1

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
        self._changes[ip] = [(ts, rank, self._owners.setdefault(tuple(o), tuple(o)) if o else None)
                             for ts, rank, o in changes]


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
