"""Runtime properties of the job on Amazon Managed Service for Apache Flink (pure Python).

The service writes the application's property groups to /etc/flink/application_properties.json;
elsewhere (a laptop, a test) the same file shape is read from a path given. Groups:

- the config sections of job.config (`job`, `flows`, `metadata`, `outputs`, `security`,
  `kinesis`);
- `io`: where the job reads and writes (IoSection below);
- `kinesis.analytics.flink.run.options`: the service's own (where main.py and the jar are in
  the zip); read by the service, ignored here.

See docs/managed-flink.md.
"""
import os
from dataclasses import dataclass, fields

from flowdredge.job import config as config_mod
from flowdredge.job.config import IO_GROUP, RUN_OPTIONS_GROUP, Config, ConfigError
from flowdredge.schemas import settings
from flowdredge.schemas.settings import setting

SERVICE_PROPERTIES = "/etc/flink/application_properties.json"
FLOWS_LAYOUTS = ("staged", "aws")


@dataclass(frozen=True)
class IoSection:
    # Flow input, as flows_layout says; not used when kinesis.flow_streams names the flow
    # streams (the streaming job).
    flows: str = ""
    # Changelog events (JSON Lines), a file or a folder read in the order of its files' paths.
    metadata: str = ""
    # Output folder: aggregates/, enriched/, ... as in docs/outputs.md.
    output: str = ""
    # 0: read the inputs once and finish (bounded). N > 0: keep looking for new files every N
    # seconds and never finish (unbounded, the service's normal mode).
    follow_seconds: int = setting(0, minimum=0)
    # What `flows` holds. aws: flow files as AWS writes them (S3 delivery .log.gz with a header
    # line, CloudWatch Logs subscription records, Firehose objects of them), a file, folder or
    # s3:// prefix, listed once at start and read to the end (bounded: follow_seconds must be
    # 0). staged: job.replay's flow records (one a line, or several), a file or folder.
    flows_layout: str = setting("aws", choices=FLOWS_LAYOUTS)


@dataclass(frozen=True)
class ManagedProperties:
    config: Config
    io: IoSection
    path: str


def properties_path(local_path: str = None) -> str:
    """The service's file when it exists, else `local_path`; a clear error with neither."""
    if os.path.exists(SERVICE_PROPERTIES):
        return SERVICE_PROPERTIES
    if local_path:
        return local_path
    raise ConfigError(f"no runtime properties: {SERVICE_PROPERTIES} does not exist (not in the "
                      f"service) and no local file was given (--properties FILE)")


def load(path: str) -> ManagedProperties:
    groups = settings.read(path, "runtime properties", is_json=True)
    if not isinstance(groups, list):
        raise ConfigError(f"{path}: expected a list of property groups "
                          f"(PropertyGroupId, PropertyMap)")
    doc = config_mod.from_application_properties(groups)
    known = [f.name for f in fields(config_mod.Config)] + [IO_GROUP, RUN_OPTIONS_GROUP]
    unknown = set(doc) - set(known)
    if unknown:
        raise ConfigError(f"{path}: unknown property group(s) {sorted(unknown)}; known: "
                          f"{sorted(known)}")
    doc.pop(RUN_OPTIONS_GROUP, None)
    io_values = doc.pop(IO_GROUP, None)
    if io_values is None:
        raise ConfigError(f"{path}: property group {IO_GROUP!r} is missing "
                          f"(keys: {', '.join(f.name for f in fields(IoSection))})")
    config = config_mod.from_dict(doc)
    io = settings.section(IoSection, io_values, IO_GROUP)
    # The streaming job reads its flows (and metadata) from the kinesis group's streams.
    streaming = bool(config.kinesis.flow_streams)
    for key in ("output",) if streaming else ("flows", "metadata", "output"):
        if not getattr(io, key).strip():
            raise ConfigError(f"{IO_GROUP}.{key} is required"
                              + ("" if streaming else " (or kinesis.flow_streams)"))
    if not streaming and io.flows_layout == "aws" and io.follow_seconds:
        raise ConfigError(f"{IO_GROUP}.follow_seconds must be 0 with {IO_GROUP}.flows_layout aws "
                          f"(the flow files listed at start are read to the end; following "
                          f"new files is {IO_GROUP}.flows_layout staged)")
    return ManagedProperties(config, io, path)


def check_metadata(props: ManagedProperties) -> str:
    """ConfigError for an io.metadata the job's changelog reader (connectors/jvm ChangelogFiles,
    flows_layout aws) would fail on after its restarts, wait on for ever or leave out, checked
    as `scripts/cluster submit` checks its --metadata (job.replay.check_changelog). An s3://
    one is not read here: returns a note saying so ("" otherwise)."""
    from flowdredge.connectors import s3
    from flowdredge.job.replay import InputError, check_changelog
    io = props.io
    if props.config.kinesis.flow_streams or io.flows_layout != "aws":
        return ""   # not read, or followed (job.replay.check_followed_folder)
    try:
        check_changelog(io.metadata)
    except InputError as err:
        raise ConfigError(f"{IO_GROUP}.metadata: {err}") from None
    if s3.is_s3(io.metadata):
        return (f"{IO_GROUP}.metadata {io.metadata} is not checked at start: that would download "
                f"every changelog file before the job starts; a file its reader fails on (a .gz "
                f"cut short or not gzip, gzip under another name) fails the job after its "
                f"restarts")
    return ""
