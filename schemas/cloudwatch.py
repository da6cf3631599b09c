"""CloudWatch Logs subscription records: how CloudWatch Logs delivers a log group's events (here
VPC flow-log lines) to a subscription's destination (a Kinesis stream, Firehose). One record is
one gzip JSON envelope: a DATA_MESSAGE with events of one log stream, or the CONTROL_MESSAGE
CloudWatch Logs sends to check that the destination is reachable. job.parse reads them; the
synthetic estate, the Kinesis producer, the tests and the benchmarks write them here.
"""
import gzip
from json.encoder import encode_basestring_ascii as _quote

DATA_MESSAGE = "DATA_MESSAGE"
CONTROL_MESSAGE = "CONTROL_MESSAGE"
SUBSCRIPTION_FILTER = "flowdredge"
CONTROL_TEXT = "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."


def envelope(events, *, owner: str, log_group: str, log_stream: str, compact: bool = True,
             plain: bool = False, message_type: str = DATA_MESSAGE,
             subscription_filters=(SUBSCRIPTION_FILTER,)) -> str:
    """The JSON of one envelope of `events` ((id str, timestamp ms int, message) each), exactly as
    json.dumps writes it (`compact`: without spaces). `plain`: the caller vouches that ids and
    messages need no JSON escaping (ASCII without quotes, backslashes or control characters, as
    synthetic flow-log lines are); they go in as they are, which is what keeps the streaming
    benchmark's producer as fast as its own template was (escaping 1000 messages costs about
    as much as writing the envelope)."""
    item, key = (",", ":") if compact else (", ", ": ")
    if plain:
        event = f'{{"id"{key}"%s"{item}"timestamp"{key}%d{item}"message"{key}"%s"}}'
        body = item.join([event % e for e in events])
    else:
        event = f'{{"id"{key}%s{item}"timestamp"{key}%d{item}"message"{key}%s}}'
        body = item.join([event % (_quote(i), ts, _quote(m)) for i, ts, m in events])
    filters = item.join(_quote(f) for f in subscription_filters)
    return (f'{{"messageType"{key}{_quote(message_type)}{item}"owner"{key}{_quote(owner)}{item}'
            f'"logGroup"{key}{_quote(log_group)}{item}"logStream"{key}{_quote(log_stream)}{item}'
            f'"subscriptionFilters"{key}[{filters}]{item}"logEvents"{key}[{body}]}}')


def record(events, *, compresslevel: int, **envelope_args) -> bytes:
    """One subscription record: the envelope (envelope()'s arguments), gzip. The gzip header
    carries no time, so the same events give the same bytes."""
    return gzip.compress(envelope(events, **envelope_args).encode("ascii"),
                         compresslevel=compresslevel, mtime=0)


def control_record(owner: str = "CloudwatchLogs") -> bytes:
    """The CONTROL_MESSAGE record CloudWatch Logs sends to check that a destination is
    reachable."""
    return record([("", 0, CONTROL_TEXT)], compresslevel=9, owner=owner, log_group="",
                  log_stream="", compact=False, message_type=CONTROL_MESSAGE,
                  subscription_filters=())
