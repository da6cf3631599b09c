"""AttributeFlows forgets the owners no flow can need any more: those older than
`metadata.retention_seconds` behind both the metadata clock and the flows' event time
(job.flink.operators.AttributeFlows._prune)."""
import pytest
from pyflink.common import Row

from operator_stubs import Runtime, changelog, group_row
from flowdredge.job.config import Config
from flowdredge.job.flink.operators import AttributeFlows
from flowdredge.schemas.outputs import PARTIAL_AGGREGATE

pytestmark = pytest.mark.unit

T0 = 1767225600   # 2026-01-01T00:00:00Z
# The least retention job.config allows: flows.out_of_orderness_seconds + job.window_seconds.
CONFIG = Config().replace(metadata={"retention_seconds": 360, "out_of_orderness_seconds": 30},
                          outputs={"enriched": False, "security": False})
SRC_APP = PARTIAL_AGGREGATE.names.index("src_app")


def _src_apps(op, rt, start):
    """The source apps AttributeFlows gives a flow from 10.0.0.1 starting at `start`."""
    return [item[SRC_APP] for item in op.process_element(group_row(start), rt)
            if isinstance(item, Row)]


def test_a_changelog_far_ahead_of_the_flows_keeps_the_owners_they_need():
    op, rt = AttributeFlows(CONFIG), Runtime()
    op.open(rt)
    list(op.process_broadcast_element(changelog(("ASSIGN", T0 * 1000, "10.0.0.1", "a"),
                                                ("ASSIGN", (T0 + 3600) * 1000, "10.0.0.1", "b")),
                                      rt))
    rt.watermark = (T0 + 60) * 1000
    assert _src_apps(op, rt, T0 + 60) == ["a"]
    # The changelog's clock moves ten hours ahead of the flows (a backlog read from
    # TRIM_HORIZON): pruned behind it alone, a was gone while flows still needed it.
    list(op.process_broadcast_element(changelog(("HEARTBEAT", (T0 + 36000) * 1000, "", "")),
                                      rt))
    assert _src_apps(op, rt, T0 + 60) == ["a"]
