"""Flink functions: each one call per batch, delegating the work to the pure-Python core."""
import ctypes
import gc
import logging
import random
import time
from collections import Counter

from pyflink.common import Row, Types
from pyflink.datastream import (KeyedBroadcastProcessFunction, OutputTag, ProcessFunction,
                                RuntimeContext, TimeDomain)
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from flowdredge.connectors.staged import staged_flows_max
from flowdredge.connectors.kinesis.settings import stream_name
from flowdredge.job.aggregate import LatenessHorizon, is_late
from flowdredge.job.attribute import UnownedClassifier, attribute_group
from flowdredge.job.ipranges import load as load_ip_ranges
from flowdredge.job.codec import (decode_events, decode_group, encode_events, encode_group,
                                  encode_views)
from flowdredge.job.config import Config
from flowdredge.job.enriched import gzip_block
from flowdredge.job.outputs import counts_line, data_quality_blocks, dead_letter_lines
from flowdredge.job.ownership import (MetadataClock, OwnershipIndex, apply_events, parse_chunk,
                                      too_long_record)
from flowdredge.job.parse import FlowFormat, parse_batches, staged_line_records
from flowdredge.job.replay import read_flow_file
from flowdredge.job.security import parse_ports
from flowdredge.job.shards import ShardClock
from flowdredge.job.waiting import Waiting, next_poll
from flowdredge.schemas.flink import row_type
from flowdredge.schemas.outputs import (COUNTERS, FLOW_DEAD_LETTER_REASONS, FLOW_GROUP,
                             METADATA_DEAD_LETTER_REASONS, PARTIAL_AGGREGATE)
from flowdredge.schemas.security import SECURITY_BATCH

DEAD_LETTERS = OutputTag("dead-letter", Types.STRING())
COUNTS = OutputTag("counts", Types.STRING())
# Blocks of enriched lines as gzip members (job.enriched.gzip_block).
ENRICHED = OutputTag("enriched", Types.PRIMITIVE_ARRAY(Types.BYTE()))
LATE = OutputTag("late", Types.STRING())
DATA_QUALITY = OutputTag("data-quality", Types.STRING())
# The security views' share of a batch: its conversations reduced, one row (job.flink.security).
CONVERSATIONS = OutputTag("conversations", row_type(SECURITY_BATCH))

FLOW_GROUP_TYPE = row_type(FLOW_GROUP)
# Parse operators emit (record, event time in epoch ms); see connectors.streams. Flow groups
# travel with their key in front: Row(key, group).
KEYED_FLOW_GROUP_TYPE = Types.ROW([Types.INT(), FLOW_GROUP_TYPE])
TIMED_FLOW_GROUP_TYPE = Types.TUPLE([KEYED_FLOW_GROUP_TYPE, Types.LONG()])
# The changelog travels in chunks: an input record's events as one value (job.codec).
METADATA_CHUNK_TYPE = Types.PRIMITIVE_ARRAY(Types.BYTE())
TIMED_METADATA_CHUNK_TYPE = Types.TUPLE([METADATA_CHUNK_TYPE, Types.LONG()])
PARTIAL_AGGREGATE_TYPE = row_type(PARTIAL_AGGREGATE)

# Broadcast state: IP (or job.ownership.vpc_key: a VPC's claim on it) -> encoded ownership
# changes, job.ownership.PART_KEY + n -> an owner part they name; CLOCK_KEY (none of those) ->
# metadata clock.
OWNERSHIP_STATE = MapStateDescriptor("ip-ownership", Types.STRING(), Types.STRING())
CLOCK_KEY = "clock"
MAX_WATERMARK = 2**63 - 1
# Each operator's counters (docs/operations.md), together schemas.outputs.COUNTERS and the
# counters by reason.
PARSE_COUNTERS = ("records_in", "records_skipped", "records_repeated", "lines_in",
                  "flows_parsed", "no_data", "skip_data", "dead_letter", "dead_letters_not_kept",
                  "unknown_fields_ignored") + tuple(f"dead_letter_{r}"
                                                    for r in FLOW_DEAD_LETTER_REASONS)
METADATA_PARSE_COUNTERS = ("metadata_dead_letter", "metadata_dead_letters_not_kept",
                           "metadata_after_flows") + tuple(
    f"metadata_dead_letter_{r}" for r in METADATA_DEAD_LETTER_REASONS)
# The security events' (job.flink.security.TrackEvents).
SECURITY_COUNTERS = ("exposure_ports_capped", "dependency_edges_capped",
                     "exposure_ports_total_capped", "dependency_edges_total_capped")
ATTRIBUTE_COUNTERS = tuple(c for c in COUNTERS if c not in
                           PARSE_COUNTERS + METADATA_PARSE_COUNTERS + SECURITY_COUNTERS)
# Flow groups waiting for metadata, per attribution key: each group (job.codec) and, apart,
# its "window_start max_start deadline", so that a timer reads the small part of every waiting
# group and the group itself only when it is released.
PENDING_GROUPS = MapStateDescriptor("pending-flow-group-payloads", Types.LONG(),
                                    Types.PRIMITIVE_ARRAY(Types.BYTE()))
PENDING_TIMES = MapStateDescriptor("pending-flow-group-times", Types.LONG(), Types.STRING())
# Savepoints of earlier releases: both parts in one value ("times\n" + group), moved to the two
# above at each key's first timer after a restore.
PENDING_BOTH = MapStateDescriptor("pending-flow-groups", Types.LONG(),
                                  Types.PRIMITIVE_ARRAY(Types.BYTE()))
# Per attribution key, the windows it sent security batches for that may still be open
# downstream ("start start ..."): after a restore the key sends each an empty batch, so that
# job.flink.security.CloseWindows registers again a close timer the checkpoint may lack
# (ParseFlowRecords._ticks says why it can).
SECURITY_WINDOWS = ValueStateDescriptor("security-windows-sent", Types.STRING())
# Per attribution key, the highest watermark it saw with a group: after a restore, the window
# operator downstream holds the watermark of the checkpoint and drops, uncounted, rows of the
# windows it passed; the attribution, which starts again from none, judges groups late against
# the highest its keys had seen, so that such groups go to the late output, counted.
WATERMARK_SEEN = ValueStateDescriptor("watermark-seen", Types.LONG())
# How long the ownership state remembers an IP's release after metadata.retention_seconds
# (OwnershipIndex.prune): a change of it that old arriving after is not taken to own it since.
RELEASES_KEPT_MS = 7 * 86400 * 1000


class Metrics:
    """An operator's Flink counters (`counters`, named as in schemas.outputs.COUNTERS) and
    gauges, in the metric group `flowdredge` of the operator."""

    def __init__(self, runtime_context: RuntimeContext, counters: tuple):
        self._group = runtime_context.get_metrics_group().add_group("flowdredge")
        # All created up front: a counter first created in a timer callback is never reported.
        self._counters = {name: self._group.counter(name) for name in counters}
        # Beam reports a counter to Flink once it is incremented while an element is processed:
        # each is, by 0, at the first element, so that a counter at 0 reads 0 rather than
        # missing (and a REST query of several ids missing one answers nothing).
        self._reported = False
        # Counted in timer callbacks, not counted yet: PyFlink records a counter's increments
        # only while it processes an element (Beam's metrics container is bound to that step;
        # a timer's are dropped), so they are added at the operator's next element.
        self._held = Counter()

    def gauge(self, name: str, read) -> None:
        self._group.gauge(name, read)

    def meter(self, name: str):
        """Events per second over the last minute; mark_event(n) counts n."""
        return self._group.meter(name, time_span_in_seconds=60)

    def add(self, counts, in_timer: bool = False) -> None:
        """Adds `counts`; `in_timer`: called from a timer callback."""
        if in_timer:
            self._held.update(counts)
            return
        if not self._reported:
            for counter in self._counters.values():
                counter.inc(0)
            self._reported = True
        if self._held:
            counts, self._held = self._held + Counter(counts), Counter()
        for name, n in counts.items():
            counter = self._counters.get(name)
            if counter is None:
                counter = self._counters[name] = self._group.counter(name)
            counter.inc(n)


class ParseFlowRecords(ProcessFunction):
    """One input record (envelope or file chunk; a staged line, which may hold several of a
    file's CloudWatch records, job.parse.staged_records) -> flow groups, one per window (of
    at most job.parse.MAX_GROUP_FLOWS flows: a larger window's flows in several), timestamped with the event time they move the job to: a file record's latest flow start,
    or for a shard's batch of Kinesis records (a Row of stream, shard, records, each a Row
    of data, sequence and arrival time, and how many repeats were left out; connectors.kinesis
    .flink), parsed together, the slowest active shard's (job.shards: per-shard watermarks).
    A Row of one field names a flow
    file as AWS wrote it (path or s3:// URL; connectors.files.aws_file_sources): it is read
    here, record by record as staging writes them (job.replay.read_flow_file), one call per
    file, each record parsed as its staged line would be, a file's small records together up to
    flows.chunk_lines lines (job.parse.parse_batches)."""

    def __init__(self, config: Config, expected_shards=(), flows_end: int = None):
        self.format_text = config.flows.format
        self.flows_end = flows_end
        self.limits = config.parse_limits
        self.flows = config.flows
        self.max_staged = staged_flows_max(config.flows.chunk_lines, config.flows.max_line_bytes,
                                           config.flows.max_decompressed_bytes)
        self.keys = config.job.attribution_keys
        self.shard_idle_ms = config.kinesis.shard_idle_seconds * 1000
        self.expected_shards = tuple(tuple(s) for s in expected_shards)

    def open(self, runtime_context: RuntimeContext):
        self.fmt = FlowFormat.parse(self.format_text)
        self.metrics = Metrics(runtime_context, PARSE_COUNTERS)
        self.records_rate = self.metrics.meter("records_in_per_second")
        self.flows_rate = self.metrics.meter("flows_in_per_second")
        self.producer = runtime_context.get_index_of_this_subtask()
        self.next_key = self.producer
        self.shards = ShardClock(self.shard_idle_ms, self.expected_shards)
        self.reached = 0
        self.metrics.gauge("active_shards", lambda: len(self.shards))
        self.ticked = False

    def process_element(self, raw, ctx):
        if not self.ticked:
            self.ticked = True
            yield from self._ticks()
        if isinstance(raw, Row) and len(raw) == 1:
            yield from self._flow_file(raw[0])
            return
        if isinstance(raw, Row):
            yield from self._shard_batch(raw[0], raw[1], raw[2], raw[3], ctx)
            return
        # A staged line (connectors.files: file_sources).
        yield from self._file_records(staged_line_records(raw, self.max_staged))

    def _shard_batch(self, stream, shard, records, repeats, ctx):
        where = f"kinesis:{stream_name(stream)}/{shard}/"
        counts, before = Counter(), self.reached
        if repeats:
            # A producer's retries (connectors/jvm RawRecords): read, not parsed.
            repeated = Counter(records_in=repeats, records_repeated=repeats)
            self.metrics.add(repeated)
            self.records_rate.mark_event(repeats)
            counts.update(repeated)
        for result in parse_batches([(data, where + sequence, None if arrival is None
                                      else arrival // 1000)
                                     for data, sequence, arrival in records],
                                    self.fmt, self.limits):
            if result.groups:
                latest = max(group.max_start for group in result.groups)
                now = ctx.timer_service().current_processing_time()
                reached = self.shards.observe((stream, shard), latest * 1000, now)
                # Not every shard heard from yet: these groups do not move event time.
                self.reached = 0 if reached is None else reached // 1000
                yield from self._emit(result, self.reached, before)
            else:
                yield from self._emit(result, None)
            counts.update(result.counts)
        yield COUNTS, counts_line("parse", counts)

    def _ticks(self):
        """A group without flows for every attribution key, first thing after each start or
        restore: each key registers again the timers of the groups it holds waiting
        (AttributeFlows._rearm). PyFlink registers the timers a Python function sets through
        the task's mailbox, after the bundle that set them; a checkpoint ends the open bundle
        and is taken before those registrations run (Flink 2.2.1: FLINK-37084's registration
        and prepareSnapshotPreBarrier), so it can hold waiting groups without their timers.
        Restored from it, they would wait for ever, or until another group's timer of their key
        released them after their window had closed (docs/streaming.md). Timestamp 0: no
        event time, like groups before every shard is heard from."""
        for key in range(self.keys):
            yield Row(key, Row(self.producer, 0, 0, b"", 0)), 0

    def _flow_file(self, location):
        # Each record parsed as its staged line would be, without writing and reading that line.
        yield from self._file_records((record, "record", None) for record in
                                      read_flow_file(location, self.flows.chunk_lines, self.flows,
                                                     flows_end=self.flows_end))

    def _file_records(self, records):
        """Records of a file or a staged line, small ones (a Firehose object's CloudWatch
        records) together up to a chunk's lines."""
        counts = Counter()
        for result in parse_batches(records, self.fmt, self.limits,
                                    batch_lines=self.flows.chunk_lines):
            yield from self._emit(result, None)
            counts.update(result.counts)
        yield COUNTS, counts_line("parse", counts)

    def _emit(self, result, progress, judged_at=None):
        """The groups, dead letters and data quality of one record or batch; its metrics. Each
        group is timestamped `progress` (or its own latest start), the event time it moves the
        job to, and carries `judged_at` (by default the same), the event time its lateness is
        judged by (AttributeFlows: LatenessHorizon). A batch's groups are judged by where event
        time stood before the batch: a batch that drains a backlog spans more event time than
        the out-of-orderness bound, and its own end must not make its first windows late (they
        reach the attribution before any watermark the batch moves)."""
        for group in result.groups:
            self.next_key = (self.next_key + 1) % self.keys
            reached = group.max_start if progress is None else progress
            row = Row(self.producer, group.window_start, group.max_start, encode_group(group),
                      reached if judged_at is None else judged_at)
            yield Row(self.next_key, row), reached * 1000
        if result.dead_letters:
            yield DEAD_LETTERS, dead_letter_lines(result.dead_letters)
        if result.no_traffic:
            for block in data_quality_blocks(result.no_traffic):
                yield DATA_QUALITY, block
        self.metrics.add(result.counts)
        self.records_rate.mark_event(result.counts["records_in"])
        self.flows_rate.mark_event(result.counts["flows_parsed"])


class ParseMetadataEvents(ProcessFunction):
    """One input record (a staged chunk of changelog lines, or a record of one or many lines)
    -> its events in one value (job.codec.encode_events), timestamped with the latest of them
    (ParsedChunk.event_time_ms).

    A HEARTBEAT at ts promises completeness up to ts: shifting its timestamp by the
    out-of-orderness bound makes Flink's bounded-out-of-orderness watermark reach ts, not
    ts - bound."""

    def __init__(self, config: Config, source: str = "metadata", snapshot_first: bool = False,
                 flows_end: int = None, max_line: int = None):
        self.shift = config.metadata.out_of_orderness_seconds * 1000
        self.limits = config.metadata_limits
        # A staged file's line cut by its reader (connectors.io.Sources.metadata_max_line); a
        # chunk the job's own reader made of a changelog file (as UTF-8, up to 6 MB) is not.
        self.max_line = max_line
        self.source = source
        self.snapshot_first = snapshot_first
        self.flows_end = flows_end

    def open(self, runtime_context: RuntimeContext):
        self.metrics = Metrics(runtime_context, METADATA_PARSE_COUNTERS)

    def process_element(self, record, ctx):
        # A stream record's timestamp is its arrival time. A file line's is none, or the
        # flow-file gate's reading of its own events (connectors/jvm ChangelogTimestamps),
        # which bounds nothing: its staged record's not_after and the flows' end do.
        arrival = None if isinstance(record, bytes) else ctx.timestamp()
        delivered = arrival // 1000 if arrival is not None and arrival > 0 else None
        if self.max_line is not None and len(record) > self.max_line:
            chunk = too_long_record(record, self.source, self.max_line)
        else:
            if isinstance(record, bytes):   # a changelog file's line (connectors.files)
                record = record.decode("utf-8", "replace")
            chunk = parse_chunk(record, source=self.source, delivered=delivered,
                                limits=self.limits, flows_end=self.flows_end)
        if chunk.events:
            # A snapshot's chunk moves neither the changelog's clock (job.ownership
            # apply_events) nor its watermark (a timestamp before any): a recent change early in
            # it would release flows whose owners come later in it.
            from_snapshot = self.snapshot_first and delivered is None
            yield (encode_events(chunk.events, from_snapshot),
                   0 if from_snapshot else chunk.event_time_ms(self.shift))
        counts = Counter({f"metadata_dead_letter_{reason}": n
                          for reason, n in chunk.reasons.items()})
        if chunk.rejected:
            counts["metadata_dead_letter"] = chunk.reasons.total()
            kept, counts["metadata_dead_letters_not_kept"] = chunk.dead_letters()
            yield DEAD_LETTERS, dead_letter_lines(kept)
        if chunk.after_flows:
            counts["metadata_after_flows"] = chunk.after_flows
        self.metrics.add(counts)
        if counts:
            yield COUNTS, counts_line("metadata", counts)


# Changelog events applied between two freezes of the worker's heap (AttributeFlows._freeze).
FREEZE_EVERY_EVENTS = 20_000

try:
    _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):   # not glibc
    _MALLOC_TRIM = None


def trim_heap() -> None:
    """Gives the C heap's free pages back to the system (glibc's malloc_trim, about a
    millisecond). Bulk work on a large index (a snapshot's events, the index's IPv4 array)
    frees tens of MB of temporaries that glibc otherwise keeps, and the worker's resident
    memory with them: 43 MB after one build at 1M IPs (docs/performance.md, run 21)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class AttributeFlows(KeyedBroadcastProcessFunction):
    """Keeps ownership ranges in broadcast state (with an in-memory index as cache) and
    attributes flow groups once the metadata is complete for them, or the max wait passed."""

    def __init__(self, config: Config):
        self.window_seconds = config.job.window_seconds
        self.flow_ooo_ms = config.flows.out_of_orderness_seconds * 1000
        self.parse_parallelism = config.job.parallelism
        self.meta_ooo_ms = config.metadata.out_of_orderness_seconds * 1000
        self.max_wait_ms = config.metadata.max_wait_seconds * 1000
        self.poll_ms = config.metadata.poll_interval_ms
        self.retention_ms = config.metadata.retention_seconds * 1000
        self.enriched = config.outputs.enriched
        self.ip_ranges = config.metadata.ip_ranges
        self.conversations = config.outputs.security
        self.service_ports = parse_ports(config.security.service_ports)

    def open(self, runtime_context: RuntimeContext):
        self.index = OwnershipIndex()
        self.unowned = UnownedClassifier(load_ip_ranges(self.ip_ranges) if self.ip_ranges
                                         else None)
        self.clock = MetadataClock(self.meta_ooo_ms)
        self.loaded = False
        self.pruned_to = None
        self.horizon = LatenessHorizon(self.parse_parallelism, self.flow_ooo_ms)
        self.pending = runtime_context.get_map_state(PENDING_GROUPS)
        self.pending_times = runtime_context.get_map_state(PENDING_TIMES)
        self.pending_both = runtime_context.get_map_state(PENDING_BOTH)
        self.keys_moved = set()   # keys _take_restored_groups has seen since the start
        if self.conversations:
            self.security_windows = runtime_context.get_state(SECURITY_WINDOWS)
        self.windows_sent = {}   # key -> SECURITY_WINDOWS as a set, once read
        self.events_unfrozen = 0
        self.pending_groups = 0   # waiting in this instance, restored ones included
        # The watermark of the last element: what the window downstream has been sent.
        self.seen_watermark = -MAX_WATERMARK
        # After a restore, what the window downstream was sent before it (WATERMARK_SEEN).
        self.restored_watermark = -MAX_WATERMARK
        self.watermark_seen = runtime_context.get_state(WATERMARK_SEEN)
        self.watermark_stored = {}   # key -> its WATERMARK_SEEN, as last written or read
        self.metrics = Metrics(runtime_context, ATTRIBUTE_COUNTERS)
        # Every instance sees every changelog event (broadcast); one of them writes the counts
        # output, so its sums are the changelog's, whatever the parallelism.
        self.counts_metadata = runtime_context.get_index_of_this_subtask() == 0
        self.metrics.gauge("ownership_ips", lambda: len(self.index))
        self.metrics.gauge("ownership_ranges", lambda: self.index.ranges())
        self.metrics.gauge("ownership_interface_conflicts",
                           lambda: self.index.interface_conflicts)
        self.metrics.gauge("ownership_restored_cleaned",
                           lambda: self.index.restored_cleaned.total())
        self.metrics.gauge("pending_groups", lambda: self.pending_groups)
        # Read when reported, not when a group came: it grows while event time stands still.
        self.metrics.gauge("event_time_lag_ms", self._event_time_lag_ms)

    def _load(self, state) -> None:
        """After a start or restore, fills the cache from broadcast state once."""
        if self.loaded:
            return
        clock = state.get(CLOCK_KEY)
        if clock is not None:
            self.clock = MetadataClock.decode(clock, self.meta_ooo_ms)
        self.index.load(lambda: ((key, encoded) for key, encoded in state.items()
                                 if key != CLOCK_KEY))
        note = self.index.restore_note()
        if note:
            logging.getLogger(__name__).warning(note)
        self.loaded = True
        self._freeze()

    def _freeze(self) -> None:
        """Moves what the worker holds now, the ownership index above all, out of reach of
        Python's cyclic garbage collector: every full collection walked it, 14 % of the worker's
        CPU in the default configuration (docs/performance.md). Frozen objects are still freed
        by reference counting; the collection first, so no cyclic garbage is frozen."""
        gc.collect()
        gc.freeze()
        trim_heap()
        self.events_unfrozen = 0

    def process_broadcast_element(self, payload, ctx):
        """One chunk of events: applied in order, then each changed IP and the clock written
        to broadcast state once."""
        state = ctx.get_broadcast_state(OWNERSHIP_STATE)
        self._load(state)
        events, from_snapshot = decode_events(payload)
        counts, changed = apply_events(events, self.index, self.clock, from_snapshot)
        for key, encoded in self.index.state_entries(changed):
            state.put(key, encoded)
        state.put(CLOCK_KEY, self.clock.encode())
        self._prune(state)
        self.events_unfrozen += len(events)
        if self.events_unfrozen >= FREEZE_EVERY_EVENTS:
            self._freeze()
        self.metrics.add(counts)
        if self.counts_metadata:
            yield COUNTS, counts_line("metadata", counts)

    def _prune(self, state) -> None:
        # Against the flows' event time too: a changelog read far ahead of them (a stream
        # resumed after hours, a backlog from TRIM_HORIZON) would take the owners they need.
        wm = self.clock.watermark
        if wm is None or self.seen_watermark <= -MAX_WATERMARK:
            return
        horizon = min(wm, self.seen_watermark) - self.retention_ms
        if self.pruned_to is not None and horizon - self.pruned_to < self.retention_ms // 4:
            return
        changed, removed = self.index.prune(horizon, horizon - RELEASES_KEPT_MS)
        for key, encoded in self.index.state_entries(changed):
            state.put(key, encoded)
        for key in removed:
            state.remove(key)
        self.pruned_to = horizon

    def process_element(self, row, ctx):
        self._load(ctx.get_broadcast_state(OWNERSHIP_STATE))
        producer, window_start, max_start, payload, progress = row[0], row[1], row[2], row[3], \
            row[4]
        if not payload:   # a tick: ParseFlowRecords._ticks
            yield from self._rearm(ctx)
            return
        timers = ctx.timer_service()
        # Before a new group of the key waits: those waiting now are all restored ones.
        self._take_restored_groups(ctx.get_current_key(), timers.current_processing_time())
        watermark = self.seen_watermark = max(timers.current_watermark(),
                                              self.restored_watermark)
        if watermark > -MAX_WATERMARK:
            key = ctx.get_current_key()
            if watermark > self.watermark_stored.get(key, -MAX_WATERMARK):
                self.watermark_seen.update(watermark)
                self.watermark_stored[key] = watermark
        horizon = self.horizon.observe(producer, progress * 1000, watermark)
        # A late group waits for its owners as any other: the flows' event time (the horizon)
        # can be far ahead of the metadata clock, and the owners it has now may be the old ones.
        late = is_late(window_start, self.window_seconds, horizon)
        if self.clock.complete_up_to(max_start * 1000):
            yield from self._emit(decode_group(payload, window_start, max_start), ctx,
                                  late=late)
        else:
            now = timers.current_processing_time()
            deadline = now + self.max_wait_ms
            seq = random.getrandbits(63)
            self.pending.put(seq, payload)
            self.pending_times.put(seq, Waiting(window_start, max_start, deadline, late)
                                   .encode())
            self.pending_groups += 1
            # Released by whichever comes first: the watermark passing the group (the metadata
            # is then complete for it, and its window still open), a check after the metadata
            # clock moved (polled), or the max wait.
            timers.register_event_time_timer(max_start * 1000)
            timers.register_processing_time_timer(next_poll(now, self.poll_ms))
            self.metrics.add({"groups_waited": 1})
            yield COUNTS, counts_line("attribute", {"groups_waited": 1})

    def _rearm(self, ctx):
        """Registers again the timers of the key's waiting groups (a timer registered twice
        fires once), and sends an empty security batch to each window it sent batches for that
        may still be open; raises the restored watermark to the key's WATERMARK_SEEN."""
        timers = ctx.timer_service()
        key = ctx.get_current_key()
        seen = self.watermark_seen.value()
        if seen is not None:
            self.watermark_stored[key] = seen
            self.restored_watermark = max(self.restored_watermark, seen)
            self.seen_watermark = max(self.seen_watermark, seen)
        if self.conversations:
            for window_start in sorted(self._windows_sent(key)):
                yield CONVERSATIONS, Row(window_start, b"")
        self._take_restored_groups(key, timers.current_processing_time())
        starts = {Waiting.decode(times).max_start for times in self.pending_times.values()}
        for max_start in starts:
            timers.register_event_time_timer(max_start * 1000)
        if starts:
            timers.register_processing_time_timer(
                next_poll(timers.current_processing_time(), self.poll_ms))

    def _event_time_lag_ms(self) -> int:
        """Wall-clock time minus the highest watermark seen (0 before any): a metric only."""
        if self.seen_watermark <= -MAX_WATERMARK:
            return 0
        return int(time.time() * 1000) - self.seen_watermark

    def on_timer(self, timestamp: int, ctx):
        # A restored timer can fire before any record or changelog event has loaded the state.
        self._load(ctx.get_broadcast_state(OWNERSHIP_STATE))
        timers = ctx.timer_service()
        event_time = ctx.time_domain() == TimeDomain.EVENT_TIME
        # The final watermark means every input, the changelog too, has ended: nothing more
        # can arrive, so what is known is complete.
        inputs_ended = timers.current_watermark() >= MAX_WATERMARK
        # The watermark the window downstream has been sent: while an event-time timer fires,
        # the one it is advanced to is not emitted yet.
        if not event_time:
            self.seen_watermark = max(timers.current_watermark(), self.restored_watermark)
        sent = self.seen_watermark
        self._take_restored_groups(ctx.get_current_key(), timers.current_processing_time())
        ready, waiting = [], 0
        for seq, times in self.pending_times.items():
            group = Waiting.decode(times)
            complete = inputs_ended or self.clock.complete_up_to(group.max_start * 1000)
            if group.due(timestamp, event_time, complete):
                ready.append((seq, group.window_start, group.max_start, complete, group.late))
            else:
                waiting += 1
        for seq, window_start, max_start, complete, came_late in ready:
            payload = self.pending.get(seq)
            self.pending.remove(seq)
            self.pending_times.remove(seq)
            self.pending_groups -= 1
            # A group's timer fires before the watermark passes its window; one released
            # after (its timer lost: ParseFlowRecords._ticks) is late, and counted so.
            late = came_late or is_late(window_start, self.window_seconds, sent)
            group = decode_group(payload, window_start, max_start)
            if not complete:
                # Its flows' owners may be stale: the flows say how much, the groups how often.
                counts = {"groups_after_max_wait": 1, "flows_after_max_wait": len(group)}
                self.metrics.add(counts, in_timer=True)
                yield COUNTS, counts_line("attribute", counts)
            yield from self._emit(group, ctx, late=late, in_timer=True)
        if waiting and not event_time:
            timers.register_processing_time_timer(next_poll(timestamp + 1, self.poll_ms))

    def _take_restored_groups(self, key, now_ms: int) -> None:
        """At the key's first call since this instance started: moves its groups of an earlier
        release's savepoint (PENDING_BOTH) into the two states of this one (their timers came
        back with them), and gives every restored waiting group its whole max wait again from
        now. The changelog is read again from the checkpoint too: a deadline that passed while
        the job was down would release the groups, unattributed, before it caught up."""
        if key in self.keys_moved:
            return
        self.keys_moved.add(key)
        if not self.pending_both.is_empty():
            for seq, value in list(self.pending_both.items()):
                times, payload = bytes(value).split(b"\n", 1)
                self.pending.put(seq, payload)
                self.pending_times.put(seq, times.decode("ascii"))
            self.pending_both.clear()
        for seq, times in list(self.pending_times.items()):
            self.pending_times.put(seq, Waiting.decode(times).restarted(now_ms, self.max_wait_ms)
                                   .encode())
            self.pending_groups += 1

    def _windows_sent(self, key) -> set:
        sent = self.windows_sent.get(key)
        if sent is None:
            stored = self.security_windows.value()
            sent = self.windows_sent[key] = set(map(int, stored.split())) if stored else set()
        return sent

    def _window_sent(self, key, window_start: int) -> None:
        """Notes in keyed state a window the key sends a security batch for. The windows the
        watermark has passed are dropped: with it, every attribution instance sent that
        watermark before its next checkpoint barrier, so the window is closed in that
        checkpoint."""
        sent = self._windows_sent(key)
        if window_start in sent:
            return
        closed = {w for w in sent if (w + self.window_seconds) * 1000 <= self.seen_watermark}
        sent -= closed
        sent.add(window_start)
        self.security_windows.update(" ".join(map(str, sorted(sent))))

    def _emit(self, group, ctx, late=False, in_timer=False):
        extra = {"window_start": group.window_start} if late else None
        builds = self.index.ipv4_builds
        out = attribute_group(group, self.index, enriched=self.enriched or late, extra=extra,
                              conversations=self.conversations and not late,
                              unowned=self.unowned, service_ports=self.service_ports)
        if self.index.ipv4_builds != builds:
            trim_heap()
        n = len(group)
        out.counts["flows_late" if late else "flows_aggregated"] += n
        if late:
            yield LATE, out.enriched.decode("utf-8").rstrip("\n")
        else:
            for partial in out.partials.rows():
                yield Row(*partial)
            if self.conversations:
                self._window_sent(ctx.get_current_key(), group.window_start)
                yield CONVERSATIONS, Row(group.window_start, encode_views(out.views))
            if out.enriched:
                yield ENRICHED, gzip_block(out.enriched)
        self.metrics.add(out.counts, in_timer)
        yield COUNTS, counts_line("attribute", out.counts)
