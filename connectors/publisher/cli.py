"""flowdredge-publisher: AWS network state to the IP-metadata changelog. See docs/publisher.md.

    flowdredge-publisher run --config FILE [--once] [--resume SNAPSHOT | s3://bucket/key]
    flowdredge-publisher snapshot --config FILE [--to PATH | s3://bucket/key]

Exit status: 0 done; 1 bad configuration or an output that cannot be written; 2 bad usage;
3 (`run --once`, `snapshot`) an account or region could not be read.
"""
import argparse
import io
import json
import logging
import os
import re
import signal
import sys
import time
from contextlib import contextmanager

import boto3
import botocore
from botocore.exceptions import BotoCoreError, ClientError

from flowdredge.connectors import logs, s3
from flowdredge.connectors.publisher import config as publisher_config
from flowdredge.connectors.publisher.aws import AwsReader
from flowdredge.connectors.publisher.diff import (ClocksError, reconcile_poll, snapshot_events,
                                                  state_clocks, state_from_snapshot)
from flowdredge.connectors.publisher.publisher import (EventTail, Publisher, describe,
                                                      describe_events)
from flowdredge.connectors.publisher.sinks import (FileSink, KinesisSink, SinkError,
                                                  check_snapshot_target, clocks_path,
                                                  snapshot_digest, write_snapshot)

INCOMPLETE = 3


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


# Not __name__: "__main__" under python -m.
log = logging.getLogger("flowdredge.connectors.publisher.cli")


def build_sink(config, reader: AwsReader):
    out = config.output
    if out.kind == "file":
        return FileSink(out.path)
    client = reader.base_client("kinesis", out.region,
                                out.endpoint_url or config.aws.endpoint_url or None)
    return KinesisSink(client, out.stream_arn or out.stream_name, out.partition_key,
                       out.max_attempts)


def s3_client(config, reader: AwsReader):
    return reader.base_client("s3", endpoint_url=config.aws.endpoint_url or None)


def snapshot_writer(config, reader: AwsReader, target: str):
    """Writes a publisher state's owners to `target`, and the rest of it beside them."""
    return lambda state: write_snapshot(snapshot_events(state), target,
                                        lambda: s3_client(config, reader), state_clocks(state))


def _snapshot_bytes(location: str, s3_client_factory) -> tuple:
    """(bytes, when it was written, epoch ms) of a snapshot file or s3://bucket/key."""
    if s3.is_s3(location):
        bucket, key = s3.split(location)
        try:
            got = s3_client_factory().get_object(Bucket=bucket, Key=key)
            return got["Body"].read(), int(got["LastModified"].timestamp() * 1000)
        except (ClientError, BotoCoreError) as err:
            raise ValueError(f"cannot read snapshot {location}: {err}") from None
    try:
        with open(location, "rb") as fh:
            return fh.read(), int(os.path.getmtime(location) * 1000)
    except OSError as err:
        raise ValueError(f"cannot read snapshot {location}: {err.strerror}") from None


def _read_snapshot(location: str, s3_client_factory):
    body, written_ms = _snapshot_bytes(location, s3_client_factory)
    clocks = _snapshot_clocks(location, body, s3_client_factory)
    read = [0]   # the number of the line read last, for an error

    def events():
        # One line at a time: a list of a million events' dicts took 1.6 GB (bench.publisher).
        for read[0], line in enumerate(io.BytesIO(body), 1):
            if line.strip():
                yield _snapshot_event(line)
    try:
        # Written when it was taken: its time bounds the changes found after it, where its
        # clocks do not say when each scope was last read.
        try:
            return state_from_snapshot(events(), written_ms, clocks)
        except ClocksError as err:
            log.warning(f"{clocks_path(location)}: {err}: {_AFTER_SNAPSHOT}")
            return state_from_snapshot(events(), written_ms)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"snapshot {location} is not a file of ASSIGN events: line {read[0]}: "
                         f"{err}") from None
    except RecursionError:   # a traceback before
        raise ValueError(f"snapshot {location} is not a file of ASSIGN events: line {read[0]}: "
                         f"nested deeper than the JSON decoder goes") from None


# A blank between a key and its colon.
_SPACED_KEY = re.compile(rb'"[ \t\r\n]+:').search


def _snapshot_event(line: bytes):
    """A snapshot line's JSON value, refused when an object in it gives a key twice: json keeps
    the last value, where the job dead-letters such a changelog line. A key is spelt `"` then
    `:` when no blank comes between, and so is nothing else but an escaped quote before a
    colon: as many as the object's keys means none is repeated, without a second parse."""
    doc = json.loads(line)
    if isinstance(doc, dict) and (line.count(b'":') != len(doc) or _SPACED_KEY(line)):
        json.loads(line, object_pairs_hook=_keys_once)
    return doc


def _keys_once(pairs: list) -> dict:
    doc = dict(pairs)
    if len(doc) < len(pairs):
        keys = [key for key, _ in pairs]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"the key(s) {', '.join(twice)} twice in one object (JSON keeps the "
                         f"last)")
    return doc


_AFTER_SNAPSHOT = ("changes found are dated after the snapshot's time (its file's modification "
                   "time or object's LastModified), which may be later than they happened")


def _snapshot_clocks(location: str, body: bytes, s3_client_factory):
    """The clocks written beside a snapshot (sinks.write_snapshot), or None, said, when there are
    none of this snapshot: changes are then dated after the snapshot's time."""
    try:
        text, _ = _snapshot_bytes(clocks_path(location), s3_client_factory)
        clocks = json.loads(text)
    except (ValueError, RecursionError) as err:
        log.warning(f"no clocks beside the snapshot ({err}): {_AFTER_SNAPSHOT}")
        return None
    if not isinstance(clocks, dict):
        log.warning(f"{clocks_path(location)} is not clocks (a JSON object): {_AFTER_SNAPSHOT}")
        return None
    if clocks.get("snapshot_sha256") != snapshot_digest(body):
        log.warning(f"{clocks_path(location)} is not of this snapshot (written apart): "
                    f"{_AFTER_SNAPSHOT}")
        return None
    return clocks


def _check(what: str) -> None:
    """`what`, said if it is a warning (a check that could not tell)."""
    if what:
        log.warning(what)


def cmd_run(args, config) -> int:
    stop, snapshot_wanted = [], []
    # From the start: SIGUSR1's default action ends the process, and a --resume reads for
    # seconds before the loop (an hourly snapshot's signal killed it: an operator's review).
    with _signals({signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGUSR1: snapshot_wanted},
                  forced=(signal.SIGTERM, signal.SIGINT)):
        reader = AwsReader(config, wall_clock_ms)
        sink = build_sink(config, reader)
        # Before the first poll's reads: a misspelt stream was found after them, minutes at
        # hundreds of accounts, and a snapshot target at the stop (an operator's review).
        _check(sink.check())
        if config.snapshot.to and not args.once:
            _check(check_snapshot_target(config.snapshot.to, lambda: s3_client(config, reader)))
        state = (_read_snapshot(args.resume, lambda: s3_client(config, reader)) if args.resume
                 else None)
        publisher = Publisher(config, reader, sink, wall_clock_ms, state,
                              keep_inventories=bool(config.events.path) and not args.once)
        if args.once:   # writes no snapshot: SIGUSR1 is taken and left
            result = publisher.poll(lambda: bool(stop))
            log.info(describe(result))
            return 0 if result.complete else INCOMPLETE
        return _run(config, reader, publisher, stop, snapshot_wanted)


@contextmanager
def _signals(flags: dict, forced=()):
    """Each signal of `flags` appends to its list while it lasts; the handlers before, after.
    A signal of `forced` that comes again once its list is set stops the process at once."""
    def handler(signum, _frame, flag):
        if flag and signum in forced:
            _stop_now(signum)
        flag.append(True)

    before = {sig: signal.signal(sig, lambda signum, frame, flag=flag: handler(signum, frame, flag))
              for sig, flag in flags.items()}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _stop_now(signum: int) -> None:
    """A second SIGTERM or Ctrl-C: an operator who will not wait for the reads under way (minutes
    for a large account, at the worst). What the poll read may be written in part or not at all,
    and no snapshot is: the next start writes it again, from the last snapshot written with
    --resume."""
    log.error(f"{signal.Signals(signum).name} again: stopped at once; this poll's changes may be "
              f"written in part or not at all, and no snapshot is (the next start writes them)")
    os._exit(128 + signum)


def _run(config, reader, publisher: Publisher, stop: list, snapshot_wanted: list) -> int:
    def snapshot_requested():
        if not snapshot_wanted:
            return False
        snapshot_wanted.clear()
        if not config.snapshot.to:
            log.warning("snapshot requested but snapshot.to is not configured")
            return False
        return True

    writer = snapshot_writer(config, reader, config.snapshot.to) if config.snapshot.to else None

    def write_requested(state):
        writer(state)
        log.info(f"snapshot: {len(state.holdings)} owners written to {config.snapshot.to}")

    def on_events(result):
        if result.counted:
            log.info(describe_events(result))

    # From its end: a line there before the first poll began is stale once that poll is done
    # (or left to the next poll, where its scope's read failed); one of the very second the
    # poll's read began would at most release what the read saw already. A file of 187 MB was
    # read whole, into 560 MB, to find that (an operator's review).
    events = (EventTail(config.events.path, from_end=True,
                        max_line_bytes=config.events.max_line_bytes)
              if config.events.path else None)
    publisher.run(lambda: bool(stop), on_poll=lambda r: log.info(describe(r)), events=events,
                  snapshot_requested=snapshot_requested, write_snapshot=write_requested,
                  on_events=on_events)
    if writer is not None:
        # Where this run ended: `--resume` from it then dates what changed meanwhile after it.
        writer(publisher.snapshot())
        log.info(f"stopped: {len(publisher.state.holdings)} owners written to "
                 f"{config.snapshot.to} (--resume {config.snapshot.to} to go on from here)")
    return 0


def cmd_snapshot(args, config) -> int:
    target = args.to or config.snapshot.to
    if not target:
        log.error("no snapshot target: give --to or set snapshot.to")
        return 2
    reader = AwsReader(config, wall_clock_ms)
    _check(check_snapshot_target(target, lambda: s3_client(config, reader)))
    publisher = Publisher(config, reader, sink=None, clock=wall_clock_ms, keep_inventories=False)
    stop = []
    with _signals({signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGUSR1: []},
                  forced=(signal.SIGTERM, signal.SIGINT)):
        observations, _inventories, failed = publisher.observe(lambda: bool(stop))
    if failed:   # a stop that came after the last read leaves nothing unread: written
        log.error("no snapshot written: stopped" if stop else
                  f"no snapshot written: {len(failed)} account/region(s) could not be read")
        return INCOMPLETE
    state = reconcile_poll(publisher.state, observations, config.scopes).state
    snapshot_writer(config, reader, target)(state)
    log.info(f"snapshot: {len(state.holdings)} owners written to {target}")
    return 0


def _warn_of_unknown_regions(config) -> None:
    """A region botocore does not know for EC2 failed every poll as a connection error, which
    read as the network's (an operator's review); a region newer than botocore is not refused."""
    session = boto3.Session()
    known = {region for partition in session.get_available_partitions()
             for region in session.get_available_regions("ec2", partition)}
    unknown = sorted({scope.region for scope in config.scopes} - known)
    if unknown:
        log.warning(f"region(s) {', '.join(unknown)} unknown to botocore {botocore.__version__}"
                    f" for EC2: misspelt, or newer than it (their reads fail to connect if so)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="flowdredge-publisher", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="poll and write changes until stopped (SIGTERM)")
    run.add_argument("--config", required=True)
    run.add_argument("--once", action="store_true", help="one poll, then exit")
    run.add_argument("--resume", metavar="SNAPSHOT",
                     help="start from a snapshot, a file or s3://bucket/key (the owners a "
                          "previous run published)")
    snap = commands.add_parser("snapshot", help="write every current owner as ASSIGN events "
                                                "(and VPC_ASSIGN ones within overlapping VPCs)")
    snap.add_argument("--config", required=True)
    snap.add_argument("--to", help="a file path or s3://bucket/key (default: snapshot.to)")
    args = parser.parse_args(argv)
    logs.setup("flowdredge.connectors.publisher", "flowdredge-publisher:", dated=True)
    try:
        config = publisher_config.load(args.config)
        _warn_of_unknown_regions(config)
        if args.command == "run":
            return cmd_run(args, config)
        return cmd_snapshot(args, config)
    except publisher_config.ConfigError as err:
        log.error(f"configuration error: {err}")
        return 1
    except (SinkError, ValueError) as err:
        log.error(str(err))
        return 1


if __name__ == "__main__":
    sys.exit(main())
