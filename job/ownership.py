"""IP ownership over time, from the metadata changelog. Pure Python (no pyflink).

Per IP the index keeps the changes ordered by `ts`: (ts, rank, owner) with owner None for
UNASSIGN. The owner of `ip` at `t` is the owner of the latest change with ts <= t. Changes with
equal ts are ordered UNASSIGN before ASSIGN (a release and a re-assignment at the same instant
leave the new owner), then by arrival. Consecutive changes form the ranges (owner, from, to).
A VPC_ASSIGN or VPC_UNASSIGN is kept the same way under its key (vpc_key): the address's owner
within that VPC, looked up only for a flow of that VPC whose end has no owner of its own. The
interfaces the claims' owners name, and those ASSIGNs name with their `interface_vpc_id`, give a
flow whose line has no `vpc-id` its VPC (flow_vpc).
"""
import ipaddress
import json
import math
import re
from array import array
from bisect import insort_right
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain, islice
from operator import itemgetter
from socket import AF_INET6, inet_ntop, inet_pton
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowdredge.job import changelog_columns
from flowdredge.job.changelog_columns import breaks_text
from flowdredge.job.addresses import (OTHER_ADDRESSES, address_codes, embeds_ipv4, ipv4_int,
                                      ipv4_ints, texts)
from flowdredge.job.parse import (BEYOND, DEAD_LETTERS_KEPT, EARLIEST_START, LATEST_START,
                                  LongNumber, address_error, excerpt, json_error, json_loads,
                                  number_text, staged_place, too_long_text, utc_text)
from flowdredge.job.parse_columns import IPV4_PATTERN
from flowdredge.schemas.metadata import (ABSENT, ASSIGN, EVENT_TYPES, HEARTBEAT,
                                         INTERFACE_VPC_ID, OWNER_FIELDS, UNASSIGN, VPC_CHANGES,
                                         VPC_ID_PATTERN, VPC_UNASSIGN)
from flowdredge.schemas.security import is_reserved_app
from flowdredge.schemas.settings import quoted

_RANK = {UNASSIGN: 0, ASSIGN: 1}
# json.dumps(..., separators=...) builds an encoder per call: a third of encode's time.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode
# The ownership values in broadcast state. 2: per IP its changes flat, each (ts, rank, part id,
# interface_id, resource_id), the owner fields IPs share kept once per part under a key of
# their own (PART_KEY + id), a part one field longer where it names the VPC of the owner's
# interface (ASSIGN's interface_vpc_id; null: named in two VPCs); 1 (read only): per IP its
# changes with whole owners.
STATE_VERSION = 2
CLOCK_VERSION = 1
PART_KEY = "owner "   # not an IP, nor the clock's key
# OwnershipIndex slot codes: changes other than one ASSIGN or one UNASSIGN; no IP; one UNASSIGN
# (no owner at any time: an address overlapping VPCs hold, a release remembered past a prune).
MULTI, FREE, NEVER = -2, -3, -4
_APP = OWNER_FIELDS.index("app")
_REGION = OWNER_FIELDS.index("region")
_INTERFACE = OWNER_FIELDS.index("interface_id")


def _order(change):
    return change[0], change[1]


_is_vpc_id = re.compile(VPC_ID_PATTERN).fullmatch


def vpc_key(vpc_id: str, ip: str) -> str:
    """A VPC_ASSIGN's or VPC_UNASSIGN's key in the index and in broadcast state: neither an
    address nor PART_KEY nor the clock's key (a VPC id holds no space)."""
    return f"{vpc_id} {ip}"


def _is_vpc_key(key: str) -> bool:
    return " " in key


class MetaEvent(NamedTuple):
    """One changelog event. A tuple: a changelog snapshot makes one per IP, and job.codec moves
    a chunk of them between operators as plain tuples."""
    type: str
    ts: int
    ip: str = ""
    owner: tuple = None
    interface_vpc_id: str = None   # an ASSIGN's: the VPC of its owner's interface, if known


class MetaEventError(ValueError):
    """A changelog line refused: `reason` is its dead letter's code, `detail` why in words,
    `applied` the event taken from it all the same, if any (an UNASSIGN: keeping the IP's
    previous owner would misattribute its flows)."""

    def __init__(self, reason, detail="", applied=None):
        super().__init__(reason)
        self.reason, self.detail, self.applied = reason, detail, applied


# Changes and HEARTBEATs are bounded as flow starts are (job.parse): [2010, 2100) always, and
# at most metadata.max_ahead_seconds after the record's delivery time when it is known. A single
# event far ahead would move the metadata clock for good.
EARLIEST_TS_MS = EARLIEST_START * 1000
LATEST_TS_MS = LATEST_START * 1000
# A staged chunk of changelog lines, as job.replay stages a changelog file and the JVM's readers
# send a file's or a stream record's lines (connectors/jvm StagedChangelog): {"staged": STAGED,
# "source": path or record, "first_line": n, "not_after": the file's modification time, "lines":
# [...] (blank lines kept, for numbering), "long": [[position, head]] of lines longer than
# metadata.max_line_bytes (their first metadata.max_line_bytes bytes), blank in "lines"}; the JVM's without "long" (it cuts such a line),
# "staged_max": n where its one line is a staged file's line cut at n characters.
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
    long: list = field(default_factory=list)   # [(position, head)] of lines too long to keep
    # A staged file's line its reader cut (connectors/jvm LineChunks), the chunk's only line:
    # the longest staged line that reader takes whole, in characters.
    staged_max: int = None


# What the readers hand on for bytes that are not UTF-8: the JVM's U+DFFD where a decoder puts
# U+FFFD (connectors/jvm StagedChangelog.NOT_UTF8), job.replay's staging U+DC80-U+DCFF a byte
# (surrogateescape). No UTF-8 text decodes to a lone surrogate; U+FFFD, which decoders put by
# default, is text, and made an owner's name another without a word.
JVM_NOT_UTF8 = "\udffd"
# gzip's first bytes, 1f 8b, as those readers hand them on.
_GZIP_TEXT = ("\x1f" + JVM_NOT_UTF8, "\x1f\udc8b", "\x1f\x8b")
# A Kinesis Producer Library aggregated record's first line as the readers hand it on: its
# magic, f3 89 9a c2, is two sequences that are not UTF-8 to the JVM's, a lone surrogate a byte
# to job.replay's staging; the protobuf after it starts with its partition key table's field,
# 0a, a newline.
_KPL_TEXT = (JVM_NOT_UTF8 * 2, "\udcf3\udc89\udc9a\udcc2")


def changelog_lines(record: str, source: str = "metadata") -> RecordLines:
    """The changelog lines a record holds: a staged chunk (STAGED: job.replay's, or the JVM's
    readers' of a file or a stream record) or text of one or many lines (a line of a file read
    as it is)."""
    if record.startswith("{") and STAGED in record[:40]:
        try:
            doc = json.loads(record)
        except (ValueError, RecursionError):   # nested deeper than the decoder goes, too
            doc = None
        if (isinstance(doc, dict) and doc.get("staged") == STAGED
                and isinstance(doc.get("lines"), list)
                and all(isinstance(line, str) for line in doc["lines"])):
            return RecordLines(doc["lines"], str(doc.get("source", source)),
                               _int_or(doc.get("first_line"), 1), _int_or(doc.get("not_after")),
                               _long_lines(doc.get("long")), _int_or(doc.get("staged_max")))
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
    # (reason, location, line, detail): the first DEAD_LETTERS_KEPT rejections, in line order
    rejected: list
    reasons: Counter = None   # every rejection's reason, counted (default: those in `rejected`)
    after_flows: int = 0   # good events at or after flows_end: no flow needs them

    def __post_init__(self):
        if self.reasons is None:
            self.reasons = Counter(reason for reason, *_ in self.rejected)

    def dead_letters(self) -> tuple:
        """The first DEAD_LETTERS_KEPT rejections as dead letters (stage, reason, location,
        excerpt, detail), as a flow batch keeps its (a record of 500,000 bad lines was one output
        element of 85 MB, and two ran the JVM's heap out), and how many more there are."""
        kept = self.rejected[:DEAD_LETTERS_KEPT]
        return ([("metadata", reason, where, excerpt(line), detail)
                 for reason, where, line, detail in kept],
                self.reasons.total() - len(kept))

    def event_time_ms(self, heartbeat_shift_ms: int):
        """The chunk's timestamp: its latest event's, a HEARTBEAT's shifted by
        `heartbeat_shift_ms`. A bounded-out-of-orderness watermark after the chunk is then what
        it would be after its events one by one. None without events."""
        return max((e.ts + heartbeat_shift_ms if e.type == HEARTBEAT else e.ts
                    for e in self.events), default=None)


def parse_chunk(record: str, source: str = "metadata", delivered: int = None,
                limits: MetaLimits = MetaLimits(),
                vectorise_from: float = changelog_columns.MIN_LINES,
                flows_end: int = None) -> ParsedChunk:
    """Every changelog line of a record (changelog_lines), each as parse_event would; bad lines
    are rejected with a reason and their location (`<source>:<line>`); a line that fails alone
    but opens a change or an array of changes spread over lines is read with them (_spread).
    `delivered` (epoch seconds) is when the record was delivered, e.g. its Kinesis arrival
    time. Lines are parsed
    SLICE_LINES at a time; slices of `vectorise_from` lines or more go through
    job.changelog_columns first. Equal owner values
    are one object in a chunk's events (most repeat: app, account, zone...), so that job.codec
    writes each once. Good events at or after `flows_end` (epoch seconds; a replay's:
    job.replay.flows_end) are left out and counted (`after_flows`): no flow of the replay starts
    then, so none needs them, and one far ahead (a publisher's clock, a hand-edited line) would
    move the metadata clock past the flows, every change after it late."""
    record_lines = changelog_lines(record, source)
    if record_lines.first_line == 1 and record_lines.lines:
        # A byte-order mark before a record's first line (put from a file an editor saved), as
        # before a file's, which staging and the JVM's file reader pass over: it made a stream
        # record's change not_json, the address keeping its previous owner.
        record_lines.lines[0] = record_lines.lines[0].removeprefix("\ufeff")
    if (record_lines.first_line == 1 and record_lines.lines
            and record_lines.lines[0].startswith(_GZIP_TEXT)):
        # Compressed, as flow records are: its bytes cut at every newline byte were a dead
        # letter each, none saying why (a review).
        return ParsedChunk([], [("not_json", record_lines.source, record_lines.lines[0],
                                 "gzip data (it starts 1f 8b): the changelog is JSON Lines, "
                                 "UTF-8 text, not compressed")])
    if (record_lines.first_line == 1 and len(record_lines.lines) > 1
            and record_lines.lines[0] in _KPL_TEXT):
        # Its user records' lines were applied where its newlines cut them out whole, the
        # others were not_text dead letters of protobuf bytes, none saying why.
        return ParsedChunk([], [("not_json", record_lines.source,
                                 "\n".join(record_lines.lines[:2]),
                                 "a Kinesis Producer Library aggregated record (it starts "
                                 "f3 89 9a c2 0a), which the job does not take apart: the "
                                 "changelog is JSON Lines, UTF-8 text; none of it is read")])
    bounds = [t for t in (delivered, record_lines.not_after) if t is not None]
    latest_ms = LATEST_TS_MS
    if bounds:
        latest_ms = min(latest_ms, (min(bounds) + limits.max_ahead_seconds) * 1000 + 1)
    chunk = _parse_lines(record_lines, latest_ms, limits, vectorise_from)
    if flows_end is not None:
        end_ms = flows_end * 1000
        kept = [event for event in chunk.events if event.ts < end_ms]
        chunk.after_flows = len(chunk.events) - len(kept)
        chunk.events = kept
    return chunk


def too_long_record(record: bytes, source: str, max_line: int) -> ParsedChunk:
    """A staged line longer than `max_line` bytes (the reader cut it one byte past, the rest
    never held: connectors.staged.staged_changelog_max): one dead letter line_too_long, placed
    where its head says (job.parse.staged_place), else at `source`."""
    return ParsedChunk([], [("line_too_long", staged_place(record, source), record,
                             _staged_too_long(max_line, "bytes"))])


def _staged_too_long(limit: int, unit: str) -> str:
    return (f"a staged line of more than {limit} {unit}, the longest staging writes with "
            f"metadata.chunk_lines and metadata.max_line_bytes")


# Lines parsed at a time: a record's positions and columns are held a slice at a time, so that
# a bad line costs its line only (a position in a list cost 36 bytes: 172 MiB for 5 million).
SLICE_LINES = 1 << 16


def _parse_lines(record_lines: RecordLines, latest_ms: int, limits: MetaLimits,
                 vectorise_from: float) -> ParsedChunk:
    rejected, released = _Rejections(), {}
    for position, head in record_lines.long:
        applied, said = _head_applied(head[:limits.max_line_bytes], latest_ms)
        rejected.add(position, "line_too_long", head, _too_long(limits) + said)
        if applied is not None:
            released[position] = applied
    lines, events, share = record_lines.lines, {}, {}.setdefault
    joined = _Joined(lines)
    for start in range(0, len(lines), SLICE_LINES):
        # In position order, slice after slice.
        events.update(_parse_slice(record_lines, start, latest_ms, limits, vectorise_from,
                                   rejected, share, joined))
    if released:
        events.update(released)
        events = {position: events[position] for position in sorted(events)}
    where, first = record_lines.source, record_lines.first_line
    values = events.values()
    if joined.several:
        values = [e for value in values
                  for e in (value if isinstance(value, _Several) else (value,))]
    return ParsedChunk(list(map(MetaEvent._make, values)),
                       [(reason, f"{where}:{first + position}", line, detail)
                        for position, reason, line, detail in rejected.first()],
                       rejected.reasons)


def _parse_slice(record_lines: RecordLines, start: int, latest_ms: int, limits: MetaLimits,
                 vectorise_from: float, rejected: "_Rejections", share,
                 joined: "_Joined") -> dict:
    """The events of the record's lines from `start`, SLICE_LINES of them, by position, in
    position order; their rejections go to `rejected`. Lines a JSON value spread over lines
    took in a slice before (`joined`) are left out."""
    lines = record_lines.lines
    candidates, too_long, not_utf8 = [], [], []
    first = max(start, joined.until)
    for position, line in enumerate(lines[first:start + SLICE_LINES], first):
        if line.strip():
            (too_long if len(line) > limits.max_line_bytes
             else candidates if line.isascii() or _is_text((line,)) else not_utf8).append(position)
    parsed = None
    if len(candidates) >= vectorise_from:
        # A record of more than one slice shares its slices' owner values (job.codec writes
        # each once); one slice's are one object each already, without a lookup per value.
        parsed = changelog_columns.parse_lines(lines, candidates, EARLIEST_TS_MS, latest_ms,
                                                _normalised,
                                                share if len(lines) > SLICE_LINES else None)
    fast, rest = ({}, candidates) if parsed is None else parsed
    if too_long or not_utf8:
        rest = sorted(rest + too_long + not_utf8)
        too_long, not_utf8 = set(too_long), set(not_utf8)
    events = {}
    if rest:
        positions, resume = iter(rest), None
        while True:
            resume = _parse_rest(positions if resume is None else chain((resume,), positions),
                                 record_lines, latest_ms, limits, rejected, share, joined,
                                 (events, fast), too_long, not_utf8)
            if resume is None:
                break
    # After the lines parsed one by one: a value spread over lines may have taken the line.
    for position, event in fast.items():
        if event[3] is not None and _refused(event[3]):
            fast[position] = _refuse(rejected, position, lines[position], event)
    if not events:
        return fast
    events.update(fast)
    return {position: events[position] for position in sorted(events)}


def _parse_rest(positions, record_lines: RecordLines, latest_ms: int, limits: MetaLimits,
                rejected: "_Rejections", share, joined: "_Joined", parsed: tuple, too_long,
                not_utf8):
    """Parses the lines at `positions` (ascending) one by one into `parsed`'s first dict (the
    second: the events of lines parsed by columns). Where a line that fails alone starts a JSON
    value spread over lines (_spread), its changes are taken and the lines it spans passed
    over: returns the first position after them still to parse (None: none is left), so that
    a record of JSON lines runs through one loop of no other check."""
    lines, events = record_lines.lines, parsed[0]
    for position in positions:
        line = lines[position]
        if position in too_long:
            if (record_lines.staged_max is None and _opens(line, "[")
                    and (spread := _spread(joined, position, latest_ms, limits, share,
                                           rejected)) is not None):
                return _take(spread, position, positions, parsed, joined)
            if record_lines.staged_max is not None:
                rejected.add(position, "line_too_long", line, _staged_too_long(
                    record_lines.staged_max, "characters"))
                continue
            applied, said = _head_applied(line[:limits.max_line_bytes], latest_ms)
            rejected.add(position, "line_too_long", line, too_long_text(
                len(line), limits.max_line_bytes, "metadata.max_line_bytes") + said)
            if applied is not None:
                events[position] = applied
            continue
        if position in not_utf8:
            applied = _not_utf8_applied(line, latest_ms)
            rejected.add(position, "not_text", line, _NOT_UTF8 + (
                "" if applied is None else f": applied as {_release(applied.ip)}"))
            if applied is not None:
                events[position] = applied
            continue
        try:
            event = parse_event(line, latest_ms, share)
        except MetaEventError as err:
            if (err.reason in _SPREAD_REASONS and _opens(line, ("[", "{"))
                    and (spread := _spread(joined, position, latest_ms, limits, share,
                                           rejected, err)) is not None):
                return _take(spread, position, positions, parsed, joined)
            event = _applied(err, position, line, rejected)
            if event is not None:
                events[position] = event
            continue
        if event.owner is not None and _refused(event.owner):
            event = _refuse(rejected, position, line, event)
        events[position] = event
    return None


def _applied(err: MetaEventError, position: int, text: str, rejected: "_Rejections"):
    """What a change refused (`err`) is applied as, if anything, its rejection added."""
    event = err.applied
    if event is not None and event.owner is not None and _refused(event.owner):
        # Its bad_vpc_id said the ASSIGN was applied without its VPC: it is not applied at all.
        return _refuse(rejected, position, text, event)
    rejected.add(position, err.reason, text, err.detail)
    return event


def _opens(line: str, brackets) -> bool:
    return line.lstrip(" \t\r").startswith(brackets)


def _change(text: str, position: int, latest_ms: int, share, rejected: "_Rejections"):
    """The event a change's JSON `text` (a line's, or one spread over lines) is applied as, if
    any, its rejection added, as _parse_rest takes a line's."""
    try:
        event = parse_event(text, latest_ms, share)
    except MetaEventError as err:
        return _applied(err, position, text, rejected)
    if event.owner is not None and _refused(event.owner):
        return _refuse(rejected, position, text, event)
    return event


class _Several(list):
    """The events of one line that holds more than one change (an array's elements)."""


class _Joined:
    """A record's lines joined into one text, only once a line that fails alone starts a value
    that may be spread over lines, and a place in it (a line and its first character) that
    moves forward as lines are read."""

    def __init__(self, lines: list):
        self.lines, self.text = lines, None
        self.position = self.offset = 0
        self.until = 0      # lines before it are taken by a value spread over lines
        self.several = False   # a line holds more than one change
        self.budget = 0     # what tries that find no value may still read: the text's length

    def start(self, position: int) -> int:
        """Where line `position` (not before the place) starts in the text."""
        if self.text is None:
            self.text = "\n".join(self.lines)
            self.budget = len(self.text)
        if position > self.position:
            self.offset += (sum(map(len, self.lines[self.position:position]))
                            + position - self.position)
            self.position = position
        return self.offset

    def failed(self, place: tuple, read: int) -> None:
        """A try that found no value, `read` characters read: back to `place`."""
        self.position, self.offset = place
        self.budget -= read

    def line_of(self, offset: int) -> int:
        """The line holding the text's character `offset` (not before the place)."""
        breaks = self.text.count("\n", self.offset, offset)
        if breaks:
            self.position += breaks
            self.offset = self.text.rindex("\n", self.offset, offset) + 1
        return self.position


# The failures of a line alone that may be a part of a JSON value spread over lines: its first
# line ("{", "["), a line of a change with an array's comma after it, an array on one line.
_SPREAD_REASONS = ("not_json", "not_an_object")
# After a value spread over lines, the rest of its last line: an array's comma or end, if any
# (a change of an array whose other part another chunk of a file holds).
_AFTER_CHANGE = re.compile(r"[ \t\r]*(?:[,\]][ \t\r]*)?(?:\n|\Z)").match
_AFTER_ARRAY = re.compile(r"[ \t\r]*(?:\n|\Z)").match


def _spread(joined: _Joined, position: int, latest_ms: int, limits: MetaLimits, share,
            rejected: "_Rejections", err: MetaEventError = None):
    """A JSON value that starts at line `position`, which fails alone (`err`, an object's
    first line; None: a line too long, an array's), and ends at the end of a line: ([(position,
    event)], the last line it spans), or None. An object spread over lines, or one on its line
    followed by an array's comma or end, is a change; an array, on one line or many, that holds
    an object holds a change an element (one that is no object is not_an_object), each placed at
    the line it starts on. Each change is read from at most metadata.max_line_bytes
    characters, as a line is (a longer one: not a value). An object the record's end leaves
    open (a chunk of a file ends in it) is applied as its head says over the lines
    (_head_applied). A record's tries that find no value read at most its length again
    (_Joined.budget): past that, its lines are read alone, as before (300,000 lines `{"a":`,
    each read to the decoder's depth, took minutes)."""
    at = _JSON_SPACE(joined.lines[position]).end() + joined.start(position)
    if joined.budget < 0:
        return None
    place, text, limit = (joined.position, joined.offset), joined.text, limits.max_line_bytes
    scan = _HEAD_DECODER.raw_decode
    if text.startswith("{", at):
        piece = text[at:at + limit]
        try:
            _, end = scan(piece)
        except (ValueError, RecursionError) as error:
            if err.applied is None and at + limit >= len(text) and "\n" in piece:
                applied, said = _head_applied(piece, latest_ms)
                if applied is not None:
                    err.applied = applied
                    err.detail += said[:-1] + " over the lines from it)"
            return joined.failed(place, getattr(error, "pos", len(piece)))
        end += at
        after = _AFTER_CHANGE(text, end)
        last = joined.line_of(end)
        if after is None or (last == position and not after.group().strip()):
            return joined.failed(place, end - at)
        if _holds_a_line_of_its_own(joined.lines, position, last, ()):
            return joined.failed(place, end - at)
        event = _change(text[at:end], position, latest_ms, share, rejected)
        return [] if event is None else [(position, event)], last
    items, first = [], at
    at += 1
    while True:
        at = _JSON_SPACE(text, at).end()
        piece = text[at:at + limit]
        try:
            _, end = scan(piece)
        except (ValueError, RecursionError) as error:
            return joined.failed(place, at - first + getattr(error, "pos", len(piece)))
        items.append((at, at + end))
        at = _JSON_SPACE(text, at + end).end()
        if text.startswith("]", at):
            break
        if not text.startswith(",", at):
            return joined.failed(place, at - first)
        at += 1
    if (_AFTER_ARRAY(text, at + 1) is None
            or not any(text.startswith("{", start) for start, _ in items)):
        # No change in it (`[1, 2]`): not_an_object, a dead letter of its own line.
        return joined.failed(place, at - first)
    starts = [joined.line_of(start) for start, _ in items]
    last = joined.line_of(at)
    if _holds_a_line_of_its_own(joined.lines, position, last,
                                {line for line, (start, _) in zip(starts, items)
                                 if text.startswith("{", start)}):
        return joined.failed(place, at - first)
    taken = []
    for line, (start, end) in zip(starts, items):
        event = _change(text[start:end], line, latest_ms, share, rejected)
        if event is not None:
            taken.append((line, event))
    return taken, last


def _holds_a_line_of_its_own(lines: list, position: int, last: int, starts) -> bool:
    """Whether a line after `position` up to `last` opens an object that is none of the value's
    changes (`starts`: the lines its elements that are objects start on): one nested in a
    change's value or in an array element (`{"changes": [` then JSON lines) may be a line
    that is a change alone, which taking the value would lose."""
    return any(_opens(lines[line], "{") and line not in starts
               for line in range(position + 1, last + 1))


def _take(spread: tuple, start: int, positions, parsed: tuple, joined: _Joined):
    """Puts a value's events (_spread) into `parsed`'s first dict in place of those of the
    lines it spans, from `start`, which `positions` and the slices after pass over; returns the
    first position after them still to parse, if any."""
    taken, last = spread
    events = parsed[0]
    for position in range(start, last + 1):
        for held in parsed:
            held.pop(position, None)
    for position, event in taken:
        held = events.get(position)
        if held is None:
            events[position] = event
        else:
            if not isinstance(held, _Several):
                held = events[position] = _Several((held,))
                joined.several = True
            held.append(event)
    joined.until = last + 1
    return next((p for p in positions if p > last), None)


class _Rejections:
    """A record's rejections: the first DEAD_LETTERS_KEPT by line, and how many of each reason
    in all. Every one was held, with its place and detail, until the parse ended, then all but
    those were dropped: a stream record of 1 MB of lines `1` grew the process by 188 MiB, one
    of 10 MB by 1.8 GiB."""

    def __init__(self):
        self.kept, self.reasons = [], Counter()
        self.past = math.inf   # a rejection at or after this position is not among the first

    def add(self, position: int, reason: str, line: str, detail: str) -> None:
        self.reasons[reason] += 1
        if position >= self.past:
            return
        kept = self.kept
        kept.append((position, reason, line, detail))
        if len(kept) == 2 * DEAD_LETTERS_KEPT:
            self._trim()

    def _trim(self) -> None:
        # Stable: rejections at one position stay in the order they came.
        self.kept.sort(key=itemgetter(0))
        del self.kept[DEAD_LETTERS_KEPT:]
        self.past = self.kept[-1][0]

    def first(self) -> list:
        """The first DEAD_LETTERS_KEPT, by line."""
        if len(self.kept) > DEAD_LETTERS_KEPT:
            self._trim()
        else:
            self.kept.sort(key=itemgetter(0))
        return self.kept


def _refused(owner: tuple) -> bool:
    return is_reserved_app(owner[_APP]) or not _is_text(owner)


def _refuse(rejected: _Rejections, position: int, line: str, event) -> tuple:
    """The UNASSIGN (VPC_UNASSIGN) an ASSIGN whose owner the job does not take is applied as,
    its dead letter added: keeping the IP's previous owner would misattribute its flows from
    its ts on."""
    _, ts, ip, owner, _vpc = event
    reason, detail = _refused_owner(owner, ip)
    rejected.add(position, reason, line, detail)
    return MetaEvent(UNASSIGN, ts, ip)


_NOT_UTF8 = "bytes that are not UTF-8 (\\udffd, or \\udc80-\\udcff a byte, in the excerpt)"


def _not_utf8_applied(line: str, latest_ms: int):
    """What a line of bytes that are not UTF-8 is applied as: an UNASSIGN of the address (or
    VPC key) a change names, whose owner is not known (the bytes may be in it); nothing for
    other lines."""
    try:
        event = parse_event(line, latest_ms)
    except MetaEventError as err:
        return err.applied
    return None if event.type == HEARTBEAT else MetaEvent(UNASSIGN, event.ts, event.ip)


def _is_text(owner: tuple) -> bool:
    """Whether every owner value is Unicode text. JSON lets a line spell a lone surrogate
    (\\ud800), which no output encodes: PyFlink's UTF-8 coder failed the job on it, and again
    after every restart from the broadcast state."""
    joined = "".join(owner)
    if joined.isascii():
        return True
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refused_owner(owner: tuple, key: str) -> tuple:
    """(reason, detail) of an owner the job does not take for `key` (an IP or vpc_key)."""
    release = f"applied as {_release(key)}"
    if not _is_text(owner):
        field = next(f for f, v in zip(OWNER_FIELDS, owner) if not _is_text((v,)))
        return ("not_text", f"{field} holds a lone surrogate (a \\ud800-\\udfff escape), "
                            f"which is not text: {release}")
    return ("reserved_app", f"app '{quoted(owner[_APP], str)}' is a name the job gives ends "
                            f"without an owner: {release}")


def _release(key: str) -> str:
    return "a VPC_UNASSIGN" if _is_vpc_key(key) else "an UNASSIGN"


def _too_long(limits: MetaLimits) -> str:
    return f"longer than metadata.max_line_bytes ({limits.max_line_bytes})"


_HEAD_DECODER = json.JSONDecoder()
_JSON_SPACE = re.compile(r"[ \t\n\r]*").match


def _head_applied(head: str, latest_ms: int) -> tuple:
    """(the event a line not read whole is applied as, or None; what its dead letter adds), of
    its `head`: a line longer than metadata.max_line_bytes, its first metadata.max_line_bytes
    characters (as much as a file's reader keeps of it; a replay's staging keeps its first
    metadata.max_line_bytes bytes), or a line that is no JSON. Its owner is not read, but
    keeping the address's previous owner would misattribute its flows from the line's ts on:
    a change whose type, ts and ip the head holds is applied as an UNASSIGN of its address (a
    VPC's: a VPC_UNASSIGN), as an owner that is not text is. A HEARTBEAT's is nothing to
    apply."""
    keys = _head_keys(head)
    kind, event = keys.get("type"), None
    if kind == HEARTBEAT:
        return None, ""
    if type(kind) is str and (kind in _RANK or kind in VPC_CHANGES):
        keys["type"] = UNASSIGN if kind in _RANK else VPC_UNASSIGN
        # A nested value names no change's ts, ip or VPC (parse_event reads only its kind):
        # written out again whole, one near the decoder's limit raised RecursionError.
        keys = {key: type(value)() if isinstance(value, (dict, list)) else value
                for key, value in keys.items()}
        try:
            event = parse_event(_compact_json(keys), latest_ms)
        except MetaEventError as err:
            event = err.applied
    if event is None:
        return None, ": its head gives no change's type, ts and ip: nothing applied"
    return event, f": applied as {_release(event.ip)} (its head's type, ts and ip)"


def _not_json(detail: str, line: str, latest_ms: int) -> MetaEventError:
    """A line that is no JSON (a control character unescaped in an owner value, a line cut
    short or cut in two by a line break in one): a change whose type, ts and ip its head holds
    is applied as an UNASSIGN of its address, as a line too long is (before, nothing was: the
    address kept its previous owner)."""
    applied, said = _head_applied(line, latest_ms)
    return MetaEventError("not_json", detail if applied is None else detail + said, applied)


def _head_keys(head: str) -> dict:
    """The keys a change names (type, ts, ip, vpc_id) that the head of a JSON object holds whole
    at its top level, each followed by a comma or the object's end (a value the cut could have
    shortened, a number's digits, is not taken); none if one is there twice (JSON keeps the
    last, which the cut may have lost)."""
    found, at = {}, _JSON_SPACE(head, 0).end()
    if not head.startswith("{", at):
        return {}
    at = _JSON_SPACE(head, at + 1).end()
    scan = _HEAD_DECODER.raw_decode
    while head.startswith('"', at):
        try:
            key, at = scan(head, at)
            at = _JSON_SPACE(head, at).end()
            if not head.startswith(":", at):
                break
            value, at = scan(head, _JSON_SPACE(head, at + 1).end())
        except (ValueError, RecursionError):
            break
        at = _JSON_SPACE(head, at).end()
        if not head.startswith((",", "}"), at):
            break
        if key in _WHAT_AND_WHERE:
            if key in found:
                return {}
            found[key] = value
        if head.startswith("}", at):
            break
        at = _JSON_SPACE(head, at + 1).end()
    return found


# The keys parse_event reads: JSON keeps a repeated key's last value, which turned an ASSIGN
# into an UNASSIGN or moved an owner to another address without a dead letter (a fuzz review).
# Arrow's reader refuses them, so a chunk holding one comes here line by line.
_READ_KEYS = frozenset(("type", "ts", "ip", "vpc_id", INTERFACE_VPC_ID, *OWNER_FIELDS))
_WHAT_AND_WHERE = frozenset(("type", "ts", "ip", "vpc_id"))


_SPACED_KEY = re.compile(r'"[ \t\r\n]+:').search


def _repeated_keys(line: str, doc: dict) -> list:
    """The keys parse_event reads that `line`'s object holds twice or more, sorted. Without
    whitespace between a key and its colon, each key at any depth is spelt `..."` then `:`,
    and so is nothing else but an escaped quote before a colon: as many `":` as the object's
    distinct keys means none is repeated. Every colon after a quote rules out the whitespace
    (two counts in C, 0.4 us a line), else a search for it does. Any other line is looked at
    closely."""
    tight = line.count('":')
    if tight == len(doc) and (line.count(":") == tight or not _SPACED_KEY(line)):
        return []
    repeated = []

    def pairs_of(pairs) -> dict:   # nested objects' first, the line's own last
        keys = [key for key, _ in pairs if key in _READ_KEYS]
        repeated.append(sorted({key for key in keys if keys.count(key) > 1}))
        return dict(pairs)
    json_loads(line, object_pairs_hook=pairs_of)
    return repeated[-1]


def _twice(keys: list) -> str:
    return f"the key(s) {', '.join(keys)} twice in one object (JSON keeps the last)"


_TOO_DEEP = "nested deeper than the JSON decoder goes"


def parse_event(line: str, latest_ms: int = LATEST_TS_MS, share=None) -> MetaEvent:
    """One changelog line to a MetaEvent; raises MetaEventError with a reason code. `ts` must be
    in [2010, `latest_ms`) (epoch ms). `share` (a dict's setdefault) makes equal owner values
    one object, as parse_chunk gives them."""
    try:
        doc = json_loads(line)
    except ValueError as err:
        raise _not_json(json_error(err), line, latest_ms) from None
    except RecursionError:
        raise _not_json(_TOO_DEEP, line, latest_ms) from None
    if not isinstance(doc, dict):
        raise MetaEventError("not_an_object", f"a JSON {type(doc).__name__}")
    try:
        repeated = _repeated_keys(line, doc)
    except RecursionError:
        # Read again through a Python hook, a frame deeper: a line a few levels short of the
        # limit raised it out of the parse, and its stream record failed the job at each restart.
        raise _not_json(_TOO_DEEP, line, latest_ms) from None
    if repeated and _WHAT_AND_WHERE.intersection(repeated):
        raise MetaEventError("not_json", _twice(repeated))
    kind = doc.get("type")
    if kind not in EVENT_TYPES:
        raise MetaEventError("unknown_type", f"type {_value_text(kind)}, not one of "
                                             f"{', '.join(EVENT_TYPES)}")
    ts = doc.get("ts")
    if isinstance(ts, float) and ts.is_integer():
        ts = int(ts)
    elif isinstance(ts, LongNumber):   # out of range, as 2**64 is
        ts = ts.value
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise MetaEventError("missing_ts", f"ts {_value_text(ts)}, not an integer number of "
                                           "epoch milliseconds")
    if kind == HEARTBEAT:
        return MetaEvent(HEARTBEAT, _bounded(ts, latest_ms))
    vpc_id = doc.get("vpc_id")
    if kind in VPC_CHANGES:
        kind = VPC_CHANGES[kind]
        if not isinstance(vpc_id, str) or not _is_vpc_id(vpc_id):
            raise MetaEventError("bad_vpc_id", "vpc_id absent" if vpc_id is None else
                                 f"vpc_id {_value_text(vpc_id)}, not a VPC id as AWS writes "
                                 "them (vpc- and 8 or 17 lowercase hex digits)")
    elif vpc_id is not None:
        vpc_id = _PLAIN_IN_VPC
    ip = doc.get("ip")
    if not isinstance(ip, str):
        raise MetaEventError("missing_ip", "ip absent" if ip is None else
                             f"ip is a JSON {_JSON_KINDS.get(type(ip), 'value')}, not a string")
    if not _is_canonical_ipv4(ip):
        ip = _normalised(ip)
        if ip is None:
            raise MetaEventError("bad_address", address_error("ip", doc["ip"]))
    ts = _bounded(ts, latest_ms)
    if vpc_id is _PLAIN_IN_VPC:
        raise MetaEventError("bad_vpc_id", f"an {kind} with a vpc_id: a VPC's owner is a "
                                           "VPC_ASSIGN or VPC_UNASSIGN; applied as an UNASSIGN",
                             MetaEvent(UNASSIGN, ts, ip))
    if vpc_id is not None:
        ip = vpc_key(vpc_id, ip)
    if kind == UNASSIGN:
        return MetaEvent(UNASSIGN, ts, ip)
    if repeated:   # which owner was meant is not known: none, rather than the one before
        raise MetaEventError("not_json", f"{_twice(repeated)}: applied as {_release(ip)}",
                             MetaEvent(UNASSIGN, ts, ip))
    get = doc.get
    # A value of white space only says no more than an empty one: before, " " was an app.
    owner = [(v if v and not v.isspace() else ABSENT) if type(v := get(f)) is str
             else ABSENT if v is None else _owner_text(f, v, ts, ip) for f in OWNER_FIELDS]
    joined = "".join(owner)
    if not joined.isprintable() and breaks_text(joined):
        # A control character or line break went on into every output keyed or written by
        # the owner (a terminal's escape sequence, a CSV row cut in two): the value is not the
        # name the publisher read, and the previous owner kept would misattribute the IP.
        raise MetaEventError("not_text", f"{_breaking_field(owner)}: applied as {_release(ip)}",
                             MetaEvent(UNASSIGN, ts, ip))
    owner = tuple(owner if share is None else [share(v, v) for v in owner])
    interface_vpc = None if vpc_id is not None else get(INTERFACE_VPC_ID)
    if interface_vpc in ("", ABSENT) or type(interface_vpc) is str and interface_vpc.isspace():
        interface_vpc = None   # as an owner field's: not known
    if interface_vpc is None or type(interface_vpc) is str and _is_vpc_id(interface_vpc):
        return MetaEvent(ASSIGN, ts, ip, owner, interface_vpc if share is None or interface_vpc
                         is None else share(interface_vpc, interface_vpc))
    # The owner is the publisher's all the same: only the interface's VPC is not known.
    raise MetaEventError("bad_vpc_id", f"{INTERFACE_VPC_ID} {_value_text(interface_vpc)}, not a "
                                       "VPC id as AWS writes them (vpc- and 8 or 17 lowercase "
                                       "hex digits): applied without it",
                         MetaEvent(ASSIGN, ts, ip, owner))


# An ASSIGN or UNASSIGN with a vpc_id: the producer meant that VPC only, and taken for the
# address everywhere it would override the VPCs' own claims. Its address is left without owner.
_PLAIN_IN_VPC = object()


# An IPv4 address as ipaddress writes it: most changelog addresses are, and ipaddress took
# about a third of a line's parse (docs/performance.md, run 15).
_is_canonical_ipv4 = re.compile(IPV4_PATTERN).fullmatch
_IPV4_BUILD_SLICE = 50_000


def _normalised(ip: str):
    """The address as ipaddress writes it, or None if it is not one. An IPv6 address already
    in that form (RFC 5952: lowercase, no leading zeros, the first longest run of two or more
    zero groups as "::"), as inet_ntop writes it too, is known by C calls: ipaddress took
    about 10 us for each, a tenth of a large estate's changelog. inet_ntop writes some
    addresses with an IPv4 tail, which ipaddress does not: those go to it; a zone id is none."""
    if ":" in ip and "." not in ip and "%" not in ip:
        try:
            if inet_ntop(AF_INET6, inet_pton(AF_INET6, ip)) == ip:
                return ip
        except (OSError, ValueError):   # not one (a null inside): ipaddress gives the verdict
            pass
    if "%" in ip:   # an IPv6 zone id names a host's interface, never a VPC's address
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return None if address.version == 6 and embeds_ipv4(address) else str(address)


def _bounded(ts: int, latest_ms: int) -> int:
    if not EARLIEST_TS_MS <= ts < latest_ms:
        raise MetaEventError("ts_out_of_range", _ts_out_of_range(ts, latest_ms))
    return ts


def _ts_out_of_range(ts: int, latest_ms: int) -> str:
    if abs(ts) >= BEYOND:   # up to 4,300 digits: too long to quote, past 308 no float holds it
        return f"ts {number_text(ts)} is {'before 2010' if ts < 0 else 'after 2100'}"
    if ts < EARLIEST_TS_MS:
        return f"ts {ts} ({utc_text(ts // 1000)}) is before 2010"
    last = latest_ms - 1
    return (f"ts {ts} ({utc_text(ts // 1000)}) is {(ts - last) / 1000:.3f} s after the latest "
            f"allowed, {last} ({utc_text(last // 1000)}, "
            + ("2100)" if latest_ms == LATEST_TS_MS else
               "the delivery time + metadata.max_ahead_seconds)"))


# What json.loads makes of each JSON kind, for messages that name a value's kind only (an
# address's value is never quoted: dead letters show no more of one than their excerpt).
_JSON_KINDS = {dict: "object", list: "array", int: "number", float: "number", bool: "boolean",
               LongNumber: "number of more than 4,300 digits"}


def _owner_text(field: str, value, ts: int, ip: str) -> str:
    """An owner value that is not a JSON string: an integer is its digits (an account id
    written as a number, 123456789012 or 123456789012.0); a boolean, object, array, other
    number or one of more digits than int() reads names no owner (before, Python's spelling of
    it became one: `{'a': 1}`, `True`, `1000.0` for 1e3, `nan`) and the line is applied as an
    UNASSIGN at its ts."""
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value) and value.is_integer():
        return str(int(value))
    kind = "number that is not an integer" if type(value) is float else _JSON_KINDS[type(value)]
    raise MetaEventError("not_text", f"{field} is a JSON {kind}, not text: applied as "
                                     f"{_release(ip)}", MetaEvent(UNASSIGN, ts, ip))


def _breaking_field(owner: list) -> str:
    """Which owner value holds which character breaks_text finds, in words."""
    field, value = next((f, v) for f, v in zip(OWNER_FIELDS, owner) if breaks_text(v))
    shown = repr(breaks_text(value).group())[1:-1]
    return f"{field} holds '{shown}', a control character or line break"


def _value_text(value) -> str:
    """A JSON value for a message, cut short."""
    if isinstance(value, LongNumber):
        return str(value)
    return "absent" if value is None else quoted(value, json.dumps)


class OwnershipIndex:
    """Per IP a slot; per slot its changes. Most IPs have one change, an ASSIGN: the slot holds
    its ts and owner apart, so that a whole batch of addresses is looked up in arrays
    (`owner_codes`), and an IP costs an int, not a tuple. Any other IP's slot holds its changes
    as one flat tuple (ts, rank, owner, ts, rank, owner, ...) sorted by (ts, rank). Owner values
    that many IPs share (app, account, zone...) are kept once: json.loads makes a new string per
    occurrence. bench.state and docs/performance.md measure it.

    In broadcast state (state_entries, load) the shared fields of an owner, its part, are kept
    once under a key of their own, and an IP's value names the part by a number: the JVM holds
    the state as one byte array per value, and the part was most of each."""

    def __init__(self):
        self._slots = {}        # ip -> slot
        # Per slot: one owner: its first ts, its owner, the code of its (app, region) (>= 0);
        # else any ts, the flat changes, MULTI or NEVER; a free slot FREE.
        self._ts = array("q")
        self._held = []
        self._code = array("q")
        self._free = []
        self._pairs = {}        # (app, region) -> code
        self.pairs = []         # code -> (app, region)
        self._strings = {}   # shared owner values, each kept once; emptied by prune
        self._ranges = 0     # kept up to date: a metrics gauge reads it often
        self._part_ids = {}  # owner part -> its number in broadcast state
        self._new_parts = []   # (number, part) numbered since state_entries last ran
        # Keys whose changes load cleaned (_restored_values), to be written again by the next
        # state_entries: their values in broadcast state name the parts as an earlier release
        # wrote them, which _forget_parts removes once no owner held is theirs.
        self._unwritten = {}
        # The restored changes load cleaned, REFUSED (applied as an UNASSIGN) and BLANKED, and
        # the keys holding them.
        self.restored_cleaned = Counter()
        self.restored_keys = 0
        self._next_part = 0
        self._ts_last = None   # the latest change's ts: a snapshot's changes share one object
        # The IPv4 addresses' slots as (sorted address ints, their slots), for slots(); a
        # removed IP's slot there is -1 at once (its slot may go to another IP). IPs added since
        # it was built are looked up in the dict; it is built again once they are many.
        self._ipv4 = None
        self._added = 0
        self.ipv4_builds = 0   # how often it was built: its temporaries are tens of MB
        self._claims = {}        # VPC claim key -> slot: the keys the claims' arrays are built of
        self._vpc_numbers = {}   # VPC id -> its number in a claim's integer (kept: VPCs are few)
        # The IPv4 claims as (sorted integers: VPC number << 32 | address, their slots) for
        # vpc_slots (None: to be built); claims made since, apart (integer -> slot); a removed
        # claim's slot there -1 at once, as in self._ipv4.
        self._vpc_table = None
        self._vpc_new = {}
        self._vpc_new_table = None
        # Per interface an ASSIGN's interface_vpc_id names, its VPC (None: ASSIGNs named it in
        # two VPCs, a conflict): learnt as they are applied, kept in broadcast state with the
        # owner parts (encode), forgotten once no change held names the interface (prune).
        self._assigned_vpc = {}
        self._vpc_ids = {}   # VPC id -> itself: one string per VPC, not one per interface
        # Per interface a VPC claim's owner names, its VPC as the claims held and _assigned_vpc
        # say together (None: two VPCs, a conflict); an interface no claim names has the one
        # _assigned_vpc gives. An interface never changes VPC: it gives the VPC of a flow it
        # logged. Learnt as the claims are applied, built again from them after a load and
        # after a prune that moved one (only a prune takes a claim's changes away).
        self._interface_vpc = {}
        self.interface_conflicts = 0

    def __len__(self):
        """Addresses and VPC claims (keys) held."""
        return len(self._slots)

    def ranges(self) -> int:
        return self._ranges

    def changes(self, ip: str) -> list:
        """The IP's changes [(ts, rank, owner|None)], sorted by (ts, rank)."""
        slot = self._slots.get(ip)
        flat = () if slot is None else self._flat(slot)
        return list(zip(flat[::3], flat[1::3], flat[2::3]))

    def _flat(self, slot: int) -> tuple:
        if self._code[slot] >= 0:
            return self._ts[slot], _RANK[ASSIGN], self._held[slot]
        return self._held[slot]

    def pair_code(self, app: str, region: str) -> int:
        """The code of an (app, region) pair, the aggregates' owner dimensions."""
        code = self._pairs.get((app, region))
        if code is None:
            code = self._pairs[(app, region)] = len(self.pairs)
            self.pairs.append((app, region))
        return code

    def _store(self, ip: str, slot, flat: tuple) -> None:
        """Puts an IP's changes in its slot (a new one when `slot` is None)."""
        if slot is None:
            if self._free:
                slot = self._free.pop()
            else:
                slot = len(self._held)
                self._held.append(None)
                self._ts.append(0)
                self._code.append(FREE)
            self._slots[ip] = slot
            if _is_vpc_key(ip):   # never in the IPv4 array: slots() need not look for more IPs
                self._count_vpc_key(ip, slot, 1)
            else:
                self._added += 1
        if len(flat) == 3 and flat[2] is not None:
            owner = flat[2]
            self._ts[slot] = flat[0]
            self._held[slot] = owner
            self._code[slot] = self.pair_code(owner[_APP], owner[_REGION])
        else:
            self._held[slot] = flat
            self._code[slot] = NEVER if len(flat) == 3 else MULTI

    def _remove(self, ip: str) -> None:
        slot = self._slots.pop(ip)
        self._held[slot] = None
        self._code[slot] = FREE
        self._free.append(slot)
        if _is_vpc_key(ip):
            self._count_vpc_key(ip, slot, -1)
        if self._ipv4 is not None and _is_canonical_ipv4(ip):
            keys, slots = self._ipv4
            key = ipv4_int(ip)
            at = int(np.searchsorted(keys, key))
            if at < len(keys) and keys[at] == key:
                slots[at] = -1

    def _count_vpc_key(self, key: str, slot: int, step: int) -> None:
        """Takes a VPC key in (`step` 1, its slot `slot`) or out (-1), and keeps the claims'
        lookup arrays in step with it: claims come and go with the changelog, and building
        the arrays costs about half a microsecond a claim."""
        if step > 0:
            self._claims[key] = slot
        else:
            del self._claims[key]
        vpc_id, address = key.split(" ", 1)
        number = self._vpc_numbers.setdefault(vpc_id, len(self._vpc_numbers))
        if not self._claims:
            self._vpc_table, self._vpc_new, self._vpc_new_table = None, {}, None
        if self._vpc_table is None or not _is_canonical_ipv4(address):
            return
        number = number << 32 | ipv4_int(address)
        if step > 0:
            self._vpc_new[number] = slot
            self._vpc_new_table = None
            if len(self._vpc_new) > len(self._vpc_table[0]) // 2 + 1024:
                self._vpc_table = None
        elif self._vpc_new.pop(number, None) is not None:
            self._vpc_new_table = None
        else:
            keys, slots = self._vpc_table
            at = int(np.searchsorted(keys, number))
            if at < len(keys) and keys[at] == number:
                slots[at] = -1

    def _learn_interface(self, key: str, owner: tuple) -> None:
        """Takes in the interface the owner of a change of the VPC claim `key` names."""
        interface = owner[_INTERFACE]
        if interface == ABSENT:
            return
        vpc_id = key[:key.index(" ")]
        known = self._interface_vpc.get(interface, _UNKNOWN)
        if known is _UNKNOWN:
            known = self._assigned_vpc.get(interface, vpc_id)
        if known is None or known == vpc_id:
            self._interface_vpc[interface] = known
        else:
            self._interface_vpc[interface] = None
            self.interface_conflicts += 1

    def _learn_assigned(self, interface: str, vpc_id: str) -> None:
        """Takes in that an ASSIGN's owner's `interface` is in `vpc_id`."""
        assigned = self._assigned_vpc
        known = assigned.get(interface, vpc_id)
        assigned[interface] = known if known == vpc_id else None
        claimed = self._interface_vpc.get(interface, _UNKNOWN)
        if claimed is not _UNKNOWN:
            known = claimed
            self._interface_vpc[interface] = claimed if claimed == vpc_id else None
        if known is not None and known != vpc_id:
            self.interface_conflicts += 1

    def _learn_interfaces(self) -> None:
        """The interfaces' VPCs built again from the ASSIGNs' and the claims held."""
        self._interface_vpc = {}
        self.interface_conflicts = sum(v is None for v in self._assigned_vpc.values())
        for key, slot in self._claims.items():
            for o in self._flat(slot)[2::3]:
                if o is not None:
                    self._learn_interface(key, o)

    def interface_vpc(self, interface_id):
        """The VPC of the interface `interface_id` (a flow's `interface-id`), as the claims
        and the ASSIGNs held name it; None when none does, or two VPCs are named."""
        vpc_id = self._interface_vpc.get(interface_id, _UNKNOWN)
        return self._assigned_vpc.get(interface_id) if vpc_id is _UNKNOWN else vpc_id

    def flow_vpc(self, vpc_id, interface_id):
        """A flow's VPC: its line's `vpc-id`, else its interface's (interface_vpc); None when
        neither is known."""
        return vpc_id if vpc_id is not None else self.interface_vpc(interface_id)

    def flow_vpcs(self, vpcs, interfaces):
        """flow_vpc of each flow, as an Arrow array (None: no flow's VPC known), from the
        Arrow arrays `vpcs` and `interfaces` of the flows' `vpc-id` and `interface-id` (None:
        the format lacks the field): each distinct interface looked up once. Without claims
        the flows' VPCs find no owner: not looked up."""
        if interfaces is None or not self._claims or not (
                self._interface_vpc or self._assigned_vpc) or (
                vpcs is not None and not vpcs.null_count):
            return vpcs
        encoded = pc.dictionary_encode(interfaces)
        get = self.interface_vpc
        known = pa.array([get(i) for i in encoded.dictionary.to_pylist()], pa.string())
        if known.null_count == len(known):
            return vpcs
        found = known.take(encoded.indices)
        return found if vpcs is None else pc.coalesce(vpcs, found)

    def _vpc_tables(self) -> tuple:
        """The IPv4 claims' lookup arrays: (built at once, made since)."""
        if self._vpc_table is None:
            self._vpc_new, self._vpc_new_table = {}, None
            claims = self._claims
            parts = pc.split_pattern(pa.array(list(claims), pa.string()), " ",
                                     max_splits=1).flatten()
            vpcs = pc.dictionary_encode(parts[0::2])
            addresses = parts[1::2]
            at_ipv4 = np.flatnonzero(pc.match_substring_regex(addresses, IPV4_PATTERN)
                                     .to_numpy(zero_copy_only=False))
            numbers = np.array([self._vpc_numbers[v] for v in vpcs.dictionary.to_pylist()],
                               np.int64)[vpcs.indices.to_numpy()[at_ipv4]]
            keys = numbers << 32 | ipv4_ints(addresses.take(at_ipv4))
            slots = np.fromiter(claims.values(), np.int64, len(claims))[at_ipv4]
            order = np.argsort(keys)
            self._vpc_table = keys[order], slots[order]
        if self._vpc_new_table is None:
            self._vpc_new_table = _sorted_table(self._vpc_new)
        return self._vpc_table, self._vpc_new_table

    def holds_vpc_claims(self) -> bool:
        return bool(self._claims)

    def owner_in_vpc(self, ip: str, vpc_id, t_ms: int):
        """The owner of `ip` at `t_ms` within the VPC `vpc_id` (a flow's `vpc-id`, None when
        its line has none): for an end without an owner of its own."""
        if vpc_id is None or not self._claims:
            return None
        return self.owner_at(vpc_key(vpc_id, ip), t_ms)

    def vpc_slots(self, distinct: pa.Array, numbers: np.ndarray, at: np.ndarray, vpcs,
                  owned: np.ndarray) -> tuple:
        """The slots of the VPC claims on the ends not `owned` (a mask; their addresses
        `distinct.take(at)`, whose job.addresses codes are `numbers`; their flows' VPCs the
        Arrow array `vpcs` or None), for codes_at and owner_in_slot: (positions, slots) of
        the ends whose VPC claims their address. IPv4 claims are looked up as integers in
        sorted arrays (an estate of overlapping VPCs may have tens of thousands), others by
        their keys."""
        wanted = np.zeros(0, np.int64)
        if vpcs is not None and self._claims:
            wanted = np.flatnonzero(~owned & vpcs.is_valid().to_numpy(zero_copy_only=False))
        if not len(wanted):
            return wanted, wanted
        encoded = pc.dictionary_encode(vpcs.take(wanted))
        vpc_ids = encoded.dictionary.to_pylist()
        which = encoded.indices.to_numpy().astype(np.int64)
        vpc_numbers = np.array([self._vpc_numbers.get(v, -1) for v in vpc_ids],
                               np.int64)[which]
        wanted_numbers = numbers[at[wanted]]
        ipv4 = wanted_numbers < OTHER_ADDRESSES
        found = np.full(len(wanted), -1, np.int64)
        at_ipv4 = np.flatnonzero(ipv4 & (vpc_numbers >= 0))
        claims = vpc_numbers[at_ipv4] << 32 | wanted_numbers[at_ipv4]
        for keys, slots in self._vpc_tables():   # a claim since the build: only in the second
            if len(keys) and len(claims):
                i = np.minimum(np.searchsorted(keys, claims), len(keys) - 1)
                hit = keys[i] == claims
                found[at_ipv4[hit]] = slots[i[hit]]
        at_other = np.flatnonzero(~ipv4 & (vpc_numbers >= 0))
        if len(at_other):
            get = self._slots.get
            found[at_other] = [get(vpc_key(vpc_ids[v], ip), -1) for v, ip in zip(
                which[at_other].tolist(), texts(distinct, at[wanted[at_other]]))]
        return wanted[found >= 0], found[found >= 0]

    def owner_in_slot(self, slot: int, t_ms: int):
        """owner_at of the key in `slot`."""
        if self._code[slot] >= 0:
            return self._held[slot] if self._ts[slot] <= t_ms else None
        flat = self._held[slot]
        if flat[-3] <= t_ms:
            return flat[-1]
        for i in range(len(flat) - 6, -1, -3):
            if flat[i] <= t_ms:
                return flat[i + 2]
        return None

    def _shared(self, o: tuple) -> tuple:
        # Written out, as OWNER_FIELDS orders them: interface_id and resource_id (o[6], o[7])
        # have a value (nearly) per IP, and a table of them would cost more than it saves. A
        # loop over the fields took three times as long as this.
        s = self._strings.setdefault
        return (s(o[0], o[0]), s(o[1], o[1]), s(o[2], o[2]), s(o[3], o[3]), s(o[4], o[4]),
                s(o[5], o[5]), o[6], o[7], s(o[8], o[8]))

    def _same_ts(self, ts: int) -> int:
        # An int object per change (32 B) unless consecutive changes share it, as the changes
        # of a snapshot, all at its ts, do; a table of every ts would cost more in a stream.
        if ts != self._ts_last:
            self._ts_last = ts
        return self._ts_last

    def apply(self, event: MetaEvent) -> None:
        change = (self._same_ts(event.ts), _RANK[event.type],
                  self._shared(event.owner) if event.owner else None)
        if change[2] is not None:
            if _is_vpc_key(event.ip):
                self._learn_interface(event.ip, change[2])
            elif event.interface_vpc_id is not None and change[2][_INTERFACE] != ABSENT:
                vpc_id = event.interface_vpc_id
                self._learn_assigned(change[2][_INTERFACE], self._vpc_ids.setdefault(vpc_id,
                                                                                     vpc_id))
        slot = self._slots.get(event.ip)
        if slot is None:
            self._store(event.ip, None, change)
        else:
            flat = self._flat(slot)
            if flat[-3:-1] <= change[:2]:
                flat += change   # in order, as changelogs mostly are
            else:
                changes = list(zip(flat[::3], flat[1::3], flat[2::3]))
                insort_right(changes, change, key=_order)
                flat = _flat(changes)
            self._store(event.ip, slot, flat)
        self._ranges += 1

    def owner_at(self, ip: str, t_ms: int):
        slot = self._slots.get(ip)
        return None if slot is None else self.owner_in_slot(slot, t_ms)

    def slots(self, addresses, codes: np.ndarray = None) -> np.ndarray:
        """The slot of each address (-1: not in the index), for codes_at: `addresses` valid
        IP addresses (ipaddress accepts them, as the parsers made sure), a pyarrow string
        array without nulls or a list of str; `codes` their job.addresses codes, when the
        caller has them. IPv4 addresses (those without a colon: ipaddress accepts no other
        form of them than the one it writes) are looked up as integers, by np.searchsorted in
        a sorted array, 4.5 MB at 560,000 IPs; the dict's keys, strings scattered in the heap,
        cost a few cache misses each there: 0.6-0.7 us an address against 0.35-0.4
        (docs/performance.md, run 19). IPv6 addresses, and the IPv4 ones added since that
        array was built, in the dict."""
        if not isinstance(addresses, pa.Array):
            addresses = pa.array(addresses, pa.string())
        if codes is None:
            codes = address_codes(addresses, {})
        found = np.full(len(addresses), -1, np.int64)
        keys, slots = self._ipv4_table()
        ipv6 = codes >= OTHER_ADDRESSES
        at_ipv4 = np.flatnonzero(~ipv6)
        if len(at_ipv4) and len(keys):
            wanted = codes[at_ipv4]
            at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            found[at_ipv4] = np.where(keys[at] == wanted, slots[at], -1)
        # With no IP added since the array was built, an IPv4 address not in it is in no slot.
        rest = np.flatnonzero(ipv6 if self._added == 0 else found < 0)
        if len(rest):
            get = self._slots.get
            found[rest] = [get(ip, -1) for ip in texts(addresses, rest)]
        return found

    def _ipv4_table(self) -> tuple:
        """self._ipv4, built again when the IPs added since are more than half of it (a snapshot
        of n IPs applied between lookups costs about three builds of n)."""
        if self._ipv4 is None or self._added > len(self._ipv4[0]) // 2 + 1024:
            self._ipv4 = None   # the old arrays go before the new ones are made
            # In slices: whole, a million IPs' temporaries (a list of them, their Arrow strings
            # and octets) took the worker 93 MB above its resident size, at its peak
            # (docs/performance.md, run 21).
            keys, slots = [], []
            items = iter(self._slots.items())
            while chunk := list(islice(items, _IPV4_BUILD_SLICE)):
                ips = pa.array([ip for ip, _slot in chunk], pa.string())
                at_ipv4 = np.flatnonzero(
                    pc.match_substring_regex(ips, IPV4_PATTERN).to_numpy(zero_copy_only=False))
                keys.append(ipv4_ints(ips.take(at_ipv4)))
                slots.append(np.fromiter((slot for _ip, slot in chunk), np.int64,
                                         len(chunk))[at_ipv4])
            keys = np.concatenate(keys) if keys else np.zeros(0, np.int64)
            slots = np.concatenate(slots) if slots else np.zeros(0, np.int64)
            order = np.argsort(keys, kind="stable")
            self._ipv4 = (keys[order], slots[order])
            self._added = 0
            self.ipv4_builds += 1
        return self._ipv4

    def owners_at(self, addresses, t_ms: np.ndarray) -> list:
        """owner_at of each address (as for `slots`) at its time in `t_ms`, None where none:
        the IPs with one owner since their first change from the arrays, the others one by
        one."""
        if not isinstance(addresses, pa.Array):
            addresses = pa.array(addresses, pa.string())
        encoded = pc.dictionary_encode(addresses)
        at = encoded.indices.to_numpy().astype(np.int64)
        slots = self.slots(encoded.dictionary)[at]
        codes, others = self.codes_at(slots, t_ms)
        held = self._held
        if not held:
            return [None] * len(addresses)
        # Slot 0 stands in where the arrays found no owner, and is then replaced.
        owners = list(map(held.__getitem__, np.where(codes >= 0, slots, 0).tolist()))
        for i in np.flatnonzero(codes < 0).tolist():
            owners[i] = None
        positions = np.flatnonzero(others)
        owner_at = self.owner_at
        for i, ip, t in zip(positions.tolist(),
                            encoded.dictionary.take(at[positions]).to_pylist(),
                            t_ms[positions].tolist()):
            owners[i] = owner_at(ip, t)
        return owners

    def owners_in_vpcs(self, owners: list, addresses, t_ms: np.ndarray, vpcs) -> int:
        """Fills in `owners` (owners_at's) owner_in_vpc where it has None, each flow's VPC in
        the Arrow array `vpcs` (None: the lines have none); returns how many it found."""
        if vpcs is None or not self._claims or vpcs.null_count == len(vpcs):
            return 0
        if not isinstance(addresses, pa.Array):
            addresses = pa.array(addresses, pa.string())
        encoded = pc.dictionary_encode(addresses)
        at = encoded.indices.to_numpy().astype(np.int64)
        owned = np.array([o is not None for o in owners], bool)
        found = 0
        for i, slot in zip(*(v.tolist() for v in self.vpc_slots(
                encoded.dictionary, address_codes(encoded.dictionary, {}), at, vpcs, owned))):
            owners[i] = self.owner_in_slot(slot, int(t_ms[i]))
            found += owners[i] is not None
        return found

    def codes_at(self, slots: np.ndarray, t_ms: np.ndarray) -> tuple:
        """A batch's lookup in arrays: (codes, others) for the IPs in `slots` at the times
        `t_ms`. codes[i] is the pair code of the owner of an IP with one owner since its first
        change, -1 where there is none of those; `others` marks the IPs with other changes
        (but one UNASSIGN: never an owner), for owner_at."""
        codes = np.full(len(slots), -1, np.int64)
        known = np.flatnonzero(slots >= 0)
        if not len(known):
            return codes, np.zeros(len(slots), bool)
        at = slots[known]
        # Views of the arrays while they cannot grow (no event is applied during the call).
        code = np.frombuffer(self._code, np.int64)[at]
        first_ms = np.frombuffer(self._ts, np.int64)[at]
        owned = (code >= 0) & (first_ms <= t_ms[known])
        codes[known[owned]] = code[owned]
        others = np.zeros(len(slots), bool)
        others[known[code == MULTI]] = True
        return codes, others

    def single_owners(self, slots) -> list:
        """The owner of each of `slots`, slots of IPs with one owner since their first change
        (those codes_at finds an owner for)."""
        return list(map(self._held.__getitem__, slots))

    def prune(self, horizon_ms: int, released_ms: int = None) -> tuple:
        """Forgets what no flow at or after `horizon_ms` can need. Returns the IPs whose
        changes moved and the broadcast-state keys to remove: IPs, and parts no IP has left.
        An IP released before the horizon keeps its release (one UNASSIGN) while it is later
        than `released_ms` (None: it is forgotten with the rest): a change of it older than
        the horizon that comes after, such as a snapshot replayed, then ends at that release
        instead of owning the IP for ever. The interfaces' VPCs are built again from the claims
        left: an interface whose claims are all pruned is known no more, though it may still log
        flows (a flow's VPC then unknown, never wrong)."""
        changed, removed = [], []
        code, held = self._code, self._held
        dropped = []   # the owners of the changes forgotten
        for ip, slot in self._slots.items():
            if code[slot] >= 0:
                continue
            flat = held[slot]
            if flat[0] > horizon_ms:
                continue
            i = len(flat) - 3
            while i and flat[i] > horizon_ms:
                i -= 3
            if i == len(flat) - 3 and flat[-1] is None:
                if released_ms is None or flat[-3] <= released_ms:
                    removed.append(ip)
                    dropped += flat[2::3]
                elif i:
                    self._ranges -= i // 3
                    self._store(ip, slot, flat[i:])
                    changed.append(ip)
                    dropped += flat[2:i:3]
            elif i:
                self._ranges -= i // 3
                self._store(ip, slot, flat[i:])
                changed.append(ip)
                dropped += flat[2:i:3]
        for ip in removed:
            self._ranges -= len(self._flat(self._slots[ip])) // 3
            self._remove(ip)
        # Values of owners long gone do not stay; live owners keep theirs.
        self._strings = {}
        forgotten = self._forget_assigned(dropped, changed)
        if forgotten or any(map(_is_vpc_key, changed)) or any(map(_is_vpc_key, removed)):
            self._learn_interfaces()
        if changed or removed:
            removed += self._forget_parts()
        return changed, removed

    def _forget_assigned(self, dropped: list, changed: list) -> bool:
        """Forgets the ASSIGNs' VPCs of the interfaces the `dropped` owners name that no change
        held names any more; the keys whose changes name the others are added to `changed`:
        written again, each change's part with its interface's VPC as known now (one written
        before it was known, or before a conflict, would otherwise say less or other after a
        restore than the dropped change said). Returns whether any was forgotten."""
        assigned = self._assigned_vpc
        interfaces = {o[_INTERFACE] for o in dropped if o} & assigned.keys()
        if not interfaces:
            return False
        named, again = set(), set(changed)
        for key, slot in self._slots.items():
            for o in self._flat(slot)[2::3]:
                if o and o[_INTERFACE] in interfaces:
                    named.add(o[_INTERFACE])
                    if key not in again:
                        again.add(key)
                        changed.append(key)
        for interface in interfaces - named:
            del assigned[interface]
        return len(named) < len(interfaces)

    def _forget_parts(self) -> list:
        live = set()
        for slot in self._slots.values():
            live.update(_part(o) for o in self._flat(slot)[2::3] if o)
        # A part naming an interface's VPC goes with the owner fields it holds: entries written
        # before the VPC was known, or before a conflict, may name the others.
        gone = [part for part in self._part_ids if part[:_PART_FIELDS] not in live]
        return [PART_KEY + str(self._part_ids.pop(part)) for part in gone]

    def encode(self, ip: str) -> str:
        """The IP's value in broadcast state; the parts it names are among the next
        state_entries."""
        slot = self._slots[ip]
        if self._code[slot] >= 0:
            # Most IPs: one owner since their first change, ids with nothing to escape. The
            # JSON encoder took 3 us a value, a large estate's snapshot 6 % of its job.
            o = self._held[slot]
            ids = o[6] + o[7]
            if ids.isascii() and ids.isprintable() and '"' not in ids and "\\" not in ids:
                return _ONE_OWNER % (self._ts[slot], _RANK[ASSIGN], self._part_id(self._stored(o)),
                                     o[6], o[7])
        flat = self._flat(slot)
        values = [STATE_VERSION]
        for i in range(0, len(flat), 3):
            o = flat[i + 2]
            if o is None:
                values += (flat[i], flat[i + 1], None, None, None)
            else:
                values += (flat[i], flat[i + 1], self._part_id(self._stored(o)), o[6], o[7])
        return _compact_json(values)

    def _stored(self, o: tuple) -> tuple:
        """The part of owner `o` in broadcast state: with its interface's VPC as the ASSIGNs
        name it (None: two), when they do."""
        vpc_id = self._assigned_vpc.get(o[_INTERFACE], _UNKNOWN)
        return _part(o) if vpc_id is _UNKNOWN else _part(o) + (vpc_id,)

    def _part_id(self, part: tuple) -> int:
        number = self._part_ids.get(part)
        if number is None:
            number = self._part_ids[part] = self._next_part
            self._next_part += 1
            self._new_parts.append((number, part))
        return number

    def state_entries(self, ips) -> list:
        """(key, value) to put into broadcast state for `ips`: each IP's value, and before
        them the parts first named since the last call; the first call after a load that
        cleaned changes writes their keys too (those still held)."""
        if self._unwritten:
            unwritten, self._unwritten = self._unwritten, {}
            ips = list(dict.fromkeys(ips))
            written = set(ips)
            # Sorted: load met them in the order the state yields them, which may differ between
            # the instances, and each would number the parts cleaned as it met them.
            ips += sorted(key for key in unwritten if key in self._slots and key not in written)
        values = [(ip, self.encode(ip)) for ip in ips]
        parts = [(PART_KEY + str(number), _compact_json((STATE_VERSION,) + part))
                 for number, part in self._new_parts]
        self._new_parts = []
        return parts + values

    def load(self, read_entries) -> None:
        """Fills the index from broadcast state: `read_entries()` yields its (key, value) pairs
        (the clock's left out), in any order, and is read twice: parts, then IPs."""
        parts, cleaned = {}, {}
        for key, encoded in read_entries():
            if key.startswith(PART_KEY):
                version, *fields = json.loads(encoded)
                if version != STATE_VERSION:
                    _unreadable(version)
                part = tuple([self._strings.setdefault(f, f) for f in fields])
                number = int(key[len(PART_KEY):])
                # The number stays the part's as written: _forget_parts removes it once the
                # keys naming it are written again (state_entries) with the part cleaned.
                self._part_ids[part] = number
                values, how = _restored_values(part[:_PART_FIELDS], True)
                if how is not None:
                    cleaned[number] = how
                    part = None if values is None else tuple(
                        [self._strings.setdefault(f, f) for f in values]) + part[_PART_FIELDS:]
                parts[number] = part
        self._next_part = max(self._next_part, max(parts, default=-1) + 1)
        for key, encoded in read_entries():
            if not key.startswith(PART_KEY):
                self._load_ip(key, encoded, parts, cleaned)
        self.restored_keys = len(self._unwritten)
        self._learn_interfaces()

    def restore_note(self):
        """What load cleaned, in words for the job's log; None if nothing."""
        if not self.restored_cleaned:
            return None
        refused, blanked = self.restored_cleaned[REFUSED], self.restored_cleaned[BLANKED]
        return (f"ownership state restored: {refused + blanked} changes held owner values the "
                f"changelog's checks (docs/metadata.md) refuse or blank, taken by an earlier "
                f"release: {refused} refused, each applied as an UNASSIGN (its address "
                f"unattributed from its ts), {blanked} with values of white space only, now "
                f"`-`; their {self.restored_keys} keys are written again with the next "
                f"changelog chunk")

    def _load_ip(self, ip: str, encoded: str, parts: dict, cleaned: dict) -> None:
        values = json.loads(encoded)
        hows = []   # what _restored_values did to the changes it changed
        if values[0] == 1:
            changes = []
            for ts, rank, o in values[1]:
                if o:
                    o, how = _restored_values(o, True)
                    if how is not None:
                        hows.append(how)
                        if o is None:
                            rank = _RANK[UNASSIGN]
                changes.append((ts, rank, self._shared(o) if o else None))
            flat = _flat(changes)
        else:
            if values[0] != STATE_VERSION:
                _unreadable(values[0])
            flat = []
            # Most values hold printable ASCII only, no space, empty string or escape (the
            # encoder escapes any other character): the IP's own values (interface_id,
            # resource_id) then pass _restored_values as they are, known by a few C calls an IP.
            plain = (encoded.isascii() and "\\" not in encoded and " " not in encoded
                     and '""' not in encoded and "\x7f" not in encoded)
            for i in range(1, len(values), 5):
                ts, rank, number, interface_id, resource_id = values[i:i + 5]
                ts = self._same_ts(ts)
                if number is None:
                    flat += (ts, rank, None)
                    continue
                p = parts[number]
                if not plain or cleaned and number in cleaned:
                    how = cleaned.get(number)
                    if p is not None:
                        own, own_how = _restored_values((interface_id, resource_id))
                        if own is None:
                            p, how = None, REFUSED
                        elif own_how is not None:
                            interface_id, resource_id = own
                            how = how or own_how
                    if how is not None:
                        hows.append(how)
                    if p is None:
                        flat += (ts, _RANK[UNASSIGN], None)
                        continue
                flat += (ts, rank, (p[0], p[1], p[2], p[3], p[4], p[5], interface_id,
                                    resource_id, p[6]))
                if len(p) > _PART_FIELDS and interface_id != ABSENT:
                    known = self._assigned_vpc.get(interface_id, p[-1])
                    self._assigned_vpc[interface_id] = known if known == p[-1] else None
            flat = tuple(flat)
        if hows:
            self.restored_cleaned.update(hows)
            self._unwritten[ip] = None
            if REFUSED in hows:
                # As the UNASSIGN the line is read as now: before an ASSIGN of the same ts.
                flat = _flat(sorted(zip(flat[::3], flat[1::3], flat[2::3]), key=_order))
        slot = self._slots.get(ip)
        self._ranges += len(flat) // 3 - (0 if slot is None else len(self._flat(slot)) // 3)
        self._store(ip, slot, flat)


_ONE_OWNER = f'[{STATE_VERSION},%d,%d,%d,"%s","%s"]'


def _in_sorted(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each of `values` is in the sorted array `keys`."""
    if not len(keys):
        return np.zeros(len(values), bool)
    return keys[np.minimum(np.searchsorted(keys, values), len(keys) - 1)] == values


def _sorted_table(claims: dict) -> tuple:
    """(sorted integer keys, their values) of a dict of int -> int."""
    keys = np.fromiter(claims, np.int64, len(claims))
    order = np.argsort(keys)
    return keys[order], np.fromiter(claims.values(), np.int64, len(claims))[order]


REFUSED, BLANKED = "refused", "blanked"


def _restored_values(values, with_app: bool = False) -> tuple:
    """(values, what was done) of owner values read back from broadcast state, as a changelog
    line's are taken now (parse_event, _refused): (values, None) if they pass; (None, REFUSED)
    if one breaks text (breaks_text: a control character or a line break; a lone surrogate)
    or, `with_app` (values[0] an app), names an app the job gives ends; else those of white
    space only `-`, BLANKED. A release before those checks took such an owner, and it stayed
    the address's until its next change."""
    joined = "".join(values)
    if joined.isprintable() and " " not in joined and all(values) and not (
            with_app and is_reserved_app(values[0])):
        return values, None
    blanked = tuple([v if v and not v.isspace() else ABSENT for v in values])
    joined = "".join(blanked)
    if (not joined.isprintable() and (breaks_text(joined) or not _is_text(blanked))
            or with_app and is_reserved_app(blanked[0])):
        return None, REFUSED
    return (values, None) if blanked == tuple(values) else (blanked, BLANKED)


def _part(o: tuple) -> tuple:
    """The owner fields many IPs share: all but interface_id and resource_id (o[6], o[7])."""
    return o[0], o[1], o[2], o[3], o[4], o[5], o[8]


_PART_FIELDS = len(OWNER_FIELDS) - 2
# Not a VPC id, nor None (an interface named in two VPCs): the interface's VPC is not known.
_UNKNOWN = object()


def _unreadable(version) -> None:
    raise ValueError(f"ownership state version {version} is not readable by this release")


def _flat(changes) -> tuple:
    return tuple([value for change in changes for value in change])


def apply_events(events, index: "OwnershipIndex", clock: "MetadataClock",
                 from_snapshot: bool = False) -> tuple:
    """Applies `events` in order, exactly as one by one. Returns the counts (metadata_events,
    metadata_late, heartbeats) and the IPs whose changes moved, in first-change order, so
    that a caller writes each of them (and the clock) once. A snapshot's events (the owners
    at one time, dated when each address was taken, in address order) set owners and leave
    the clock alone: a recent one early in the snapshot would move it past flows whose owners
    come later in it. The stream after the snapshot moves it."""
    late = heartbeats = 0
    changed = {}
    for event in events:
        if not from_snapshot and clock.observe(event):
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

    watermark = max(latest change ts - out_of_orderness, latest HEARTBEAT ts). A change at or
    before the watermark when it arrives is late: it is applied, but flows already attributed
    are not revisited.
    """

    def __init__(self, out_of_orderness_ms: int, max_ts: int = None, heartbeat: int = None):
        self.out_of_orderness_ms = out_of_orderness_ms
        self.max_ts = max_ts
        self.heartbeat = heartbeat

    @property
    def watermark(self):
        wm = None if self.max_ts is None else self.max_ts - self.out_of_orderness_ms
        if self.heartbeat is not None and (wm is None or self.heartbeat > wm):
            return self.heartbeat
        return wm

    def observe(self, event: MetaEvent) -> bool:
        """Advances the clock; returns True if the event was late. Called per event: the
        lateness test is written against both bounds rather than through `watermark` (a
        snapshot of 1M IPs spent 7 % of its load in it)."""
        ts, heartbeat = event.ts, self.heartbeat
        if event.type == HEARTBEAT:
            if heartbeat is None or ts > heartbeat:
                self.heartbeat = ts
            return False
        max_ts = self.max_ts
        if max_ts is None:
            self.max_ts = ts
            return heartbeat is not None and ts <= heartbeat
        if ts > max_ts:
            self.max_ts = ts
        return ts <= max_ts - self.out_of_orderness_ms or (heartbeat is not None
                                                           and ts <= heartbeat)

    def complete_up_to(self, t_ms: int) -> bool:
        wm = self.watermark
        return wm is not None and wm >= t_ms

    def encode(self) -> str:
        return json.dumps([CLOCK_VERSION, self.max_ts, self.heartbeat])

    @classmethod
    def decode(cls, encoded: str, out_of_orderness_ms: int) -> "MetadataClock":
        version, max_ts, heartbeat = json.loads(encoded)
        if version != CLOCK_VERSION:
            raise ValueError(f"metadata clock version {version} is not readable by this release")
        return cls(out_of_orderness_ms, max_ts, heartbeat)
