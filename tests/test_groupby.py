"""Group-by on integer columns (job.groupby) against the same grouping done row by row in
Python: groups in the order of their first row, sums exact at any size, distinct codes."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdredge.job.groupby import grouped

pytestmark = pytest.mark.unit

_INT64_MAX = 2**63 - 1


def _by_row(keys, values):
    """{key: [first row, sum]} in the order of the keys' first rows."""
    groups = {}
    for row, (key, value) in enumerate(zip(keys, values)):
        groups.setdefault(key, [row, 0])[1] += value
    return groups


# Values around the limits the sums switch at: exact in floats (2**53), in int64, past it.
_VALUES = st.one_of(st.integers(0, 1000), st.integers(2**53 - 10, 2**53 + 10),
                    st.integers(2**62, _INT64_MAX), st.integers(-1000, 0))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3), _VALUES), min_size=1,
                max_size=60))
def test_groups_and_their_sums_are_those_of_a_row_by_row_grouping(rows):
    a, b, values = (np.array(column, np.int64) for column in zip(*rows))
    g = grouped([(a, 7), (b, 4)])
    expected = _by_row(list(zip(a.tolist(), b.tolist())), values.tolist())
    assert g.first.tolist() == [first for first, _ in expected.values()]
    assert g.counts() == [sum(1 for k in zip(a.tolist(), b.tolist()) if k == key)
                          for key in expected]
    assert g.sums(values) == [total for _, total in expected.values()]
    assert [(a[g.first[n]], b[g.first[n]]) for n in g.group.tolist()] == list(zip(a, b))


def test_sums_stay_exact_where_floats_would_round():
    # 2**53 + 1 is the first integer a float64 cannot hold: summed as floats it comes out even.
    g = grouped([(np.array([0, 0, 1, 1], np.int64), 2)])
    values = np.array([2**53, 1, 2**52, 2**52 + 1], np.int64)
    assert g.sums(values) == [2**53 + 1, 2**53 + 1]
    small = np.array([3, 4, 2**40, 5], np.int64)
    assert g.sums(small) == [7, 2**40 + 5]


def test_distinct_counts_each_groups_codes_once():
    g = grouped([(np.array([2, 0, 2, 2, 0], np.int64), 3)])
    counts, pairs = g.distinct(np.array([5, 1, 5, 7, 1], np.int64), 10)
    # Groups in the order of their first row: key 2 first, then key 0.
    assert counts.tolist() == [2, 1]
    assert pairs.tolist() == [0 * 10 + 5, 0 * 10 + 7, 1 * 10 + 1]


def test_distinct_over_some_rows_counts_only_theirs_in_every_group():
    g = grouped([(np.array([2, 0, 2, 2, 0], np.int64), 3)])
    codes = np.array([5, 1, 6, 7, 1], np.int64)
    some = np.array([True, True, False, True, False])
    counts, pairs = g.distinct(codes[some], 10, some)
    assert counts.tolist() == [2, 1]
    assert pairs.tolist() == [5, 7, 11]
    counts, pairs = g.distinct(codes[[1]], 10, [1])
    assert counts.tolist() == [0, 1] and pairs.tolist() == [11]
