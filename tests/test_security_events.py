"""The views' events across windows (job.security.SecurityEvents), without a JVM: closed windows
held until event time passes them, edges new and gone, exposure new and forgotten, REJECT
spikes, and the state surviving its codec between any two calls; and TrackEvents, its Flink
adapter, restored from its keyed state between any two calls."""
import json

import pytest
from hypothesis import example, given, settings, strategies as st

from operator_stubs import Runtime, Value
from flowdredge.job.codec import (decode_events_state, decode_window_rows, encode_events_state,
                                  encode_window_rows)
from flowdredge.job.config import Config
from flowdredge.job.flink.operators import MAX_WATERMARK
from flowdredge.job.flink.security import EVENTS_STATE, HELD_WINDOWS, TrackEvents
from flowdredge.job.security import SecurityEvents

pytestmark = pytest.mark.unit

WS = 60
RULES = Config().replace(security={
    "warmup_seconds": 120, "dependency_silence_seconds": 180, "exposure_silence_seconds": 300,
    "reject_baseline_windows": 3, "reject_spike_factor": 2, "reject_spike_min_flows": 5}).security


def _dep(w, client="api", server="db", port=5432, flows=2, nbytes=300):
    return (w, client, server, port, 6, flows, flows, nbytes, 1, 1)


def _exp(w, resource, port=443, app="web"):
    return (w, app, resource, port, 6, 3, 3, 900, 2)


def _rej(w, app="db", src="198.51.100.1", flows=1):
    return (w, app, 22, 6, "internet", src, flows, flows, 40 * flows)


def _run(windows, end, roundtrip=False, ended_at=None, rules=RULES):
    """Feeds closed windows {start: (deps, exposure, rejects)} as the watermark passes each,
    firing the timers asked for in order up to `end` (ms), then, if ended_at, every remaining
    timer as the final watermark does (not those asked for meanwhile). Returns (events,
    rejected lines)."""
    events = SecurityEvents(WS, rules)
    timers, lines, rejected = set(), [], []

    def fire(t, ended=False):
        nonlocal events
        got, rej, later = events.advance(t, ended)
        lines.extend(got)
        rejected.extend(rej)
        timers.update(later)
        if roundtrip:   # as after a restore: the state, then the windows held
            restored = SecurityEvents(WS, rules, decode_events_state(
                encode_events_state(events.state())))
            for w, rows in events.pending.items():
                restored.add_window(w, *rows)
            events = restored

    for w in sorted(windows):
        while timers and min(timers) < min((w + WS) * 1000 - 1, end + 1):
            t = min(timers)
            timers.discard(t)
            fire(t)
        timers.add(events.add_window(w, *windows[w]))
    while timers and min(timers) <= end:
        t = min(timers)
        timers.discard(t)
        fire(t)
    if ended_at:
        for t in sorted(timers):
            fire(t, ended=True)
    return [json.loads(x) for x in lines], [json.loads(x) for x in rejected]


@pytest.mark.parametrize("roundtrip", [False, True])
def test_edges_are_new_after_the_warm_up_and_gone_after_their_silence(roundtrip):
    windows = {w: ([_dep(w)], [], []) for w in (0, 60)}
    windows.update({w: ([_dep(w, server="cache", port=6379)], [], []) for w in (180, 240)})
    windows[600] = ([], [], [])
    events, _ = _run(windows, 10**9, roundtrip)
    assert [(e["event"], e["time"], e["server_app"]) for e in events] == [
        ("new_dependency", 180, "cache"),     # api->db was learnt during the warm-up
        ("dependency_gone", 60 + WS + 180, "db"),
        ("dependency_gone", 240 + WS + 180, "cache")]
    assert events[1]["flows"] == 4 and events[1]["first_seen"] == 0


@pytest.mark.parametrize("roundtrip", [False, True])
def test_at_the_end_an_edge_is_gone_only_if_the_input_went_on_past_its_silence(roundtrip):
    windows = {0: ([_dep(0), _dep(0, server="cache")], [], []),
               60: ([_dep(60, server="cache")], [], []),
               240: ([], [], [])}
    # Nothing fires before the end: every timer comes with the final watermark.
    events, _ = _run(windows, -1, roundtrip, ended_at=True)
    assert [(e["event"], e["server_app"], e["time"]) for e in events] == [
        ("dependency_gone", "db", 240)]


def _each_window(rules, windows):
    """Feeds closed windows {start: (deps, exposure, rejects)} as event time passes each end;
    the SecurityEvents, and per window its events (by kind) and counts."""
    events = SecurityEvents(WS, rules)
    got = []
    for w in sorted(windows):
        events.add_window(w, *windows[w])
        lines = events.advance((w + WS) * 1000 - 1, False)[0]
        got.append(([(e["event"], e["time"], e["port"]) for e in map(json.loads, lines)],
                    dict(events.counts)))
    return events, got


def test_past_dependency_max_ports_a_pair_s_new_edges_are_counted_not_kept():
    """Past the cap the longest silent edges were dependency_gone to make room: an app
    sweeping another's ports, accepted, gave a new_dependency and a dependency_gone a port past
    the cap every window, and the pair's real edges were gone and new again (a review)."""
    rules = Config().replace(security={
        "warmup_seconds": 120, "dependency_max_ports": 2}).security
    events, got = _each_window(rules, {
        0: ([_dep(0), _dep(0, server="cache", port=6379)], [], []),
        120: ([_dep(120, port=7000), _dep(120, port=7001)], [], []),
        180: ([_dep(180), _dep(180, port=7001)], [], [])})
    assert got == [([], {}),
                   ([("new_dependency", 120, 7000)], {"dependency_edges_capped": 1}),
                   ([], {"dependency_edges_capped": 1})]
    assert sorted(events.edges) == [("api", "cache", 6379, 6), ("api", "db", 5432, 6),
                                    ("api", "db", 7000, 6)]


def test_past_dependency_max_ports_a_sweep_in_one_window_keeps_the_known_edges_and_lowest_ports():
    rules = Config().replace(security={
        "warmup_seconds": 120, "dependency_max_ports": 2}).security
    events, got = _each_window(rules, {
        0: ([_dep(0)], [], []),
        120: ([_dep(120, port=7001), _dep(120), _dep(120, port=7000)], [], [])})
    assert got[1] == ([("new_dependency", 120, 7000)], {"dependency_edges_capped": 1})
    assert sorted(events.edges) == [("api", "db", 5432, 6), ("api", "db", 7000, 6)]



def test_past_dependency_max_ports_an_edge_without_a_port_is_the_lowest():
    """Of a window's new edges past the cap, an edge with no port (None) fits first, as the
    lowest port would."""
    rules = Config().replace(security={
        "warmup_seconds": 0, "dependency_max_ports": 1}).security
    events, got = _each_window(rules, {0: ([_dep(0, port=5432), _dep(0, port=None)], [], [])})
    assert got == [([("new_dependency", 0, None)], {"dependency_edges_capped": 1})]
    assert sorted(events.edges) == [("api", "db", None, 6)]


def test_a_pair_restored_above_its_cap_takes_no_new_edge_until_it_is_below():
    """A lowered dependency_max_ports: the pair keeps the edges it holds, and while it holds
    more than the cap every new edge is counted, none kept (a review's mutant: a negative
    room cut the window's new edges from the end, keeping the lowest)."""
    before = Config().replace(security={"warmup_seconds": 0}).security
    events = SecurityEvents(WS, before)
    events.add_window(0, [_dep(0, port=p) for p in range(5000, 5004)], [], [])
    events.advance(WS * 1000 - 1, False)
    rules = Config().replace(security={
        "warmup_seconds": 0, "dependency_max_ports": 2}).security
    restored = SecurityEvents(WS, rules, decode_events_state(encode_events_state(
        events.state())))
    restored.add_window(60, [_dep(60, port=p) for p in (5000, 7000, 7001, 7002)], [], [])
    lines, _, _ = restored.advance(120 * 1000 - 1, False)
    assert lines == [] and restored.counts == {"dependency_edges_capped": 3}
    assert sorted(k[2] for k in restored.edges) == [5000, 5001, 5002, 5003]

@pytest.mark.parametrize("rotate", [False, True], ids=["same ports", "new ports"])
@pytest.mark.parametrize("kind", ["dependency", "exposure"])
def test_a_sweep_across_many_pairs_or_apps_keeps_the_state_within_its_total(kind, rotate):
    """The caps bound a pair's edges and an app's ports, not all of them: an accepted sweep
    across 30 apps (an internet scan of each; an app sweeping the 30 others) grew the state
    by each cap a pair or app, 40 MB and 0.6 s a timer for 200 apps at the exposure cap (a
    review). With a total of 200 over 30 x 10 ports a window, every app's known port or edge
    stays, the state holds at most 200, and the windows after the first report nothing but
    what went silent."""
    rules = Config().replace(security={
        "warmup_seconds": 120, "dependency_silence_seconds": 180, "exposure_silence_seconds": 300,
        "dependency_max_ports": 50, "exposure_max_ports": 50,
        "dependency_max_total_edges": 200, "exposure_max_total_ports": 200}).security
    apps = [f"app-{a:02}" for a in range(30)]
    events = SecurityEvents(WS, rules)
    sizes, per_window, capped = [], [], []
    for i in range(60):
        w = i * WS
        ports = range(10000 + (i * 10 if rotate else 0), 10010 + (i * 10 if rotate else 0))
        if kind == "dependency":
            rows = [_dep(w, server=app) for app in apps] + (
                [_dep(w, server=app, port=p) for app in apps for p in ports] if i >= 3 else [])
            events.add_window(w, rows, [], [])
        else:
            rows = [_exp(w, "i-1", app=app) for app in apps] + (
                [_exp(w, "i-1", port=p, app=app) for app in apps for p in ports]
                if i >= 3 else [])
            events.add_window(w, [], rows, [])
        per_window.append(len(events.advance((w + WS) * 1000 - 1, False)[0]))
        capped.append(sum(events.counts.values()))
        sizes.append(len(events.edges) if kind == "dependency"
                     else sum(map(len, events.exposed.values())))
        assert ({key[1] for key in events.edges if key[2] == 5432} if kind == "dependency"
                else {app for app, seen in events.exposed.items() if "i-1 443/6" in seen}) \
            == set(apps)
    assert per_window[3] == 200 - 30 and max(sizes) == 200 and capped[3] == 300 - 170
    if rotate:   # what went silent leaves room: the total's worth again, at most
        assert max(per_window[4:]) <= 2 * 170
    else:
        assert per_window[4:] == [0] * 56 and set(capped[4:]) == {300 - 170}


def test_past_the_totals_which_new_edges_and_ports_fit_is_the_input_s_not_its_order():
    rules = Config().replace(security={
        "warmup_seconds": 0, "dependency_max_ports": 3, "exposure_max_ports": 3,
        "dependency_max_total_edges": 3, "exposure_max_total_ports": 3}).security
    deps = [_dep(0, server=s, port=p) for s in ("db", "cache") for p in (7001, 7000)]
    exposure = [_exp(0, r, port=p, app=a) for a in ("web", "api") for r, p in
                (("i-2", 80), ("i-1", 443))]
    kept = set()
    for order in (1, -1):
        events = SecurityEvents(WS, rules)
        events.add_window(0, deps[::order], exposure[::order], [])
        lines, _, _ = events.advance(WS * 1000 - 1, False)
        assert events.counts == {"dependency_edges_total_capped": 1,
                                 "exposure_ports_total_capped": 1}
        kept.add((frozenset(events.edges), frozenset(
            (app, port) for app, seen in events.exposed.items() for port in seen)))
    assert kept == {(frozenset({("api", "cache", 7000, 6), ("api", "cache", 7001, 6),
                                ("api", "db", 7000, 6)}),
                     frozenset({("api", "i-1 443/6"), ("api", "i-2 80/6"),
                                ("web", "i-1 443/6")}))}


def test_a_state_restored_above_a_total_is_trimmed_at_its_next_window_longest_silent_first():
    """A savepoint of a release without the totals, or a lowered total: the state is cut to it
    when event time passes the next window, the edges forgotten reported gone, both counted."""
    before = Config().replace(security={"warmup_seconds": 0}).security
    events = SecurityEvents(WS, before)
    for w in (0, 60, 120):
        events.add_window(w, [_dep(w, port=5432 + w)], [_exp(w, "i-1", port=8000 + w)], [])
        events.advance((w + WS) * 1000 - 1, False)
    rules = Config().replace(security={
        "warmup_seconds": 0, "dependency_max_ports": 2, "exposure_max_ports": 2,
        "dependency_max_total_edges": 2, "exposure_max_total_ports": 2}).security
    restored = SecurityEvents(WS, rules, decode_events_state(encode_events_state(
        events.state())))
    restored.add_window(180, [], [], [])
    lines, _, _ = restored.advance(240 * 1000 - 1, False)
    assert [(e["event"], e["time"], e["port"], e["last_seen"]) for e in map(json.loads, lines)] \
        == [("dependency_gone", 180, 5432, 0)]
    assert restored.counts == {"dependency_edges_total_capped": 1,
                               "exposure_ports_total_capped": 1}
    assert sorted(k[2] for k in restored.edges) == [5492, 5552]
    assert sorted(restored.exposed["web"]) == ["i-1 8060/6", "i-1 8120/6"]


def test_a_state_restored_above_a_total_keeps_what_the_next_window_sees_counted_once():
    """The trim ran before the window it came with: an edge and a port seen in it, the
    longest silent before it, were forgotten (the edge reported gone while its traffic went
    on), then kept out as new, each counted twice, while one silent since kept its room (a
    review). Silence is measured after the window: the one silent longest goes."""
    before = Config().replace(security={"warmup_seconds": 0}).security
    events = SecurityEvents(WS, before)
    for w in (0, 60, 120):
        events.add_window(w, [_dep(w, port=5432 + w)], [_exp(w, "i-1", port=8000 + w)], [])
        events.advance((w + WS) * 1000 - 1, False)
    rules = Config().replace(security={
        "warmup_seconds": 0, "dependency_max_ports": 2, "exposure_max_ports": 2,
        "dependency_max_total_edges": 2, "exposure_max_total_ports": 2}).security
    restored = SecurityEvents(WS, rules, decode_events_state(encode_events_state(
        events.state())))
    restored.add_window(180, [_dep(180, port=5432)], [_exp(180, "i-1", port=8000)], [])
    lines, _, _ = restored.advance(240 * 1000 - 1, False)
    assert [(e["event"], e["time"], e["port"], e["last_seen"]) for e in map(json.loads, lines)] \
        == [("dependency_gone", 180, 5492, 60)]
    assert restored.counts == {"dependency_edges_total_capped": 1,
                               "exposure_ports_total_capped": 1}
    assert sorted((k[2], e[5]) for k, e in restored.edges.items()) == [(5432, 180), (5552, 120)]
    assert restored.exposed["web"] == {"i-1 8000/6": (0, 180), "i-1 8120/6": (120, 120)}


# "after the end": a replay's final watermark fires every window's timer, and none of the
# deadline timers asked for meanwhile; a port forgotten between two windows is forgotten all
# the same.
@pytest.mark.parametrize("end", [10**9, -1], ids=["streaming", "after the end"])
def test_exposure_new_says_whether_the_app_knew_the_port_and_forgets_after_silence(end):
    windows = {0: ([], [_exp(0, "i-1")], []),
               180: ([], [_exp(180, "i-2"), _exp(180, "i-1", port=8443)], []),
               600: ([], [_exp(600, "i-1")], [])}
    events, _ = _run(windows, end, ended_at=end < 0)
    assert [(e["time"], e["resource"], e["port"], e["app_port_known"]) for e in events] == [
        (180, "i-1", 8443, 0), (180, "i-2", 443, 1),
        (600, "i-1", 443, 0)]   # forgotten 300 s after its last window: new again


def test_past_exposure_max_ports_an_app_s_new_ports_are_counted_not_kept():
    """Past the cap an app forgot its longest silent ports to make room: a scan its resources
    accept gave an exposure_new a port past the cap every window, and the app's known ports
    were forgotten and new again (a review)."""
    rules = Config().replace(security={
        "warmup_seconds": 120, "exposure_max_ports": 3}).security
    events, got = _each_window(rules, {
        0: ([], [_exp(0, "i-1")], []),
        120: ([], [_exp(120, "i-1", port=p) for p in (1001, 1002, 1003)], []),
        180: ([], [_exp(180, "i-1"), _exp(180, "i-1", port=1003)], [])})
    assert got == [([], {}),
                   ([("exposure_new", 120, 1001), ("exposure_new", 120, 1002)],
                    {"exposure_ports_capped": 1}),
                   ([], {"exposure_ports_capped": 1})]
    assert sorted(events.exposed["web"]) == ["i-1 1001/6", "i-1 1002/6", "i-1 443/6"]


def test_past_exposure_max_ports_a_scan_in_one_window_keeps_the_known_ports():
    rules = Config().replace(security={
        "warmup_seconds": 120, "exposure_max_ports": 2}).security
    events, got = _each_window(rules, {
        0: ([], [_exp(0, "i-1", port=22)], []),
        120: ([], [_exp(120, "i-1", port=p) for p in (30002, 22, 30001)], [])})
    assert got[1] == ([("exposure_new", 120, 30001)], {"exposure_ports_capped": 1})
    assert sorted(events.exposed["web"]) == ["i-1 22/6", "i-1 30001/6"]


def _sweep(kind, w, i, rotate, width=50):
    """A window's rows of an accepted sweep of `width` ports: the same ports every window, or
    new ones."""
    ports = range(10000 + (i * width if rotate else 0), 10000 + (i + 1) * width if rotate
                  else 10000 + width)
    return [_dep(w, port=p) for p in ports] if kind == "dependency" else \
        [_exp(w, "i-1", port=p) for p in ports]


@pytest.mark.parametrize("rotate", [False, True], ids=["same ports", "new ports"])
@pytest.mark.parametrize("kind", ["dependency", "exposure"])
def test_a_sweep_past_a_cap_gives_events_and_state_bounded_by_the_cap_every_window(kind, rotate):
    """An accepted sweep of 50 ports a window for an hour, against a cap of 4: the known edge
    or port is kept throughout, the state holds at most the cap, and a window's events are at
    most the cap's room once and what went silent (none past the first window when the sweep
    repeats its ports); before, each window past the first gave 47 new and 47 gone (a
    review)."""
    rules = Config().replace(security={
        "warmup_seconds": 120, "dependency_silence_seconds": 180, "exposure_silence_seconds": 300,
        "dependency_max_ports": 4, "exposure_max_ports": 4}).security
    real = (lambda w: _dep(w)) if kind == "dependency" else (lambda w: _exp(w, "i-1"))
    windows = {}
    for i in range(60):
        w = i * WS
        rows = [real(w)] + (_sweep(kind, w, i, rotate) if i >= 3 else [])
        windows[w] = (rows, [], []) if kind == "dependency" else ([], rows, [])
    events = SecurityEvents(WS, rules)
    sizes, per_window = [], []
    for w in sorted(windows):
        events.add_window(w, *windows[w])
        per_window.append(len(events.advance((w + WS) * 1000 - 1, False)[0]))
        sizes.append(len(events.edges) if kind == "dependency" else len(events.exposed["web"]))
        assert (("api", "db", 5432, 6) in events.edges if kind == "dependency"
                else "i-1 443/6" in events.exposed["web"])
    assert per_window[3] == 3 and max(sizes) == 4
    if rotate:   # what went silent leaves room: the cap's worth again, at most
        assert max(per_window[4:]) <= 2 * 3
    else:
        assert per_window[4:] == [0] * 56


@pytest.mark.parametrize("end", [10**9, -1], ids=["streaming", "after the end"])
def test_a_silence_counts_in_whole_windows(end):
    """Silences of 90 s in 60 s windows: traffic in the windows at 0 and 120 may be 61 s apart,
    so neither the edge nor the exposed port went silent in between. Their deadline is the
    first window that starts 90 s after the window at 120 ended: 300."""
    rules = Config().replace(security={
        "warmup_seconds": 120, "dependency_silence_seconds": 90,
        "exposure_silence_seconds": 90}).security
    windows = {w: ([_dep(w)], [_exp(w, "i-1")], []) for w in (0, 120)}
    windows[300] = ([], [_exp(300, "i-1")], [])
    events, _ = _run(windows, end, ended_at=end < 0, rules=rules)
    assert [(e["event"], e["time"]) for e in events] == [
        ("dependency_gone", 300), ("exposure_new", 300)]


def test_a_late_window_s_edge_and_port_go_silent_at_their_own_deadline():
    """A window taken after a later one (SecurityEvents takes windows in the order they come)
    brings an edge and an exposed port last seen before every other: a timer looks for silent
    ones only when the earliest last window may be past its horizon, so that earliest must be
    theirs, or they outlive their silence until the later window's."""
    events = SecurityEvents(WS, RULES)
    events.advance(events.add_window(600, [_dep(600)], [_exp(600, "i-1")], []), False)
    late = events.add_window(0, [_dep(0, server="cache", port=6379)], [_exp(0, "i-2")], [])
    assert events.advance(late, False)[0] == []
    # cache's silence ends at 0 + 60 + 180 s, db's at 840; i-2 is forgotten 360 s after 0.
    gone, _, _ = events.advance(240 * 1000 - 1, False)
    assert [(e["event"], e["time"], e["server_app"]) for e in map(json.loads, gone)] == [
        ("dependency_gone", 240, "cache")]
    assert sorted(events.exposed["web"]) == ["i-1 443/6", "i-2 443/6"]
    events.advance(360 * 1000 - 1, False)
    assert sorted(events.exposed["web"]) == ["i-1 443/6"]
    assert list(events.edges) == [("api", "db", 5432, 6)]

def test_restored_edges_and_ports_go_silent_each_at_its_own_deadline():
    """After a restore the first timer looks at every edge and exposed port, and later ones
    only once the earliest of their last windows may be past the horizon: each still goes
    at its own deadline."""
    events = SecurityEvents(WS, RULES)
    for w, server, resource in ((0, "db", "i-1"), (120, "cache", "i-2")):
        events.advance(events.add_window(w, [_dep(w, server=server)], [_exp(w, resource)], []),
                       False)
    events = SecurityEvents(WS, RULES, decode_events_state(encode_events_state(events.state())))
    assert events.advance(200 * 1000 - 1, False)[0] == []
    gone, _, _ = events.advance(240 * 1000 - 1, False)
    assert [(e["time"], e["server_app"]) for e in map(json.loads, gone)] == [(240, "db")]
    events.advance(360 * 1000 - 1, False)
    assert sorted(events.exposed["web"]) == ["i-2 443/6"]

def test_reject_spikes_against_the_app_s_own_baseline():
    windows = {w: ([], [], [_rej(w)]) for w in (0, 60, 120)}
    windows[180] = ([], [], [_rej(180, src=f"198.51.100.{i}") for i in range(8)])
    events, rejected = _run(windows, 10**9)
    assert [(e["event"], e["time"], e["rejected_flows"], e["baseline_flows"],
             e["baseline_windows"]) for e in events] == [("reject_spike", 180, 8, 3, 3)]
    assert [(r["window_start"], r["flows"], r["sources"], r["spike"]) for r in rejected] == [
        (0, 1, 1, 0), (60, 1, 1, 0), (120, 1, 1, 0), (180, 8, 8, 1)]


def test_once_settled_at_the_end_later_timers_change_nothing():
    """TrackEvents skips the final watermark's remaining timers once `settled`: it must be set
    only when no window is held, and every later ended call must then be a no-op."""
    events = SecurityEvents(WS, RULES)
    timers = {events.add_window(w, [_dep(w, server=s)], [_exp(w, f"i-{w}")], [_rej(w)])
              for w, s in ((0, "db"), (60, "cache"), (300, "db"))}
    first, *rest = sorted(timers)
    events.advance(first, ended=True)   # the window at 0 only: two still held
    assert not events.settled and len(events.pending) == 2
    lines = []
    for t in rest:
        got, _, later = events.advance(t, ended=True)
        lines.extend(got)
        timers.update(later)
    assert events.settled and not events.pending
    assert [e["event"] for e in map(json.loads, lines)] == [
        "dependency_gone", "new_dependency", "exposure_new"]
    state = encode_events_state(events.state())
    for t in sorted(timers):
        assert events.advance(t, ended=True) == ([], [], set())
    assert encode_events_state(events.state()) == state
    events.add_window(360, [_dep(360)], [], [])
    assert not events.settled


def test_what_the_caps_forget_is_counted_apart_from_what_goes_silent():
    """The house rule, count what is dropped: nothing told an operator that an input pushed
    state out past a cap (a review). `counts` holds the last advance's."""
    rules = Config().replace(security={
        "warmup_seconds": 120, "dependency_silence_seconds": 180, "exposure_silence_seconds": 300,
        "dependency_max_ports": 2, "exposure_max_ports": 3}).security
    windows = {0: ([_dep(0), _dep(0, server="cache", port=6379)], [_exp(0, "i-1")], []),
               # a pair past the cap by one edge, the other by two; an app by one port
               60: ([_dep(60, port=p) for p in (6432, 7000)]
                    + [_dep(60, server="cache", port=p) for p in (1, 2, 3)],
                    [_exp(60, "i-1", port=p) for p in (1001, 1002, 1003)], []),
               600: ([], [], [])}   # every edge and port kept since has gone silent
    events = SecurityEvents(WS, rules)
    counts = []
    for w in sorted(windows):
        events.add_window(w, *windows[w])
        events.advance((w + WS) * 1000 - 1, False)
        counts.append(dict(events.counts))
    assert counts == [{}, {"dependency_edges_capped": 3, "exposure_ports_capped": 1}, {}]
    assert not events.edges and not events.exposed


class _EveryLook(SecurityEvents):
    """SecurityEvents as before its floors: every timer looks at every edge and exposed port."""

    def _silent_edges(self, timestamp, ended, events):
        self._edges_floor = None
        super()._silent_edges(timestamp, ended, events)

    def _forget_exposure(self, timestamp):
        self._exposed_floor = None
        super()._forget_exposure(timestamp)


_SMALL_CAPS = {
    "warmup_seconds": 60, "dependency_silence_seconds": 120, "exposure_silence_seconds": 120,
    "dependency_max_ports": 3, "dependency_max_total_edges": 6, "exposure_max_ports": 3,
    "exposure_max_total_ports": 6}
_SMALL_CONFIG = Config().replace(security=_SMALL_CAPS)
_SMALL = _SMALL_CONFIG.security
_LOWERED = Config().replace(security={**_SMALL_CAPS, "dependency_max_total_edges": 3,
                                      "exposure_max_total_ports": 3}).security
_APPS = ("a", "b", "c")
_WINDOW_OPS = st.tuples(
    st.just("add"), st.integers(0, 10),
    st.lists(st.tuples(st.sampled_from(_APPS), st.sampled_from(_APPS),
                       st.sampled_from((22, 443, 5432))), max_size=4, unique=True),
    st.lists(st.tuples(st.sampled_from(_APPS), st.sampled_from(("i-1", "i-2")),
                       st.sampled_from((22, 443))), max_size=4, unique=True))
_ADVANCE_OPS = st.one_of(
    st.tuples(st.just("watermark"), st.integers(0, 16)),
    st.tuples(st.just("timer"), st.integers(0, 32), st.integers(-1, 0), st.booleans()))


# Beside the random ones: an app's ports last seen in three windows (the floor is the
# earliest of the two left after the first goes), an app's first port seen again later than its
# second, and edges and apps last seen at 60, 0, 60 in that order (their floors found by a
# restored state's first look).
@example([("add", 0, [], [("a", "i-1", 22)]), ("add", 1, [], [("a", "i-1", 443)]),
          ("add", 2, [], [("a", "i-2", 22)]), ("watermark", 16)])
@example([("add", 0, [], [("a", "i-1", 22), ("a", "i-1", 443)]),
          ("add", 1, [], [("a", "i-1", 22)]), ("watermark", 2), ("restore", False),
          ("timer", 4, -1, False), ("watermark", 16)])
@example([("add", 0, [("a", "b", 22), ("a", "c", 22)], [("a", "i-1", 22), ("b", "i-1", 22)]),
          ("add", 1, [("a", "b", 22), ("b", "c", 22)], [("a", "i-1", 22), ("c", "i-1", 22)]),
          ("watermark", 2), ("restore", False), ("timer", 4, -1, False), ("watermark", 16)])
@settings(max_examples=1000, deadline=None, derandomize=True)
@given(st.lists(st.one_of(_WINDOW_OPS, _ADVANCE_OPS, _ADVANCE_OPS,
                          st.tuples(st.just("restore"), st.booleans())), max_size=40))
def test_the_floors_change_no_timer_s_lines_nor_state(ops):
    """Against every timer looking at every edge and exposed port: windows in any order (late
    ones), the timers asked for fired as a watermark passes them, and timers at any time (a
    deadline's own millisecond or the one after it, earlier than the last, or the input's
    end), restores (with the totals lowered: trimmed), several apps each with several ports:
    each advance's lines, timers and counts, and the state, the same."""
    new, old = SecurityEvents(WS, _SMALL), _EveryLook(WS, _SMALL)
    added, timers = set(), set()

    def advance(t, ended=False):
        got = new.advance(t, ended)
        assert got == old.advance(t, ended) and new.counts == old.counts
        assert new.state() == old.state() and new.pending == old.pending
        timers.update(got[2])

    for op in ops:
        if op[0] == "add":
            _, i, deps, ports = op
            w = i * WS
            if w in added:
                continue
            added.add(w)
            rows = ([_dep(w, client, server, port) for client, server, port in deps],
                    [_exp(w, resource, port, app) for app, resource, port in ports], [])
            timer = new.add_window(w, *rows)
            assert old.add_window(w, *rows) == timer
            timers.add(timer)
        elif op[0] == "watermark":
            while timers and min(timers) <= op[1] * WS * 1000:
                t = min(timers)
                timers.discard(t)
                advance(t)
        elif op[0] == "timer":
            _, k, d, ended = op
            advance(k * WS * 500 + d, ended)
        else:
            rules = _LOWERED if op[1] else _SMALL
            state = encode_events_state(new.state())
            assert state == encode_events_state(old.state())
            pending = dict(new.pending)
            new = SecurityEvents(WS, rules, decode_events_state(state))
            old = _EveryLook(WS, rules, decode_events_state(state))
            for w, rows in pending.items():
                new.add_window(w, *rows)
                old.add_window(w, *rows)
    for t in sorted(timers):   # the input's end: the final watermark fires the timers left
        advance(t, True)


class _Job:
    """job.flink.security.TrackEvents on stand-ins of PyFlink's runtime (tests/operator_stubs),
    as Flink drives it: each window's rows one element, the timers asked for fired in order as
    the watermark passes them; `restored` is a new instance from a copy of its keyed state and
    timers, as after a restore from a checkpoint taken between two calls."""

    def __init__(self, config, runtime=None):
        self.op, self.rt = TrackEvents(config), runtime or Runtime()
        self.op.open(self.rt)
        self.config, self.out = config, []

    def add(self, window_start, *rows):
        self.op.process_element(encode_window_rows(window_start, *rows), self.rt)

    def fire(self, watermark):
        """Fires every timer up to `watermark` (MAX_WATERMARK: the input's end)."""
        self.rt.watermark = watermark
        while self.rt.event_timers and min(self.rt.event_timers) <= watermark:
            t = min(self.rt.event_timers)
            self.rt.event_timers.discard(t)
            self.out.append((t, list(self.op.on_timer(t, self.rt))))

    def restored(self):
        runtime = Runtime()
        runtime.watermark, runtime.event_timers = self.rt.watermark, set(self.rt.event_timers)
        for name, state in self.rt.states.items():
            copy = runtime.states[name] = type(state)()
            if isinstance(state, Value):
                copy.stored = state.stored
            else:
                copy.extend(state)
        job = _Job(self.config, runtime)
        job.out = list(self.out)
        return job


# Beside the random ones: an edge gone, and an app's port forgotten while it keeps another,
# each at a deadline timer of its own (no window taken then), then a restore.
@example([("add", 0, [("a", "b", 22)], [("a", "i-1", 22)]),
          ("add", 1, [("a", "c", 22)], [("a", "i-1", 443)]), ("watermark", 4),
          ("restore",), ("add", 5, [("a", "b", 22)], [("a", "i-1", 22)]), ("watermark", 16)])
@example([("add", 0, [], [("a", "i-1", 22), ("a", "i-1", 443)]),
          ("add", 1, [], [("a", "i-1", 22)]), ("watermark", 3), ("restore",),
          ("add", 4, [], [("a", "i-1", 443)]), ("watermark", 16)])
@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.one_of(_WINDOW_OPS, _WINDOW_OPS, st.tuples(st.just("watermark"),
                                                              st.integers(0, 16)),
                          st.tuples(st.just("restore"))), max_size=30))
def test_track_events_restored_between_any_two_calls_goes_on_the_same(ops):
    """TrackEvents restored between any two calls (its value as last written, the windows
    held, the timers) goes on as the run that was not restored: the same lines, rejected
    lines and counts at every timer, to the input's end. After each timer the value last
    written, with the windows held added again, is what it holds."""
    job, restored = _Job(_SMALL_CONFIG), _Job(_SMALL_CONFIG)
    added = set()
    for op in ops:
        if op[0] == "add":
            _, i, deps, ports = op
            w = i * WS
            if w in added or (w + WS) * 1000 - 1 <= job.rt.watermark:
                continue   # CloseWindows sends a window before the watermark passes its end
            added.add(w)
            rows = ([_dep(w, client, server, port) for client, server, port in deps],
                    [_exp(w, resource, port, app) for app, resource, port in ports],
                    [_rej(w, app) for app, _, _ in ports])
            job.add(w, *rows)
            restored.add(w, *rows)
        elif op[0] == "watermark":
            for run in (job, restored):
                run.fire(op[1] * WS * 1000)
            _assert_written_is_held(restored)
        else:
            restored = restored.restored()
    for run in (job, restored):
        run.fire(MAX_WATERMARK)
    assert restored.out == job.out
    _assert_written_is_held(restored)   # as a savepoint of `stop --drain` takes it


def _assert_written_is_held(job):
    events = job.op.events
    if events is None:
        return
    stored = job.rt.states[EVENTS_STATE.name].stored
    again = SecurityEvents(WS, _SMALL, None if stored is None else decode_events_state(stored))
    for payload in job.rt.states[HELD_WINDOWS.name]:
        window_start, *rows = decode_window_rows(payload)
        again.add_window(window_start, *rows)
    assert again.state() == events.state() and again.pending == events.pending
