"""The changelog publisher at a large estate's size, in one process, without AWS.
`python -m bench.publisher [--interfaces 500000] [--addresses-per-interface 2] [--scopes 50]
[--churn 0.01]`.

Synthetic inventories (DescribeNetworkInterfaces items, instance and Auto Scaling group tags)
for `--scopes` accounts and regions, `--interfaces` instance interfaces in all, each with
`--addresses-per-interface` private IPv4 addresses and every tenth a public one. Times each step
of the publisher's work on them, as `Publisher.poll` and a snapshot do it:

- first poll: derive, the owners of every address from the inventories (derive.derive_claims);
  reconcile_poll with no state (an ASSIGN per address); its events appended to a file as JSON
  lines (sinks.FileSink, which fsyncs); all three with the objects made before frozen
  (publisher.old_objects_frozen), and the garbage collection after;
- steady poll: a share `--churn` of the interfaces replaced by new instances of another group
  (their addresses move), as many released and as many new, then the same steps again;
- snapshot: snapshot_events and state_clocks written (sinks.write_snapshot);
- resume: the snapshot and its clocks read back as `--resume` reads them.

Prints each step's seconds, the events it made, and the process's resident memory after it
(and its peak), as a Markdown table. The reads from AWS (paged Describe calls) are not in it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

from flowdredge.connectors.publisher.derive import ASG_TAG, Naming, derive_claims
from flowdredge.connectors.publisher.diff import (Observation, State, reconcile_poll,
                                                  snapshot_events, state_clocks)
from flowdredge.connectors.publisher.model import Inventory, Scope
from flowdredge.connectors.publisher.publisher import old_objects_frozen
from flowdredge.connectors.publisher.naming import NameRule
from flowdredge.connectors.publisher.sinks import FileSink, write_snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T0_MS = 1_767_225_600_000
GROUPS = 2_000
ATTACHED = datetime(2025, 12, 1, tzinfo=timezone.utc)


_RESUME = """
import json, sys, time
from bench.publisher import _memory_mb
from flowdredge.connectors.publisher.cli import _read_snapshot
began = time.perf_counter()
state = _read_snapshot(sys.argv[1], None)
print(json.dumps([time.perf_counter() - began, len(state.holdings), *_memory_mb()]))
"""


def _memory_mb() -> tuple:
    """(resident, peak resident) MB of this process, from /proc."""
    values = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kb, _unit = line.split()
                values[key] = int(kb) / 1024
    return values.get("VmRSS:", 0.0), values.get("VmHWM:", 0.0)


def _address(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def _interface(scope: Scope, serial: int, first_address: int, per_interface: int,
               group: int) -> tuple:
    """(DescribeNetworkInterfaces item, instance id, its tags) of one instance's interface."""
    instance = f"i-{serial:017x}"
    private = [{"PrivateIpAddress": _address(first_address + k), "Primary": k == 0}
               for k in range(per_interface)]
    if serial % 10 == 0:
        private[0]["Association"] = {"PublicIp": f"54.{serial >> 16 & 255}."
                                                 f"{serial >> 8 & 255}.{serial & 255}"}
    eni = {"NetworkInterfaceId": f"eni-{serial:017x}", "OwnerId": scope.account,
           "AvailabilityZone": f"{scope.region}a", "VpcId": "vpc-0a1b2c3d",
           "PrivateIpAddress": private[0]["PrivateIpAddress"], "PrivateIpAddresses": private,
           "Attachment": {"InstanceId": instance, "AttachTime": ATTACHED}, "Description": ""}
    return eni, instance, {ASG_TAG: f"app{group % 500}-prod-v{group:03d}"}


def estate(scopes: list, interfaces: int, per_interface: int) -> dict:
    """Scope -> Inventory: the interfaces dealt to the scopes in turn."""
    inventories = {scope: Inventory(scope) for scope in scopes}
    for serial in range(interfaces):
        scope = scopes[serial % len(scopes)]
        eni, instance, tags = _interface(scope, serial, serial * per_interface, per_interface,
                                         serial % GROUPS)
        inventories[scope].interfaces.append(eni)
        inventories[scope].instance_tags[instance] = tags
    return inventories


def churn(inventories: dict, share: float, serial: int, per_interface: int,
          first_address: int) -> int:
    """Replaces, releases and adds a `share` of each scope's interfaces each; returns the next
    serial."""
    for scope, inventory in inventories.items():
        n = max(1, int(len(inventory.interfaces) * share))
        kept = inventory.interfaces[n:-n]
        for eni in inventory.interfaces[:n]:   # the same addresses, a new instance of a new group
            addresses = [e["PrivateIpAddress"] for e in eni["PrivateIpAddresses"]]
            moved, instance, tags = _interface(scope, serial, 0, per_interface, serial % GROUPS + 1)
            for entry, address in zip(moved["PrivateIpAddresses"], addresses):
                entry["PrivateIpAddress"] = address
            moved["PrivateIpAddress"] = addresses[0]
            inventory.instance_tags[instance] = tags
            kept.append(moved)
            serial += 1
        for _ in range(n):
            eni, instance, tags = _interface(scope, serial, first_address, per_interface,
                                             serial % GROUPS)
            first_address += per_interface
            inventory.instance_tags[instance] = tags
            kept.append(eni)
            serial += 1
        inventory.interfaces = kept
    return serial


def observe(inventories: dict, naming: Naming, started_ms: int) -> list:
    return [Observation(scope, derive_claims(inventory, naming), started_ms, started_ms + 1000)
            for scope, inventory in inventories.items()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.publisher", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interfaces", type=int, default=500_000)
    p.add_argument("--addresses-per-interface", type=int, default=2)
    p.add_argument("--scopes", type=int, default=50)
    p.add_argument("--churn", type=float, default=0.01)
    args = p.parse_args(argv)
    if args.interfaces < 1 or args.scopes < 1 or args.addresses_per_interface < 1:
        p.error("--interfaces, --scopes and --addresses-per-interface must be at least 1")
    if args.interfaces * args.addresses_per_interface * 2 > 1 << 24:
        p.error("the estate's addresses (twice theirs, for the churn) must fit 10.0.0.0/8")
    scopes = [Scope(f"{100000000000 + k // 2:012d}", ("us-east-1", "eu-west-1")[k % 2])
              for k in range(args.scopes)]
    naming = Naming(NameRule())
    rows = []

    def step(name, seconds, events="", note=""):
        rss, peak = _memory_mb()
        rows.append((name, seconds, events, rss, peak, note))
        print(f"{name}: {seconds:.2f} s", flush=True)

    began = time.perf_counter()
    inventories = estate(scopes, args.interfaces, args.addresses_per_interface)
    step("inventories built (not the publisher's work)", time.perf_counter() - began)
    with tempfile.TemporaryDirectory() as work:
        sink = FileSink(os.path.join(work, "changelog.jsonl"))

        def poll(name, state, started_ms):
            """A poll as Publisher.poll makes it, the objects made before it frozen: derive,
            reconcile, its events appended, then one garbage collection. The state after it."""
            with old_objects_frozen():
                began = time.perf_counter()
                observations = observe(inventories, naming, started_ms)
                claims = sum(len(o.claims) for o in observations)
                step(f"{name}: derive", time.perf_counter() - began, note=f"{claims:,} addresses")
                began = time.perf_counter()
                result = reconcile_poll(state, observations, scopes)
                del observations
                step(f"{name}: reconcile", time.perf_counter() - began, len(result.events))
                size = os.path.getsize(sink.path) if os.path.exists(sink.path) else 0
                began = time.perf_counter()
                sink.write(result.events)
                step(f"{name}: write", time.perf_counter() - began, len(result.events),
                     f"{(os.path.getsize(sink.path) - size) / 1e6:,.1f} MB")
                began = time.perf_counter()
            step(f"{name}: the collection after it", time.perf_counter() - began)
            return result.state
        state = poll("first poll", State(), T0_MS)
        churn(inventories, args.churn, args.interfaces, args.addresses_per_interface,
              args.interfaces * args.addresses_per_interface)
        state = poll(f"steady poll ({args.churn:.0%} churn)", state, T0_MS + 60_000)
        target = os.path.join(work, "snapshot.jsonl")
        began = time.perf_counter()
        events = snapshot_events(state)
        write_snapshot(events, target, clocks=state_clocks(state))
        step("snapshot", time.perf_counter() - began, len(events),
             f"{os.path.getsize(target) / 1e6:.0f} MB")
        del events
        # In a process of its own, as a `--resume` starts: its memory is the resume's alone.
        done = subprocess.run([sys.executable, "-c", _RESUME, target], capture_output=True,
                              text=True, check=True, cwd=ROOT)
        seconds, held, rss, peak = json.loads(done.stdout)
        rows.append(("resume: the snapshot and its clocks read (a process of its own)", seconds,
                     held, rss, peak, ""))
    print(f"{args.scopes} scopes, {args.interfaces:,} interfaces, "
          f"{args.addresses_per_interface} private addresses each (every tenth a public one)")
    print("| step | s | events | resident MB after | peak MB | note |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, seconds, events, rss, peak, note in rows:
        count = f"{events:,}" if events != "" else ""
        print(f"| {name} | {seconds:.2f} | {count} | {rss:.0f} | {peak:.0f} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
