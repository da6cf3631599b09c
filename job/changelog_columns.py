"""Vectorised parsing of a chunk of changelog lines: pyarrow's JSON reader decodes the objects
into columns, arrow compute checks them, and the events are built from the columns.

Pure Python with pyarrow (no pyflink). Exactness is the rule, as in job.parse_columns: a line
becomes an event here only when job.ownership.parse_event would make the same event of it;
every other line is handed back by position, and parse_event gives it its event or its
rejection. A snapshot of a large estate is a changelog line per IP: json.loads and the checks
of each line in Python were about half of loading one (docs/performance.md).
"""
import io
import re
from itertools import repeat

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import json as pa_json

from flowdredge.job.parse_columns import IPV4_PATTERN
from flowdredge.schemas.metadata import (ABSENT, ASSIGN, HEARTBEAT, INTERFACE_VPC_ID,
                                         OWNER_FIELDS, OWNER_VALUE_BREAKS, UNASSIGN,
                                         VPC_ID_PATTERN)

# Below this many lines the fixed cost of a call (about 0.7 ms: the reader's 0.2, a few dozen
# arrow calls) outweighs what it saves per line (measured crossover: 500 to 1,000 lines; at
# 2,000 and more 0.75x the time of parse_event's).
MIN_LINES = 1024

# The fields parse_event reads, with the only types it accepts without a conversion of its
# own: a value of another JSON type (a float ts, a number as an owner field) fails the read,
# and the chunk goes line by line. Other fields are ignored, as parse_event ignores them. A
# line with a vpc_id (a VPC_ASSIGN's, or one parse_event refuses), or an interface_vpc_id that is
# not a VPC id, is left to parse_event.
_SCHEMA = pa.schema([("type", pa.string()), ("ts", pa.int64()), ("ip", pa.string()),
                     ("vpc_id", pa.string()), (INTERFACE_VPC_ID, pa.string())]
                    + [(f, pa.string()) for f in OWNER_FIELDS])
_PARSE = pa_json.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore",
                              newlines_in_values=False)
_READ = pa_json.ReadOptions(use_threads=False, block_size=1 << 30)
_TYPES = pa.array([ASSIGN, UNASSIGN, HEARTBEAT])
_NO_VALUE = pa.array(["", ABSENT])


# A line holding one unescaped goes to parse_event (a C0 one is JSON to neither reader).
breaks_text = re.compile(OWNER_VALUE_BREAKS).search
_C1_BYTES = re.compile(b"\xc2[\x80-\x9f]").search


def _may_break_text(text: str, data: bytes) -> bool:
    """Whether a chunk's lines (`text`, and as UTF-8 `data`) may hold one of breaks_text's
    characters unescaped that Arrow's reader takes (not C0: it refuses the chunk), by C calls
    of about 0.01 us a line (breaks_text over them took 1 us, a tenth of the parse): DEL; in
    text that is not ASCII U+2028, U+2029, or a C1 character (UTF-8 c2 80-9f), looked for only
    after a c2 byte (U+0080-U+00BF: a no-break space, a degree sign...)."""
    if "\x7f" in text:
        return True
    if text.isascii():
        return False
    if "\u2028" in text or "\u2029" in text:
        return True
    return b"\xc2" in data and _C1_BYTES(data) is not None


# A line nested deeper than json.loads goes (about a thousand levels) is not_json to parse_event
# and was an event to Arrow, so whether it was one depended on its chunk's size (a fuzz
# review). parse_event decides lines of this many brackets or more: fewer nest too little.
FAST_BRACKETS = 256


def parse_lines(lines: list, positions: list, earliest_ms: int, latest_ms: int, normalise,
                share=None):
    """(events by position, in position order, as tuples of job.ownership.MetaEvent's fields;
    the positions left to parse_event), or None when the reader refuses
    the chunk (a line that is not one JSON object, a field of another type, a key twice...):
    then every line goes to parse_event.

    `positions`: the lines to parse, none blank, too long or holding a lone surrogate (bytes
    that are not UTF-8: job.ownership dead-letters those lines first). `normalise`: an address
    that is not canonical IPv4 -> its form as parse_event keeps it, or None if it refuses it.
    `share` (a dict's setdefault, as parse_event's): the owner values are its objects, equal
    values one object across calls too (else within this call only). Only lines that are an
    object from their first character to their last, with no backslash (escapes: parse_event's
    json.loads decides them), no line break and fewer than FAST_BRACKETS brackets, are read
    here."""
    fast, rest = [], []
    for i in positions:
        line = lines[i]
        if line[0] == "{" and line[-1] == "}" and "\\" not in line and "\n" not in line \
                and "\r" not in line and (len(line) < FAST_BRACKETS
                                           or line.count("[") + line.count("{") < FAST_BRACKETS):
            fast.append(i)
        else:
            rest.append(i)
    if not fast:
        return {}, rest
    text = "\n".join([lines[i] for i in fast])
    data = text.encode("utf-8")
    if _may_break_text(text, data):
        # parse_event refuses an owner value holding one (not_text): such lines go to it.
        held = [i for i in fast if breaks_text(lines[i])]
        if held:
            rest += held
            held = set(held)
            fast = [i for i in fast if i not in held]
            if not fast:
                return {}, sorted(rest)
            data = "\n".join([lines[i] for i in fast]).encode("utf-8")
    try:
        table = pa_json.read_json(io.BytesIO(data), read_options=_READ, parse_options=_PARSE)
    except pa.ArrowInvalid:
        return None
    # Two objects on one line read as two rows: the lines and rows must pair one to one.
    if table.num_rows != len(fast):
        return None
    table = table.combine_chunks()
    kind, ts, ip = table.column("type"), table.column("ts"), table.column("ip")
    # Kleene logic: a HEARTBEAT's missing address must not make its row null.
    in_range = pc.and_kleene(pc.greater_equal(ts, earliest_ms), pc.less(ts, latest_ms))
    heartbeat = pc.equal(kind, HEARTBEAT)
    change = pc.and_kleene(pc.is_in(kind, value_set=_TYPES), pc.invert(heartbeat))
    # A change's address as ipaddress writes it: canonical IPv4 as it is, others (IPv6,
    # about a tenth of a large estate's) once per distinct value through `normalise`; those
    # it refuses go to parse_event for their rejection.
    canonical = pc.match_substring_regex(ip, IPV4_PATTERN)
    other = pc.unique(pc.filter(ip, pc.fill_null(pc.and_kleene(change, pc.invert(canonical)),
                                                 False))).drop_null()
    written = {}
    for text in _values(other):
        address = normalise(text)
        if address is not None:
            written[text] = address
    if written:
        canonical = pc.or_kleene(canonical, pc.is_in(ip, value_set=pa.array(list(written))))
    interface_vpc = table.column(INTERFACE_VPC_ID)
    good = pc.fill_null(pc.and_kleene(in_range, pc.or_kleene(
        heartbeat, pc.and_kleene(pc.and_kleene(change, canonical), pc.and_kleene(
            pc.is_null(table.column("vpc_id")), pc.or_kleene(
                pc.is_null(interface_vpc),
                pc.match_substring_regex(interface_vpc, f"^{VPC_ID_PATTERN}$")))))), False)
    at = np.array(fast)
    rest += at[~good.to_numpy(zero_copy_only=False)].tolist()
    events = {}
    kinds = 0
    # Per type, its good rows' events built by zip in C calls (through numpy: to_pylist took
    # twenty times as long).
    for kind_name in (ASSIGN, UNASSIGN, HEARTBEAT):
        rows = pc.and_(good, pc.fill_null(pc.equal(kind, kind_name), False))
        taken = table.filter(rows)
        if not taken.num_rows:
            continue
        kinds += 1
        stamps = _values(taken.column("ts"))
        if kind_name == ASSIGN:
            owners = zip(*[_owner_values(taken.column(f), share) for f in OWNER_FIELDS])
            vpcs = taken.column(INTERFACE_VPC_ID)
            made = zip(repeat(ASSIGN), stamps, _addresses(taken, written), owners,
                       repeat(None) if vpcs.null_count == len(vpcs) else
                       [v or None for v in _shared_values(pc.fill_null(vpcs, ""), share)])
        elif kind_name == UNASSIGN:
            made = zip(repeat(UNASSIGN), stamps, _addresses(taken, written), repeat(None),
                       repeat(None))
        else:
            made = zip(repeat(HEARTBEAT), stamps, repeat(""), repeat(None), repeat(None))
        events.update(zip(at[rows.to_numpy(zero_copy_only=False)].tolist(), made))
    if kinds > 1:
        events = {position: events[position] for position in sorted(events)}
    rest.sort()
    return events, rest


def _values(column) -> list:
    return column.to_numpy(zero_copy_only=False).tolist()


def _addresses(rows, written: dict) -> list:
    addresses = _values(rows.column("ip"))
    if written:
        get = written.get
        return [get(a, a) for a in addresses]
    return addresses


def _owner_values(column, share=None) -> list:
    """An owner field's values as _shared_values gives them, ABSENT for a null, an empty value
    or one of white space only (utf8_is_space is str.isspace, code point for code point)."""
    encoded = pc.fill_null(column, ABSENT).combine_chunks().dictionary_encode()
    values = encoded.dictionary
    distinct = np.array(values.to_numpy(zero_copy_only=False), dtype=object)
    # ABSENT's own entry too: every absent value of a chunk one object, as before.
    distinct[pc.or_(pc.is_in(values, value_set=_NO_VALUE), pc.utf8_is_space(values)).to_numpy(
        zero_copy_only=False)] = ABSENT
    return _through(distinct, share)[encoded.indices.to_numpy()].tolist()


def _shared_values(column, share=None) -> list:
    """The values, each distinct one a single object (the owner values repeat)."""
    encoded = column.combine_chunks().dictionary_encode()
    distinct = np.array(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    return _through(distinct, share)[encoded.indices.to_numpy()].tolist()


def _through(distinct: np.ndarray, share) -> np.ndarray:
    """The distinct values as `share` holds them (None: as they are)."""
    if share is not None:
        distinct[:] = [share(v, v) for v in distinct.tolist()]
    return distinct
