"""Kinesis sources and sinks of the streaming job (PyFlink adapters over the Flink connector).

Flow logs: one KinesisStreamsSource (FLIP-27) per stream, read by the project's RawRecords
(connectors/jvm/src): each element is a Row(data, stream, shard, sequence, repeat) with the
record's bytes untouched (CloudWatch records are gzip), or none for a repeat of a record its
shard delivered just before (a producer's retry), and the record's arrival time as its
timestamp. The records are spread over the parse instances; before each, ShardBatches
(connectors/jvm/src) gathers a shard's records into one element: Row(stream, shard, records,
repeats), each record a Row(data, sequence, arrival ms).
The changelog: an optional snapshot, a file or a folder read to its end in chunks of lines
named by their file and numbered by their place in it (ChangelogFiles), then the metadata
stream, each record a chunk of its lines that names the record (ChangelogRecords), both staged
chunks of job.ownership (a HybridSource), at parallelism 1 because its order matters. Outputs
to Kinesis (aggregates, security events) are written in the JVM, at least once, each row with
a `dedup_key`.
"""
import dataclasses
import datetime

from pyflink.common import Configuration, Types
from pyflink.common.watermark_strategy import WatermarkStrategy
from pyflink.datastream import DataStream
from pyflink.datastream.connectors import Source
from pyflink.datastream.connectors.hybrid_source import HybridSource
from pyflink.table import StreamTableEnvironment
from pyflink.table.expressions import call_sql, col

from flowdredge.connectors.io import Sinks, Sources
from flowdredge.connectors.kinesis.client import Streams, client_properties
from flowdredge.connectors.files import changelog_files
from flowdredge.connectors.kinesis.settings import KinesisSection, source_labels
from flowdredge.connectors.streams import (attach_insert, java_configuration,
                                           java_operator, jvm, sql_string,
                                           windowed_uid)
from flowdredge.schemas.flink import sql_columns
from flowdredge.schemas.outputs import AGGREGATE, AGGREGATE_DIMENSIONS
from flowdredge.schemas.security import EVENTS

RAW_RECORD_TYPE = Types.ROW_NAMED(
    ["data", "stream", "shard", "sequence", "repeat"],
    [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.STRING(), Types.STRING(), Types.STRING(),
     Types.BOOLEAN()])


def _flink_timestamp(iso: str) -> str:
    """ISO 8601 as the connector's default source.init.timestamp.format reads it."""
    moment = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    utc = moment.astimezone(datetime.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _source_config(kin: KinesisSection, position: str, timestamp: str) -> Configuration:
    conf = Configuration()
    for key, value in client_properties(kin).items():
        conf.set_string(key, value)
    conf.set_string("source.init.position", position)
    if position == "AT_TIMESTAMP":
        conf.set_string("source.init.timestamp", _flink_timestamp(timestamp))
    if kin.reader == "efo":
        conf.set_string("source.reader.type", "EFO")
        conf.set_string("source.efo.consumer.name", kin.efo_consumer_name)
        # Registered before the job starts (client.register_consumers), never deregistered.
        conf.set_string("source.efo.lifecycle", "SELF_MANAGED")
    return conf


def _kinesis_source(arn: str, conf: Configuration, deserializer) -> Source:
    builder = jvm().org.apache.flink.connector.kinesis.source.KinesisStreamsSource.builder()
    builder.setStreamArn(arn).setSourceConfig(java_configuration(conf)) \
        .setDeserializationSchema(deserializer)
    return Source(builder.build())


def _flow_records(env, kin: KinesisSection, arns):
    conf = _source_config(kin, kin.start_position, kin.start_timestamp)
    streams = []
    for arn, label in zip(arns, source_labels(arns)):
        raw = jvm().io.flowdredge.kinesis.RawRecords(kin.repeat_window_seconds * 1000)
        streams.append(env.from_source(_kinesis_source(arn, conf, raw),
                                       WatermarkStrategy.no_watermarks(), f"flow stream {label}",
                                       RAW_RECORD_TYPE)
                       .uid(f"flow-stream-{label}"))
    records = streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]
    # Shards are few and uneven: the parse instances share all records, then each batches what
    # it gets. Every instance then sees records of every shard, as the per-shard event time
    # needs (job.shards): batched before the spread, a shard's records read in one fetch would
    # reach one instance only.
    return shard_batches(records.rebalance(), kin)


def shard_batches(records: DataStream, kin: KinesisSection) -> DataStream:
    """RawRecords' rows gathered per shard, Row(stream, shard, records, repeats)
    (connectors/jvm ShardBatches), within the section's batch limits."""
    batcher = jvm().io.flowdredge.kinesis.ShardBatches
    return java_operator(records, "batch records by shard", batcher.TYPE, batcher(
        kin.batch_records, kin.batch_bytes, kin.batch_wait_ms)).uid("shard-batches")


def _metadata_records(env, kin: KinesisSection, arn: str, chunk_lines: int,
                      max_line_chars: int):
    # Each record as a staged chunk naming its shard and sequence number (connectors/jvm
    # ChangelogRecords): a dead letter names the record that holds it.
    stream = _kinesis_source(arn, _source_config(kin, kin.metadata_start_position,
                                                 kin.metadata_start_timestamp),
                             jvm().io.flowdredge.kinesis.ChangelogRecords())
    if kin.metadata_snapshot:
        # In chunks of lines: one Python call per chunk, as for the replay's changelog.
        snapshot = changelog_files(kin.metadata_snapshot, chunk_lines, max_line_chars,
                                   label="metadata snapshot ", as_bytes=False)
        source, name = HybridSource.builder(snapshot).add_source(stream).build(), \
            "metadata snapshot, then stream"
    else:
        source, name = stream, "metadata stream"
    return (env.from_source(source, WatermarkStrategy.no_watermarks(), name, Types.STRING())
            .uid("metadata-stream").set_parallelism(1))


def local_endpoint_workarounds(kin: KinesisSection) -> None:
    """For a local Kinesis API server, in this JVM (the mini-cluster's): the AWS SDK's CBOR
    parser fails on kinesis-local's GetRecords answers with records of a few KB
    (ArrayIndexOutOfBoundsException in CBORParser._finishLongTextAscii); JSON works. A
    cluster's TaskManagers need -Daws.cborEnabled=false in env.java.opts.all (operate.cluster)."""
    if kin.endpoint:
        jvm().java.lang.System.setProperty("aws.cborEnabled", "false")


def kinesis_sources(kin: KinesisSection, streams: Streams, flow_shards=(),
                    snapshot_chunk_lines: int = 5000,
                    snapshot_max_line_chars: int = 8192) -> Sources:
    """`flow_shards`: (stream ARN, shard id) of the flow streams now (client.shards);
    `snapshot_chunk_lines`: lines of `kin.metadata_snapshot` per chunk (metadata.chunk_lines),
    `snapshot_max_line_chars`: its lines cut after (metadata.max_line_bytes)."""
    return Sources(flows=lambda env: _flow_records(env, kin, streams.flows),
                   metadata=lambda env: _metadata_records(env, kin, streams.metadata,
                                                          snapshot_chunk_lines,
                                                          snapshot_max_line_chars),
                   flow_shards=tuple(flow_shards),
                   metadata_snapshot_first=bool(kin.metadata_snapshot))


def _connector_options(kin: KinesisSection, arn: str) -> str:
    # The table factory names credentials aws.credentials.* and adds the ".provider" itself.
    aws = {key.replace("credentials.provider.", "credentials."): value
           for key, value in client_properties(kin).items()}
    options = {"connector": "kinesis", "stream.arn": arn, **aws,
               "sink.flush-buffer.timeout": str(kin.output_flush_ms)}
    return ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in options.items())


def dedup_key(columns) -> str:
    """SQL: MD5 of the columns, each value after its length (free-form names may hold the
    separator: ("a|b", "c") and ("a", "b|c") must differ), NULL a value of its own: equal rows,
    equal keys, and only those."""
    parts = ", ".join(f"COALESCE(CONCAT(CAST(CHAR_LENGTH(CAST(`{c}` AS STRING)) AS STRING), ':', "
                      f"CAST(`{c}` AS STRING)), '\\u0000')" for c in columns)
    return f"MD5(CONCAT_WS('|', {parts}))"


def _aggregates_to_kinesis(t_env: StreamTableEnvironment, rows, kin: KinesisSection,
                           arn: str, window_seconds: int) -> None:
    """One JSON record per aggregate row; the key is the window and the dimensions, so a row
    written again after a restart has the key of the first."""
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE `aggregates_kinesis` (`dedup_key` STRING, {sql_columns(AGGREGATE)})
        PARTITIONED BY (`dedup_key`)
        WITH ({_connector_options(kin, arn)}, 'format' = 'json')""")
    # Columns in AGGREGATE order (their names may differ: sinks insert by position).
    names = rows.get_schema().get_field_names()
    keyed = rows.select(call_sql(dedup_key(names[:len(AGGREGATE_DIMENSIONS)])),
                        *[col(name) for name in names])
    attach_insert(t_env, "aggregates_kinesis", keyed,
                  windowed_uid("aggregates-kinesis", window_seconds))


def _events_to_kinesis(t_env: StreamTableEnvironment, blocks, kin: KinesisSection,
                       arn: str) -> None:
    """One record per security event (a JSON line), with `dedup_key` (MD5 of the line) put
    first: events are computed from event time only, so a repeat is the same line."""
    t_env.create_temporary_view("security_event_blocks",
                                t_env.from_data_stream(blocks).alias("block"))
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE `security_events_kinesis` (`record` STRING)
        WITH ({_connector_options(kin, arn)}, 'format' = 'raw')""")
    lines = t_env.sql_query("""
        SELECT CONCAT('{"dedup_key":"', MD5(`line`), '",', SUBSTRING(`line` FROM 2))
        FROM security_event_blocks CROSS JOIN UNNEST(SPLIT(`block`, U&'\\000A')) AS t(`line`)
        WHERE `line` LIKE '{%'""")
    attach_insert(t_env, "security_events_kinesis", lines, "security-events-kinesis")


def with_kinesis_outputs(sinks: Sinks, kin: KinesisSection, streams: Streams) -> Sinks:
    """`sinks` (files), and also aggregates and security events to the configured streams."""
    if not (streams.aggregates or streams.security_events):
        return sinks

    def text(name, stream):
        sinks.text(name, stream)
        if name == EVENTS and streams.security_events:
            # A table environment of its own: the pipeline's is not handed to text sinks.
            t_env = StreamTableEnvironment.create(stream.get_execution_environment())
            t_env.get_config().set("table.exec.uid.generation", "ALWAYS")
            _events_to_kinesis(t_env, stream, kin, streams.security_events)

    def aggregates(t_env, rows, window_seconds):
        sinks.aggregates(t_env, rows, window_seconds)
        if streams.aggregates:
            _aggregates_to_kinesis(t_env, rows, kin, streams.aggregates, window_seconds)

    return dataclasses.replace(sinks, text=text, aggregates=aggregates)
