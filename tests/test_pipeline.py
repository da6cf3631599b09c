"""The job on a Flink mini-cluster against the independent computation of the contract."""
import functools
import gzip
import json
import os
from collections import Counter

import pytest

from helpers import job_aggregates, read_records, run_replay, total_counts
from flowdredge.job.config import Config
from flowdredge.synthetic.estate import Scenario, generate
import reference
from flowdredge.job.ownership import OwnershipIndex, parse_event
from flowdredge.schemas.metadata import HEARTBEAT

pytestmark = pytest.mark.minicluster

SCENARIO = Scenario(minutes=12, flows_per_minute=400, instances_per_app=3,
                    churn_per_minute=4.0, seed=11)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    out = generate(SCENARIO, str(folder))
    return folder, out


def _config(parallelism, metadata_chunk_lines=5000):
    return Config().replace(job={"parallelism": parallelism, "checkpoint_interval_seconds": 2},
                            metadata={"chunk_lines": metadata_chunk_lines})


# Changelog chunks of 7 lines (the scenario's 131 lines in 19 chunks): out-of-order changes and
# heartbeats fall on both sides of chunk boundaries.
@pytest.mark.parametrize("parallelism,metadata_chunk_lines", [(1, 5000), (2, 5000), (2, 7)])
def test_aggregates_equal_the_contract(generated, tmp_path, parallelism, metadata_chunk_lines):
    folder, out = generated
    flows_dir = os.path.join(folder, "flows")
    expected = reference.aggregates([flows_dir], [out.metadata_file])
    run_replay([flows_dir], [out.metadata_file], str(tmp_path),
               _config(parallelism, metadata_chunk_lines))

    assert job_aggregates(str(tmp_path)) == expected
    counts = total_counts(str(tmp_path))
    assert counts["flows_aggregated"] == out.flows
    with open(out.metadata_file) as fh:
        # Counted once, not once per attribution instance that the changelog is broadcast to.
        assert counts["metadata_events"] == sum(1 for _ in fh)
    assert counts["flows_late"] == 0
    assert counts["metadata_late"] == 0
    assert counts["groups_after_max_wait"] == 0


def test_scenario_is_discriminating(generated):
    """The scenario reassigns IPs between apps while they carry traffic, and delivers metadata
    out of order: attributing by the owner now, or in arrival order, would give other rows."""
    folder, out = generated
    flows_dir = os.path.join(folder, "flows")
    events = reference.metadata_events([out.metadata_file])
    apps_per_ip = {ip: {e[3]["app"] for e in evs if e[3]} for ip, evs in events.items()}
    used = Counter()
    for f in reference.flow_lines([flows_dir]):
        for ip in (f["srcaddr"], f["dstaddr"]):
            if len(apps_per_ip.get(ip, ())) > 1:
                used[ip] += 1
    assert len(used) >= 5, "too few reassigned IPs carry traffic"

    with open(out.metadata_file) as fh:
        ts = [json.loads(line)["ts"] for line in fh if '"HEARTBEAT"' not in line]
    assert any(b < a for a, b in zip(ts, ts[1:])), "changelog is in ts order: no late metadata"

    def latest(events, ip, t_ms, rank):
        candidates = [e for e in events.get(ip, ()) if e[0] <= t_ms]
        owner = max(candidates, key=rank)[3] if candidates else None
        return owner or reference.owner_at({}, ip, t_ms)

    def by_arrival(events, ip, t_ms):
        return latest(events, ip, t_ms, rank=lambda e: e[2])

    def now(events, ip, _t_ms):
        return latest(events, ip, 2**62, rank=lambda e: (e[0], e[1], e[2]))

    expected = reference.aggregates([flows_dir], [out.metadata_file])
    for wrong in (by_arrival, now):
        rows = reference.aggregates([flows_dir], [out.metadata_file], owner=wrong)
        differ = {k for k in set(rows) | set(expected) if rows.get(k) != expected.get(k)}
        assert len(differ) >= 20, f"{wrong.__name__} gives the contract's rows but {differ}"


@pytest.mark.parametrize("parallelism", [1, 2])
def test_conservation_with_bad_input_and_late_flows(generated, tmp_path, parallelism):
    """Every flow line ends in exactly one of aggregates, late or dead letter; NODATA/SKIPDATA
    are counted, not aggregated."""
    folder, out = generated
    flows_dir = os.path.join(folder, "flows")
    extra = tmp_path / "extra"
    extra.mkdir()
    late_start = SCENARIO.start - 1800   # half an hour behind, delivered last: late
    bad_lines = [
        "2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100",                      # field count
        "2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 x 6 1 100 1767225600 1767225660 ACCEPT OK",
        "2 123456789012 eni-1 10.0.0.999 10.0.0.2 1 2 6 1 100 1767225600 1767225660 ACCEPT OK",
        "2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 70000 6 1 100 1767225600 1767225660 ACCEPT OK",
        "2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 1767225660 1767225600 ACCEPT OK",
    ]
    nodata = ["2 123456789012 eni-1 - - - - - - - 1767225600 1767225660 - NODATA",
              "2 123456789012 eni-1 - - - - - - - 1767225600 1767225660 - SKIPDATA"]
    late = [f"2 123456789012 eni-1 203.0.113.{i} 10.0.0.2 4000 443 6 2 200 {late_start + i} "
            f"{late_start + i + 5} ACCEPT OK" for i in range(7)]
    header = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
              "bytes start end action log-status")
    with gzip.open(extra / "x_vpcflowlogs_us-east-1_fl-1_20260101T2300Z_0001.log.gz", "wt") as fh:
        fh.write("\n".join([header] + bad_lines + nodata + late) + "\n")
    (extra / "x_20260101T2301Z_bad.b64").write_text("not-base64-at-all!!\nSGVsbG8gd29ybGQhISEh\n")
    meta = tmp_path / "meta-extra.jsonl"
    meta.write_text('{"type":"ASSIGN","ip":"10.9.9.9"}\n{"type":"MOVE","ts":1,"ip":"10.9.9.9"}\n'
                    'not json\n{"type":"UNASSIGN","ts":5,"ip":"10.9.9.300"}\n')

    output = tmp_path / "out"
    run_replay([flows_dir, str(extra)], [out.metadata_file, str(meta)], str(output),
               _config(parallelism))

    counts = total_counts(str(output))
    aggregated = sum(v[0] for v in job_aggregates(str(output)).values())
    late_records = list(read_records(str(output), "late"))
    dead = list(read_records(str(output), "dead_letter"))
    flow_dead = [d for d in dead if d["stage"] == "flows"]

    assert aggregated + len(late_records) == out.flows + len(late)
    assert len(late_records) == counts["flows_late"]
    assert {r["window_start"] for r in late_records} <= {late_start - late_start % 60}
    assert all(r["src_app"] == "internet" for r in late_records)
    if parallelism == 1:
        # The late chunk, staged last, reaches the attribution operator after every other group
        # through the same channel, so it is late whatever the timing; at 2 the instance it
        # reaches may not have seen the watermark move past it yet.
        assert aggregated == out.flows and len(late_records) == len(late)
    assert counts["no_data"] == 1 and counts["skip_data"] == 1
    # The two base64 lines are whole records, not flow lines: dead-lettered, never counted as lines.
    assert Counter(d["reason"] for d in flow_dead) == Counter(
        ["field_count", "not_a_number", "bad_address", "port_out_of_range", "end_before_start",
         "bad_base64", "not_gzip"])
    assert counts["lines_in"] == aggregated + len(late_records) + (len(flow_dead) - 2) + 2
    assert Counter(d["reason"] for d in dead if d["stage"] == "metadata") == Counter(
        ["missing_ts", "unknown_type", "not_json", "bad_address"])
    assert counts["metadata_dead_letter"] == 4


@pytest.fixture(scope="module")
def large_estate(tmp_path_factory):
    """An estate whose ownership is above the JobManager's limit, its reference aggregates
    and its changelog's events; generated once for both parallelisms."""
    from flowdredge.synthetic.workload import Workload, generate as generate_workload
    inputs = generate_workload(Workload(flows=3000, minutes=3, instances=56_000,
                                        cloudwatch_accounts=0, seed=3),
                               str(tmp_path_factory.mktemp("large") / "in"))
    expected = reference.aggregates([inputs.flows_dir], [inputs.metadata_file])
    with open(inputs.metadata_file, encoding="utf-8") as fh:
        events = [parse_event(line) for line in fh]
    # What makes the test: the state the job checkpoints is above the limit.
    index = OwnershipIndex()
    for event in events:
        if event.type != HEARTBEAT:
            index.apply(event)
    ips = {event.ip for event in events if event.type != HEARTBEAT}
    assert len(index) == len(ips) > 55_000
    assert sum(len(key) + len(value) for key, value in index.state_entries(ips)) > 5 << 20
    return inputs, expected, events


@pytest.mark.parametrize("parallelism", [1, 2])
def test_replay_checkpoints_an_estate_above_the_jobmanager_limit(large_estate, tmp_path,
                                                                 parallelism):
    """The ownership of 62,000 IPs is more broadcast state than the JobManager's memory takes
    (5 MB): a replay checkpoints to files (job.checkpoint_dir, by default under its output),
    so its checkpoints, one every second here, do not fail the run."""
    inputs, expected, events = large_estate
    output = tmp_path / "out"
    config = Config().replace(job={"parallelism": parallelism, "checkpoint_interval_seconds": 1},
                              outputs={"enriched": False, "security": False})
    run_replay([inputs.flows_dir], [inputs.metadata_file], str(output), config)

    assert job_aggregates(str(output)) == expected
    counts = total_counts(str(output))
    assert counts["flows_aggregated"] == inputs.flow_lines
    assert counts["metadata_events"] == len(events) and counts["metadata_dead_letter"] == 0
    assert os.path.isdir(output / "checkpoints")


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_changelog_read_far_ahead_of_the_flows_keeps_the_owners_they_need(
        generated, tmp_path, parallelism):
    """A reviewer's stream: the changelog ten hours ahead of the flows (a stream resumed after
    a stop, a flow backlog from TRIM_HORIZON) with the shortest retention allowed. Pruned
    against the changelog's clock alone, the history the flows needed was gone: their IPs got
    the latest owner, or none. A replay reads the changelog before the flows it releases, so
    here the job prunes nothing before the flows are attributed: the pruning rule itself
    (against the flows' watermark too) is tests/test_prune.py's; this checks the answers."""
    folder, out = generated
    flows_dir = os.path.join(folder, "flows")
    ahead = tmp_path / "ahead.jsonl"
    with open(out.metadata_file) as fh:
        last_ts = max(json.loads(line)["ts"] for line in fh)
    ahead.write_text(json.dumps({"type": "ASSIGN", "ts": last_ts + 10 * 3600 * 1000,
                                 "ip": "10.99.0.1", "app": "later"}) + "\n")
    config = _config(parallelism).replace(metadata={"retention_seconds": 360})
    run_replay([flows_dir], [out.metadata_file, str(ahead)], str(tmp_path / "out"), config)
    assert job_aggregates(str(tmp_path / "out")) == reference.aggregates(
        [flows_dir], [out.metadata_file, str(ahead)])


@pytest.mark.parametrize("window_seconds,parallelism", [(300, 2), (3600, 1)])
def test_windows_of_other_lengths_equal_the_contract(generated, tmp_path, window_seconds,
                                                     parallelism):
    """Flink SQL refuses `INTERVAL '300' SECOND` (precision 2): other window lengths than the
    default minute run, and sum what the contract says."""
    folder, out = generated
    flows_dir = os.path.join(folder, "flows")
    config = _config(parallelism).replace(
        job={"parallelism": parallelism, "checkpoint_interval_seconds": 2,
             "window_seconds": window_seconds},
        metadata={"retention_seconds": 2 * window_seconds + 3600})
    run_replay([flows_dir], [out.metadata_file], str(tmp_path), config)
    expected = reference.aggregates([flows_dir], [out.metadata_file], window_seconds)
    # 12 minutes: three windows of five minutes, one of an hour.
    assert len({key[0] for key in expected}) == -(-SCENARIO.minutes * 60 // window_seconds)
    assert job_aggregates(str(tmp_path)) == expected


def _vpc_event(t0, kind, ts, ip=None, vpc=None, app=None, interface=None,
               interface_vpc=None) -> str:
    """A changelog line `ts` seconds after `t0`, an owner (app, region, and interface when
    given, and its VPC) when `app` is."""
    doc = {"type": kind, "ts": (t0 + ts) * 1000}
    doc.update({} if ip is None else {"ip": ip})
    doc.update({} if vpc is None else {"vpc_id": vpc})
    doc.update({} if app is None else {"app": app, "region": "us-east-1"})
    doc.update({} if interface is None else {"interface_id": interface})
    doc.update({} if interface_vpc is None else {"interface_vpc_id": interface_vpc})
    return json.dumps(doc)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_addresses_overlapping_vpcs_hold_are_owned_within_each_flows_vpc(tmp_path, parallelism):
    """Two default VPCs both hold 172.31.0.10 (and 172.31.0.40): no owner of their own, an owner
    within each VPC (VPC_ASSIGN). Each flow is attributed within the VPC its line names, at
    every parallelism (each attribution instance holds the broadcast claims)."""
    t0, vpc_a, vpc_b = 1767225600, "vpc-0a1b2c3d", "vpc-0123456789abcdef0"
    header = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
              "bytes start end action log-status vpc-id")
    lines = []
    for minute in range(3):
        start = t0 + 60 * minute + 5
        for i in range(20):
            lines += [f"5 111111111111 eni-0a 172.31.0.20 172.31.0.10 {40000 + i} 443 6 2 100 "
                      f"{start} {start + 30} ACCEPT OK {vpc_a}",
                      f"5 222222222222 eni-0b 172.31.0.40 172.31.0.10 {40000 + i} 443 6 3 200 "
                      f"{start} {start + 30} ACCEPT OK {vpc_b}",
                      f"5 333333333333 eni-0c 172.31.0.40 172.31.0.10 {40000 + i} 443 6 1 50 "
                      f"{start} {start + 30} REJECT OK vpc-0c1b2c3d"]
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "vpcs.log").write_text("\n".join([header] + lines) + "\n")

    event = functools.partial(_vpc_event, t0)
    changelog = tmp_path / "changelog.jsonl"
    changelog.write_text("\n".join([
        event("ASSIGN", 0, "172.31.0.20", app="web"),
        event("UNASSIGN", 0, "172.31.0.10"), event("UNASSIGN", 0, "172.31.0.40"),
        event("VPC_ASSIGN", 0, "172.31.0.10", vpc_a, "api"),
        event("VPC_ASSIGN", 0, "172.31.0.10", vpc_b, "db"),
        event("VPC_ASSIGN", 0, "172.31.0.40", vpc_b, "batch"),
        event("VPC_UNASSIGN", 120, "172.31.0.10", vpc_b),
        event("HEARTBEAT", 300)]) + "\n")
    out = str(tmp_path / "out")
    run_replay([str(flows)], [str(changelog)], out, _config(parallelism))
    rows = job_aggregates(out)
    assert rows == reference.aggregates([str(flows)], [str(changelog)])
    assert {(k[0] - t0, k[1], k[3], k[7]): v[0] for k, v in rows.items()} == {
        **{(m, "web", "api", "ACCEPT"): 20 for m in (0, 60, 120)},
        (0, "batch", "db", "ACCEPT"): 20, (60, "batch", "db", "ACCEPT"): 20,
        (120, "batch", "unattributed", "ACCEPT"): 20,
        **{(m, "unattributed", "unattributed", "REJECT"): 20 for m in (0, 60, 120)}}
    counts = total_counts(out)
    assert (counts["src_owned_in_vpc"], counts["dst_owned_in_vpc"]) == (60, 100)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_an_assign_too_long_to_read_leaves_its_address_without_owner(tmp_path, parallelism):
    """An ASSIGN of 172.31.0.10 to another owner longer than metadata.max_line_bytes is a dead
    letter; its address kept its owner before, so its flows after its ts went to the owner the
    changelog said had left it. Its head's type, ts and ip are applied as an UNASSIGN: from
    then its flows are unattributed (a VPC_ASSIGN's as a VPC_UNASSIGN, the VPC's owner gone).
    (The job's own file reader's cut line: tests/test_file_sources.)"""
    t0, vpc = 1767225600, "vpc-0a1b2c3d"
    header = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
              "bytes start end action log-status vpc-id")
    lines = [f"5 111111111111 eni-0a 172.31.0.20 {dst} {40000 + i} 443 6 2 100 {start} "
             f"{start + 30} ACCEPT OK {vpc}" for start in (t0 + 5, t0 + 125)
             for dst in ("172.31.0.10", "172.31.0.40") for i in range(10)]
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "too-long.log").write_text("\n".join([header] + lines) + "\n")
    event = functools.partial(_vpc_event, t0)
    tags = json.dumps({"tags": "x" * 9000})[1:-1]
    changelog = tmp_path / "changelog.jsonl"
    changelog.write_text("\n".join([
        event("ASSIGN", 0, "172.31.0.20", app="web"), event("ASSIGN", 0, "172.31.0.10", app="api"),
        event("UNASSIGN", 0, "172.31.0.40"), event("VPC_ASSIGN", 0, "172.31.0.40", vpc, "db"),
        event("ASSIGN", 60, "172.31.0.10", app="other")[:-1] + ", " + tags + "}",
        event("VPC_ASSIGN", 60, "172.31.0.40", vpc, "other")[:-1] + ", " + tags + "}",
        event("HEARTBEAT", 300)]) + "\n")
    out = str(tmp_path / "out")
    run_replay([str(flows)], [str(changelog)], out, _config(parallelism))
    flows_to = Counter()
    for k, v in job_aggregates(out).items():
        flows_to[k[0] - t0, k[3]] += v[0]
    assert flows_to == {(0, "api"): 10, (0, "db"): 10, (120, "unattributed"): 20}
    assert sorted((d["reason"], d["source"], d["detail"].split(": ", 1)[1])
                  for d in read_records(out, "dead_letter")) == [
        ("line_too_long", f"{changelog}:{n}", f"applied as {release} (its head's type, ts and ip)")
        for n, release in ((5, "an UNASSIGN"), (6, "a VPC_UNASSIGN"))]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_default_format_flows_are_owned_within_their_interfaces_vpc(tmp_path, parallelism):
    """AWS's default format names no VPC: a line's interface stands for it, in the VPC the
    VPC_ASSIGNs name it in (docs/metadata.md). An interface named in two VPCs, or in none,
    leaves the ends unattributed; at every parallelism (each attribution instance rebuilds the
    interfaces' VPCs from the broadcast claims)."""
    t0, vpc_a, vpc_b = 1767225600, "vpc-0a1b2c3d", "vpc-0123456789abcdef0"
    header = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
              "bytes start end action log-status")
    lines = []
    for minute in range(3):
        start = t0 + 60 * minute + 5
        for i in range(20):
            lines += [f"2 111111111111 {interface} 172.31.0.20 172.31.0.10 {40000 + i} {port} 6 "
                      f"2 100 {start} {start + 30} ACCEPT OK"
                      for interface, port in (("eni-0a20", 443), ("eni-0b10", 5432),
                                              ("eni-0c", 22), ("eni-0z", 80), ("-", 8080))]
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "default.log").write_text("\n".join([header] + lines) + "\n")

    event = functools.partial(_vpc_event, t0)
    changelog = tmp_path / "changelog.jsonl"
    changelog.write_text("\n".join([
        event("UNASSIGN", 0, "172.31.0.10"), event("UNASSIGN", 0, "172.31.0.20"),
        event("VPC_ASSIGN", 0, "172.31.0.10", vpc_a, "api", "eni-0a10"),
        event("VPC_ASSIGN", 0, "172.31.0.20", vpc_a, "web", "eni-0a20"),
        event("VPC_ASSIGN", 0, "172.31.0.10", vpc_b, "db", "eni-0b10"),
        event("VPC_ASSIGN", 0, "172.31.0.20", vpc_b, "batch", "eni-0b20"),
        event("VPC_ASSIGN", 0, "172.31.0.30", vpc_a, "x", "eni-0c"),
        event("VPC_ASSIGN", 0, "172.31.0.31", vpc_b, "y", "eni-0c"),
        event("VPC_UNASSIGN", 120, "172.31.0.10", vpc_b),
        event("HEARTBEAT", 300)]) + "\n")
    out = str(tmp_path / "out")
    run_replay([str(flows)], [str(changelog)], out, _config(parallelism))
    rows = job_aggregates(out)
    assert rows == reference.aggregates([str(flows)], [str(changelog)])
    nobody = "unattributed"
    assert {(k[0] - t0, k[1], k[3], k[5]): v[0] for k, v in rows.items()} == {
        **{(m, "web", "api", 443): 20 for m in (0, 60, 120)},
        (0, "batch", "db", 5432): 20, (60, "batch", "db", 5432): 20,
        (120, "batch", nobody, 5432): 20,
        **{(m, nobody, nobody, port): 20 for m in (0, 60, 120) for port in (22, 80, 8080)}}
    counts = total_counts(out)
    assert (counts["src_owned_in_vpc"], counts["dst_owned_in_vpc"]) == (120, 100)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_default_format_flows_of_an_interface_an_assign_places_are_owned_within_its_vpc(
        tmp_path, parallelism):
    """The publisher's ASSIGNs name their interface's VPC (interface_vpc_id): a default-format
    line logged at an interface none of whose addresses is contested, towards an address two
    VPCs hold, has its VPC, and that end the VPC's owner (before, unattributed: no VPC_ASSIGN
    named the interface). An ASSIGN without one places nothing; at every parallelism."""
    t0, vpc_a, vpc_b = 1767225600, "vpc-0a1b2c3d", "vpc-0123456789abcdef0"
    header = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
              "bytes start end action log-status")
    lines = []
    for minute in range(3):
        start = t0 + 60 * minute + 5
        for i in range(20):
            lines += [f"2 111111111111 {interface} {src} 172.31.0.10 {40000 + i} {port} 6 "
                      f"2 100 {start} {start + 30} ACCEPT OK"
                      for interface, src, port in (("eni-0w", "10.1.0.5", 443),
                                                   ("eni-0p", "10.2.0.5", 5432),
                                                   ("eni-0o", "10.3.0.5", 22))]
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "default.log").write_text("\n".join([header] + lines) + "\n")

    event = functools.partial(_vpc_event, t0)
    changelog = tmp_path / "changelog.jsonl"
    changelog.write_text("\n".join([
        event("ASSIGN", 0, "10.1.0.5", app="web", interface="eni-0w", interface_vpc=vpc_a),
        event("ASSIGN", 0, "10.2.0.5", app="pay", interface="eni-0p", interface_vpc=vpc_b),
        event("ASSIGN", 0, "10.3.0.5", app="old", interface="eni-0o"),
        event("UNASSIGN", 0, "172.31.0.10"),
        event("VPC_ASSIGN", 0, "172.31.0.10", vpc_a, "api", "eni-0a10"),
        event("VPC_ASSIGN", 0, "172.31.0.10", vpc_b, "db", "eni-0b10"),
        event("HEARTBEAT", 300)]) + "\n")
    out = str(tmp_path / "out")
    run_replay([str(flows)], [str(changelog)], out, _config(parallelism))
    rows = job_aggregates(out)
    assert rows == reference.aggregates([str(flows)], [str(changelog)])
    assert {(k[0] - t0, k[1], k[3], k[5]): v[0] for k, v in rows.items()} == {
        **{(m, "web", "api", 443): 20 for m in (0, 60, 120)},
        **{(m, "pay", "db", 5432): 20 for m in (0, 60, 120)},
        **{(m, "old", "unattributed", 22): 20 for m in (0, 60, 120)}}
    counts = total_counts(out)
    assert (counts["src_owned_in_vpc"], counts["dst_owned_in_vpc"]) == (0, 120)
