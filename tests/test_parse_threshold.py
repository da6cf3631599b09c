"""`vectorise_from` reaches the line parser from every kind of record, and its default is
`parse_columns.MIN_LINES`: the tests comparing both parsers rely on the first, the job on the
second."""
import base64
import gzip
import json
import math

import pytest

from flowdredge.job import parse_columns
from flowdredge.job.parse import FlowFormat, Limits, parse_record
from flowdredge.schemas.flowlog import DEFAULT_FORMAT

pytestmark = pytest.mark.unit

V2 = FlowFormat(DEFAULT_FORMAT)
LIMITS = Limits(60, 10**7, 86400)
T0 = 1767225600
LINE = f"2 123456789012 eni-1 10.0.0.1 10.0.0.2 443 49152 6 10 840 {T0} {T0 + 60} ACCEPT OK"


def _envelope(n):
    return gzip.compress(json.dumps({
        "messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "eni-1",
        "logEvents": [{"id": str(i), "timestamp": T0 * 1000, "message": LINE}
                      for i in range(n)]}).encode())


RECORDS = {
    "file chunk": lambda n: json.dumps({"source": "f", "format": " ".join(DEFAULT_FORMAT),
                                        "lines": [LINE] * n, "delivered": T0}),
    "CloudWatch record": _envelope,
    "staged CloudWatch record": lambda n: json.dumps(
        {"source": "f", "record": base64.b64encode(_envelope(n)).decode()}),
}


@pytest.fixture
def vectorised(monkeypatch):
    """The number of lines the vectorised parser was given, call by call."""
    calls = []
    parse_chunk = parse_columns.parse_chunk

    def spy(fmt, lines, *args):
        calls.append(len(lines))
        return parse_chunk(fmt, lines, *args)

    monkeypatch.setattr(parse_columns, "parse_chunk", spy)
    return calls


@pytest.mark.parametrize("kind", RECORDS)
def test_the_threshold_reaches_the_line_parser(kind, vectorised):
    raw = RECORDS[kind](3)
    results = [parse_record(raw, "r", V2, LIMITS, vectorise_from=n) for n in (4, 3, 1, math.inf)]
    assert vectorised == [3, 3]
    assert all(r.counts["flows_parsed"] == 3 for r in results)


@pytest.mark.parametrize("kind", RECORDS)
def test_the_default_threshold_is_min_lines(kind, vectorised):
    n = parse_columns.MIN_LINES
    parse_record(RECORDS[kind](n - 1), "r", V2, LIMITS)
    parse_record(RECORDS[kind](n), "r", V2, LIMITS)
    assert vectorised == [n]
