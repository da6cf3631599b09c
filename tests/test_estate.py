"""The synthetic estate's model (synthetic.estate) is the one every shape writes: the demo's and
tests' estate, the benchmark workload and the state benchmarks' snapshot all name owners with
the changelog contract's fields, and an address is never held by two instances at once (but in
the demo's estate, whose churn may hand an address on within the minute it is released)."""
import gzip
import json
import random

import numpy as np
import pytest

from flowdredge.schemas.metadata import ASSIGN, OWNER_FIELDS, UNASSIGN
from flowdredge.synthetic import snapshot
from flowdredge.synthetic.estate import (AddressPool, Ownership, Scenario, check_size, generate,
                                         owner)
from flowdredge.synthetic.workload import Workload, generate as generate_workload

pytestmark = pytest.mark.unit


def _changes(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _check_changelog(events, exclusive=True):
    """Every ASSIGN names an owner with the contract's fields in order; `exclusive`: an IP is
    assigned again only after its release. Returns the IPs held at the end."""
    held = set()
    for event in sorted((e for e in events if e["type"] != "HEARTBEAT"),
                        key=lambda e: (e["ts"], e["type"] != UNASSIGN)):
        if event["type"] == ASSIGN:
            assert tuple(event)[3:] == OWNER_FIELDS
            assert not exclusive or event["ip"] not in held, event
            held.add(event["ip"])
        else:
            held.discard(event["ip"])
    return held


def test_owner_has_the_changelog_fields():
    assert tuple(owner("api", 26, 2, "123456789012", "eu-west-1", "eu-west-1a")) == OWNER_FIELDS


def test_address_pool_reuses_released_addresses_only():
    rng = random.Random(1)
    pool = AddressPool(lambda region, n: f"10.{region}.0.{n}", 0.7, rng.random, rng.randrange)
    alive = [pool.take(0) for _ in range(20)]
    assert len(set(alive)) == 20
    for _ in range(200):
        pool.release(alive.pop(rng.randrange(len(alive))))
        alive.append(pool.take(0))
        assert len(set(alive)) == len(alive)
    assert pool.taken < 220   # released addresses were handed on


def test_ownership_counts_ips_that_changed_app():
    ownership = Ownership(compact=True)
    ownership.assign(1, "10.0.0.1", owner("a", 1, 0, "1", "r", "z"))
    ownership.unassign(2, "10.0.0.1")
    ownership.assign(3, "10.0.0.1", owner("b", 2, 0, "1", "r", "z"))
    ownership.assign(3, "10.0.0.2", owner("a", 3, 0, "1", "r", "z"))
    assert ownership.reassigned() == 1
    assert ownership.changes[1] == (2, '{"type":"UNASSIGN","ts":2,"ip":"10.0.0.1"}')


def test_every_shape_writes_the_same_owners(tmp_path):
    scenario = generate(Scenario(minutes=3, flows_per_minute=100, churn_per_minute=3.0, seed=2),
                        str(tmp_path / "estate"))
    # The demo's churn draws its replacements in random order within a minute, so an address
    # released late in the minute may be handed on earlier (kept: its files stay as they were).
    assert _check_changelog(_changes(scenario.metadata_file), exclusive=False)
    workload = generate_workload(Workload(flows=2000, minutes=3, apps=20, instances=300,
                                          churn_share_per_minute=0.05, seed=2),
                                 str(tmp_path / "workload"))
    assert workload.reassigned_ips and _check_changelog(_changes(workload.metadata_file))
    rng = np.random.default_rng(2)
    ips = snapshot.private_ips(500, rng)
    path = tmp_path / "snapshot.jsonl"
    snapshot.write_snapshot(str(path), ips, rng)
    assert _check_changelog(_changes(path)) == set(ips)
    snapshot.write_flows(str(tmp_path / "flows"), ips, 400, rng)
    files = sorted((tmp_path / "flows").rglob("*.log.gz"))
    lines = [line for f in files for line in gzip.decompress(f.read_bytes()).decode().split("\n")[1:]
             if line]
    assert len(files) == 4 and len(lines) == 400
    assert {line.split()[3] for line in lines} <= set(ips)


def test_an_estate_at_its_bounds_is_taken_and_one_past_them_refused():
    """43,200 minutes and 5,000,000 flows are the most generate() is meant to hold: at them an
    estate is taken, one past either is refused, by check_size and by a Scenario alike."""
    for minutes, flows in ((43_200, 1), (1_000, 5_000)):
        check_size(minutes, flows)
        assert Scenario(minutes=minutes, flows_per_minute=flows).minutes == minutes
    for minutes, flows in ((43_201, 1), (1_000, 5_001)):
        with pytest.raises(ValueError, match="at most"):
            check_size(minutes, flows)
        with pytest.raises(ValueError, match="at most"):
            Scenario(minutes=minutes, flows_per_minute=flows)
