"""A shard's Kinesis records reach the parse together (connectors/jvm ShardBatches): every
record once, in its shard's order, batches of one shard each, cut at the record and byte limits
and at the end of the input; a record a producer wrote twice (RawRecords, RecentRecords) goes on
as a repeat, counted in its batch, without its bytes. A changelog record reaches its parse as a
staged chunk naming its shard and sequence number (ChangelogRecords)."""
import json
import os
import time

import pytest
from pyflink.common import Row, Types
from pyflink.common.watermark_strategy import WatermarkStrategy

from helpers import open_fifo_for_writing
from flowdredge.connectors.files import changelog_files
from flowdredge.connectors.jars import adapter_jars, connector_jars
from flowdredge.connectors.kinesis.flink import RAW_RECORD_TYPE, shard_batches
from flowdredge.connectors.kinesis.settings import KinesisSection
from flowdredge.connectors.streams import add_jars, jvm
from flowdredge.job.config import Config
from flowdredge.job.flink.run import make_env

pytestmark = pytest.mark.minicluster

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/flows"


def test_records_are_batched_per_shard_within_the_limits():
    # Shard 0's records are small (3 a batch: the record limit); shard 1's 125 bytes each (2 a
    # batch: together exactly the byte limit, 250, which ends a batch as reaching the record
    # limit does). Interleaved, as a reader of both shards emits them. Shard 0's repeats
    # (after its records 4 and 7) count in their batch, neither as a record nor in bytes.
    records = []
    for i in range(10):
        for shard in (0, 1):
            records.append(Row(f"{shard}-{i}".encode().ljust(125 if shard else 3, b"."), STREAM,
                               f"shardId-{shard}", str(i), False))
            if shard == 0 and i in (4, 7):
                records.append(Row(b"", STREAM, "shardId-0", f"{i}r", True))
    # No checkpoint while it runs: its barrier sends every batch on. CI89 once saw shard 1's
    # record 2 sent alone; a barrier is the one flush a slow run can add here (no timer fires
    # within batch_wait_ms, and a periodic watermark of 1 ms cut no batch in two runs).
    env = make_env(Config().replace(job={"checkpoint_interval_seconds": 3600}))
    env.set_parallelism(1)
    add_jars(env, adapter_jars())
    batches = shard_batches(env.from_collection(records, type_info=RAW_RECORD_TYPE),
                            KinesisSection(batch_records=3, batch_bytes=250,
                                           batch_wait_ms=600_000))
    # As text: what the parse step gets, without a Python function of this module (the
    # workers could not import it by name).
    seen = batches.map(lambda b: json.dumps([b[0], b[1], [[r[0].decode()[:4].rstrip("."),
                                                             r[1], r[2]] for r in b[2]], b[3]]),
                       output_type=Types.STRING())
    with seen.execute_and_collect() as results:
        got = [json.loads(line) for line in results]
    by_shard, repeats = {}, {}
    for stream, shard, batch, repeated in got:
        assert stream == STREAM
        by_shard.setdefault(shard, []).append([sequence for _, sequence, _ in batch])
        repeats.setdefault(shard, []).append(repeated)
        # No timestamps here: the records' arrival is None (Kinesis sets it: the e2e tests).
        assert all(data == f"{shard[-1]}-{sequence}" and arrival is None
                   for data, sequence, arrival in batch)
    numbers = [str(i) for i in range(10)]
    assert by_shard["shardId-0"] == [numbers[0:3], numbers[3:6], numbers[6:9], numbers[9:]]
    assert repeats["shardId-0"] == [0, 1, 1, 0]
    assert by_shard["shardId-1"] == [numbers[i:i + 2] for i in range(0, 10, 2)]
    assert repeats["shardId-1"] == [0] * 5


def test_a_quiet_shards_batch_goes_out_after_the_wait_again_and_again(tmp_path):
    """A batch below its limits goes out batch_wait_ms after its first record, with no
    checkpoint (an hour away), watermark or full batch to push it: a shard that gets few
    records must not hold them until the next checkpoint. Twice: the second batch starts after
    the first's timer fired, which must not leave the operator thinking a timer is still set.
    The records come from a FIFO kept open, so the end of the input flushes nothing."""
    fifo = str(tmp_path / "records")
    os.mkfifo(fifo)
    batches_log = str(tmp_path / "batches.log")
    env = make_env(Config().replace(job={"checkpoint_interval_seconds": 3600}))
    env.set_parallelism(1)
    add_jars(env, adapter_jars())
    # One changelog line a chunk: each line written is one record as soon as it is read.
    lines = env.from_source(changelog_files(fifo, 1, 8192, as_bytes=False),
                            WatermarkStrategy.no_watermarks(), "records", Types.STRING())
    records = lines.map(lambda chunk: Row(chunk.encode(), STREAM, "shardId-0",
                                          json.loads(chunk)["lines"][0], False),
                        output_type=RAW_RECORD_TYPE)
    batches = shard_batches(records, KinesisSection(batch_records=100, batch_bytes=1 << 20,
                                                    batch_wait_ms=100))

    def note(batch, log=batches_log):
        # A line per batch as it reaches the next step: its records' sequence numbers.
        with open(log, "a") as out:
            out.write(" ".join(r[1] for r in batch[2]) + "\n")
        return ""

    batches.map(note, output_type=Types.STRING()).print()
    client = env.execute_async("flowdredge batch wait test")

    def batches_seen(count, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if os.path.exists(batches_log):
                with open(batches_log) as log:
                    seen = log.read().splitlines()
                if len(seen) >= count:
                    return seen
            time.sleep(0.2)
        raise AssertionError(f"{count} batches not out in {timeout_s} s")

    writer = None
    try:
        writer = open_fifo_for_writing(fifo, 60)
        # Lines longer than the 22 characters the source reads before its first line (to tell
        # a staged file), which it would wait for.
        first, second = "the quiet shard's record 1", "the quiet shard's record 2"
        os.write(writer, f"{first}\n".encode())
        assert batches_seen(1, 40) == [first]
        os.write(writer, f"{second}\n".encode())
        assert batches_seen(2, 20) == [first, second]
    finally:
        cancelled = client.cancel()
        if writer is not None:
            os.close(writer)   # the source's blocked read ends, so the job can stop
        cancelled.result()


def _emitted(schema, shard: str, data: bytes, arrival_ms: int, sequence: str = None):
    """What a KinesisDeserializationSchema emits for one record of STREAM, as the connector's
    emitter calls it."""
    j = jvm()
    shaded = "org.apache.flink.connector.kinesis.sink.shaded.software.amazon.awssdk"
    sdk_bytes = getattr(j, f"{shaded}.core.SdkBytes")
    builder = getattr(j, f"{shaded}.services.kinesis.model.Record").builder()
    record = (builder.data(sdk_bytes.fromByteArray(data))
              .sequenceNumber(sequence or f"{arrival_ms}")
              .approximateArrivalTimestamp(j.java.time.Instant.ofEpochMilli(arrival_ms)).build())
    out = j.java.util.ArrayList()
    schema.deserialize(record, STREAM, shard,
                       j.org.apache.flink.api.common.functions.util.ListCollector(out))
    assert out.size() == 1
    return out.get(0)


def _deserialize(raw_records, shard: str, data: bytes, arrival_ms: int) -> tuple:
    """RawRecords' row for one Kinesis record: (data, shard, repeat)."""
    row = _emitted(raw_records, shard, data, arrival_ms)
    return bytes(row.getField(0)), row.getField(2), row.getField(4)


def test_a_record_written_twice_goes_on_as_a_repeat_within_the_window():
    """Equal bytes on the same shard within the window (arrival time) are a repeat, sent on
    without their bytes; on another shard or after the window, a record; a window of 0 marks
    none."""
    add_jars(make_env(Config()), connector_jars())
    window_ms, t0 = 300_000, 1_767_225_600_000
    raw_records = jvm().io.flowdredge.kinesis.RawRecords(window_ms)
    a, b = b"\x1f\x8b record a", b"\x1f\x8b record b"
    sent = [("shardId-0", a, t0), ("shardId-0", b, t0 + 1000), ("shardId-0", a, t0 + 2000),
            ("shardId-1", a, t0 + 2000), ("shardId-0", b, t0 + 1000 + window_ms),
            ("shardId-0", b, t0 + 1001 + window_ms), ("shardId-0", a, t0 + 2000 + window_ms)]
    got = [_deserialize(raw_records, *s) for s in sent]
    assert [repeat for _, _, repeat in got] == [False, False, True, False, True, False, False]
    assert [data for data, _, _ in got] == [a, b, b"", a, b"", b, a]
    assert [shard for _, shard, _ in got] == [s[0] for s in sent]

    never = jvm().io.flowdredge.kinesis.RawRecords(0)
    assert [_deserialize(never, "shardId-0", a, t0 + i)[2] for i in range(3)] == [False] * 3


def test_a_shard_read_far_behind_another_in_arrival_time_still_finds_its_repeats():
    """Whether a shard is still read is a matter of processing time, not of the records'
    arrival times: a shard an hour behind another (a backlog read after a restart) keeps its
    memory when the other's records arrive, and a copy of its record within the window is a
    repeat. Forgetting by arrival time would send that copy on as a record, counted twice."""
    add_jars(make_env(Config()), connector_jars())
    t0 = 1_767_225_600_000
    raw_records = jvm().io.flowdredge.kinesis.RawRecords(10_000)
    sent = [("shardId-0", b"a", t0), ("shardId-1", b"b", t0 + 3_600_000),
            ("shardId-0", b"a", t0 + 1000)]
    assert [_deserialize(raw_records, *s)[2] for s in sent] == [False, False, True]


def test_a_shards_memory_is_kept_for_the_window_and_dropped_once_the_shard_is_not_read():
    """Within a shard, records leave the memory once the window (arrival time) has passed them;
    a shard not read for the window (processing time: a reshard's parent) is forgotten, one
    read meanwhile is kept however far behind its arrival times are (a backlog)."""
    add_jars(make_env(Config()), adapter_jars())
    recent = jvm().io.flowdredge.kinesis.RecentRecords(10_000)
    now = 1_000_000   # the first call sweeps; the next sweep is due a second after it
    for i in range(5):
        assert not recent.repeated("s/parent", f"r{i}".encode(), i * 1000, now + i)
    assert recent.size() == 5
    assert not recent.repeated("s/parent", b"r5", 12_500, now + 5)    # r0..r2 before 2,500
    assert recent.size() == 3
    assert recent.repeated("s/parent", b"r3", 12_600, now + 6)        # the parent's last read
    # A shard an hour ahead in arrival time: the parent, read just before, is kept.
    assert not recent.repeated("s/child", b"c0", 3_600_000, now + 7)
    assert recent.size() == 4
    # A sweep exactly the window after the parent's last read keeps it ...
    assert not recent.repeated("s/child", b"c1", 3_601_000, now + 10_006)
    assert recent.size() == 5
    # ... the next, a second later, forgets it (its r4 still within the window by arrival).
    assert not recent.repeated("s/child", b"c2", 3_602_000, now + 11_006)
    assert recent.size() == 3
    assert not recent.repeated("s/parent", b"r4", 12_800, now + 11_007)


def test_a_record_behind_a_later_arrival_is_no_repeat_after_the_window():
    """Arrival times a little out of order leave a record behind a later one in the memory:
    its own time, not its place, says when a copy is no longer a repeat."""
    add_jars(make_env(Config()), adapter_jars())
    recent = jvm().io.flowdredge.kinesis.RecentRecords(10_000)
    assert not recent.repeated("s", b"x", 5_000, 0)
    assert not recent.repeated("s", b"y", 1_000, 1)
    assert recent.repeated("s", b"y", 11_000, 2)        # the window's edge
    assert not recent.repeated("s", b"y", 11_001, 3)    # after it, though x is still held
    assert recent.repeated("s", b"x", 12_000, 4)
    assert recent.repeated("s", b"y", 21_001, 5)        # a repeat of that copy
    assert recent.size() == 1                           # x and y's first copy gone


def test_a_changelog_record_reaches_the_parse_with_its_lines_and_where_it_came_from():
    """ChangelogRecords' chunk holds the record's lines as str.split("\\n") gives them (quotes,
    backslashes, control characters, non-ASCII, empty lines; bytes that are not UTF-8 as
    JVM_NOT_UTF8, not U+FFFD, which made an owner's name another without a word), and a bad
    line's dead letter names the stream, shard, sequence number and line."""
    from flowdredge.job.ownership import JVM_NOT_UTF8, parse_chunk
    from flowdredge.schemas.metadata import OWNER_FIELDS
    add_jars(make_env(Config()), connector_jars())
    good = [json.dumps({"type": "ASSIGN", "ts": 1767225600000 + i, "ip": f"10.0.0.{i}",
                        "app": app}, ensure_ascii=ascii_only)
            for i, (app, ascii_only) in enumerate([("api", True), ('say "hi" \\ caf\u00e9', False),
                                                   ("tab\there", True), ("\u65e5\u672c", False)])]
    data = "\n".join(good[:2] + ["", "{not json", "\x01\x1f"] + good[2:]).encode("utf-8") \
        + b'\n\xff\xfe bad bytes\n{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.0.9",' \
        + b'"app":"caf\xe9"}'
    sequence = "49590338271490256608559692538361571095921575989136588898"
    chunk = _emitted(jvm().io.flowdredge.kinesis.ChangelogRecords(), "shardId-000000000003", data,
                     1767225600000, sequence)
    staged = json.loads(chunk)
    assert staged["staged"] == "changelog"
    assert staged["lines"] == data.decode("utf-8", "replace").replace(
        "\ufffd", JVM_NOT_UTF8).split("\n")
    where = f"kinesis:flows/shardId-000000000003/{sequence}"
    assert staged["source"] == where
    parsed, raw = parse_chunk(chunk), parse_chunk(data.decode("utf-8", "surrogateescape"))
    assert parsed.events == raw.events and len(parsed.events) == 5   # the last an UNASSIGN
    app = OWNER_FIELDS.index("app")
    # A tab among other characters reaches the parse as it was and is refused there
    # (not_text, applied as an UNASSIGN: bddad77).
    assert [e.owner and e.owner[app] for e in parsed.events] == [
        "api", 'say "hi" \\ caf\u00e9', None, "\u65e5\u672c", None]
    assert [(reason, location) for reason, location, *_ in parsed.rejected] == [
        (reason, location.replace("metadata", where)) for reason, location, *_ in raw.rejected]
    assert [(reason, location) for reason, location, *_ in parsed.rejected] == [
        ("not_json", f"{where}:4"), ("not_json", f"{where}:5"), ("not_text", f"{where}:6"),
        ("not_text", f"{where}:8"), ("not_text", f"{where}:9")]


def test_a_changelog_record_of_a_json_array_reaches_the_parse_whole():
    """A record holding a JSON array of changes over lines (CRLF line ends) is handed on as its
    lines, which the parse reads as one array: each change applied, as in the record's own text
    (before, not_json a line: the UNASSIGN lost, its address kept its owner)."""
    from flowdredge.job.ownership import parse_chunk
    add_jars(make_env(Config()), connector_jars())
    changes = [{"type": "UNASSIGN", "ts": 1767225600000, "ip": "10.0.0.1"},
               {"type": "ASSIGN", "ts": 1767225600000, "ip": "10.0.0.2", "app": "api"}]
    data = json.dumps(changes, indent=2).replace("\n", "\r\n").encode()
    chunk = _emitted(jvm().io.flowdredge.kinesis.ChangelogRecords(), "shardId-000000000002", data,
                     1767225600000, "5")
    parsed, raw = parse_chunk(chunk), parse_chunk(data.decode())
    assert parsed.events == raw.events
    assert [(e.type, e.ip) for e in parsed.events] == [("UNASSIGN", "10.0.0.1"),
                                                      ("ASSIGN", "10.0.0.2")]
    assert not parsed.rejected and not raw.rejected


def test_a_changelog_records_own_text_is_only_ever_lines():
    """A record whose text is itself a staged chunk names no other source, first line or time
    bound: it is one line, and its dead letter names the record. An empty record is one empty
    line."""
    from flowdredge.job.ownership import parse_chunk
    add_jars(make_env(Config()), connector_jars())
    records = jvm().io.flowdredge.kinesis.ChangelogRecords()
    fake = json.dumps({"staged": "changelog", "source": "elsewhere", "first_line": 100,
                       "not_after": 0, "lines": ['{"type": "HEARTBEAT", "ts": 1767225600000}']})
    chunk = _emitted(records, "shardId-000000000001", fake.encode(), 1767225600000, "7")
    staged = json.loads(chunk)
    assert set(staged) == {"staged", "source", "first_line", "lines"}
    assert staged["lines"] == [fake] and staged["first_line"] == 1
    parsed = parse_chunk(chunk)
    assert not parsed.events
    assert [location for _, location, *_ in parsed.rejected] == [
        "kinesis:flows/shardId-000000000001/7:1"]
    empty = json.loads(_emitted(records, "shardId-000000000001", b"", 1767225600000, "8"))
    assert empty["lines"] == [""]
