"""Typed job configuration with defaults, validated at start (loaded by schemas.settings).

Sources: a YAML file (`--config`), or an Amazon Managed Service for Apache Flink
`application_properties.json` (a list of {"PropertyGroupId", "PropertyMap"}; group ids are the
section names below, values strings). See flink-conf/ and docs/configuration.md.

Validation data the domain owns (flow-log fields, ports, risk factors) comes from the domain
modules; they never import this one. A section that configures only a connector is declared
with it (`kinesis`: connectors.kinesis.settings); Config composes the sections and validate()
checks the whole.
"""
import dataclasses
import re
from dataclasses import dataclass, field, fields

from flowdredge.connectors import s3
from flowdredge.connectors.kinesis.settings import MAX_RECORD_BYTES, KinesisSection
from flowdredge.connectors.kinesis.settings import validate as validate_kinesis
from flowdredge.job.ownership import MetaLimits
from flowdredge.job.parse import FlowFormat, FormatError, Limits
from flowdredge.job.security import (DEFAULT_SERVICE_PORTS, OWNER_CHAR_BYTES, event_bytes_bound,
                                     parse_factors, parse_ports)
from flowdredge.schemas import settings
from flowdredge.schemas.fields import INT, LONG, STRING
from flowdredge.schemas.flowlog import DEFAULT_FORMAT, SHORTEST_LINE
from flowdredge.schemas.outputs import AGGREGATE
from flowdredge.schemas.settings import MAX_INT, MAX_LONG, ConfigError, setting

# Flink's own upper bound of a job's parallelism.
MAX_PARALLELISM = 32768
# The least job.local_heap_mb: a floor against slips such as 4 meant as GB.
MIN_HEAP_MB = 256
# job.local_heap_mb 0: this much per attribution instance (job.parallelism), each of which
# holds the ownership broadcast state whole, and a copy of it while a checkpoint is taken.
# 1M IPs (state version 2) took their savepoint with 640 MB per instance at parallelism 1 and
# 2, and ran out of heap in it with 512 (bench.state, docs/performance.md); one that started
# during a checkpoint, three copies, ran out of 640 (docs/operations.md: local jobs take none).
HEAP_PER_INSTANCE_MB = 640
# A security event written to kinesis.security_events_stream is one record (MAX_RECORD_BYTES).
# A scan alert's samples take at most 46 bytes each (an IPv6 address of 39 characters and a
# port of 5 digits, with their commas), a reject_spike's top lists 92 an entry (address=flows
# and port/protocol=flows, flows of up to 20 characters): at these bounds each takes less than
# half a record, the other half left to the rest (a scan's lists of apps, at most
# job.security.ALERT_APPS_BYTES each; the owners an event names: metadata.max_line_bytes).
KINESIS_EVIDENCE_SAMPLES = 10_000
KINESIS_REJECT_TOP_SOURCES = 5_000
# What a security event's record adds to its line (connectors.kinesis.flink): `"dedup_key":"`,
# 32 hex digits and `",`, and its partition key (a UUID; Kinesis takes up to 256 characters).
EVENT_RECORD_EXTRA = len('"dedup_key":"",') + 32 + 256
# An aggregate row written to kinesis.aggregates_stream is one record too: its JSON, with a
# `dedup_key` field that is also its partition key (32 hex digits, connectors.kinesis.flink).
# Flink's json format (Jackson) writes a character of an owner value in at most 12 bytes: a
# code point past U+FFFF as its surrogate pair escaped (`\ud83d\ude00`), a control character in
# 6 (`\u001b`).
AGGREGATE_OWNER_CHAR_BYTES = 12


def _ports_text(ports: frozenset) -> str:
    return ",".join(map(str, sorted(ports)))


def _factors_text(factors: dict) -> str:
    return ",".join(f"{name}={value}" for name, value in factors.items())


def factors(maximum: int = MAX_INT, **defaults):
    """A risk-factor map (factor -> int from 0 to `maximum`, over
    schemas.security.RISK_FACTORS): the factors a value leaves out keep these defaults (0 for
    those not named here)."""
    return setting(factory=lambda: parse_factors(defaults),
                   parse=lambda value: parse_factors(value, defaults, maximum),
                   text=_factors_text)


@dataclass(frozen=True)
class JobSection:
    parallelism: int = setting(1, minimum=1, maximum=MAX_PARALLELISM)
    window_seconds: int = setting(60, minimum=1)
    checkpoint_interval_seconds: int = setting(10, minimum=1)
    # Where checkpoints go (execution.checkpointing.dir: a path, file:// or s3:// URL). Empty: a
    # replay and `flowdredge run` checkpoint under their output folder, a cluster keeps its own
    # setting. Never the
    # JobManager's memory: it refuses state above 5 MB, less than a real estate's ownership.
    checkpoint_dir: str = ""
    # Spreads flow groups over the attribution operator's instances (keyed state).
    attribution_keys: int = setting(128, minimum=1)
    # Python bundles: one element is a whole batch of flows, so small bundles cost little and
    # keep latency and watermark progress smooth.
    bundle_size: int = setting(100, minimum=1)
    bundle_time_ms: int = setting(100, minimum=1)
    watermark_interval_ms: int = setting(200, minimum=1)
    # On a local mini-cluster PyFlink runs Python in the client process ("loopback": one
    # interpreter lock for all operators) unless told to start worker processes ("process").
    python_workers: str = setting("process", choices=("process", "loopback"))
    # Heap cap (-Xmx, MB) of the JVM this process starts for a local mini-cluster (replay, run
    # without a cluster, the demo, benchmarks, tests); a cluster's and Managed Flink's own
    # settings are not touched. Without a cap Java takes up to a quarter of the machine and
    # keeps it. 0: local_heap_mb() sizes it from the parallelism. A -Xmx in JVM_ARGS wins.
    local_heap_mb: int = setting(0, minimum=0)
    # More options for that JVM. C1 only: a local job's JVM mostly plumbs batches between
    # Python workers, and the optimising compiler cost it about a fifth more CPU for no speed
    # (docs/performance.md, "The local JVM's start"). The parallel collector: G1's concurrent
    # work and barriers cost the JVM 10-30 % more CPU on two cores, for pauses under 50 ms
    # where this one's full collections take up to 0.3 s (docs/performance.md, run 21).
    local_jvm_options: str = "-XX:TieredStopAtLevel=1 -XX:+UseParallelGC"
    # Failures restarted within any restart_interval_seconds (Flink's failure-rate strategy: a
    # job failing more often ends; failures far apart never add up, where a fixed count ended
    # a streaming job at its Nth failure in months); 0 fails the run at once, which suits a
    # bounded replay: bad input is dead-lettered, so a failure is a bug to see, not to retry.
    max_restarts: int = setting(0, minimum=0)
    restart_interval_seconds: int = setting(600, minimum=1)


@dataclass(frozen=True)
class FlowsSection:
    format: str = " ".join(DEFAULT_FORMAT)
    # Allowed lateness: a flow whose window closed more than this before its arrival is late.
    out_of_orderness_seconds: int = setting(300, minimum=0)
    # An S3 file is parsed in chunks of this many lines; a file's small records together.
    chunk_lines: int = setting(5000, minimum=1)
    # A CloudWatch envelope larger than this once decompressed is dead-lettered (a gzip bomb
    # cannot exhaust memory); S3 files are parsed in chunks no larger.
    max_decompressed_bytes: int = setting(64 * 1024 * 1024, minimum=1)
    # A flow starting more than this before its delivery time is dead-lettered.
    max_clock_skew_seconds: int = setting(86400, minimum=1)
    # A flow starting more than this after its delivery time (AWS's stamp in an S3 file name,
    # the CloudWatch event timestamps, the Kinesis arrival time; a file's modification time)
    # is dead-lettered: one such line would move event time past every other flow.
    max_ahead_seconds: int = setting(120, minimum=0)
    # Longer lines are dead-lettered with an excerpt; staging never holds more of one.
    max_line_bytes: int = setting(8192, minimum=1)
    # Fields a header or format may name (AWS's own formats have fewer than 80).
    max_fields_per_line: int = setting(128, minimum=1)
    # Largest packets or bytes value of one line (2 TiB, above any one flow in 10 minutes):
    # what a record sums must fit a 64-bit integer (checked against max_decompressed_bytes).
    max_flow_bytes: int = setting(2**41, minimum=1, maximum=MAX_LONG)
    # false: an input file that cannot be read (empty, truncated, not gzip, no header) is
    # dead-lettered and the replay goes on, and header fields this release does not know are
    # dropped (counted); true: either refuses the replay.
    strict: bool = False


@dataclass(frozen=True)
class MetadataSection:
    # Changes may arrive this much out of ts order; flows wait for it.
    out_of_orderness_seconds: int = setting(30, minimum=0)
    # Changelog lines per record (one Python call each) when staging changelog files, and when
    # the job reads them itself (a file job's changelog, a stream's snapshot).
    chunk_lines: int = setting(5000, minimum=1)
    # Longest (processing-time) wait for metadata before attributing with what is known.
    max_wait_seconds: int = setting(600, minimum=1)
    # How often waiting flow groups check whether the metadata caught up with them.
    poll_interval_ms: int = setting(1000, minimum=1)
    # Ownership ranges that ended this long before the lower of the metadata and flow
    # watermarks are forgotten.
    retention_seconds: int = setting(7200, minimum=1)
    # AWS's published ip-ranges.json (a path or s3:// URL): names public addresses without an
    # owner aws:<service>:<region> instead of internet. Empty: not used.
    ip_ranges: str = ""
    # Longer changelog lines are dead-lettered with an excerpt (bytes when staged by a replay,
    # characters where the job reads the lines itself).
    max_line_bytes: int = setting(8192, minimum=1)
    # An event (change or HEARTBEAT) with a ts more than this after its delivery time (Kinesis
    # arrival, a file's modification time) is dead-lettered: it would move the metadata clock.
    max_ahead_seconds: int = setting(120, minimum=0)


@dataclass(frozen=True)
class OutputsSection:
    enriched: bool = True
    # Conversations between addresses per window, the input of the security views.
    security: bool = True
    # A running job's aggregates files are committed at the checkpoint after they roll, at
    # most this long after a window closes (a bounded replay commits everything at its end).
    aggregates_rollover_seconds: int = setting(60, minimum=1)


@dataclass(frozen=True)
class SecuritySection:
    """The security and dependency views (outputs.security); docs/security.md."""
    # Client/server rule, after tcp-flags: an end on one of these ports is the server.
    # A list, or comma-separated.
    service_ports: frozenset = setting(DEFAULT_SERVICE_PORTS, parse=parse_ports,
                                       text=_ports_text)
    # new_dependency / exposure_new start this long (event time) after the job's first window.
    warmup_seconds: int = setting(900, minimum=0)
    # dependency_gone after an edge had no traffic this long.
    dependency_silence_seconds: int = setting(3600, minimum=1)
    # Each pair of apps keeps at most this many edges (ports and protocols): past it, a new
    # edge is counted, not kept, so a port sweep between apps neither grows the state nor
    # reports an edge a port every window.
    dependency_max_ports: int = setting(1000, minimum=1)
    # And all pairs together at most this many (a sweep across many pairs): past it, a new
    # edge is counted, not kept, as past a pair's cap.
    dependency_max_total_edges: int = setting(100000, minimum=1)
    # A resource's internet exposure on a port is forgotten after this long without traffic.
    exposure_silence_seconds: int = setting(86400, minimum=1)
    # Each app keeps at most this many exposed resource ports (past it, a new one is counted,
    # not kept): an internet that reaches new ports every window must not grow the state for a
    # day.
    exposure_max_ports: int = setting(10000, minimum=1)
    # And all apps together at most this many (an internet scan across many apps).
    exposure_max_total_ports: int = setting(100000, minimum=1)
    # Rejected traffic: sources listed per row; spike if > factor x the mean of the previous
    # baseline windows and at least min_flows REJECTed flows in the window.
    reject_top_sources: int = setting(5, minimum=1)
    reject_baseline_windows: int = setting(10, minimum=1)
    reject_spike_factor: int = setting(3, minimum=1)
    reject_spike_min_flows: int = setting(50, minimum=1)
    # Scans: sources reaching at least this many hosts or ports are reported (output `scans`).
    scan_report_min_targets: int = setting(10, minimum=1)
    port_scan_min_ports: int = setting(20, minimum=1)
    port_scan_max_hosts: int = setting(3, minimum=1)
    host_sweep_min_hosts: int = setting(20, minimum=1)
    host_sweep_max_ports: int = setting(2, minimum=1)
    # Alerts need at least this REJECT share (0: none), e.g. to spare busy NAT or proxy egress.
    scan_min_reject_percent: int = setting(0, minimum=0, maximum=100)
    # Hosts and ports listed as evidence in scan rows and alerts.
    evidence_samples: int = setting(20, minimum=1)
    # Risk score: factor=weight, and factor=value at which the factor counts in full (per
    # window); factors are schemas.security.RISK_FACTORS. A mapping, or "factor=n,...".
    risk_weights: dict = factors(exposed_ports=30, rejected_flows=15, scan_sources=20,
                                 egress_bytes=20, dependencies=5, dependents=10)
    # Scales up to a 64-bit integer: egress_bytes counts bytes a window.
    risk_scales: dict = factors(MAX_LONG, exposed_ports=3, rejected_flows=100, scan_sources=2,
                                egress_bytes=100000000, dependencies=10, dependents=10)


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
                      flows.max_line_bytes, flows.max_flow_bytes, flows.max_fields_per_line)

    @property
    def metadata_limits(self) -> MetaLimits:
        return MetaLimits(self.metadata.max_line_bytes, self.metadata.max_ahead_seconds)

    def replace(self, **sections) -> "Config":
        """Config with some fields changed: replace(job={"parallelism": 2}). A risk map given
        is read as in a file: the factors it leaves out take their defaults."""
        merged = {name: {**dataclasses.asdict(getattr(self, name)), **values}
                  for name, values in sections.items()}
        return from_dict({**dataclasses.asdict(self), **merged})


def local_heap_mb(config: Config) -> int:
    """The heap cap of a local mini-cluster's JVM: job.local_heap_mb, or sized from
    job.parallelism when it is 0."""
    return config.job.local_heap_mb or HEAP_PER_INSTANCE_MB * config.job.parallelism


# The Flink job's name unless an entry point is told another; a replay's.
JOB_NAME = "flowdredge"
REPLAY_JOB_NAME = "flowdredge replay"


_COLLECTOR = re.compile(r"-XX:\+Use\w+GC")


def local_jvm_args(config: Config, user_args: str = "", class_archive: str = None) -> str:
    """The JVM_ARGS of a local mini-cluster's JVM: the heap cap unless `user_args` (the
    user's JVM_ARGS) has one, job.local_jvm_options (less its collector if `user_args` names
    one), the class-data archive of a local job's
    classes if there is one (scripts/setup writes it; an archive that no longer matches Java
    or the jars is ignored, silently; one whose path holds white space is left out), then
    `user_args`, last so that they win."""
    args = [] if "-Xmx" in user_args else [f"-Xmx{local_heap_mb(config)}m"]
    user = user_args.split()
    # Java refuses two collectors: the user's choice replaces the default's.
    args += [a for a in config.job.local_jvm_options.split()
             if not (_COLLECTOR.fullmatch(a) and any(map(_COLLECTOR.fullmatch, user)))]
    # PyFlink's launcher splits JVM_ARGS at white space, quotes or not: an archive in a folder
    # named with a space made its path's tail Java's main class (ClassNotFoundException), and
    # every local job failed. It only speeds the start: left out then.
    if class_archive and not any(c.isspace() for c in class_archive):
        args += [f"-XX:SharedArchiveFile={class_archive}", "-Xlog:cds=off",
                 "-Xlog:cds+dynamic=off"]
    return " ".join(args + user)


def from_dict(doc: dict) -> Config:
    if not isinstance(doc, dict):
        raise ConfigError("config must be a mapping of sections")
    known = [f.name for f in fields(Config)]
    unknown = set(doc) - set(known)
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}; known: {sorted(known)}")
    config = settings.section(Config, doc, "")
    validate(config)
    return config


_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*")


def _is_path_or_url(value: str) -> bool:
    """A path (spaces allowed inside, as in a folder's name) or a URL (none in it)."""
    if not value or value != value.strip() or any(c in value for c in "\n\r\t"):
        return False
    scheme, sep, rest = value.partition("://")
    return not sep or bool(_SCHEME.fullmatch(scheme) and rest and " " not in rest)


def validate(config: Config) -> None:
    """Rules across fields (each field's own type and range were checked as it was read)."""
    flows = config.flows
    if flows.max_flow_bytes * (flows.max_decompressed_bytes // SHORTEST_LINE) > MAX_LONG:
        raise ConfigError("flows.max_flow_bytes is too large for flows.max_decompressed_bytes: "
                          f"the sums of a record ({flows.max_decompressed_bytes // SHORTEST_LINE} "
                          "lines at most) must fit a 64-bit integer")
    if config.metadata.retention_seconds < (config.flows.out_of_orderness_seconds
                                            + config.job.window_seconds):
        raise ConfigError("metadata.retention_seconds must cover flows.out_of_orderness_seconds "
                          "+ job.window_seconds, or flows still in time would lose their owner")
    if 0 < config.job.local_heap_mb < MIN_HEAP_MB:
        raise ConfigError(f"job.local_heap_mb must be 0 (sized from job.parallelism) or at "
                          f"least {MIN_HEAP_MB} (MB)")
    if config.job.checkpoint_dir and not _is_path_or_url(config.job.checkpoint_dir):
        raise ConfigError(f"job.checkpoint_dir: expected a path or a URL such as "
                          f"s3://bucket/prefix, got {config.job.checkpoint_dir!r}")
    # Each attribution instance reads it as it starts (a local file is read at start too:
    # job.startup): an S3 URL without a key failed the job after Flink had started.
    if s3.is_s3(config.metadata.ip_ranges):
        try:
            s3.split(config.metadata.ip_ranges)
        except ValueError as err:
            raise ConfigError(f"metadata.ip_ranges: {err}") from None
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
    validate_kinesis(config.kinesis)
    most = (MAX_RECORD_BYTES - aggregate_record_bytes(0)) // (2 * AGGREGATE_OWNER_CHAR_BYTES)
    if config.kinesis.aggregates_stream and config.metadata.max_line_bytes > most:
        raise ConfigError(
            f"metadata.max_line_bytes must be at most {most:,} with kinesis.aggregates_stream, "
            f"got {config.metadata.max_line_bytes:,}: an aggregate row names two owners (app "
            f"and region, from a changelog line each of up to that many characters, up to "
            f"{AGGREGATE_OWNER_CHAR_BYTES} bytes of the row's JSON each), and is one Kinesis "
            f"record, at most {MAX_RECORD_BYTES:,} bytes, and the sink fails the job on a "
            f"larger one")
    # The events come from the security views: without them the stream got nothing, silently.
    if config.kinesis.security_events_stream and not config.outputs.security:
        raise ConfigError("kinesis.security_events_stream needs outputs.security: the events "
                          "come from the security views, off, so the stream would get none")


def _validate_security(config: Config) -> None:
    sec = config.security
    if sec.port_scan_max_hosts >= sec.host_sweep_min_hosts or \
            sec.host_sweep_max_ports >= sec.port_scan_min_ports:
        raise ConfigError("security: a source cannot be both a port scan and a host sweep: "
                          "need port_scan_max_hosts < host_sweep_min_hosts and "
                          "host_sweep_max_ports < port_scan_min_ports")
    if sec.scan_report_min_targets > min(sec.port_scan_min_ports, sec.host_sweep_min_hosts):
        raise ConfigError("security.scan_report_min_targets must not exceed "
                          "port_scan_min_ports and host_sweep_min_hosts (alerts come from "
                          "reported sources)")
    for cap, total in (("dependency_max_ports", "dependency_max_total_edges"),
                       ("exposure_max_ports", "exposure_max_total_ports")):
        if getattr(sec, cap) > getattr(sec, total):
            raise ConfigError(f"security.{cap} must not exceed {total} (the bound of all "
                              f"together)")
    for key in ("dependency_silence_seconds", "exposure_silence_seconds"):
        if getattr(sec, key) < config.job.window_seconds:
            raise ConfigError(f"security.{key} must be at least job.window_seconds")
    if config.kinesis.security_events_stream:
        for key, most in (("evidence_samples", KINESIS_EVIDENCE_SAMPLES),
                          ("reject_top_sources", KINESIS_REJECT_TOP_SOURCES)):
            if getattr(sec, key) > most:
                raise ConfigError(
                    f"security.{key} must be at most {most:,} with "
                    f"kinesis.security_events_stream, got {getattr(sec, key):,}: each event is "
                    f"one Kinesis record, at most {MAX_RECORD_BYTES:,} bytes, and the sink "
                    f"fails the job on a larger one")
        most = _most_owner_chars(sec)
        if config.metadata.max_line_bytes > most:
            raise ConfigError(
                f"metadata.max_line_bytes must be at most {most:,} with "
                f"kinesis.security_events_stream, got {config.metadata.max_line_bytes:,}: an "
                f"owner (app, resource) holds up to that many characters, and up to "
                f"{OWNER_CHAR_BYTES} bytes of an event's JSON each; an event names up to two, and "
                f"is one Kinesis record, at most {MAX_RECORD_BYTES:,} bytes, and the sink fails "
                f"the job on a larger one")
    if not any(sec.risk_weights.values()):
        raise ConfigError("security.risk_weights: at least one factor needs a weight")
    unscaled = [f for f, w in sec.risk_weights.items() if w and not sec.risk_scales[f]]
    if unscaled:
        raise ConfigError(f"security.risk_scales: weighted factor(s) {unscaled} need a "
                          f"positive scale")


def aggregate_record_bytes(owner_chars: int) -> int:
    """The most bytes of an aggregate row's Kinesis record (its JSON and partition key) whose
    ends' owner values (src_app and src_region, dst_app and dst_region) hold at most
    `owner_chars` characters an end, every number at its longest."""
    longest = {LONG: len(str(-2 ** 63)), INT: len(str(-2 ** 31)), STRING: len('"ACCEPT"')}
    size = 1 + len('"dedup_key":"",') + 2 * 32   # the braces less the last field's comma
    for f in AGGREGATE.fields:
        owner = f.name in ("src_app", "src_region", "dst_app", "dst_region")
        size += len(f.name) + len('"":,') + (2 if owner else longest[f.kind])
    return size + 2 * owner_chars * AGGREGATE_OWNER_CHAR_BYTES


def _most_owner_chars(sec: SecuritySection) -> int:
    """The longest owner value (characters) whose events fit a record at these settings (each
    event's bound grows by the same amount a character: job.security.event_bytes_bound)."""
    room = MAX_RECORD_BYTES - EVENT_RECORD_EXTRA
    none, one = (event_bytes_bound(chars, sec.evidence_samples, sec.reject_top_sources)
                 for chars in (0, 1))
    return min((room - none[name]) // (one[name] - none[name])
               for name in none if one[name] > none[name])


# Groups of a Managed Flink application_properties.json besides the config sections: where the
# job reads and writes (job.managed), and the service's own run options. A command's arguments
# say where; the service reads its options.
IO_GROUP = "io"
RUN_OPTIONS_GROUP = "kinesis.analytics.flink.run.options"


def load(path: str = None) -> Config:
    """Loads YAML or application_properties.json (its `io` and run options groups are not read
    here); no path means all defaults."""
    doc = {} if path is None else settings.read(path)
    if isinstance(doc, list) and path.endswith(".json"):
        doc = from_application_properties(doc)
        doc.pop(IO_GROUP, None)
        doc.pop(RUN_OPTIONS_GROUP, None)
    elif isinstance(doc, list):
        raise ConfigError(f"{path}: a list, not a mapping of sections (application properties "
                          f"are read from a file whose name ends in .json)")
    return from_dict(doc or {})


def from_application_properties(groups: list) -> dict:
    doc = {}
    for group in groups:
        # A name of another type than text and a map of another than an object are refused
        # with the others: a list as the name (unhashable) or as the map (taken for pairs)
        # ended the command with a traceback or an error naming no group.
        name = group.get("PropertyGroupId") if isinstance(group, dict) else None
        properties = group.get("PropertyMap") if isinstance(group, dict) else None
        if not isinstance(name, str) or not isinstance(properties, dict):
            raise ConfigError("application properties: each group needs PropertyGroupId (a "
                              "string) and PropertyMap (an object)")
        if name in doc:
            raise ConfigError(f"application properties: group {name!r} is given twice")
        doc[name] = properties
    return doc


def to_application_properties(config: Config) -> list:
    return [{"PropertyGroupId": section.name,
             "PropertyMap": {f.name: settings.as_text(f, getattr(values, f.name))
                             for f in fields(values)}}
            for section in fields(Config) for values in [getattr(config, section.name)]]
