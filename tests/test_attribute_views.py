"""The security views' share of a group (attribute_group(views=True)), reduced from its columns
or, for small groups, from its conversations' rows, against WindowViews.of_conversations over the same group's conversations: the same sums and
distinct addresses per view key, the same records in the direction logged (one per flow
instead of one per conversation: the same flows per source and target), the same window rows;
directly, through the codec, and merged with other batches of the window."""
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from job import attribute as a
from job import security as s
from job.attribute import attribute_group
from job.codec import decode_group, decode_views, encode_group, encode_views
from tests.test_attribute_columns import SETTINGS, groups

pytestmark = pytest.mark.unit

# Low thresholds, so that the few addresses of these groups make scans and their events.
RULES = s.ViewRules(2, s.ScanRules(2, 3, 2, 1, 0, 2), s.parse_factors(
    "exposed_ports=30,rejected_flows=15,scan_sources=20,egress_bytes=20,dependencies=5,"
    "dependents=10"), s.parse_factors(
    "exposed_ports=3,rejected_flows=100,scan_sources=2,egress_bytes=1000,dependencies=10,"
    "dependents=10"))


def _records(views) -> Counter:
    """Flows per record key (source, target, rejected), whatever the records are per."""
    totals = Counter()
    for *key, flows, rejected in zip(*views.records):
        totals[(*key, rejected)] += flows
    return totals


def _rows(results) -> dict:
    return {name: sorted(map(repr, getattr(results, name))) for name in (
        "dependencies", "exposure", "egress", "reject_sources", "scans", "events", "risk")}


@pytest.mark.parametrize("by_columns_min", [0, a.VIEWS_BY_COLUMNS_MIN])
def test_views_from_columns_equal_the_views_of_the_conversations(by_columns_min):
    """Every group by columns (0), and these small groups by rows (the job's threshold)."""
    default, a.VIEWS_BY_COLUMNS_MIN = a.VIEWS_BY_COLUMNS_MIN, by_columns_min
    try:
        _views_equal_the_views_of_the_conversations()
    finally:
        a.VIEWS_BY_COLUMNS_MIN = default


@SETTINGS
@given(groups(), st.integers(0, 39))
def _views_equal_the_views_of_the_conversations(case, split):
    group, index = case
    attributed = [group, decode_group(encode_group(group), 60, group.max_start)]
    for g in attributed:
        out = attribute_group(g, index, enriched=False, conversations=True, views=True)
        expected = s.WindowViews.of_conversations(out.conversations.rows())
        for views in (out.views, decode_views(encode_views(out.views))):
            assert views.parts()[:-1] == expected.parts()[:-1]
            assert _records(views) == _records(expected)
            assert _rows(s.window_results(60, views, RULES)) == _rows(
                s.window_results(60, expected, RULES))
    # A window of two batches: this group's views, and the conversations of another.
    merged, expected = s.WindowViews(), s.WindowViews()
    rows = list(out.conversations.rows())
    merged.merge(decode_views(encode_views(s.WindowViews.of_conversations(rows[:split]))))
    merged.merge(decode_views(encode_views(out.views)))
    expected.merge(s.WindowViews.of_conversations(rows[:split]))
    expected.merge(s.WindowViews.of_conversations(rows))
    assert _rows(s.window_results(60, merged, RULES)) == _rows(
        s.window_results(60, expected, RULES))
