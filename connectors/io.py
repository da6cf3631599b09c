"""What the pipeline takes from the connectors: Sources and Sinks, callables that add the
connector's steps to the job. Connectors (connectors.files, connectors.kinesis.flink) build them;
job.flink.pipeline, a layer above, consumes them: the connectors never import the job."""
from dataclasses import dataclass
from typing import Callable

from pyflink.datastream import DataStream, StreamExecutionEnvironment


@dataclass
class Sources:
    """Each returns a DataStream: flow records (a staged record as bytes; a shard's batch of
    Kinesis records, Row(stream, shard, records, repeats) of connectors/jvm's ShardBatches; or
    a one-field Row naming a flow file as AWS writes it, read and parsed whole by the parse
    step), changelog records (a file's, as bytes: a staged chunk of its lines or a line; a
    stream's, as str: a staged chunk of a snapshot's lines or of a record's, its arrival time
    as the element's timestamp). `flow_shards`: the (stream ARN, shard id) pairs known at
    start, which hold event time back until heard from (job.shards)."""
    flows: Callable[[StreamExecutionEnvironment], DataStream]
    metadata: Callable[[StreamExecutionEnvironment], DataStream]
    flow_shards: tuple = ()
    # Where changelog dead letters say they came from (with the line or event index) when the
    # record does not name its own place.
    metadata_source: str = "metadata"
    # The changelog source reads a snapshot file before its stream: its lines, which have no
    # arrival time, are the snapshot's.
    metadata_snapshot_first: bool = False
    # A replay's flows all start before this (epoch seconds, job.replay.flows_end): changelog
    # events at or after it are not read (job.ownership.parse_chunk), nor any flow at or after
    # it (a file changed since the job listed it). None: not known.
    flows_end: int = None
    # The longest changelog record the source sends whole, as bytes: one longer (a staged
    # file's line, which connectors/jvm LineBytes cuts one byte past) is one dead letter
    # line_too_long. None: the source bounds its records itself (LineChunks' chunks).
    metadata_max_line: int = None


@dataclass
class Sinks:
    """`text(name, stream)` writes a stream of JSON-Lines blocks as output `name`;
    `gzip_lines(name, stream)` a stream of gzip members, each a block of JSON Lines (bytes),
    as output `name` in gzip files;
    `aggregates(t_env, table, window_seconds)` writes the aggregate table (windows of that
    length) and attaches it to the job."""
    text: Callable
    gzip_lines: Callable
    aggregates: Callable
