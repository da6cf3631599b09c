"""IP addresses as integer codes (job.addresses) and the security batch's arrays in their
narrowest types (job.codec): what goes in comes back out."""
import ipaddress
import random

import numpy as np
import pyarrow as pa
import pytest

from flowdredge.job.addresses import (OTHER_ADDRESSES, address_code, address_codes,
                                      address_text, ipv4_int, ipv4_ints, texts)
from flowdredge.job.codec import _packed, _unpacked

pytestmark = pytest.mark.unit

_ADDRESSES = ["0.0.0.0", "255.255.255.255", "10.0.0.1", "192.168.1.200", "2001:db8::1",
              "::ffff:10.0.0.1", "fd00::3", "1.2.3.4", "2001:db8::1"]


def test_an_address_code_gives_its_text_back_and_ipv4_codes_are_their_values():
    rnd = random.Random(3)
    texts = _ADDRESSES + [str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(500)]
    others = {}
    codes = [address_code(text, others) for text in texts]
    assert [address_text(c, list(others)) for c in codes] == texts
    assert all(c == int(ipaddress.ip_address(t)) for c, t in zip(codes, texts) if ":" not in t)
    assert sorted(c for c, t in zip(codes, texts) if ":" in t) == [
        OTHER_ADDRESSES, OTHER_ADDRESSES, OTHER_ADDRESSES + 1, OTHER_ADDRESSES + 2]
    # In arrays, with a table that already holds some: the same codes.
    table = {"fd00::3": 0}
    found = address_codes(pa.array(texts, pa.string()), table)
    assert [address_text(c, list(table)) for c in found.tolist()] == texts
    assert (ipv4_ints(pa.array(texts[:4])) == found[:4]).all()


@pytest.mark.parametrize("text, value", [("010.0.0.1", 10 << 24 | 1),
                                         ("1.02.3.004", 1 << 24 | 2 << 16 | 3 << 8 | 4)])
def test_an_ipv4_address_with_leading_zeros_reads_its_parts_as_decimal(text, value):
    """No validated address has them (ipaddress refuses them), but a caller's text that does
    reads as before the C path: each part in decimal."""
    assert ipv4_int(text) == value


@pytest.mark.parametrize("values, dtype", [
    ([], "|u1"), ([0, 255], "|u1"), ([0, 256], "<u2"), ([-1, 80, 65535], "<i4"),
    ([-1, 5], "|i1"), ([2**32 - 1], "<u4"), ([1, 2**32, 2**32 + 9, 7], "<u4"),
    ([2**33], "<i8"), ([-(2**40), 3], "<i8")])
def test_a_batch_array_travels_in_its_narrowest_type_and_back(values, dtype):
    array = np.array(values, np.int64)
    packed = _packed(array)
    assert packed[0] == dtype
    unpacked = _unpacked(packed)
    assert unpacked.dtype == np.int64 and unpacked.tolist() == values


def test_codes_read_from_the_array_s_bytes_are_each_address_s_wherever_it_starts():
    """address_codes and ipv4_ints read the strings' bytes through the array's offsets: the
    same codes as address_code gives one address at a time for a slice of an array (its
    offsets not starting at 0), an empty one, one of only IPv6 addresses, and one where an
    address of another form holds dots (::ffff:10.0.0.1) among the dotted quads."""
    rnd = random.Random(62)
    pool = [str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(200)] + [
        "0.0.0.0", "255.255.255.255", "9.99.0.100", "2001:db8::1", "::ffff:10.0.0.1",
        "fd00::3", "::1.2.3.4", "64:ff9b::102:304"]
    for _ in range(300):
        texts = rnd.choices(pool, k=rnd.randrange(0, 30))
        head = rnd.randrange(0, 4)
        array = pa.array(pool[:head] + texts + pool[:2], pa.string()).slice(head, len(texts))
        others, expected_others = {"fd00::3": 0}, {"fd00::3": 0}
        assert address_codes(array, others).tolist() == [
            address_code(t, expected_others) for t in texts]
        assert others == expected_others
        quads = [t for t in texts if ":" not in t]
        assert ipv4_ints(pa.array(quads, pa.string())).tolist() == list(map(ipv4_int, quads))
    assert address_codes(pa.array(["fd00::3", "2001:db8::1"], pa.string()), {}).tolist() == [
        OTHER_ADDRESSES, OTHER_ADDRESSES + 1]


def test_texts_read_from_the_array_s_bytes_are_the_strings_at_the_positions_asked():
    """texts reads the strings through the array's offsets: those at the positions asked, in
    their order, for a slice of an array (its offsets not starting at 0), none asked, an
    empty string and one not ASCII among them."""
    rnd = random.Random(63)
    pool = _ADDRESSES + ["", "fe80::1%\u00e9th0"] + [
        str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(100)]
    for _ in range(300):
        strings = rnd.choices(pool, k=rnd.randrange(0, 30))
        head = rnd.randrange(0, 4)
        array = pa.array(pool[:head] + strings + pool[:2], pa.string()).slice(head, len(strings))
        items = np.array(sorted(rnd.sample(range(len(strings)), rnd.randrange(0, len(strings) + 1))),
                         np.int64)
        assert texts(array, items) == [strings[i] for i in items.tolist()]
