import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from job.enriched import EnrichedWriter, gzip_block
from schemas.metadata import OWNER_FIELDS
from schemas.outputs import ENRICHED_OWNER_KEYS

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


def test_gzip_blocks_written_back_to_back_are_one_gzip_file_of_the_lines(tmp_path):
    first, second = ['{"a":1}', '{"b":"\u00e9"}'], ['{"c":3}']
    path = tmp_path / "part.jsonl.gz"
    path.write_bytes(gzip_block(first) + gzip_block(second))
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        assert fh.read().splitlines() == first + second
