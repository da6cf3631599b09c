"""Typed publisher configuration (YAML), validated at start. Example: flink-conf/publisher.example.yaml.

Credentials are never part of it: the publisher uses the default AWS credential chain, and
assumes each account's role through STS.
"""
import logging
from dataclasses import dataclass, field

from flowdredge.connectors.kinesis.settings import stream
from flowdredge.connectors.publisher.model import Scope
from flowdredge.connectors.publisher.naming import RULES, NameRule
from flowdredge.schemas import settings
from flowdredge.schemas.settings import STRINGS, ConfigError, quoted, setting

log = logging.getLogger(__name__)

REGION = r"[a-z]{2}(-[a-z]+)+-[0-9]+"
REGION_NAME = "a region name like us-east-1"


def regions():
    return setting((), pattern=REGION, expected=REGION_NAME)


@dataclass(frozen=True)
class Account:
    # An unquoted id is a number in YAML; settings' YAML reader keeps one with a leading zero
    # as its text, so a number is taken as written, never padded: 12345 is a typo, not an id.
    id: str = setting("", pattern=r"[0-9]{12}", expected="a 12-digit account id (quoted in YAML)")
    # Empty: the publisher's own credentials read this account.
    role_arn: str = setting("", pattern=r"arn:aws[a-z-]*:iam::[0-9]{12}:role/.+",
                            expected="arn:aws:iam::<account>:role/<name>")
    external_id: str = ""
    # Empty: the top-level `regions`.
    regions: STRINGS = regions()


@dataclass(frozen=True)
class NamingSection:
    rule: str = setting("frigga", choices=RULES)
    pattern: str = ""
    # Tag keys whose values win over the parsed name ("" for none).
    app_tag: str = "app"
    cluster_tag: str = ""


@dataclass(frozen=True)
class OutputSection:
    kind: str = setting("file", choices=("file", "kinesis"))
    path: str = ""                  # file: JSON Lines, appended
    # kinesis: the metadata stream (name or ARN)
    stream_name: str = stream()
    stream_arn: str = stream()
    region: str = setting("", pattern=REGION, expected=REGION_NAME)   # kinesis: the stream's
    # One key keeps the changelog in order on one shard (the job needs HEARTBEATs after the
    # changes they cover).
    partition_key: str = "ip-metadata"
    endpoint_url: str = ""          # kinesis: a local Kinesis API's URL (tests); empty for AWS
    # Per record, failed records of a PutRecords call included.
    max_attempts: int = setting(8, minimum=1)


@dataclass(frozen=True)
class EventsSection:
    path: str = ""                  # JSON Lines of EventBridge / CloudTrail events, read as it grows
    check_seconds: int = setting(5, minimum=1)
    # A longer line is said, counted as unreadable and passed over, never held whole (a writer
    # that died mid-line, a file without line feeds). An EventBridge event is at most 256 KB;
    # a CloudTrail log file object is one line.
    max_line_bytes: int = setting(64 << 20, minimum=1)


@dataclass(frozen=True)
class SnapshotSection:
    to: str = ""                    # a file path or s3://bucket/key, written on SIGUSR1


@dataclass(frozen=True)
class AwsSection:
    # An AWS API emulator's URL for every service (tests); empty for AWS itself.
    endpoint_url: str = ""
    # botocore's retries of a throttled or failed call: attempts per call, the first included.
    retry_mode: str = setting("adaptive", choices=("standard", "adaptive"))
    max_attempts: int = setting(8, minimum=1)
    connect_timeout_seconds: int = setting(10, minimum=1)
    read_timeout_seconds: int = setting(60, minimum=1)
    session_name: str = "flowdredge-publisher"
    # Accounts and regions read at once: a scope's read is mostly waiting on its API calls, a
    # dozen or more, and hundreds of scopes read one after another made a poll last minutes.
    parallel_reads: int = setting(8, minimum=1)


# A second backoff over botocore's retries multiplied the attempts (8 x 6 per page).
REMOVED_AWS = frozenset({"throttle_attempts", "throttle_base_ms", "throttle_max_ms"})


def _account(where: str, doc) -> Account:
    """An account id alone, or a mapping of Account's fields."""
    if isinstance(doc, (str, int)) and not isinstance(doc, bool):
        doc = {"id": doc}
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected an account id or a mapping with id, role_arn, "
                          f"regions, got {quoted(doc)}")
    if isinstance(doc.get("id"), int) and not isinstance(doc["id"], bool):
        doc = {**doc, "id": str(doc["id"])}
    account = settings.section(Account, doc, where)
    if not account.id:
        raise ConfigError(f"{where}.id: an account needs its 12-digit id")
    return account


def _accounts(value) -> tuple:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of accounts, got {quoted(value)}")
    return tuple(_account(f"accounts[{i}]", doc) for i, doc in enumerate(value))


@dataclass(frozen=True)
class PublisherConfig:
    accounts: tuple = setting((), parse=_accounts)
    # Regions of the accounts that do not list their own.
    regions: STRINGS = regions()
    poll_interval_seconds: int = setting(60, minimum=1)
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


def _without_removed(doc: dict) -> dict:
    """The document without the settings this release dropped, named in a warning: a config
    that ran keeps running."""
    aws = doc.get("aws")
    removed = sorted(set(aws) & REMOVED_AWS) if isinstance(aws, dict) else []
    if not removed:
        return doc
    log.warning("ignored, no longer used: %s (botocore's retries, aws.retry_mode and "
                "aws.max_attempts, handle throttling; remove them)",
                ", ".join(f"aws.{key}" for key in removed))
    return {**doc, "aws": {k: v for k, v in aws.items() if k not in REMOVED_AWS}}


def from_dict(doc) -> PublisherConfig:
    if not isinstance(doc, dict):
        raise ConfigError("publisher config must be a mapping")
    config = settings.section(PublisherConfig, _without_removed(doc), "")
    validate(config)
    return config


def validate(config: PublisherConfig) -> None:
    """Rules across fields (each field's own type and range were checked as it was read)."""
    if not config.accounts:
        raise ConfigError("accounts: list at least one account (id, optional role_arn and regions)")
    ids = [a.id for a in config.accounts]
    if len(set(ids)) != len(ids):
        raise ConfigError("accounts: an account is listed twice")
    for account in config.accounts:
        if not (account.regions or config.regions):
            raise ConfigError(f"account {account.id}: no regions (set regions, or the account's own)")
        # A role reads its own account: another's id would label that account's owners with it.
        role_account = account.role_arn.split(":")[4] if account.role_arn else account.id
        if role_account != account.id:
            raise ConfigError(f"account {account.id}: role_arn {account.role_arn} is a role of "
                              f"account {role_account}, which is what it would read")
        if account.external_id and not account.role_arn:
            raise ConfigError(f"account {account.id}: external_id is for assuming role_arn, "
                              f"and there is none")
    try:
        config.name_rule
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if config.naming.pattern and config.naming.rule != "pattern":
        raise ConfigError(f"naming.pattern is read with naming.rule: pattern, and the rule is "
                          f"{config.naming.rule}")
    out = config.output
    if out.kind == "file" and not out.path:
        raise ConfigError("output.path is required when output.kind is file")
    if out.kind == "file" and (out.stream_name or out.stream_arn or out.region):
        raise ConfigError("output.stream_name, stream_arn and region are for output.kind "
                          "kinesis: output.kind is file")
    # A snapshot written over the changelog replaced it; the changelog read as events was
    # read back as unreadable lines (an operator's review).
    files = {"output.path": out.path if out.kind == "file" else "",
             "snapshot.to": config.snapshot.to, "events.path": config.events.path}
    named = [(key, path) for key, path in files.items() if path]
    for i, (key, path) in enumerate(named):
        for other, other_path in named[i + 1:]:
            if path == other_path:
                raise ConfigError(f"{key} and {other} are the same file, {path}")
    if out.kind == "kinesis":
        if not (out.stream_name or out.stream_arn):
            raise ConfigError("output.stream_name or output.stream_arn is required when "
                              "output.kind is kinesis")
        if not out.region:
            raise ConfigError("output.region (the stream's region) is required when output.kind "
                              "is kinesis")


def load(path: str) -> PublisherConfig:
    return from_dict(settings.read(path, is_json=False) or {})
