"""One self-contained HTML page about an output folder. Pure Python.

The numbers come from the query views (job.query); the page embeds them as JSON and draws them
with inline JavaScript and SVG: no network resource, and a Content-Security-Policy that forbids
loading any. Node positions of the dependency graph are computed here, so the layout is
deterministic and testable without a browser.
"""
import html
import json
import math
import os
from functools import reduce

from connectors.s3 import is_s3
from job.query import Outputs
from schemas.security import UNOWNED_APPS

MAX_EDGES = 80          # more is unreadable; the rest are counted on the page
TOP_APPS = 6            # lines in "bytes over time"
MAX_POINTS = 360        # time buckets per line chart
TOP_ROWS = 15           # rows of each table
VIEWS = ("aggregates", "counts")   # all the page reads (for S3, all that is copied)


# ---------------------------------------------------------------- graph layout

def _ranks(nodes, edges):
    """Columns: longest path from the callers, with cycles broken at back edges of a DFS that
    starts from the internet and then from the apps in name order."""
    successors = {n: sorted({d for s, d in edges if s == n and d != n}) for n in nodes}
    roots = sorted(nodes, key=lambda n: (n != "internet", n))
    state, postorder, back = {}, [], set()
    for root in roots:
        if root in state:
            continue
        state[root] = "open"
        stack = [(root, iter(successors[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = "done"
                postorder.append(node)
                stack.pop()
            elif state.get(child) == "open":
                back.add((node, child))
            elif child not in state:
                state[child] = "open"
                stack.append((child, iter(successors[child])))
    rank = {n: 0 for n in nodes}
    for node in reversed(postorder):          # a topological order once back edges are gone
        for child in successors[node]:
            if (node, child) not in back:
                rank[child] = max(rank[child], rank[node] + 1)
    return rank


def layout_graph(nodes, edges, column_width=230, row_height=64, margin=70):
    """{node: (x, y)} and the drawing's (width, height): callers left of callees, each column
    ordered by the mean position of its callers."""
    rank = _ranks(nodes, edges)
    columns = {}
    for node in sorted(nodes):
        columns.setdefault(rank[node], []).append(node)
    position = {}
    for r in sorted(columns):
        def barycenter(node):
            callers = [position[s] for s, d in edges if d == node and s in position and s != node]
            return (sum(callers) / len(callers) if callers else math.inf, node)
        columns[r].sort(key=barycenter)
        for i, node in enumerate(columns[r]):
            position[node] = i
    tallest = max((len(c) for c in columns.values()), default=1)
    coords = {}
    for r, column in columns.items():
        offset = (tallest - len(column)) * row_height / 2
        for i, node in enumerate(column):
            coords[node] = (margin + r * column_width, margin + offset + i * row_height)
    width = 2 * margin + max(columns, default=0) * column_width + 120
    height = 2 * margin + (tallest - 1) * row_height + 40   # room for arcs under the apps
    return coords, width, height


# ---------------------------------------------------------------- data

def _rows(result):
    return [dict(zip(result.columns, row)) for row in result.rows]


def _bucket_seconds(window_starts):
    """Stored window size (the gcd of the gaps between windows), merged so that a chart has at
    most MAX_POINTS points."""
    gaps = [b - a for a, b in zip(window_starts, window_starts[1:])]
    window = reduce(math.gcd, gaps, 0) or 60
    span = window_starts[-1] - window_starts[0] + window if window_starts else window
    return window * max(1, math.ceil(span / window / MAX_POINTS))


def _graph(outputs):
    edges = _rows(outputs.ask("top-talkers", limit=0))
    shown = edges[:MAX_EDGES]
    nodes = sorted({e["src_app"] for e in shown} | {e["dst_app"] for e in shown})
    coords, width, height = layout_graph(nodes, [(e["src_app"], e["dst_app"]) for e in shown])
    node_bytes = {n: 0 for n in nodes}
    for e in shown:
        node_bytes[e["src_app"]] += e["bytes"]
        if e["dst_app"] != e["src_app"]:
            node_bytes[e["dst_app"]] += e["bytes"]
    return {
        "width": width, "height": height, "omitted_edges": len(edges) - len(shown),
        "nodes": [{"id": n, "x": coords[n][0], "y": coords[n][1], "bytes": node_bytes[n],
                   "kind": n if n in UNOWNED_APPS else "app"} for n in nodes],
        "edges": [{"src": e["src_app"], "dst": e["dst_app"], "bytes": e["bytes"],
                   "flows": e["flows"], "rejected_flows": e["rejected_flows"],
                   "reject_share": e["rejected_flows"] / e["flows"] if e["flows"] else 0.0}
                  for e in shown],
    }


def _series(outputs, bucket, times):
    unowned = ", ".join(f"'{a}'" for a in UNOWNED_APPS)
    per_app = """
        SELECT window_start, src_app AS app, bytes FROM aggregates
        UNION ALL
        SELECT window_start, dst_app AS app, bytes FROM aggregates WHERE dst_app <> src_app"""
    top = [r[0] for r in outputs.sql(f"""
        SELECT app FROM ({per_app}) WHERE app NOT IN ({unowned})
        GROUP BY app ORDER BY sum(bytes) DESC, app LIMIT {TOP_APPS}""").rows]
    values = {(app, t): b for t, app, b in outputs.sql(f"""
        SELECT window_start - window_start % {bucket} AS t, app, sum(bytes)
        FROM ({per_app}) WHERE list_contains($apps, app) GROUP BY ALL""", {"apps": top}).rows}
    bytes_over_time = [{"name": app, "values": [values.get((app, t), 0) for t in times]}
                       for app in top]
    rates = {t: (owned, unattributed) for t, owned, unattributed in outputs.sql(f"""
        SELECT window_start - window_start % {bucket} AS t,
               sum(flows * ((src_app NOT IN ({unowned}))::INT + (dst_app NOT IN ({unowned}))::INT)),
               sum(flows * ((src_app = 'unattributed')::INT + (dst_app = 'unattributed')::INT))
        FROM aggregates GROUP BY ALL""").rows}
    attribution = [100.0 * rates[t][0] / (rates[t][0] + rates[t][1])
                   if t in rates and rates[t][0] + rates[t][1] else None for t in times]
    return bytes_over_time, attribution


def _totals(outputs):
    flows, nbytes = outputs.sql("SELECT COALESCE(sum(flows), 0), COALESCE(sum(bytes), 0) "
                                "FROM aggregates").rows[0]
    totals = {"flows": flows, "bytes": nbytes}
    counts = _rows(outputs.sql(
        "SELECT count(*) AS records, sum(flows_aggregated) AS flows_aggregated, "
        "sum(flows_late) AS flows_late, sum(dead_letter) AS dead_letter, "
        "sum(src_owned + dst_owned) AS owned, sum(src_internet + dst_internet) AS internet, "
        "sum(src_unattributed + dst_unattributed) AS unattributed FROM counts"))[0]
    if counts["records"]:
        totals.update(ends=2 * (counts["flows_aggregated"] + counts["flows_late"]),
                      owned=counts["owned"], internet=counts["internet"],
                      unattributed=counts["unattributed"], late=counts["flows_late"],
                      dead_letter=counts["dead_letter"])
    return totals


def report_data(outputs: Outputs, source: str) -> dict:
    window_starts = [r[0] for r in outputs.sql(
        "SELECT DISTINCT window_start FROM aggregates ORDER BY 1").rows]
    bucket = _bucket_seconds(window_starts)
    times = (list(range(window_starts[0] - window_starts[0] % bucket, window_starts[-1] + 1,
                        bucket)) if window_starts else [])
    bytes_over_time, attribution = _series(outputs, bucket, times)
    return {
        "source": source,
        "first_window": window_starts[0] if window_starts else None,
        "last_window": window_starts[-1] if window_starts else None,
        "totals": _totals(outputs),
        "graph": _graph(outputs),
        "bucket_seconds": bucket,
        "times": times,
        "bytes_over_time": bytes_over_time,
        "attribution_rate": attribution,
        "rejects": _rows(outputs.ask("rejects", limit=TOP_ROWS)),
        "exposure": _rows(outputs.ask("exposure", limit=TOP_ROWS)),
        "egress": _rows(outputs.ask("egress", limit=TOP_ROWS)),
        "cross_region": _rows(outputs.ask("region-pairs", cross_only=True, limit=TOP_ROWS)),
    }


# ---------------------------------------------------------------- page

def render_html(data: dict) -> str:
    # JSON inside <script>: "<" escaped so no value can close the element.
    embedded = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return (_PAGE.replace("__TITLE__", html.escape(f"flowdredge report: {data['source']}"))
            .replace("__DATA__", embedded).replace("__SCRIPT__", _SCRIPT))


def write_report(output: str, html_path: str = None, cache_dir: str = None) -> str:
    """Writes the report of an output folder (local or s3://) and returns its path (default
    OUTPUT/report.html, or ./report.html for S3)."""
    with Outputs(output, VIEWS, cache_dir) as outputs:
        page = render_html(report_data(outputs, output))
    path = html_path or ("report.html" if is_s3(output) else os.path.join(output, "report.html"))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
    return path


_PAGE = """<!DOCTYPE html>
<html lang="en" data-errors="[]">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<title>__TITLE__</title>
<script>
// Collects every error and console.error into <html data-errors>, for people and for tests.
(function () {
  var root = document.documentElement;
  function record(message) {
    var errors = JSON.parse(root.getAttribute("data-errors") || "[]");
    errors.push(String(message));
    root.setAttribute("data-errors", JSON.stringify(errors));
  }
  window.addEventListener("error", function (e) {
    record((e.message || "error") + " at " + (e.filename || "?") + ":" + (e.lineno || "?"));
  });
  window.addEventListener("unhandledrejection", function (e) { record(e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) {
    record("blocked by the page's security policy: " + e.blockedURI);
  });
  var consoleError = console.error;
  console.error = function () {
    record(Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };
  window.reportError = record;
})();
</script>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1320px;
         padding: 0 24px 48px; color: #1d2330; background: #fbfbfd; }
  h1 { font-size: 22px; margin: 20px 0 2px; }
  h2 { font-size: 17px; margin: 28px 0 6px; border-bottom: 1px solid #dde1ea; padding-bottom: 4px; }
  .note { color: #5b6475; margin: 2px 0 8px; }
  .cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 12px; }
  .card { background: #fff; border: 1px solid #dde1ea; border-radius: 6px; padding: 8px 14px; }
  .card b { display: block; font-size: 19px; }
  .panel { background: #fff; border: 1px solid #dde1ea; border-radius: 6px; overflow-x: auto; }
  .row { display: flex; flex-wrap: wrap; gap: 20px; }
  .row > div { flex: 1 1 560px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #eef0f5;
           white-space: nowrap; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.bar { width: 30%; }
  td.bar div { background: #7d9bd1; height: 10px; border-radius: 2px; }
  .empty { color: #5b6475; padding: 8px 10px; }
  .edge { fill: none; opacity: 0.75; }
  .node circle { stroke: #fff; stroke-width: 2; }
  .node text { font-size: 12px; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
  svg.graph.focus .edge { opacity: 0.08; }
  svg.graph.focus .edge.near { opacity: 0.95; }
  .axis { stroke: #9aa3b5; }
  .grid { stroke: #eef0f5; }
  .tick { font-size: 11px; fill: #5b6475; }
  .legend { display: flex; flex-wrap: wrap; gap: 14px; padding: 6px 10px; font-size: 12px; }
  .legend i { display: inline-block; width: 14px; height: 4px; margin-right: 5px;
              vertical-align: middle; }
  #render-failure { background: #fdecea; border: 1px solid #c62828; padding: 8px 12px;
                    margin-top: 12px; white-space: pre-wrap; }
</style>
</head>
<body>
<h1>flowdredge report</h1>
<p class="note" id="subtitle"></p>
<div class="cards" id="summary"></div>

<h2>App dependency graph</h2>
<p class="note">Edges run from caller to callee; width grows with bytes; color is the share of
flows REJECTed (green none, red 10 % or more). Hover an app to see its edges.</p>
<div class="panel" id="graph"></div>

<h2>Bytes over time, top apps</h2>
<p class="note">Bytes sent or received by each app, per <span id="bucket"></span>.</p>
<div class="panel" id="bytes-over-time"></div>

<h2>Top REJECTs</h2>
<div class="panel" id="rejects"></div>

<h2>Internet exposure</h2>
<div class="row">
  <div><p class="note">From the internet, by app and port</p>
       <div class="panel" id="exposure"></div></div>
  <div><p class="note">To the internet, by app</p>
       <div class="panel" id="egress"></div></div>
</div>

<h2>Cross-region traffic</h2>
<div class="panel" id="cross-region"></div>

<h2>Attribution rate over time</h2>
<p class="note">Share of private-address flow ends attributed to an owner (internet ends have none
to find).</p>
<div class="panel" id="attribution"></div>

<script type="application/json" id="report-data">__DATA__</script>
<script>
__SCRIPT__
</script>
</body>
</html>
"""

_SCRIPT = r"""
"use strict";
var SVG_NS = "http://www.w3.org/2000/svg";
var PALETTE = ["#3366cc", "#dc7633", "#2e9d5b", "#a4508b", "#c0392b", "#17a2b8", "#7f8c8d"];

function el(tag, attrs, text) {
  var node = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
  if (text !== undefined) node.textContent = text;
  return node;
}
function svg(tag, attrs, text) {
  var node = document.createElementNS(SVG_NS, tag);
  Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
  if (text !== undefined) node.textContent = text;
  return node;
}
function fmtInt(n) {
  return n === null || n === undefined ? "" : Number(n).toLocaleString("en-US");
}
function fmtBytes(n) {
  var units = ["B", "KB", "MB", "GB", "TB", "PB"], i = 0;
  n = Number(n);
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}
function fmtPct(x) { return x === null || x === undefined ? "n/a" : x.toFixed(1) + " %"; }
function fmtTime(t, withDate) {
  var iso = new Date(t * 1000).toISOString();
  return withDate ? iso.slice(0, 16).replace("T", " ") : iso.slice(11, 16);
}
function rejectColor(share) {
  var hue = 120 * (1 - Math.min(1, share / 0.10));
  return "hsl(" + hue.toFixed(0) + ", 70%, 40%)";
}

function summary(data) {
  var t = data.totals, cards = document.getElementById("summary");
  document.getElementById("subtitle").textContent = data.source + (data.first_window === null
    ? ": no aggregates yet"
    : ": windows from " + fmtTime(data.first_window, true) + " to " +
      fmtTime(data.last_window, true) + " UTC");
  function card(label, value) {
    var c = el("div", {"class": "card"}); c.appendChild(el("b", {}, value));
    c.appendChild(document.createTextNode(label)); cards.appendChild(c);
  }
  card("flows aggregated", fmtInt(t.flows));
  card("bytes", fmtBytes(t.bytes));
  if (t.ends !== undefined) {
    card("flow ends attributed to an owner", fmtPct(t.ends ? 100 * t.owned / t.ends : null));
    card("private ends left unattributed", fmtInt(t.unattributed));
    card("internet ends", fmtInt(t.internet));
    card("late flows / dead letters", fmtInt(t.late) + " / " + fmtInt(t.dead_letter));
  }
}

function graph(data) {
  var g = data.graph, box = document.getElementById("graph");
  if (!g.nodes.length) { box.appendChild(el("div", {"class": "empty"}, "No traffic.")); return; }
  var root = svg("svg", {"class": "graph", width: g.width, height: g.height,
                         viewBox: "0 0 " + g.width + " " + g.height});
  var defs = svg("defs"), edgeLayer = svg("g"), nodeLayer = svg("g");
  root.appendChild(defs); root.appendChild(edgeLayer); root.appendChild(nodeLayer);
  var at = {}, maxEdge = 1, maxNode = 1;
  g.nodes.forEach(function (n) { at[n.id] = n; maxNode = Math.max(maxNode, n.bytes); });
  g.edges.forEach(function (e) { maxEdge = Math.max(maxEdge, e.bytes); });
  function radius(n) { return 7 + 13 * Math.sqrt(n.bytes / maxNode); }
  g.edges.forEach(function (e, i) {
    var a = at[e.src], b = at[e.dst], color = rejectColor(e.reject_share);
    var width = 1 + 11 * Math.sqrt(e.bytes / maxEdge), d;
    var marker = svg("marker", {id: "arrow-" + i, viewBox: "0 0 10 10", refX: 9, refY: 5,
                                markerWidth: 6 + width, markerHeight: 6 + width, orient: "auto",
                                markerUnits: "userSpaceOnUse"});
    marker.appendChild(svg("path", {d: "M0,0 L10,5 L0,10 z", fill: color}));
    defs.appendChild(marker);
    if (e.src === e.dst) {
      var r = radius(a);
      d = "M" + (a.x + r * 0.7) + "," + (a.y - r * 0.7) + " C" + (a.x + 45) + "," + (a.y - 60) +
          " " + (a.x - 45) + "," + (a.y - 60) + " " + (a.x - r * 0.7) + "," + (a.y - r * 0.7);
    } else if (b.x <= a.x) {
      // A call back to an earlier column: an arc under both apps, into the callee from below.
      var y1 = a.y + radius(a), y2 = b.y + radius(b) + 4, low = Math.max(y1, y2) + 60;
      d = "M" + a.x + "," + y1 + " C" + a.x + "," + low + " " + b.x + "," + low + " " +
          b.x + "," + y2;
    } else {
      var x1 = a.x + radius(a), x2 = b.x - radius(b) - 4;
      var dx = Math.max(60, Math.abs(x2 - x1) / 2);
      d = "M" + x1 + "," + a.y + " C" + (x1 + dx) + "," + a.y + " " + (x2 - dx) + "," + b.y +
          " " + x2 + "," + b.y;
    }
    var path = svg("path", {"class": "edge", d: d, stroke: color, "stroke-width": width.toFixed(2),
                            "marker-end": "url(#arrow-" + i + ")", "data-src": e.src,
                            "data-dst": e.dst, "data-bytes": e.bytes,
                            "data-reject-share": e.reject_share.toFixed(4)});
    path.appendChild(svg("title", {}, e.src + " \u2192 " + e.dst + ": " + fmtBytes(e.bytes) +
                         ", " + fmtInt(e.flows) + " flows, " +
                         fmtPct(100 * e.reject_share) + " REJECTed"));
    edgeLayer.appendChild(path);
  });
  var colors = {app: "#34495e", internet: "#2f80ed", unattributed: "#9aa3b5"};
  g.nodes.forEach(function (n) {
    var node = svg("g", {"class": "node", "data-app": n.id});
    node.appendChild(svg("circle", {cx: n.x, cy: n.y, r: radius(n).toFixed(1),
                                    fill: colors[n.kind] || colors.app}));
    node.appendChild(svg("text", {x: n.x, y: n.y - radius(n) - 5, "text-anchor": "middle"}, n.id));
    node.appendChild(svg("title", {}, n.id + ": " + fmtBytes(n.bytes) + " sent or received"));
    node.addEventListener("mouseenter", function () {
      root.classList.add("focus");
      edgeLayer.querySelectorAll(".edge").forEach(function (p) {
        if (p.getAttribute("data-src") === n.id || p.getAttribute("data-dst") === n.id) {
          p.classList.add("near");
        }
      });
    });
    node.addEventListener("mouseleave", function () {
      root.classList.remove("focus");
      edgeLayer.querySelectorAll(".near").forEach(function (p) { p.classList.remove("near"); });
    });
    nodeLayer.appendChild(node);
  });
  box.appendChild(root);
  if (g.omitted_edges) {
    box.appendChild(el("div", {"class": "empty"}, g.omitted_edges +
                       " smaller edges not drawn (see flowdredge query top-talkers)."));
  }
}

function lineChart(boxId, times, series, format, maxValue) {
  var box = document.getElementById(boxId);
  if (!times.length || !series.length) {
    box.appendChild(el("div", {"class": "empty"}, "No data.")); return;
  }
  var W = 1260, H = 300, L = 80, R = 20, T = 16, B = 34;
  var top = maxValue || 0;
  series.forEach(function (s) {
    s.values.forEach(function (v) { if (v !== null) top = Math.max(top, v); });
  });
  top = top || 1;
  var t0 = times[0], t1 = times[times.length - 1], span = Math.max(1, t1 - t0);
  function x(t) { return L + (W - L - R) * (t - t0) / span; }
  function y(v) { return T + (H - T - B) * (1 - v / top); }
  var root = svg("svg", {"class": "chart", width: W, height: H, viewBox: "0 0 " + W + " " + H});
  for (var i = 0; i <= 4; i++) {
    var v = top * i / 4;
    root.appendChild(svg("line", {"class": "grid", x1: L, x2: W - R, y1: y(v), y2: y(v)}));
    root.appendChild(svg("text", {"class": "tick", x: L - 6, y: y(v) + 4, "text-anchor": "end"},
                         format(v)));
  }
  var withDate = span > 86400;
  var step = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800]
    .filter(function (s) { return span / s <= 8; })[0] || 2592000;
  for (var t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    root.appendChild(svg("text", {"class": "tick", x: x(t), y: H - 12, "text-anchor": "middle"},
                         fmtTime(t, withDate)));
  }
  root.appendChild(svg("line", {"class": "axis", x1: L, x2: W - R, y1: H - B, y2: H - B}));
  var legend = el("div", {"class": "legend"});
  series.forEach(function (s, k) {
    var color = PALETTE[k % PALETTE.length], d = "", pen = "M";
    s.values.forEach(function (v, n) {
      if (v === null) { pen = "M"; return; }
      d += pen + x(times[n]).toFixed(1) + "," + y(v).toFixed(1) + " "; pen = "L";
    });
    var line = svg("path", {d: d, fill: "none", stroke: color, "stroke-width": 2,
                            "class": "series", "data-name": s.name});
    line.appendChild(svg("title", {}, s.name));
    root.appendChild(line);
    var item = el("span"); item.appendChild(el("i", {style: "background:" + color}));
    item.appendChild(document.createTextNode(s.name)); legend.appendChild(item);
  });
  box.appendChild(root); box.appendChild(legend);
}

function table(boxId, rows, columns) {
  var box = document.getElementById(boxId);
  if (!rows.length) { box.appendChild(el("div", {"class": "empty"}, "None.")); return; }
  var t = el("table"), head = el("tr");
  columns.forEach(function (c) {
    head.appendChild(el("th", c.num ? {"class": "num"} : {}, c.label));
  });
  t.appendChild(head);
  var barColumn = columns.filter(function (c) { return c.bar; })[0], most = 1;
  if (barColumn) rows.forEach(function (r) { most = Math.max(most, r[barColumn.key]); });
  rows.forEach(function (r) {
    var tr = el("tr");
    columns.forEach(function (c) {
      var value = r[c.key];
      tr.appendChild(el("td", c.num ? {"class": "num"} : {},
                        c.format ? c.format(value, r) : (value === null ? "" : String(value))));
    });
    if (barColumn) {
      var cell = el("td", {"class": "bar"});
      var share = 100 * r[barColumn.key] / most;
      cell.appendChild(el("div", {style: "width:" + share.toFixed(1) + "%"}));
      tr.appendChild(cell);
    }
    t.appendChild(tr);
  });
  if (barColumn) head.appendChild(el("th"));
  box.appendChild(t);
}

function render() {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  summary(data);
  graph(data);
  document.getElementById("bucket").textContent = data.bucket_seconds % 3600 === 0
    ? (data.bucket_seconds / 3600) + " h" : data.bucket_seconds % 60 === 0
    ? (data.bucket_seconds / 60) + " min" : data.bucket_seconds + " s";
  lineChart("bytes-over-time", data.times, data.bytes_over_time, fmtBytes);
  table("rejects", data.rejects, [
    {key: "dst_app", label: "to app"}, {key: "dst_port", label: "port", num: true},
    {key: "protocol", label: "protocol", num: true}, {key: "src_app", label: "from app"},
    {key: "src_region", label: "from region"},
    {key: "flows", label: "flows", num: true, format: fmtInt, bar: true},
    {key: "bytes", label: "bytes", num: true, format: fmtBytes}]);
  table("exposure", data.exposure, [
    {key: "app", label: "app"}, {key: "region", label: "region"},
    {key: "dst_port", label: "port", num: true},
    {key: "flows", label: "flows", num: true, format: fmtInt, bar: true},
    {key: "rejected_flows", label: "REJECTed", num: true, format: fmtInt},
    {key: "bytes", label: "bytes", num: true, format: fmtBytes}]);
  table("egress", data.egress, [
    {key: "app", label: "app"}, {key: "region", label: "region"},
    {key: "flows", label: "flows", num: true, format: fmtInt},
    {key: "bytes", label: "bytes", num: true, format: fmtBytes, bar: true}]);
  table("cross-region", data.cross_region, [
    {key: "src_region", label: "from region"}, {key: "dst_region", label: "to region"},
    {key: "flows", label: "flows", num: true, format: fmtInt},
    {key: "bytes", label: "bytes", num: true, format: fmtBytes, bar: true}]);
  lineChart("attribution", data.times,
            [{name: "private ends attributed", values: data.attribution_rate}],
            function (v) { return v.toFixed(0) + " %"; }, 100);
}

try {
  render();
  document.body.setAttribute("data-rendered", "ok");
} catch (err) {
  window.reportError(err && err.stack ? err.stack : err);
  document.body.insertBefore(el("div", {id: "render-failure"},
                                "The report could not be drawn: " + err), document.body.firstChild);
}
"""
