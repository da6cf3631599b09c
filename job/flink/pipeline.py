r"""The flowdredge dataflow, independent of where records come from and go to.

    flow records --parse--> flow groups --key--\
                                               attribute --> partial rows --SQL TUMBLE--> aggregates
    changelog ---parse---> events --broadcast--/    \--> enriched, late, conversations
    (parse steps also emit dead letters, counts, data quality)

`build_pipeline` takes the sources and sinks (connectors.io) as arguments so tests can pass bounded
sources and their own sinks; job.flink.run.build_job wires them. See docs/design.md.
"""
from pyflink.common import Duration, Types
from pyflink.common.watermark_strategy import WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import Schema, StreamTableEnvironment

from flowdredge.connectors.io import Sinks, Sources
from flowdredge.connectors.streams import (keyed_by_first_field, side_output, sql_interval,
                                           with_event_time)
from flowdredge.job.config import Config
from flowdredge.job.flink.operators import (CONVERSATIONS, COUNTS, DATA_QUALITY, DEAD_LETTERS,
                                            ENRICHED, FLOW_GROUP_TYPE, KEYED_FLOW_GROUP_TYPE, LATE,
                                            METADATA_CHUNK_TYPE, OWNERSHIP_STATE,
                                            PARTIAL_AGGREGATE_TYPE, TIMED_FLOW_GROUP_TYPE,
                                            TIMED_METADATA_CHUNK_TYPE, AttributeFlows,
                                            ParseFlowRecords, ParseMetadataEvents)
from flowdredge.schemas.flowlog import MAX_LONG
from flowdredge.schemas.outputs import AGGREGATE_DIMENSIONS, PARTIAL_AGGREGATE


def configure(env: StreamExecutionEnvironment, config: Config) -> None:
    env.set_parallelism(config.job.parallelism)
    env.enable_checkpointing(config.job.checkpoint_interval_seconds * 1000)


def build_pipeline(env: StreamExecutionEnvironment, sources: Sources, sinks: Sinks,
                   config: Config):
    """Adds the whole job to `env`; the caller runs `env.execute()`."""
    t_env = StreamTableEnvironment.create(env)
    # Stable uids for the SQL operators too (the window state), so savepoints map back.
    t_env.get_config().set("table.exec.uid.generation", "ALWAYS")

    parsed = (sources.flows(env)
              .process(ParseFlowRecords(config, sources.flow_shards, sources.flows_end),
                       output_type=TIMED_FLOW_GROUP_TYPE)
              .name("parse flow records").uid("parse-flow-records"))
    # No idleness here: with the flows idle, the changelog's watermark alone would move the
    # attribution's event time past flows still to come. Quiet shards idle in job.shards.
    flow_groups = with_event_time(
        parsed, WatermarkStrategy.for_bounded_out_of_orderness(
            Duration.of_seconds(config.flows.out_of_orderness_seconds)),
        KEYED_FLOW_GROUP_TYPE, "flow groups", "flow-groups")

    # The changelog stays at parallelism 1 up to the broadcast: its order matters.
    events = (sources.metadata(env)
              .process(ParseMetadataEvents(config, sources.metadata_source,
                                           sources.metadata_snapshot_first,
                                           sources.flows_end, sources.metadata_max_line),
                       output_type=TIMED_METADATA_CHUNK_TYPE)
              .name("parse metadata events").uid("parse-metadata-events")
              .set_parallelism(1))
    timed_events = with_event_time(
        events, WatermarkStrategy
        .for_bounded_out_of_orderness(Duration.of_seconds(config.metadata.out_of_orderness_seconds))
        .with_idleness(Duration.of_seconds(config.metadata.max_wait_seconds)),
        METADATA_CHUNK_TYPE, "metadata events", "metadata-events", parallelism=1)

    attributed = (keyed_by_first_field(flow_groups, Types.INT(), FLOW_GROUP_TYPE)
                  .connect(timed_events.broadcast(OWNERSHIP_STATE))
                  .process(AttributeFlows(config), output_type=PARTIAL_AGGREGATE_TYPE)
                  .name("attribute flows").uid("attribute-flows"))

    if config.outputs.enriched:
        sinks.gzip_lines("enriched", side_output(attributed, ENRICHED))
    text = {
        "late": side_output(attributed, LATE),
        "data_quality": side_output(parsed, DATA_QUALITY),
        "dead_letter": side_output(parsed, DEAD_LETTERS).union(side_output(events, DEAD_LETTERS)),
    }
    for name, stream in text.items():
        sinks.text(name, stream)

    counts = side_output(parsed, COUNTS).union(side_output(events, COUNTS),
                                               side_output(attributed, COUNTS))
    if config.outputs.security:
        from flowdredge.job.flink.security import add_security_views
        counts = counts.union(add_security_views(side_output(attributed, CONVERSATIONS), sinks,
                                                 config))
    sinks.text("counts", counts)

    sinks.aggregates(t_env, window_aggregates(t_env, attributed, config),
                     config.job.window_seconds)


def window_aggregates(t_env: StreamTableEnvironment, partials: DataStream, config: Config):
    """Sums partial rows per event-time tumbling window, in the JVM (Flink SQL)."""
    table = t_env.from_data_stream(
        partials,
        Schema.new_builder()
        .column_by_expression("rowtime", "TO_TIMESTAMP_LTZ(`win_start` * 1000, 3)")
        .watermark("rowtime", "SOURCE_WATERMARK()")
        .build())
    t_env.create_temporary_view("partial_aggregates", table)
    dims = ", ".join(f"`{f.name}`" for f in PARTIAL_AGGREGATE.fields[:len(AGGREGATE_DIMENSIONS)])
    # SUM over BIGINT wraps: a window past 2**63 - 1 bytes came out negative, and ranked
    # last (a review). config.validate bounds a record's sums only, so the sums are exact
    # decimals here, written as the largest BIGINT when past it.
    sums = ", ".join(f"CAST(LEAST(SUM(CAST(`{c}` AS DECIMAL(38, 0))), {MAX_LONG}) AS BIGINT) "
                     f"AS `{c}`" for c in ("flows", "packets", "bytes"))
    # Columns in AGGREGATE order; sinks insert by position.
    return t_env.sql_query(f"""
        SELECT {dims}, {sums}
        FROM TABLE(TUMBLE(TABLE partial_aggregates, DESCRIPTOR(`rowtime`),
                          {sql_interval(config.job.window_seconds)}))
        GROUP BY `window_start`, `window_end`, {dims}""")
