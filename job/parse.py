"""Input records to parsed flow groups: decoding, line parsing, window grouping.

Pure Python (no pyflink). One call handles one input record (`parse_record`): a CloudWatch
Logs subscription envelope (gzip JSON) or a chunk of an S3 flow-log file; or several whose lines
are parsed together (`parse_batches`: a shard's batch of Kinesis records, a file's records, a
staged line of several).
Nothing in a record can raise out of either: bad items become dead letters with a reason code
and a location (file and line, or record, log stream and event index), good lines still go
through.
"""
import base64
import binascii
import bisect
import codecs
import functools
import ipaddress
import itertools
import json
import math
import re
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from socket import AF_INET6, inet_ntop, inet_pton

import pyarrow.compute as pc

from flowdredge.job import parse_columns
from flowdredge.job.addresses import embeds_ipv4
from flowdredge.schemas.fields import ADDR, INT, LONG, STRING
from flowdredge.schemas.flowlog import (BY_AWS_NAME, CHOICES, COUNT_FIELDS, EARLIEST_START,
                                        LATEST_START, MAX_FLOW_SECONDS, MAX_LONG,
                                        NO_TRAFFIC_STATUSES, EVENT_VALUE_MARKS, PORT_FIELDS,
                                        REQUIRED, SHORTEST_EVENT, value_range)
from flowdredge.schemas.settings import quoted

EXCERPT_CHARS = 256
# Bytes of an input kept for its excerpt (job.replay's staging): a character of UTF-8 text the
# excerpt's cut splits ends within them, which tells it from bytes that are not UTF-8.
EXCERPT_BYTES = EXCERPT_CHARS + 3
GZIP_MAGIC = b"\x1f\x8b"
# Reasons job.replay gives a whole input file it could not stage (the record it writes instead).
FILE_REASONS = ("empty_file", "bad_header", "bad_gzip", "unreadable", "too_large",
                "empty_members")

TCP_FLAG_NAMES = ((1, "FIN"), (2, "SYN"), (4, "RST"), (8, "PSH"), (16, "ACK"), (32, "URG"))


def decode_tcp_flags(flags):
    """AWS ORs the flags seen in the interval: 18 is SYN-ACK, 19 SYN-ACK and FIN, 3 SYN and FIN."""
    if flags is None:
        return None
    names = [name for bit, name in TCP_FLAG_NAMES if flags & bit]
    if "SYN" in names and "ACK" in names:
        names[names.index("SYN")] = "SYN-ACK"
        names.remove("ACK")
    return ",".join(names)


class FormatError(ValueError):
    """A flow-log format string or header lacks a required field."""


def format_names(text: str) -> tuple:
    """The field names of a format string (`${version} ${account-id} ...`) or a header line.
    A name of `$`, `{` and `}` alone is kept as it is (an unknown field's): stripped to nothing,
    it was gone from the format a staged chunk names, which then had a field fewer than its
    lines."""
    return tuple(tok.strip("${}") or tok for tok in text.split())


class FlowFormat:
    """The field order of flow-log lines, from a format string or an S3 header line.

    A line splits into `width` values, one per name. Names this release does not know (AWS adds
    fields over time) are split off and dropped: a flow is the tuple of the known fields
    (`fields`, `keys`), and every position below is a position in that tuple. Whether an unknown
    name is acceptable is the caller's decision (`unknown`)."""

    def __init__(self, aws_names):
        names = tuple(aws_names)
        self.names = names
        self.unknown = tuple(dict.fromkeys(n for n in names if n not in BY_AWS_NAME))
        self.columns = tuple(i for i, n in enumerate(names) if n in BY_AWS_NAME)
        self.fields = tuple(names[i] for i in self.columns)
        missing = [n for n in REQUIRED if n not in self.fields]
        if missing:
            raise FormatError(f"flow-log format lacks required field(s) {missing}"
                              + ("; its fields are separated by spaces, not commas"
                                 if any("," in n for n in names) else ""))
        # Which of two `start` columns would be the flow's? Neither: the format is refused.
        repeated = sorted({n for n in self.fields if self.fields.count(n) > 1})
        if repeated:
            raise FormatError(f"flow-log format names field(s) {repeated} more than once")
        kinds = [BY_AWS_NAME[n].kind for n in self.fields]
        self.keys = tuple(BY_AWS_NAME[n].key for n in self.fields)
        self.width = len(names)
        self.pos = {n: i for i, n in enumerate(self.fields)}
        self.int_positions = tuple(i for i, k in enumerate(kinds) if k in (INT, LONG))
        self.addr_positions = tuple(i for i, k in enumerate(kinds) if k == ADDR)
        self.port_positions = tuple(self.pos[n] for n in PORT_FIELDS if n in self.pos)
        self.count_positions = tuple(i for i, n in enumerate(self.fields) if n in COUNT_FIELDS)
        self.ranges = tuple((i, *value_range(BY_AWS_NAME[self.fields[i]]))
                            for i in self.int_positions)
        self.choices = tuple((self.pos[n], frozenset(values)) for n, values in CHOICES.items()
                             if n in self.pos)
        # Text taken as it is (ids, names): a choice's other values are unknown_value.
        self.text_positions = tuple(i for i, k in enumerate(kinds)
                                    if k == STRING and self.fields[i] not in CHOICES)
        self.status_pos = self.pos.get("log-status")
        self.start_pos = self.pos["start"]
        self.end_pos = self.pos.get("end")
        self.convert = self._compile_converter()

    def _compile_converter(self):
        """A function from the split fields to the typed tuple, written out for this format:
        one expression instead of a loop per field (most of the parse time). Raises ValueError
        for a number that is not one."""
        ints = set(self.int_positions)
        items = [f"None if p[{j}] == '-' else {'int(p[%d])' % j if i in ints else 'p[%d]' % j}"
                 for i, j in enumerate(self.columns)]
        source = f"def convert(p):\n    return ({', '.join(items)},)\n"
        namespace = {}
        exec(source, namespace)   # generated from known field names only
        return namespace["convert"]

    @classmethod
    @functools.lru_cache(maxsize=1000)
    def parse(cls, text: str) -> "FlowFormat":
        """Accepts `${version} ${account-id} ...` (AWS format string) or a header line.
        Cached: every chunk of a file names its format."""
        return cls(format_names(text))

    def __eq__(self, other):
        return isinstance(other, FlowFormat) and other.names == self.names

    def __hash__(self):
        return hash(self.names)

    def __str__(self):
        return " ".join(self.names)


class FlowGroup:
    """Parsed flows of one record that fall in one window: `flows`, tuples of the format's
    fields, or `columns`, a pyarrow RecordBatch of them (the vectorised parser's, which
    job.attribute reads as columns); `flows` are made from the columns when first asked for."""

    def __init__(self, fmt: FlowFormat, window_start: int, max_start: int, flows: list = None,
                 source: str = "", columns=None):
        self.fmt = fmt
        self.window_start = window_start
        self.max_start = max_start
        self._flows = flows
        self.source = source
        self.columns = columns

    @property
    def flows(self) -> list:
        if self._flows is None:
            self._flows = parse_columns.rows(self.columns)
        return self._flows

    def __len__(self):
        return len(self._flows) if self._flows is not None else self.columns.num_rows

    def parts(self, most: int) -> list:
        """The group as groups of at most `most` flows each, in order, each with its own
        latest start."""
        if len(self) <= most:
            return [self]
        parts = []
        for first in range(0, len(self), most):
            if self.columns is None:
                flows = self._flows[first:first + most]
                latest, columns = max(flow[self.fmt.start_pos] for flow in flows), None
            else:
                flows, columns = None, self.columns.slice(first, most)
                latest = pc.max(columns.column(self.fmt.start_pos)).as_py()
            parts.append(FlowGroup(self.fmt, self.window_start, latest, flows, self.source,
                                   columns))
        return parts

    def __eq__(self, other):
        return isinstance(other, FlowGroup) and (
            (self.fmt, self.window_start, self.max_start, self.source, self.flows)
            == (other.fmt, other.window_start, other.max_start, other.source, other.flows))

    def __repr__(self):
        return (f"FlowGroup({self.fmt}, {self.window_start}, {self.max_start}, "
                f"{len(self)} flows, {self.source!r})")


def excerpt(raw) -> str:
    """At most EXCERPT_CHARS printable characters of raw input: bytes that are not UTF-8 (a
    gzip record) as `base64:...`, other unprintable characters escaped as Python does. A
    character of UTF-8 text the cut at EXCERPT_CHARS bytes splits is left out (the bytes after
    the cut complete it: EXCERPT_BYTES of them kept); one the input's end cuts is not UTF-8."""
    if isinstance(raw, (bytes, bytearray)):
        head = bytes(raw[:EXCERPT_CHARS])
        try:
            text, read = codecs.utf_8_decode(head, "strict", False)
        except UnicodeDecodeError:
            text, read = None, 0
        # surrogateescape gives bytes that are not UTF-8 as \udc80-\udcff, which no UTF-8 is.
        if text is None or (read < len(head) and "\ud800" <= bytes(
                raw[read:read + 4]).decode("utf-8", "surrogateescape")[0] <= "\udfff"):
            return "base64:" + base64.b64encode(head[:(EXCERPT_CHARS - 7) // 4 * 3]).decode()
        raw = text
    text = str(raw)[:EXCERPT_CHARS]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:EXCERPT_CHARS]
    return text


# Dead letters kept a ParseResult (a record, a shard's batch, a file's chunk); the rest are
# counted only: a record of a million lines of another format made a dead letter each, one
# output element of hundreds of MB that ran the JVM out of memory. They are evidence (an
# excerpt each), and the counts have every one by reason.
DEAD_LETTERS_KEPT = 1000


@dataclass
class ParseResult:
    groups: list = field(default_factory=list)
    dead_letters: list = field(default_factory=list)   # (stage, reason, source, excerpt, detail)
    counts: Counter = field(default_factory=Counter)
    # NODATA / SKIPDATA lines per (window_start, account_id, interface_id, log_status)
    no_traffic: Counter = field(default_factory=Counter)

    def dead(self, reason: str, source: str, raw, detail: str = "") -> None:
        if len(self.dead_letters) < DEAD_LETTERS_KEPT:
            self.dead_letters.append(("flows", reason, source, excerpt(raw), detail))
        else:
            self.counts["dead_letters_not_kept"] += 1
        self.counts["dead_letter"] += 1
        self.counts[f"dead_letter_{reason}"] += 1


class LineError(ValueError):
    """A line or record refused: `reason` is its dead letter's code, `detail` says why in
    words (the field, its value, the limit it broke)."""

    def __init__(self, reason, detail=""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def utc_text(seconds: int) -> str:
    """Epoch seconds as an ISO 8601 UTC time, for messages."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):
        return "a time no calendar holds"


class ClearingMemo(dict):
    """`function`'s result per argument, emptied whole once it holds more than `limit`, which
    bounds its memory whatever the input. Not functools.lru_cache: its hit costs about 100 ns
    more (it reorders its list), which made the per-line parser 4-7 % slower (bench.core: two
    lookups per line; issue #16)."""

    def __init__(self, function, limit: int):
        super().__init__()
        self.function, self.limit = function, limit

    def __missing__(self, key):
        if len(self) > self.limit:
            self.clear()
        value = self[key] = self.function(key)
        return value


def _address_form(text: str):
    """True for an address in its canonical text (IPv4 always is), its canonical text for
    another spelling of an IPv6 address ("2001:DB8::5" -> "2001:db8::5", as the changelog keys
    them: job.ownership), False for no address (an IPv6 zone id, "fe80::1%eth0", names an
    interface of the host that logged it: never a VPC's address)."""
    if "%" in text:
        return False
    if _canonical_ipv6(text):
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if address.version == 6 and embeds_ipv4(address):
        return False
    canonical = str(address)
    return True if canonical == text else canonical


def _canonical_ipv6(text: str) -> bool:
    """Whether `text` is an IPv6 address as ipaddress writes it, one not embedding an IPv4
    address, by the C library: 1.3 us against ipaddress's 10, and internet peers over IPv6
    are first sights, mostly. glibc's inet_ntop writes that form (RFC 5952) but dotted quads
    for ::ffff:0:0/96 and most of ::/96 (a text with a dot is left to ipaddress); another C
    library may write those embedding an IPv4 address in hex, so they are refused here too."""
    if "." in text:
        return False
    try:
        packed = inet_pton(AF_INET6, text)
    except OSError:
        return False
    value = int.from_bytes(packed, "big")
    return (inet_ntop(AF_INET6, packed) == text and value >> 32 != 0xFFFF
            and not 1 << 24 <= value < 1 << 32)


# A hit is dict's own __getitem__, in C.
address_form = ClearingMemo(_address_form, 1_000_000).__getitem__
_DECIMAL = re.compile("-?[0-9]+").fullmatch


# int() reads at most this many digits (sys.int_info.default_max_str_digits).
_INT_DIGITS = 4300
# Beyond every field's range: what a longer number is compared as.
BEYOND = 2**64


def _convert_long_numbers(fmt: FlowFormat, parts: list):
    """The flow of a line that int() refused: a number of more digits than it reads is
    compared as one beyond every range, so it fails as a shorter one out of range does;
    anything else is not_a_number."""
    parts = list(parts)
    for i in fmt.int_positions:
        token = parts[fmt.columns[i]]
        if token == "-":
            continue
        if not _DECIMAL(token):
            raise LineError("not_a_number", _not_an_integer(fmt.fields[i]))
        digits = token.lstrip("-").lstrip("0") or "0"
        value = int(digits) if len(digits) <= _INT_DIGITS else BEYOND
        parts[fmt.columns[i]] = str(-value if token.startswith("-") else value)
    try:
        return fmt.convert(parts)
    except ValueError:
        raise LineError("not_a_number", "a number that is not an integer") from None


def parse_line(fmt: FlowFormat, line: str, max_flow_bytes: int = MAX_LONG):
    """One flow-log line to a tuple of `fmt.fields` ('-' becomes None); raises LineError.
    `max_flow_bytes` bounds packets and bytes (flows.max_flow_bytes)."""
    # The readers put U+FFFD for bytes that are not UTF-8, and AWS writes flow logs in ASCII:
    # the line is damaged wherever they are, in an id kept as text too.
    if not line.isascii():
        if "\ufffd" in line:
            raise LineError("not_text", "U+FFFD, which the readers write for bytes that are "
                                        "not UTF-8 (flow logs are ASCII)")
        # JSON lets a message spell a lone surrogate (\ud800), which is no text either: an id
        # holding one was kept, as one holding U+FFFD was.
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            raise LineError("not_text", "a lone surrogate (a \\ud800-\\udfff escape), which "
                                        "is not text") from None
    parts = line.split()
    if len(parts) != fmt.width:
        raise LineError("field_count", f"{len(parts)} fields; the format has {fmt.width}")
    try:
        flow = fmt.convert(parts)
    except ValueError:
        flow = _convert_long_numbers(fmt, parts)
    if not line.isascii() or "+" in line or "_" in line:
        # int() also reads "+5", "1_000" and other scripts' digits, which the vectorised
        # parse refuses; a line that may hold one has its numbers checked (rarely: an ECS
        # name's underscore).
        for i in fmt.int_positions:
            token = parts[fmt.columns[i]]
            if token != "-" and not _DECIMAL(token):
                raise LineError("not_a_number", _not_an_integer(fmt.fields[i]))
    for i, lowest, highest in fmt.ranges:
        value = flow[i]
        if value is not None and not lowest <= value <= highest:
            # packets and bytes: the limit that applies is the configured one (a review: a
            # negative count named a Java long's).
            limit = (f"{max_flow_bytes} (flows.max_flow_bytes)" if i in fmt.count_positions
                     else highest)
            raise LineError("port_out_of_range" if i in fmt.port_positions
                            else "number_out_of_range",
                            f"{fmt.fields[i]} {number_text(value)} is outside "
                            f"{lowest}..{limit}")
    for i, allowed in fmt.choices:
        if flow[i] is not None and flow[i] not in allowed:
            raise LineError("unknown_value", f"{fmt.fields[i]} is '{quoted(flow[i], str)}', "
                                             f"not one of {', '.join(sorted(allowed))}")
    if not line.isprintable():   # a tab between fields too
        for i in fmt.text_positions:
            # A control character in an id (NUL, an escape sequence) went on into every output
            # keyed or written by it.
            if flow[i] is not None and not flow[i].isprintable():
                shown = next(repr(c)[1:-1] for c in flow[i] if not c.isprintable())
                raise LineError("not_text", f"{fmt.fields[i]} holds '{shown}', a character "
                                            f"that is not printable: AWS writes flow logs in "
                                            f"printable ASCII")
    for i in fmt.count_positions:
        if flow[i] is not None and flow[i] > max_flow_bytes:
            raise LineError("number_out_of_range", f"{fmt.fields[i]} {flow[i]} is more than "
                                                   f"flows.max_flow_bytes ({max_flow_bytes})")
    for i in fmt.addr_positions:
        if flow[i] is not None:
            form = address_form(flow[i])
            if form is not True:
                if form is False:
                    raise LineError("bad_address", address_error(fmt.fields[i], flow[i]))
                flow = flow[:i] + (form,) + flow[i + 1:]
    start = flow[fmt.start_pos]
    if (start is not None and fmt.end_pos is not None and flow[fmt.end_pos] is not None
            and flow[fmt.end_pos] < start):
        raise LineError("end_before_start", f"end {flow[fmt.end_pos]} is before start {start}")
    if (start is not None and fmt.end_pos is not None and flow[fmt.end_pos] is not None
            and flow[fmt.end_pos] - start > MAX_FLOW_SECONDS):
        raise LineError("timestamp_out_of_range",
                        f"end {flow[fmt.end_pos]} is {flow[fmt.end_pos] - start} s after start "
                        f"{start}; a record spans one aggregation interval, at most "
                        f"{MAX_FLOW_SECONDS} s are allowed")
    # A NODATA/SKIPDATA line has no addresses (AWS writes "-"), and may lack its times.
    if fmt.status_pos is not None and flow[fmt.status_pos] in NO_TRAFFIC_STATUSES:
        return flow
    if start is None or flow[fmt.pos["srcaddr"]] is None or flow[fmt.pos["dstaddr"]] is None:
        missing = [name for name in ("start", "srcaddr", "dstaddr") if flow[fmt.pos[name]] is None]
        raise LineError("missing_required_field", f"{' and '.join(missing)} '-' on a line with "
                                                  "traffic")
    return flow


def address_error(field: str, text: str) -> str:
    """Why `text`, refused by `_address_form`, is no address of a VPC's."""
    if "%" in text:
        return f"{field} is an IPv6 address with a zone id"
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return f"{field} is not an IPv4 or IPv6 address"
    return f"{field} is an IPv6 address that spells an IPv4 one (::ffff:a.b.c.d or ::a.b.c.d)"


def _not_an_integer(field: str) -> str:
    return f"{field} is not an integer in ASCII digits"


def number_text(value: int) -> str:
    """A number for a message; one beyond 64 bits may stand for one of thousands of digits
    (`_convert_long_numbers`)."""
    return str(value) if abs(value) < BEYOND else "of 20 digits or more"


@dataclass(frozen=True)
class Limits:
    window_seconds: int
    max_decompressed_bytes: int
    # A start more than this before the record's delivery time is garbage.
    max_clock_skew_seconds: int
    # A start more than this after the delivery time is garbage: one such line would move event
    # time ahead and make every other flow late.
    max_ahead_seconds: int = 120
    max_line_bytes: int = 8192
    # Packets and bytes of one line: a record's sums then fit a Java long (job.config checks).
    max_flow_bytes: int = 2**41
    # Of a staged chunk's format: each format read builds and keeps a converter of its width.
    max_fields_per_line: int = 128


class _Location:
    """Where line `position` of a record came from: `<file>:<line>` for a chunk of a file,
    `<record> <log group>/<log stream> event <index>` for a CloudWatch envelope."""

    def __init__(self, prefix: str, offset: int = 0, separator: str = ":", index=None):
        self.prefix, self.offset, self.separator, self.index = prefix, offset, separator, index

    def __call__(self, position: int) -> str:
        n = self.index[position] if self.index is not None else position
        return f"{self.prefix}{self.separator}{n + self.offset}"


def parse_lines(fmt: FlowFormat, lines: list, source: str, limits: Limits, result: ParseResult,
                delivered: int = None, not_after: int = None, locate=None, *,
                vectorise_from: float = parse_columns.MIN_LINES) -> None:
    """Parses lines into per-window FlowGroups appended to `result`. `delivered` (epoch
    seconds) is when the lines were delivered, if known; `not_after` a time they cannot start
    after (a file's modification time). `locate(position)` names a line in dead letters
    (default: `source`, then `:` and the position).

    Chunks of `vectorise_from` lines or more go through the vectorised parser; the lines it does
    not accept go through `parse_line`, which alone decides dead-letter reasons and
    NODATA/SKIPDATA counts. The result is exactly the per-line parser's whatever the
    threshold, which is a cost choice only: tests and benchmarks pass 1 (always vectorised) or
    math.inf (never)."""
    _parse_sets(fmt, [_Lines(fmt, lines, source, *_start_bounds(limits, delivered, not_after),
                             locate or _Location(source), 0)], limits, result, vectorise_from)


@dataclass
class _Lines:
    """One record's lines of one format, waiting to be parsed with the other records' of that
    format: the starts they allow, [earliest, latest), and how each line is named."""
    fmt: FlowFormat
    lines: list
    source: str
    earliest: int
    latest: int
    locate: _Location
    size: int   # the lines' characters: a batch of records holds what one record may


def _parse_sets(fmt: FlowFormat, sets: list, limits: Limits, result: ParseResult,
                vectorise_from: float) -> None:
    """`parse_lines` over the lines of several records of format `fmt` at once, each line with
    its own record's bounds and name: the groups span the records (a group is one window's
    flows, named after the first record), so many small records cost one vectorised pass and
    one group a window instead of one each."""
    lines = sets[0].lines if len(sets) == 1 else [line for s in sets for line in s.lines]
    offsets = list(itertools.accumulate((len(s.lines) for s in sets), initial=0))
    source = sets[0].source
    chunk = None
    if len(lines) >= vectorise_from:
        if len(sets) == 1:
            earliest, latest = sets[0].earliest, sets[0].latest
        else:
            earliest, latest = parse_columns.line_bounds(
                [(s.earliest, s.latest) for s in sets], [len(s.lines) for s in sets])
        chunk = parse_columns.parse_chunk(fmt, lines, earliest, latest, limits.window_seconds,
                                          address_form, limits.max_line_bytes,
                                          limits.max_flow_bytes)
    if chunk is None:
        _group(fmt, source, limits.window_seconds,
               _parse_sets_each(fmt, sets, offsets, None, limits, result), result)
        return
    result.counts["lines_in"] += len(chunk.positions)
    slow = list(_parse_sets_each(fmt, sets, offsets, chunk.rest, limits, result))
    if not slow:
        result.counts["flows_parsed"] += len(chunk.positions)
        result.groups.extend(FlowGroup(fmt, w, m, None, source, columns)
                             for w, m, columns in chunk.groups)
        return
    # Lines the per-line parser accepted take their place among the others.
    fast = zip(chunk.positions, (flow for _, _, columns in chunk.groups
                                 for flow in parse_columns.rows(columns)))
    _group(fmt, source, limits.window_seconds, sorted([*fast, *slow], key=_position), result)


def _parse_sets_each(fmt, sets, offsets, positions, limits, result):
    """(position among all the sets' lines, flow) of each good line of `sets`, or of the lines
    at `positions` (ascending) only: `_parse_each` with each set's own bounds and names."""
    for s, offset, end in zip(sets, offsets, offsets[1:]):
        if positions is None:
            numbered = enumerate(s.lines)
        else:
            mine = positions[bisect.bisect_left(positions, offset):
                             bisect.bisect_left(positions, end)]
            numbered = ((p - offset, s.lines[p - offset]) for p in mine)
        flows = _parse_each(fmt, numbered, s.locate, s.earliest, s.latest, limits, result)
        if offset == 0:
            yield from flows
        else:
            for position, flow in flows:
                yield position + offset, flow


def _start_bounds(limits: Limits, delivered=None, not_after=None):
    """[earliest, latest) for a plausible flow start."""
    earliest, latest = EARLIEST_START, LATEST_START
    if delivered is not None:
        earliest = max(earliest, delivered - limits.max_clock_skew_seconds)
        latest = min(latest, delivered + limits.max_ahead_seconds + 1)
    if not_after is not None:
        latest = min(latest, not_after + limits.max_ahead_seconds + 1)
    return earliest, latest


def _position(numbered):
    return numbered[0]


def _parse_each(fmt, numbered_lines, locate, earliest, latest, limits, result):
    """(position, flow) of each good line; dead letters and NODATA/SKIPDATA counts go to
    `result`."""
    counts = result.counts
    status_pos = fmt.status_pos
    start_pos = fmt.start_pos
    max_line = limits.max_line_bytes
    max_flow_bytes = limits.max_flow_bytes
    for position, line in numbered_lines:
        if not line or line.isspace():
            continue
        counts["lines_in"] += 1
        if len(line) > max_line:
            result.dead("line_too_long", locate(position), line,
                        too_long_text(len(line), max_line))
            continue
        try:
            flow = parse_line(fmt, line, max_flow_bytes)
        except LineError as err:
            result.dead(err.reason, locate(position), line, err.detail)
            continue
        start = flow[start_pos]
        if status_pos is not None and flow[status_pos] in NO_TRAFFIC_STATUSES:
            # Its start names the data-quality row's window: bounded as a flow's is.
            if start is not None and not earliest <= start < latest:
                result.dead("timestamp_out_of_range", locate(position), line,
                            _start_out_of_range(start, earliest, latest, limits))
            else:
                _count_no_traffic(fmt, flow, limits.window_seconds, result)
            continue
        if not earliest <= start < latest:
            result.dead("timestamp_out_of_range", locate(position), line,
                        _start_out_of_range(start, earliest, latest, limits))
            continue
        yield position, flow


def too_long_text(length: int, limit: int, setting: str = "flows.max_line_bytes") -> str:
    return f"{length} characters; {setting} is {limit}"


def _start_out_of_range(start: int, earliest: int, latest: int, limits: Limits) -> str:
    """Why `start` is outside [earliest, latest), and which limit made the bound."""
    if start < earliest:
        return (f"start {utc_text(start)} is {earliest - start} s before the earliest allowed, "
                f"{utc_text(earliest)} "
                + ("(2010)" if earliest == EARLIEST_START else
                   "(the delivery time - flows.max_clock_skew_seconds, "
                   f"{limits.max_clock_skew_seconds})"))
    last = latest - 1
    return (f"start {utc_text(start)} is {start - last} s after the latest allowed, "
            f"{utc_text(last)} "
            + ("(2100)" if latest == LATEST_START else
               "(the delivery time, or a file's modification time, + flows.max_ahead_seconds, "
               f"{limits.max_ahead_seconds})"))


def _group(fmt, source, window_seconds, numbered_flows, result):
    groups = {}
    start_pos = fmt.start_pos
    for _, flow in numbered_flows:
        start = flow[start_pos]
        window_start = start - start % window_seconds
        group = groups.get(window_start)
        if group is None:
            group = groups[window_start] = FlowGroup(fmt, window_start, start, [], source)
        elif start > group.max_start:
            group.max_start = start
        group.flows.append(flow)
    result.counts["flows_parsed"] += sum(len(g) for g in groups.values())
    result.groups.extend(groups.values())


def _count_no_traffic(fmt, flow, window_seconds, result):
    status = flow[fmt.status_pos]
    result.counts["no_data" if status == "NODATA" else "skip_data"] += 1
    start = flow[fmt.start_pos]
    window_start = None if start is None else start - start % window_seconds
    account = flow[fmt.pos["account-id"]] if "account-id" in fmt.pos else None
    interface = flow[fmt.pos["interface-id"]] if "interface-id" in fmt.pos else None
    result.no_traffic[(window_start, account, interface, status)] += 1


# CloudWatch writes one gzip member a record: a record of more is read up to this many (each
# member's rest is copied, so a record of tiny members would cost its size squared).
MAX_MEMBERS = 1000


def _gunzip_capped(data: bytes, cap: int) -> tuple:
    """Decompresses gzip without ever holding more than `cap` bytes in all (gzip bombs): (each
    member's bytes, the LineError of what follows the last good member, or None). Raises the
    LineError when the first member cannot be read; zero bytes after a member are padding (as
    the gzip module reads them). Past MAX_MEMBERS members the rest is too_large."""
    members, total = [], 0
    while True:
        if len(members) == MAX_MEMBERS:
            return members, LineError("too_large", f"more than {MAX_MEMBERS} gzip members")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = inflater.decompress(data, cap - total + 1)
        except zlib.error as err:
            out, error = b"", LineError("bad_gzip", f"corrupt gzip data ({err})")
        else:
            total += len(out)
            error = (LineError("too_large", f"more than flows.max_decompressed_bytes ({cap}) "
                                            "once decompressed")
                     if total > cap or inflater.unconsumed_tail
                     else None if inflater.eof
                     else LineError("bad_gzip", "truncated gzip data"))
        if error is not None:
            if not members:
                raise error
            error.detail += f", after {len(members)} readable gzip member(s)"
            return members, error
        members.append(out)
        data = inflater.unused_data.lstrip(b"\0")
        if not data:
            return members, None
        if not data.startswith(GZIP_MAGIC):
            return members, LineError("bad_gzip", f"bytes that are not gzip after "
                                                  f"{len(members)} readable gzip member(s)")


def _earliest(*times):
    known = [t for t in times if t is not None]
    return min(known) if known else None


def _parse_cloudwatch(envelope, payload, source, default_fmt, limits, result, delivered,
                      not_after, pending):
    if not isinstance(envelope, dict) or "messageType" not in envelope:
        raise LineError("not_cloudwatch", "JSON without a messageType: not a CloudWatch Logs "
                                          "subscription record")
    events = envelope.get("logEvents")
    if envelope["messageType"] == "CONTROL_MESSAGE":
        # A repeated messageType made data records of it.
        _check_repeats(payload, sum(isinstance(e, dict) and "message" in e for e in events)
                       if isinstance(events, list) else 0)
        result.counts["records_skipped"] += 1
        return
    if envelope["messageType"] != "DATA_MESSAGE":
        kind = envelope["messageType"]
        # Quoted, a LongNumber's description read as a string messageType of those words.
        shown = kind if isinstance(kind, LongNumber) else f"'{quoted(kind, str)}'"
        raise LineError("not_cloudwatch", f"messageType {shown}, not DATA_MESSAGE or "
                                          "CONTROL_MESSAGE")
    if not isinstance(events, list):
        raise LineError("not_cloudwatch", "logEvents is not a list")
    # Every dead letter of the record names them: cut as excerpts are, a record of a few KB
    # with a name of megabytes made gigabytes of dead letters and stalled the job.
    stream = f"{_name(envelope.get('logGroup'))}/{_name(envelope.get('logStream'))}"
    locate = _Location(f"{source} {stream}", separator=" event ", index=[])
    lines, stream_ms, bad_events, message_keys = [], None, [], 0
    # A timestamp outside 2010..2100, or later than the record's arrival or its file's time
    # allow a start, bounds nothing: it would refuse every line of the record (a far-ahead one
    # did, in a file: a review).
    latest_ms = _start_bounds(limits, delivered, not_after)[1] * 1000
    for i, event in enumerate(events):
        message = event.get("message") if isinstance(event, dict) else None
        if isinstance(message, str):
            lines.append(message)
            locate.index.append(i)
            ts = event.get("timestamp")
            if (isinstance(ts, int) and not isinstance(ts, bool)
                    and EARLIEST_START * 1000 <= ts < latest_ms
                    and (stream_ms is None or ts > stream_ms)):
                stream_ms = ts
        else:
            bad_events.append((i, event))
            message_keys += isinstance(event, dict) and "message" in event
    _check_repeats(payload, message_keys + len(lines))
    for i, event in bad_events:
        result.dead("not_cloudwatch", f"{locate.prefix} event {i}",
                    json.dumps(event, default=float), "an event without a string message")
    # The events' timestamps are the flows' starts (AWS): the latest of them bounds the lines as
    # a delivery time would; an arrival time given by the source bounds them too.
    bounds = _start_bounds(limits, _earliest(delivered, None if stream_ms is None
                                             else stream_ms // 1000), not_after)
    pending.append(_Lines(default_fmt, lines, stream, *bounds, locate, sum(map(len, lines))))


def _name(value) -> str:
    return "?" if value is None else excerpt(str(value)[:EXCERPT_CHARS])


def _parse_chunk(chunk, source, limits, result, delivered, pending):
    """A chunk of an S3 file, as written by `job.replay`: {"source": file path, "first_line":
    line number of lines[0], "format", "lines"} and optionally "delivered" (AWS's delivery
    stamp, epoch seconds), "not_after" (the file's modification time), "long" ([position,
    excerpt] of lines longer than flows.max_line_bytes, blank in "lines") and "ignore" (the
    header's fields this release does not know, which staging chose to drop)."""
    try:
        text = chunk["format"]
        if len(text.split(None, limits.max_fields_per_line)) > limits.max_fields_per_line:
            raise LineError("bad_chunk")
        fmt = FlowFormat.parse(text)
        lines = chunk["lines"]
        source = chunk.get("source", source)
        first_line = chunk.get("first_line", 1)
        stamp = chunk.get("delivered")
        not_after = chunk.get("not_after")
        long_lines = chunk.get("long", [])
        ignored = chunk.get("ignore", [])
    except (KeyError, TypeError, AttributeError, FormatError):
        raise LineError("bad_chunk") from None
    if isinstance(lines, list):
        try:
            # Joined in C, an eighth of the time of a loop over the items: that each is a
            # string, and their characters.
            size = len("".join(lines))
        except TypeError:
            # What the per-line parser always failed on (empty items it skips): checked before
            # the lines wait to be parsed with other records'.
            raise LineError("malformed", "an item of lines that is not a string") from None
    if not (isinstance(lines, list) and isinstance(source, str) and _is_int(first_line)
            and isinstance(ignored, list) and set(fmt.unknown) <= set(map(str, ignored))
            and all(_is_int(t) or t is None for t in (stamp, not_after))
            and isinstance(long_lines, list)
            and all(isinstance(x, list) and len(x) == 2 and _is_int(x[0])
                    and isinstance(x[1], str) for x in long_lines)):
        raise LineError("bad_chunk")
    locate = _Location(source, first_line)
    for position, text in long_lines:
        result.counts["lines_in"] += 1
        result.dead("line_too_long", locate(position), text,
                    f"longer than flows.max_line_bytes ({limits.max_line_bytes})")
    pending.append(_Lines(fmt, lines, source,
                          *_start_bounds(limits, _earliest(delivered, stamp), not_after), locate,
                          size))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _staged(doc, source, default_fmt, limits, result, delivered, pending):
    """A JSON record staged by job.replay: a file chunk, a CloudWatch record read from a file
    ({"source", "record": base64, "delivered"?, "not_after"?}), or a file that could not be
    staged ({"source", "error": one of FILE_REASONS, "excerpt", "detail"})."""
    if not isinstance(doc, dict):
        raise LineError("bad_chunk")
    if "lines" in doc:
        _parse_chunk(doc, source, limits, result, delivered, pending)
        return
    where = doc.get("source")
    if not isinstance(where, str):
        raise LineError("bad_chunk")
    if "error" in doc:
        reason, detail = doc["error"], doc.get("detail", "")
        if reason not in FILE_REASONS or not isinstance(detail, str):
            raise LineError("bad_chunk")
        result.dead(reason, where, doc.get("excerpt") or "", detail)
        return
    record, stamp, not_after = doc.get("record"), doc.get("delivered"), doc.get("not_after")
    if not (isinstance(record, str) and all(_is_int(t) or t is None for t in (stamp, not_after))):
        raise LineError("bad_chunk")
    _parse_encoded(record, where, default_fmt, limits, result, _earliest(delivered, stamp),
                   not_after, pending)


# The Kinesis Producer Library's aggregated records start so: a stream a KPL producer writes
# to holds no CloudWatch Logs subscription records.
KPL_MAGIC = b"\xf3\x89\x9a\xc2"


def _not_gzip_text(raw: bytes) -> str:
    if raw.startswith(KPL_MAGIC):
        return ("a Kinesis Producer Library aggregated record (it starts f3 89 9a c2), not a "
                "CloudWatch Logs subscription record (gzip, 1f 8b): flow logs reach the stream "
                "from CloudWatch Logs' subscription filter")
    return "does not start as gzip data does (1f 8b)"


def _parse_encoded(raw, source, default_fmt, limits, result, delivered, not_after, pending):
    """A CloudWatch record: gzip bytes, or the same as base64 text."""
    try:
        if isinstance(raw, str):
            try:
                raw = base64.b64decode(raw.strip(), validate=True)
            except (binascii.Error, ValueError) as err:
                raise LineError("bad_base64", str(err)) from None
        if not raw.startswith(GZIP_MAGIC):
            raise LineError("not_gzip", _not_gzip_text(raw))
        members, rest = _gunzip_capped(raw, limits.max_decompressed_bytes)
    except LineError as err:
        result.dead(err.reason, source, raw, err.detail)
        return
    except (ValueError, TypeError, AttributeError) as err:
        result.dead("malformed", source, raw, _error_text(err))
        return
    # CloudWatch writes one gzip member a record; a record of several is read as their
    # envelopes, one after another, and what follows the last good one is dead-lettered.
    for payload in members:
        try:
            if payload.startswith(GZIP_MAGIC):
                raise LineError("not_json", "gzip data once decompressed (it starts 1f 8b): "
                                            "the record is compressed twice")
            if _too_many_values(payload):
                raise LineError("too_large", f"more JSON values than {len(payload)} bytes hold "
                                             "events with flows")
            # Only a CloudWatch envelope: a staged chunk names its own source and format,
            # which a producer on the stream must not choose.
            _parse_cloudwatch(_json(payload), payload, source, default_fmt, limits, result,
                              delivered, not_after, pending)
        except LineError as err:
            result.dead(err.reason, source, raw, err.detail)
        except (ValueError, TypeError, AttributeError, RecursionError) as err:
            result.dead("malformed", source, raw, _error_text(err))
    if rest is not None:
        result.dead(rest.reason, source, raw, rest.detail)


def _error_text(err: Exception) -> str:
    return f"{type(err).__name__}: {excerpt(str(err))[:120]}"


# What a record's header may hold besides its events ('{', '[' or ',' in names and filters).
VALUE_MARKS_SPARE = 1024


def _too_many_values(payload: bytes) -> bool:
    """Whether a decompressed payload holds more JSON values than its size holds events with
    flows (each SHORTEST_EVENT bytes, EVENT_VALUE_MARKS values). Decoded, a value takes tens
    of bytes whatever its text ("", 0, [] take 1 to 3): a record of tiny events, or of a list
    of them, would take up to ~30x its size in memory, so it is refused before it is
    decoded."""
    marks = payload.count(b"{") + payload.count(b"[") + payload.count(b",")
    return marks > len(payload) * EVENT_VALUE_MARKS // SHORTEST_EVENT + VALUE_MARKS_SPARE


class LongNumber:
    """A JSON integer of more decimal digits than int() reads (4,300), as json_loads gives it:
    no field takes one, and its value is compared as one beyond every range (`value`), as such
    a number in a flow line is (_convert_long_numbers)."""
    __slots__ = ("negative",)

    def __init__(self, negative: bool):
        self.negative = negative

    @property
    def value(self) -> int:
        return -BEYOND if self.negative else BEYOND

    def __float__(self):
        # An event's dead letter writes it as -1e999's (-Infinity): as its description it was
        # a string there, a string message to the eye.
        return -math.inf if self.negative else math.inf

    def __str__(self):
        return f"a{' negative' if self.negative else ''} number of more than {_INT_DIGITS:,} digits"


def _json_int(digits: str):
    try:
        return int(digits)
    except ValueError:
        return LongNumber(digits.startswith("-"))


def json_loads(text, object_pairs_hook=None):
    """json.loads, except that an integer of more digits than int() reads is a LongNumber:
    json.loads refused the whole text for it ('Exceeds the limit (4300 digits) for integer
    string conversion'), so one such number in an event's timestamp lost its record's every
    line, and one in a changelog line's key the job does not read refused the line, where the
    vectorised parse of a larger chunk applied it. Read again only then: an integer read by a
    Python call each is slower."""
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError:
        return json.loads(text, object_pairs_hook=object_pairs_hook, parse_int=_json_int)


def _json(payload: bytes, object_pairs_hook=None):
    """A decompressed envelope's JSON. Bytes that are not UTF-8 are read as U+FFFD, as a
    replayed file's are (job.replay): the event holding them fails alone, not its record."""
    try:
        return json_loads(payload, object_pairs_hook=object_pairs_hook)
    except UnicodeDecodeError:
        pass
    except ValueError as err:
        raise LineError("not_json", json_error(err)) from None
    try:
        return json_loads(payload.decode("utf-8", "replace"), object_pairs_hook=object_pairs_hook)
    except ValueError as err:
        raise LineError("not_json", json_error(err)) from None


# The keys an envelope is read by.
_READ_KEYS = frozenset(("messageType", "logEvents", "message"))


def _check_repeats(payload: bytes, message_keys: int) -> None:
    """Refuses (not_cloudwatch) a payload with a key it is read by (_READ_KEYS) twice in one
    object: JSON keeps the last, and the events or the line before it were lost without a
    count. Without an escape (a backslash), which no flow-log line needs, each key is spelt
    literally (a quote within a string would be escaped): `"message` begins messageType and
    the message key of each event kept, `message_keys` of them, and a repeat's keys are there
    too; `"logEvents"` is there once (a repeat whose events had no message passed: a review).
    Any other count, or an escape, is looked at closely. A scan for a byte (memchr) and
    two counts, in C: about 16 us for a record of 100 lines (22 KB) (`\\u` looked for took 13 more)."""
    if (b"\\" not in payload and payload.count(b'"message') == message_keys + 1
            and payload.count(b'"logEvents"') == 1):
        return
    try:
        _json(payload, _keys_once)
    except _RepeatedKey as repeated:
        raise LineError("not_cloudwatch", f"the key {repeated.key} twice in one object "
                                          "(JSON keeps the last)") from None


class _RepeatedKey(Exception):
    def __init__(self, key):
        super().__init__(key)
        self.key = key


def _keys_once(pairs) -> dict:
    seen = set()
    for key, _ in pairs:
        if key in _READ_KEYS:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return dict(pairs)


def json_error(err: ValueError) -> str:
    """A JSON decoder's complaint, where it has one."""
    if isinstance(err, json.JSONDecodeError):
        # Two of its messages end "at" already ("Invalid control character at"): said twice.
        return f"{err.msg.removesuffix(' at')} at character {err.pos}"
    return excerpt(str(err))[:120]


def parse_record(raw, source: str, default_fmt: FlowFormat, limits: Limits,
                 delivered: int = None, *,
                 vectorise_from: float = parse_columns.MIN_LINES) -> ParseResult:
    """Any input record (gzip CloudWatch envelope as bytes or base64, or a record staged by
    job.replay as JSON text, or that record as the dict job.replay.file_records gives, read
    as its JSON text would be; a staged line of several records as those) to flow groups, dead
    letters and counts. `source` names the record in dead letters (e.g.
    `kinesis:<stream>/<shard>/<sequence number>`); `delivered` (epoch seconds) is when it was
    delivered (e.g. its Kinesis arrival time), which bounds the flows' starts
    (flows.max_ahead_seconds, flows.max_clock_skew_seconds). `vectorise_from`: the fewest
    lines a chunk takes the vectorised parser with (see `parse_lines`)."""
    records = (staged_records(raw, source, delivered) if isinstance(raw, str)
               else [(raw, source, delivered)])
    return parse_records(records, default_fmt, limits, vectorise_from=vectorise_from)


def parse_records(records, default_fmt: FlowFormat, limits: Limits, *,
                  vectorise_from: float = parse_columns.MIN_LINES) -> ParseResult:
    """`parse_batches` of `records` as one result."""
    merged = ParseResult()
    for result in parse_batches(records, default_fmt, limits, vectorise_from=vectorise_from):
        _add(merged, result)
    return merged


def parse_batches(records, default_fmt: FlowFormat, limits: Limits, *, batch_lines: int = None,
                  vectorise_from: float = parse_columns.MIN_LINES):
    """`parse_record` over several records, each given as (raw, source, delivered): the same
    flows, dead letters and counts as theirs added up, but the lines of a batch of records of
    one format are parsed together and grouped by window across those records (a group is named
    after the first record it holds flows of). Yields a ParseResult a batch, at least one; a
    record's counts and dead letters are in its lines' batch.

    A batch's lines hold at most limits.max_decompressed_bytes characters, what one record may
    decompress to, and as many lines as one record may hold events (SHORTEST_EVENT;
    `batch_lines` when fewer): however well many records compress and however short their
    lines, a batch holds no more than one record's worth, and a group's sums fit a 64-bit
    integer as a record's do (job.config). A record of more lines (a staged chunk of short
    ones) is a batch alone."""
    most = limits.max_decompressed_bytes // SHORTEST_EVENT
    batch_lines = most if batch_lines is None else min(batch_lines, most)
    result, pending, size, lines, given = ParseResult(), [], 0, 0, False
    for raw, source, delivered in records:
        record, held = ParseResult(), len(pending)
        _decode_record(raw, source, default_fmt, limits, delivered, record, pending)
        # A record of several gzip members adds each one's lines: counting only the last let
        # records of a large member then a small one make batches of any size.
        added = pending[held:]
        if added:
            added_size = sum(s.size for s in added)
            added_lines = sum(len(s.lines) for s in added)
            if held and (size + added_size > limits.max_decompressed_bytes
                         or lines + added_lines > batch_lines):
                del pending[held:]
                yield _parsed(pending, limits, result, vectorise_from)
                given = True
                result, pending, size, lines = ParseResult(), added, 0, 0
            size += added_size
            lines += added_lines
        _add(result, record)
    if pending or result.counts or not given:
        yield _parsed(pending, limits, result, vectorise_from)


# How a staged line of several CloudWatch records begins (job.replay.stage_file writes them).
PACK_PREFIX = '{"records":['


def staged_records(text: str, source: str = "record", delivered: int = None) -> list:
    """A staged line (job.replay) as the records parse_batches takes: a line of several
    CloudWatch records, `{"records": [...]}`, as each of them (each names itself); any other
    line as itself (one that cannot be read is dead-lettered as one record)."""
    if text.startswith(PACK_PREFIX):
        try:
            records = json.loads(text)["records"]
        except (ValueError, KeyError, TypeError, RecursionError):
            records = None
        if isinstance(records, list) and records and all(isinstance(r, dict) for r in records):
            return [(record, source, delivered) for record in records]
    return [(text, source, delivered)]


# What the head of a staged line (job.replay: "source" first, "first_line" before the lines)
# says of where it came from.
_STAGED_SOURCE = re.compile(rb'"source":\s*("(?:[^"\\]|\\.)*")')
_STAGED_FIRST_LINE = re.compile(rb'"first_line":\s*([0-9]+)')
STAGED_HEAD = 1 << 16


def staged_place(raw: bytes, default: str) -> str:
    """Where a staged line cut too long to parse came from, as its head names it: a chunk's
    `source:first_line`, a CloudWatch record's `source` (a pack's first's); else `default`."""
    head = bytes(raw[:STAGED_HEAD])
    found = _STAGED_SOURCE.search(head)
    if found is None:
        return default
    try:
        source = json.loads(found.group(1))
    except ValueError:
        return default
    first = _STAGED_FIRST_LINE.search(head, found.end())
    return source if first is None else f"{source}:{first.group(1).decode()}"


def staged_line_records(raw, max_line: int) -> list:
    """A staged line's bytes (connectors.files.file_sources) or text as staged_records gives
    them; one longer than `max_line` (the reader cut it one byte past, the rest never held:
    connectors.staged.staged_flows_max) as one record too_large, placed where its head says
    (staged_place)."""
    if len(raw) > max_line:
        where = staged_place(raw if isinstance(raw, bytes) else raw.encode(), "record")
        return [({"source": where, "error": "too_large", "excerpt": excerpt(raw),
                  "detail": f"a staged line of more than {max_line} bytes, the longest staging "
                            f"writes with flows.max_decompressed_bytes, flows.max_line_bytes "
                            f"and flows.chunk_lines"}, where, None)]
    return staged_records(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)


def _add(total: ParseResult, result: ParseResult) -> None:
    total.groups += result.groups
    room = max(0, DEAD_LETTERS_KEPT - len(total.dead_letters))
    total.dead_letters += result.dead_letters[:room]
    if len(result.dead_letters) > room:
        total.counts["dead_letters_not_kept"] += len(result.dead_letters) - room
    total.counts.update(result.counts)
    total.no_traffic.update(result.no_traffic)


# Flows of a group at most: a group crosses to the JVM as one element, and PyFlink holds the
# elements a Python call returns until its task takes them. A record at
# flows.max_decompressed_bytes made one group of 60 MB (466,000 flows); three such records ran
# the JVM's heap out.
MAX_GROUP_FLOWS = 1 << 15


# The counters of the lines a parse takes: their values of unknown fields are the ones dropped
# (a line dead-lettered whole keeps them in its dead letter).
_TAKEN = ("flows_parsed", "no_data", "skip_data")


def _parsed(pending, limits, result, vectorise_from) -> ParseResult:
    by_format = {}
    for lines in pending:
        by_format.setdefault(lines.fmt, []).append(lines)
    for fmt, sets in by_format.items():
        taken = sum(result.counts[c] for c in _TAKEN)
        _parse_sets(fmt, sets, limits, result, vectorise_from)
        if fmt.unknown:   # values dropped: a name given twice is two columns
            result.counts["unknown_fields_ignored"] += (fmt.width - len(fmt.columns)) * (
                sum(result.counts[c] for c in _TAKEN) - taken)
    result.groups = [part for group in result.groups for part in group.parts(MAX_GROUP_FLOWS)]
    return result


def _decode_record(raw, source, default_fmt, limits, delivered, result, pending) -> None:
    """A record's lines (in `pending`, to be parsed) or its dead letter (in `result`)."""
    result.counts["records_in"] += 1
    if isinstance(raw, dict) or isinstance(raw, str) and raw.lstrip().startswith("{"):
        try:
            _staged(raw if isinstance(raw, dict) else json.loads(raw), source, default_fmt,
                    limits, result, delivered, pending)
        except LineError as err:
            result.dead(err.reason, source, _staged_line(raw), err.detail)
        except ValueError as err:
            result.dead("not_json", source, _staged_line(raw), json_error(err))
        except (TypeError, AttributeError, RecursionError) as err:
            result.dead("malformed", source, _staged_line(raw), _error_text(err))
        return
    _parse_encoded(raw, source, default_fmt, limits, result, delivered, None, pending)


def _staged_line(record) -> str:
    """A staged record as its line (what a dead letter quotes)."""
    return json.dumps(record, separators=(",", ":")) if isinstance(record, dict) else record
