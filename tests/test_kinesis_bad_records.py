"""Bad records on the flow and metadata streams, end to end through the streaming job on the
local Kinesis (kinesis-local) at parallelism 2: one run, a small estate written in two halves
with every kind of bad record between them. The good records' aggregates must equal the
contract's (tests/reference.py; good lines inside mixed records and a good record at Kinesis's
1 MiB limit included), every bad item must be one dead letter with its reason, and the job
must not fail (a failure would fail wait_for)."""
import gzip
import json
import random
import zlib
from collections import Counter

import pytest

import reference
from flowdredge.connectors.kinesis import client as kinesis_client
from flowdredge.schemas.cloudwatch import record
from flowdredge.synthetic.producer import put_changelog_lines
from helpers import read_records, total_counts
from streaming import (ACCOUNT_A, ACCOUNT_B, Estate, Writer, closed_aggregates,
                       parsed_records, running_job, scenario, streaming_config, wait_for)

pytestmark = pytest.mark.kinesis

KINESIS_MAX = 1 << 20
YEAR_3000 = 32503680000


def _line(start, *, src="10.201.0.1", dst="10.201.0.2", sport="40000", dport="443",
          packets="3", nbytes="300", end=None):
    return (f"2 {ACCOUNT_A} eni-bad {src} {dst} {sport} {dport} 6 {packets} {nbytes} {start} "
            f"{start + 5 if end is None else end} ACCEPT OK")


def _cw(events, group="/bad"):
    """A record of (timestamp ms, message) events, each its own id (equal records would be a
    producer's repeat)."""
    return record([(f"{group}-{i}", ts, m) for i, (ts, m) in enumerate(events)],
                  compresslevel=6, owner=ACCOUNT_A, log_group=group, log_stream="eni-bad")


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _bomb(total: int) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (16 << 20)
    return b"".join(deflate.compress(block) for _ in range(total // len(block))) + \
        deflate.flush()


def _big_good_record(t0, t1, seed=7):
    """A DATA_MESSAGE of random flows as near Kinesis's 1 MiB limit as it gets: (bytes,
    lines)."""
    rng = random.Random(seed)
    lines = []
    while True:
        for _ in range(2000):
            start = rng.randrange(t0, t1)
            lines.append(_line(start, src=f"10.202.{rng.randrange(256)}.{rng.randrange(256)}",
                               dst=f"10.203.{rng.randrange(256)}.{rng.randrange(256)}",
                               sport=str(rng.randrange(1024, 65536)),
                               dport=str(rng.choice([22, 80, 443, 5432, 8080])),
                               packets=str(rng.randrange(1, 10**6)),
                               nbytes=str(rng.randrange(1, 10**9))))
        data = _cw([(t1 * 1000, m) for m in lines], group="/big-good")
        if len(data) > KINESIS_MAX - 4096:
            lines = lines[:-2000]
            return _cw([(t1 * 1000, m) for m in lines], group="/big-good"), lines


def _records(t0):
    """(name, bytes, the dead-letter reasons expected, good lines in it) per bad flow record."""
    good = _line(t0 + 30)
    return [
        ("not gzip, magic then junk", b"\x1f\x8bjunk that is no deflate", ["bad_gzip"], []),
        ("gzip cut short", _cw([(t0 * 1000, _line(t0))])[:-12], ["bad_gzip"], []),
        ("gzip bomb 1 MB -> 1 GiB", _bomb(1 << 30), ["too_large"], []),
        ("gzip of non-UTF-8 non-JSON", _gz(b"\xff\xfe\x00garbage"), ["not_json"], []),
        ("JSON array", _gz(b"[1, 2, 3]"), ["not_cloudwatch"], []),
        ("JSON string", _gz(b'"DATA_MESSAGE"'), ["not_cloudwatch"], []),
        ("JSON null", _gz(b"null"), ["not_cloudwatch"], []),
        ("messageType unknown", _gz(b'{"messageType":"FOO","logEvents":[]}'),
         ["not_cloudwatch"], []),
        ("logEvents an object", _gz(b'{"messageType":"DATA_MESSAGE","logEvents":{"a":1}}'),
         ["not_cloudwatch"], []),
        ("logEvents null", _gz(b'{"messageType":"DATA_MESSAGE","logEvents":null}'),
         ["not_cloudwatch"], []),
        ("CONTROL_MESSAGE with a flow in it",
         record([("c", t0 * 1000, _line(t0 + 1))], compresslevel=6, owner="CloudwatchLogs",
                log_group="", log_stream="", message_type="CONTROL_MESSAGE"), [], []),
        ("events: message a number, event a list",
         _gz(json.dumps({"messageType": "DATA_MESSAGE", "logGroup": "/g", "logStream": "s",
                         "logEvents": [{"id": "1", "timestamp": t0 * 1000, "message": 5}, [1],
                                       {"id": "2", "timestamp": t0 * 1000,
                                        "message": _line(t0 + 2)}]}).encode()),
         ["not_cloudwatch", "not_cloudwatch"], [_line(t0 + 2)]),
        ("integers past 2**63", _cw([
            (t0 * 1000, _line(t0 + 3, nbytes=str(2**63))),
            (t0 * 1000, _line(t0 + 3, packets=str(2**64 + 1))),
            (t0 * 1000, _line(t0 + 3, nbytes="9" * 5000)),
            (t0 * 1000, _line(t0 + 3, nbytes=str(2**63 - 1))),
            (t0 * 1000, _line(t0 + 3, packets="-1")),
            (t0 * 1000, _line(t0 + 4, nbytes=str(2**41))),
            (t0 * 1000, good)]),
         ["number_out_of_range"] * 5, [_line(t0 + 4, nbytes=str(2**41)), good]),
        ("ports past 65535", _cw([
            (t0 * 1000, _line(t0 + 5, dport="65536")),
            (t0 * 1000, _line(t0 + 5, sport="99999999999")),
            (t0 * 1000, _line(t0 + 5, dport="-1")),
            (t0 * 1000, _line(t0 + 6, dport="65535"))], group="/ports"),
         ["port_out_of_range"] * 3, [_line(t0 + 6, dport="65535")]),
        ("start/end far future and far past", _cw([
            (t0 * 1000, _line(YEAR_3000)),
            (t0 * 1000, _line(t0 + 7, end=YEAR_3000)),
            (t0 * 1000, _line(t0 + 7, end=2**63 - 1)),
            (t0 * 1000, _line(1000)),
            (t0 * 1000, _line(0, end=0)),
            (t0 * 1000, _line(t0 - 3 * 86400)),
            (t0 * 1000, _line(t0 + 8, end=1000)),
            (t0 * 1000, _line(2**63 - 1, end=2**63 - 1)),
            (t0 * 1000, _line(t0 + 7, end=t0 + 7 + 3600))], group="/times"),
         ["timestamp_out_of_range"] * 7 + ["end_before_start"],
         # an end more than an hour after a plausible start is refused as a far start is
         [_line(t0 + 7, end=t0 + 7 + 3600)]),
        ("event timestamps far future / past / huge", _cw([
            (YEAR_3000 * 1000, _line(t0 + 9)),
            (-5, _line(t0 + 10)),
            (2**70, _line(t0 + 11))], group="/event-ts"),
         [], [_line(t0 + 9), _line(t0 + 10), _line(t0 + 11)]),
        ("one event of 1 MB", _cw([(t0 * 1000, "9" * 1_000_000)], group="/long"),
         ["line_too_long"], []),
        # Python's json refused the record whole ('Exceeds the limit (4300 digits)').
        ("an event timestamp of 5,000 digits", _gz(json.dumps(
            {"messageType": "DATA_MESSAGE", "logGroup": "/digits", "logStream": "s",
             "logEvents": [{"id": "1", "timestamp": "TS", "message": _line(t0 + 12)},
                           {"id": "2", "timestamp": t0 * 1000, "message": "MESSAGE"}]})
            .replace('"TS"', "9" * 5000).replace('"MESSAGE"', "9" * 5000).encode()),
         ["not_cloudwatch"], [_line(t0 + 12)]),
    ]


METADATA_BAD = [
    ('{"type":"HEARTBEAT","ts":%d}' % 2**64, "ts_out_of_range"),
    ('{"type":"HEARTBEAT","ts":%d}' % (YEAR_3000 * 1000), "ts_out_of_range"),
    ('{"type":"ASSIGN","ts":%d,"ip":"10.250.0.1","app":"x"}' % (YEAR_3000 * 1000),
     "ts_out_of_range"),
    ('{"type":"ASSIGN","ts":1000,"ip":"10.250.0.1","app":"x"}', "ts_out_of_range"),
    ('{"type":"UNASSIGN","ts":-5,"ip":"10.250.0.1"}', "ts_out_of_range"),
    ('{"type":"ASSIGN","ts":1e400,"ip":"10.250.0.1","app":"x"}', None),
    ('{"type":"MOVE","ts":1,"ip":"10.250.0.1"}', "unknown_type"),
    ('[1,2,3]', None),
    ('"ASSIGN"', None),
    ('{"type":"ASSIGN","ts":1,"ip":"10.250.0.300","app":"x"}', None),
    ('{"type":"ASSIGN","ts":%s,"ip":"10.250.0.1","app":"x"}' % ("9" * 5000), "ts_out_of_range"),
]


@pytest.fixture(scope="module")
def run(kinesis_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-records")
    estate = Estate(str(tmp / "estate"), scenario(minutes=4, flows_per_minute=200, seed=5))
    sc = estate.scenario
    t0 = sc.start + 20
    kinesis = kinesis_client.client(streaming_config(kinesis_local.endpoint, 1).kinesis)
    for name, n in (("flows", 2), ("meta", 1)):
        kinesis_client.create_stream(kinesis, f"bad-{name}", n)
    config = streaming_config(kinesis_local.endpoint, 2, kinesis={
        "flow_streams": "bad-flows", "metadata_stream": "bad-meta",
        "metadata_snapshot": estate.snapshot})
    writer = Writer(kinesis, estate, {ACCOUNT_A: "bad-flows", ACCOUNT_B: "bad-flows"},
                    "bad-meta")
    records = _records(t0)
    big, _ = _big_good_record(sc.start, sc.start + sc.minutes * 60 - 1)
    assert KINESIS_MAX - 8192 < len(big) <= KINESIS_MAX - 4096
    extra = tmp / "extra"
    extra.mkdir()
    (extra / "big.json.gz").write_bytes(big)
    good = [m for *_, lines in records for m in lines]
    (extra / "good-in-bad.json.gz").write_bytes(_cw([(t0 * 1000, m) for m in good], "/x"))
    output = str(tmp / "out")
    half = len(estate.deliveries) // 2
    with running_job(config, output) as job:
        writer.deliver(estate.deliveries[:half])
        for i, (_name, data, _reasons, _good) in enumerate(records):
            writer.put_raw("bad-flows", data, f"bad-{i}")
        writer.put_raw("bad-flows", big, "big")
        # The metadata's bad lines: as the publisher groups them, and all in one record.
        put_changelog_lines(writer.metadata, [text for text, _ in METADATA_BAD])
        writer.metadata.put([{"Data": "\n".join(t for t, _ in METADATA_BAD).encode(),
                              "PartitionKey": "m"}])
        writer.metadata.put([{"Data": b"\xff\xfe\x00 not utf-8 \x1f\x8b", "PartitionKey": "m"}])
        writer.deliver(estate.deliveries[half:])
        wait_for("every record parsed", lambda: parsed_records(output) == writer.records_written,
                 job)
        first_open = writer.finish("bad-flows")
        expected = reference.aggregates([estate.flow_dir, str(extra)],
                                        [estate.generated.metadata_file])
        wait_for("the estate's windows", lambda: closed_aggregates(output, first_open)
                 == expected, job, keep_alive=writer.flush)
        counts = wait_for("every flow attributed", lambda: (
            lambda c: c["flows_aggregated"] == c["flows_parsed"] and c)(total_counts(output)),
            job)
        status = job.get_job_status().result().name
    return {"records": records, "counts": counts, "status": status,
            "dead": list(read_records(output, "dead_letter"))}


def test_the_job_ran_on_and_every_good_flow_was_counted(run):
    counts = run["counts"]
    assert run["status"] == "RUNNING"
    assert counts["flows_late"] == 0
    assert counts["records_skipped"] == 1 and counts["records_repeated"] == 0


def test_every_bad_flow_item_is_one_dead_letter_with_its_reason(run):
    dead = [d for d in run["dead"] if d["stage"] == "flows"]
    expected = Counter(r for _, _, reasons, _ in run["records"] for r in reasons)
    assert Counter(d["reason"] for d in dead) == expected
    assert run["counts"]["dead_letter"] == sum(expected.values())


def test_every_bad_changelog_line_is_a_dead_letter(run):
    dead = [d for d in run["dead"] if d["stage"] == "metadata"]
    for d in dead:
        print(d["reason"], d["detail"][:80], "|", d["excerpt"][:50])
    # as the publisher groups them, then all in one record, then the record not UTF-8
    assert len(dead) == 2 * len(METADATA_BAD) + 1
    by_reason = Counter(d["reason"] for d in dead)
    for reason, n in Counter(r for _, r in METADATA_BAD if r).items():
        assert by_reason[reason] == 2 * n
    assert [d["reason"] for d in dead if "not utf-8" in d["excerpt"]] == ["not_text"]
    assert all(len(d["excerpt"]) <= 256 and d["excerpt"].isprintable() for d in run["dead"])


# Flink SQL's SUM over BIGINT wrapped: a window whose bytes passed 2**63 - 1 had negative bytes
# in the aggregates (a review). config.validate bounds one record's sums only: with the default
# config 13 records of under 1 MiB (340,000 flows of 2**41 bytes each) do it; here
# flows.max_flow_bytes 2**47 with records of at most 1 MiB decompressed (a config validate
# accepts) makes it 13 of 5,500. The dependencies, summed in Python, were written whole, past
# what a reader of a 64-bit integer takes.
def test_a_window_summing_past_a_long_is_written_as_the_largest_long(kinesis_local, tmp_path):
    estate = Estate(str(tmp_path / "estate"), scenario(minutes=2, flows_per_minute=100, seed=9))
    sc = estate.scenario
    kinesis = kinesis_client.client(streaming_config(kinesis_local.endpoint, 1).kinesis)
    for name, n in (("flows", 1), ("meta", 1)):
        kinesis_client.create_stream(kinesis, f"sum-{name}", n)
    config = streaming_config(
        kinesis_local.endpoint, 1,
        kinesis={"flow_streams": "sum-flows", "metadata_stream": "sum-meta",
                 "metadata_snapshot": estate.snapshot},
        flows={"max_decompressed_bytes": 1 << 20, "max_flow_bytes": 2**47},
        outputs={"security": True}, security={"warmup_seconds": 0})
    writer = Writer(kinesis, estate, {ACCOUNT_A: "sum-flows", ACCOUNT_B: "sum-flows"},
                    "sum-meta")
    # Between two owned addresses of two apps: a dependency edge too.
    apps = {}
    with open(estate.snapshot) as fh:
        for event in map(json.loads, fh):
            apps.setdefault(event["app"], event["ip"])
    src, dst = list(apps.values())[:2]
    start = sc.start + 30
    line = _line(start, src=src, dst=dst, nbytes=str(2**47))
    extra = tmp_path / "extra"
    extra.mkdir()
    records = [record([(f"{i}-{j}", start * 1000, line) for j in range(5500)],
                      compresslevel=9, owner=ACCOUNT_A, log_group=f"/sum{i}", log_stream="e")
               for i in range(13)]
    for i, data in enumerate(records):
        (extra / f"{i}.json.gz").write_bytes(data)
    output = str(tmp_path / "out")
    with running_job(config, output) as job:
        writer.deliver(estate.deliveries)
        for i, data in enumerate(records):
            writer.put_raw("sum-flows", data, f"sum-{i}")
        wait_for("every record parsed", lambda: parsed_records(output) == writer.records_written,
                 job)
        first_open = writer.finish("sum-flows")
        expected = reference.aggregates([estate.flow_dir, str(extra)],
                                        [estate.generated.metadata_file])
        key = next(k for k, v in expected.items() if v[2] > 2**63)
        got = wait_for("the window", lambda: closed_aggregates(output, first_open).get(key), job,
                       keep_alive=writer.flush)
        edge = wait_for("the dependency", lambda: [
            r["bytes"] for r in read_records(output, "dependencies")
            if r["window_start"] == key[0] and r["bytes"] > 2**62], job, keep_alive=writer.flush)
    flows, packets, nbytes = expected[key]
    assert got == (flows, packets, 2**63 - 1) and nbytes > 2**63
    assert edge == [2**63 - 1]
