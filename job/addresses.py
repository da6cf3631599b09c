"""IP addresses as integers. Pure Python (no pyflink).

An IPv4 address is its own 32-bit value: ipaddress writes no other form of one than the
parsers accept (no colon, no leading zeros), so the value gives the text back. Any other
address (IPv6, IPv4-mapped IPv6) is OTHER_ADDRESSES plus its position in a table of them that
travels with the codes (`others`, a dict of address -> position)."""
from socket import AF_INET, inet_pton

import numpy as np
import pyarrow as pa

OTHER_ADDRESSES = 1 << 32


def embeds_ipv4(address) -> bool:
    """Whether an IPv6 address (ipaddress) spells an IPv4 one: IPv4-mapped (::ffff:10.0.0.1) or
    IPv4-compatible (::10.0.0.1, from ::1.0.0.0 on: below, ::2 and the like, no IPv4 host's). A
    VPC writes the IPv4 address itself; taken as IPv6 such an address would match no owner of
    10.0.0.1 and be classed as the internet."""
    return address.ipv4_mapped is not None or 1 << 24 <= int(address) < 1 << 32


def ipv4_int(ip: str) -> int:
    # inet_pton takes exactly the canonical dotted quads, in C: a sixth of the time of a split
    # and four int() calls, once an address for every conversation of a small record's views.
    try:
        return int.from_bytes(inet_pton(AF_INET, ip), "big")
    except OSError:   # another form (leading zeros), which no validated address has
        a, b, c, d = ip.split(".")
        return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)


def ipv4_ints(addresses: pa.Array) -> np.ndarray:
    """ipv4_int of each address (dotted quads, no null), as int64."""
    offsets, data = _offsets_and_data(addresses)
    return _quads(data, offsets[:-1], offsets[1:], _found(data, offsets, _DOT))


def _quads(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, dots: np.ndarray):
    """The values of the dotted quads at [starts, ends) in `data`, their dots at `dots` (three
    each, in order): each part's digits read in numpy, at most three a part (pyarrow's split
    of the parts into strings and cast of those took about a tenth more)."""
    dots = dots.reshape(-1, 3)
    first = np.empty((len(starts), 4), np.int64)
    first[:, 0] = starts
    first[:, 1:] = dots + 1
    after = np.empty((len(starts), 4), np.int64)
    after[:, :3] = dots
    after[:, 3] = ends
    digits = after - first
    last = len(data) - 1
    parts = data[first].astype(np.int64) - _ZERO
    for k in (1, 2):
        following = data[np.minimum(first + k, last)].astype(np.int64) - _ZERO
        parts = np.where(digits > k, parts * 10 + following, parts)
    return (parts[:, 0] << 24) | (parts[:, 1] << 16) | (parts[:, 2] << 8) | parts[:, 3]


_DOT, _ZERO, _COLON = ord("."), ord("0"), ord(":")


def _offsets_and_data(strings: pa.Array) -> tuple:
    """A string array's offsets (one more than its items) and its characters' buffer, as
    numpy arrays."""
    if strings.type != pa.string():
        strings = strings.cast(pa.string())
    _validity, offsets, data = strings.buffers()
    offsets = np.frombuffer(offsets, np.int32, len(strings) + 1, strings.offset * 4)
    return offsets.astype(np.int64), np.frombuffer(data or b"", np.uint8)


def _found(data: np.ndarray, offsets: np.ndarray, char: int) -> np.ndarray:
    """Where the character `char` is in the strings (a pass over their bytes, in numpy)."""
    return np.flatnonzero(data[offsets[0]:offsets[-1]] == char) + offsets[0]


def _items(offsets: np.ndarray, places: np.ndarray) -> np.ndarray:
    """The position of the item each of `places` (in the strings' bytes) is in."""
    return np.searchsorted(offsets, places, "right") - 1


def address_code(text: str, others: dict) -> int:
    """The code of one valid address; an address other than IPv4 new to `others` is added."""
    if ":" in text:
        return OTHER_ADDRESSES + others.setdefault(text, len(others))
    return ipv4_int(text)


def address_codes(addresses: pa.Array, others: dict) -> np.ndarray:
    """address_code of each address of a string array (valid ones, no null), as int64. In
    numpy over the array's bytes: with pyarrow's match_substring for the colons, take for the
    IPv4 addresses and their split, 200 ns an address against 165 (docs/performance.md,
    run 62)."""
    offsets, data = _offsets_and_data(addresses)
    dots = _found(data, offsets, _DOT)
    other = np.unique(_items(offsets, _found(data, offsets, _COLON)))
    if not len(other):
        return _quads(data, offsets[:-1], offsets[1:], dots)
    codes = np.empty(len(addresses), np.int64)
    colon = np.zeros(len(addresses), bool)
    colon[other] = True
    ipv4 = np.flatnonzero(~colon)
    if len(dots) != 3 * len(ipv4):   # an address of another form holds a dot: ::ffff:10.0.0.1
        dots = dots[~colon[_items(offsets, dots)]]
    codes[ipv4] = _quads(data, offsets[ipv4], offsets[ipv4 + 1], dots)
    codes[other] = [OTHER_ADDRESSES + others.setdefault(a, len(others))
                    for a in _texts(offsets, data, other)]
    return codes


def texts(strings: pa.Array, items: np.ndarray) -> list:
    """The strings at positions `items` (no null among them) as str, read from the array's
    bytes: a `take` and `to_pylist` took 1.1 to 7 times as long, for 10 strings to 1,000
    (docs/performance.md, run 63)."""
    return _texts(*_offsets_and_data(strings), items)


def _texts(offsets: np.ndarray, data: np.ndarray, items: np.ndarray) -> list:
    # The bytes of these strings only: an array may be a slice of a larger one.
    raw = data[offsets[0]:offsets[-1]].tobytes()
    starts = (offsets[items] - offsets[0]).tolist()
    return [str(raw[start:end], "utf-8")
            for start, end in zip(starts, (offsets[items + 1] - offsets[0]).tolist())]


def address_text(code: int, others: list) -> str:
    """The address of a code; `others` in position order."""
    if code >= OTHER_ADDRESSES:
        return others[code - OTHER_ADDRESSES]
    return f"{code >> 24}.{code >> 16 & 255}.{code >> 8 & 255}.{code & 255}"
