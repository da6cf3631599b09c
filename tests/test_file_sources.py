"""Lines of staged records and changelog files reach the parse steps as bytes (connectors/jvm
LineBytes): the same lines, cut where Flink's text line format cuts them, whatever the line
endings, lengths and buffer boundaries; the flow-file gate reads a changelog line's time from
its bytes (ChangelogTimestamps)."""
import pytest
from pyflink.common import Types

from flowdredge.connectors.files import _text_lines
from flowdredge.connectors.jars import adapter_jars
from flowdredge.connectors.streams import add_jars, jvm
from flowdredge.job.config import Config
from flowdredge.job.flink.run import make_env

pytestmark = pytest.mark.minicluster

BUFFER = 1 << 16   # LineBytes reads the file in pieces of this size


def _read(path, as_bytes: bool) -> list:
    """The lines as the parse step gets them, in order."""
    env = make_env(Config())
    add_jars(env, adapter_jars())
    # What a Python step gets, as text: the hex of bytes, or the str marked. (A function of
    # this module would be pickled by name, which the Python workers cannot import.)
    lines = _text_lines(env, str(path), "lines", "lines", as_bytes=as_bytes) \
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


def test_line_bytes_read_an_empty_file_and_a_file_of_one_ending(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "one.txt").write_bytes(b"\n")
    assert _read(tmp_path / "empty.txt", True) == _read(tmp_path / "empty.txt", False) == []
    assert _read(tmp_path / "one.txt", True) == [b""]
    assert _read(tmp_path / "one.txt", False) == [""]


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
                         as_bytes=True) \
        .process(Timestamps(), output_type=Types.STRING()).set_parallelism(1)
    with stream.execute_and_collect() as seen:
        stamps = list(seen)
    assert stamps[:5] == ["1767225600000", "1767225605000", "1767225609000", "1767225610000",
                          "1767225611000"]
    assert stamps[5:] == [str(-2**63)] * 2   # Long.MIN_VALUE: no timestamp


def test_the_gateway_finds_the_jars_classes_from_any_of_its_threads():
    """py4j serves each connection on its own Java thread and finds classes through that
    thread's context class loader; PyFlink's add_jars gives the jars to one thread's: a lookup
    that py4j sent over another connection (opened when two Python threads use the gateway at
    once) failed now and then in the middle of building a job. Here the serving thread is made
    such a thread, with the system class loader as its context loader; add_jars' classes are
    found all the same, a later call's jars too."""
    from pyflink.common.serialization import SimpleStringSchema

    from flowdredge.connectors.jars import connector_jars
    from flowdredge.connectors.streams import java_deserialization_schema

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
        lambda: jvm().io.flowdredge.files.LineBytes().getClass().getName()) == \
        "io.flowdredge.files.LineBytes"
    add_jars(env, connector_jars())
    assert from_a_thread_without_the_jars(
        lambda: jvm().io.flowdredge.kinesis.RawRecords().getClass().getName()) == \
        "io.flowdredge.kinesis.RawRecords"
    kinesis = jvm().org.apache.flink.connector.kinesis.source
    assert from_a_thread_without_the_jars(
        lambda: kinesis.KinesisStreamsSource.builder().getClass().getSimpleName()) == \
        "KinesisStreamsSourceBuilder"
    # The next job's jars, added again: a class found before (py4j keeps it) and one found
    # now work together.
    add_jars(make_env(Config()), connector_jars())
    text = kinesis.serialization.KinesisDeserializationSchema.of(
        java_deserialization_schema(SimpleStringSchema()))
    assert kinesis.KinesisStreamsSource.builder().setDeserializationSchema(
        text).getClass().getSimpleName() == "KinesisStreamsSourceBuilder"
