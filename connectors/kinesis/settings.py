"""The Kinesis connector's settings section (the config's `kinesis`; job.config composes it into
Config) and stream names. Pure Python (no pyflink, no boto3)."""
import datetime
from dataclasses import dataclass

from flowdredge.schemas.flowlog import EARLIEST_START, LATEST_START
from flowdredge.schemas.settings import STRINGS, ConfigError, quoted, setting

START_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
# A stream name (1-128 of [a-zA-Z0-9_.-]) or its ARN.
STREAM = r"(arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/)?[a-zA-Z0-9_.-]{1,128}"
STREAM_NAME = "a stream name or ARN"


# Kinesis takes a record of at most 1 MiB, its data and partition key together; the connector's
# sink (flink-connector-aws 6.0.0: KinesisStreamsSinkBuilder's maxRecordSizeInBytes, 1 MiB by
# default) fails the job on a larger one, and again after every restart.
MAX_RECORD_BYTES = 1 << 20


def stream(default: str = ""):
    return setting(default, pattern=STREAM, expected=STREAM_NAME)


def stream_name(arn: str) -> str:
    """The name in a stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)."""
    return arn.rsplit("/", 1)[-1]


def source_labels(arns) -> list:
    """What names each flow stream's source (its uid `flow-stream-<label>`): the stream's name
    for the first stream of that name in `arns`, ACCOUNT-NAME for a later one of that name (in
    another account: the two would share a uid). A stream added at the end leaves every other
    label as it was, so a savepoint maps back: before, a second account's stream of the same
    name relabelled the first one's source, whose positions were then dropped (each account
    has a stream of one name, added one by one). Reordering streams of one name swaps their
    labels: `flowdredge run --resume` refuses it."""
    labels, seen = [], set()
    for arn in arns:
        name = stream_name(arn)
        labels.append(f"{arn.split(':')[4]}-{name}" if name in seen else name)
        seen.add(name)
    return labels


@dataclass(frozen=True)
class KinesisSection:
    """The streaming job's Kinesis Data Streams (`flowdredge run`, a cluster, Managed Flink);
    docs/streaming.md. Streams are names (resolved to ARNs at start) or ARNs."""
    region: str = setting("us-east-1", pattern=r"[a-z]{2}(-[a-z]+)+-[0-9]",
                          expected="an AWS region such as eu-west-1")
    # Empty: AWS's endpoint for the region. A URL such as http://127.0.0.1:4568 for a local
    # Kinesis API server (then credentials are the AWS_* variables, or dummy ones).
    endpoint: str = setting("", pattern=r"https?://[^\s/]+(/\S*)?", expected="an http(s) URL")
    # CloudWatch Logs subscription records of VPC Flow Logs (a list, or comma-separated).
    flow_streams: STRINGS = setting((), pattern=STREAM, expected=STREAM_NAME)
    # The IP-metadata changelog (what flowdredge-publisher writes).
    metadata_stream: str = stream()
    # Changelog snapshot read to its end before the metadata stream (a file, folder or s3://
    # URL): Kinesis keeps 24 h to 365 days and does not compact, so a start from nothing needs it.
    metadata_snapshot: str = ""
    # Where the flow streams start without a checkpoint: TRIM_HORIZON, LATEST, AT_TIMESTAMP.
    start_position: str = setting("TRIM_HORIZON", choices=START_POSITIONS)
    # For AT_TIMESTAMP: ISO 8601 with zone, e.g. 2026-12-01T10:00:00.000Z.
    start_timestamp: str = ""
    # Where the metadata stream starts without a checkpoint (after the snapshot).
    metadata_start_position: str = setting("TRIM_HORIZON", choices=START_POSITIONS)
    metadata_start_timestamp: str = ""
    # polling (GetRecords, shared throughput) or efo (enhanced fan-out: a consumer of its own).
    reader: str = setting("polling", choices=("polling", "efo"))
    efo_consumer_name: str = setting("flowdredge", pattern=r"[a-zA-Z0-9_.-]{1,128}",
                                     expected="a consumer name (1-128 of a-z A-Z 0-9 _ . -)")
    # A shard with no record for this long stops holding back event time (per-shard
    # watermarks): what a quiet shard can cost in delay.
    shard_idle_seconds: int = setting(60, minimum=1)
    # A shard's records reach the parse together (connectors/jvm ShardBatches): one Python call
    # and one flow group a window for up to this many records or bytes, held at most this long.
    # CloudWatch Logs writes one log stream per interface: records of tens to hundreds of flows.
    batch_records: int = setting(500, minimum=1)
    batch_bytes: int = setting(4 << 20, minimum=1)
    batch_wait_ms: int = setting(200, minimum=1)
    # A record with the bytes of one its shard delivered at most this long before (arrival
    # time) is a producer's retry: counted as records_repeated, not parsed. 0: every record
    # parsed. About 100 bytes of memory a record in the window, per shard.
    repeat_window_seconds: int = setting(300, minimum=0, maximum=86400)
    # Optional outputs to Kinesis (at least once; each row carries a dedup key): empty is off.
    aggregates_stream: str = stream()
    security_events_stream: str = stream()
    # The output streams' sink sends what it holds at least this often: a window's rows rarely
    # fill a 500-record batch, and the connector's own default (5 s) is added to every window.
    output_flush_ms: int = setting(200, minimum=1)


def validate(kin: KinesisSection) -> None:
    """Rules across the section's fields (job.config.validate calls it)."""
    for position, stamp in (("start_position", "start_timestamp"),
                            ("metadata_start_position", "metadata_start_timestamp")):
        text = getattr(kin, stamp)
        if getattr(kin, position) != "AT_TIMESTAMP":
            if text:
                raise ConfigError(f"kinesis.{stamp} is read only with {position}: "
                                  f"AT_TIMESTAMP (it is {getattr(kin, position)})")
            continue
        try:
            parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise ConfigError(f"kinesis.{stamp}: AT_TIMESTAMP needs an ISO 8601 time with "
                              f"a zone, e.g. 2026-12-01T10:00:00Z, got {quoted(text)}")
        # The connector is given it in UTC (connectors.kinesis.flink): 0001-01-01T00:00+01:00
        # passed here and failed the job's start there (OverflowError: date value out of range).
        try:
            utc = parsed.astimezone(datetime.timezone.utc)
        except (OverflowError, ValueError):
            utc = None
        if utc is None or not EARLIEST_START <= utc.timestamp() < LATEST_START:
            # Written in another zone, its year may be in the range and its UTC's not.
            said = "" if utc is None else f": it is {utc.isoformat().replace('+00:00', 'Z')}"
            raise ConfigError(f"kinesis.{stamp}: {quoted(text)} is outside the years the job "
                              f"reads flows of (2010-2099) in UTC{said}")
