"""A running job's health from Flink's REST API (docs/operations.md, "The streaming job's
health"): the consumer lag, the windows' watermark, the job's counters summed over subtasks,
restarts and the latest checkpoint. `flowdredge run` prints `status_line` every
--report-seconds; the streaming demo reads the lag and the watermark. Pure Python (urllib)."""
import http.client
import json
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass

from flowdredge.connectors.logs import own_cause
from flowdredge.explore.summary import attributed_share, owned_ends

# What a REST read may raise: the job gone or restarting (an answer cut short too:
# http.client's IncompleteRead is no OSError), a vertex without the metric yet, a value that is
# no number (NaN) or no integer (Infinity).
READ_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException, ValueError, KeyError,
               IndexError, TypeError, OverflowError)
# The job's own counters the status line sums over subtasks (docs/operations.md, metrics).
COUNTERS = ("flows_parsed", "dead_letter", "metadata_dead_letter", "flows_aggregated",
            "flows_late", "src_owned", "dst_owned")
# A watermark before the first event time the job takes (2010) is none yet: a source's start
# (-2^63), or a shard's first one less the bounded out-of-orderness (-300,001 in a review).
_FIRST_EVENT_MS = 1262304000000


class JobRest:
    def __init__(self, url: str, job_id: str):
        self.url, self.job_id = url, job_id

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return json.load(response)

    def vertices(self) -> list:
        return self.get(f"/jobs/{self.job_id}")["vertices"]

    def consumer_lag_ms(self):
        """The highest millisBehindLatest over the flow streams' shards (the connector's
        gauge); None before the source reports one."""
        lags = []
        for vertex in self.vertices():
            if "flow stream" not in vertex["name"]:
                continue
            base = f"/jobs/{self.job_id}/vertices/{vertex['id']}/metrics"
            names = [m["id"] for m in self.get(base) if m["id"].endswith("millisBehindLatest")]
            if names:
                lags += [int(float(m["value"])) for m in self.get(f"{base}?get={','.join(names)}")
                         if m.get("value") not in (None, "")]
        lags = [lag for lag in lags if lag >= 0]
        return max(lags) if lags else None

    def window_watermark_ms(self):
        """The window operator's input watermark (lowest over its subtasks): every window that
        ends at or before it has been emitted. None before it has one."""
        for vertex in self.vertices():
            if "WindowAggregate" in vertex["name"]:
                marks = [int(m["value"]) for m in
                         self.get(f"/jobs/{self.job_id}/vertices/{vertex['id']}/watermarks")
                         if m["id"].endswith("currentInputWatermark")]
                low = min(marks, default=None)
                return low if low is not None and low >= _FIRST_EVENT_MS else None
        return None

    def counters(self, names=COUNTERS) -> Counter:
        """The job's counters `names` (metric group flowdredge), each summed over the
        subtasks of the vertices that have it. Since the tasks' last start: Flink's counters
        start again at a restart."""
        totals = Counter()
        wanted = {f".flowdredge.{name}": name for name in names}
        for vertex in self.vertices():
            base = f"/jobs/{self.job_id}/vertices/{vertex['id']}/subtasks/metrics"
            ids = [m["id"] for m in self.get(base)
                   if m["id"][m["id"].rfind(".flowdredge."):] in wanted]
            if ids:
                for metric in self.get(f"{base}?get={','.join(ids)}&agg=sum"):
                    name = wanted[metric["id"][metric["id"].rfind(".flowdredge."):]]
                    totals[name] += int(float(metric["sum"]))
        return totals

    def restarts(self) -> int:
        values = self.get(f"/jobs/{self.job_id}/metrics?get=numRestarts")
        return int(float(values[0]["value"])) if values else 0

    def failures(self) -> list:
        """The job's failures, newest first: (when, epoch ms; its trace)."""
        history = self.get(f"/jobs/{self.job_id}/exceptions").get("exceptionHistory", {})
        return [(int(entry.get("timestamp") or 0), entry.get("stacktrace") or "")
                for entry in history.get("entries") or []]

    def failure_traces(self) -> list:
        """The traces of the job's failures, newest first ([] when the API does not answer)."""
        try:
            return [trace for _when, trace in self.failures()]
        except READ_ERRORS:
            return []

    def last_checkpoint_ms(self):
        """When the latest completed checkpoint completed (epoch ms), None before one."""
        latest = (self.get(f"/jobs/{self.job_id}/checkpoints").get("latest") or {})
        return (latest.get("completed") or {}).get("latest_ack_timestamp")


@dataclass
class Health:
    """What the status line says, read at one time."""
    counters: Counter
    watermark_ms: int = None
    consumer_lag_ms: int = None
    last_checkpoint_ms: int = None
    restarts: int = 0


class FailureWatch:
    """A running job's failures as they happen, from its REST API's exception history: each
    cause once while it repeats. Before, `flowdredge run` and the streaming demo showed only
    the restarts rising, the cause once none was left (a review: 12 restarts in 3 minutes of
    a Kinesis outage, no word why)."""

    def __init__(self):
        self.newest = 0           # the newest failure's time read (epoch ms)
        self.said = ""            # the cause last said
        self.last_trace = ""      # its trace: the REST API goes with a mini-cluster that ends

    def new_causes(self, rest: "JobRest") -> list:
        """The causes of the failures since the last call not said just before ([] when the
        API does not answer: restarting, asked again later)."""
        try:
            failures = rest.failures()
        except READ_ERRORS:
            return []
        said = []
        for when, trace in reversed(failures):
            if when <= self.newest:
                continue
            self.newest, cause = when, own_cause(trace)
            if cause and cause != self.said:
                said.append(cause)
            if cause:
                self.said, self.last_trace = cause, trace
        return said


def read_health(rest: JobRest, settle_s: float = 1.0) -> Health:
    """The REST API answers metrics from a store it refreshes in the background when asked, if
    last refreshed over `metrics.fetcher.update-interval` (10 s) ago: a read after a longer
    pause gets the metrics of that pause's start (a one-off read of a job's counters found
    none). One read first, `settle_s` for the refresh, then the reads that count: at most
    about 10 s old."""
    rest.restarts()
    time.sleep(settle_s)
    return Health(rest.counters(), rest.window_watermark_ms(), rest.consumer_lag_ms(),
                  rest.last_checkpoint_ms(), rest.restarts())


def status_line(health: Health, now_s: float, previous=None) -> tuple:
    """The line, and what the next line is measured from. `now_s`: wall-clock time of the
    read (epoch seconds); `previous`: what the line before returned second, or None."""
    counts = health.counters
    parsed = counts["flows_parsed"]
    # PyFlink counts the flows a timer releases (those that waited for the changelog) only at
    # the attribution's next input, and a restart's counters begin at 0: with no flow end
    # counted now, the last share read, with its age.
    last = previous[2] if previous is not None else None   # (time, share)
    if owned_ends(counts)[1]:
        last = (now_s, attributed_share(counts))
        attributed = last[1]
    elif last is not None:
        attributed = f"{last[1]} (read {max(now_s - last[0], 0) / 60:,.1f} min ago)"
    else:
        attributed = ("n/a (none counted yet: flows a timer releases count at the next input)"
                      if parsed else "n/a")
    rate = ""
    if previous is not None and now_s > previous[0] and parsed >= previous[1]:
        rate = f" ({(parsed - previous[1]) / (now_s - previous[0]):,.0f}/s)"
    if health.watermark_ms is None:
        windows = "no window closed yet"
    else:
        mark = health.watermark_ms / 1000
        windows = (f"windows closed to {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(mark))}"
                   f" UTC ({max(now_s - mark, 0) / 60:,.1f} min ago)")
    lag = "n/a" if health.consumer_lag_ms is None else f"{health.consumer_lag_ms / 1000:,.1f} s"
    checkpoint = "none yet" if health.last_checkpoint_ms is None else \
        f"{max(now_s - health.last_checkpoint_ms / 1000, 0):,.0f} s ago"
    dead = counts["dead_letter"] + counts["metadata_dead_letter"]
    line = (f"flows parsed {parsed:,}{rate} | late {counts['flows_late']:,} | dead letters "
            f"{dead:,} | attributed {attributed} | {windows} | consumer lag {lag}"
            f" | last checkpoint {checkpoint} | restarts {health.restarts}")
    return line, (now_s, parsed, last)
