import gzip
import importlib
import json
import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdredge.job import enriched
from flowdredge.job.enriched import EnrichedWriter, gzip_block
from flowdredge.job.parse import decode_tcp_flags
from flowdredge.schemas.metadata import OWNER_FIELDS
from flowdredge.schemas.outputs import ENRICHED_OWNER_KEYS

pytestmark = pytest.mark.unit
VALUE = st.one_of(st.none(), st.integers(-2**63, 2**63), st.text(max_size=20),
                  st.sampled_from(["10.0.0.1", "2001:db8::1", "ACCEPT", 'quo"te', "back\\slash"]))
OWNER = st.tuples(*[st.text(max_size=8) for _ in OWNER_FIELDS])


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUE, min_size=1, max_size=8), OWNER, OWNER,
       st.one_of(st.none(), st.just({"window_start": 60, "tcp_flags_names": "SYN-ACK"})))
def test_lines_equal_json_dumps_of_the_record(flow, src, dst, extra):
    keys = tuple(f"f{i}" for i in range(len(flow)))
    line = EnrichedWriter(keys).line(tuple(flow), src, dst, extra)
    expected = dict(zip(keys + ENRICHED_OWNER_KEYS, tuple(flow) + src + dst), **(extra or {}))
    assert json.loads(line) == expected


def _text(lines) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def test_gzip_blocks_written_back_to_back_are_one_gzip_file_of_the_lines(tmp_path):
    first, second = ['{"a":1}', '{"b":"\u00e9"}'], ['{"c":3}']
    path = tmp_path / "part.jsonl.gz"
    path.write_bytes(gzip_block(_text(first)) + gzip_block(_text(second)))
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        assert fh.read().splitlines() == first + second


def test_without_isal_the_blocks_are_zlib_gzip_of_the_same_lines(monkeypatch):
    """A zip built for the service's Python carries isal compiled for it; on another Python
    the import fails and zlib writes the blocks."""
    lines = ['{"a":1}', '{"b":"\u00e9"}']
    monkeypatch.setitem(sys.modules, "isal.isal_zlib", None)   # import raises ImportError
    try:
        without = importlib.reload(enriched)
        assert without._compress.__module__ == "zlib"
        assert gzip.decompress(without.gzip_block(_text(lines))).decode().splitlines() == lines
    finally:
        monkeypatch.undo()
        importlib.reload(enriched)
    assert enriched._compress.__module__.startswith("isal")


KINDED = st.lists(st.tuples(st.booleans(), st.one_of(st.none(), st.integers(0, 2**40))),
                  min_size=1, max_size=8)
PLAIN_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.data(), KINDED, st.one_of(st.none(), st.just({"window_start": 60})))
def test_batches_render_as_line_by_line(data, kinds, extra):
    """lines() (templates, fragments) equals line(), byte for byte, for any batch: nulls,
    values to escape, tcp flags, extra fields."""
    ints = tuple(i for i, (is_int, _) in enumerate(kinds) if is_int)
    keys = tuple(f"f{i}" for i in range(len(kinds)))
    value = {True: st.one_of(st.none(), st.integers(0, 2**40)),
             False: st.one_of(st.none(), PLAIN_TEXT, st.text(max_size=4))}
    flows = data.draw(st.lists(st.tuples(*[value[is_int] for is_int, _ in kinds]),
                               min_size=1, max_size=20))
    owners = data.draw(st.lists(OWNER, min_size=len(flows), max_size=len(flows)))
    flags = data.draw(st.one_of(st.none(), st.sampled_from(ints))) if ints else None
    writer = EnrichedWriter(keys, ints)
    lines = writer.lines(flows, owners, owners[::-1], flags, extra)
    for line, flow, src, dst in zip(lines, flows, owners, owners[::-1]):
        more = dict(extra or {})
        if flags is not None:
            more = {"tcp_flags_names": decode_tcp_flags(flow[flags]), **more}
        assert line == writer.line(flow, src, dst, more or None)


@pytest.mark.parametrize("flows", [
    [(6, "10.0.0.1", 18), (17, "10.0.0.2", 2)],                        # no null: one C pass
    [(6, "10.0.0.1", 18), (None, "10.0.0.2", 2), (6, "10.0.0.3", 3)],  # null int after a line
    [(6, "10.0.0.1", 18), (6, None, 2)],                               # null string
    [(6, "10.0.0.1", 18), (6, 'quo"te', None)],                        # to escape, and a null
])
def test_every_path_of_lines_renders_as_line(flows):
    writer = EnrichedWriter(("protocol", "srcaddr", "tcp_flags"), (0, 2))
    owners = [tuple(f"{f}{i}" for f in OWNER_FIELDS) for i in range(len(flows))]
    for tcp_flags in (None, 2):
        lines = writer.lines(flows, owners, owners[::-1], tcp_flags)
        assert lines == [writer.line(f, s, d, tcp_flags and {
            "tcp_flags_names": decode_tcp_flags(f[2])}) for f, s, d in zip(
            flows, owners, owners[::-1])]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(PLAIN_TEXT, st.text(max_size=6), st.none()),
                min_size=len(OWNER_FIELDS), max_size=len(OWNER_FIELDS)))
def test_owner_fragments_by_template_equal_the_general_fragment(values):
    """The %-template that builds an owner's fragment when its values are plain strings gives
    the general builder's bytes, and any other owner goes to that builder."""
    owner = tuple(values)
    for keys in (enriched.SRC_KEYS, enriched.DST_KEYS):
        assert enriched._OwnerFragments(keys)(owner) == enriched._owner_fragment(keys, owner)


@settings(max_examples=300, deadline=None)
@given(st.data(), KINDED)
def test_a_group_of_columns_renders_its_lines_or_declines(data, kinds):
    """block() over Arrow columns gives lines()' bytes, each line ended by a newline, and
    declines (None) exactly when a flow has a null or a string to escape."""
    ints = tuple(i for i, (is_int, _) in enumerate(kinds) if is_int)
    keys = tuple(f"f{i}" for i in range(len(kinds)))
    value = {True: st.one_of(st.none(), st.integers(-2**62, 2**62)),
             False: st.one_of(st.none(), PLAIN_TEXT, st.text(max_size=4))}
    flows = data.draw(st.lists(st.tuples(*[value[is_int] for is_int, _ in kinds]),
                               min_size=1, max_size=20))
    owners = data.draw(st.lists(OWNER, min_size=len(flows), max_size=len(flows)))
    flags = data.draw(st.one_of(st.none(), st.sampled_from(ints))) if ints else None
    columns = pa.RecordBatch.from_arrays(
        [pa.array(list(values), pa.int64() if i in ints else pa.string())
         for i, values in enumerate(zip(*flows))], names=list(keys))
    writer = EnrichedWriter(keys, ints)
    positions = np.arange(len(owners))
    text = writer.block(columns, (owners, positions), (owners, positions[::-1]), flags)
    has_null = any(v is None for flow in flows for v in flow)
    if has_null or not writer._plain(flows):
        assert text is None
    else:
        lines = writer.lines(flows, owners, owners[::-1], flags)
        assert text == "".join(line + "\n" for line in lines).encode("utf-8")


def test_a_slice_of_columns_renders_only_its_rows():
    flows = [(6, "10.0.0.1"), (17, "10.0.0.2"), (1, "10.0.0.3")]
    owners = [tuple(f"{f}{i}" for f in OWNER_FIELDS) for i in range(3)]
    columns = pa.RecordBatch.from_arrays([pa.array([6, 17, 1]), pa.array(
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"])], names=["protocol", "srcaddr"])
    writer = EnrichedWriter(("protocol", "srcaddr"), (0,))
    text = writer.block(columns.slice(1), (owners, np.array([1, 2])), (owners, np.array([2, 1])))
    assert text.decode().splitlines() == writer.lines(flows[1:], owners[1:], owners[:0:-1])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)), max_size=8,
                                   unique_by=lambda pair: pair[0]),
                          st.lists(st.integers(0, 3), max_size=4)), max_size=12),
       st.integers(1, 10), st.randoms(use_true_random=False))
def test_a_pool_gives_each_flow_its_owners_fragment_as_slots_change_owner(groups, limit, rng):
    """FragmentPool.take gives each flow its owner's own fragment while slots change owner (a
    new tuple object, equal to the one before or not: as a slot reused, or another index's),
    for the owners found by hash too (equal tuples, not the same object), and when it is
    emptied past its limit."""
    pool = enriched.FragmentPool(enriched._OwnerFragments(enriched.SRC_KEYS), limit)
    made = {}   # (slot, version) -> its owner object, made on first sight
    for by_slot, alone in groups:
        slots = [slot for slot, _version in by_slot]
        # Version 0 always the same object per slot; others new objects, some equal to it.
        owners = [tuple(f"{f}-other-{k}" for f in OWNER_FIELDS) for k in alone]
        owners += [made.setdefault((slot, version), tuple(
                       f"{f}-{slot}-{version % 2}" for f in OWNER_FIELDS))
                   if version == 0 else tuple(f"{f}-{slot}-{version % 2}" for f in OWNER_FIELDS)
                   for slot, version in by_slot]
        ids = np.array([rng.randrange(len(owners)) for _ in range(3 * len(owners))], np.int64)
        expected = [enriched._owner_fragment(enriched.SRC_KEYS, owners[i]) for i in ids]
        assert pool.take(owners, ids, slots).to_pylist() == expected


def test_a_pool_holds_no_more_owners_than_its_limit():
    """Each fragment holds its owner tuple, kept alive after its index let it go (a slot
    pruned, or given another owner): past `limit` fragments made the pool is emptied, so that
    an estate whose slots change owners holds at most `limit` of them, not one a slot."""
    pool = enriched.FragmentPool(enriched._OwnerFragments(enriched.SRC_KEYS), 5)
    for round_ in range(4):
        for start in range(0, 30, 3):
            slots = list(range(start, start + 3))
            owners = [tuple(f"{f}-{s}-{round_}" for f in OWNER_FIELDS) for s in slots]
            pool.take(owners + [("unowned",) * len(OWNER_FIELDS)], np.arange(4), slots)
            assert len(pool.owners) <= 5 and len(pool.by_owner) <= 5


def test_a_pool_holds_no_more_bytes_than_its_bound_and_a_group():
    """Past `max_bytes` of fragments the pool is emptied before a group adds its own (Arrow's
    int32 offsets): it never holds more than the bound and one group's, and each flow still
    gets its owner's fragment."""
    pool = enriched.FragmentPool(enriched._OwnerFragments(enriched.SRC_KEYS), 1000, 600)
    for start in range(0, 60, 3):
        slots = list(range(start, start + 3))
        owners = [tuple(f"{f}-{s}" for f in OWNER_FIELDS) for s in slots]
        fragments = pool.take(owners, np.array([2, 0, 1]), slots).to_pylist()
        assert fragments == [enriched._owner_fragment(enriched.SRC_KEYS, owners[i])
                             for i in (2, 0, 1)]
        assert pool.ends[len(pool.owners)] <= 600 + sum(map(len, fragments))
