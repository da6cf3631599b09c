"""Lines of staged records and changelog files reach the parse steps as bytes (connectors/jvm
LineBytes): the same lines, cut where Flink's text line format cuts them, whatever the line
endings, lengths and buffer boundaries; the flow-file gate reads a changelog line's time from
its bytes (ChangelogTimestamps)."""
import json
import os
import random

import pytest
from pyflink.common import Types

from flowdredge.connectors.files import _text_lines
from flowdredge.connectors.jars import adapter_jars
from flowdredge.connectors.s3 import flink_uri
from flowdredge.connectors.streams import add_jars, jvm
from flowdredge.job.config import Config
from flowdredge.job.flink.run import make_env

pytestmark = pytest.mark.minicluster

BUFFER = 1 << 16   # LineBytes reads the file in pieces of this size


def _read(path, as_bytes: bool, max_line_bytes: int = 1 << 30) -> list:
    """The lines as the parse step gets them, in order."""
    env = make_env(Config())
    add_jars(env, adapter_jars())
    # What a Python step gets, as text: the hex of bytes, or the str marked. (A function of
    # this module would be pickled by name, which the Python workers cannot import.)
    lines = _text_lines(env, str(path), "lines", "lines",
                        max_line_bytes=max_line_bytes if as_bytes else None) \
        .map(lambda line: line.hex() if isinstance(line, bytes) else f"str:{line}",
             output_type=Types.STRING()).set_parallelism(1)
    with lines.execute_and_collect() as seen:
        return [line[4:] if line.startswith("str:") else bytes.fromhex(line) for line in seen]


def _content() -> bytes:
    long_line = b"x" * (3 * BUFFER + 17)                # spans four reads
    # A "\r\n" split across two reads: the "\r" is the buffer's last byte.
    before_split = b"y" * (4 * BUFFER - len(long_line) - 2)
    return b"".join([
        long_line, b"\n",
        before_split, b"\r\n",
        b"after a split \\r\\n\r",                        # a lone "\r" ends a line
        b"\n",                                           # with "\r": one ending, not an empty line
        b"\n",                                           # an empty line
        "non-ASCII: caf\u00e9 \u65e5\u672c\r\n".encode("utf-8"),
        b'{"staged": "record", "lines": ["2 a b"]}\n',
        b"\r",                                           # an empty line ended by "\r"
        b"the last line, no ending",
    ])


def test_line_bytes_cut_lines_as_the_text_format_does(tmp_path):
    path = tmp_path / "records.txt"
    content = _content()
    assert content.index(b"\r\n", 3 * BUFFER) == 4 * BUFFER - 1
    path.write_bytes(content)
    as_bytes = _read(path, True)
    as_text = _read(path, False)
    assert all(isinstance(line, bytes) for line in as_bytes)
    assert [line.decode("utf-8") for line in as_bytes] == as_text
    assert len(as_bytes) == 8
    assert as_bytes[0] == b"x" * (3 * BUFFER + 17) and as_bytes[3] == b""
    assert as_bytes[-2:] == [b"", b"the last line, no ending"]


def test_line_bytes_cut_a_line_past_the_limit_and_read_on(tmp_path):
    """LineBytes held a staged line whole, however long: one of 130 MB ran the JVM out of heap
    (a review). A line past the limit is cut to one byte more, the rest read through, never
    held (the parse step dead-letters it: job.parse.staged_line_records), and the lines after
    it read; one at the limit is whole."""
    limit = 3 * BUFFER + 5
    path = tmp_path / "records.txt"
    long_line = bytes(range(256)).replace(b"\n", b"").replace(b"\r", b"") * (32 * BUFFER // 254)
    path.write_bytes(b"first\n" + long_line + b"\r\n" + b"y" * limit + b"\nlast")
    assert len(long_line) > 2_000_000
    assert _read(path, True, limit) == [b"first", long_line[:limit + 1], b"y" * limit, b"last"]


def test_line_bytes_read_an_empty_file_and_a_file_of_one_ending(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "one.txt").write_bytes(b"\n")
    assert _read(tmp_path / "empty.txt", True) == _read(tmp_path / "empty.txt", False) == []
    assert _read(tmp_path / "one.txt", True) == [b""]
    assert _read(tmp_path / "one.txt", False) == [""]


def test_a_folder_of_staged_files_is_read_in_the_order_of_their_paths(tmp_path):
    """Flink's own split assigner hands a folder's files out in no fixed order (a followed
    folder's too, those one scan finds): the staged files of a replay or `feed`
    (feed-<epoch ms>) are read in the order of their paths (connectors/jvm PathOrder)."""
    names = ["feed-07", "feed-03", "sub/feed-10", "feed-01", "sub/feed-02", "feed-09",
             "feed-05", "feed-08", "feed-04", "feed-06"]
    (tmp_path / "sub").mkdir()
    for name in names:
        (tmp_path / name).write_text(f"{name} 1\n{name} 2\n")
    assert _read(tmp_path, True) == [f"{name} {n}".encode() for name in sorted(names)
                                     for n in (1, 2)]


def test_changelog_lines_as_bytes_carry_their_latest_ts(tmp_path):
    """The flow-file gate's time (connectors/jvm ChangelogTimestamps) read from a line's bytes:
    an event's ts, a staged chunk's latest (its quotes escaped), past non-ASCII values; a line
    without one (a string is not one) keeps the record's own timestamp (none, from a file)."""
    from pyflink.common import Duration
    from pyflink.common.watermark_strategy import WatermarkStrategy
    from pyflink.datastream import ProcessFunction
    from flowdredge.connectors.streams import with_java_timestamps

    lines = [
        '{"type": "ASSIGN", "ts": 1767225600000, "ip": "10.0.0.1", "app": "caf\u00e9"}',
        '{"staged": "changelog", "lines": ["{\\"type\\": \\"ASSIGN\\", \\"ts\\": 1767225601000}",'
        ' "{\\"ts\\":1767225605000, \\"type\\": \\"HEARTBEAT\\"}"]}',
        '{"type": "HEARTBEAT", "app": "\u65e5\u672c", "ts" : 1767225609000}',
        # A staged event past its file's time (not_after), which the job refuses: the gate's
        # time stops there; a line's own not_after field (quotes escaped) bounds nothing.
        '{"staged": "changelog", "not_after": 1767225610, "lines": '
        '["{\\"type\\": \\"ASSIGN\\", \\"ts\\": 4102444700000}"]}',
        '{"staged": "changelog", "lines": ["{\\"not_after\\": 1, \\"ts\\": 1767225611000}"]}',
        '{"note": "no time here"}',
        '{"tsx": 1999999999999, "ts": "1767225700000"}',   # neither is a ts
    ]
    path = tmp_path / "changelog.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8") + b"\n")

    class Timestamps(ProcessFunction):
        def process_element(self, value, ctx):
            yield str(ctx.timestamp())

    env = make_env(Config())
    add_jars(env, adapter_jars())
    timed = with_java_timestamps(
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(0)),
        jvm().io.flowdredge.files.ChangelogTimestamps())
    stream = _text_lines(env, str(path), "changelog", "changelog", watermarks=timed,
                         max_line_bytes=1 << 20) \
        .process(Timestamps(), output_type=Types.STRING()).set_parallelism(1)
    with stream.execute_and_collect() as seen:
        stamps = list(seen)
    assert stamps[:5] == ["1767225600000", "1767225605000", "1767225609000", "1767225610000",
                          "1767225611000"]
    assert stamps[5:] == [str(-2**63)] * 2   # Long.MIN_VALUE: no timestamp


def _parse_step_time(line: str):
    """The time the parse step finds in a changelog line (job.ownership: changelog_lines, then
    each line's top-level whole-number ts), capped at a staged chunk's not_after; None if none.
    Events it would refuse for another reason (type, address) still count, as at the gate."""
    from flowdredge.job.ownership import changelog_lines

    record = changelog_lines(line)
    stamps = []
    for text in record.lines:
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            continue
        ts = doc.get("ts") if isinstance(doc, dict) else None
        if isinstance(ts, float) and ts.is_integer():
            ts = int(ts)
        if isinstance(ts, int) and not isinstance(ts, bool) and 0 <= ts < 10**18:
            stamps.append(ts)
    latest = max(stamps, default=None)
    if latest is not None and record.not_after is not None:
        latest = min(latest, record.not_after * 1000)
    return latest


def _changelog_line(rng: random.Random) -> str:
    """A changelog line as a publisher or the replay's stager could write it, with what could
    fool a scan for "ts": nested objects and lists holding one, strings holding one (escaped
    once more in a staged chunk), duplicate keys, whole floats, exponents, non-ASCII owners."""
    far = 4102444800000   # 2100: any ts the gate took from the wrong place would show

    def event():
        fields = {"type": rng.choice(["ASSIGN", "UNASSIGN", "HEARTBEAT", "OTHER"]),
                  "ip": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"}
        choice = rng.randrange(10)
        ts = 1767225600000 + rng.randrange(10**8)
        fields["ts"] = (ts if choice < 6 else float(ts) if choice == 6 else str(ts)
                        if choice == 7 else None if choice == 8 else 1e20)
        extras = [("app", rng.choice(["api", "caf\u00e9", "\u65e5\u672c", 'say "ts": 4102444800000'])),
                  ("tags", {"ts": far, "deeper": [{"ts": far}]}),
                  ("history", [far, {"ts": far}]), ("note", '\\"ts\\": 4102444800000')]
        for key, value in rng.sample(extras, rng.randrange(len(extras) + 1)):
            fields[key] = value
        items = list(fields.items())
        rng.shuffle(items)
        spaces = rng.choice([(", ", ": "), (",", ":"), (" , ", " : ")])
        text = "{" + spaces[0].join(json.dumps(k) + spaces[1] + json.dumps(v, ensure_ascii=rng.random() < 0.5)
                                    for k, v in items) + "}"
        if rng.random() < 0.1:   # a duplicate key: the parse step takes the last
            text = text[:-1] + spaces[0] + '"ts"' + spaces[1] + str(far) + "}" \
                if rng.random() < 0.5 else '{"ts": ' + str(far) + spaces[0] + text[1:]
        return text

    if rng.random() < 0.4:
        return event()
    chunk = {"staged": "changelog", "source": rng.choice(["a.jsonl", 'odd "ts": 4102444800000']),
             "first_line": 1, "not_after": rng.choice([1767225600 + rng.randrange(10**5), None]),
             "lines": [event() if rng.random() < 0.9 else "" for _ in range(rng.randrange(1, 6))]}
    if chunk["not_after"] is None:
        del chunk["not_after"]
    if rng.random() < 0.2:
        chunk["long"] = [[0, '{"ts": 4102444800000']]
    return json.dumps(chunk, ensure_ascii=rng.random() < 0.5)


def test_a_changelog_event_after_the_replays_flows_gives_the_gate_no_time():
    """A replay's flows all start before their end (job.replay.flows_end): an event at or
    after it, which the parse step does not read, gives the gate no time, alone or in a staged
    chunk, where the chunk's other events still do."""
    add_jars(make_env(Config()), adapter_jars())
    end, none = 1767225620000, -2**63
    gate = jvm().io.flowdredge.files.ChangelogTimestamps(end)
    staged = '{"staged": "changelog", "lines": [%s]}'
    for text, expected in [
            ('{"type": "HEARTBEAT", "ts": 1767225619999}', 1767225619999),
            ('{"type": "HEARTBEAT", "ts": 1767225620000}', none),
            (staged % '"{\\"ts\\": 1767225615000}", "{\\"ts\\": 4102444700000}", '
                      '"{\\"ts\\": 1767225620000}"', 1767225615000),
            (staged % '"{\\"ts\\": 1767225625000}"', none),
            # An event read through its unescaped text (a newline between its fields).
            (staged % '"{\\"ts\\":\\n4102444700000}", "{\\"ts\\":\\n1767225616000}"',
             1767225616000)]:
        assert gate.extractTimestamp(text.encode("utf-8"), none) == expected, text
    assert jvm().io.flowdredge.files.ChangelogTimestamps().extractTimestamp(
        b'{"ts": 4102444700000}', none) == 4102444700000


def test_the_gate_time_is_the_parse_steps_top_level_ts():
    """The flow-file gate's time (ChangelogTimestamps) against the parse step's reading of the
    same 3,000 random lines (and each cut short): equal on every one. A "ts" in a nested field
    or inside a string (unknown fields are accepted) once opened the gate to every file. Where
    the scan cannot be sure, it finds no time or an earlier one: the gate waits longer."""
    env = make_env(Config())
    add_jars(env, adapter_jars())
    gate = jvm().io.flowdredge.files.ChangelogTimestamps()
    rng = random.Random(20261205)
    none = -2**63
    for _ in range(3000):
        line = _changelog_line(rng)
        for text in (line, line[:rng.randrange(len(line))]):   # whole, and cut short
            expected = _parse_step_time(text)
            assert gate.extractTimestamp(text.encode("utf-8"), none) == \
                (none if expected is None else expected), text
    # Where the scan is unsure it finds no time, or one no later than the parse step's: a
    # reviewer's counterexamples to earlier versions (escaped keys and "staged" values, non-ASCII
    # before "changelog", whole floats past 2^53, not_after past a long, an event cut short on an
    # escape, stray words, leading zeros, mismatched brackets, a form feed, deep nesting).
    far = 4102444800000
    for text in [
            '{"t\\u0073": 1767225600000}', '{"ts": 1.7672256e12}',
            '{"staged": "changelog", "lines": ["{\\"t\\\\u0073\\": 1767225600000}"]}',
            '{"ts": 4102444800000, "t\\u0073": 1767225600000}',
            '{"ts": 4102444800000, "\\u0074s": null}',
            '{"staged":"changelog","lines":["{\\"ts\\":4102444800000,\\"t\\\\u0073\\":1767225600000}"]}',
            '{"staged":"changelog","not_after":"x","not_\\u0061fter":1767225600,'
            '"lines":["{\\"ts\\":4102444800000}"]}',
            '{"changelog":0,"staged":"chang\\u0065log","ts":4102444800000,'
            '"lines":["{\\"ts\\":1767225600000}"]}',
            '{"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9":0,'
            '"staged":"changelog","ts":4102444800000,"lines":["{\\"ts\\":1767225600000}"]}',
            '{"ts": 9007199254740993.0}',
            '{"staged":"changelog","not_after":-9223372036854776,"lines":["{\\"ts\\":1767225600000}"]}',
            '{"staged":"changelog","not_after":-1000000000000000000,"lines":["{\\"ts\\":1767225600000}"]}',
            '{"staged":"changelog","lines":["{\\"a\\":\\"x\\\\","\\\\\\""],"ts":4102444800000}',
            json.dumps({"staged": "changelog", "lines": ['{"a":"x\\', 'x]'], 'zz"ts': far}),
            '{"ts": 4102444800000, x}', '{"ts": 04102444800000}', '{"ts":4102]',
            '{"staged":"changelog","lines":["{\\"ts\\":410244s4800000}"]}',
            '{"staged":"changelog","lines":["{\\"ts\\":4102444800000]"]}',
            '{\f"ts": 4102444800000}',
            '{"ts": 4102444800000, "a": ' + "[" * 1000 + "]" * 1000 + '}']:
        expected = _parse_step_time(text)
        found = gate.extractTimestamp(text.encode("utf-8"), none)
        assert found == none or (expected is not None and found <= expected), text


def test_the_gate_time_at_the_edges_of_what_the_parse_step_reads():
    """At the edges of what the parse step reads, the gate's time (ChangelogTimestamps) is
    exactly the parse step's: "changelog" ending at a line's 40th character still makes it a
    staged chunk (the parse step looks in the first 40: a miss took the chunk's own top-level
    ts, in 2100); a ts of 19 digits is past the parse step's times (below 10^18) and gives
    none, even one past a long; a two-letter key starting with "t" in a staged event is not
    its ts."""
    add_jars(make_env(Config()), adapter_jars())
    gate = jvm().io.flowdredge.files.ChangelogTimestamps()
    none = -2**63
    at_40 = ('{"aaaaaaaaaaaa": 0, "staged": "changelog", "lines": ["{\\"ts\\": 1767225600000}"], '
             '"ts": 4102444800000}')
    assert at_40.index("changelog") + len("changelog") == 40
    staged = '{"staged": "changelog", "lines": ["%s"]}'
    for text, expected in [
            (at_40, 1767225600000),
            ('{"ts": 999999999999999999}', 999999999999999999),
            ('{"ts": 1000000000000000000}', None),
            ('{"ts": 9999999999999999999}', None),
            (staged % '{\\"ts\\": 1000000000000000000}', None),
            (staged % '{\\"ts\\": 1767225600000, \\"tx\\": 4102444800000}', 1767225600000)]:
        assert _parse_step_time(text) == expected, text
        assert gate.extractTimestamp(text.encode("utf-8"), none) == \
            (none if expected is None else expected), text


def test_the_gateway_finds_the_jars_classes_from_any_of_its_threads():
    """py4j serves each connection on its own Java thread and finds classes through that
    thread's context class loader; PyFlink's add_jars gives the jars to one thread's: a lookup
    that py4j sent over another connection (opened when two Python threads use the gateway at
    once) failed now and then in the middle of building a job. Here the serving thread is made
    such a thread, with the system class loader as its context loader; add_jars' classes are
    found all the same, a later call's jars too."""
    from flowdredge.connectors.jars import connector_jars

    def from_a_thread_without_the_jars(lookup):
        thread = jvm().java.lang.Thread.currentThread()
        before = thread.getContextClassLoader()
        thread.setContextClassLoader(jvm().java.lang.ClassLoader.getSystemClassLoader())
        try:
            return lookup()
        finally:
            thread.setContextClassLoader(before)

    env = make_env(Config())
    add_jars(env, adapter_jars())
    # An unknown class would be a py4j JavaPackage, which calling raises TypeError.
    assert from_a_thread_without_the_jars(
        lambda: jvm().io.flowdredge.files.LineBytes(1).getClass().getName()) == \
        "io.flowdredge.files.LineBytes"
    add_jars(env, connector_jars())
    assert from_a_thread_without_the_jars(
        lambda: jvm().io.flowdredge.kinesis.RawRecords(0).getClass().getName()) == \
        "io.flowdredge.kinesis.RawRecords"
    kinesis = jvm().org.apache.flink.connector.kinesis.source
    assert from_a_thread_without_the_jars(
        lambda: kinesis.KinesisStreamsSource.builder().getClass().getSimpleName()) == \
        "KinesisStreamsSourceBuilder"
    # The next job's jars, added again: a class found before (py4j keeps it) and one found
    # now work together.
    add_jars(make_env(Config()), connector_jars())
    changelog = jvm().io.flowdredge.kinesis.ChangelogRecords()
    assert kinesis.KinesisStreamsSource.builder().setDeserializationSchema(
        changelog).getClass().getSimpleName() == "KinesisStreamsSourceBuilder"


def _changelog_chunks(path, max_lines: int, max_chars: int, label: str = "",
                      max_line_chars: int = 8192) -> list:
    """What the job's own changelog source (connectors/jvm ChangelogFiles: a stream's snapshot,
    a file job's changelog) sends the changelog parse."""
    from pyflink.common.watermark_strategy import WatermarkStrategy
    from pyflink.datastream.connectors.base import Source
    env = make_env(Config())
    env.set_parallelism(1)
    add_jars(env, adapter_jars())
    from flowdredge.connectors.staged import staged_changelog_max
    source = Source(jvm().io.flowdredge.files.ChangelogFiles.text(
        flink_uri(str(path)), max_lines, max_chars, max_line_chars,
        staged_changelog_max(max_lines, max_line_chars), label))
    with env.from_source(source, WatermarkStrategy.no_watermarks(), "changelog",
                         Types.STRING()).execute_and_collect() as seen:
        return list(seen)


def test_a_changelog_snapshot_is_read_in_staged_chunks_numbered_by_their_place_in_the_file(
        tmp_path):
    """A snapshot (kinesis.metadata_snapshot) reaches the changelog parse in chunks of lines
    (connectors/jvm LineChunks), each a staged chunk numbered from its first line's place in
    the file: a bad line's dead letter names the snapshot and the line."""
    from flowdredge.job.ownership import parse_chunk
    lines = [json.dumps({"type": "ASSIGN", "ts": 1767225600000, "ip": f"10.0.0.{i}",
                         "app": f'a"\\{i}'}) for i in range(7)]
    lines[4] = "{not json"
    path = tmp_path / "snapshot.jsonl"
    # A byte-order mark (an editor's) is not part of the first line.
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    chunks = _changelog_chunks(path, 3, 1 << 20, "metadata snapshot ")
    staged = [json.loads(chunk) for chunk in chunks]
    assert [(c["first_line"], c["lines"]) for c in staged] == [
        (1, lines[0:3]), (4, lines[3:6]), (7, lines[6:])]
    # Bounded by the file's modification time, as a replay's staging bounds it.
    assert {c["not_after"] for c in staged} == {int(os.path.getmtime(path))}
    # Cut by characters as before chunks were staged: while the lines joined by newlines are
    # shorter than the limit (a restore skips as many chunks as were emitted). Two lines of 10
    # joined are 21 characters: a limit of 22 takes a third, one of 21 (reached exactly) not.
    ten = tmp_path / "ten.jsonl"
    ten.write_text("x" * 10 + "\n" + "\n".join(["y" * 10] * 6))
    assert [json.loads(chunk)["first_line"] for chunk in _changelog_chunks(ten, 100, 22)] == [
        1, 4, 7]
    assert [json.loads(chunk)["first_line"] for chunk in _changelog_chunks(ten, 100, 21)] == [
        1, 3, 5, 7]
    parsed = [parse_chunk(chunk) for chunk in chunks]
    assert sum(len(p.events) for p in parsed) == 6
    assert [location for p in parsed for _, location, *_ in p.rejected] == [
        f"metadata snapshot {path}:5"]


def test_a_folder_of_changelog_files_is_read_in_the_order_of_their_paths(tmp_path):
    """Flink's own split assigner hands a folder's files out in no fixed order; a changelog's
    order decides its owners. Each file's chunks name the file; a file job.replay staged
    already goes on a line at a time, as it was staged."""
    from flowdredge.job.replay import stage_metadata
    folder = tmp_path / "changelog"
    (folder / "b").mkdir(parents=True)
    names = ["b/07", "03", "b/10", "01", "b/02", "09", "05", "08", "04", "06"]
    for name in names:
        (folder / name).write_text(json.dumps({"type": "HEARTBEAT", "ts": 1767225600000})
                                   + "\n")
    raw = stage_metadata([str(folder / "03")], str(tmp_path / "staged.jsonl"))
    assert raw == 1
    (folder / "00-staged").write_bytes((tmp_path / "staged.jsonl").read_bytes() * 2)
    chunks = _changelog_chunks(folder, 100, 1 << 20)
    sources = [json.loads(chunk)["source"] for chunk in chunks]
    assert sources == [str(folder / "03")] * 2 + [
        str(folder / name) for name in sorted(names)]
    assert chunks[0] == chunks[1] == (tmp_path / "staged.jsonl").read_text().strip()


def test_a_staged_changelog_line_longer_than_staging_writes_is_a_dead_letter(tmp_path):
    """A staged file's line went on whole, however long (connectors/jvm LineChunks): one of
    200 MB ran the JVM out of heap, the job restarting until its restarts were spent (a
    review). One longer than staging writes with the job's metadata.chunk_lines and
    max_line_bytes (connectors.staged.staged_changelog_max) is cut as a line too long is, a
    chunk of its own naming the file and line and that limit: a dead letter line_too_long
    saying it, the file's other lines read, one at the limit whole."""
    from flowdredge.connectors.staged import staged_changelog_max
    from flowdredge.job.ownership import MetaLimits, parse_chunk
    from flowdredge.job.replay import stage_metadata
    limit = staged_changelog_max(3, 100)

    def staged(name, n, chunk_lines, pad=None):
        events = tmp_path / f"{name}.jsonl"
        events.write_text("".join(json.dumps({"type": "HEARTBEAT", "ts": 1767225600000 + i})
                                  + "\n" for i in range(n)))
        stage_metadata([str(events)], str(tmp_path / "one.jsonl"), chunk_lines)
        line = (tmp_path / "one.jsonl").read_text().rstrip("\n")
        if pad is not None:   # a key the parse passes over, to make the line `pad` long
            line = line[:-1] + ', "pad": ""}'
            line = line[:-2] + "x" * (pad - len(line)) + '"}'
        return line

    lines = [staged("a", 2, 3), staged("big", 40_000, 40_000), staged("c", 2, 3),
             staged("d", 1, 3, pad=limit), staged("e", 1, 3, pad=limit + 1)]
    assert len(lines[1]) > 1_500_000 > limit and [len(line) for line in lines[3:]] == [
        limit, limit + 1]
    path = tmp_path / "staged.jsonl"
    path.write_text("\n".join(lines) + "\n")
    chunks = _changelog_chunks(path, 3, 1 << 20, max_line_chars=100)
    assert [chunks[0], chunks[2], chunks[3]] == [lines[0], lines[2], lines[3]]
    assert [(c["source"], c["first_line"], c["lines"], c["staged_max"])
            for c in map(json.loads, chunks[1::3])] == [
        (str(path), 2, [lines[1][:101]], limit), (str(path), 5, [lines[4][:101]], limit)]
    parsed = [parse_chunk(chunk, limits=MetaLimits(max_line_bytes=100)) for chunk in chunks]
    assert sum(len(p.events) for p in parsed) == 5
    # The limit the line passed, not the max_line_bytes it was cut to (a review).
    detail = (f"a staged line of more than {limit} characters, the longest staging writes "
              f"with metadata.chunk_lines and metadata.max_line_bytes")
    assert [(reason, where, why) for p in parsed for reason, where, _, why in p.rejected] == [
        ("line_too_long", f"{path}:2", detail), ("line_too_long", f"{path}:5", detail)]


def test_changelog_files_cut_lines_as_the_replay_does_and_hold_no_long_line(tmp_path):
    """Lines end at "\\n" less a "\\r" before it, as job.replay stages a changelog (a lone
    "\\r" may sit between JSON values); a line longer than metadata.max_line_bytes is cut to
    one character more, never held whole, and the parse dead-letters it as too long, as the
    replay does the whole line."""
    from flowdredge.job.ownership import MetaLimits, parse_chunk
    from flowdredge.job.replay import stage_metadata
    event = json.dumps({"type": "ASSIGN", "ts": 1767225600000, "ip": "10.0.0.1", "app": "a"})
    lone = event.replace(", ", ",\r")
    # Line 6: white space past the limit, then text: too long, not blank.
    text = (event + "\r\n" + lone + "\n" + "x" * 5000 + "\r\n" + "y" * 100 + "\r\n"
            + "z" * 101 + "\r\n" + " " * 150 + "w\n\n" + event + "\r")
    path = tmp_path / "changes.jsonl"
    path.write_bytes(text.encode())
    chunk, = _changelog_chunks(path, 100, 1 << 20, max_line_chars=100)
    assert json.loads(chunk)["lines"] == [event, lone, "x" * 101, "y" * 100, "z" * 101,
                                          " " * 100 + "w", "", event]
    limits = MetaLimits(max_line_bytes=100)
    parsed = parse_chunk(chunk, limits=limits)
    assert len(parsed.events) == 3
    # Characters as Python counts them (code points), not Java's (two for an emoji).
    wide = tmp_path / "wide.jsonl"
    wide.write_text("\U0001F600" * 100 + "\n" + "\U0001F600" * 150 + "\n", encoding="utf-8")
    (chunk_of_wide,) = _changelog_chunks(wide, 100, 1 << 20, max_line_chars=100)
    assert json.loads(chunk_of_wide)["lines"] == ["\U0001F600" * 100, "\U0001F600" * 101]
    stage_metadata([str(path)], str(tmp_path / "staged.jsonl"), max_line_bytes=100)
    staged = parse_chunk((tmp_path / "staged.jsonl").read_text(), limits=limits)
    assert sorted((where, reason) for reason, where, *_ in parsed.rejected) == \
        sorted((where, reason) for reason, where, *_ in staged.rejected) == [
            (f"{path}:3", "line_too_long"), (f"{path}:4", "not_json"),
            (f"{path}:5", "line_too_long"), (f"{path}:6", "line_too_long")]


def test_white_space_is_python_s_in_the_jvm_reader_as_in_staging(tmp_path):
    """White space as str.isspace() knows it (job.replay, job.ownership), which holds U+0085,
    U+00A0, U+2007 and U+202F that Java's Character.isWhitespace does not: a line of them then
    text past metadata.max_line_bytes was cut to them alone, blank to the parse, and nothing
    counted, where staging dead-lettered it line_too_long; a chunk of such blank lines only
    was sent."""
    from flowdredge.job.ownership import MetaLimits, parse_chunk
    from flowdredge.job.replay import stage_metadata
    event = json.dumps({"type": "ASSIGN", "ts": 1767225600000, "ip": "10.0.0.1", "app": "a"})
    odd = "\x85\xa0\u2007\u202f"
    path = tmp_path / "changes.jsonl"
    path.write_text("\n".join([event] + [c * 150 + event for c in odd]) + "\n",
                    encoding="utf-8")
    limits = MetaLimits(max_line_bytes=100)
    chunk, = _changelog_chunks(path, 100, 1 << 20, max_line_chars=100)
    stage_metadata([str(path)], str(tmp_path / "staged.jsonl"), max_line_bytes=100)
    staged = (tmp_path / "staged.jsonl").read_text()
    for parsed in (parse_chunk(chunk, limits=limits), parse_chunk(staged, limits=limits)):
        assert len(parsed.events) == 1
        assert [(where, reason) for reason, where, *_ in parsed.rejected] == [
            (f"{path}:{n}", "line_too_long") for n in (2, 3, 4, 5)]
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n".join(c * n for c in odd for n in (3, 150)) + "\n",
                     encoding="utf-8")
    assert _changelog_chunks(blank, 100, 1 << 20, max_line_chars=100) == []


def test_a_change_too_long_is_applied_as_an_unassign_by_both_readers(tmp_path):
    """A too-long ASSIGN (VPC_ASSIGN) as the job's own changelog reader cuts it and as the
    replay's staging keeps its excerpt: both apply its head's ts and ip as an UNASSIGN
    (VPC_UNASSIGN), so the address's previous owner ends there; before, it kept it."""
    from flowdredge.job.ownership import MetaEvent, MetaLimits, parse_chunk, vpc_key
    from flowdredge.job.replay import stage_metadata
    ts = 1767225600000
    pad = "x" * 300
    lines = [json.dumps({"type": "ASSIGN", "ts": ts, "ip": "10.0.0.1", "app": "b", "t": pad}),
             json.dumps({"type": "VPC_ASSIGN", "ts": ts, "ip": "10.0.0.2",
                         "vpc_id": "vpc-0a1b2c3d", "app": pad}),
             json.dumps({"type": "ASSIGN", "app": pad, "ts": ts, "ip": "10.0.0.3"})]
    path = tmp_path / "changes.jsonl"
    path.write_text("\n".join(lines) + "\n")
    limits = MetaLimits(max_line_bytes=200)
    chunk, = _changelog_chunks(path, 100, 1 << 20, max_line_chars=200)
    stage_metadata([str(path)], str(tmp_path / "staged.jsonl"), max_line_bytes=200)
    for parsed in (parse_chunk(chunk, limits=limits),
                   parse_chunk((tmp_path / "staged.jsonl").read_text(), limits=limits)):
        assert parsed.events == [MetaEvent("UNASSIGN", ts, "10.0.0.1"),
                                 MetaEvent("UNASSIGN", ts, vpc_key("vpc-0a1b2c3d", "10.0.0.2"))]
        assert [(reason, where, why.split(": ", 1)[1]) for reason, where, _, why
                in parsed.rejected] == [
            ("line_too_long", f"{path}:1", "applied as an UNASSIGN (its head's type, ts and ip)"),
            ("line_too_long", f"{path}:2", "applied as a VPC_UNASSIGN (its head's type, ts and "
                                           "ip)"),
            ("line_too_long", f"{path}:3", "its head gives no change's type, ts and ip: nothing "
                                           "applied")]


def test_a_change_too_long_is_read_to_the_same_head_by_both_readers(tmp_path):
    """A too-long ASSIGN whose ts and ip come after its first 256 bytes (a long app name
    first) but within metadata.max_line_bytes: the job's own reader keeps that much of it, and
    so does the replay's staging, so both apply it as an UNASSIGN; the staging kept an excerpt
    of 256 bytes, and the replay applied nothing where the job did (a review). Past the limit
    neither reads them. A byte-order mark before the first is no part of its head."""
    from flowdredge.job.ownership import MetaEvent, MetaLimits, parse_chunk
    from flowdredge.job.replay import stage_metadata
    ts = 1767225600000
    lines = [json.dumps({"type": "ASSIGN", "app": "a" * 600, "ts": ts, "ip": "10.0.0.1",
                         "t": "x" * 2000}),
             json.dumps({"type": "ASSIGN", "app": "a" * 1000, "ts": ts, "ip": "10.0.0.2",
                         "t": "x" * 2000})]
    path = tmp_path / "changes.jsonl"
    path.write_text("\ufeff" + "\n".join(lines) + "\n")
    limits = MetaLimits(max_line_bytes=1000)
    chunk, = _changelog_chunks(path, 100, 1 << 20, max_line_chars=1000)
    stage_metadata([str(path)], str(tmp_path / "staged.jsonl"), max_line_bytes=1000)
    for parsed in (parse_chunk(chunk, limits=limits),
                   parse_chunk((tmp_path / "staged.jsonl").read_text(), limits=limits)):
        assert parsed.events == [MetaEvent("UNASSIGN", ts, "10.0.0.1")]
        assert [(reason, where, why.split(": ", 1)[1], shown) for _, reason, where, shown, why
                in parsed.dead_letters()[0]] == [
            ("line_too_long", f"{path}:1", "applied as an UNASSIGN (its head's type, ts and ip)",
             lines[0][:256]),
            ("line_too_long", f"{path}:2", "its head gives no change's type, ts and ip: nothing "
                                           "applied", lines[1][:256])]


def test_a_byte_order_mark_is_not_counted_in_the_first_change_s_length_by_either_reader(
        tmp_path):
    """A byte-order mark before the first line is skipped by the job's own reader before the
    line is measured and cut; the replay's staging counted its three bytes in the line and its
    head: an ASSIGN of exactly metadata.max_line_bytes after one was applied by the job but was
    an UNASSIGN line_too_long in a replay (its owner lost), and a too-long ASSIGN whose ip
    ended its head was an UNASSIGN in the job but changed nothing in a replay (a review)."""
    from flowdredge.job.ownership import MetaEvent, MetaLimits, parse_chunk
    from flowdredge.job.replay import stage_metadata
    ts, limit = 1767225600000, 200
    whole = json.dumps({"type": "ASSIGN", "ts": ts, "ip": "10.0.0.1", "app": "b", "t": ""})
    whole = whole[:-2] + "x" * (limit - len(whole)) + '"}'
    head = '{"type": "ASSIGN", "app": "%s", "ts": %d, "ip": "10.0.0.2",'
    head %= ("a" * (limit - len(head % ("", ts))), ts)
    cases = [(whole, [MetaEvent("ASSIGN", ts, "10.0.0.1", ("b",) + ("-",) * 8)], []),
             (head + ' "t": "' + "x" * 500 + '"}', [MetaEvent("UNASSIGN", ts, "10.0.0.2")],
              [("line_too_long", "applied as an UNASSIGN (its head's type, ts and ip)")])]
    limits = MetaLimits(max_line_bytes=limit)
    for i, (line, events, rejected) in enumerate(cases):
        assert len(line) >= limit and line.isascii()
        path = tmp_path / f"changes-{i}.jsonl"
        path.write_text("\ufeff" + line + "\n")
        chunk, = _changelog_chunks(path, 100, 1 << 20, max_line_chars=limit)
        staged = tmp_path / f"staged-{i}.jsonl"
        stage_metadata([str(path)], str(staged), max_line_bytes=limit)
        for parsed in (parse_chunk(chunk, limits=limits), parse_chunk(staged.read_text(),
                                                                      limits=limits)):
            assert parsed.events == events
            assert [(reason, why.split(": ", 1)[1]) for reason, _, _, why
                    in parsed.rejected] == rejected


def test_changelog_lines_of_bytes_that_are_not_utf8_are_dead_letters_as_in_the_replay(tmp_path):
    """The job's own changelog reader (connectors/jvm LineChunks) decoded bytes that are not
    UTF-8 as U+FFFD, so an ASSIGN's owner became another name without a word (a review): as
    JVM_NOT_UTF8 they are, line for line, the replay's staging's dead letters (not_text)."""
    from flowdredge.job.ownership import JVM_NOT_UTF8, parse_chunk
    from flowdredge.job.replay import stage_metadata
    lines = [b'{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.0.1","app":"\xe6\x97\xa5"}',
             b'{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.0.2","app":"caf\xe9"}',
             b'{"type":"HEARTBEAT","ts":1767225600000,"x":"\xf0\x9f\x98"}',
             b'{"type":"ASSIGN","ts":1767225600000,"ip":"10.0.0.3","app":"\xf0\x9f\x98\x80"}']
    path = tmp_path / "changes.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    chunk, = _changelog_chunks(path, 100, 1 << 20)
    assert json.loads(chunk)["lines"] == [
        line.decode("utf-8", "replace").replace("\ufffd", JVM_NOT_UTF8) for line in lines]
    stage_metadata([str(path)], str(tmp_path / "staged.jsonl"))
    parsed, staged = parse_chunk(chunk), parse_chunk((tmp_path / "staged.jsonl").read_text())
    assert parsed.events == staged.events and [e.ip for e in parsed.events] == [
        "10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert [e.owner and e.owner[0] for e in parsed.events] == ["\u65e5", None, "\U0001F600"]
    assert [(reason, where) for reason, where, *_ in parsed.rejected] == [
        (reason, where) for reason, where, *_ in staged.rejected] == [
        ("not_text", f"{path}:2"), ("not_text", f"{path}:3")]


def test_a_restored_changelog_file_goes_on_from_its_next_line_whatever_the_chunks_size(
        tmp_path):
    """Where a changelog file's reading stands (connectors/jvm ChangelogFiles) is the count of
    its lines read: a restore skips that many lines, so a savepoint taken with
    metadata.chunk_lines 3 goes on at the right line with 5 (had it counted chunks, it would
    skip 5 lines a chunk: changes lost, no dead letter). A run of blank lines sends nothing,
    its lines counted all the same."""
    add_jars(make_env(Config()), adapter_jars())
    java = jvm()
    lines = [json.dumps({"type": "HEARTBEAT", "ts": 1767225600000 + i}) for i in range(12)]
    path = tmp_path / "changes.jsonl"
    path.write_text("\n".join(lines[:8] + [""] * 7 + lines[8:]) + "\n")
    size, position_type = path.stat().st_size, java.org.apache.flink.connector.file.src.util
    split = java.org.apache.flink.connector.file.src.FileSourceSplit(
        "0", java.org.apache.flink.core.fs.Path(flink_uri(str(path))), 0, size,
        int(path.stat().st_mtime * 1000), size)

    def chunks(max_lines, lines_read=None):
        files = java.io.flowdredge.files.ChangelogFiles(max_lines, 1 << 20, 8192, 1 << 20, "",
                                                        False)
        config = java.org.apache.flink.configuration.Configuration()
        if lines_read is None:
            reader = files.createReader(config, split)
        else:
            reader = files.restoreReader(config, split.updateWithCheckpointedPosition(
                position_type.CheckpointedPosition(
                    position_type.CheckpointedPosition.NO_OFFSET, lines_read)))
        read = []
        while (batch := reader.readBatch()) is not None:
            record = batch.next()
            read.append((json.loads(record.getRecord()), record.getRecordSkipCount()))
        reader.close()
        return read

    whole = chunks(3)
    assert [(chunk["first_line"], len(chunk["lines"]), read) for chunk, read in whole] == [
        (1, 3, 3), (4, 3, 6), (7, 3, 9), (16, 3, 18), (19, 1, 19)]
    assert [(chunk["first_line"], read) for chunk, read in chunks(5, 3)] == [
        (4, 8), (14, 18), (19, 19)]
    assert [line for chunk, _ in chunks(5, 3) for line in chunk["lines"] if line] == lines[3:]
