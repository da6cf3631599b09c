"""The window tables' lines (job.security.table_lines) are the lines Flink's SQL json format
(Jackson) wrote for the same rows before the job rendered them itself: each expected line below
was written by that sink (connectors.files before #15's change) from the row beside it. The
first row of each schema is a real row of the bench's output; the others hold what a JSON
writer may write differently: nulls, quotes and backslashes, characters beyond ASCII and beyond
U+FFFF (escaped by Jackson as a surrogate pair), U+2028, control characters (upper-case hex),
DEL, the largest long."""
import json

import pytest

from flowdredge.job.security import table_lines
from flowdredge.schemas import security as out

pytestmark = pytest.mark.unit

FLINK_WROTE = (
    (out.DEPENDENCY, [
        ((1767225600, 'app-244', 'app-119', 5432, 6, 8, 159, 124690, 7, 8),
         '{"window_start":1767225600,"client_app":"app-244","server_app":"'
         'app-119","port":5432,"protocol":6,"flows":8,"packets":159,"bytes'
         '":124690,"clients":7,"servers":8}'),
        ((1767225660, 'app-\xe4', 'srv"q\\b/slash', None, None, 1, 2, 3, 1, 1),
         '{"window_start":1767225660,"client_app":"app-\xe4","server_app":"sr'
         'v\\"q\\\\b/slash","port":null,"protocol":null,"flows":1,"packets":2'
         ',"bytes":3,"clients":1,"servers":1}'),
        ((1767225720, 'ctl\x01\x1a\x1f\x7f\t\n\r\x08\x0cend', 'emoji\U0001f600\u2028x\xe9', 0,
          17, 9223372036854775807, 0, 0, 0, 0),
         '{"window_start":1767225720,"client_app":"ctl\\u0001\\u001A\\u001F\x7f\\'
         't\\n\\r\\b\\fend","server_app":"emoji\\uD83D\\uDE00\u2028x\xe9","port":0,"prot'
         'ocol":17,"flows":9223372036854775807,"packets":0,"bytes":0,"clie'
         'nts":0,"servers":0}'),
        ((-1, '', '\xe9', 65535, 255, 1, 1, 1, 1, 1),
         '{"window_start":-1,"client_app":"","server_app":"\xe9","port":65535'
         ',"protocol":255,"flows":1,"packets":1,"bytes":1,"clients":1,"ser'
         'vers":1}'),
    ]),
    (out.EXPOSURE, [
        ((1767225600, 'app-126', 'i-0000000000000784d', 443, 6, 1, 3, 2727, 1),
         '{"window_start":1767225600,"app":"app-126","resource":"i-0000000'
         '000000784d","port":443,"protocol":6,"flows":1,"packets":3,"bytes'
         '":2727,"internet_clients":1}'),
        ((1767225600, 'app-126', None, None, 1, 1, 3, 2727, 1),
         '{"window_start":1767225600,"app":"app-126","resource":null,"port'
         '":null,"protocol":1,"flows":1,"packets":3,"bytes":2727,"internet'
         '_clients":1}'),
        ((1767225600, '\u65e5\u672c', "r<>&'", 22, None, 5, 6, 7, 8),
         '{"window_start":1767225600,"app":"\u65e5\u672c","resource":"r<>&\'","port":'
         '22,"protocol":null,"flows":5,"packets":6,"bytes":7,"internet_cli'
         'ents":8}'),
    ]),
    (out.INTERNET_EGRESS, [
        ((1767225600, 'app-126', 443, 6, 'ACCEPT', 5, 129, 114912, 114912, 5),
         '{"window_start":1767225600,"app":"app-126","port":443,"protocol"'
         ':6,"action":"ACCEPT","flows":5,"packets":129,"bytes":114912,"byt'
         'es_sent":114912,"destinations":5}'),
        ((1767225600, 'unattributed', None, None, 'REJECT', 1, 1, 40, 0, 1),
         '{"window_start":1767225600,"app":"unattributed","port":null,"pro'
         'tocol":null,"action":"REJECT","flows":1,"packets":1,"bytes":40,"'
         'bytes_sent":0,"destinations":1}'),
        ((1767225600, 'a\x00b', 53, 17, 'ACCEPT', 1, 1, 40, 40, 1),
         '{"window_start":1767225600,"app":"a\\u0000b","port":53,"protocol"'
         ':17,"action":"ACCEPT","flows":1,"packets":1,"bytes":40,"bytes_se'
         'nt":40,"destinations":1}'),
    ]),)


@pytest.mark.parametrize("schema,cases", FLINK_WROTE, ids=lambda v: getattr(v, "name", ""))
def test_lines_are_what_flink_wrote(schema, cases):
    rows, lines = zip(*cases)
    assert table_lines(schema, rows) == list(lines)
    # Alone, and among plain rows: a plain row through the template, the others field by field.
    for row, line in cases:
        assert table_lines(schema, [row]) == [line]
        assert table_lines(schema, [rows[0], row, rows[0]]) == [lines[0], line, lines[0]]


def test_every_table_schema_is_covered():
    from flowdredge.job.flink.security import TABLES
    assert {schema for schema, _ in FLINK_WROTE} == {schema for schema, *_ in TABLES}


def test_a_sum_past_the_largest_long_is_written_as_it():
    """A window's bytes summed past 2**63 - 1 (bad input) were written whole, and a reader of a
    64-bit integer, flowdredge query among them, refused the file (a review); the aggregates
    write the largest long there, and so do the views."""
    from flowdredge.job.security import event_line
    big, largest = 2**64 + 5, 2**63 - 1
    row = (1767225600, "api", "db", 5432, 6, 8, 159, big, 7, 8)
    assert table_lines(out.DEPENDENCY, [row, row[:7] + (None,) + row[8:]]) == [
        '{"window_start":1767225600,"client_app":"api","server_app":"db","port":5432,'
        f'"protocol":6,"flows":8,"packets":159,"bytes":{largest},"clients":7,"servers":8}}',
        '{"window_start":1767225600,"client_app":"api","server_app":"db","port":5432,'
        '"protocol":6,"flows":8,"packets":159,"bytes":null,"clients":7,"servers":8}']
    # client_app, server_app, port, protocol, first_seen, last_seen, flows, bytes
    edge = ("api", "db", 5432, 6, 1767225600, 1767225600, big, big)
    line = json.loads(event_line(out.DEPENDENCY_GONE, 1767225660, edge))
    assert (line["first_seen"], line["flows"], line["bytes"]) == (1767225600, largest, largest)
