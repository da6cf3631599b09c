"""The one builder of CloudWatch Logs subscription records (schemas.cloudwatch) writes what
json.dumps writes, escapes what JSON must escape, and job.parse reads its records."""
import gzip
import json

import pytest

from flowdredge.job.parse import FlowFormat, Limits, parse_record
from flowdredge.schemas.cloudwatch import control_record, envelope, record

pytestmark = pytest.mark.unit

LINE = "2 123456789012 eni-1 10.0.0.1 10.0.0.2 40000 443 6 3 180 1767225600 1767225660 ACCEPT OK"
V2 = FlowFormat.parse(" ".join("${%s}" % f for f in (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    "start end action log-status").split()))
LIMITS = Limits(window_seconds=60, max_decompressed_bytes=10**6, max_clock_skew_seconds=86400)


def _dumps(events, compact, **head):
    doc = {"messageType": "DATA_MESSAGE", "owner": head["owner"], "logGroup": head["log_group"],
           "logStream": head["log_stream"], "subscriptionFilters": ["flowdredge"],
           "logEvents": [{"id": i, "timestamp": ts, "message": m} for i, ts, m in events]}
    return json.dumps(doc, separators=(",", ":") if compact else None)


@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize("events", [
    [],
    [("1", 1767225600000, LINE)],
    [(str(i), 1767225600000 + i, LINE) for i in range(5)],
    [("7", 0, 'quote " backslash \\ newline \n tab \t nul \x00 é € \U0001f600'), ('"', 1, "")],
])
def test_envelope_is_what_json_dumps_writes(events, compact):
    head = {"owner": "123456789012", "log_group": "/vpc/flowlogs/\"eu\"", "log_stream": "eni-1"}
    assert envelope(events, compact=compact, **head) == _dumps(events, compact, **head)


def test_plain_events_are_inserted_as_they_are():
    events = [(i, 1767225600000, LINE) for i in range(3)]
    head = {"owner": "123456789012", "log_group": "/g", "log_stream": "eni-1-all"}
    assert envelope(events, plain=True, **head) == _dumps(
        [(str(i), ts, m) for i, ts, m in events], True, **head)


def test_records_are_parsed_and_reproducible():
    events = [(str(i), 1767225600000, LINE) for i in range(4)]
    data = record(events, compresslevel=1, owner="123456789012", log_group="/g", log_stream="s")
    assert data == record(events, compresslevel=1, owner="123456789012", log_group="/g",
                          log_stream="s")
    result = parse_record(data, "r", V2, LIMITS)
    assert not result.dead_letters and result.counts["flows_parsed"] == 4
    assert [flow[3] for group in result.groups for flow in group.flows] == ["10.0.0.1"] * 4


def test_control_record_is_skipped_by_the_parser():
    doc = json.loads(gzip.decompress(control_record()))
    assert doc["messageType"] == "CONTROL_MESSAGE" and doc["subscriptionFilters"] == []
    result = parse_record(control_record(), "r", V2, LIMITS)
    assert result.counts["records_skipped"] == 1 and not result.dead_letters


def test_the_latest_event_bounds_the_flow_starts_of_a_record():
    # An event's timestamp is its flow's start: a record spanning ten minutes holds flows up
    # to its last event's, far more than max_ahead_seconds after its first's.
    t0 = 1767225600
    events = [(str(i), start * 1000, LINE.replace("1767225600 1767225660",
                                                  f"{start} {start + 60}"))
              for i, start in enumerate((t0, t0 + 600))]
    data = record(events, compresslevel=1, owner="123456789012", log_group="/g", log_stream="s")
    result = parse_record(data, "r", V2, LIMITS)
    assert not result.dead_letters and result.counts["flows_parsed"] == 2
