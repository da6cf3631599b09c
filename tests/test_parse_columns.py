"""The vectorised parser gives exactly what the per-line parser gives: the same flows in the same
groups and order, the same dead letters with the same reasons and excerpts, the same counts."""
import base64
import gzip
import json
import math

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdredge.job import parse_columns
from flowdredge.job.codec import decode_group, encode_group
from flowdredge.job.parse import (FlowFormat, FlowGroup, Limits, ParseResult, address_form,
                                  _start_bounds, parse_batches, parse_lines,
                                  parse_record, parse_records)
from flowdredge.schemas.fields import INT, LONG
from flowdredge.schemas.flowlog import (BY_AWS_NAME, DEFAULT_FORMAT, MAX_LONG, SHORTEST_EVENT,
                                        value_range)

pytestmark = pytest.mark.unit

V2 = FlowFormat(DEFAULT_FORMAT)
FORMATS = [
    V2,
    FlowFormat("start srcaddr dstaddr action bytes".split()),
    FlowFormat("version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr "
               "srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action "
               "tcp-flags log-status".split()),
    # A field this release does not know named twice (a known one twice is refused).
    FlowFormat("srcaddr dstaddr foo-bar start end foo-bar srcport dstport".split()),
    # A field this release does not know: split off and dropped.
    FlowFormat("srcaddr foo-bar dstaddr start packets bytes".split()),
]
# Generated numbers reach 2**64, "long" lines pass 400 characters: both limits are met.
LIMITS = Limits(60, 10**7, 86400, max_ahead_seconds=3600, max_line_bytes=400,
                max_flow_bytes=10**12)
DELIVERED = 1767225600
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def outcome(result: ParseResult):
    return ([(g.fmt.names, g.window_start, g.max_start, g.source, g.flows) for g in result.groups],
            result.dead_letters, result.counts, list(result.no_traffic.items()))


def both(fmt, lines, stream_time):
    fast, slow = ParseResult(), ParseResult()
    parse_lines(fmt, lines, "src", LIMITS, fast, stream_time, vectorise_from=1)
    parse_lines(fmt, lines, "src", LIMITS, slow, stream_time, vectorise_from=math.inf)
    return fast, slow


# Values a field may take, good and bad, by kind.
ADDRESSES = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str),
    st.sampled_from(["10.0.0.1", "172.31.16.139", "0.0.0.0", "255.255.255.255", "::1",
                     "2001:db8:1234:a102:3304:8879:34cf:4071", "::ffff:10.0.0.1", "fe80::1%eth0",
                     "999.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.4/32",
                     "10.0.0.1:80", "x", "-", "0x0a.0.0.1", "1.2.3.04"]))
NUMBERS = st.one_of(
    st.integers(-5, 70_000).map(str), st.integers(0, 2**64).map(str),
    st.sampled_from(["-", "0", "-0", "007", "65535", "65536", "-1", "+5", "0x10", "0X1f", "1_0",
                     "1e3", "٣", "9223372036854775807", "9223372036854775808",
                     "999999999999999999", "1000000000000000000", "--5", "5-", "",
                     "9" * 4301]))   # beyond int()'s 4,300 digits
STARTS = st.one_of(st.integers(DELIVERED - 2 * 86400, DELIVERED + 2 * 86400).map(str),
                   st.sampled_from(["-", "0", "1262303999", "1262304000", "4102444799",
                                    "4102444800", str(DELIVERED - 86400),
                                    str(DELIVERED + 86400), str(DELIVERED + 86399), "0x10"]))
TEXTS = st.one_of(st.sampled_from(["ACCEPT", "REJECT", "OK", "NODATA", "SKIPDATA", "-", "eni-1",
                                   "123456789010", '"quoted"', "a,b", "x\ty", "é", "0x5"]),
                  st.text(alphabet=st.characters(codec="ascii", exclude_characters=" \n"),
                          min_size=1, max_size=6))
BY_NAME = {"srcaddr": ADDRESSES, "dstaddr": ADDRESSES, "pkt-srcaddr": ADDRESSES,
           "pkt-dstaddr": ADDRESSES, "start": STARTS, "end": STARTS, "log-status": st.one_of(
               st.just("OK"), st.sampled_from(["NODATA", "SKIPDATA", "-", "nodata"])),
           "action": st.one_of(st.sampled_from(["ACCEPT", "REJECT", "-"]), TEXTS)}


def _numeric(fmt, j):
    """The range of split column j if it holds a known numeric field, else None."""
    f = BY_AWS_NAME.get(fmt.names[j])
    return value_range(f) if f is not None and f.kind in (INT, LONG) else None


def _field(fmt, j):
    name = fmt.names[j]
    if name in BY_NAME:
        return BY_NAME[name]
    return NUMBERS if _numeric(fmt, j) else TEXTS


def _good_value(fmt, j, draw):
    name = fmt.names[j]
    if name in ("srcaddr", "dstaddr", "pkt-srcaddr", "pkt-dstaddr"):
        # Not an IPv6 address that spells an IPv4 one (::ffff:10.0.0.1, ::10.0.0.1): refused.
        return draw(st.ip_addresses().filter(
            lambda a: a.version == 4 or a.ipv4_mapped is None and not 2**24 <= int(a) < 2**32)
                    .map(str))
    if name in ("start", "end"):
        return str(DELIVERED + 120)
    if _numeric(fmt, j):
        lowest, highest = _numeric(fmt, j)
        return str(draw(st.integers(lowest, min(highest, LIMITS.max_flow_bytes))))
    if name == "log-status":
        return "OK"
    if name == "action":
        return draw(st.sampled_from(["ACCEPT", "REJECT", "-"]))
    return draw(st.sampled_from(["ACCEPT", "REJECT", "eni-1", "123456789010", "-"]))


def _join(fields, draw):
    """Fields joined as AWS does, or with whitespace str.split() also accepts."""
    seps = draw(st.lists(st.sampled_from([" "] * 12 + ["  ", "\t", "\xa0", "\u2003", "\x1f",
                                                       "\r", "\n", "\x0b"]),
                         min_size=len(fields), max_size=len(fields)))
    line = "".join(f + s for f, s in zip(fields, [*seps[:-1], ""]))
    return draw(st.sampled_from(["", " ", "\t"])) + line + draw(st.sampled_from(["", " ", "\r"]))


@st.composite
def lines_of(draw, fmt):
    """Lines, mostly well-formed: any field value (good or bad), any separator, a field more or
    less, blank lines, garbage; and which of them are clean, valid flows."""
    lines, good = [], []
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["good"] * 6 + ["fields", "mangled", "count", "shifted",
                                                    "blank", "garbage", "long"]))
        if kind == "good":
            line = " ".join(_good_value(fmt, i, draw) for i in range(fmt.width))
            good.append(len(lines))
        elif kind == "fields":
            line = " ".join(draw(_field(fmt, i)) for i in range(fmt.width))
        elif kind == "mangled":
            line = _join([draw(_field(fmt, i)) for i in range(fmt.width)], draw)
        elif kind == "count":
            fields = [draw(_field(fmt, i)) for i in range(fmt.width)]
            line = " ".join(fields[:-1] if draw(st.booleans()) else fields + ["1"])
        elif kind == "shifted":
            # A field short, and an empty one where a separator doubles: the field count a
            # CSV reader sees is right, str.split()'s is not.
            fields = [_good_value(fmt, i, draw) for i in range(fmt.width - 1)]
            at = draw(st.integers(0, len(fields)))
            line = " ".join(fields[:at] + [""] + fields[at:])
        elif kind == "long":
            fields = [_good_value(fmt, i, draw) for i in range(fmt.width)]
            fields[draw(st.integers(0, fmt.width - 1))] = "a" * (LIMITS.max_line_bytes - 5)
            line = " ".join(fields)
        elif kind == "blank":
            line = draw(st.sampled_from(["", " ", "\t", "  \n"]))
        else:
            line = draw(st.text(max_size=60))
        lines.append(line)
    return lines, good


@SETTINGS
@given(st.data())
def test_vectorised_equals_per_line_on_any_lines(data):
    fmt = data.draw(st.sampled_from(FORMATS))
    lines, good = data.draw(lines_of(fmt))
    stream_time = data.draw(st.sampled_from([None, DELIVERED, DELIVERED + 86400, -10**20, 10**20]))
    fast, slow = both(fmt, lines, stream_time)
    assert outcome(fast) == outcome(slow)
    assert through_codec(fast.groups) == fast.groups
    if lines and stream_time in (None, DELIVERED):
        # The vectorised path itself accepts every clean, valid line: the equality above is not
        # the per-line parser compared with itself.
        chunk = parse_columns.parse_chunk(fmt, lines, *_start_bounds(LIMITS, stream_time), 60,
                                          address_form, LIMITS.max_line_bytes,
                                          LIMITS.max_flow_bytes)
        assert not set(good) & set(chunk.rest)


@SETTINGS
@given(st.data())
def test_vectorised_equals_per_line_on_clean_chunks(data):
    """Chunks as AWS writes them, with at most a few bad values: the whole-chunk path."""
    fmt = data.draw(st.sampled_from(FORMATS))
    lines = [" ".join(_good_value(fmt, i, data.draw) for i in range(fmt.width))
             for _ in range(data.draw(st.integers(1, 30)))]
    for _ in range(data.draw(st.integers(0, 3))):
        row = data.draw(st.integers(0, len(lines) - 1))
        fields = lines[row].split(" ")
        col = data.draw(st.integers(0, len(fields) - 1))
        if data.draw(st.booleans()):
            fields[col] = data.draw(_field(fmt, col).filter(lambda v: v and " " not in v))
        else:   # an empty field (a doubled space: only str.split() sees it), or one field fewer
            fields[col:col + 1] = [""] if data.draw(st.booleans()) else []
        lines[row] = " ".join(fields)
    fast, slow = both(fmt, lines, DELIVERED)
    assert outcome(fast) == outcome(slow)
    assert through_codec(fast.groups) == fast.groups


def through_codec(groups) -> list:
    """The groups as the attribution operator receives them (job.codec): a vectorised group
    as its columns, the others as their flows."""
    back = [decode_group(encode_group(g), g.window_start, g.max_start) for g in groups]
    assert [g.columns is None for g in back] == [g.columns is None for g in groups]
    return back


def test_a_window_of_a_clean_chunk_crosses_as_its_rows_only():
    """A group is a slice of its chunk's columns; the codec writes its own rows, not the
    chunk's."""
    lines = [f"2 1 eni-{i} 10.0.0.1 10.0.0.2 1 2 6 1 100 {DELIVERED + 60 * (i % 10)} "
             f"{DELIVERED + 60 * (i % 10) + 5} ACCEPT OK" for i in range(1000)]
    fast, slow = both(V2, lines, DELIVERED)
    assert outcome(fast) == outcome(slow)
    assert len(fast.groups) == 10 and all(g.columns is not None for g in fast.groups)
    chunk = pa.Table.from_batches([g.columns for g in fast.groups]).combine_chunks()
    whole = FlowGroup(V2, 0, 0, None, "src", chunk.to_batches()[0])
    assert len(encode_group(fast.groups[0])) < len(encode_group(whole)) / 5
    assert through_codec(fast.groups) == slow.groups


def test_every_window_keeps_its_flows_in_line_order():
    starts = [DELIVERED + s for s in (130, 5, 61, 0, 179, 62, 1, 125)]
    lines = [f"2 1 eni-{i} 10.0.0.1 10.0.0.{i} 1 2 6 1 100 {s} {s + 5} ACCEPT OK"
             for i, s in enumerate(starts)]
    fast, slow = both(V2, lines, DELIVERED)
    assert outcome(fast) == outcome(slow)
    assert [(g.window_start - DELIVERED, g.max_start - DELIVERED, len(g.flows))
            for g in fast.groups] == [(120, 179, 3), (0, 5, 3), (60, 62, 2)]
    assert [f[2] for f in fast.groups[0].flows] == ["eni-0", "eni-4", "eni-7"]


def test_one_dirty_line_leaves_the_rest_of_the_chunk_vectorised():
    good = "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 1767225660 1767225670 ACCEPT OK"
    lines = [good] * 50 + [good.replace(" ", "\t", 1), good.replace("6", "0x6", 1), "", good]
    chunk = parse_columns.parse_chunk(V2, lines, 0, 2**40, 60, address_form, 200, 10**12)
    assert chunk.rest == [50, 51, 52]
    fast, slow = both(V2, lines, None)
    assert outcome(fast) == outcome(slow)
    # The tab-separated line is a good flow: it takes its place among the others.
    assert fast.counts["flows_parsed"] == 52 and fast.dead_letters[0][1] == "not_a_number"


def test_an_id_holding_a_control_character_is_a_not_text_dead_letter_by_both_paths():
    """An id (interface, account, VPC, an ECS task's...) holding a control character or
    another that is not printable (AWS writes printable ASCII) was kept, the character in the
    enriched and late lines and in the data quality rows' keys (a review); a DEL passed even
    the vectorised path's whole-chunk test. Each is now a counted not_text dead letter naming
    the field, by both paths, a NODATA line's too."""
    fmt = FlowFormat("account-id interface-id srcaddr dstaddr start vpc-id ecs-task-id "
                     "log-status".split())
    good = f"123456789012 eni-1 10.0.0.1 10.0.0.2 {DELIVERED} vpc-1 t-1 OK"
    nodata = f"123456789012 eni-1 - - {DELIVERED} vpc-1 t-1 NODATA"
    cases = [("account-id", "1234\x0056789012", "\\x00"), ("interface-id", "eni-\x7f1", "\\x7f"),
             ("vpc-id", "vpc-\x1b[31m1", "\\x1b"), ("ecs-task-id", "t-\x9b1", "\\x9b"),
             ("interface-id", "eni-\u200b1", "\\u200b")]
    for field, value, shown in cases:
        for line in (good, nodata):
            fields = line.split()
            fields[fmt.names.index(field)] = value
            lines = [good] * 20 + [" ".join(fields)]
            fast, slow = both(fmt, lines, DELIVERED)
            assert outcome(fast) == outcome(slow)
            assert fast.counts["flows_parsed"] == 20 and not fast.no_traffic
            assert [(d[1], d[4]) for d in fast.dead_letters] == [
                ("not_text", f"{field} holds '{shown}', a character that is not printable: AWS "
                             f"writes flow logs in printable ASCII")]
            assert fast.counts["dead_letter_not_text"] == 1


def test_a_traffic_path_beyond_a_java_int_is_dead_lettered():
    # AWS documents traffic-path as INT_32: the row type crossing into the JVM is an int.
    fmt = FlowFormat("srcaddr dstaddr start traffic-path".split())
    lines = [f"10.0.0.1 10.0.0.2 {DELIVERED} {path}" for path in (2**31 - 1, 2**31)]
    fast, slow = both(fmt, lines, DELIVERED)
    assert outcome(fast) == outcome(slow)
    assert fast.counts["flows_parsed"] == 1
    assert [d[1] for d in fast.dead_letters] == ["number_out_of_range"]


def test_an_end_more_than_an_hour_after_its_start_is_dead_lettered_by_both_paths():
    good = f"2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 {DELIVERED} {{end}} ACCEPT OK"
    ends = [DELIVERED + 3600, DELIVERED + 3601, 32503680000, 2**63 - 1, DELIVERED]
    lines = [good.format(end=end) for end in ends] * 10
    fast, slow = both(V2, lines, DELIVERED)
    assert outcome(fast) == outcome(slow)
    assert fast.counts["flows_parsed"] == 20
    assert [d[1] for d in fast.dead_letters] == ["timestamp_out_of_range"] * 30


def test_aws_examples_through_both_paths(aws_examples):
    for fmt_text, lines in aws_examples.items():
        fmt = V2 if fmt_text == "default" else FlowFormat.parse(fmt_text)
        for stream_time in (None, 1418530010, DELIVERED):
            fast, slow = both(fmt, lines * 30, stream_time)
            assert outcome(fast) == outcome(slow)
        assert fast.counts["lines_in"] == len(lines) * 30


def _cloudwatch(lines, stamp=DELIVERED, stream="eni-1"):
    doc = {"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": stream,
           "logEvents": [{"id": str(i), "timestamp": stamp * 1000, "message": line}
                         for i, line in enumerate(lines)]}
    return base64.b64encode(gzip.compress(json.dumps(doc).encode())).decode()


@SETTINGS
@given(st.data())
def test_records_parse_alike_above_and_below_the_threshold(data):
    fmt = data.draw(st.sampled_from(FORMATS))
    lines, _ = data.draw(lines_of(fmt))
    items = data.draw(st.sampled_from([lines, lines + [7], [None] + lines, lines + [0]]))
    records = [_cloudwatch(lines) if fmt == V2 else None,
               json.dumps({"source": "f", "format": " ".join(fmt.names), "lines": items,
                           "delivered": DELIVERED})]
    for raw in filter(None, records):
        fast = parse_record(raw, "r", V2, LIMITS, vectorise_from=1)
        slow = parse_record(raw, "r", V2, LIMITS, vectorise_from=math.inf)
        assert outcome(fast) == outcome(slow)


def _flows_by_window(result):
    by_window = {}
    for g in result.groups:
        flows, latest = by_window.get((g.fmt.names, g.window_start), ([], 0))
        by_window[(g.fmt.names, g.window_start)] = (sorted(flows + g.flows, key=repr),
                                                   max(latest, g.max_start))
    return by_window


def _added_up(results):
    total = ParseResult()
    for r in results:
        total.groups += r.groups
        total.dead_letters += r.dead_letters
        total.counts.update(r.counts)
        total.no_traffic.update(r.no_traffic)
    return total


@SETTINGS
@given(st.data())
def test_records_parsed_together_give_what_each_gives(data):
    """A batch of records (job.flink: a shard's records in one call): their lines are parsed
    together, each with its own record's bounds (a start out of range for one record may be in
    range for another) and names; the result is the records' own results added up, one group a
    window, and the same above and below the vectorising threshold."""
    records = []
    for i in range(data.draw(st.integers(1, 5))):
        fmt = data.draw(st.sampled_from(FORMATS[:3]))
        lines, _ = data.draw(lines_of(fmt))
        arrival = data.draw(st.sampled_from([None, DELIVERED, DELIVERED + 86400,
                                             DELIVERED + 2 * 86400]))
        stamp = data.draw(st.sampled_from([DELIVERED, DELIVERED + 86400]))
        raw = data.draw(st.sampled_from([
            _cloudwatch(lines if fmt == V2 else [], stamp, f"eni-{i}"),
            json.dumps({"source": f"f{i}", "format": " ".join(fmt.names), "lines": lines,
                        "delivered": stamp}),
            "not a record"]))
        records.append((raw, f"r{i}", arrival))
    together = parse_records(records, V2, LIMITS, vectorise_from=1)
    assert outcome(together) == outcome(parse_records(records, V2, LIMITS,
                                                      vectorise_from=math.inf))
    each = _added_up([parse_record(raw, source, V2, LIMITS, arrival)
                     for raw, source, arrival in records])
    assert _flows_by_window(together) == _flows_by_window(each)
    assert sorted(together.dead_letters) == sorted(each.dead_letters)
    assert (together.counts, together.no_traffic) == (each.counts, each.no_traffic)
    windows = [(g.fmt.names, g.window_start) for g in together.groups]
    assert len(windows) == len(set(windows))


def test_small_records_parsed_together_take_the_vectorised_path():
    """Records under the threshold each, over it together: one group of columns a window."""
    line = "2 1 eni-{i} 10.0.0.1 10.0.0.2 1 2 6 1 100 {s} {e} ACCEPT OK"
    records = [(_cloudwatch([line.format(i=i, s=DELIVERED + j, e=DELIVERED + j + 5)
                             for j in range(100)], stream=f"eni-{i}"), f"r{i}", DELIVERED)
               for i in range(6)]
    alone = parse_record(*records[0][:2], V2, LIMITS, records[0][2])
    together = parse_records(records, V2, LIMITS)
    assert [g.columns is None for g in alone.groups] == [True, True]
    assert [(g.columns is None, len(g), g.source) for g in together.groups] == [
        (False, 360, "g/eni-0"), (False, 240, "g/eni-0")]
    # A start in the others' range but not in its own record's (delivered two days before):
    # their bounds do not let it through.
    early = (_cloudwatch([line.format(i=9, s=DELIVERED + 50, e=DELIVERED + 55)],
                         stamp=DELIVERED - 2 * 86400, stream="eni-9"), "r9", DELIVERED)
    mixed = parse_records([early] + records, V2, LIMITS)
    assert mixed.counts["dead_letter_timestamp_out_of_range"] == 1
    assert mixed.dead_letters[0][2] == "r9 g/eni-9 event 0"
    assert sum(len(g) for g in mixed.groups) == 600


def test_records_parsed_together_may_end_in_an_empty_line():
    """The reader takes a last empty line for the end of the one before: a row short of the
    per-line bounds, which failed the batch (a shard's records; a reviewer's fuzzer)."""
    line = f"2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 {DELIVERED} {DELIVERED + 5} ACCEPT OK"
    records = [(_cloudwatch([line] * 300, stream="eni-1"), "r0", DELIVERED),
               (_cloudwatch([line] * 300 + [""], stream="eni-2"), "r1", DELIVERED)]
    together = parse_records(records, V2, LIMITS)
    assert outcome(together) == outcome(parse_records(records, V2, LIMITS,
                                                      vectorise_from=math.inf))
    assert sum(len(g) for g in together.groups) == 600 and not together.dead_letters


def test_a_batch_holds_no_more_than_one_record_may():
    """However well records compress, a batch's lines hold at most flows.max_decompressed_bytes
    characters, as one record's: memory stays bounded, and a group's sums fit a 64-bit integer
    as job.config checks a record's do (five records of the largest flows in one group would
    not)."""
    fmt = FORMATS[1]
    cap = 2000
    limits = Limits(60, cap, 86400, max_ahead_seconds=3600,
                    max_flow_bytes=MAX_LONG // (cap // 18))
    line = f"{DELIVERED} ::1 ::1 ACCEPT {limits.max_flow_bytes}"   # 43 characters
    records = [(json.dumps({"source": f"f{i}", "format": " ".join(fmt.names),
                            "lines": [line] * 40, "delivered": DELIVERED}), f"r{i}", None)
               for i in range(5)]
    assert 5 * 40 * limits.max_flow_bytes > MAX_LONG
    batches = list(parse_batches(records, V2, limits))
    assert [sum(len(g) for g in b.groups) for b in batches] == [40] * 5
    bytes_at = fmt.pos["bytes"]
    assert all(sum(f[bytes_at] for f in g.flows) <= MAX_LONG for b in batches for g in b.groups)
    each = _added_up([parse_record(raw, source, V2, limits) for raw, source, _ in records])
    assert outcome(_added_up(batches)) == outcome(each)
    # Two such records (80 lines, 3,440 characters) fit a batch of 80 events' size.
    wider = Limits(60, SHORTEST_EVENT * 80, 86400, max_ahead_seconds=3600,
                   max_flow_bytes=limits.max_flow_bytes)
    assert [sum(len(g) for g in b.groups)
            for b in parse_batches(records, V2, wider)] == [80, 80, 40]


def test_a_batch_holds_records_up_to_exactly_one_records_worth():
    """Both bounds of a batch are inclusive: records whose lines hold exactly
    flows.max_decompressed_bytes characters, and as many lines as one record holds events, are
    one batch; a character more makes two."""
    fmt = FORMATS[1]
    line = f"{DELIVERED} 2001:db8:1:2:3:4:5:6 2001:db8:1:2:3:4:5:7 ACCEPT 100"
    limits = Limits(60, 2 * len(line), 86400, max_ahead_seconds=3600)
    assert limits.max_decompressed_bytes // SHORTEST_EVENT == 2

    def batches(lines):
        records = [(json.dumps({"source": f"f{i}", "format": " ".join(fmt.names),
                                "lines": [text], "delivered": DELIVERED}), f"r{i}", None)
                   for i, text in enumerate(lines)]
        return [b.counts["flows_parsed"] for b in parse_batches(records, V2, limits)]

    assert batches([line, line]) == [2]
    assert batches([line, line + "0"]) == [1, 1]


def test_records_parsed_together_one_stamped_beyond_int64_parse_as_each():
    """A staged chunk's delivered stamp is any JSON integer: one past int64 makes its record's
    range of starts empty, which the per-line bounds of a batch hold as (0, 0); taken as it
    is, the batch raised OverflowError out of the parse, the other records' flows lost."""
    fmt = FORMATS[1]
    records = [(json.dumps({"source": f"f{i}", "format": " ".join(fmt.names),
                            "lines": [f"{DELIVERED} 10.0.0.1 10.0.0.2 ACCEPT 5"],
                            "delivered": stamp}), f"r{i}", None)
               for i, stamp in enumerate((DELIVERED, 2**70, -2**70))]
    together = parse_records(records, V2, LIMITS, vectorise_from=1)
    assert outcome(together) == outcome(parse_records(records, V2, LIMITS,
                                                      vectorise_from=math.inf))
    assert together.counts["flows_parsed"] == 1
    assert [d[1:3] for d in together.dead_letters] == [("timestamp_out_of_range", "f1:1"),
                                                       ("timestamp_out_of_range", "f2:1")]


def test_a_batch_holds_no_more_lines_than_one_record_holds_events():
    """Short lines (3 characters) cost the worker tens of bytes each all the same: a batch
    holds at most as many lines as one record of flows.max_decompressed_bytes holds events
    (SHORTEST_EVENT bytes the least), one record's worth."""
    fmt = FORMATS[1]
    limits = Limits(60, SHORTEST_EVENT * 50, 86400, max_ahead_seconds=3600)
    records = [(json.dumps({"source": f"f{i}", "format": " ".join(fmt.names),
                            "lines": ["x y"] * 30, "delivered": DELIVERED}), f"r{i}", None)
               for i in range(4)]
    batches = list(parse_batches(records, V2, limits))
    assert [b.counts["dead_letter_field_count"] for b in batches] == [30] * 4
    wider = Limits(60, SHORTEST_EVENT * 60, 86400, max_ahead_seconds=3600)
    assert [b.counts["dead_letter_field_count"]
            for b in parse_batches(records, V2, wider)] == [60, 60]


def test_a_record_of_several_gzip_members_counts_them_all_in_its_batch():
    """Each member's envelope waits to be parsed on its own; only the last one's lines were
    counted against the batch's bounds: Kinesis records of a large member then a small one
    made one batch of them all, 10 records 5.6 times flows.max_decompressed_bytes of lines
    (and 3.4 times as many lines as one record holds events), a shard's batch of them
    (kinesis.batch_records, batch_bytes) many times it, held at once in the worker (a probe).
    A record's members are one batch's too, with its counts."""
    line = "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 {s} {s} ACCEPT OK".format(s=DELIVERED)

    def member(n):
        return base64.b64decode(_cloudwatch([line] * n))
    records = [(member(80) + member(5), f"r{i}", DELIVERED) for i in range(10)]
    # As much as one record decompresses to: two records' lines are more.
    limits = Limits(60, len(gzip.decompress(records[0][0])), 86400, max_ahead_seconds=3600)
    assert 2 * 85 * len(line) > limits.max_decompressed_bytes
    batches = list(parse_batches(records, V2, limits))
    assert [(b.counts["lines_in"], b.counts["records_in"]) for b in batches] == [(85, 1)] * 10
    assert all(b.counts["lines_in"] * len(line) <= limits.max_decompressed_bytes
               for b in batches)
    each = _added_up([parse_record(raw, source, V2, limits, delivered)
                      for raw, source, delivered in records])
    added = _added_up(batches)
    assert _flows_by_window(added) == _flows_by_window(each)
    assert (added.dead_letters, added.counts) == (each.dead_letters, each.counts)


def test_a_record_of_more_values_than_its_size_holds_events_is_refused_undecoded():
    """An event with a flow takes at least SHORTEST_EVENT bytes of JSON and opens
    EVENT_VALUE_MARKS values; decoded, any value takes tens of bytes. A record of tiny events,
    or of a list of empty lists beside its events, would take ~30x its size: too_large, as a
    gzip bomb, before json.loads makes an object of each."""
    tiny = {"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "eni-1",
            "logEvents": [{"id": "", "timestamp": 0, "message": "x"}] * 2000}
    side = {"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "eni-1",
            "logEvents": [], "x": [[]] * 2000}
    for doc in (tiny, side):
        raw = base64.b64encode(gzip.compress(json.dumps(doc, separators=(",", ":")).encode()))
        result = parse_record(raw.decode(), "r", V2, LIMITS)
        assert result.counts["dead_letter_too_large"] == 1 and result.counts["lines_in"] == 0
    line = "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 {s} {s} ACCEPT OK"
    assert sum(len(g) for g in parse_record(_cloudwatch(
        [line.format(s=DELIVERED)] * 2000), "r", V2, LIMITS).groups) == 2000
    # A header with a few braces or commas of its own (AWS allows them in names) is no record
    # of tiny events.
    odd = _cloudwatch([line.format(s=DELIVERED)], stream="{" * 100 + "," * 100)
    assert parse_record(odd, "r", V2, LIMITS).counts["flows_parsed"] == 1


def test_a_batch_ends_once_it_holds_batch_lines():
    """A file's records (job.flink: read_flow_file) are parsed together up to flows.chunk_lines
    lines a batch; a record's dead letters and counts go with the batch its lines do (a record
    without lines, with the batch it comes in)."""
    line = "2 1 eni-{i} 10.0.0.1 10.0.0.2 1 2 6 1 100 {s} {e} ACCEPT OK"
    records = [(_cloudwatch([line.format(i=i, s=DELIVERED + j, e=DELIVERED + j + 5)
                             for j in range(100)], stream=f"eni-{i}"), f"r{i}", DELIVERED)
               for i in range(6)]
    records.insert(4, ("not a record", "bad", None))
    batches = list(parse_batches(records, V2, LIMITS, batch_lines=250))
    assert [(sum(len(g) for g in b.groups), b.counts["records_in"], b.counts["dead_letter"])
            for b in batches] == [(200, 2, 0), (200, 3, 1), (200, 2, 0)]
    whole, added = parse_records(records, V2, LIMITS), _added_up(batches)
    assert _flows_by_window(added) == _flows_by_window(whole)
    assert (added.dead_letters, added.counts) == (whole.dead_letters, whole.counts)
    assert len(list(parse_batches(records[:1], V2, LIMITS, batch_lines=100))) == 1
