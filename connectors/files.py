"""File sources and sinks for bounded replay (Flink FileSource / FileSink, SQL filesystem)."""
from pyflink.common import Duration, Row, Types
from pyflink.common.watermark_strategy import WatermarkStrategy
from pyflink.datastream.connectors.file_system import (BucketAssigner, FileEnumeratorProvider,
                                                       FileSink, FileSource,
                                                       FileSplitAssignerProvider,
                                                       OutputFileConfig, RollingPolicy,
                                                       StreamFormat)
from pyflink.datastream import MapFunction, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Source
from pyflink.datastream.connectors.number_seq import NumberSequenceSource
from pyflink.common.serialization import Encoder
from pyflink.table.expressions import call_sql

from flowdredge.connectors.io import Sinks, Sources
from flowdredge.connectors.s3 import flink_uri
from flowdredge.connectors.staged import JAVA_INT_MAX, staged_changelog_max
from flowdredge.connectors.streams import (attach_insert, java_stream, jvm, sql_string,
                                          windowed_uid, with_java_timestamps)
from flowdredge.schemas.flink import sql_columns
from flowdredge.schemas.outputs import AGGREGATE
from flowdredge.schemas.settings import ConfigError


def _text_lines(env: StreamExecutionEnvironment, path: str, name: str, uid: str,
                follow_seconds: int = None, watermarks: WatermarkStrategy = None,
                max_line_bytes: int = None):
    """One file read start to end by one reader (a split file can be read out of order), the
    files in the order of their paths (connectors/jvm PathOrder: Flink's own order is none; a
    followed folder's files are named in the order fed, `feed-<epoch ms>`). With
    `follow_seconds` the source stays open, looking for new files that often.
    `watermarks`: the source's own (by default none: the parse step assigns event time).
    With `max_line_bytes` each line as its bytes (connectors/jvm LineBytes), one longer cut to
    one byte more (the parse step dead-letters it); without, as a str (Flink's text format)."""
    lines = StreamFormat.text_line_format() if max_line_bytes is None else \
        StreamFormat(jvm().io.flowdredge.files.LineBytes(max_line_bytes))
    builder = (FileSource.for_record_stream_format(lines, flink_uri(path))
               .set_file_enumerator(
                   FileEnumeratorProvider.default_non_splittable_file_enumerator())
               .set_split_assigner(
                   FileSplitAssignerProvider(jvm().io.flowdredge.files.PathOrder.provider())))
    if follow_seconds:
        builder = builder.monitor_continuously(Duration.of_seconds(follow_seconds))
    source = builder.build()
    return env.from_source(source, watermarks or WatermarkStrategy.no_watermarks(), name) \
        .uid(uid).set_parallelism(1)


# A changelog chunk also ends at this many characters (connectors/jvm LineChunks): one Python
# call's value, bounded whatever the number of lines.
CHANGELOG_CHUNK_CHARS = 1 << 20


def changelog_files(path: str, chunk_lines: int, max_line_chars: int, label: str = "",
                    as_bytes: bool = True) -> Source:
    """Changelog files the job reads itself, a file or a folder of them (connectors/jvm
    ChangelogFiles): read whole, one after another in the order of their paths, each in staged
    chunks of up to `chunk_lines` lines named by its path (after `label`) and bounded by its
    modification time, a line longer than `max_line_chars` cut to one character more (the
    parse dead-letters it); a file staged already (job.replay, `feed`) a line at a time, one
    longer than staged_changelog_max cut so too, a chunk of its own. As
    bytes, as a file job's changelog parse takes a file's lines, or as str (a stream's
    snapshot)."""
    uri = flink_uri(path)
    if uri.rstrip("/").rsplit("/", 1)[-1].startswith((".", "_")):
        # Flink's file source leaves such names out, even the one it is given: read as empty,
        # the changelog would leave every flow unattributed with nothing counted.
        raise ConfigError(f"{label or 'changelog '}{path}: Flink does not read a file or "
                          f"folder whose name starts with '.' or '_'; rename it")
    files = jvm().io.flowdredge.files.ChangelogFiles
    # Java ints: no line is longer, nor a chunk.
    return Source((files.bytes if as_bytes else files.text)(
        uri, min(chunk_lines, JAVA_INT_MAX), CHANGELOG_CHUNK_CHARS,
        min(max_line_chars, JAVA_INT_MAX - 1),
        staged_changelog_max(chunk_lines, max_line_chars), label))


def file_sources(staged_flows: str, staged_metadata: str, max_flows_line: int,
                 max_metadata_line: int, follow_seconds: int = None) -> Sources:
    """Staged files (job.replay): flow records, one per line (a file's CloudWatch records
    several a line); changelog events, one per line, in input order. Both as bytes: a staged
    record is up to megabytes, which the JVM handles as a str character by character. A line
    longer than `max_flows_line` or `max_metadata_line` (staged_flows_max,
    staged_changelog_max) is cut to one byte more, which the parse dead-letters. The flow
    records are spread over the parallel parse instances. With `follow_seconds` the job does
    not end with the files (unbounded)."""
    return Sources(
        flows=lambda env: _text_lines(env, staged_flows, "flow record file", "flow-record-file",
                                      follow_seconds,
                                      max_line_bytes=max_flows_line).rebalance(),
        metadata=lambda env: _text_lines(env, staged_metadata, "metadata file", "metadata-file",
                                         follow_seconds, max_line_bytes=max_metadata_line),
        metadata_max_line=max_metadata_line)


# A flow file as AWS wrote it: Row(path or s3:// URL); job.flink.operators.ParseFlowRecords.
FLOW_FILE_TYPE = Types.ROW([Types.STRING()])
# Java's Long.MIN_VALUE: ChangelogTimestamps's "no time", here no end of the flows known.
NO_TIME = -2 ** 63


class _FileRow(MapFunction):
    """A flow file's path or URL as a Row."""

    def map(self, path):
        return Row(path)


def aws_file_sources(files, metadata: str, stamps_ms, metadata_out_of_orderness_ms: int,
                     flows_end: int = None, metadata_chunk_lines: int = 5000,
                     metadata_max_line_chars: int = 8192) -> Sources:
    """Flow files as AWS writes them (S3 delivery files, CloudWatch Logs subscription records),
    `files` a list of paths or s3:// URLs in the order to read them (the job lists them:
    job.replay.flow_files), read to the end (bounded): one element per file, which the parse
    step reads itself (job.replay.read_flow_file), spread over the parse instances. The file
    list goes with the job; the source counts through it (a checkpointed number sequence at
    parallelism 1, so a restore goes on from the next file), and the gate keeps it from the
    job's first start: a restored job reads the files of its first start, however the list
    given now differs (files delivered since are for a job of their own). `metadata`:
    changelog files, a file or a folder, as the publisher writes them or as job.replay staged
    them, read in chunks of `metadata_chunk_lines` lines, each line cut after
    `metadata_max_line_chars` (changelog_files).

    The parse step gets file n only once the changelog's event time (its events' latest, less
    `metadata_out_of_orderness_ms`) has reached the delivery stamp of file n-1 (`stamps_ms`,
    epoch ms per file; connectors/jvm FileGate). Without that the first files' flows reach the
    attribution while a large changelog is still loading and wait in its keyed state
    (docs/performance.md, "The job's own AWS-format source: throughput").

    `flows_end` (epoch seconds, job.replay.flows_end): no flow of `files` starts at or after
    it, so neither the gate nor the job reads a changelog event from then on: one far ahead
    would open the gate to every file and move the metadata clock past the flows."""
    changelogs = {}

    def metadata_stream(env):
        # One source for both users: the parse step reads it, the gate takes its time.
        if id(env) not in changelogs:
            timed = with_java_timestamps(
                WatermarkStrategy.for_bounded_out_of_orderness(
                    Duration.of_millis(metadata_out_of_orderness_ms)),
                jvm().io.flowdredge.files.ChangelogTimestamps(
                    NO_TIME if flows_end is None else flows_end * 1000))
            # The uid of the line source before it: both positions count the lines read.
            changelogs[id(env)] = (
                env.from_source(changelog_files(metadata, metadata_chunk_lines,
                                                metadata_max_line_chars),
                                timed, "changelog files")
                .uid("metadata-file").set_parallelism(1))
        return changelogs[id(env)]

    def flow_stream(env):
        numbers = (env.from_source(NumberSequenceSource(0, len(files) - 1),
                                   WatermarkStrategy.no_watermarks(), "flow file numbers")
                   .uid("flow-file-numbers").set_parallelism(1))
        # The gate keeps the list from the job's first start: a restored job's numbers count
        # through it, whatever a listing now holds.
        gated = java_stream(jvm().io.flowdredge.files.FileGate.apply,
                            numbers, metadata_stream(env),
                            ",".join(str(stamp) for stamp in stamps_ms), "\0".join(files))
        return (gated.map(_FileRow(), output_type=FLOW_FILE_TYPE)
                .name("flow files").uid("flow-files").set_parallelism(1)
                .rebalance())

    return Sources(flows=flow_stream, metadata=metadata_stream, flows_end=flows_end)


# Hive-style folders by UTC write time, the layout `flowdredge athena-ddl` projects.
PARTITION_FORMAT = "'dt='yyyy-MM-dd'/hour='HH"
# Now in UTC as a TIMESTAMP: FROM_UNIXTIME and CURRENT_TIMESTAMP would format in the session's
# time zone. Minutes, because TIMESTAMPADD takes an INT.
_WRITTEN_UTC = ("TIMESTAMPADD(MINUTE, CAST(UNIX_TIMESTAMP() / 60 AS INT), "
                "TIMESTAMP '1970-01-01 00:00:00')")


# How often a row-format SQL file sink (the aggregates) checks whether its part file is due to
# roll (outputs.aggregates_rollover_seconds): it rolls only by size or age (default 30 minutes),
# and only rolled files are committed at a checkpoint.
ROLLOVER_CHECK_SECONDS = 10


def file_sinks(output_dir: str, rollover_seconds: int) -> Sinks:
    """JSON Lines (gzip for the enriched flows) under output_dir/<output>/dt=YYYY-MM-DD/hour=HH/
    (UTC time of writing; files are committed at checkpoints and at the end of bounded input).
    output_dir is a path or a URL of a Flink file system (s3://... on a cluster with the S3
    plugin). The aggregates' files roll every `rollover_seconds`
    (outputs.aggregates_rollover_seconds)."""
    output_dir = flink_uri(output_dir).rstrip("/")
    check_seconds = min(rollover_seconds, ROLLOVER_CHECK_SECONDS)

    def files(name, stream, encoder, suffix):
        sink = (FileSink.for_row_format(f"{output_dir}/{name}", encoder)
                .with_output_file_config(OutputFileConfig.builder()
                                         .with_part_prefix(name).with_part_suffix(suffix)
                                         .build())
                .with_bucket_assigner(
                    BucketAssigner.date_time_bucket_assigner(PARTITION_FORMAT, "UTC"))
                .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
                .build())
        stream.sink_to(sink).name(f"{name} files").uid(f"{name}-files")

    def text(name, stream):
        files(name, stream, Encoder.simple_string_encoder(), ".jsonl")

    def gzip_lines(name, stream):
        # The members' bytes as they are (connectors/jvm/src/.../RawBytes.java).
        files(name, stream, Encoder(jvm().io.flowdredge.files.RawBytes()), ".jsonl.gz")

    def aggregates(t_env, rows, window_seconds):
        t_env.execute_sql(f"""
            CREATE TEMPORARY TABLE `aggregates_sink` ({sql_columns(AGGREGATE)},
                                                      `dt` STRING, `hour` STRING)
            PARTITIONED BY (`dt`, `hour`)
            WITH ('connector' = 'filesystem', 'path' = {sql_string(output_dir + "/aggregates")},
                  'format' = 'json', 'sink.rolling-policy.file-size' = '128MB',
                  'sink.rolling-policy.rollover-interval' = '{rollover_seconds} s',
                  'sink.rolling-policy.check-interval' = '{check_seconds} s')""")
        attach_insert(t_env, "aggregates_sink", rows.add_columns(
            call_sql(f"DATE_FORMAT({_WRITTEN_UTC}, 'yyyy-MM-dd')").alias("dt"),
            call_sql(f"DATE_FORMAT({_WRITTEN_UTC}, 'HH')").alias("hour")),
            windowed_uid("aggregates", window_seconds))

    return Sinks(text=text, gzip_lines=gzip_lines, aggregates=aggregates)
