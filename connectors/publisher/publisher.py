"""The publisher: polls every account and region, writes the changes, applies events in between.

Time comes from `clock` (epoch ms) and waiting from `sleep` (seconds), both passed in.
"""
import gc
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from flowdredge.connectors.publisher.cloudtrail import (EventError, apply_change,
                                                        dated_addresses, parse_line)
from flowdredge.connectors.publisher.config import EventsSection, PublisherConfig
from flowdredge.connectors.publisher.derive import Naming, derive_claims
from flowdredge.connectors.publisher.diff import (EVENTS_AHEAD_MS, Observation, State,
                                                  apply_event, is_stale, reconcile_poll,
                                                  utc_text)
from flowdredge.connectors.publisher.sinks import SinkError, complete_lines_end
from flowdredge.schemas.metadata import ASSIGN, HEARTBEAT, UNASSIGN, VPC_ASSIGN, VPC_UNASSIGN


_log = logging.getLogger(__name__)
# A scope's failure when the publisher stopped before reading it.
NOT_READ = "not read: the publisher is stopping"


@dataclass
class PollResult:
    started_ms: int
    assigned: int = 0
    unassigned: int = 0
    vpc_assigned: int = 0             # VPC_ASSIGN: owners within a VPC of contested addresses
    vpc_unassigned: int = 0
    heartbeat_ms: int = None          # the HEARTBEAT written by this poll, if any
    finished_ms: int = None           # its changes written
    failed: dict = field(default_factory=dict)      # Scope -> error message
    conflicts: list = field(default_factory=list)   # addresses claimed by several interfaces

    @property
    def complete(self) -> bool:
        return not self.failed


@dataclass
class EventsResult:
    applied: int = 0
    assigned: int = 0
    unassigned: int = 0
    vpc_assigned: int = 0
    vpc_unassigned: int = 0
    stale: int = 0        # before the last poll of their scope began: the poll saw them
    deferred: int = 0     # need a poll first (unknown scope state, interface or instance)
    ignored: int = 0      # for an account or region not configured
    bad: int = 0          # unreadable lines, and records of CloudTrail log objects

    @property
    def counted(self) -> bool:
        """Whether any line was a change handled (lines of other events are passed over)."""
        return bool(self.applied or self.stale or self.deferred or self.ignored or self.bad)


class DatedAhead(EventError):
    def __init__(self, at_ms: int):
        super().__init__(f"dated {utc_text(at_ms)}")
        self.at_ms = at_ms


@dataclass
class AheadLines:
    """The lines dated more than EVENTS_AHEAD_MS after this host's clock, said together: a
    host whose clock is behind AWS's by more than that has every line so, and a line said for
    each hid the cause under their flood (a review)."""
    count: int = 0
    latest_ms: int = None
    clock_ms: int = None   # this host's clock when the latest was read

    def add(self, at_ms: int, clock_ms: int) -> None:
        self.count += 1
        self.latest_ms = at_ms if self.latest_ms is None else max(self.latest_ms, at_ms)
        self.clock_ms = clock_ms

    def said(self) -> str:
        return (f"{self.count} event line(s) dated more than {EVENTS_AHEAD_MS // 1000} s after "
                f"this host's clock, {utc_text(self.clock_ms)}, counted unreadable and passed "
                f"over, the latest dated {utc_text(self.latest_ms)}: if every line is, this "
                f"host's clock may be behind (is it kept by NTP?)")


# What one read of the events file takes at most (more if a line is longer, up to
# events.max_line_bytes): its lines are held at once, as strings and as parsed JSON.
EVENTS_READ_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class SkippedLine:
    """An events-file line passed over (longer than its cap, or not UTF-8): what to say of
    it."""
    said: str


class EventTail:
    """The complete lines appended to a file since the last read, at most `read_bytes` of them a
    read (restarts if it shrinks); a line longer than `max_line_bytes` is a SkippedLine, once, its
    bytes passed over as they come, and so is a line whose bytes are not UTF-8. `from_end`: the lines there when it is made are passed
    over."""

    def __init__(self, path: str, from_end: bool = False, read_bytes: int = EVENTS_READ_BYTES,
                 max_line_bytes: int = EventsSection.max_line_bytes):
        self.path = path
        self.read_bytes = read_bytes
        self.max_line_bytes = max_line_bytes
        self.offset = 0
        # The bytes after `offset` known to hold no line feed (a line not ended yet), searched
        # once: a line that never ended was read again, whole, at every check.
        self.searched = 0
        self.skipping = False   # within a long line given already: its bytes are passed over
        if from_end:
            try:
                with open(path, "rb") as fh:
                    self.offset = complete_lines_end(fh, os.path.getsize(path))
            except OSError:
                pass

    def size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def read(self, up_to: int = None) -> list:
        """The complete lines after the last read, as far as `up_to` (a size) if given, and
        SkippedLines."""
        try:
            fh = open(self.path, "rb")
        except OSError:
            return []
        with fh:
            size = os.fstat(fh.fileno()).st_size
            if size < self.offset:
                self.offset, self.searched, self.skipping = 0, 0, False
            if up_to is not None:
                size = min(size, up_to)
            if not self.searched and not self.skipping:
                fh.seek(self.offset)
                data = fh.read(max(0, min(size - self.offset, self.read_bytes)))
                if b"\n" in data:
                    return self._lines(data)
                self.searched = len(data)
            end = self._line_end(fh, size)
            start = self.offset
            if self.skipping:   # the rest of a long line given already
                self.offset, self.searched = (start + self.searched if end is None else end), 0
                self.skipping = end is None
                return [] if self.skipping else self.read(up_to)
            length = self.searched if end is None else end - 1 - start
            if length <= self.max_line_bytes:
                if end is None:
                    return []   # not ended yet
                self.searched = 0
                fh.seek(start)
                return self._lines(fh.read(end - start))
            self.offset, self.searched = (start + self.searched if end is None else end), 0
            self.skipping = end is None
            fh.seek(start)
            return [self._long(start, length, end is not None, fh.read(200))]

    def _line_end(self, fh, size: int):
        """Just after the line feed that ends the line at `offset`, or None if there is none
        before `size`; looked for after the bytes searched already, a block at a time."""
        fh.seek(self.offset + self.searched)
        while self.offset + self.searched < size:
            block = fh.read(min(size - self.offset - self.searched, self.read_bytes))
            if not block:   # cut shorter since its size was taken
                return None
            at = block.find(b"\n")
            if at >= 0:
                return self.offset + self.searched + at + 1
            self.searched += len(block)
        return None

    def _long(self, start: int, length: int, ended: bool, head: bytes) -> SkippedLine:
        return SkippedLine(f"event line at byte {start:,} of {self.path} skipped: {length:,} bytes"
                        f"{'' if ended else ' and no line feed yet'}, more than "
                        f"events.max_line_bytes ({self.max_line_bytes:,}): "
                        f"{head.decode('utf-8', errors='replace')}")

    def _lines(self, data: bytes) -> list:
        """The complete lines of `data`, read from `offset`, which moves past them."""
        complete = data.rfind(b"\n") + 1
        lines, start = [], self.offset
        self.offset += complete
        # Cut at line feeds only: str.splitlines() also cut at U+2028, U+2029 and U+0085, which
        # JSON holds unescaped in its strings (and AWS allows in tag values), and made an event
        # two unreadable lines.
        for line in data[:complete].split(b"\n")[:-1]:
            if len(line) > self.max_line_bytes:
                lines.append(self._long(start, len(line), True, line[:200]))
            elif line.strip():
                try:
                    lines.append(line.decode("utf-8"))
                except UnicodeDecodeError as err:
                    # Read as U+FFFD, a tag value's bytes were an owner's name changed
                    # without a word until the next poll: the poll is the one that is right.
                    lines.append(SkippedLine(
                        f"event line at byte {start:,} of {self.path} skipped: bytes that are "
                        f"not UTF-8 at its byte {err.start:,}: "
                        f"{line[:200].decode('utf-8', errors='replace')}"))
            start += len(line) + 1
        return lines


class Publisher:
    def __init__(self, config: PublisherConfig, reader, sink, clock, state: State = None,
                 log=_log.warning, keep_inventories: bool = True):
        """`keep_inventories`: the polls' inventories are kept for events (apply_events), as
        large as the state and more; without events they are let go after each poll."""
        self.config = config
        self.reader = reader
        self.sink = sink
        self.clock = clock
        self.log = log
        self.state = state or State()
        self.naming = Naming(config.name_rule, config.naming.app_tag, config.naming.cluster_tag,
                             config.public_ipv4)
        self.inventories = {}   # Scope -> Inventory as of the last poll and events since
        self.keep_inventories = keep_inventories

    def observe(self, should_stop=lambda: False):
        """Reads every scope, `aws.parallel_reads` at once: (observations, inventories,
        failures), in the configured order. Each read has its own start and end. Once
        should_stop() says so, the scopes not yet begun are not read (failures, NOT_READ): a
        stop waits for the reads under way only, not a whole poll, which at hundreds of
        accounts outlasts the time a container is given to stop before it is killed."""
        def read(scope):
            if should_stop():
                return scope, None, None, NOT_READ
            started = self.clock()
            try:
                inventory = self.reader.read(scope)
                claims = derive_claims(inventory, self.naming)
            # Any error, not only the reader's own: a malformed answer (botocore's parser
            # error is no BotoCoreError) must fail the scope, not stop the publisher.
            except Exception as err:  # noqa: BLE001
                return scope, None, None, str(err) or type(err).__name__
            return scope, Observation(scope, claims, started, self.clock()), inventory, None

        workers = min(self.config.aws.parallel_reads, len(self.config.scopes))
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="publisher-read") as pool:
                reads = list(pool.map(read, self.config.scopes))
        else:
            reads = [read(scope) for scope in self.config.scopes]
        observations, inventories, failed = [], {}, {}
        for scope, observation, inventory, error in reads:
            if error is not None:
                failed[scope] = error
                if error != NOT_READ:
                    self.log(f"cannot read {scope}, keeping its owners until it can be read: "
                             f"{error}")
                continue
            observations.append(observation)
            inventories[scope] = inventory
        not_read = sum(error == NOT_READ for error in failed.values())
        if not_read:
            self.log(f"stopping: {not_read} account/region(s) not read by this poll, their "
                     f"owners kept")
        return observations, inventories, failed

    def poll(self, should_stop=lambda: False) -> PollResult:
        started = self.clock()
        with old_objects_frozen():
            observations, inventories, failed = self.observe(should_stop)
            reconciled = reconcile_poll(self.state, observations, self.config.scopes)
            self._write(reconciled, inventories)
            self.state = reconciled.state
            if self.keep_inventories:
                self.inventories.update(inventories)
        result = PollResult(started, failed=failed, conflicts=reconciled.conflicts,
                            finished_ms=self.clock())
        _count(reconciled.events, result)
        for event in reconciled.events:
            if event["type"] == HEARTBEAT:
                result.heartbeat_ms = event["ts"]
        if reconciled.conflicts:
            self.log(f"{len(reconciled.conflicts)} address(es) claimed by more than one interface "
                     f"(overlapping VPCs), e.g. {reconciled.conflicts[0]}: no owner while "
                     f"they are, but within each claimant's VPC (VPC_ASSIGN)")
        return result

    def apply_events(self, lines: list, ahead: AheadLines = None) -> EventsResult:
        """Near-real-time changes (CloudTrail / EventBridge lines), written as they apply. The
        lines dated ahead of this host's clock are said in one line at the end, or gathered in
        `ahead` for the caller to say."""
        result = EventsResult()
        configured = set(self.config.scopes)
        now = self.clock()
        gathered = AheadLines() if ahead is None else ahead
        try:
            for line in lines:
                if isinstance(line, SkippedLine):
                    result.bad += 1
                    self.log(line.said)
                    continue
                try:
                    self._apply_line(line, configured, now, result)
                except SinkError:
                    raise
                except DatedAhead as err:
                    result.bad += 1
                    gathered.add(err.at_ms, now)
                # A line the reader's checks let through can still fail (an address that is
                # none): one bad line, not a stopped publisher that reads it again at its restart.
                except Exception as err:  # noqa: BLE001
                    result.bad += 1
                    self.log(f"unreadable event line ({err or type(err).__name__}): {line[:200]}")
        finally:
            if ahead is None and gathered.count:
                self.log(gathered.said())
        return result

    def _apply_line(self, line: str, configured: set, now: int, result: EventsResult) -> None:
        changes = parse_line(line)
        bad = [change for change in changes if isinstance(change, EventError)]
        changes = [change for change in changes if not isinstance(change, EventError)]
        latest = max((change.at_ms for change in changes), default=now)
        if latest > now + EVENTS_AHEAD_MS:
            raise DatedAhead(latest)
        if bad:
            result.bad += len(bad)
            # Its others were read (cloudtrail.parse_line refuses an object of bad records
            # only), though they may have changed nothing: "passed over" says no more.
            self.log(f"{len(bad)} unreadable record(s) of a CloudTrail log object passed over "
                     f"(the first: {bad[0]}): {line[:200]}")
        for change in changes:
            if change.scope not in configured:
                result.ignored += 1
                continue
            if is_stale(self.state, change.scope, change.at_ms):
                result.stale += 1
                continue
            inventory = self.inventories.get(change.scope)
            changed = apply_change(inventory, change) if inventory is not None else None
            if changed is None:
                result.deferred += 1
                continue
            reconciled = apply_event(self.state, change.scope,
                                     derive_claims(changed, self.naming), change.at_ms,
                                     dated_addresses(inventory, changed, change))
            self._write(reconciled, [change.scope])
            self.state = reconciled.state
            self.inventories[change.scope] = changed
            result.applied += 1
            _count(reconciled.events, result)

    def _write(self, reconciled, scopes) -> None:
        """Writes a batch; if that fails, part of it may be in the changelog all the same (a
        Kinesis sink writes changes and HEARTBEAT apart): its addresses are written again at
        their next reconciliation, even if their owner went back meanwhile. The inventories of
        the `scopes` it was reconciled from go too: the state kept is from before their reads
        (or event), and an event applied to the inventory kept would say again what they changed
        since (a review: the old owner's ASSIGN on an address another had held for a minute);
        their events wait for the next poll (EventsResult.deferred)."""
        try:
            self.sink.write(reconciled.events)
        except SinkError:
            self.state = self.state.write_failed(reconciled.events, reconciled.state.contested)
            for scope in scopes:
                self.inventories.pop(scope, None)
            raise

    def _apply_appended(self, events: EventTail, should_stop, due_ms: int, on_events) -> None:
        """The lines appended to `events` since its last read, as far as its size now, a read
        at a time, each read's results to `on_events`; until the next poll is due at `due_ms`.
        What is appended meanwhile waits for the next check: a file that never stops growing
        held back the polls, and their HEARTBEATs (a review). The lines dated ahead of this
        host's clock are said once for the check."""
        end = events.size()
        ahead = AheadLines()
        try:
            while not should_stop() and self.clock() < due_ms:
                lines = events.read(up_to=end)
                if not lines:
                    return
                try:
                    applied = self.apply_events(lines, ahead)
                except SinkError as err:
                    self.log(f"events not written, the next poll sends them: {err}")
                    return
                if on_events:
                    on_events(applied)
        finally:
            if ahead.count:
                self.log(ahead.said())

    def snapshot(self) -> State:
        """The state a snapshot writes (sinks.write_snapshot with diff.state_clocks)."""
        return self.state.copy()

    def run(self, should_stop, sleep=time.sleep, on_poll=None, events: EventTail = None,
            snapshot_requested=None, write_snapshot=None, on_events=None) -> None:
        """Polls every poll_interval_seconds until should_stop(); between polls reads `events`
        every events.check_seconds; writes a snapshot when snapshot_requested() says so.
        `on_poll` and `on_events` get each poll's and each read of events' results."""
        interval_ms = self.config.poll_interval_seconds * 1000
        check_s = self.config.events.check_seconds
        while not should_stop():
            next_poll = self.clock() + interval_ms
            try:
                result = self.poll(should_stop)
            except SinkError as err:
                self.log(f"poll not written, the next poll sends its changes: {err}")
            else:
                if on_poll:
                    on_poll(result)
                took_ms = result.finished_ms - result.started_ms
                if took_ms > interval_ms:
                    # The job dates changes by the poll's reads: it must wait for a whole poll.
                    self.log(f"the poll took {took_ms / 1000:.0f} s, longer than "
                             f"poll_interval_seconds ({interval_ms // 1000}): the next begins "
                             f"at once; the job's metadata.out_of_orderness_seconds must be at "
                             f"least {(interval_ms + took_ms) // 1000 + 1} (docs/publisher.md)")
            while not should_stop():
                if snapshot_requested and snapshot_requested():
                    try:
                        write_snapshot(self.snapshot())
                    except SinkError as err:
                        self.log(str(err))
                if events is not None:
                    self._apply_appended(events, should_stop, next_poll, on_events)
                left_ms = next_poll - self.clock()
                if left_ms <= 0:
                    break
                sleep(min(left_ms / 1000, check_s))


@contextmanager
def old_objects_frozen():
    """Keeps the objects made before it out of the garbage collector's passes until it ends,
    then collects once, with the poll's changes written. A poll makes inventories and claims
    of a size with the state it keeps, enough for three full passes over both: a third of a
    steady poll at 420,000 addresses (docs/performance.md run 56). The collection at the end
    frees the cycles that became garbage meanwhile: frozen at every poll, they never would be."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.collect()


def _count(events: list, result) -> None:
    """Adds the changes of `events` to a PollResult's or EventsResult's counts."""
    for event in events:
        if event["type"] == ASSIGN:
            result.assigned += 1
        elif event["type"] == UNASSIGN:
            result.unassigned += 1
        elif event["type"] == VPC_ASSIGN:
            result.vpc_assigned += 1
        elif event["type"] == VPC_UNASSIGN:
            result.vpc_unassigned += 1


def _within_vpcs(result) -> str:
    if not (result.vpc_assigned or result.vpc_unassigned):
        return ""
    return (f" (within VPCs: {result.vpc_assigned} assigned, {result.vpc_unassigned} "
            f"unassigned)")


def describe_events(result: EventsResult) -> str:
    parts = [f"events: {result.applied} applied ({result.assigned} assigned, "
             f"{result.unassigned} unassigned{_within_vpcs(result)})"]
    for count, what in ((result.stale, "stale (the poll saw them)"),
                        (result.deferred, "left to the next poll"),
                        (result.ignored, "of accounts or regions not configured"),
                        (result.bad, "unreadable")):
        if count:
            parts.append(f"{count} {what}")
    return ", ".join(parts)


def describe(result: PollResult) -> str:
    parts = [f"poll: {result.assigned} assigned, {result.unassigned} unassigned"
             f"{_within_vpcs(result)}"]
    if result.heartbeat_ms is not None:
        parts.append(f"{HEARTBEAT.lower()} {result.heartbeat_ms}")
    if result.finished_ms is not None:
        parts.append(f"in {(result.finished_ms - result.started_ms) / 1000:.1f} s")
    failed = [scope for scope, error in result.failed.items() if error != NOT_READ]
    if failed:
        parts.append(f"{len(failed)} scope(s) failed: " + "; ".join(str(s) for s in failed))
    if len(failed) < len(result.failed):
        parts.append(f"{len(result.failed) - len(failed)} not read (stopping)")
    return ", ".join(parts)
