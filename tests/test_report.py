"""`flowdredge report`: one self-contained HTML page, checked in headless Chromium."""
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import defaultdict
from html.parser import HTMLParser

import pytest

from helpers import read_records, run_replay
from flowdredge import cli
from flowdredge.job.config import Config
from flowdredge.synthetic.estate import APPS, INTERNET_FACING, Scenario, generate
from flowdredge.explore.query import Outputs
from flowdredge.explore.report import (MAX_EDGES, TOP_APPS, VIEWS, layout_graph, render_html,
                                       report_data, write_report)

SCENARIO = Scenario(minutes=5, flows_per_minute=300, instances_per_app=3, churn_per_minute=3.0,
                    reject_share=0.05, seed=23)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# A name that would run script if the page ever wrote data as markup.
HOSTILE_APP = '</script><img src=x onerror="document.title=1">'


def _chromium(tmp_path, *args):
    # scripts/setup installs it (or stops): a missing browser is a broken set-up, not a skip.
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("chromium is not installed: run scripts/setup (as root it installs Debian's "
                    "chromium package with apt-get)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         # No name resolves: the page cannot reach anything but the file it is.
         "--host-resolver-rules=MAP * ~NOTFOUND", *args],
        capture_output=True, text=True, timeout=120)


class _Page(HTMLParser):
    """What a test needs from the DOM Chromium dumps after running the page's scripts."""

    def __init__(self, dom):
        super().__init__()
        self.root, self.body, self.nodes, self.edges, self.tags = {}, {}, [], [], []
        self.series, self.table_rows = [], defaultdict(int)
        self.labels, self.graph_box, self._node_x = {}, None, None   # app: (node x, label x)
        self.cells, self._panel, self._cell = {}, None, False   # panel: [[cell text, ...], ...]
        self.text, self.ticks = "", 0
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        classes = (a.get("class") or "").split()
        if tag == "html":
            self.root = a
        elif tag == "body":
            self.body = a
        elif tag == "g" and "node" in classes:
            self.nodes.append(a.get("data-app"))   # none on the unknown app
        elif tag == "svg" and "graph" in classes:
            self.graph_box = [float(v) for v in a["viewbox"].split()]
        elif tag == "circle" and self.nodes:
            self._node_x = float(a["cx"])
        elif tag == "text" and self.nodes and "tick" not in classes:
            self.labels[self.nodes[-1]] = (self._node_x, float(a["x"]))
        elif tag == "path" and "edge" in classes:
            self.edges.append(a)
        elif tag == "text" and "tick" in classes:
            self.ticks += 1
        elif tag == "path" and "series" in classes:
            self.series.append(a)
        elif tag == "div" and "panel" in classes:
            self._panel = a.get("id")
        elif tag == "tr" and self._panel:
            self.table_rows[self._panel] += 1
            self.cells.setdefault(self._panel, []).append([])
        elif tag == "td" and self._panel:
            self._cell = True

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = False

    def handle_data(self, data):
        self.text += data
        if self._cell:
            self.cells[self._panel][-1].append(data)

    @property
    def errors(self):
        return json.loads(self.root.get("data-errors", '["no data-errors attribute"]'))


def _load(tmp_path, html_path):
    run = _chromium(tmp_path, "--dump-dom", "file://" + os.path.abspath(html_path))
    assert run.returncode == 0, run.stderr[-3000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    page = _Page(run.stdout)
    return page, console


def _write_outputs(folder, aggregates):
    os.makedirs(folder / "aggregates")
    with open(folder / "aggregates" / "part-0-0", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in aggregates)
    return folder


def _row(window_start, src, dst, nbytes, action="ACCEPT", src_region="us-east-1",
         dst_region="us-east-1"):
    return {"window_start": window_start, "src_app": src, "src_region": src_region,
            "dst_app": dst, "dst_region": dst_region, "dst_port": 443, "protocol": 6,
            "action": action, "flows": 1, "packets": 1, "bytes": nbytes}


# ---------------------------------------------------------------- unit

@pytest.mark.unit
def test_layout_puts_callers_left_of_callees_and_survives_cycles():
    edges = [("internet", "gw"), ("gw", "api"), ("api", "db"), ("api", "cache"),
             ("db", "api"), ("gw", "internet"), ("api", "api")]
    coords, width, height = layout_graph(["api", "cache", "db", "gw", "internet"], edges)
    x = {n: xy[0] for n, xy in coords.items()}
    assert x["internet"] < x["gw"] < x["api"] < x["db"] == x["cache"]
    assert len(set(coords.values())) == len(coords), "two apps drawn at one place"
    assert all(0 < cx < width and 0 < cy < height for cx, cy in coords.values())
    assert layout_graph(["api", "cache", "db", "gw", "internet"], edges)[0] == coords


@pytest.mark.unit
def test_page_is_self_contained_and_embeds_data_safely(tmp_path):
    folder = _write_outputs(tmp_path / "out", [_row(60, "internet", HOSTILE_APP, 5),
                                               _row(60, HOSTILE_APP, "db", 7, "REJECT")])
    with Outputs(str(folder), VIEWS) as outputs:
        page = render_html(report_data(outputs, str(folder)))
    assert "default-src 'none'" in page                 # the browser may load nothing
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page,
                     re.S).group(1)
    assert "<" not in data
    assert HOSTILE_APP in {node["id"] for node in json.loads(data)["graph"]["nodes"]}
    markup = page.replace(data, "")
    # Nothing that fetches: no link/img/iframe, no src or href, no url() but to the page itself.
    assert not re.search(r"<link|<img|<iframe|\bsrc\s*=(?!=)|\bhref\s*=(?!=)|url\((?!#)|@import",
                         markup)
    assert set(re.findall(r"https?://[^\s\"']*", markup)) == {"http://www.w3.org/2000/svg"}


@pytest.mark.unit
def test_report_command_writes_the_page(tmp_path, capsys):
    folder = _write_outputs(tmp_path / "out", [_row(60, "api", "db", 5)])
    assert cli.main(["report", str(folder)]) == 0
    assert "report written to" in capsys.readouterr().err
    assert (folder / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert cli.main(["report", str(tmp_path / "missing")]) == 2


@pytest.mark.unit
def test_report_of_a_folder_without_aggregates(tmp_path):
    (tmp_path / "out" / "counts").mkdir(parents=True)
    with Outputs(str(tmp_path / "out"), VIEWS) as outputs:
        data = report_data(outputs, "empty")
    assert data["graph"]["nodes"] == [] and data["times"] == [] and data["rejects"] == []
    assert data["totals"] == {"flows": 0, "bytes": 0}


@pytest.mark.unit
def test_a_record_without_a_window_is_in_the_totals_not_the_timeline(tmp_path):
    """One written by hand stopped the report with a traceback (a review)."""
    windowless = {k: v for k, v in _row(0, "api", "db", 7).items() if k != "window_start"}
    folder = _write_outputs(tmp_path / "out", [_row(60, "api", "db", 5), windowless])
    with Outputs(str(folder), VIEWS) as outputs:
        data = report_data(outputs, "windowless")
    assert data["totals"]["bytes"] == 12 and data["times"] == [60]
    assert data["bytes_over_time"] == [{"name": "api", "values": [5]},
                                       {"name": "db", "values": [5]}]


@pytest.mark.unit
def test_an_aggregate_without_an_app_is_the_unknown_app(tmp_path):
    """A hand-written src_app null stopped the report with a traceback (a review): '<' not
    supported between 'NoneType' and 'str'. A missing dst_app reads as null too."""
    no_dst = {k: v for k, v in _row(60, "api", "db", 3, "REJECT").items() if k != "dst_app"}
    folder = _write_outputs(tmp_path / "out", [_row(60, "api", "db", 5), _row(60, None, "db", 7),
                                               no_dst, _row(60, None, "unattributed", 1)])
    with Outputs(str(folder), VIEWS) as outputs:
        data = report_data(outputs, "unknown")
    nodes = {node["id"]: (node["kind"], node["bytes"]) for node in data["graph"]["nodes"]}
    assert nodes == {"api": ("app", 8), "db": ("app", 12), "unattributed": ("unattributed", 1),
                     None: ("unknown", 11)}
    assert len(data["graph"]["edges"]) == 4
    # Its ends are neither owned nor unattributed; the other end of each counts.
    assert data["bytes_over_time"] == [{"name": "db", "values": [12]},
                                       {"name": "api", "values": [8]}]
    assert data["attribution_rate"] == [80.0]   # api twice, db twice; unattributed once
    assert data["totals"]["bytes"] == 16


@pytest.mark.unit
def test_aggregates_without_bytes_or_flows_count_none(tmp_path):
    """As in the totals: an edge or a time bucket whose every aggregate lacks its bytes or flows
    (written by hand) stopped the report with a traceback (a review)."""
    folder = _write_outputs(tmp_path / "out", [{**_row(60, "api", "db", 5), "flows": None},
                                               {**_row(60, "web", "api", 0), "bytes": None},
                                               {**_row(120, "api", "db", 4), "flows": None}])
    with Outputs(str(folder), VIEWS) as outputs:
        data = report_data(outputs, "null measures")
    assert {node["id"]: node["bytes"] for node in data["graph"]["nodes"]} == {
        "api": 9, "db": 9, "web": 0}
    assert {(e["src"], e["bytes"], e["flows"]) for e in data["graph"]["edges"]} == {
        ("api", 9, 0), ("web", 0, 1)}
    assert data["bytes_over_time"][-1] == {"name": "web", "values": [0, 0]}
    assert data["attribution_rate"] == [100.0, None]   # no flow counted at 120
    assert data["totals"] == {"flows": 1, "bytes": 9}


@pytest.mark.unit
def test_aws_service_ends_are_not_attributed_private_ends_nor_busy_apps(tmp_path):
    """metadata.ip_ranges names AWS's public ranges aws:<service>:<region>: an S3 end is not a
    private address the job attributed, and not one of the estate's apps."""
    folder = _write_outputs(tmp_path / "out", [_row(60, "api", "aws:s3:us-east-1", 900),
                                               _row(60, "api", "unattributed", 5),
                                               _row(60, "db", "internet", 7)])
    with Outputs(str(folder), VIEWS) as outputs:
        data = report_data(outputs, "aws")
    assert data["attribution_rate"] == [75.0]   # api twice and db of those and unattributed
    assert [s["name"] for s in data["bytes_over_time"]] == ["api", "db"]


@pytest.mark.unit
def test_the_attributed_ends_count_the_late_flows(tmp_path):
    # A late flow's ends are attributed too (docs/operations.md: the attribution rate).
    folder = _write_outputs(tmp_path / "out", [_row(60, "api", "db", 5)])
    (folder / "counts").mkdir()
    (folder / "counts" / "counts-0.jsonl").write_text(json.dumps(
        {"stage": "attribute", "flows_aggregated": 8, "flows_late": 2, "src_owned": 10,
         "dst_owned": 4}) + "\n")
    with Outputs(str(folder), VIEWS) as outputs:
        totals = report_data(outputs, "late")["totals"]
    assert (totals["owned"], totals["ends"]) == (14, 20)


@pytest.mark.unit
def test_counts_near_the_64_bit_limit_are_summed_whole(tmp_path):
    """A LONG's every value is a count the report takes: twice 2^62 flows (each end) and two
    counters of one record added overflowed BIGINT, 'Out of Range Error: Overflow in
    multiplication of INT64', naming no file (a review)."""
    big = 2**62
    folder = _write_outputs(tmp_path / "out", [{**_row(60, "api", "db", 5), "flows": big},
                                               {**_row(60, "api", "unattributed", 5),
                                                "flows": big}])
    (folder / "counts").mkdir()
    (folder / "counts" / "counts-0.jsonl").write_text(json.dumps(
        {"stage": "attribute", "flows_aggregated": big, "src_owned": 2**63 - 1,
         "dst_owned": 1}) + "\n")
    with Outputs(str(folder), VIEWS) as outputs:
        data = report_data(outputs, "big")
    assert data["attribution_rate"] == [75.0]
    assert data["totals"]["flows"] == 2**63
    assert (data["totals"]["owned"], data["totals"]["ends"]) == (2**63, 2**63)


@pytest.mark.unit
def test_an_apps_traffic_to_itself_counts_once_in_its_bytes(tmp_path):
    folder = _write_outputs(tmp_path / "out", [_row(60, "api", "api", 5),
                                               _row(60, "api", "db", 7)])
    with Outputs(str(folder), VIEWS) as outputs:
        nodes = report_data(outputs, "self")["graph"]["nodes"]
    assert {node["id"]: node["bytes"] for node in nodes} == {"api": 12, "db": 7}


# ---------------------------------------------------------------- in Chromium

@pytest.mark.unit
def test_hostile_names_are_shown_as_text_not_run(tmp_path):
    folder = _write_outputs(tmp_path / "out", [_row(60, "internet", HOSTILE_APP, 5),
                                               _row(120, HOSTILE_APP, "db", 7, "REJECT")])
    page, console = _load(tmp_path, write_report(str(folder)))
    assert page.errors == [] and console == []
    assert page.body.get("data-rendered") == "ok"
    assert sorted(page.nodes) == sorted(["internet", HOSTILE_APP, "db"])
    assert "img" not in page.tags


@pytest.mark.unit
def test_the_graph_holds_the_labels_of_long_app_names(tmp_path):
    """A label is centred on its app: a long name in the first or last column was cut off at
    the drawing's edge."""
    first = "a-long-application-name-called-first"
    last = "an-application-name-so-long-that-it-spills-past-the-last-column-of-the-graph"
    folder = _write_outputs(tmp_path / "out", [_row(60, first, "db", 5), _row(60, "db", last, 7)])
    page, console = _load(tmp_path, write_report(str(folder)))
    assert page.errors == [] and console == []
    assert all(x == label for x, label in page.labels.values())   # centred on their apps
    # About 6-7 px a character at the page's size: the whole name inside the drawing.
    left, _top, width, _height = page.graph_box
    assert left <= page.labels[first][0] - 3 * len(first)
    assert page.labels[last][0] + 3 * len(last) <= left + width


@pytest.mark.unit
def test_a_placeholders_name_in_a_value_is_not_filled(tmp_path):
    """The page was filled one placeholder after another: an app named __SCRIPT__ got the
    script pasted into the data (the page drew nothing), a folder named __DATA__ the data
    into the title."""
    folder = _write_outputs(tmp_path / "out __DATA__", [_row(60, "__SCRIPT__", "db", 5)])
    page, console = _load(tmp_path, write_report(str(folder)))
    assert page.errors == [] and console == []
    assert page.body.get("data-rendered") == "ok"
    assert sorted(page.nodes) == ["__SCRIPT__", "db"]
    html = (folder / "report.html").read_text()
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    assert title.endswith("out __DATA__") and len(title) < 200


@pytest.mark.unit
def test_the_unknown_app_is_drawn_and_listed_as_unknown(tmp_path):
    folder = _write_outputs(tmp_path / "out", [_row(60, None, "db", 7, "REJECT"),
                                               _row(60, "null", None, 5)])
    page, console = _load(tmp_path, write_report(str(folder)))
    assert page.errors == [] and console == []
    assert page.body.get("data-rendered") == "ok"
    assert sorted(page.nodes, key=str) == [None, "db", "null"]   # apart from an app "null"
    assert len(page.edges) == 2
    assert [c[3] for c in page.cells["rejects"] if c] == ["(unknown)"]


@pytest.mark.unit
def test_window_starts_years_apart_have_a_few_ticks(tmp_path):
    """One in milliseconds (written by hand) beside ones in seconds: a tick every 30 days over
    56,000 years, 680,000 labels (a review: the page took minutes to draw, if ever)."""
    folder = _write_outputs(tmp_path / "out", [_row(60, "api", "db", 5),
                                               _row(1767225600000, "api", "db", 7)])
    page, console = _load(tmp_path, write_report(str(folder)))
    assert page.errors == [] and console == []
    assert page.body.get("data-rendered") == "ok"
    assert page.ticks <= 2 * (5 + 9)   # two charts: 5 on the value axis, at most 9 on time's


@pytest.mark.unit
def test_a_window_start_beyond_any_date_is_shown_as_its_number(tmp_path):
    """Written by hand (in nanoseconds, say), it stopped the page's drawing: 'RangeError:
    Invalid time value' (a review)."""
    folder = _write_outputs(tmp_path / "out", [_row(60, "api", "db", 5),
                                               _row(10**17, "api", "db", 7)])
    page, console = _load(tmp_path, write_report(str(folder)))
    assert page.errors == [] and console == []
    assert page.body.get("data-rendered") == "ok"
    assert sorted(page.nodes) == ["api", "db"]
    assert " to 100000000000000000 (epoch seconds) UTC" in page.text


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    inputs = tmp_path_factory.mktemp("report-inputs")
    generated = generate(SCENARIO, str(inputs))
    output = str(tmp_path_factory.mktemp("report-outputs"))
    run_replay([str(inputs / "flows")], [generated.metadata_file], output,
               Config().replace(job={"parallelism": 1, "checkpoint_interval_seconds": 2}))
    return output


@pytest.mark.minicluster
def test_report_of_a_replay_in_chromium(replayed, tmp_path):
    html_path = write_report(replayed, str(tmp_path / "report.html"))
    page, console = _load(tmp_path, html_path)
    assert page.errors == [], page.errors
    assert console == [], console
    assert page.body.get("data-rendered") == "ok"

    # The graph against plain Python over the aggregates the job wrote.
    edges = defaultdict(lambda: [0, 0, 0])
    for r in read_records(replayed, "aggregates"):
        sums = edges[r["src_app"], r["dst_app"]]
        sums[0] += r["bytes"]
        sums[1] += r["flows"]
        sums[2] += r["flows"] if r["action"] == "REJECT" else 0
    assert len(edges) <= MAX_EDGES
    drawn = {(e["data-src"], e["data-dst"]): e for e in page.edges}
    assert len(drawn) == len(page.edges) == len(edges)
    assert set(drawn) == set(edges)
    for key, (nbytes, flows, rejected) in edges.items():
        assert int(drawn[key]["data-bytes"]) == nbytes
        assert float(drawn[key]["data-reject-share"]) == pytest.approx(rejected / flows, abs=1e-4)
    assert sorted(page.nodes) == sorted({a for edge in edges for a in edge})

    # The scenario's known dependency graph is all there.
    known = {(caller, callee) for caller, (_port, callees) in APPS.items() for callee in callees}
    known |= {("internet", app) for app in INTERNET_FACING}
    known |= {(app, "internet") for app in INTERNET_FACING}
    assert known <= set(drawn)
    assert {a for a in page.nodes} >= set(APPS) | {"internet", "unattributed"}

    assert len([s for s in page.series if s["d"]]) == TOP_APPS + 1  # top apps + attribution
    for panel in ("rejects", "exposure", "egress", "cross-region"):
        assert page.table_rows[panel] >= 2, f"{panel} table is empty"

    shot = tmp_path / "report.png"
    run = _chromium(tmp_path, "--hide-scrollbars", "--window-size=1400,2700",
                    f"--screenshot={shot}", "file://" + os.path.abspath(html_path))
    assert run.returncode == 0 and shot.stat().st_size > 20_000, run.stderr[-2000:]
    print(f"report screenshot: {shot}")
