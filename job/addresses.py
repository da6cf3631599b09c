"""IP addresses as integers. Pure Python (no pyflink).

An IPv4 address is its own 32-bit value: ipaddress writes no other form of one than the
parsers accept (no colon, no leading zeros), so the value gives the text back. Any other
address (IPv6, IPv4-mapped IPv6) is OTHER_ADDRESSES plus its position in a table of them that
travels with the codes (`others`, a dict of address -> position)."""
from socket import AF_INET, inet_pton

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    """ipv4_int of each address (dotted quads), as int64."""
    octets = pc.cast(pc.split_pattern(addresses, ".").flatten(), pa.int64()).to_numpy()
    octets = octets.reshape(-1, 4)
    return (octets[:, 0] << 24) | (octets[:, 1] << 16) | (octets[:, 2] << 8) | octets[:, 3]


def address_code(text: str, others: dict) -> int:
    """The code of one valid address; an address other than IPv4 new to `others` is added."""
    if ":" in text:
        return OTHER_ADDRESSES + others.setdefault(text, len(others))
    return ipv4_int(text)


def address_codes(addresses: pa.Array, others: dict) -> np.ndarray:
    """address_code of each address of a string array (valid ones, no null), as int64."""
    colon = pc.match_substring(addresses, ":").to_numpy(zero_copy_only=False)
    if not colon.any():
        return ipv4_ints(addresses)
    codes = np.empty(len(addresses), np.int64)
    ipv4 = np.flatnonzero(~colon)
    if len(ipv4):
        codes[ipv4] = ipv4_ints(addresses.take(ipv4))
    other = np.flatnonzero(colon)
    codes[other] = [OTHER_ADDRESSES + others.setdefault(a, len(others))
                    for a in addresses.take(other).to_pylist()]
    return codes


def address_text(code: int, others: list) -> str:
    """The address of a code; `others` in position order."""
    if code >= OTHER_ADDRESSES:
        return others[code - OTHER_ADDRESSES]
    return f"{code >> 24}.{code >> 16 & 255}.{code >> 8 & 255}.{code & 255}"
