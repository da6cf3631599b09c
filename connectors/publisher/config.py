"""Typed publisher configuration (YAML), validated at start. Example: flink-conf/publisher.example.yaml.

Credentials are never part of it: the publisher uses the default AWS credential chain, and
assumes each account's role through STS.
"""
import re
from dataclasses import dataclass, field, fields

import yaml

from connectors.publisher.model import Scope
from connectors.publisher.naming import RULES, NameRule


class ConfigError(ValueError):
    pass


_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


@dataclass(frozen=True)
class Account:
    id: str
    # None: the publisher's own credentials read this account.
    role_arn: str = None
    external_id: str = None
    # None: the top-level `regions`.
    regions: tuple = None


@dataclass(frozen=True)
class NamingSection:
    rule: str = "frigga"
    pattern: str = ""
    # Tag keys whose values win over the parsed name ("" for none).
    app_tag: str = "app"
    cluster_tag: str = ""


@dataclass(frozen=True)
class OutputSection:
    kind: str = "file"              # file | kinesis
    path: str = ""                  # file: JSON Lines, appended
    stream_name: str = ""           # kinesis: the metadata stream (name or ARN)
    stream_arn: str = ""
    region: str = ""                # kinesis: the stream's region
    # One key keeps the changelog in order on one shard (the job needs HEARTBEATs after the
    # changes they cover).
    partition_key: str = "ip-metadata"
    endpoint_url: str = ""          # kinesis: a local Kinesis API's URL (tests); empty for AWS
    max_attempts: int = 8           # per record, failed records of a PutRecords call included


@dataclass(frozen=True)
class EventsSection:
    path: str = ""                  # JSON Lines of EventBridge / CloudTrail events, read as it grows
    check_seconds: int = 5


@dataclass(frozen=True)
class SnapshotSection:
    to: str = ""                    # a file path or s3://bucket/key, written on SIGUSR1


@dataclass(frozen=True)
class AwsSection:
    # An AWS API emulator's URL for every service (tests); empty for AWS itself.
    endpoint_url: str = ""
    retry_mode: str = "adaptive"    # botocore: standard | adaptive
    max_attempts: int = 8           # botocore attempts per call
    # Our own bounded retry of a throttled call, after botocore's: attempts, exponential backoff.
    throttle_attempts: int = 6
    throttle_base_ms: int = 500
    throttle_max_ms: int = 20000
    connect_timeout_seconds: int = 10
    read_timeout_seconds: int = 60
    session_name: str = "flowdredge-publisher"


@dataclass(frozen=True)
class PublisherConfig:
    accounts: tuple = ()
    regions: tuple = ()
    poll_interval_seconds: int = 60
    public_ipv4: bool = True
    naming: NamingSection = field(default_factory=NamingSection)
    output: OutputSection = field(default_factory=OutputSection)
    events: EventsSection = field(default_factory=EventsSection)
    snapshot: SnapshotSection = field(default_factory=SnapshotSection)
    aws: AwsSection = field(default_factory=AwsSection)

    @property
    def scopes(self) -> list:
        return [Scope(a.id, r) for a in self.accounts for r in (a.regions or self.regions)]

    @property
    def name_rule(self) -> NameRule:
        return NameRule(self.naming.rule, self.naming.pattern or None)


_SECTIONS = {"naming": NamingSection, "output": OutputSection, "events": EventsSection,
             "snapshot": SnapshotSection, "aws": AwsSection}


def _value(where: str, kind, value):
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return str(value)


def _section(name: str, cls, doc) -> object:
    if doc is None:
        return cls()
    if not isinstance(doc, dict):
        raise ConfigError(f"{name}: expected a mapping, got {doc!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(doc) - set(known)
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in {name}; known: {sorted(known)}")
    return cls(**{k: _value(f"{name}.{k}", type(getattr(cls(), k)), v) for k, v in doc.items()})


def _regions(where: str, value) -> tuple:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise ConfigError(f"{where}: expected a list of region names, got {value!r}")
    for region in value:
        if not _REGION.match(region):
            raise ConfigError(f"{where}: {region!r} is not a region name like us-east-1")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: a region is listed twice")
    return tuple(value)


def _account(i: int, doc) -> Account:
    where = f"accounts[{i}]"
    if isinstance(doc, (str, int)) and not isinstance(doc, bool):
        doc = {"id": doc}
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected an account id or a mapping with id, role_arn, regions")
    unknown = set(doc) - {"id", "role_arn", "external_id", "regions"}
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in {where}; known: "
                          f"['external_id', 'id', 'regions', 'role_arn']")
    account_id = str(doc.get("id", "")).zfill(12) if isinstance(doc.get("id"), int) else doc.get("id")
    if not isinstance(account_id, str) or not _ACCOUNT_ID.match(account_id):
        raise ConfigError(f"{where}.id: expected a 12-digit account id (quoted in YAML), got "
                          f"{doc.get('id')!r}")
    role_arn = doc.get("role_arn")
    if role_arn is not None and (not isinstance(role_arn, str) or not _ROLE_ARN.match(role_arn)):
        raise ConfigError(f"{where}.role_arn: expected arn:aws:iam::<account>:role/<name>, got "
                          f"{role_arn!r}")
    external_id = doc.get("external_id")
    if external_id is not None and not isinstance(external_id, str):
        raise ConfigError(f"{where}.external_id: expected a string")
    regions = _regions(f"{where}.regions", doc["regions"]) if "regions" in doc else None
    return Account(account_id, role_arn, external_id, regions)


def from_dict(doc) -> PublisherConfig:
    if not isinstance(doc, dict):
        raise ConfigError("publisher config must be a mapping")
    known = {f.name for f in fields(PublisherConfig)}
    unknown = set(doc) - known
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    accounts = doc.get("accounts")
    if not isinstance(accounts, list) or not accounts:
        raise ConfigError("accounts: list at least one account (id, optional role_arn and regions)")
    config = PublisherConfig(
        accounts=tuple(_account(i, a) for i, a in enumerate(accounts)),
        regions=_regions("regions", doc["regions"]) if "regions" in doc else (),
        poll_interval_seconds=_value("poll_interval_seconds", int,
                                     doc.get("poll_interval_seconds", 60)),
        public_ipv4=_value("public_ipv4", bool, doc.get("public_ipv4", True)),
        **{name: _section(name, cls, doc.get(name)) for name, cls in _SECTIONS.items()})
    validate(config)
    return config


def validate(config: PublisherConfig) -> None:
    ids = [a.id for a in config.accounts]
    if len(set(ids)) != len(ids):
        raise ConfigError("accounts: an account is listed twice")
    for account in config.accounts:
        if not (account.regions or config.regions):
            raise ConfigError(f"account {account.id}: no regions (set regions, or the account's own)")
    for where, value in [("poll_interval_seconds", config.poll_interval_seconds),
                         ("events.check_seconds", config.events.check_seconds),
                         ("output.max_attempts", config.output.max_attempts),
                         ("aws.max_attempts", config.aws.max_attempts),
                         ("aws.throttle_attempts", config.aws.throttle_attempts),
                         ("aws.throttle_base_ms", config.aws.throttle_base_ms),
                         ("aws.throttle_max_ms", config.aws.throttle_max_ms),
                         ("aws.connect_timeout_seconds", config.aws.connect_timeout_seconds),
                         ("aws.read_timeout_seconds", config.aws.read_timeout_seconds)]:
        if value <= 0:
            raise ConfigError(f"{where} must be positive")
    if config.naming.rule not in RULES:
        raise ConfigError(f"naming.rule must be one of {list(RULES)}, got {config.naming.rule!r}")
    try:
        config.name_rule
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if config.aws.retry_mode not in ("standard", "adaptive"):
        raise ConfigError("aws.retry_mode must be standard or adaptive")
    out = config.output
    if out.kind == "file":
        if not out.path:
            raise ConfigError("output.path is required when output.kind is file")
    elif out.kind == "kinesis":
        if not (out.stream_name or out.stream_arn):
            raise ConfigError("output.stream_name or output.stream_arn is required when "
                              "output.kind is kinesis")
        if not out.region:
            raise ConfigError("output.region (the stream's region) is required when output.kind "
                              "is kinesis")
    else:
        raise ConfigError(f"output.kind must be file or kinesis, got {out.kind!r}")


def load(path: str) -> PublisherConfig:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return from_dict(doc or {})
