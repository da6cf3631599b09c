"""Typed job configuration with defaults, validated at start.

Sources, in order of precedence: a YAML file (`--config`), or an Amazon Managed Service for
Apache Flink `application_properties.json` (a list of {"PropertyGroupId", "PropertyMap"}; group
ids are the section names below, values may be strings). See flink-conf/.
"""
import dataclasses
import datetime
import json
import os
import re
from dataclasses import dataclass, field, fields

import yaml

from job.ownership import MetaLimits
from job.parse import FlowFormat, FormatError, Limits
from job.security import parse_factors, parse_ports
from schemas.flowlog import DEFAULT_FORMAT


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class JobSection:
    parallelism: int = 1
    window_seconds: int = 60
    checkpoint_interval_seconds: int = 10
    # Where checkpoints go (execution.checkpointing.dir: a path, file:// or s3:// URL). Empty: a
    # replay checkpoints under its output folder, a cluster keeps its own setting. Never the
    # JobManager's memory: it refuses state above 5 MB, less than a real estate's ownership.
    checkpoint_dir: str = ""
    # Spreads flow groups over the attribution operator's instances (keyed state).
    attribution_keys: int = 128
    # Python bundles: one element is a whole batch of flows, so small bundles cost little and
    # keep latency and watermark progress smooth.
    bundle_size: int = 100
    bundle_time_ms: int = 100
    watermark_interval_ms: int = 200
    # On a local mini-cluster PyFlink runs Python in the client process ("loopback": one
    # interpreter lock for all operators) unless told to start worker processes ("process").
    python_workers: str = "process"
    # Restarts after a failure (fixed delay); 0 fails the run at once, which suits a bounded
    # replay: bad input is dead-lettered, so a failure is a bug to see, not to retry.
    max_restarts: int = 0


@dataclass(frozen=True)
class FlowsSection:
    format: str = " ".join(DEFAULT_FORMAT)
    # Allowed lateness: a flow whose window closed more than this before its arrival is late.
    out_of_orderness_seconds: int = 300
    chunk_lines: int = 5000
    # A CloudWatch envelope larger than this once decompressed is dead-lettered (a gzip bomb
    # cannot exhaust memory); S3 files are staged in chunks no larger.
    max_decompressed_bytes: int = 64 * 1024 * 1024
    # A flow starting more than this before its delivery time is dead-lettered.
    max_clock_skew_seconds: int = 86400
    # A flow starting more than this after its delivery time (AWS's stamp in an S3 file name,
    # the CloudWatch event timestamps, the Kinesis arrival time; a file's modification time)
    # is dead-lettered: one such line would move event time past every other flow.
    max_ahead_seconds: int = 120
    # Longer lines are dead-lettered with an excerpt; staging never holds more of one.
    max_line_bytes: int = 8192
    # Fields a header or format may name (AWS's own formats have fewer than 80).
    max_fields_per_line: int = 128
    # Largest packets or bytes value of one line (2 TiB, above any one flow in 10 minutes):
    # what a record sums must fit a 64-bit integer (checked against max_decompressed_bytes).
    max_flow_bytes: int = 2**41
    # false: an input file that cannot be read (empty, truncated, not gzip, no header) is
    # dead-lettered and the replay goes on, and header fields this release does not know are
    # dropped (counted); true: either refuses the replay.
    strict: bool = False


@dataclass(frozen=True)
class MetadataSection:
    # Changes may arrive this much out of ts order; flows wait for it.
    out_of_orderness_seconds: int = 30
    # Changelog lines per record when staging changelog files (one Python call each).
    chunk_lines: int = 5000
    # Longest (processing-time) wait for metadata before attributing with what is known.
    max_wait_seconds: int = 600
    # How often waiting flow groups check whether the metadata caught up with them.
    poll_interval_ms: int = 1000
    # Ownership ranges that ended this long before the metadata watermark are forgotten.
    retention_seconds: int = 7200
    # AWS's published ip-ranges.json (a path or s3:// URL): names public addresses without an
    # owner aws:<service>:<region> instead of internet. Empty: not used.
    ip_ranges: str = ""
    # Longer changelog lines are dead-lettered with an excerpt.
    max_line_bytes: int = 8192
    # An event (change or HEARTBEAT) with a ts more than this after its delivery time (Kinesis
    # arrival, a file's modification time) is dead-lettered: it would move the metadata clock.
    max_ahead_seconds: int = 120


@dataclass(frozen=True)
class OutputsSection:
    enriched: bool = True
    # Conversations between addresses per window, the input of the security views.
    security: bool = True


START_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
READERS = ("polling", "efo")


@dataclass(frozen=True)
class KinesisSection:
    """The streaming job's Kinesis Data Streams (`flowdredge run`, a cluster, Managed Flink);
    docs/streaming.md. Streams are names (resolved to ARNs at start) or ARNs."""
    region: str = "us-east-1"
    # Empty: AWS's endpoint for the region. A URL such as http://127.0.0.1:4568 for a local
    # Kinesis API server (then credentials are the AWS_* variables, or dummy ones).
    endpoint: str = ""
    # CloudWatch Logs subscription records of VPC Flow Logs, comma-separated.
    flow_streams: str = ""
    # The IP-metadata changelog (what flowdredge-publisher writes).
    metadata_stream: str = ""
    # Changelog snapshot read to its end before the metadata stream (a file, folder or s3://
    # URL): Kinesis keeps 24 h to 365 days and does not compact, so a start from nothing needs it.
    metadata_snapshot: str = ""
    # Where the flow streams start without a checkpoint: TRIM_HORIZON, LATEST, AT_TIMESTAMP.
    start_position: str = "TRIM_HORIZON"
    # For AT_TIMESTAMP: ISO 8601 with zone, e.g. 2026-12-01T10:00:00.000Z.
    start_timestamp: str = ""
    # Where the metadata stream starts without a checkpoint (after the snapshot).
    metadata_start_position: str = "TRIM_HORIZON"
    metadata_start_timestamp: str = ""
    # polling (GetRecords, shared throughput) or efo (enhanced fan-out: a consumer of its own).
    reader: str = "polling"
    efo_consumer_name: str = "flowdredge"
    # A shard with no record for this long stops holding back event time (per-shard
    # watermarks): what a quiet shard can cost in delay.
    shard_idle_seconds: int = 60
    # Optional outputs to Kinesis (at least once; each row carries a dedup key): empty is off.
    aggregates_stream: str = ""
    security_events_stream: str = ""
    # The output streams' sink sends what it holds at least this often: a window's rows rarely
    # fill a 500-record batch, and the connector's own default (5 s) is added to every window.
    output_flush_ms: int = 200


@dataclass(frozen=True)
class SecuritySection:
    """The security and dependency views (outputs.security); docs/security.md."""
    # Client/server rule, after tcp-flags: an end on one of these ports is the server.
    service_ports: str = ("22,25,53,80,88,110,123,143,389,443,445,465,587,636,993,995,1433,1521,"
                          "2049,2181,2379,3306,3389,5432,5439,5672,6379,6443,7000,7001,8080,"
                          "8443,9042,9092,9200,9300,11211,27017")
    # new_dependency / exposure_new start this long (event time) after the job's first window.
    warmup_seconds: int = 900
    # dependency_gone after an edge had no traffic this long.
    dependency_silence_seconds: int = 3600
    # A resource's internet exposure on a port is forgotten after this long without traffic.
    exposure_silence_seconds: int = 86400
    # Rejected traffic: sources listed per row; spike if > factor x the mean of the previous
    # baseline windows and at least min_flows REJECTed flows in the window.
    reject_top_sources: int = 5
    reject_baseline_windows: int = 10
    reject_spike_factor: int = 3
    reject_spike_min_flows: int = 50
    # Scans: sources reaching at least this many hosts or ports are reported (output `scans`).
    scan_report_min_targets: int = 10
    port_scan_min_ports: int = 20
    port_scan_max_hosts: int = 3
    host_sweep_min_hosts: int = 20
    host_sweep_max_ports: int = 2
    # Alerts need at least this REJECT share (0: none), e.g. to spare busy NAT or proxy egress.
    scan_min_reject_percent: int = 0
    # Hosts and ports listed as evidence in scan rows and alerts.
    evidence_samples: int = 20
    # Risk score: factor=weight, and factor=value at which the factor counts in full (per
    # window); factors are schemas.security.RISK_FACTORS.
    risk_weights: str = ("exposed_ports=30,rejected_flows=15,scan_sources=20,egress_bytes=20,"
                         "dependencies=5,dependents=10")
    risk_scales: str = ("exposed_ports=3,rejected_flows=100,scan_sources=2,"
                        "egress_bytes=100000000,dependencies=10,dependents=10")


@dataclass(frozen=True)
class Config:
    job: JobSection = field(default_factory=JobSection)
    flows: FlowsSection = field(default_factory=FlowsSection)
    metadata: MetadataSection = field(default_factory=MetadataSection)
    outputs: OutputsSection = field(default_factory=OutputsSection)
    security: SecuritySection = field(default_factory=SecuritySection)
    kinesis: KinesisSection = field(default_factory=KinesisSection)

    @property
    def flow_format(self) -> FlowFormat:
        return FlowFormat.parse(self.flows.format)

    @property
    def parse_limits(self) -> Limits:
        flows = self.flows
        return Limits(self.job.window_seconds, flows.max_decompressed_bytes,
                      flows.max_clock_skew_seconds, flows.max_ahead_seconds,
                      flows.max_line_bytes, flows.max_flow_bytes)

    @property
    def metadata_limits(self) -> MetaLimits:
        return MetaLimits(self.metadata.max_line_bytes, self.metadata.max_ahead_seconds)

    def replace(self, **sections) -> "Config":
        """Config with some fields changed: replace(job={"parallelism": 2})."""
        merged = {name: {**dataclasses.asdict(getattr(self, name)), **values}
                  for name, values in sections.items()}
        return from_dict({**dataclasses.asdict(self), **merged})


def _coerce(section: str, f, value):
    where = f"{section}.{f.name}"
    if f.type is bool or f.type == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if f.type is int or f.type == "int":
        # A float is refused, not truncated (90.7 is not 90).
        if isinstance(value, (bool, float)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        # Numbers reach Java (durations, sizes, parallelism) as 32-bit ints unless wider.
        highest = MAX_LONG if (section, f.name) in _WIDE else MAX_INT
        if not -highest - 1 <= number <= highest:
            raise ConfigError(f"{where}: {value!r} is out of range (at most {highest} either way)")
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


MAX_INT = 2**31 - 1
MAX_LONG = 2**63 - 1
_WIDE = {("flows", "max_flow_bytes")}
# The shortest flow line with traffic ("::1 ::1 1262304000"): a record of
# flows.max_decompressed_bytes holds at most that many bytes / this many lines.
SHORTEST_LINE = 18
# Flink's own upper bound of a job's parallelism.
MAX_PARALLELISM = 32768


def from_dict(doc: dict) -> Config:
    if not isinstance(doc, dict):
        raise ConfigError("config must be a mapping of sections")
    sections = {f.name: f for f in fields(Config)}
    unknown = set(doc) - set(sections)
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}; known: {sorted(sections)}")
    built = {}
    for name, sec_field in sections.items():
        cls = sec_field.default_factory
        values = doc.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{name}: expected a mapping, got {values!r}")
        known = {f.name: f for f in fields(cls)}
        bad = set(values) - set(known)
        if bad:
            raise ConfigError(f"unknown key(s) {sorted(bad)} in {name}; known: {sorted(known)}")
        built[name] = cls(**{k: _coerce(name, known[k], v) for k, v in values.items()})
    config = Config(**built)
    validate(config)
    return config


_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*")


def _is_path_or_url(value: str) -> bool:
    if not value or any(c.isspace() for c in value):
        return False
    scheme, sep, rest = value.partition("://")
    return not sep or bool(_SCHEME.fullmatch(scheme) and rest)


def checkpoint_uri(path_or_url: str) -> str:
    """job.checkpoint_dir as Flink wants it: URLs as they are, paths as absolute file:// URLs."""
    if "://" in path_or_url:
        return path_or_url
    return "file://" + os.path.abspath(path_or_url)


def validate(config: Config) -> None:
    positive = [("job", "parallelism"), ("job", "window_seconds"),
                ("job", "checkpoint_interval_seconds"), ("job", "attribution_keys"),
                ("job", "bundle_size"), ("job", "bundle_time_ms"), ("job", "watermark_interval_ms"),
                ("flows", "chunk_lines"), ("flows", "max_decompressed_bytes"),
                ("flows", "max_clock_skew_seconds"), ("flows", "max_line_bytes"),
                ("flows", "max_fields_per_line"), ("flows", "max_flow_bytes"),
                ("metadata", "chunk_lines"), ("metadata", "max_wait_seconds"),
                ("metadata", "max_line_bytes"),
                ("metadata", "retention_seconds"),
                ("metadata", "poll_interval_ms")]
    for section, key in positive:
        if getattr(getattr(config, section), key) <= 0:
            raise ConfigError(f"{section}.{key} must be positive")
    for section, key in [("job", "max_restarts"), ("flows", "out_of_orderness_seconds"),
                         ("metadata", "out_of_orderness_seconds"), ("flows", "max_ahead_seconds"),
                         ("metadata", "max_ahead_seconds")]:
        if getattr(getattr(config, section), key) < 0:
            raise ConfigError(f"{section}.{key} must not be negative")
    if config.job.parallelism > MAX_PARALLELISM:
        raise ConfigError(f"job.parallelism must be at most {MAX_PARALLELISM} (Flink's limit)")
    flows = config.flows
    if flows.max_flow_bytes * (flows.max_decompressed_bytes // SHORTEST_LINE) > MAX_LONG:
        raise ConfigError("flows.max_flow_bytes is too large for flows.max_decompressed_bytes: "
                          f"the sums of a record ({flows.max_decompressed_bytes // SHORTEST_LINE} "
                          "lines at most) must fit a 64-bit integer")
    if config.metadata.retention_seconds < (config.flows.out_of_orderness_seconds
                                            + config.job.window_seconds):
        raise ConfigError("metadata.retention_seconds must cover flows.out_of_orderness_seconds "
                          "+ job.window_seconds, or flows still in time would lose their owner")
    if config.job.python_workers not in ("process", "loopback"):
        raise ConfigError("job.python_workers must be process or loopback")
    if config.job.checkpoint_dir and not _is_path_or_url(config.job.checkpoint_dir):
        raise ConfigError(f"job.checkpoint_dir: expected a path or a URL such as "
                          f"s3://bucket/prefix, got {config.job.checkpoint_dir!r}")
    try:
        fmt = config.flow_format
    except FormatError as err:
        raise ConfigError(f"flows.format: {err}") from None
    if fmt.unknown:
        raise ConfigError(f"flows.format: unknown flow-log field(s) {list(fmt.unknown)} "
                          f"(schemas/flowlog.py lists the known ones)")
    if fmt.width > flows.max_fields_per_line:
        raise ConfigError(f"flows.format names {fmt.width} fields, more than "
                          f"flows.max_fields_per_line ({flows.max_fields_per_line})")
    _validate_security(config)
    _validate_kinesis(config.kinesis)


def _validate_kinesis(kin: KinesisSection) -> None:
    for key in ("start_position", "metadata_start_position"):
        if getattr(kin, key) not in START_POSITIONS:
            raise ConfigError(f"kinesis.{key} must be one of {', '.join(START_POSITIONS)}, "
                              f"got {getattr(kin, key)!r}")
    for position, stamp in (("start_position", "start_timestamp"),
                            ("metadata_start_position", "metadata_start_timestamp")):
        if getattr(kin, position) == "AT_TIMESTAMP":
            text = getattr(kin, stamp)
            try:
                parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                parsed = None
            if parsed is None or parsed.tzinfo is None:
                raise ConfigError(f"kinesis.{stamp}: AT_TIMESTAMP needs an ISO 8601 time with "
                                  f"a zone, e.g. 2026-12-01T10:00:00Z, got {text!r}")
    if kin.reader not in READERS:
        raise ConfigError(f"kinesis.reader must be polling or efo, got {kin.reader!r}")
    if kin.shard_idle_seconds <= 0:
        raise ConfigError("kinesis.shard_idle_seconds must be positive")
    if kin.output_flush_ms <= 0:
        raise ConfigError("kinesis.output_flush_ms must be positive")
    if kin.endpoint and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", kin.endpoint):
        raise ConfigError(f"kinesis.endpoint: expected an http(s) URL, got {kin.endpoint!r}")
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", kin.region):
        raise ConfigError(f"kinesis.region: expected an AWS region such as eu-west-1, "
                          f"got {kin.region!r}")
    for key in ("metadata_stream", "aggregates_stream", "security_events_stream"):
        if "," in getattr(kin, key):
            raise ConfigError(f"kinesis.{key}: one stream, got {getattr(kin, key)!r}")
    for name in [*kin.flow_streams.split(","), kin.metadata_stream, kin.aggregates_stream,
                 kin.security_events_stream]:
        name = name.strip()
        if name and not STREAM.fullmatch(name):
            raise ConfigError(f"kinesis: {name!r} is neither a stream name nor a stream ARN")


# A stream name (1-128 of [a-zA-Z0-9_.-]) or its ARN.
STREAM = re.compile(r"(arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/)?[a-zA-Z0-9_.-]{1,128}")


def _validate_security(config: Config) -> None:
    sec = config.security
    for f in fields(SecuritySection):
        if f.type is not int:
            continue
        value = getattr(sec, f.name)
        if f.name in ("warmup_seconds", "scan_min_reject_percent"):
            if value < 0:
                raise ConfigError(f"security.{f.name} must not be negative")
        elif value <= 0:
            raise ConfigError(f"security.{f.name} must be positive")
    if sec.scan_min_reject_percent > 100:
        raise ConfigError("security.scan_min_reject_percent must be at most 100")
    if sec.port_scan_max_hosts >= sec.host_sweep_min_hosts or \
            sec.host_sweep_max_ports >= sec.port_scan_min_ports:
        raise ConfigError("security: a source cannot be both a port scan and a host sweep: "
                          "need port_scan_max_hosts < host_sweep_min_hosts and "
                          "host_sweep_max_ports < port_scan_min_ports")
    if sec.scan_report_min_targets > min(sec.port_scan_min_ports, sec.host_sweep_min_hosts):
        raise ConfigError("security.scan_report_min_targets must not exceed "
                          "port_scan_min_ports and host_sweep_min_hosts (alerts come from "
                          "reported sources)")
    for key in ("dependency_silence_seconds", "exposure_silence_seconds"):
        if getattr(sec, key) < config.job.window_seconds:
            raise ConfigError(f"security.{key} must be at least job.window_seconds")
    try:
        parse_ports(sec.service_ports)
        weights = parse_factors(sec.risk_weights)
        scales = parse_factors(sec.risk_scales)
    except ValueError as err:
        raise ConfigError(f"security: {err}") from None
    if not any(weights.values()):
        raise ConfigError("security.risk_weights: at least one factor needs a weight")
    unscaled = [f for f, w in weights.items() if w and not scales[f]]
    if unscaled:
        raise ConfigError(f"security.risk_scales: weighted factor(s) {unscaled} need a "
                          f"positive scale")


def load(path: str = None) -> Config:
    """Loads YAML or application_properties.json; no path means all defaults."""
    if path is None:
        return from_dict({})
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    try:
        doc = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: {err}") from None
    if isinstance(doc, list):
        doc = from_application_properties(doc)
    return from_dict(doc or {})


def from_application_properties(groups: list) -> dict:
    doc = {}
    for group in groups:
        try:
            doc[group["PropertyGroupId"]] = dict(group["PropertyMap"])
        except (KeyError, TypeError):
            raise ConfigError("application properties: each group needs PropertyGroupId and "
                              "PropertyMap") from None
    return doc


def to_application_properties(config: Config) -> list:
    return [{"PropertyGroupId": name,
             "PropertyMap": {k: str(v).lower() if isinstance(v, bool) else str(v)
                             for k, v in dataclasses.asdict(getattr(config, name)).items()}}
            for name in (f.name for f in fields(Config))]
