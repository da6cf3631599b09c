"""The security views' share of a group of columns, reduced in numpy (job.security_columns),
against the conversations the flow-by-flow path makes and reduces
(WindowViews.of_conversation_sums): the same orientation of every flow, the same views, and the
same results at the window's close."""
import itertools
import random

import numpy as np
import pyarrow as pa
import pytest

from helpers import column_group, plain_views
from flowdredge.job import security
from flowdredge.job.attribute import attribute_group
from flowdredge.job.codec import decode_views, encode_views
from flowdredge.job.ownership import MetaEvent, OwnershipIndex
from flowdredge.job.parse import FlowFormat, FlowGroup
from flowdredge.job.security import DEFAULT_SERVICE_PORTS, WindowViews, window_results
from flowdredge.job.security_columns import client_is_source, codes_of
from flowdredge.schemas.metadata import ASSIGN, OWNER_FIELDS, UNASSIGN

pytestmark = pytest.mark.unit

_PORTS = [None, 0, 22, 443, 1023, 1024, 5432, 40000, 65535]
_FLAGS = [None, 0, 1, 2, 3, 4, 16, 18, 19, 2 | 4]


@pytest.mark.parametrize("service_ports", [DEFAULT_SERVICE_PORTS, frozenset(),
                                           frozenset({40000, 1024})])
def test_every_flow_is_oriented_by_the_rules_of_client_is_source(service_ports):
    cases = list(itertools.product(_PORTS, _PORTS, _FLAGS))
    src, dst, flags = (pa.array(column, pa.int64()) for column in zip(*cases))
    n = len(cases)
    found = client_is_source(codes_of(src, n), codes_of(dst, n),
                             flags.fill_null(0).to_numpy(), service_ports)
    expected = [security.client_is_source(s, d, f, service_ports) for s, d, f in cases]
    assert found.tolist() == expected


_FORMAT = FlowFormat.parse("srcaddr dstaddr srcport dstport protocol packets bytes start action"
                           " tcp-flags")
_OWNED = [f"10.0.{i // 250}.{i % 250}" for i in range(400)]
_UNOWNED = ["10.9.9.9", "192.168.0.7", "fd00::3"] + [f"198.51.100.{i}" for i in range(60)] + [
    f"2001:db8::{i:x}" for i in range(20)]


def _owner(app, resource):
    values = dict.fromkeys(OWNER_FIELDS, "-")
    values.update(app=app, region="us-east-1", resource_id=resource)
    return tuple(values[f] for f in OWNER_FIELDS)


def _index(rnd) -> OwnershipIndex:
    """Owned IPs of five apps; some change owner or lose it within the window (looked up one
    by one), some are assigned only after it starts."""
    index = OwnershipIndex()
    for i, ip in enumerate(_OWNED):
        # Some named as AWS's published ranges (metadata.ip_ranges): the internet to the views.
        app = "aws:ec2:us-east-1" if i % 7 == 6 else f"app{i % 5}"
        index.apply(MetaEvent(ASSIGN, rnd.choice((0, 0, 0, 90_000)), ip, _owner(app, f"i-{i}")))
        if i % 9 == 0:
            index.apply(MetaEvent(UNASSIGN, 100_000, ip, None))
            if i % 2:
                index.apply(MetaEvent(ASSIGN, 100_000, ip, _owner("app9", f"i-{i}b")))
    return index


def _flows(rnd, n, huge_bytes=False):
    flows = []
    for _ in range(n):
        src, dst = (rnd.choice(_OWNED) if rnd.random() < 0.7 else rnd.choice(_UNOWNED)
                    for _ in range(2))
        flows.append((src, dst, rnd.choice(_PORTS[1:] + [None] + [rnd.randint(1024, 65535)]),
                      rnd.choice(_PORTS), rnd.choice((6, 6, 17, 1, None)),
                      rnd.choice((1, 3, None)),
                      rnd.randint(2**61, 2**62) if huge_bytes else rnd.choice((40, 1500, None)),
                      rnd.randint(60, 119), rnd.choice(("ACCEPT", "ACCEPT", "REJECT", None)),
                      rnd.choice(_FLAGS)))
    return flows


@pytest.mark.parametrize("seed", range(6))
def test_a_group_of_columns_makes_the_views_of_its_conversations(seed):
    rnd = random.Random(seed)
    index = _index(rnd)
    group = FlowGroup(_FORMAT, 60, 119, _flows(rnd, 3000, huge_bytes=seed == 5), "t")
    rows = attribute_group(group, index, enriched=False, conversations=True)
    columns = attribute_group(column_group(group), index, enriched=False, conversations=True)
    assert not columns.conversations.sums   # no conversation made
    # The same rows in the same order, the same addresses, the same records summed.
    assert plain_views(columns.views) == plain_views(rows.views)
    assert len(columns.views.records[0][0]) <= len(rows.views.records[0][0])


_RULES = security.ViewRules(3, security.ScanRules(5, 9, 20, 1, 0, 3), security.parse_factors(
    "exposed_ports=30,rejected_flows=15,scan_sources=20,egress_bytes=20,dependencies=5,"
    "dependents=10"), security.parse_factors(
    "exposed_ports=3,rejected_flows=100,scan_sources=2,egress_bytes=100000000,"
    "dependencies=10,dependents=10"))


@pytest.mark.parametrize("seed", range(3))
def test_a_window_of_column_batches_closes_as_one_of_conversation_batches(seed):
    """Several groups of one window, each encoded as the job sends it and merged where the
    window closes: every view, scan, event and risk line the same."""
    rnd = random.Random(seed)
    index = _index(rnd)
    flows = _flows(rnd, 4000)
    closed = []
    for as_columns in (False, True):
        views = WindowViews()
        for at in range(0, len(flows), 700):
            group = FlowGroup(_FORMAT, 60, 119, flows[at:at + 700], "t")
            out = attribute_group(column_group(group) if as_columns else group, index,
                                  enriched=False, conversations=True)
            views.merge(decode_views(encode_views(out.views)))
        closed.append(window_results(60, views, _RULES))
    rows, columns = closed
    assert columns == rows
    assert rows.scans and rows.dependencies and rows.exposure and rows.reject_sources


def test_a_group_without_flows_has_empty_views():
    group = FlowGroup(_FORMAT, 60, 60, [("10.0.0.1", "10.0.0.2", 1, 2, 6, 1, 1, 60, "ACCEPT", 2)],
                      "t")
    empty = column_group(group)
    empty = FlowGroup(_FORMAT, 60, 60, None, "t", empty.columns.slice(0, 0))
    out = attribute_group(empty, OwnershipIndex(), enriched=True, conversations=True)
    assert out.views.is_empty() and not any(out.views.sets) and not out.partials.sums
    assert np.array_equal(codes_of(None, 3).codes, np.zeros(3, np.int64))
