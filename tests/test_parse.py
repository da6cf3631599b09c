import base64
import gzip
import ipaddress
import json
import math
import random
import struct

import pytest

from flowdredge.job.addresses import embeds_ipv4
from flowdredge.job.parse import (DEAD_LETTERS_KEPT, MAX_MEMBERS, FlowFormat, FormatError, LineError, Limits,
                                  decode_tcp_flags, parse_batches, parse_line, parse_record,
                                  parse_records, _address_form)

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


@pytest.mark.parametrize("line,reason,detail", [
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 10 20", "field_count",
     "12 fields; the format has 14"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 two 6 1 100 10 20 ACCEPT OK", "not_a_number",
     "dstport is not an integer in ASCII digits"),
    ("2 1 eni 10.0.0.300 10.0.0.2 1 2 6 1 100 10 20 ACCEPT OK", "bad_address",
     "srcaddr is not an IPv4 or IPv6 address"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 65536 6 1 100 10 20 ACCEPT OK", "port_out_of_range",
     "dstport 65536 is outside 0..65535"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 20 10 ACCEPT OK", "end_before_start",
     "end 10 is before start 20"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 20 3621 ACCEPT OK", "timestamp_out_of_range",
     "end 3621 is 3601 s after start 20; a record spans one aggregation interval, at most "
     "3600 s are allowed"),
    ("2 1 eni - 10.0.0.2 1 2 6 1 100 10 20 ACCEPT OK", "missing_required_field",
     "srcaddr '-' on a line with traffic"),
    ("2 1 eni - - 1 2 6 1 100 - 20 ACCEPT OK", "missing_required_field",
     "start and srcaddr and dstaddr '-' on a line with traffic"),
    # int() reads these; AWS writes none of them, and the vectorised parse refuses them.
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 +100 10 20 ACCEPT OK", "not_a_number",
     "bytes is not an integer in ASCII digits"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 1_000 10 20 ACCEPT OK", "not_a_number",
     "bytes is not an integer in ASCII digits"),
    ("2 1 eni_x 10.0.0.1 10.0.0.2 1 2 6 1 \u0661\u0662 10 20 ACCEPT OK", "not_a_number",
     "bytes is not an integer in ASCII digits"),
    ("2 1 eni fe80::1%eth0 10.0.0.2 1 2 6 1 100 10 20 ACCEPT OK", "bad_address",
     "srcaddr is an IPv6 address with a zone id"),
    # Taken as IPv6, they matched no owner of 10.0.0.1 and were classed as the internet.
    ("2 1 eni ::ffff:10.0.0.1 10.0.0.2 1 2 6 1 100 10 20 ACCEPT OK", "bad_address",
     "srcaddr is an IPv6 address that spells an IPv4 one (::ffff:a.b.c.d or ::a.b.c.d)"),
    ("2 1 eni 10.0.0.1 ::ffff:a00:2 1 2 6 1 100 10 20 ACCEPT OK", "bad_address",
     "dstaddr is an IPv6 address that spells an IPv4 one (::ffff:a.b.c.d or ::a.b.c.d)"),
    ("2 1 eni ::10.0.0.1 10.0.0.2 1 2 6 1 100 10 20 ACCEPT OK", "bad_address",
     "srcaddr is an IPv6 address that spells an IPv4 one (::ffff:a.b.c.d or ::a.b.c.d)"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 -5 10 20 ACCEPT OK", "number_out_of_range",
     "bytes -5 is outside 0..9223372036854775807 (flows.max_flow_bytes)"),
    # More digits than int() reads (4,300) are a number still, out of range as a shorter one.
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 " + "9" * 5000 + " 10 20 ACCEPT OK",
     "number_out_of_range", "bytes of 20 digits or more is outside 0..9223372036854775807 (flows.max_flow_bytes)"),
    ("2 1 eni 10.0.0.1 10.0.0.2 " + "9" * 5000 + " 2 6 1 100 10 20 ACCEPT OK",
     "port_out_of_range", "srcport of 20 digits or more is outside 0..65535"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 70000 6 1 " + "9" * 5000 + " 10 20 ACCEPT OK",
     "port_out_of_range", "dstport 70000 is outside 0..65535"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 x " + "9" * 5000 + " 10 20 ACCEPT OK", "not_a_number",
     "packets is not an integer in ASCII digits"),
    # AWS writes these fields from a fixed list: junk made aggregate rows of its own.
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 10 20 ACC\0EPT OK", "unknown_value",
     "action is 'ACC\\x00EPT', not one of ACCEPT, REJECT"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 10 20 accept OK", "unknown_value",
     "action is 'accept', not one of ACCEPT, REJECT"),
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 10 20 ACCEPT ok", "unknown_value",
     "log-status is 'ok', not one of NODATA, OK, SKIPDATA"),
    # Cut to 40 characters, then its length (schemas.settings.quoted; before, without a word).
    ("2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 10 20 " + "X" * 5000 + " OK", "unknown_value",
     "action is '" + "X" * 40 + "... (5,000 characters)', not one of ACCEPT, REJECT"),
])
def test_bad_lines_have_reasons_and_say_why(line, reason, detail):
    with pytest.raises(LineError) as err:
        parse_line(V2, line)
    assert (err.value.reason, err.value.detail) == (reason, detail)


def test_a_number_of_many_leading_zeros_is_its_value():
    flow = parse_line(V2, "2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 " + "0" * 4400 + "5 10 20 ACCEPT OK")
    assert flow[V2.pos["bytes"]] == 5


def test_bad_line_is_dead_lettered_and_good_lines_in_the_batch_survive():
    good = "2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 1767225600 1767225660 ACCEPT OK"
    result = parse_record(_envelope([good, "garbage", good]), "r", V2, LIMITS)
    assert result.counts["flows_parsed"] == 2
    assert [(d[0], d[1], d[3]) for d in result.dead_letters] == [("flows", "field_count", "garbage")]


@pytest.mark.parametrize("raw,reason", [
    ("!!!not-base64!!!", "bad_base64"),
    (base64.b64encode(b"plain text, not gzip").decode(), "not_gzip"),
    (base64.b64encode(gzip.compress(b"not json", mtime=0)).decode(), "not_json"),
    (base64.b64encode(gzip.compress(b'{"hello": 1}', mtime=0)).decode(), "not_cloudwatch"),
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


def test_a_batch_keeps_a_bounded_number_of_dead_letters_and_counts_them_all():
    """A record of 1M lines of another format made a dead letter each: one output element of
    hundreds of MB, and the JVM ran out of memory."""
    good = "2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 1767225600 1767225605 ACCEPT OK"
    bad = "8 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 1767225600 1767225605 ACCEPT OK BPA x"
    records = [(_envelope([bad] * 3000 + [good]), f"r{i}", None) for i in range(3)]
    for vectorise_from in (0, float("inf")):
        (result,) = parse_batches(records, V2, LIMITS, vectorise_from=vectorise_from)
        assert len(result.dead_letters) == DEAD_LETTERS_KEPT
        assert result.dead_letters[0][1:3] == ("field_count", "r0 g/eni-1 event 0")
        assert result.counts["dead_letter"] == result.counts["dead_letter_field_count"] == 9000
        assert result.counts["dead_letters_not_kept"] == 9000 - DEAD_LETTERS_KEPT
        assert result.counts["flows_parsed"] == 3
    merged = parse_records(records * 2, V2, LIMITS)
    assert len(merged.dead_letters) == DEAD_LETTERS_KEPT
    assert merged.counts["dead_letters_not_kept"] == 18000 - DEAD_LETTERS_KEPT


def test_a_window_of_more_flows_than_a_group_holds_is_sent_as_several_groups(monkeypatch):
    """A group crosses to the JVM as one element: a record at max_decompressed_bytes made one
    of 60 MB, and three such records ran the JVM's heap out (a review's Kinesis records)."""
    from flowdredge.job import parse
    monkeypatch.setattr(parse, "MAX_GROUP_FLOWS", 4)
    lines = [f"2 1 eni 10.0.0.1 10.0.0.2 {i} 2 6 1 100 {1767225600 + (i * 7) % 50} "
             f"1767225660 ACCEPT OK" for i in range(11)]
    lines.append("2 1 eni 10.0.0.1 10.0.0.2 99 2 6 1 100 1767225665 1767225670 ACCEPT OK")
    records = [(_envelope(lines[:6]), "r0", None), (_envelope(lines[6:]), "r1", None)]
    whole = V2.pos["start"]
    for vectorise_from in (0, float("inf")):
        (result,) = parse_batches(records, V2, LIMITS, vectorise_from=vectorise_from)
        assert [(g.window_start, len(g)) for g in result.groups] == [
            (1767225600, 4), (1767225600, 4), (1767225600, 3), (1767225660, 1)]
        assert [flow for g in result.groups for flow in g.flows] == [
            parse_line(V2, line) for line in lines]
        assert [g.max_start for g in result.groups] == [
            max(flow[whole] for flow in g.flows) for g in result.groups]
        assert result.counts["flows_parsed"] == 12


def test_reject_reason_is_text():
    """AWS documents reject-reason (v8) as BPA, EC2 or "-": every REJECT line carrying one was a
    not_a_number dead letter."""
    chunk = {"source": "f#0", "format": "version start srcaddr dstaddr action reject-reason",
             "lines": ["8 1767225720 10.0.0.1 10.0.0.2 REJECT BPA",
                       "8 1767225720 10.0.0.1 10.0.0.3 REJECT EC2",
                       "8 1767225720 10.0.0.1 10.0.0.4 ACCEPT -"]}
    for vectorise_from in (0, float("inf")):   # the columnar parse and the line by line
        result = parse_record(json.dumps(chunk), "r", V2, LIMITS, vectorise_from=vectorise_from)
        assert not result.dead_letters
        (group,) = result.groups
        assert [flow[-1] for flow in group.flows] == ["BPA", "EC2", None]


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
    with pytest.raises(FormatError, match="separated by spaces, not commas"):
        FlowFormat.parse("srcaddr,dstaddr,start")


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


GOOD = "2 1 eni 10.0.0.1 10.0.0.2 1 2 6 1 100 1767225600 1767225660 ACCEPT OK"


def test_a_staged_format_of_too_many_fields_is_refused_before_it_is_built():
    # A record naming 100,000 fields (1 KB compressed) once cost 0.8 GB to build its converter.
    def chunk(n_more):
        more = [f"x{i}" for i in range(n_more)]
        return json.dumps({"source": "f", "format": " ".join(["start srcaddr dstaddr"] + more),
                           "ignore": more, "lines": []})

    result = parse_record(chunk(50_000), "r", V2, LIMITS)
    assert [d[1] for d in result.dead_letters] == ["bad_chunk"]
    for limit, reasons in ((103, []), (102, ["bad_chunk"])):
        limits = Limits(60, 10**6, 86400, max_fields_per_line=limit)
        assert [d[1] for d in parse_record(chunk(100), "r", V2, limits).dead_letters] == reasons


@pytest.mark.parametrize("bogus_ms", [10**15, -10**18, 1000])
def test_an_event_timestamp_outside_the_era_does_not_refuse_the_other_lines(bogus_ms):
    for events in ([{"message": GOOD, "timestamp": 1767225630_000},
                    {"message": GOOD, "timestamp": bogus_ms}],
                   [{"message": GOOD, "timestamp": bogus_ms}]):
        doc = {"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s",
               "logEvents": events}
        result = parse_record(gzip.compress(json.dumps(doc).encode()), "r", V2, LIMITS)
        assert result.counts["flows_parsed"] == len(events) and not result.dead_letters


def test_bytes_not_utf8_cost_their_event_only():
    doc = ('{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":['
           f'{{"message":"{GOOD}"}},{{"message":"x\xff"}}]}}').encode("latin-1")
    result = parse_record(gzip.compress(doc), "r", V2, LIMITS)
    assert result.counts["flows_parsed"] == 1
    assert [d[1] for d in result.dead_letters] == ["not_text"]


@pytest.mark.parametrize("vectorise_from", [1, math.inf])
def test_a_flow_line_of_bytes_that_are_not_utf8_is_a_dead_letter_on_every_path(
        tmp_path, vectorise_from):
    """The readers put U+FFFD for bytes that are not UTF-8: in an interface, account or VPC id
    (text the parse keeps) the flow was kept, the id with U+FFFD in the enriched and
    data_quality outputs, a VPC id matching no VPC claim; in the action it was unknown_value,
    in a number not_a_number (a review). AWS writes flow logs in ASCII: such a line is one
    not_text dead letter wherever the bytes are, on a stream (a CloudWatch envelope), in a
    staged line (the JVM's file readers) and in a file job.replay stages."""
    from flowdredge.job.parse import parse_records, staged_line_records
    from flowdredge.job.replay import file_records
    fields = GOOD.split()
    damaged = [" ".join(fields[:i] + [fields[i][:1] + "\xff" + fields[i][1:]] + fields[i + 1:])
               for i in (1, 2, 6, 12)]   # account, interface, port, action
    damaged.append(GOOD.replace(" OK", " NODATA").replace("eni", "en\xffi"))
    raw = [line.encode("latin-1") for line in [GOOD] + damaged]
    events = b",".join(b'{"id":"%d","message":"%s"}' % item for item in enumerate(raw))
    envelope = gzip.compress(b'{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s",'
                             b'"logEvents":[' + events + b"]}")
    header = " ".join(V2.fields).encode()
    staged = b'{"source":"f.log","first_line":2,"format":"%s","lines":[%s]}' % (
        header, b",".join(b'"' + line + b'"' for line in raw))
    (tmp_path / "f.log").write_bytes(b"\n".join([header] + raw) + b"\n")
    results = [parse_record(envelope, "r", V2, LIMITS, vectorise_from=vectorise_from),
               *(parse_record(text, "r", V2, LIMITS, vectorise_from=vectorise_from)
                 for text, _, _ in staged_line_records(staged, 10_000)),
               parse_records([(record, "f.log", None)
                              for record in file_records(str(tmp_path / "f.log"), 100)],
                             V2, LIMITS, vectorise_from=vectorise_from)]
    for result in results:
        assert result.counts["flows_parsed"] == 1 and result.counts["no_data"] == 0
        assert [d[1] for d in result.dead_letters] == ["not_text"] * 5
        assert result.counts["dead_letter_not_text"] == 5


def test_a_flow_line_holding_u_fffd_itself_is_not_text_said_as_what_it_holds():
    """A line holding U+FFFD as UTF-8 (EF BF BD) is refused as one whose bytes the readers
    replaced: they cannot be told apart, and flow logs are ASCII. Its dead letter said 'bytes
    that are not UTF-8', which this line had not (a review)."""
    fields = GOOD.split()
    line = " ".join(fields[:2] + [fields[2] + "\ufffd"] + fields[3:])
    doc = ('{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":['
           f'{{"message":"{GOOD}"}},{{"message":"{line}"}}]}}')
    result = parse_record(gzip.compress(doc.encode()), "r", V2, LIMITS)
    assert result.counts["flows_parsed"] == 1
    assert [(d[1], d[4]) for d in result.dead_letters] == [
        ("not_text", "U+FFFD, which the readers write for bytes that are not UTF-8 (flow logs "
                     "are ASCII)")]


@pytest.mark.parametrize("vectorise_from", [1, math.inf])
def test_a_flow_line_spelling_a_lone_surrogate_is_a_not_text_dead_letter(vectorise_from):
    """JSON lets a CloudWatch event's message (or a staged line) spell a lone surrogate
    (\\ud800): in an interface or account id the flow was kept with it, its enriched and
    data_quality rows holding '\\udc80', as one holding U+FFFD was before it was refused (a
    review). It is no text, as an owner's is not (job.ownership._is_text): one not_text dead
    letter, its excerpt escaped."""
    from flowdredge.job.parse import staged_line_records
    fields = GOOD.split()
    damaged = [" ".join(fields[:i] + [fields[i] + "\\udc80"] + fields[i + 1:])
               for i in (1, 2)]   # account, interface: JSON escapes, ASCII bytes
    messages = [GOOD] + damaged
    events = ",".join('{"id":"%d","message":"%s"}' % item for item in enumerate(messages))
    envelope = gzip.compress(('{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s",'
                              '"logEvents":[' + events + "]}").encode())
    header = " ".join(V2.fields)
    staged = ('{"source":"f.log","first_line":2,"format":"%s","lines":[%s]}' % (
        header, ",".join('"' + line + '"' for line in messages))).encode()
    results = [parse_record(envelope, "r", V2, LIMITS, vectorise_from=vectorise_from),
               *(parse_record(text, "r", V2, LIMITS, vectorise_from=vectorise_from)
                 for text, _, _ in staged_line_records(staged, 10_000))]
    for result in results:
        assert result.counts["flows_parsed"] == 1
        assert [(d[1], d[4]) for d in result.dead_letters] == [
            ("not_text", "a lone surrogate (a \\ud800-\\udfff escape), which is not text")] * 2
        assert all("\\udc80" in d[3] for d in result.dead_letters)


def test_every_gzip_member_of_a_record_is_read_and_trailing_bytes_dead_lettered():
    two = _envelope([GOOD]) + _envelope([GOOD, GOOD])
    result = parse_record(two, "r", V2, LIMITS)
    assert result.counts["flows_parsed"] == 3 and not result.dead_letters
    padded = parse_record(_envelope([GOOD]) + b"\0" * 8, "r", V2, LIMITS)
    assert padded.counts["flows_parsed"] == 1 and not padded.dead_letters
    for tail, reason in ((b"garbage", "bad_gzip"), (_envelope([GOOD])[:20], "bad_gzip"),
                         (gzip.compress(b" " * 2_000_000), "too_large")):
        result = parse_record(_envelope([GOOD]) + tail, "r", V2, LIMITS)
        assert result.counts["flows_parsed"] == 1
        assert [d[1] for d in result.dead_letters] == [reason]
    # A record of many members: read up to MAX_MEMBERS, the rest one too_large.
    many = parse_record(_envelope([GOOD]) * (MAX_MEMBERS + 5), "r", V2, LIMITS)
    assert many.counts["flows_parsed"] == MAX_MEMBERS
    assert [d[1] for d in many.dead_letters] == ["too_large"]


def test_ipv6_addresses_are_kept_in_their_canonical_form():
    # The changelog keys an IPv6 address by its canonical text (job.ownership): a flow that
    # spells it otherwise must find the same owner.
    line = "2 1 eni 2001:DB8::5 2001:db8:0:0:0:0:0:6 1 2 6 1 100 1767225600 1767225660 ACCEPT OK"
    flow = parse_line(V2, line)
    assert (flow[V2.pos["srcaddr"]], flow[V2.pos["dstaddr"]]) == ("2001:db8::5", "2001:db8::6")
    # The vectorised parser hands such lines to the per-line one.
    lines = [GOOD] * 600 + [line]
    for vectorise_from in (1, float("inf")):
        result = parse_record(_envelope(lines), "r", V2, LIMITS, vectorise_from=vectorise_from)
        addresses = set()
        for group in result.groups:
            if group.columns is not None:
                addresses.update(group.columns.column(V2.pos["srcaddr"]).to_pylist())
            else:
                addresses.update(f[V2.pos["srcaddr"]] for f in group.flows)
        assert addresses == {"10.0.0.1", "2001:db8::5"}


@pytest.mark.parametrize("line,reason", [
    ("2 1 eni garbage !! - - - - - 1767225600 1767225660 - NODATA", "bad_address"),
    ("2 1 eni - - - - - - - 1767225660 1767225600 - NODATA", "end_before_start"),
    ("2 1 eni - - - - - - - 1767225600 32503680000 - NODATA", "timestamp_out_of_range"),
    ("2 1 eni - - - - - - - 409999999999 409999999999 - SKIPDATA", "timestamp_out_of_range"),
])
def test_no_data_lines_are_checked_as_flows_are(line, reason):
    result = parse_record(_envelope([GOOD, line]), "r", V2, LIMITS)
    assert [d[1] for d in result.dead_letters] == [reason]
    assert result.counts["flows_parsed"] == 1 and not result.no_traffic


def test_a_format_naming_a_field_twice_is_refused():
    with pytest.raises(FormatError, match="start"):
        FlowFormat.parse("srcaddr dstaddr start start")
    chunk = {"source": "f", "format": "start srcaddr dstaddr start", "lines": []}
    assert [d[1] for d in parse_record(json.dumps(chunk), "r", V2, LIMITS).dead_letters] == [
        "bad_chunk"]


def test_a_chunk_line_that_is_no_text_is_not_skipped_silently():
    chunk = {"source": "f", "format": "start srcaddr dstaddr", "lines": [
        "1767225720 10.0.0.1 8.8.8.8", None]}
    result = parse_record(json.dumps(chunk), "r", V2, LIMITS)
    assert [d[1] for d in result.dead_letters] == ["malformed"]


def test_a_record_that_is_no_bytes_nor_text_is_malformed():
    assert [d[1] for d in parse_record(5, "r", V2, LIMITS).dead_letters] == ["malformed"]


def _form_by_ipaddress(text: str):
    """job.parse._address_form as it was before its C path, ipaddress alone."""
    if "%" in text:
        return False
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if address.version == 6 and embeds_ipv4(address):
        return False
    return True if str(address) == text else str(address)


def test_an_ipv6_address_form_by_the_c_library_is_ipaddress_s():
    """_address_form takes an IPv6 address written as inet_ntop writes it as canonical without
    ipaddress: the same answer for every spelling of addresses with runs of zero groups in
    every place, IPv4-mapped, IPv4-compatible and those below them (which inet_ntop writes as
    dotted quads), upper case, leading zeros, a zone and garbage."""
    rnd = random.Random(15)
    values = [0, 1, 2, 0xFFFF, 1 << 16, (1 << 24) - 1, 1 << 24, (1 << 32) - 1, 1 << 32,
              0xFFFF << 32, (0xFFFF << 32) | 0x0A000001, (0xFFFE << 32) | 5, (1 << 128) - 1]
    for _ in range(3000):
        groups = [rnd.choice([0, 0, 0, 1, 0xFFFF, rnd.getrandbits(16)]) for _ in range(8)]
        values.append(int.from_bytes(b"".join(g.to_bytes(2, "big") for g in groups), "big"))
    texts = ["", ":", ":::", "1::2::3", "12345::", "g::1", "fe80::1%eth0", "10.0.0.1", "::1.2.3.04",
             "1.2.3.4::", "0:0:0:0:0:0:0:0:0"]
    for value in values:
        address = ipaddress.IPv6Address(value)
        texts += [str(address), address.exploded, str(address).upper(), address.compressed,
                  ":".join(f"{g:x}" for g in struct.unpack(">8H", address.packed))]
        if value < 1 << 32 or value >> 32 == 0xFFFF:
            v4 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
            texts += [f"::{v4}", f"::ffff:{v4}"]
    for text in texts:
        assert _address_form(text) == _form_by_ipaddress(text), text
