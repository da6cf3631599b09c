"""Input records to parsed flow groups: decoding, line parsing, window grouping.

Pure Python (no pyflink). One call handles one input record: a CloudWatch Logs subscription
envelope (gzip JSON) or a chunk of an S3 flow-log file. Nothing in a record can raise out of
`parse_record`: bad items become dead letters with a reason code, good lines still go through.
"""
import base64
import binascii
import gzip
import ipaddress
import json
import zlib
from collections import Counter
from dataclasses import dataclass, field

from job import parse_columns
from schemas.fields import ADDR, INT, LONG
from schemas.flowlog import BY_AWS_NAME, NO_TRAFFIC_STATUSES, PORT_FIELDS, REQUIRED

EXCERPT_CHARS = 256
GZIP_MAGIC = b"\x1f\x8b"
# VPC Flow Logs date from 2015 (AWS's own examples from late 2014): a start outside
# [2010, 2100) is garbage whatever the stream.
EARLIEST_START = 1262304000
LATEST_START = 4102444800

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
    """A flow-log format string or header names an unknown field or lacks a required one."""


_formats: dict = {}


class FlowFormat:
    """The field order of flow-log lines, from a format string or an S3 header line."""

    def __init__(self, aws_names):
        names = tuple(aws_names)
        unknown = [n for n in names if n not in BY_AWS_NAME]
        if unknown:
            raise FormatError(f"unknown flow-log field(s) {unknown} (schemas/flowlog.py lists "
                              f"the known ones)")
        missing = [n for n in REQUIRED if n not in names]
        if missing:
            raise FormatError(f"flow-log format lacks required field(s) {missing}")
        self.names = names
        self.keys = tuple(BY_AWS_NAME[n].key for n in names)
        self.width = len(names)
        self.pos = {n: i for i, n in enumerate(names)}
        self.int_positions = tuple(i for i, n in enumerate(names) if BY_AWS_NAME[n].kind in (INT, LONG))
        self.addr_positions = tuple(i for i, n in enumerate(names) if BY_AWS_NAME[n].kind == ADDR)
        self.port_positions = tuple(self.pos[n] for n in PORT_FIELDS if n in self.pos)
        self.status_pos = self.pos.get("log-status")
        self.start_pos = self.pos["start"]
        self.end_pos = self.pos.get("end")
        self.convert = self._compile_converter()

    def _compile_converter(self):
        """A function from the split fields to the typed tuple, written out for this format:
        one expression instead of a loop per field (most of the parse time). Raises ValueError
        for a number that is not one."""
        ints = set(self.int_positions)
        items = [f"None if p[{i}] == '-' else {'int(p[%d])' % i if i in ints else 'p[%d]' % i}"
                 for i in range(self.width)]
        source = f"def convert(p):\n    return ({', '.join(items)},)\n"
        namespace = {}
        exec(source, namespace)  # noqa: S102 - generated from known field names only
        return namespace["convert"]
    @classmethod
    def parse(cls, text: str) -> "FlowFormat":
        """Accepts `${version} ${account-id} ...` (AWS format string) or a header line.
        Cached: every chunk of a file names its format."""
        fmt = _formats.get(text)
        if fmt is None:
            fmt = cls(tok.strip("${}") for tok in text.split())
            if len(_formats) > 1000:
                _formats.clear()
            _formats[text] = fmt
        return fmt

    def __eq__(self, other):
        return isinstance(other, FlowFormat) and other.names == self.names

    def __hash__(self):
        return hash(self.names)

    def __str__(self):
        return " ".join(self.names)


@dataclass
class FlowGroup:
    """Parsed flows of one record that fall in one window."""
    fmt: FlowFormat
    window_start: int
    max_start: int
    flows: list
    source: str


@dataclass
class ParseResult:
    groups: list = field(default_factory=list)
    dead_letters: list = field(default_factory=list)   # (stage, reason, source, excerpt)
    counts: Counter = field(default_factory=Counter)
    # NODATA / SKIPDATA lines per (window_start, account_id, interface_id, log_status)
    no_traffic: Counter = field(default_factory=Counter)

    def dead(self, reason: str, source: str, raw) -> None:
        if isinstance(raw, (bytes, bytearray)):
            raw = bytes(raw[:EXCERPT_CHARS]).decode("utf-8", "backslashreplace")
        self.dead_letters.append(("flows", reason, source, raw[:EXCERPT_CHARS]))
        self.counts["dead_letter"] += 1
        self.counts[f"dead_letter_{reason}"] += 1


class LineError(ValueError):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


_valid_addresses: dict = {}


def _is_address(text: str) -> bool:
    ok = _valid_addresses.get(text)
    if ok is None:
        try:
            ipaddress.ip_address(text)
            ok = True
        except ValueError:
            ok = False
        if len(_valid_addresses) > 1_000_000:
            _valid_addresses.clear()
        _valid_addresses[text] = ok
    return ok


def parse_line(fmt: FlowFormat, line: str):
    """One flow-log line to a tuple in `fmt` order ('-' becomes None); raises LineError."""
    parts = line.split()
    if len(parts) != fmt.width:
        raise LineError("field_count")
    try:
        flow = fmt.convert(parts)
    except ValueError:
        raise LineError("not_a_number") from None
    if fmt.status_pos is not None and flow[fmt.status_pos] in NO_TRAFFIC_STATUSES:
        return flow
    for i in fmt.addr_positions:
        if flow[i] is not None and not _is_address(flow[i]):
            raise LineError("bad_address")
    for i in fmt.port_positions:
        if flow[i] is not None and not 0 <= flow[i] <= 65535:
            raise LineError("port_out_of_range")
    start = flow[fmt.start_pos]
    if start is None or flow[fmt.pos["srcaddr"]] is None or flow[fmt.pos["dstaddr"]] is None:
        raise LineError("missing_required_field")
    if fmt.end_pos is not None and flow[fmt.end_pos] is not None and flow[fmt.end_pos] < start:
        raise LineError("end_before_start")
    return flow


@dataclass(frozen=True)
class Limits:
    window_seconds: int
    max_decompressed_bytes: int
    # A start further than this from the stream's time (CloudWatch event timestamps, the S3
    # delivery stamp) is garbage.
    max_clock_skew_seconds: int


def parse_lines(fmt: FlowFormat, lines: list, source: str, limits: Limits, result: ParseResult,
                stream_time: int = None) -> None:
    """Parses lines into per-window FlowGroups appended to `result`. `stream_time` (epoch
    seconds) is when the lines were delivered, if known.

    Chunks of `parse_columns.MIN_LINES` lines or more go through the vectorised parser; the
    lines it does not accept go through `parse_line`, which alone decides dead-letter reasons
    and NODATA/SKIPDATA counts. The result is exactly `parse_lines_per_line`'s."""
    chunk = None
    if len(lines) >= parse_columns.MIN_LINES:
        earliest, latest = _start_bounds(limits, stream_time)
        chunk = parse_columns.parse_chunk(fmt, lines, earliest, latest, limits.window_seconds,
                                          _is_address)
    if chunk is None:
        parse_lines_per_line(fmt, lines, source, limits, result, stream_time)
        return
    result.counts["lines_in"] += len(chunk.positions)
    slow = list(_parse_each(fmt, ((i, lines[i]) for i in chunk.rest), source, earliest, latest,
                            limits, result))
    if not slow:
        result.counts["flows_parsed"] += len(chunk.positions)
        result.groups.extend(FlowGroup(fmt, w, m, flows, source) for w, m, flows in chunk.groups)
        return
    # Lines the per-line parser accepted take their place among the others.
    fast = zip(chunk.positions, (flow for _, _, flows in chunk.groups for flow in flows))
    _group(fmt, source, limits.window_seconds, sorted([*fast, *slow], key=_position), result)


def parse_lines_per_line(fmt: FlowFormat, lines: list, source: str, limits: Limits,
                         result: ParseResult, stream_time: int = None) -> None:
    """`parse_lines` one line at a time: for small chunks, and the reference of the vectorised
    parser."""
    earliest, latest = _start_bounds(limits, stream_time)
    _group(fmt, source, limits.window_seconds,
           _parse_each(fmt, enumerate(lines), source, earliest, latest, limits, result), result)


def _start_bounds(limits: Limits, stream_time):
    """[earliest, latest) for a plausible flow start."""
    earliest, latest = EARLIEST_START, LATEST_START
    if stream_time is not None:
        earliest = max(earliest, stream_time - limits.max_clock_skew_seconds)
        latest = min(latest, stream_time + limits.max_clock_skew_seconds)
    return earliest, latest


def _position(numbered):
    return numbered[0]


def _parse_each(fmt, numbered_lines, source, earliest, latest, limits, result):
    """(position, flow) of each good line; dead letters and NODATA/SKIPDATA counts go to
    `result`."""
    counts = result.counts
    status_pos = fmt.status_pos
    start_pos = fmt.start_pos
    for position, line in numbered_lines:
        if not line or line.isspace():
            continue
        counts["lines_in"] += 1
        try:
            flow = parse_line(fmt, line)
        except LineError as err:
            result.dead(err.reason, source, line)
            continue
        if status_pos is not None and flow[status_pos] in NO_TRAFFIC_STATUSES:
            _count_no_traffic(fmt, flow, limits.window_seconds, result)
            continue
        if not earliest <= flow[start_pos] < latest:
            result.dead("timestamp_out_of_range", source, line)
            continue
        yield position, flow


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
    result.counts["flows_parsed"] += sum(len(g.flows) for g in groups.values())
    result.groups.extend(groups.values())


def _count_no_traffic(fmt, flow, window_seconds, result):
    status = flow[fmt.status_pos]
    result.counts["no_data" if status == "NODATA" else "skip_data"] += 1
    start = flow[fmt.start_pos]
    window_start = None if start is None else start - start % window_seconds
    account = flow[fmt.pos["account-id"]] if "account-id" in fmt.pos else None
    interface = flow[fmt.pos["interface-id"]] if "interface-id" in fmt.pos else None
    result.no_traffic[(window_start, account, interface, status)] += 1


def _gunzip_capped(data: bytes, cap: int) -> bytes:
    """Decompresses gzip without ever holding more than `cap` bytes (gzip bombs)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(data, cap + 1)
    if len(out) > cap or inflater.unconsumed_tail:
        raise LineError("too_large")
    if not inflater.eof:
        raise LineError("bad_gzip")   # truncated
    return out


def _parse_cloudwatch(envelope, source, default_fmt, limits, result):
    if not isinstance(envelope, dict) or "messageType" not in envelope:
        raise LineError("not_cloudwatch")
    if envelope["messageType"] == "CONTROL_MESSAGE":
        result.counts["records_skipped"] += 1
        return
    events = envelope.get("logEvents")
    if envelope["messageType"] != "DATA_MESSAGE" or not isinstance(events, list):
        raise LineError("not_cloudwatch")
    source = f"{envelope.get('logGroup', '?')}/{envelope.get('logStream', '?')}"
    lines, stream_ms = [], None
    for event in events:
        message = event.get("message") if isinstance(event, dict) else None
        if isinstance(message, str):
            lines.append(message)
            ts = event.get("timestamp")
            if isinstance(ts, int) and (stream_ms is None or ts > stream_ms):
                stream_ms = ts
        else:
            result.dead("not_cloudwatch", source, json.dumps(event)[:EXCERPT_CHARS])
    parse_lines(default_fmt, lines, source, limits, result,
                None if stream_ms is None else stream_ms // 1000)


def _parse_chunk(chunk, source, limits, result):
    """A chunk of an S3 file, as written by `job.replay`: {"source", "format", "lines"} and,
    when the file name has AWS's delivery stamp, "delivered" (epoch seconds)."""
    try:
        fmt = FlowFormat.parse(chunk["format"])
        lines = chunk["lines"]
        source = chunk.get("source", source)
        delivered = chunk.get("delivered")
    except (KeyError, TypeError, AttributeError, FormatError):
        raise LineError("bad_chunk") from None
    if not isinstance(lines, list) or not isinstance(delivered, (int, type(None))):
        raise LineError("bad_chunk")
    parse_lines(fmt, lines, source, limits, result, delivered)


def parse_record(raw, source: str, default_fmt: FlowFormat, limits: Limits) -> ParseResult:
    """Any input record (gzip CloudWatch envelope as bytes or base64, or a file chunk as JSON
    text) to flow groups, dead letters and counts."""
    result = ParseResult()
    result.counts["records_in"] += 1
    try:
        if isinstance(raw, str):
            text = raw.strip()
            if text.startswith("{"):
                try:
                    chunk = json.loads(text)
                except ValueError:
                    raise LineError("not_json") from None
                _parse_chunk(chunk, source, limits, result)
                return result
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise LineError("bad_base64") from None
        if not raw.startswith(GZIP_MAGIC):
            raise LineError("not_gzip")
        try:
            payload = _gunzip_capped(raw, limits.max_decompressed_bytes)
        except (zlib.error, EOFError, gzip.BadGzipFile):
            raise LineError("bad_gzip") from None
        try:
            envelope = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise LineError("not_json") from None
        if isinstance(envelope, dict) and "lines" in envelope:
            _parse_chunk(envelope, source, limits, result)
        else:
            _parse_cloudwatch(envelope, source, default_fmt, limits, result)
    except LineError as err:
        result.dead(err.reason, source, raw)
    except (ValueError, TypeError, AttributeError, RecursionError):
        result.dead("malformed", source, raw)
    return result
