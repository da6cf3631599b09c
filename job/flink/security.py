"""The security and dependency views in Flink: thin functions over job.security.

    attribution: each batch's conversations reduced (job.security.WindowViews), one encoded
    row per batch --keyed by window--> CloseWindows, when event time passes the window: merges
    its batches and computes every view
      dependencies, exposure, internet_egress, scans, port_scan / host_sweep events,
      risk ------------------------------------------------------------> outputs (a block each)
      the window's dependency, exposure and REJECT-source rows, one row --> TrackEvents
    TrackEvents (one key), when event time passes the window: new_dependency,
    dependency_gone, exposure_new, reject_spike --> security_events; rejected rows --> rejected;
    what its caps kept out --> counts

No conversation crosses between Python and the JVM, and no per-key row: a batch travels as one
row, a closed window as one row and a block of lines per output (the window tables' rows
rendered in Python as Flink's json format wrote them, job.security.table_lines). The events'
state (edges, exposed ports, REJECT history, the job's first and latest windows) is one key's,
held in memory and written to keyed state after each call: its work is per window and key, not
per flow.
"""
from pyflink.common import Row, Types
from pyflink.datastream import DataStream, KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from flowdredge.connectors.streams import keyed_by_first_field, side_output, windowed_uid
from flowdredge.job import security
from flowdredge.job.codec import (decode_events_state, decode_views, decode_window_rows,
                       encode_events_state, encode_window_rows)
from flowdredge.job.config import Config
from flowdredge.job.flink.operators import COUNTS, MAX_WATERMARK, SECURITY_COUNTERS, Metrics
from flowdredge.job.outputs import counts_line
from flowdredge.schemas import security as out

PAYLOAD = Types.PRIMITIVE_ARRAY(Types.BYTE())
# CloseWindows -> TrackEvents: Row(key 0, encoded window rows).
WINDOW_ROWS = Types.ROW([Types.INT(), PAYLOAD])
EVENTS = OutputTag("security-events", Types.STRING())
SCANS = OutputTag("security-scans", Types.STRING())
RISK = OutputTag("security-risk", Types.STRING())
REJECTED = OutputTag("security-rejected", Types.STRING())
# Window tables: (schema, output, WindowResults field, tag of their blocks of lines).
TABLES = tuple((schema, name, field, OutputTag(f"security-{name}", Types.STRING()))
               for schema, name, field in ((out.DEPENDENCY, out.DEPENDENCIES, "dependencies"),
                                           (out.EXPOSURE, out.EXPOSURE_OUTPUT, "exposure"),
                                           (out.INTERNET_EGRESS, out.EGRESS_OUTPUT, "egress")))

BATCHES = ListStateDescriptor("security-batches", PAYLOAD)
EVENTS_STATE = ValueStateDescriptor("security-events-state", PAYLOAD)
HELD_WINDOWS = ListStateDescriptor("security-events-windows", PAYLOAD)


class CloseWindows(KeyedProcessFunction):
    """Keyed by window start: holds the window's batches (encoded job.security.WindowViews)
    until event time passes its end, then merges them and emits the window's views."""

    def __init__(self, config: Config):
        self.window_seconds = config.job.window_seconds
        sec = config.security
        self.rules = security.ViewRules(
            sec.scan_report_min_targets,
            security.ScanRules(sec.port_scan_min_ports, sec.port_scan_max_hosts,
                               sec.host_sweep_min_hosts, sec.host_sweep_max_ports,
                               sec.scan_min_reject_percent, sec.evidence_samples),
            sec.risk_weights, sec.risk_scales)

    def open(self, runtime_context: RuntimeContext):
        self.batches = runtime_context.get_list_state(BATCHES)

    def process_element(self, payload, ctx):
        # Empty: AttributeFlows' batch after a restore, for the timer alone (_rearm).
        if payload:
            self.batches.add(payload)
        ctx.timer_service().register_event_time_timer(
            (ctx.get_current_key() + self.window_seconds) * 1000 - 1)

    def on_timer(self, timestamp: int, ctx):
        batches = list(self.batches.get() or ())
        if not batches:   # closed before, and its timer registered again after a restore
            return
        window_start = (timestamp + 1) // 1000 - self.window_seconds
        views = security.WindowViews()
        for payload in batches:
            views.merge(decode_views(payload))
        self.batches.clear()
        results = security.window_results(window_start, views, self.rules)
        yield Row(0, encode_window_rows(window_start, results.dependencies, results.exposure,
                                        results.reject_sources))
        for schema, _, field, tag in TABLES:
            rows = getattr(results, field)
            if rows:
                yield tag, "\n".join(security.table_lines(schema, rows))
        for tag, lines in ((SCANS, results.scans), (RISK, results.risk),
                           (EVENTS, results.events)):
            if lines:
                yield tag, "\n".join(lines)


class TrackEvents(KeyedProcessFunction):
    """One key: job.security.SecurityEvents over the closed windows, advanced at event-time
    timers. Kept in memory (read once after a start or restore); in keyed state, the windows
    held, as they came, and the rest as one value written after every timer. What the caps
    kept out is counted (SECURITY_COUNTERS): in the counts output at once, in the metrics at the
    next window (Metrics.add: counted in a timer)."""

    def __init__(self, config: Config):
        self.window_seconds = config.job.window_seconds
        self.rules = config.security

    def open(self, runtime_context: RuntimeContext):
        self.stored = runtime_context.get_state(EVENTS_STATE)
        self.held = runtime_context.get_list_state(HELD_WINDOWS)
        self.events = None
        self.payloads = {}   # window start -> its payload, while held
        self.metrics = Metrics(runtime_context, SECURITY_COUNTERS)

    def _events(self) -> security.SecurityEvents:
        if self.events is None:
            stored = self.stored.value()
            self.events = security.SecurityEvents(
                self.window_seconds, self.rules,
                None if stored is None else decode_events_state(stored))
            for payload in self.held.get() or ():
                self._hold(payload)
        return self.events

    def _hold(self, payload) -> int:
        window_start, *rows = decode_window_rows(payload)
        self.payloads[window_start] = payload
        return self.events.add_window(window_start, *rows)

    def process_element(self, payload, ctx):
        self.metrics.add({})   # what the timers counted since the last element (Metrics.add)
        self._events()
        ctx.timer_service().register_event_time_timer(self._hold(payload))
        self.held.add(payload)

    def on_timer(self, timestamp: int, ctx):
        timers = ctx.timer_service()
        events = self._events()
        ended = timers.current_watermark() >= MAX_WATERMARK
        if ended and events.settled:
            return   # nothing left to do, nor to write to state
        lines, rejected, later = events.advance(timestamp, ended)
        for t in later:
            timers.register_event_time_timer(t)
        if len(self.payloads) != len(events.pending):
            self.payloads = {w: self.payloads[w] for w in events.pending}
            self.held.update(list(self.payloads.values()))
        self.stored.update(encode_events_state(events.state()))
        if lines:
            yield "\n".join(lines)
        if rejected:
            yield REJECTED, "\n".join(rejected)
        if events.counts:
            self.metrics.add(events.counts, in_timer=True)
            yield COUNTS, counts_line("security", events.counts)


def add_security_views(batches: DataStream, sinks, config: Config) -> DataStream:
    """Adds the views of docs/security.md over the attribution's batches (Row(window start,
    encoded job.security.WindowViews), with the job's watermarks) and their outputs to
    `sinks` (text outputs only); returns their `counts` lines, for the caller's counts
    output."""
    windows = (keyed_by_first_field(batches, Types.LONG(), PAYLOAD)
               .process(CloseWindows(config), output_type=WINDOW_ROWS)
               .name("security: windows")
               .uid(windowed_uid("security-windows", config.job.window_seconds)))
    events = (keyed_by_first_field(windows, Types.INT(), PAYLOAD)
              .process(TrackEvents(config), output_type=Types.STRING())
              .name("security: events")
              .uid(windowed_uid("security-events", config.job.window_seconds)))
    for _, name, _, tag in TABLES:
        sinks.text(name, side_output(windows, tag))
    sinks.text(out.SCANS, side_output(windows, SCANS))
    sinks.text(out.RISK_OUTPUT, side_output(windows, RISK))
    sinks.text(out.REJECTED_OUTPUT, side_output(events, REJECTED))
    sinks.text(out.EVENTS, events.union(side_output(windows, EVENTS)))
    return side_output(events, COUNTS)
