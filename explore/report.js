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
  // An attribute cannot hold null (the unknown app's name): left out, not written "null".
  Object.keys(attrs || {}).forEach(function (k) {
    if (attrs[k] !== null) node.setAttribute(k, attrs[k]);
  });
  if (text !== undefined) node.textContent = text;
  return node;
}
// null: an aggregate written by hand without its app.
function appName(app) { return app === null ? "(unknown)" : app; }
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
  // Beyond the dates a Date holds (a window_start written by hand, in other units): a number.
  if (Math.abs(t) > 8.64e12) return t + " (epoch seconds)";
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
  // The aggregates written: a running job's open windows are in the counts, not here.
  card("flows in closed windows", fmtInt(t.flows));
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
  var at = new Map(), drawn = [], maxEdge = 1, maxNode = 1;   // a Map tells null from "null"
  g.nodes.forEach(function (n) { at.set(n.id, n); maxNode = Math.max(maxNode, n.bytes); });
  g.edges.forEach(function (e) { maxEdge = Math.max(maxEdge, e.bytes); });
  function radius(n) { return 7 + 13 * Math.sqrt(n.bytes / maxNode); }
  g.edges.forEach(function (e, i) {
    var a = at.get(e.src), b = at.get(e.dst), color = rejectColor(e.reject_share);
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
    path.appendChild(svg("title", {}, appName(e.src) + " \u2192 " + appName(e.dst) + ": " +
                         fmtBytes(e.bytes) + ", " + fmtInt(e.flows) + " flows, " +
                         fmtPct(100 * e.reject_share) + " REJECTed"));
    edgeLayer.appendChild(path);
    drawn.push({path: path, edge: e});
  });
  var colors = {app: "#34495e", internet: "#2f80ed", unattributed: "#9aa3b5",
                unknown: "#c9ced8"};
  g.nodes.forEach(function (n) {
    var node = svg("g", {"class": "node", "data-app": n.id});
    node.appendChild(svg("circle", {cx: n.x, cy: n.y, r: radius(n).toFixed(1),
                                    fill: colors[n.kind] || colors.app}));
    node.appendChild(svg("text", {x: n.x, y: n.y - radius(n) - 5, "text-anchor": "middle"},
                                  appName(n.id)));
    node.appendChild(svg("title", {}, appName(n.id) + ": " + fmtBytes(n.bytes) +
                         " sent or received"));
    node.addEventListener("mouseenter", function () {
      root.classList.add("focus");
      drawn.forEach(function (d) {
        if (d.edge.src === n.id || d.edge.dst === n.id) d.path.classList.add("near");
      });
    });
    node.addEventListener("mouseleave", function () {
      root.classList.remove("focus");
      edgeLayer.querySelectorAll(".near").forEach(function (p) { p.classList.remove("near"); });
    });
    nodeLayer.appendChild(node);
  });
  box.appendChild(root);
  // A long name centred on an app at the drawing's edge was cut off: the drawing widened to
  // hold every label (measured once drawn).
  var left = 0, right = g.width;
  nodeLayer.querySelectorAll("text").forEach(function (t) {
    var b = t.getBBox();
    left = Math.min(left, Math.floor(b.x) - 2);
    right = Math.max(right, Math.ceil(b.x + b.width) + 2);
  });
  root.setAttribute("width", right - left);
  root.setAttribute("viewBox", left + " 0 " + (right - left) + " " + g.height);
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
  // At most 8 steps: beyond a week, 30 days or a multiple of it (hand-written window starts
  // years or eons apart made one tick a month, and as many text elements, without end).
  var step = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800]
    .filter(function (s) { return span / s <= 8; })[0] || 2592000 * Math.ceil(span / 8 / 2592000);
  var first = Math.ceil(t0 / step) * step;
  // Counted, not added up: at 2^62 seconds a step of 60 is below a double's precision.
  for (var k = 0, t = first; k <= 8 && t <= t1; k++, t = first + k * step) {
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
    {key: "dst_app", label: "to app", format: appName},
    {key: "dst_port", label: "port", num: true},
    {key: "protocol", label: "protocol", num: true},
    {key: "src_app", label: "from app", format: appName},
    {key: "src_region", label: "from region"},
    {key: "flows", label: "flows", num: true, format: fmtInt, bar: true},
    {key: "bytes", label: "bytes", num: true, format: fmtBytes}]);
  table("exposure", data.exposure, [
    {key: "app", label: "app", format: appName}, {key: "region", label: "region"},
    {key: "dst_port", label: "port", num: true},
    {key: "protocol", label: "protocol", num: true},
    {key: "flows", label: "flows", num: true, format: fmtInt, bar: true},
    {key: "rejected_flows", label: "REJECTed", num: true, format: fmtInt},
    {key: "bytes", label: "bytes", num: true, format: fmtBytes}]);
  table("egress", data.egress, [
    {key: "app", label: "app", format: appName}, {key: "region", label: "region"},
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
