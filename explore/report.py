"""One self-contained HTML page about an output folder. Pure Python.

The numbers come from the query views (explore.query); the page embeds them as JSON and draws them
with inline JavaScript and SVG (explore/report.html and explore/report.js, package data): no network
resource, and a Content-Security-Policy that forbids loading any. Node positions of the dependency graph are computed here, so the layout is
deterministic and testable without a browser.
"""
import html
import json
import math
import os
import re
from functools import reduce
from importlib import resources

from flowdredge.connectors.s3 import is_s3
from flowdredge.explore.query import Outputs
from flowdredge.job.outputs import REPORT_FILE
from flowdredge.schemas.security import AWS_SERVICE_PREFIX, UNOWNED_APPS

MAX_EDGES = 80          # more is unreadable; the rest are counted on the page
TOP_APPS = 6            # lines in "bytes over time"
MAX_POINTS = 360        # time buckets per line chart
TOP_ROWS = 15           # rows of each table
VIEWS = ("aggregates", "counts")   # all the page reads (for S3, all that is copied)


# ---------------------------------------------------------------- graph layout

def _name_order(node):
    """Apps by name, the unknown app (null: an aggregate written by hand) last."""
    return (node is None, node or "")


def _ranks(nodes, edges):
    """Columns: longest path from the callers, with cycles broken at back edges of a DFS that
    starts from the internet and then from the apps in name order."""
    successors = {n: sorted({d for s, d in edges if s == n and d != n}, key=_name_order)
                  for n in nodes}
    roots = sorted(nodes, key=lambda n: (n != "internet", _name_order(n)))
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
    for node in sorted(nodes, key=_name_order):
        columns.setdefault(rank[node], []).append(node)
    position = {}
    for r in sorted(columns):
        def barycenter(node):
            callers = [position[s] for s, d in edges if d == node and s in position and s != node]
            return (sum(callers) / len(callers) if callers else math.inf, _name_order(node))
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
    for e in edges:   # null: every aggregate of the edge without it (written by hand)
        e["bytes"], e["flows"] = e["bytes"] or 0, e["flows"] or 0
    shown = edges[:MAX_EDGES]
    nodes = sorted({e["src_app"] for e in shown} | {e["dst_app"] for e in shown}, key=_name_order)
    coords, width, height = layout_graph(nodes, [(e["src_app"], e["dst_app"]) for e in shown])
    node_bytes = {n: 0 for n in nodes}
    for e in shown:
        node_bytes[e["src_app"]] += e["bytes"]
        if e["dst_app"] != e["src_app"]:
            node_bytes[e["dst_app"]] += e["bytes"]
    return {
        "width": width, "height": height, "omitted_edges": len(edges) - len(shown),
        "nodes": [{"id": n, "x": coords[n][0], "y": coords[n][1], "bytes": node_bytes[n],
                   "kind": "unknown" if n is None else n if n in UNOWNED_APPS else "app"}
                  for n in nodes],
        "edges": [{"src": e["src_app"], "dst": e["dst_app"], "bytes": e["bytes"],
                   "flows": e["flows"], "rejected_flows": e["rejected_flows"],
                   "reject_share": e["rejected_flows"] / e["flows"] if e["flows"] else 0.0}
                  for e in shown],
    }


def _owned_sql(column: str) -> str:
    """Whether an aggregate's app is an owner of the estate: not the internet, an unattributed
    address, an AWS service's published range (metadata.ip_ranges) or unknown (null)."""
    unowned = ", ".join(f"'{a}'" for a in UNOWNED_APPS)
    return (f"COALESCE({column} NOT IN ({unowned}) "
            f"AND NOT starts_with({column}, '{AWS_SERVICE_PREFIX}'), false)")


def _series(outputs, bucket, times):
    per_app = """
        SELECT window_start, src_app AS app, bytes FROM aggregates
        UNION ALL
        SELECT window_start, dst_app AS app, bytes FROM aggregates
        WHERE dst_app IS DISTINCT FROM src_app"""
    top = [r[0] for r in outputs.sql(f"""
        SELECT app FROM ({per_app}) WHERE {_owned_sql("app")}
        GROUP BY app ORDER BY sum(bytes) DESC, app LIMIT {TOP_APPS}""").rows]
    values = {(app, t): b for t, app, b in outputs.sql(f"""
        SELECT window_start - window_start % {bucket} AS t, app, COALESCE(sum(bytes), 0)
        FROM ({per_app}) WHERE list_contains($apps, app) GROUP BY ALL""", {"apps": top}).rows}
    bytes_over_time = [{"name": app, "values": [values.get((app, t), 0) for t in times]}
                       for app in top]
    # flows as HUGEINT, as sum() makes it: twice a 64-bit count overflowed BIGINT.
    rates = {t: (owned, unattributed) for t, owned, unattributed in outputs.sql(f"""
        SELECT window_start - window_start % {bucket} AS t,
               COALESCE(sum(flows::HUGEINT * ({_owned_sql("src_app")}::INT
                                     + {_owned_sql("dst_app")}::INT)), 0),
               COALESCE(sum(flows::HUGEINT * ((src_app IS NOT DISTINCT FROM 'unattributed')::INT
                                     + (dst_app IS NOT DISTINCT FROM 'unattributed')::INT)), 0)
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
        "sum(src_owned) + sum(dst_owned) AS owned, "
        "sum(src_internet) + sum(dst_internet) AS internet, "
        "sum(src_unattributed) + sum(dst_unattributed) AS unattributed FROM counts"))[0]
    if counts["records"]:
        totals.update(ends=2 * (counts["flows_aggregated"] + counts["flows_late"]),
                      owned=counts["owned"], internet=counts["internet"],
                      unattributed=counts["unattributed"], late=counts["flows_late"],
                      dead_letter=counts["dead_letter"])
    return totals


def report_data(outputs: Outputs, source: str) -> dict:
    # A record without one (written by hand: the job writes none) is in the totals, in no
    # window; it stopped the report with a traceback (a review).
    window_starts = [r[0] for r in outputs.sql(
        "SELECT DISTINCT window_start FROM aggregates WHERE window_start IS NOT NULL "
        "ORDER BY 1").rows]
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
    page, script = (resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
                    for name in ("report.html", "report.js"))
    # In one pass: a placeholder's name inside a value filled earlier (an app named
    # __SCRIPT__, a folder named __DATA__) is not filled again.
    fills = {"__TITLE__": html.escape(f"flowdredge report: {data['source']}"),
             "__DATA__": embedded, "__SCRIPT__": script}
    return re.sub("|".join(fills), lambda match: fills[match.group(0)], page)


def write_report(output: str, html_path: str = None, cache_dir: str = None) -> str:
    """Writes the report of an output folder (local or s3://) and returns its path (default
    OUTPUT/report.html, or ./report.html for S3)."""
    with Outputs(output, VIEWS, cache_dir) as outputs:
        page = render_html(report_data(outputs, output))
    path = html_path or (REPORT_FILE if is_s3(output) else os.path.join(output, REPORT_FILE))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
    return path

