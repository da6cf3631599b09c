"""The publisher's reads of many accounts, against moto's server in a process of its own.
`python -m bench.publisher_reads [--accounts 30] [--regions 3] [--delay-ms 50] [--polls 3]
[--parallel-reads 8]`.

Every account is read through AssumeRole, in `--regions` regions, as `Publisher.observe` reads
them (`aws.parallel_reads` at once). The accounts are empty: what is measured is what an account
and a region cost the publisher whatever they hold, its boto3 sessions and clients. Each API call
waits `--delay-ms` first, a stand-in for AWS's latency (moto answers in about a millisecond).
Prints each poll's reads in seconds and the resident memory this process gained since before the
first, after a full garbage collection. Needs moto (the test dependencies).
"""
import argparse
import gc
import os
import socket
import subprocess
import sys
import tempfile
import time

import boto3

from bench.publisher import _memory_mb
from flowdredge.connectors.publisher import config as publisher_config
from flowdredge.connectors.publisher.aws import AwsReader
from flowdredge.connectors.publisher.publisher import Publisher

REGIONS = ["us-east-1", "eu-west-1", "ap-south-1", "us-west-2", "eu-central-1"]
TESTING = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _moto_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit(f"moto's server did not start on port {port}")
            time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.publisher_reads", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accounts", type=int, default=30)
    p.add_argument("--regions", type=int, default=3, choices=range(1, len(REGIONS) + 1))
    p.add_argument("--delay-ms", type=float, default=50.0)
    p.add_argument("--polls", type=int, default=3)
    p.add_argument("--parallel-reads", type=int, default=8)
    args = p.parse_args(argv)
    if args.accounts < 1 or args.polls < 1 or args.parallel_reads < 1 or args.delay_ms < 0:
        p.error("--accounts, --polls and --parallel-reads must be at least 1, --delay-ms not "
                "negative")
    port = _free_port()
    server = _moto_server(port)
    regions = REGIONS[:args.regions]

    def delayed_session(**credentials):
        session = boto3.Session(region_name=regions[0], **(credentials or TESTING))
        session.events.register("before-call", lambda **_: time.sleep(args.delay_ms / 1000))
        return session
    try:
        with tempfile.TemporaryDirectory() as work:
            config = publisher_config.from_dict({
                "accounts": [{"id": f"{100000000000 + n}",
                              "role_arn": f"arn:aws:iam::{100000000000 + n}:role/reader",
                              "regions": regions} for n in range(args.accounts)],
                "output": {"kind": "file", "path": os.path.join(work, "changes.jsonl")},
                "aws": {"endpoint_url": f"http://127.0.0.1:{port}", "retry_mode": "standard",
                        "parallel_reads": args.parallel_reads}})
            now = int(time.time() * 1000)   # moto's credentials expire an hour from its clock
            publisher = Publisher(config, AwsReader(config, lambda: now,
                                                    session_factory=delayed_session),
                                  None, lambda: now)
            gc.collect()
            before = _memory_mb()[0]
            print(f"{args.accounts} accounts x {len(regions)} regions, {args.delay_ms:g} ms a "
                  f"call, parallel_reads {args.parallel_reads}", flush=True)
            for poll in range(1, args.polls + 1):
                began = time.perf_counter()
                _observed, _inventories, failed = publisher.observe()
                took = time.perf_counter() - began
                if failed:
                    raise SystemExit(f"poll {poll}: scopes failed: {failed}")
                gc.collect()
                print(f"poll {poll}: reads {took:.2f} s, resident "
                      f"+{_memory_mb()[0] - before:.0f} MB", flush=True)
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
