"""Kinesis through boto3 (no pyflink): stream ARNs, the connector's client properties, streams
for the demo and tests."""
import ipaddress
import os
import time
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import InsecureRequestWarning

from flowdredge.connectors.kinesis.settings import KinesisSection
from flowdredge.schemas.settings import ConfigError

# Keys of a local server that checks none (kinesis-local).
DUMMY_KEY = "dummy"


def _credentials(kin: KinesisSection) -> dict:
    """With a local endpoint: the AWS_* variables or dummy keys; else boto3's usual chain."""
    if not kin.endpoint:
        return {}
    return {"aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", DUMMY_KEY),
            "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", DUMMY_KEY)}


def on_loopback(endpoint: str) -> bool:
    """Whether the endpoint URL names this machine: a local server with a certificate of its
    own (kinesis-local's TLS port), trusted as it is; any other endpoint's is checked."""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client(kin: KinesisSection):
    trusted = bool(kin.endpoint) and on_loopback(kin.endpoint)
    if trusted:
        # Chosen, not a risk to repeat at every call.
        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    return boto3.client("kinesis", region_name=kin.region, endpoint_url=kin.endpoint or None,
                        verify=not trusted, **_credentials(kin))


def client_properties(kin: KinesisSection) -> dict:
    """The Flink connector's AWS settings (AWSConfigConstants) for these streams."""
    props = {"aws.region": kin.region}
    if kin.endpoint:
        keys = _credentials(kin)
        props.update({"aws.endpoint": kin.endpoint,
                      "aws.credentials.provider": "BASIC",
                      "aws.credentials.provider.basic.accesskeyid": keys["aws_access_key_id"],
                      "aws.credentials.provider.basic.secretkey": keys["aws_secret_access_key"],
                      # A local server speaks HTTP/1.1.
                      "aws.http.protocol.version": "HTTP1_1"})
        if on_loopback(kin.endpoint):
            props["aws.trust.all.certificates"] = "true"
    else:
        props["aws.credentials.provider"] = "AUTO"
    return props


@dataclass(frozen=True)
class Streams:
    """The configured streams as ARNs ("" where not configured)."""
    flows: tuple
    metadata: str
    aggregates: str = ""
    security_events: str = ""


def stream_arn(kinesis, name_or_arn: str, region: str) -> str:
    """The stream's ARN, once the service has described it: an unknown stream, or one this
    job's credentials cannot read, is a ConfigError before Flink starts, an ARN as a name. The
    job reads `region`'s streams (the connector takes each ARN's region, this process the
    section's): an ARN of another region is refused."""
    if name_or_arn.startswith("arn:"):
        arn_region = name_or_arn.split(":")[3]
        if arn_region != region:
            raise ConfigError(f"kinesis: stream {name_or_arn!r} is in {arn_region}, not in "
                              f"kinesis.region ({region}): the job reads one region's streams")
        request = {"StreamARN": name_or_arn}
    else:
        request = {"StreamName": name_or_arn}
    return _asked(name_or_arn, lambda: kinesis.describe_stream_summary(**request)[
        "StreamDescriptionSummary"]["StreamARN"])


def _asked(stream: str, call):
    """call(), its AWS error a ConfigError naming `stream`."""
    try:
        return call()
    except ClientError as err:
        error = err.response.get("Error", {})
        raise ConfigError(f"kinesis: stream {stream!r}: {error.get('Code')}: "
                          f"{_one_line(error.get('Message', ''))}") from None
    except BotoCoreError as err:
        raise ConfigError(f"kinesis: stream {stream!r}: {_one_line(str(err))}") from None


def _one_line(text: str, most: int = 200) -> str:
    """An error's text as one line of at most `most` characters: a server that is no Kinesis
    API (kinesis.endpoint naming a web server) answers with a whole HTML page."""
    if text.lstrip().startswith("<"):
        return "an HTML page, not a Kinesis API's answer (is kinesis.endpoint right?)"
    if not text.strip():   # an HTTP status alone: a server that is no Kinesis API
        return "an answer without a Kinesis error (is kinesis.endpoint right?)"
    text = " ".join(text.split())
    return text if len(text) <= most else text[:most - 3] + "..."


def resolve(kin: KinesisSection, kinesis=None) -> Streams:
    """Every configured stream as an ARN (names are looked up: the connector reads ARNs).
    Raises ConfigError when the flow or metadata streams are missing or unknown, or a flow
    stream is named twice (as a name and as its ARN too)."""
    flows = list(kin.flow_streams)
    if not flows:
        raise ConfigError("kinesis.flow_streams: at least one flow-log stream is needed")
    if not kin.metadata_stream.strip():
        raise ConfigError("kinesis.metadata_stream: the IP-metadata changelog stream is needed")
    kinesis = kinesis or client(kin)

    def arn(name):
        return stream_arn(kinesis, name.strip(), kin.region) if name.strip() else ""
    flow_arns = tuple(arn(s) for s in flows)
    if len(set(flow_arns)) != len(flow_arns):
        raise ConfigError(f"kinesis.flow_streams names a stream twice: {kin.flow_streams!r}")
    streams = Streams(flow_arns, arn(kin.metadata_stream), arn(kin.aggregates_stream),
                      arn(kin.security_events_stream))
    # One stream in two roles: flow records read as changelog lines (every one a dead letter,
    # every flow waiting for owners that never come), or an output written into an input.
    roles = [("kinesis.flow_streams", a) for a in flow_arns] + [
        (f"kinesis.{key}", a) for key, a in (
            ("metadata_stream", streams.metadata), ("aggregates_stream", streams.aggregates),
            ("security_events_stream", streams.security_events)) if a]
    for i, (key, a) in enumerate(roles):
        for other, b in roles[i + 1:]:
            if a == b:
                raise ConfigError(f"{other} is the stream {key} names ({b}): each role needs "
                                  f"a stream of its own")
    return streams


def stream_births(kin: KinesisSection, kinesis=None) -> dict:
    """When each input stream was created, epoch ms by ARN: the flow streams in their order,
    then the changelog's (cli reads the flow streams' labels from the order). A stream
    deleted and created again under its name is another stream: a checkpoint's positions are
    the old one's (a job resumed from them read nothing of a new changelog stream, without a
    word)."""
    kinesis = kinesis or client(kin)
    streams = resolve(kin, kinesis)

    def born(arn):
        summary = _asked(arn, lambda: kinesis.describe_stream_summary(StreamARN=arn))
        return int(summary["StreamDescriptionSummary"]["StreamCreationTimestamp"].timestamp()
                   * 1000)
    return {arn: born(arn) for arn in (*streams.flows, streams.metadata)}


def changelog_order_warning(kinesis, arn: str):
    """A warning when the metadata stream has more than one open shard, else None: Kinesis
    keeps order within a shard only, and a changelog written with several partition keys
    loses it (docs/metadata.md); one key on several shards is in order, so not refused."""
    summary = _asked(arn, lambda: kinesis.describe_stream_summary(StreamARN=arn))
    count = summary["StreamDescriptionSummary"].get("OpenShardCount", 1)
    if count <= 1:
        return None
    return (f"kinesis.metadata_stream has {count} open shards: the changelog's order holds "
            f"within a shard only; write it with one partition key (flowdredge-publisher "
            f"does) or give the stream one shard (docs/metadata.md)")


def shards(kinesis, arns) -> list:
    """(stream ARN, shard id) of every shard the streams list now, closed ones included (with
    TRIM_HORIZON their records are read first)."""
    found = []
    for arn in arns:
        pages = _asked(arn, lambda: list(kinesis.get_paginator("list_shards").paginate(
            StreamARN=arn)))
        found += [(arn, shard["ShardId"]) for page in pages for shard in page["Shards"]]
    return found


def register_consumers(kinesis, arns, name: str, timeout_s: float = 120) -> None:
    """Registers the enhanced fan-out consumer `name` on each stream where it is not yet, and
    waits until each is ACTIVE (one left DELETING is waited out and registered again). The
    job's sources take them as they are (source.efo.lifecycle SELF_MANAGED) and leave them:
    with the connector's own lifecycle, a failover's closing enumerator deregistered the
    consumer the new one had just taken, and the flow stream was never read again."""
    for arn in arns:
        deadline = time.monotonic() + timeout_s
        while True:
            status = _asked(arn, lambda: _consumer_status(kinesis, arn, name))
            if status == "ACTIVE":
                break
            if status is None:
                _asked(arn, lambda: _register(kinesis, arn, name))
            elif time.monotonic() > deadline:
                raise ConfigError(f"kinesis: consumer {name!r} of {arn!r} not ACTIVE after "
                                  f"{timeout_s:.0f} s ({status})")
            else:
                time.sleep(0.5)


def _consumer_status(kinesis, arn: str, name: str):
    try:
        return kinesis.describe_stream_consumer(StreamARN=arn, ConsumerName=name)[
            "ConsumerDescription"]["ConsumerStatus"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise


def _register(kinesis, arn: str, name: str) -> None:
    try:
        kinesis.register_stream_consumer(StreamARN=arn, ConsumerName=name)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise


def create_stream(kinesis, name: str, shards: int, timeout_s: float = 60) -> str:
    """Creates the stream (if new) and waits until it is ACTIVE; returns its ARN."""
    try:
        kinesis.create_stream(StreamName=name, ShardCount=shards)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    return wait_active(kinesis, name, timeout_s)


def wait_active(kinesis, name: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return summary["StreamARN"]
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream {name} not ACTIVE after {timeout_s} s "
                               f"({summary['StreamStatus']})")
        time.sleep(0.2)


def read_all(kinesis, stream: str):
    """(shard id, record) of every record of every shard (closed ones too) from the start, up
    to the newest: for checking what a stream holds (tests, benchmarks), not for the job."""
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            for record in answer["Records"]:
                yield shard["ShardId"], record
            if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                break
            iterator = answer.get("NextShardIterator")
