"""The security and dependency views in Flink: SQL for the windowed aggregates, thin Python
functions over job.security for the decisions and the events.

    conversations (oriented by job.attribute) --> table security_connections (event time:
    window); security_records: their records in the logged direction (from the client, and
    REJECTed ones from the server)
    SQL TUMBLE over them:
      connections: dependencies, exposure, internet_egress -----------> table outputs
      dependencies    --keyed by edge-------> TrackDependencies -------> security_events
      exposure        --keyed by app--------> TrackExposure -----------> security_events
      records: REJECTs/source --keyed by dst app--> SummarizeRejects --> rejected, events
      records per source addr --------------> ClassifyScans -----------> scans, events,
      one row per window (the clock, broadcast to the keyed functions)    scan targets
    SQL TUMBLE over connections + scan targets --> ScoreRisk ----------> risk

The keyed functions get SQL window results, which arrive in no window order when the watermark
jumps several windows; their rows wait in state for an event-time timer at the window's end, so
each key sees its windows in order. The window clock (first and latest window of the job) is
broadcast state: the warm-up counts from the job's first window, whatever keys an instance has.
"""
from collections import defaultdict

from pyflink.common import Row, Types
from pyflink.datastream import (DataStream, KeyedBroadcastProcessFunction, MapFunction,
                                OutputTag, ProcessFunction, RuntimeContext)
from pyflink.datastream.state import (ListStateDescriptor, MapStateDescriptor,
                                      ValueStateDescriptor)
from pyflink.table import Schema, StreamTableEnvironment

from job import security
from job.config import Config
from job.flink.operators import MAX_WATERMARK
from job.flink.streams import keyed_by_first_field, side_output, stable_sql_uids
from schemas import security as out
from schemas.fields import Schema as RecordSchema
from schemas.flink import row_type

EVENTS = OutputTag("security-events", Types.STRING())
SCAN_TARGETS = OutputTag("scan-targets", row_type(out.SCAN_TARGET))

# Broadcast state: "first" / "latest" -> window start (epoch seconds) seen by the job.
CLOCK_STATE = MapStateDescriptor("security-window-clock", Types.STRING(), Types.LONG())
CLOCK_ROW = Types.ROW([Types.LONG()])

EDGE_STATE = ValueStateDescriptor("dependency-edge", Types.ROW_NAMED(
    list(security.Edge._fields), [Types.STRING(), Types.STRING(), Types.INT(), Types.INT()]
    + [Types.LONG()] * 4))
EXPOSURE_STATE = MapStateDescriptor("exposure-seen", Types.STRING(), Types.ROW_NAMED(
    list(security.Seen._fields), [Types.LONG(), Types.LONG()]))
REJECT_HISTORY = MapStateDescriptor("reject-history", Types.LONG(), Types.LONG())

UNOWNED = ", ".join(f"'{app}'" for app in security.UNOWNED_APPS)
OWNED_CLIENT_AND_SERVER = (f"`client_app` NOT IN ({UNOWNED}) "
                           f"AND `server_app` NOT IN ({UNOWNED})")
# Which connections each view reads (docs/security.md).
DEPENDENCY_ROWS = f"`action` = 'ACCEPT' AND {OWNED_CLIENT_AND_SERVER}"
EXPOSURE_ROWS = (f"`action` = 'ACCEPT' AND `client_app` = '{out.INTERNET}' "
                 f"AND `server_app` NOT IN ({UNOWNED})")
EGRESS_ROWS = f"`server_app` = '{out.INTERNET}' AND `client_app` <> '{out.INTERNET}'"
_VOLUME = "SUM(`flows`) AS `flows`, SUM(`packets`) AS `packets`, SUM(`bytes`) AS `bytes`"
# The risk inputs: one column per factor (schemas.security.RISK_INPUT) before aggregation.
_RISK_COLUMNS = {"exposed": "STRING", "rejected_flows": "BIGINT", "scan_source": "STRING",
                 "egress_bytes": "BIGINT", "dependency": "STRING", "dependent": "STRING"}


def _label(*columns) -> str:
    """SQL for "a b c" over columns, NULL as "-" (keys must not be NULL)."""
    return "CONCAT_WS(' ', " + ", ".join(
        f"COALESCE(CAST(`{c}` AS STRING), '-')" for c in columns) + ")"


def _port_label(port: str) -> str:
    """SQL for job.security.port_label: "port/protocol"."""
    return (f"CONCAT(COALESCE(CAST(`{port}` AS STRING), '-'), '/', "
            f"COALESCE(CAST(`protocol` AS STRING), '-'))")


def _fields(schema: RecordSchema, row) -> dict:
    return dict(zip(schema.names, row))


class Clock:
    def __init__(self, state):
        self.first = state.get("first")
        self.latest = state.get("latest")


class WindowedKeyedEvents(KeyedBroadcastProcessFunction):
    """Base: holds each key's SQL window rows until event time passes the window, then calls
    on_window(window_start, rows, clock, timers) per window in order (rows as dicts of
    SCHEMA), and on_time(timestamp, clock, ended, pending) after every timer.

    `ended`: the input ended and the final watermark fires every timer, in timestamp order,
    but timers registered meanwhile may not fire; `pending`: the window starts still held."""
    SCHEMA: RecordSchema
    PENDING: ListStateDescriptor

    def __init__(self, config: Config):
        self.window_seconds = config.job.window_seconds
        self.rules = config.security

    def open(self, runtime_context: RuntimeContext):
        self.pending = runtime_context.get_list_state(self.PENDING)

    def window_end_ms(self, window_start: int) -> int:
        return (window_start + self.window_seconds) * 1000

    def process_broadcast_element(self, row, ctx):
        state = ctx.get_broadcast_state(CLOCK_STATE)
        window = row[0]
        first, latest = state.get("first"), state.get("latest")
        if first is None or window < first:
            state.put("first", window)
        if latest is None or window > latest:
            state.put("latest", window)

    def process_element(self, row, ctx):
        self.pending.add(row)
        ctx.timer_service().register_event_time_timer(self.window_end_ms(row[0]) - 1)

    def on_timer(self, timestamp: int, ctx):
        clock = Clock(ctx.get_broadcast_state(CLOCK_STATE))
        timers = ctx.timer_service()
        due, kept = defaultdict(list), []
        for row in self.pending.get():
            if self.window_end_ms(row[0]) - 1 <= timestamp:
                due[row[0]].append(_fields(self.SCHEMA, row))
            else:
                kept.append(row)
        if due:
            self.pending.update(kept)
        for window_start in sorted(due):
            yield from self.on_window(window_start, due[window_start], clock, timers)
        yield from self.on_time(timestamp, clock, timers.current_watermark() >= MAX_WATERMARK,
                                {row[0] for row in kept})

    def on_window(self, window_start, rows, clock, timers):
        raise NotImplementedError

    def on_time(self, timestamp, clock, ended, pending):
        return ()


class TrackDependencies(WindowedKeyedEvents):
    """Keyed by edge (client app, server app, port, protocol): new_dependency the first time
    after the warm-up, dependency_gone after dependency_silence_seconds without traffic."""
    SCHEMA = out.DEPENDENCY
    PENDING = ListStateDescriptor("dependency-windows", row_type(out.DEPENDENCY))

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        self.edge = runtime_context.get_state(EDGE_STATE)

    def deadline(self, edge: security.Edge) -> int:
        return security.silence_deadline(edge.last_seen, self.window_seconds,
                                         self.rules.dependency_silence_seconds)

    def on_window(self, window_start, rows, clock, timers):
        stored = self.edge.value()
        edge = None if stored is None else security.Edge(*stored)
        for r in rows:
            if edge is None:
                if security.warmed_up(window_start, clock.first, self.rules.warmup_seconds):
                    yield security.event_line(out.NEW_DEPENDENCY, window_start, tuple(
                        window_start if f == "first_seen" else r[f]
                        for f in out.NEW_DEPENDENCY.names[2:]))
                edge = security.Edge(r["client_app"], r["server_app"], r["port"],
                                     r["protocol"], window_start, window_start, 0, 0)
            edge = edge.seen(window_start, r["flows"], r["bytes"])
        self.edge.update(Row(*edge))
        # One silence timer per edge: a timer per window would fire only to find it moved.
        if stored is not None:
            timers.delete_event_time_timer(self.deadline(security.Edge(*stored)) * 1000 - 1)
        timers.register_event_time_timer(self.deadline(edge) * 1000 - 1)

    def on_time(self, timestamp, clock, ended, pending):
        stored = self.edge.value()
        if stored is None:
            return
        edge = security.Edge(*stored)
        deadline = self.deadline(edge)
        if ended:
            # Silent if the job's data went on past the deadline and no window of this edge
            # before it is still held (its timer may come later, or never if set just now).
            silent = deadline <= clock.latest and all(w >= deadline for w in pending)
        else:
            silent = deadline * 1000 - 1 <= timestamp
        if silent:
            yield security.event_line(out.DEPENDENCY_GONE, deadline, edge)
            self.edge.clear()


class TrackExposure(WindowedKeyedEvents):
    """Keyed by app: exposure_new when a resource accepts internet traffic on a port (and
    protocol) it did not before (after the warm-up); forgotten after exposure_silence_seconds."""
    SCHEMA = out.EXPOSURE
    PENDING = ListStateDescriptor("exposure-windows", row_type(out.EXPOSURE))

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        self.seen = runtime_context.get_map_state(EXPOSURE_STATE)

    def deadline_ms(self, last_seen: int) -> int:
        return security.silence_deadline(last_seen, self.window_seconds,
                                         self.rules.exposure_silence_seconds) * 1000

    def known_ports(self, window_start: int) -> set:
        """Ports of the app seen before this window (resource key: "resource port/protocol")."""
        return {key.split(" ", 1)[1] for key, seen in self.seen.items()
                if security.Seen(*seen).first_seen < window_start}

    def on_window(self, window_start, rows, clock, timers):
        known_ports = None   # read from state only for an exposure_new: the app's every port
        warm = security.warmed_up(window_start, clock.first, self.rules.warmup_seconds)
        for r in sorted(rows, key=lambda r: (r["resource"], str(r["port"]), str(r["protocol"]))):
            port = security.port_label(r["port"], r["protocol"])
            key = f"{r['resource']} {port}"
            stored = self.seen.get(key)
            if stored is None:
                if warm:
                    if known_ports is None:
                        known_ports = self.known_ports(window_start)
                    yield security.event_line(out.EXPOSURE_NEW, window_start, (
                        r["app"], r["resource"], r["port"], r["protocol"], r["flows"],
                        r["internet_clients"], int(port in known_ports)))
                seen = security.Seen(window_start, window_start)
            else:
                seen = security.Seen(*stored)
            self.seen.put(key, Row(*seen._replace(last_seen=max(seen.last_seen, window_start))))
        timers.register_event_time_timer(self.deadline_ms(window_start) - 1)

    def on_time(self, timestamp, clock, ended, pending):
        if not ended:
            expired = [key for key, seen in self.seen.items()
                       if self.deadline_ms(security.Seen(*seen).last_seen) - 1 <= timestamp]
            for key in expired:
                self.seen.remove(key)
        return ()


class SummarizeRejects(WindowedKeyedEvents):
    """Keyed by destination app: `rejected` rows per port, protocol and source class with top
    sources, and reject_spike against the app's own previous windows."""
    SCHEMA = out.REJECT_SOURCE
    PENDING = ListStateDescriptor("reject-windows", row_type(out.REJECT_SOURCE))

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        self.history = runtime_context.get_map_state(REJECT_HISTORY)

    def on_window(self, window_start, rows, clock, timers):
        rules = self.rules
        app = rows[0]["app"]
        sources = [security.RejectSource(*(r[f] for f in out.REJECT_SOURCE.names[2:]))
                   for r in rows]
        flows = sum(s.flows for s in sources)
        spike = False
        if app not in security.UNOWNED_APPS:
            baseline_flows, baseline_windows = security.reject_baseline(
                dict(self.history.items()), window_start, clock.first, self.window_seconds,
                rules.reject_baseline_windows)
            spike = security.is_spike(flows, baseline_flows, baseline_windows,
                                      rules.reject_spike_factor, rules.reject_spike_min_flows)
        for row in security.reject_rows(window_start, app, sources, rules.reject_top_sources,
                                        spike):
            yield security.json_line(out.REJECTED, row)
        if spike:
            yield EVENTS, security.event_line(out.REJECT_SPIKE, window_start, (
                app, flows, baseline_flows, baseline_windows)
                + security.spike_evidence(sources, rules.reject_top_sources))
        self.history.put(window_start, flows)
        horizon = window_start - rules.reject_baseline_windows * self.window_seconds
        for old in [w for w in self.history.keys() if w < horizon]:
            self.history.remove(old)


class ClassifyScans(ProcessFunction):
    """Per source address and window: a `scans` row, a port_scan / host_sweep alert, and for
    an alert the apps it reached (to the risk view)."""

    def __init__(self, config: Config):
        sec = config.security
        self.rules = security.ScanRules(sec.port_scan_min_ports, sec.port_scan_max_hosts,
                                        sec.host_sweep_min_hosts, sec.host_sweep_max_ports,
                                        sec.scan_min_reject_percent, sec.evidence_samples)

    def process_element(self, row, ctx):
        r = _fields(out.SCAN_CANDIDATE, row)
        window_start = r["window_start"]
        evidence = security.scan_evidence(
            r["src_addr"], r["src_app"], r["hosts"], r["ports"], r["flows"],
            r["rejected_flows"], r["target_apps"], r["host_list"], r["port_list"],
            self.rules.evidence_samples)
        pattern = security.classify_scan(r["hosts"], r["ports"],
                                         security.reject_percent(r["rejected_flows"], r["flows"]),
                                         self.rules)
        yield security.json_line(out.SCAN, (window_start,) + evidence + (pattern or "",))
        if pattern:
            yield EVENTS, security.event_line(out.SCAN_ALERTS[pattern], window_start, evidence)
            for app in security.scanned_apps(r["target_apps"]):
                yield SCAN_TARGETS, Row(window_start, app, r["src_addr"])


class ScoreRisk(MapFunction):
    def __init__(self, config: Config):
        self.weights = security.parse_factors(config.security.risk_weights)
        self.scales = security.parse_factors(config.security.risk_scales)

    def map(self, row):
        score, parts = security.risk_score(_fields(out.RISK_INPUT, row), self.weights,
                                           self.scales)
        return security.json_line(out.RISK, tuple(row) + (score, parts))


def add_security_views(t_env: StreamTableEnvironment, conversations: DataStream, sinks,
                       config: Config) -> None:
    """Adds the views of docs/security.md over the conversations (schemas.outputs.CONVERSATION,
    with the job's watermarks) and their outputs to `sinks`."""
    _event_time_view(t_env, "security_connections", conversations)
    # The records in their logged direction, as the rejected and scans views count them: those
    # from the client, and REJECTed ones from the server (answers are not probes: a server's
    # records to its clients' ephemeral ports would look like port scans).
    t_env.create_temporary_view("security_records", t_env.sql_query(f"""
        SELECT `win_start`, `rowtime`, `client_app` AS `src_app`, `client_addr` AS `src_addr`,
               `server_app` AS `dst_app`, `server_addr` AS `dst_addr`,
               `service_port` AS `dst_port`, `protocol`, `action`, `client_flows` AS `flows`,
               `client_packets` AS `packets`, `client_bytes` AS `bytes`
        FROM security_connections WHERE `client_flows` > 0
        UNION ALL
        SELECT `win_start`, `rowtime`, `server_app`, `server_addr`, `client_app`, `client_addr`,
               `client_port`, `protocol`, `action`, `flows` - `client_flows`,
               `packets` - `client_packets`, `bytes` - `client_bytes`
        FROM security_connections WHERE `action` = 'REJECT' AND `flows` > `client_flows`"""))
    windows = _tumble("security_connections", config.job.window_seconds)
    records = _tumble("security_records", config.job.window_seconds)

    dependencies = _view(t_env, "security_dependencies", f"""
        SELECT `win_start` AS `window_start`, `client_app`, `server_app`,
               `service_port` AS `port`, `protocol`, {_VOLUME},
               COUNT(DISTINCT `client_addr`) AS `clients`,
               COUNT(DISTINCT `server_addr`) AS `servers`
        FROM {windows} WHERE {DEPENDENCY_ROWS}
        GROUP BY `window_start`, `window_end`, `win_start`, `client_app`, `server_app`,
                 `service_port`, `protocol`""")
    exposure = _view(t_env, "security_exposure", f"""
        SELECT `win_start` AS `window_start`, `server_app` AS `app`,
               `server_resource` AS `resource`, `service_port` AS `port`, `protocol`, {_VOLUME},
               COUNT(DISTINCT `client_addr`) AS `internet_clients`
        FROM {windows} WHERE {EXPOSURE_ROWS}
        GROUP BY `window_start`, `window_end`, `win_start`, `server_app`, `server_resource`,
                 `service_port`, `protocol`""")
    egress = t_env.sql_query(f"""
        SELECT `win_start` AS `window_start`, `client_app` AS `app`, `service_port` AS `port`,
               `protocol`, `action`, {_VOLUME}, SUM(`client_bytes`) AS `bytes_sent`,
               COUNT(DISTINCT `server_addr`) AS `destinations`
        FROM {windows} WHERE {EGRESS_ROWS}
        GROUP BY `window_start`, `window_end`, `win_start`, `client_app`, `service_port`,
                 `protocol`, `action`""")
    sinks.table(out.DEPENDENCIES, t_env, dependencies, out.DEPENDENCY)
    sinks.table(out.EXPOSURE_OUTPUT, t_env, exposure, out.EXPOSURE)
    sinks.table(out.EGRESS_OUTPUT, t_env, egress, out.INTERNET_EGRESS)

    rejects = _view(t_env, "security_rejects", f"""
        SELECT `win_start` AS `window_start`, `dst_app` AS `app`, `dst_port` AS `port`,
               `protocol`, `src_app`, `src_addr`, {_VOLUME}
        FROM {records} WHERE `action` = 'REJECT'
        GROUP BY `window_start`, `window_end`, `win_start`, `dst_app`, `dst_port`, `protocol`,
                 `src_app`, `src_addr`""")
    # One row per window: the job's event-time clock for the keyed functions.
    clock = _rows(t_env, t_env.sql_query(
        f"SELECT `win_start` FROM {windows} GROUP BY `window_start`, `window_end`, `win_start`"),
        CLOCK_ROW, "window-clock")

    def keyed_events(view, key_columns, schema, function, uid):
        keyed = _keyed(t_env, view, _label(*key_columns), schema, uid)
        return (keyed.connect(clock.broadcast(CLOCK_STATE))
                .process(function, output_type=Types.STRING())
                .name(f"security: {uid}").uid(f"security-{uid}"))

    new_and_gone = keyed_events("security_dependencies",
                                ("client_app", "server_app", "port", "protocol"),
                                out.DEPENDENCY, TrackDependencies(config), "dependency-events")
    exposure_new = keyed_events("security_exposure", ("app",), out.EXPOSURE,
                                TrackExposure(config), "exposure-events")
    rejected = keyed_events("security_rejects", ("app",), out.REJECT_SOURCE,
                            SummarizeRejects(config), "rejects")

    sec = config.security
    candidates = t_env.sql_query(f"""
        SELECT `win_start` AS `window_start`, `src_addr`, `src_app`,
               COUNT(DISTINCT `dst_addr`) AS `hosts`, COUNT(DISTINCT `dst_port`) AS `ports`,
               SUM(`flows`) AS `flows`,
               SUM(CASE WHEN `action` = 'REJECT' THEN `flows` ELSE 0 END) AS `rejected_flows`,
               LISTAGG(DISTINCT `dst_app`) AS `target_apps`,
               LISTAGG(DISTINCT `dst_addr`) AS `host_list`,
               LISTAGG(DISTINCT CAST(`dst_port` AS STRING)) AS `port_list`
        FROM {records}
        GROUP BY `window_start`, `window_end`, `win_start`, `src_addr`, `src_app`
        HAVING COUNT(DISTINCT `dst_addr`) >= {sec.scan_report_min_targets}
            OR COUNT(DISTINCT `dst_port`) >= {sec.scan_report_min_targets}""")
    scans = (_rows(t_env, candidates, row_type(out.SCAN_CANDIDATE), "scan-candidates")
             .process(ClassifyScans(config), output_type=Types.STRING())
             .name("security: scans").uid("security-scans"))

    sinks.text(out.REJECTED_OUTPUT, rejected)
    sinks.text(out.SCANS, scans)
    sinks.text(out.EVENTS, new_and_gone.union(exposure_new, side_output(rejected, EVENTS),
                                              side_output(scans, EVENTS)))

    _event_time_view(t_env, "security_scan_targets", side_output(scans, SCAN_TARGETS))
    t_env.create_temporary_view("security_risk_inputs", t_env.sql_query(f"""
        {_risk_branch("server_app", EXPOSURE_ROWS, exposed=_port_label("service_port"))}
        UNION ALL {_risk_branch("dst_app", "`action` = 'REJECT'", rejected_flows="`flows`",
                                source="security_records")}
        UNION ALL {_risk_branch("client_app", EGRESS_ROWS, egress_bytes="`client_bytes`")}
        UNION ALL {_risk_branch("client_app", DEPENDENCY_ROWS,
                                dependency=_label("server_app", "service_port", "protocol"))}
        UNION ALL {_risk_branch("server_app", DEPENDENCY_ROWS, dependent="`client_app`")}
        UNION ALL {_risk_branch("app", "TRUE", scan_source="`src_addr`",
                                source="security_scan_targets")}"""))
    risk = t_env.sql_query(f"""
        SELECT `win_start` AS `window_start`, `app`,
               COUNT(DISTINCT `exposed`) AS `exposed_ports`,
               LISTAGG(DISTINCT `exposed`) AS `exposed_port_list`,
               SUM(`rejected_flows`) AS `rejected_flows`,
               COUNT(DISTINCT `scan_source`) AS `scan_sources`,
               SUM(`egress_bytes`) AS `egress_bytes`,
               COUNT(DISTINCT `dependency`) AS `dependencies`,
               COUNT(DISTINCT `dependent`) AS `dependents`
        FROM {_tumble("security_risk_inputs", config.job.window_seconds)}
        GROUP BY `window_start`, `window_end`, `win_start`, `app`""")
    sinks.text(out.RISK_OUTPUT, _rows(t_env, risk, row_type(out.RISK_INPUT), "risk-inputs")
               .map(ScoreRisk(config), output_type=Types.STRING())
               .name("security: risk").uid("security-risk"))


def _risk_branch(app_column: str, where: str, source: str = "security_connections",
                 **values) -> str:
    """One SELECT of the risk inputs: the app, one factor's value, the others empty."""
    columns = ", ".join(
        f"CAST({values.get(name, 'NULL' if kind == 'STRING' else '0')} AS {kind}) AS `{name}`"
        for name, kind in _RISK_COLUMNS.items())
    return (f"SELECT `win_start`, `rowtime`, `{app_column}` AS `app`, {columns} FROM {source} "
            f"WHERE ({where}) AND `{app_column}` NOT IN ({UNOWNED})")


def _tumble(view: str, window_seconds: int) -> str:
    return (f"TABLE(TUMBLE(TABLE {view}, DESCRIPTOR(`rowtime`), "
            f"INTERVAL '{window_seconds}' SECOND))")


def _event_time_view(t_env: StreamTableEnvironment, name: str, stream: DataStream) -> None:
    """A view of typed rows whose event time is their `win_start` (epoch seconds), with the
    stream's watermarks (element timestamps are not meaningful here)."""
    t_env.create_temporary_view(name, t_env.from_data_stream(
        stream, Schema.new_builder()
        .column_by_expression("rowtime", "TO_TIMESTAMP_LTZ(`win_start` * 1000, 3)")
        .watermark("rowtime", "SOURCE_WATERMARK()")
        .build()))


def _view(t_env: StreamTableEnvironment, name: str, sql: str):
    table = t_env.sql_query(sql)
    t_env.create_temporary_view(name, table)
    return table


def _rows(t_env: StreamTableEnvironment, table, type_info, uid: str) -> DataStream:
    """An append-only table as a stream of typed rows; the conversion operator gets a name
    and uid like every other."""
    stream = t_env.to_append_stream(table, type_info)
    conversion = stream._j_data_stream.getTransformation()
    for query in conversion.getInputs():   # one: the query's last operator
        stable_sql_uids(query, f"security-{uid}")
    conversion.setName(f"security: {uid}")
    conversion.setUid(f"security-{uid}")
    return stream


def _keyed(t_env: StreamTableEnvironment, view: str, key_sql: str, schema: RecordSchema,
           uid: str):
    """The view's rows (columns named as `schema`) keyed by the string key_sql, without a
    Python key selector (see job.flink.streams.keyed_by_first_field)."""
    columns = ", ".join(f"`{name}`" for name in schema.names)
    value_type = row_type(schema)
    stream = _rows(
        t_env, t_env.sql_query(f"SELECT {key_sql} AS `key`, ROW({columns}) AS `row` FROM {view}"),
        Types.ROW([Types.STRING(), value_type]), f"{uid}-rows")
    return keyed_by_first_field(stream, Types.STRING(), value_type)
