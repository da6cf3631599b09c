"""Schemas of what the job emits, and of the typed rows that cross between its stages."""
from flowdredge.schemas.fields import BYTES, INT, LONG, STRING, Field, Schema
from flowdredge.schemas.metadata import OWNER_FIELDS

AGGREGATE_DIMENSIONS = (
    Field("window_start", LONG, "window start, epoch seconds (windows are on flow start)"),
    Field("src_app", STRING), Field("src_region", STRING),
    Field("dst_app", STRING), Field("dst_region", STRING),
    Field("dst_port", INT, "null when the log line has none"),
    Field("protocol", INT, "IANA protocol number, null when absent"),
    Field("action", STRING, "ACCEPT / REJECT, null when absent"),
)
AGGREGATE_MEASURES = (
    Field("flows", LONG, "flow log lines"),
    Field("packets", LONG),
    Field("bytes", LONG),
)
# One row per window and dimension tuple.
AGGREGATE = Schema("aggregate", AGGREGATE_DIMENSIONS + AGGREGATE_MEASURES)

# The job's pre-aggregated partial rows, which Flink SQL sums per event-time window. Same shape,
# but the window column is named apart from the window_start that TUMBLE adds.
PARTIAL_AGGREGATE = Schema("partial_aggregate", (
    Field("win_start", LONG, "window start, epoch seconds"),) + AGGREGATE.fields[1:])

# A window's worth of parsed flows from one input record, on its way to attribution (keyed by
# an INT that spreads groups over the attribution operator's parallel instances).
FLOW_GROUP = Schema("flow_group", (
    Field("producer", INT, "index of the parse instance that made the group"),
    Field("window_start", LONG, "epoch seconds"),
    Field("max_start", LONG, "latest flow start in the group, epoch seconds"),
    Field("payload", BYTES, "job.codec-encoded flows"),
    Field("progress", LONG, "event time the producer had reached, epoch seconds, by which the "
                            "group's lateness is judged: max_start, or for a shard's batch of "
                            "Kinesis records the slowest active shard's before the batch "
                            "(job.shards)"),
))

# Per window, the conversations between a client and a service, pre-aggregated per batch and
# oriented by job.security.client_is_source: the input of the security and dependency views.
# Keyed on the service side (no ephemeral client port), so a batch makes few rows; the window
# column is named apart from the window_start that TUMBLE adds.
CONVERSATION = Schema("conversation", (
    Field("win_start", LONG, "window start, epoch seconds"),
    Field("client_app", STRING), Field("client_addr", STRING),
    Field("server_app", STRING), Field("server_addr", STRING), Field("server_resource", STRING),
    Field("service_port", INT, "the server's port, null when absent"),
    Field("client_port", INT, "the client's port, kept only for REJECTed records from the "
                              "server (refused there); null otherwise"),
    Field("protocol", INT), Field("action", STRING),
    Field("flows", LONG, "records of both directions"), Field("packets", LONG),
    Field("bytes", LONG),
    Field("client_flows", LONG, "records from the client"), Field("client_packets", LONG),
    Field("client_bytes", LONG),
))

DEAD_LETTER = Schema("dead_letter", (
    Field("stage", STRING, "flows or metadata"),
    Field("reason", STRING, "machine-readable reason code"),
    Field("source", STRING, "where: file:line, file, or record (e.g. kinesis:stream/shard/"
                            "sequence) then log group/stream and event index"),
    Field("excerpt", STRING, "at most the first 256 characters of the raw input, printable"),
    Field("detail", STRING, "why, in words: the field, its value and the limit it broke "
                            "(empty where the reason says it all)"),
))

# Reason codes of dead letters (docs/outputs.md explains each).
FLOW_DEAD_LETTER_REASONS = (
    "field_count", "not_a_number", "bad_address", "port_out_of_range", "end_before_start",
    "missing_required_field", "timestamp_out_of_range", "bad_base64", "not_gzip", "bad_gzip",
    "not_json", "not_cloudwatch", "bad_chunk", "malformed", "too_large", "line_too_long",
    "number_out_of_range", "unknown_value", "empty_file", "bad_header", "unreadable",
    "empty_members", "not_text")
# Of those, the reasons of a whole file, record or CloudWatch event (not counted as lines read).
FLOW_RECORD_DEAD_LETTER_REASONS = (
    "bad_base64", "not_gzip", "bad_gzip", "not_json", "not_cloudwatch", "bad_chunk", "malformed",
    "too_large", "empty_file", "bad_header", "unreadable", "empty_members")
METADATA_DEAD_LETTER_REASONS = (
    "not_json", "not_an_object", "unknown_type", "missing_ts", "missing_ip", "bad_address",
    "ts_out_of_range", "line_too_long", "reserved_app", "not_text", "bad_vpc_id")

# Enriched flows: every field of the line's format (dashes as underscores), then these, then
# TCP_FLAGS_NAMES when the format has tcp-flags.
ENRICHED_OWNER_KEYS = tuple(f"src_{f}" for f in OWNER_FIELDS) + tuple(f"dst_{f}" for f in OWNER_FIELDS)
TCP_FLAGS_NAMES = Field("tcp_flags_names", STRING, "tcp_flags decoded, e.g. FIN,SYN-ACK")

# Late flows: an enriched flow plus the window it missed.
LATE_EXTRA_KEYS = ("window_start",)

# NODATA / SKIPDATA lines per window and interface (the `data_quality` output).
DATA_QUALITY = Schema("data_quality", (
    Field("window_start", LONG, "window start, epoch seconds"),
    Field("account_id", STRING), Field("interface_id", STRING),
    Field("no_data", LONG, "NODATA lines: no traffic in the interval"),
    Field("skip_data", LONG, "SKIPDATA lines: AWS dropped flows in the interval"),
))

# A `counts` record: the stage, then the non-zero COUNTERS of one call (and
# dead_letter_<reason> / metadata_dead_letter_<reason>).
COUNTS_STAGE = Field("stage", STRING, "parse, metadata, attribute or security")

# Counters kept by every stage; a `counts` record holds the non-zero ones of one call.
COUNTERS = (
    "records_in",             # input records (envelopes / file chunks)
    "records_skipped",        # CloudWatch CONTROL_MESSAGE envelopes
    "records_repeated",       # Kinesis records equal to one their shard delivered in the window
    "lines_in",               # flow log lines seen
    "flows_parsed",
    "no_data",                # NODATA lines
    "skip_data",              # SKIPDATA lines: AWS dropped flows there
    "dead_letter",            # bad lines, records and files; also dead_letter_<reason>
    "dead_letters_not_kept",  # of those, beyond a batch's job.parse.DEAD_LETTERS_KEPT: counted only
    "unknown_fields_ignored", # values of header fields this release does not know, dropped
                              # (of lines taken: a dead-lettered line keeps them)
    "flows_aggregated",
    "flows_late",
    "src_owned", "src_unattributed", "src_internet", "src_aws",
    "dst_owned", "dst_unattributed", "dst_internet", "dst_aws",   # aws: metadata.ip_ranges
    "src_owned_in_vpc", "dst_owned_in_vpc",   # of the owned, by a VPC's claim (VPC_ASSIGN)
    "groups_waited",          # flow groups that waited for metadata
    "groups_after_max_wait",  # attributed before metadata was complete (max wait passed)
    "flows_after_max_wait",   # the flows of those groups
    "metadata_events",
    "metadata_late",          # changes older than the metadata watermark when they arrived
    "metadata_dead_letter",   # also metadata_dead_letter_<reason>
    "metadata_dead_letters_not_kept",  # of those, beyond a chunk's DEAD_LETTERS_KEPT: counted only
    "metadata_after_flows",   # a replay's changelog events at or after its flows' end: not read
    "heartbeats",
    # Security views' state a cap kept out, each window it came (docs/security.md):
    "exposure_ports_capped",    # new exposed ports past an app's security.exposure_max_ports
    "dependency_edges_capped",  # new edges past a pair's security.dependency_max_ports
    "exposure_ports_total_capped",    # past security.exposure_max_total_ports (all apps), or
                                      # forgotten from a restored state above it
    "dependency_edges_total_capped",  # past security.dependency_max_total_edges (all pairs),
                                      # or reported gone from a restored state above it
)
