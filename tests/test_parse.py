import base64
import gzip
import json

import pytest

from flowdredge.job.parse import (FlowFormat, FormatError, LineError, Limits, decode_tcp_flags,
                                  parse_line, parse_record)

pytestmark = pytest.mark.unit

V2 = FlowFormat.parse(" ".join("${%s}" % f for f in (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    "start end action log-status").split()))


LIMITS = Limits(window_seconds=60, max_decompressed_bytes=10**6, max_clock_skew_seconds=86400)


def _envelope(lines, message_type="DATA_MESSAGE", timestamp_ms=None):
    events = [{"id": str(i), "message": line} for i, line in enumerate(lines)]
    for event in events:
        if timestamp_ms is not None:
            event["timestamp"] = timestamp_ms
    doc = {"messageType": message_type, "owner": "123456789012", "logGroup": "g",
           "logStream": "eni-1", "subscriptionFilters": ["f"], "logEvents": events}
    return gzip.compress(json.dumps(doc).encode())


def test_aws_default_examples(aws_examples):
    lines = aws_examples["default"]
    accept = parse_line(V2, lines[0])
    assert accept[V2.pos["srcaddr"]] == "172.31.16.139"
    assert accept[V2.pos["dstport"]] == 22
    assert accept[V2.pos["bytes"]] == 4249
    assert accept[V2.pos["action"]] == "ACCEPT"
    nodata = parse_line(V2, lines[2])
    assert nodata[V2.pos["srcaddr"]] is None and nodata[V2.pos["packets"]] is None
    ipv6 = parse_line(V2, lines[5])
    assert ipv6[V2.pos["dstaddr"]] == "2001:db8:1234:a102:3304:8879:34cf:4071"


@pytest.mark.parametrize("block", ["custom-v3", "custom-v5"])
def test_aws_custom_format_examples(aws_examples, block):
    fmt_line = [k for k in aws_examples if k != "default"][0 if block == "custom-v3" else 1]
    fmt = FlowFormat.parse(fmt_line)
    for line in aws_examples[fmt_line]:
        flow = parse_line(fmt, line)
        assert len(flow) == fmt.width
        assert isinstance(flow[fmt.pos["start"]], int)
        assert flow[fmt.pos["action"]] == "ACCEPT"


def test_record_counts_nodata_and_skipdata_and_groups_by_window(aws_examples):
    result = parse_record(_envelope(aws_examples["default"]), "r", V2, LIMITS)
    assert result.counts["lines_in"] == 6
    assert result.counts["no_data"] == 1 and result.counts["skip_data"] == 1
    assert result.counts["flows_parsed"] == 4
    assert not result.dead_letters
    starts = {g.window_start: g.max_start for g in result.groups}
    assert starts[1418529960] == 1418530010   # 1418530010 - 1418530010 % 60


@pytest.mark.parametrize("line,reason", [
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 10 20", "field_count"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 two 6 1 100 10 20 ACCEPT OK", "not_a_number"),
    ("2 1 eni 10.0.0.300 10.0.0.2 1 2 6 1 100 10 20 ACCEPT OK", "bad_address"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 65536 6 1 100 10 20 ACCEPT OK", "port_out_of_range"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 20 10 ACCEPT OK", "end_before_start"),
    ("2 1 eni - 10.0.0.2 1 2 6 1 100 10 20 ACCEPT OK", "missing_required_field"),
])
def test_bad_lines_have_reasons(line, reason):
    with pytest.raises(LineError) as err:
        parse_line(V2, line)
    assert err.value.reason == reason


def test_bad_line_is_dead_lettered_and_good_lines_in_the_batch_survive():
    good = "2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 1767225600 1767225660 ACCEPT OK"
    result = parse_record(_envelope([good, "garbage", good]), "r", V2, LIMITS)
    assert result.counts["flows_parsed"] == 2
    assert [(d[0], d[1], d[3]) for d in result.dead_letters] == [("flows", "field_count", "garbage")]


@pytest.mark.parametrize("raw,reason", [
    ("!!!not-base64!!!", "bad_base64"),
    (base64.b64encode(b"plain text, not gzip").decode(), "not_gzip"),
    (base64.b64encode(gzip.compress(b"not json")).decode(), "not_json"),
    (base64.b64encode(gzip.compress(b'{"hello": 1}')).decode(), "not_cloudwatch"),
    (b"\x1f\x8b\x08\x00garbage", "bad_gzip"),
])
def test_bad_records_have_reasons(raw, reason):
    result = parse_record(raw, "r", V2, LIMITS)
    assert [d[1] for d in result.dead_letters] == [reason]
    assert len(result.dead_letters[0][3]) <= 256


def test_control_message_is_skipped_and_counted():
    result = parse_record(_envelope([], "CONTROL_MESSAGE"), "r", V2, LIMITS)
    assert result.counts["records_skipped"] == 1 and not result.dead_letters


def test_decompression_is_capped():
    bomb = gzip.compress(b"{" + b" " * 5_000_000 + b"}")
    result = parse_record(bomb, "r", V2, LIMITS)
    assert [d[1] for d in result.dead_letters] == ["too_large"]


def test_file_chunk_with_custom_field_order():
    chunk = {"source": "f#0", "format": "start srcaddr dstaddr action bytes",
             "lines": ["1767225720 10.0.0.1 8.8.8.8 ACCEPT 99"]}
    result = parse_record(json.dumps(chunk), "r", V2, LIMITS)
    (group,) = result.groups
    assert group.window_start == 1767225720
    assert group.flows == [(1767225720, "10.0.0.1", "8.8.8.8", "ACCEPT", 99)]


def test_starts_far_from_the_stream_time_are_dead_lettered():
    line = "2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 {s} {s} ACCEPT OK"
    delivered_ms = 1767225600 * 1000
    lines = [line.format(s=1767225600 - 60), line.format(s=1767225600 - 3 * 86400),
             line.format(s=1767225600 + 2 * 86400)]
    result = parse_record(_envelope(lines, timestamp_ms=delivered_ms), "r", V2, LIMITS)
    assert result.counts["flows_parsed"] == 1
    assert [d[1] for d in result.dead_letters] == ["timestamp_out_of_range"] * 2
    # Without a stream time, only starts outside the era of flow logs are garbage.
    result = parse_record(_envelope([line.format(s=1000), line.format(s=1767225600)]), "r",
                          V2, LIMITS)
    assert [d[1] for d in result.dead_letters] == ["timestamp_out_of_range"]


@pytest.mark.parametrize("flags,names", [
    (None, None), (0, ""), (1, "FIN"), (2, "SYN"), (4, "RST"), (18, "SYN-ACK"),
    (19, "FIN,SYN-ACK"), (3, "FIN,SYN")])
def test_tcp_flags_are_decoded(flags, names):
    assert decode_tcp_flags(flags) == names


def test_no_data_lines_are_counted_per_interface_and_window(aws_examples):
    result = parse_record(_envelope(aws_examples["default"][2:4] * 2), "r", V2, LIMITS)
    assert dict(result.no_traffic) == {
        (1431280860, "123456789010", "eni-1235b8ca123456789", "NODATA"): 2,
        (1431280860, "123456789010", "eni-11111111aaaaaaaaa", "SKIPDATA"): 2}


def test_format_errors_name_the_field():
    with pytest.raises(FormatError, match="start"):
        FlowFormat.parse("srcaddr dstaddr")


def test_unknown_fields_are_split_off_and_dropped():
    fmt = FlowFormat.parse("srcaddr foo-bar dstaddr start bytes foo-bar")
    assert fmt.unknown == ("foo-bar",) and fmt.width == 6
    assert fmt.fields == ("srcaddr", "dstaddr", "start", "bytes")
    assert parse_line(fmt, "10.0.0.1 x 10.0.0.2 1767225600 5 y") == (
        "10.0.0.1", "10.0.0.2", 1767225600, 5)
    with pytest.raises(LineError, match="field_count"):
        parse_line(fmt, "10.0.0.1 10.0.0.2 1767225600 5")


def test_every_reason_in_the_code_is_declared():
    import os
    import re
    from flowdredge.schemas.outputs import FLOW_DEAD_LETTER_REASONS, METADATA_DEAD_LETTER_REASONS
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for module, declared in (("parse.py", FLOW_DEAD_LETTER_REASONS),
                             ("ownership.py", METADATA_DEAD_LETTER_REASONS)):
        with open(os.path.join(root, "job", module)) as fh:
            used = set(re.findall(r'(?:LineError|MetaEventError|dead)\("([a-z_]+)"', fh.read()))
        assert used and used <= set(declared), used - set(declared)
    with open(os.path.join(root, "docs", "outputs.md")) as fh:
        doc = fh.read()
    assert all(f"`{r}`" in doc for r in FLOW_DEAD_LETTER_REASONS + METADATA_DEAD_LETTER_REASONS)
