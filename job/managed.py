"""Runtime properties of the job on Amazon Managed Service for Apache Flink (pure Python).

The service writes the application's property groups to /etc/flink/application_properties.json;
elsewhere (a laptop, a test) the same file shape is read from a path given. Groups:

- the config sections of job.config (`job`, `flows`, `metadata`, `outputs`, `security`);
- `io`: where the job reads and writes (IoSection below);
- `kinesis.analytics.flink.run.options`: the service's own (where main.py and the jar are in
  the zip); read by the service, ignored here.

See docs/managed-flink.md.
"""
import json
import os
from dataclasses import dataclass, fields

from job import config as config_mod
from job.config import Config, ConfigError

SERVICE_PROPERTIES = "/etc/flink/application_properties.json"
RUN_OPTIONS_GROUP = "kinesis.analytics.flink.run.options"
IO_GROUP = "io"


@dataclass(frozen=True)
class IoSection:
    # Staged flow records (job.replay's layout: one record per line), a file or folder; not
    # used when kinesis.flow_streams names the flow streams (the streaming job).
    flows: str = ""
    # Changelog events (JSON Lines, in order), a file or folder.
    metadata: str = ""
    # Output folder: aggregates/, enriched/, ... as in docs/outputs.md.
    output: str = ""
    # 0: read the inputs once and finish (bounded). N > 0: keep looking for new files every N
    # seconds and never finish (unbounded, the service's normal mode).
    follow_seconds: int = 0


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
    try:
        with open(path, encoding="utf-8") as fh:
            groups = json.load(fh)
    except OSError as err:
        raise ConfigError(f"cannot read runtime properties {path}: {err.strerror}") from None
    except ValueError as err:
        raise ConfigError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(groups, list):
        raise ConfigError(f"{path}: expected a list of property groups "
                          f"(PropertyGroupId, PropertyMap)")
    doc = config_mod.from_application_properties(groups)
    doc.pop(RUN_OPTIONS_GROUP, None)
    streaming = bool(str((doc.get("kinesis") or {}).get("flow_streams", "")).strip())
    io = _io_section(doc.pop(IO_GROUP, None), path, streaming)
    return ManagedProperties(config_mod.from_dict(doc), io, path)


def _io_section(values, path: str, streaming: bool) -> IoSection:
    """`streaming`: the flows come from the kinesis group's streams; only io.output is needed."""
    if values is None:
        raise ConfigError(f"{path}: property group {IO_GROUP!r} is missing "
                          f"(keys: {', '.join(f.name for f in fields(IoSection))})")
    known = {f.name for f in fields(IoSection)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in {IO_GROUP}; known: {sorted(known)}")
    for key in ("output",) if streaming else ("flows", "metadata", "output"):
        if not str(values.get(key, "")).strip():
            raise ConfigError(f"{IO_GROUP}.{key} is required"
                              + ("" if streaming else " (or kinesis.flow_streams)"))
    try:
        follow = int(values.get("follow_seconds", 0))
    except (TypeError, ValueError):
        raise ConfigError(f"{IO_GROUP}.follow_seconds: expected an integer, got "
                          f"{values['follow_seconds']!r}") from None
    if follow < 0:
        raise ConfigError(f"{IO_GROUP}.follow_seconds must not be negative")
    return IoSection(flows=values.get("flows", ""), metadata=values.get("metadata", ""),
                     output=values["output"], follow_seconds=follow)
