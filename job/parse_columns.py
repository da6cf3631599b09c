"""Vectorised parsing of a chunk of flow-log lines: pyarrow's CSV reader cuts and types the
columns, numpy validates them and groups the rows by window.

Pure Python with pyarrow and numpy (no pyflink). Exactness is the rule: a line is accepted here
only when job.parse's per-line parser would turn it into the same flow; every other line
(NODATA/SKIPDATA, anything malformed, out-of-range starts) is handed back by position, and the
per-line parser gives it its count or dead-letter reason.
"""
import functools
import io
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from flowdredge.schemas.flowlog import MAX_FLOW_SECONDS


# Below this many lines the fixed cost of a call (about 0.7 ms: the reader, a few dozen arrow
# and numpy calls) outweighs what it saves per line (measured crossover: 300 to 500 lines).
MIN_LINES = 512

# Tokens on which str.split() and the CSV reader cut alike and Python's int() and arrow's int64
# agree (arrow also reads "0x1f", which int() refuses; 18 digits never overflow int64).
_TEXT_TOKEN = "[!-~]+"
_INT_TOKEN = "(?:-|-?[0-9]{1,18})"
_INT64_MAX = 2**63 - 1
# Exactly the IPv4 addresses ipaddress.ip_address() accepts (no leading zeros); other values,
# IPv6 among them, are checked one distinct value at a time.
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_PATTERN = rf"^(?:{_OCTET}\.){{3}}{_OCTET}$"


class _Layout:
    """Reader options and the line pattern of one flow-log format. The reader cuts every split
    column (`c<j>`); the positions below are those of the flow tuple (fmt.fields), whose field i
    is column `columns[i]`."""

    def __init__(self, fmt):
        int_columns = {fmt.columns[i] for i in fmt.int_positions}
        # Positional names: a format may name a field this release does not know twice.
        names = [f"c{j}" for j in range(fmt.width)]
        self.read = csv.ReadOptions(column_names=names, use_threads=False)
        self.parse = csv.ParseOptions(delimiter=" ", quote_char=False, escape_char=False,
                                      ignore_empty_lines=False)
        self.convert = csv.ConvertOptions(
            column_types={n: pa.int64() if j in int_columns else pa.string()
                          for j, n in enumerate(names)},
            null_values=["-"], strings_can_be_null=True, quoted_strings_can_be_null=False)
        self.screen = re.compile(" ".join(_INT_TOKEN if j in int_columns else _TEXT_TOKEN
                                          for j in range(fmt.width))).fullmatch
        self.texts = [j for j in range(fmt.width) if j not in int_columns]
        self.columns = fmt.columns
        self.names = [f"f{i}" for i in range(len(fmt.columns))]
        self.ints = set(fmt.int_positions)
        self.width = len(fmt.columns)
        self.addr_positions = fmt.addr_positions
        self.ranges = fmt.ranges
        self.count_positions = fmt.count_positions
        # A field's allowed values; of log-status only OK: NODATA and SKIPDATA lines are the
        # per-line parser's (it counts them).
        self.choices = [(i, pa.array(["OK"] if i == fmt.status_pos else sorted(allowed)))
                        for i, allowed in fmt.choices]
        self.start_pos = fmt.start_pos
        self.end_pos = fmt.end_pos
        self.required_addr = (fmt.pos["srcaddr"], fmt.pos["dstaddr"])

    def table(self, text: bytes) -> pa.Table:
        return csv.read_csv(io.BytesIO(text), read_options=self.read, parse_options=self.parse,
                            convert_options=self.convert).combine_chunks()


@functools.lru_cache(maxsize=1000)
def _layout(fmt) -> _Layout:
    return _Layout(fmt)


@dataclass
class Chunk:
    """What the vectorised path accepted, and the positions it leaves to the per-line parser."""
    groups: list      # (window_start, max_start, a RecordBatch of its flows in line order), by
                      # first line; the batch's columns are the fields of the format's flows
    positions: list   # line position of each accepted flow, in the order of `groups`' flows
    rest: list        # line positions for the per-line parser, ascending


def _vouched_text(text: str, n_lines: int, max_line: int):
    """The chunk's bytes if no line holds whitespace other than spaces (so that str.split() and
    the CSV reader cut it alike, once `_has_empty_field` rules out doubled spaces) and none is
    longer than `max_line`, else None."""
    if not text or not text.isascii():
        return None
    data = text.encode("ascii")
    # One temporary at a time: a second one of this size costs more than the comparisons.
    codes = np.frombuffer(data, np.uint8)
    # The only control characters allowed are the n - 1 newlines that joined the lines (DEL,
    # which the reader takes as text, is the per-line parser's not_text too).
    if np.count_nonzero(codes < 32) != n_lines - 1 or b"\x7f" in data:
        return None
    if len(data) > max_line:
        ends = np.concatenate(([-1], np.flatnonzero(codes == 10), [len(data)]))
        if (np.diff(ends) - 1 > max_line).any():
            return None
    if np.count_nonzero(codes == ord("x")) or np.count_nonzero(codes == ord("X")):
        if b"0x" in data or b"0X" in data:   # arrow reads hex, int() does not
            return None
    return data


def _has_empty_field(layout, table) -> bool:
    """An empty field is a space doubled, leading or trailing, which str.split() skips (an empty
    line or an empty number fails the reader instead)."""
    return any(pc.any(pc.equal(table.column(j), "")).as_py() for j in layout.texts)


def line_bounds(ranges: list, sizes: list):
    """Per-line [earliest, latest) for `parse_chunk` from each record's range and line count:
    an empty range as (0, 0), so the arrays hold int64 whatever a range's ends."""
    ranges = [(lo, hi) if lo < hi else (0, 0) for lo, hi in ranges]
    return (np.repeat(np.array([lo for lo, _ in ranges], np.int64), sizes),
            np.repeat(np.array([hi for _, hi in ranges], np.int64), sizes))


def parse_chunk(fmt, lines: list, earliest, latest, window_seconds: int,
                address_form, max_line: int, max_flow_bytes: int) -> "Chunk | None":
    """Flows of `lines` whose start is in [earliest, latest), grouped by window, no line longer
    than `max_line`, packets and bytes at most `max_flow_bytes`; None when an item is not a
    string (the per-line parser fails on it as it always did). `earliest` and `latest` are
    ints, or arrays of one per line (`line_bounds`: lines of several records)."""
    layout = _layout(fmt)
    try:
        text = "\n".join(lines)
    except TypeError:
        return None
    table, positions = None, None
    data = _vouched_text(text, len(lines), max_line)
    if data is not None:
        try:
            table = layout.table(data)
        except pa.ArrowInvalid:   # a line with another field count, or a field not a number
            table = None
        # A last line that is empty ends the one before it for the reader: a row short.
        if table is not None and (table.num_rows != len(lines)
                                  or _has_empty_field(layout, table)):
            table = None
    if table is None:
        # Line by line, only the lines the pattern vouches for.
        positions = [i for i, line in enumerate(lines)
                     if len(line) <= max_line and layout.screen(line)]
        if not positions:
            return Chunk([], [], list(range(len(lines))))
        table = layout.table("\n".join([lines[i] for i in positions]).encode("ascii"))
        positions = np.array(positions)
    return _accept(layout, table, positions, len(lines), earliest, latest, window_seconds,
                   address_form, max_flow_bytes)


def _accept(layout, table, positions, n_lines, earliest, latest, window_seconds, address_form,
            max_flow_bytes):
    columns = [table.column(j).chunk(0) for j in layout.columns]
    values, nulls = [], []
    for i, col in enumerate(columns):
        # Only the numbers are compared here, text in Arrow: a str per text value, made for
        # nothing, cost about 0.06 us a flow.
        if i in layout.ints:
            values.append(col.fill_null(0).to_numpy() if col.null_count else col.to_numpy())
        else:
            values.append(None)
        nulls.append(col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None)

    # Every condition under which the per-line parser would not return this flow.
    start = values[layout.start_pos]
    if np.ndim(earliest):
        lo, hi = (earliest, latest) if positions is None else (earliest[positions],
                                                                latest[positions])
    else:
        lo, hi = (earliest, latest) if earliest < latest else (0, 0)
    bad = (start < lo) | (start >= hi)
    for i, allowed in layout.choices:
        known = pc.is_in(columns[i], value_set=allowed).to_numpy(zero_copy_only=False)
        bad |= ~known if nulls[i] is None else ~known & ~nulls[i]
    for i in (layout.start_pos,) + layout.required_addr:
        if nulls[i] is not None:
            bad |= nulls[i]
    # Null numbers read as 0, which every range holds.
    for i, lowest, highest in layout.ranges:
        if lowest > 0 or highest < _INT64_MAX:
            bad |= (values[i] < lowest) | (values[i] > highest)
        else:
            bad |= values[i] < 0
    for i in layout.count_positions:
        bad |= values[i] > max_flow_bytes
    if layout.end_pos is not None:
        # A difference that wraps around needs a negative start or end: a row bad already.
        span = values[layout.end_pos] - start
        wrong = (span < 0) | (span > MAX_FLOW_SECONDS)
        bad |= wrong if nulls[layout.end_pos] is None else wrong & ~nulls[layout.end_pos]
    for i in layout.addr_positions:
        distinct = pc.unique(columns[i]).drop_null()
        unusual = distinct.filter(pc.invert(pc.match_substring_regex(distinct, IPV4_PATTERN)))
        # Invalid, or IPv6 spelt otherwise than canonically: the per-line parser refuses the
        # one and rewrites the other.
        invalid = [a for a in unusual.to_numpy(zero_copy_only=False).tolist()
                   if address_form(a) is not True]
        if invalid:
            bad |= pc.is_in(columns[i], value_set=pa.array(invalid, pa.string())).to_numpy(
                zero_copy_only=False)

    rows = np.arange(len(start))
    if bad.any():
        rows = np.flatnonzero(~bad)
    rest = _rest(positions, np.flatnonzero(bad), n_lines)
    if not len(rows):
        return Chunk([], [], rest)

    # Windows in order of their first line, flows of a window in line order.
    starts = start[rows]
    windows = starts - starts % window_seconds
    unique, first, inverse = np.unique(windows, return_index=True, return_inverse=True)
    by_first = np.argsort(first)
    rank = np.empty_like(by_first)
    rank[by_first] = np.arange(len(by_first))
    group_of_row = rank[inverse]
    order = np.argsort(group_of_row, kind="stable")
    rows = rows[order]
    sizes = np.bincount(group_of_row)
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    max_starts = np.maximum.reduceat(starts[order], bounds[:-1])

    # The groups are slices of one batch, its rows in group order.
    flows = pa.RecordBatch.from_arrays(columns, names=layout.names).take(pa.array(rows))
    groups = [(w, m, flows.slice(b, e - b)) for w, m, b, e in zip(
        unique[by_first].tolist(), max_starts.tolist(), bounds[:-1].tolist(), bounds[1:].tolist())]
    line_positions = (rows if positions is None else positions[rows]).tolist()
    return Chunk(groups, line_positions, rest)


def rows(columns: pa.RecordBatch) -> list:
    """A group's columns as the per-line parser's flows: tuples of int, str and None (through
    numpy: Arrow's to_pylist took 8 us a flow)."""
    return list(zip(*map(column_values, columns.columns)))


def column_values(column: pa.Array) -> list:
    """An Arrow column as a list of int, str and None."""
    if not pa.types.is_integer(column.type):
        return column.to_numpy(zero_copy_only=False).tolist()
    if not column.null_count:
        return column.to_numpy().tolist()
    values = column.fill_null(0).to_numpy().tolist()
    for i in np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False)).tolist():
        values[i] = None
    return values


def _rest(positions, bad_rows, n_lines) -> list:
    if positions is None:
        return bad_rows.tolist()
    screened_out = np.ones(n_lines, bool)
    screened_out[positions] = False
    screened_out[positions[bad_rows]] = True
    return np.flatnonzero(screened_out).tolist()
