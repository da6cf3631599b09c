"""The benchmark harness keeps working: a tiny workload through the job and the SQL baseline,
which must agree. No timing is asserted (the figures are for docs/performance.md)."""
import json
import os
import re

import pytest

from bench import harness
from bench.compare import read_aggregates
from flowdredge.synthetic.workload import Workload, generate
from flowdredge.job.replay import stage_flows


@pytest.mark.unit
def test_workload_is_deterministic_and_deliverable(tmp_path):
    w = Workload(flows=3000, minutes=6, instances=600, apps=40, cloudwatch_accounts=2, seed=3)
    first, second = generate(w, str(tmp_path / "a")), generate(w, str(tmp_path / "b"))
    assert first.flow_lines == 3000 and first.s3_lines + first.cloudwatch_lines == 3000 + \
        first.nodata_lines
    assert first.cloudwatch_records and first.s3_files and first.reassigned_ips
    # The same files (names relative to each output folder) with the same bytes.
    names = sorted(os.path.relpath(f, tmp_path / "a") for f in first.files)
    assert names == sorted(os.path.relpath(f, tmp_path / "b") for f in second.files)
    assert len(names) > first.s3_files
    for name in names + [os.path.relpath(first.metadata_file, tmp_path / "a")]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    with open(first.metadata_file) as fh:
        types = [json.loads(line)["type"] for line in fh]
    assert types[0] == "ASSIGN" and {"UNASSIGN", "HEARTBEAT"} <= set(types)
    stats = stage_flows([first.flows_dir], str(tmp_path / "staged.txt"), 5000)
    assert stats.records >= first.cloudwatch_records + first.s3_files


@pytest.mark.unit
def test_the_sql_baselines_paths_are_sql_strings(tmp_path):
    """The baseline's tables took their folders as they are, not as SQL strings: a work folder
    named it's ended the string, and the baseline's SQL failed to parse (as the job's did
    before streams.sql_string; a review)."""
    from bench.sql_baseline import statements
    folder = tmp_path / "it's"
    s3, changelog, output = str(folder / "s3"), str(folder / "c.jsonl"), str(folder / "out")
    literals = [re.findall(r"'path' = '((?:[^']|'')*)',", s) for s in statements(s3, changelog,
                                                                                  output)]
    assert [p.replace("''", "'") for found in literals for p in found] == \
        ["file://" + p for p in (s3, changelog, os.path.join(output, "aggregates"))]


@pytest.mark.unit
def test_profile_counts_samples_without_a_python_frame_apart(tmp_path):
    """py-spy's raw stacks begin with process entries whose command lines name
    pyflink.fn_execution: a category must match the frames, or every sample without a Python
    frame (the garbage collector, mostly) counts as PyFlink's framework."""
    from bench import profile
    worker = 'process 7:"python -m pyflink.fn_execution.beam.beam_boot --id=1-1"'
    client = 'process 1:"python -m bench.measure ours";process 2:"java -cp flink-python.jar"'
    raw = tmp_path / "python.txt"
    raw.write_text("\n".join([
        f"{client};{worker} 30",
        f"{client};{worker};_Worker.run (threading.py:1);EnrichedWriter.lines (job/enriched.py:90) 50",
        f"{client};{worker};_Worker.run (threading.py:1);"
        "DataInputOperation.process_encoded (apache_beam/runners/worker/bundle_processor.py:9) 20",
        f"{client};_run_module_as_main (<frozen runpy>:198) 99"]) + "\n")
    summary = profile.python_summary(str(raw))
    assert summary["samples"] == 100
    assert dict(summary["categories"]) == {
        profile.NO_PYTHON_FRAME: 30.0,
        "enriched JSON lines and their gzip (job/enriched.py)": 50.0,
        "PyFlink/Beam element handling and coders (framework)": 20.0}
    assert dict(summary["functions"])["EnrichedWriter.lines (job/enriched.py)"] == 50.0


@pytest.mark.minicluster
def test_harness_runs_both_pipelines_and_they_agree(tmp_path, monkeypatch):
    # The harness starts Flink in child processes; an earlier loopback run in this process left
    # PyFlink's marker that forbids that (see tests/helpers.subprocess_env).
    monkeypatch.delenv("PYFLINK_GATEWAY_DISABLED", raising=False)
    report = harness.run_all(harness.parser().parse_args([
        "--size", "3000", "--ips", "800", "--minutes", "5", "--parallelism", "1",
        "--variants", "ours-aggregates", "ours-aws", "sql", "--fixed-cost-size", "0", "--no-docs",
        "--work", str(tmp_path)]))
    # The SQL baseline's rows against each of ours, on the small and the full input.
    assert [c["agree"] for c in report["checks"]] == [True] * 4, report["checks"]
    assert {r["variant"] for r in report["rows"]} == {"ours-aggregates", "ours-aws", "sql"}
    for run in report["runs"]:
        assert run["timings"]["net_runtime_s"] > 0 and run["command"]
        assert read_aggregates(os.path.join(run["output"], "out"))
    assert os.path.exists(tmp_path / "results.md")


@pytest.mark.unit
def test_core_measures_every_stage_on_what_it_staged(tmp_path):
    """bench.core runs the job's pure-Python stages on staged records: every flow and every
    changelog event counted once, a figure per stage (none asserted: docs/performance.md)."""
    from bench import core
    from flowdredge.job.replay import stage_metadata
    w = Workload(flows=3000, minutes=6, instances=600, apps=40, seed=3)
    g = generate(w, str(tmp_path / "in"))
    stage_flows([g.flows_dir], str(tmp_path / "flows.txt"), 5000)
    stage_metadata([g.metadata_file], str(tmp_path / "metadata.jsonl"))
    result = core.measure(str(tmp_path / "flows.txt"), str(tmp_path / "metadata.jsonl"))
    with open(g.metadata_file) as fh:
        assert result["changelog_events"] == sum(1 for line in fh if line.strip())
    assert result["flows"] == g.flow_lines
    assert 0 < result["groups"] <= result["flows"]
    assert 0 <= result["groups_as_columns"] <= result["groups"]
    assert result["flows_per_group"] == round(result["flows"] / result["groups"], 1)
    assert set(result["changelog_us_per_event"]) == {"parse", "encode", "decode", "apply",
                                                     "state entries"}
    assert all(stage["seconds"] >= 0 for stage in result["stages"].values())


@pytest.mark.unit
def test_columnar_probe_runs_both_paths_on_the_same_records(tmp_path):
    from bench import columnar_probe
    from flowdredge.job.replay import stage_metadata
    w = Workload(flows=3000, minutes=6, instances=600, apps=40, seed=3,
                 cloudwatch_accounts=0)   # the probe reads S3 chunks only
    g = generate(w, str(tmp_path / "in"))
    stage_flows([g.flows_dir], str(tmp_path / "flows.txt"), 5000)
    stage_metadata([g.metadata_file], str(tmp_path / "metadata.jsonl"))
    result = columnar_probe.measure(str(tmp_path / "flows.txt"),
                                    str(tmp_path / "metadata.jsonl"), rounds=1)
    figures = result["rounds"][0]
    assert figures["rows"]["flows"] == g.flow_lines
    # The probe reads every line, NODATA ones too; the job's parse drops those.
    assert figures["columnar"]["flows"] == g.flow_lines + g.nodata_lines
    assert result["ips_in_snapshot"] > 0 and figures["columnar"]["partial_rows"] > 0


def _run(variant, name, round_, flows, span_s, cpu_s, runtime_s):
    return harness.Run(variant, 1, name, flows, ["x"], wall_s=span_s + 1, round=round_,
                       timings={"submitted_s": 2.0, "last_output_s": 2.0 + span_s,
                                "cpu_s": cpu_s, "net_runtime_s": runtime_s})


@pytest.mark.unit
def test_rounds_give_medians_and_ratios_taken_within_each_round():
    """--rounds N: a pipeline's figure is the median of its rounds' (each round's steady rate
    from that round's small and full runs), a ratio is taken round by round, and the range
    of both is kept."""
    # (round, small span, full span) per pipeline; the steady rate is 750 / (full - small).
    spans = {"ours-aggregates": [(0, 2, 5), (1, 3, 5), (2, 2, 12)],
             "ours": [(0, 4, 9), (1, 3, 8), (2, 4, 24)],
             "sql": [(0, 5, 20), (1, 9, 12), (2, 4, 19)]}
    runs = [run for variant, rounds in spans.items() for k, small, full in rounds
            for run in (_run(variant, "small", k, 250, small, small * 2, small),
                        _run(variant, "full", k, 1000, full, full * 2, full))]
    rows = {v: harness._figures(v, 1, runs) for v in spans}
    ours = rows["ours"]
    assert [r["steady_flows_per_s"] for r in ours["rounds"]] == [150, 150, 37.5]
    assert ours["steady_flows_per_s"] == 150 and ours["ranges"]["steady_flows_per_s"] == (37.5, 150)
    assert ours["span_s"] == 9 and ours["runtime_s"] == 9   # medians of the full runs'
    assert ours["steady_flows_per_cpu_s"] == 75
    vs_sql = harness._ratios(ours, rows["sql"], ("steady_flows_per_s",))
    # Round by round: 150/50, 150/250, 37.5/50; the ratio of the medians would be 3.
    assert vs_sql["steady_flows_per_s"] == 0.75
    assert vs_sql["ranges"]["steady_flows_per_s"] == (0.6, 3)
    vs_agg = harness._ratios(ours, rows["ours-aggregates"], ("runtime_s",))
    assert vs_agg["runtime_s"] == 1.8 and vs_agg["ranges"]["runtime_s"] == (1.6, 2)
    assert harness._ranged(ours, "steady_flows_per_s") == "150 (38–150)"
    assert harness._ranged(vs_sql, "steady_flows_per_s", 2) == "0.75 (0.60–3.00)"
    # A round without a steady rate (its full run no longer than its small one) is left out.
    runs[0].timings["last_output_s"] = 100.0
    first_none = harness._figures("ours-aggregates", 1, runs)
    assert first_none["rounds"][0]["steady_flows_per_s"] is None
    assert first_none["steady_flows_per_s"] == (375 + 75) / 2
    # One round: the figures of its runs, no range.
    single = harness._figures("ours", 1, [r for r in runs if r.round == 0])
    assert single["steady_flows_per_s"] == 150 and "ranges" not in single
    assert harness._ranged(single, "steady_flows_per_s") == "150"
    with pytest.raises(SystemExit):
        harness.parser().parse_args(["--rounds", "0"])


@pytest.mark.unit
def test_parse_batches_measures_the_same_flows_in_fewer_groups(capsys):
    from bench import parse_batches
    records = parse_batches.cloudwatch_records(200)
    _, alone = parse_batches.measure(records, 1, 1)
    _, together = parse_batches.measure(records, 100, 1)
    # Two minutes of 100 records each: one group a record alone, one a minute together.
    assert (alone, together) == (200, 2)
    assert parse_batches.main(["--records", "20", "--batches", "10", "--passes", "1"]) == 0
    assert "| 10 | " in capsys.readouterr().out


@pytest.mark.unit
def test_vpc_claims_owns_with_vpc_id_every_end_the_contest_left_without_owner(capsys):
    from bench import vpc_claims
    ips = vpc_claims.addresses(2000)

    def groups(with_vpc):
        return vpc_claims.groups_of(ips, 60, with_vpc, 1000)
    cases = {"none": (vpc_claims.index_of(ips, 0, False), groups(True)),
             "unassigned": (vpc_claims.index_of(ips, 1000, False), groups(True)),
             "claims": (vpc_claims.index_of(ips, 1000, True), groups(True)),
             # AWS's default format: the interfaces of contested addresses give their VPC.
             "interfaces": (vpc_claims.index_of(ips, 1000, True), groups(False)),
             # ... and every other interface, as its ASSIGNs name it.
             "assigned": (vpc_claims.index_of(ips, 1000, True, True), groups(False))}
    owned = {name: share for name, (_us, share) in vpc_claims.measure(cases, 1).items()}
    assert owned["claims"] == owned["assigned"] == owned["none"] > owned["interfaces"] \
        > owned["unassigned"] > 0
    assert vpc_claims.main(["--addresses", "500", "--records", "10", "--passes", "1"]) == 0
    assert "| claims + ASSIGN VPCs, no vpc-id | " in capsys.readouterr().out


@pytest.mark.unit
def test_publisher_bench_times_every_step_of_a_small_estate(capsys):
    from bench import publisher
    assert publisher.main(["--interfaces", "200", "--scopes", "4", "--churn", "0.02"]) == 0
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    # 200 interfaces of 2 private addresses, every tenth with a public one: an ASSIGN each, and
    # the HEARTBEAT.
    assert rows["first poll: derive"][5] == "420 addresses |"
    assert rows["first poll: reconcile"][2] == "421"
    assert int(rows["steady poll (2% churn): reconcile"][2]) > 4
    assert "steady poll (2% churn): the collection after it" in rows
    assert int(rows["resume: the snapshot and its clocks read (a process of its own)"][2]
               .replace(",", "")) > 400


@pytest.mark.aws
def test_publisher_reads_bench_reads_every_account_through_its_role(capsys):
    from bench import publisher_reads
    assert publisher_reads.main(["--accounts", "2", "--regions", "2", "--delay-ms", "0",
                                 "--polls", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2 accounts x 2 regions, 0 ms a call, parallel_reads 8"
    assert [line.split(":")[0] for line in lines[1:]] == ["poll 1", "poll 2"]
    assert all(" s, resident +" in line for line in lines[1:])


@pytest.mark.unit
def test_state_bench_reads_the_heap_in_use_over_every_generation():
    """bench.state's live heap after a full GC: jcmd GC.heap_info as the local JVM's parallel
    collector writes it (young and old generations) and as G1 does (one heap); Metaspace is
    not heap."""
    from bench.state import heap_used_mb
    parallel = (" PSYoungGen      total 18944K, used 1024K [0x00000000feb00000, 0x0000000100000000)\n"
                "  eden space 16384K, 6% used [0x00000000feb00000,0x00000000ff8c9760)\n"
                " ParOldGen       total 441032K, used 240640K [0x00000000fc000000, 0x00000000feb00000)\n"
                "  object space 441032K, 54% used [0x00000000fc000000,0x00000000fc000000)\n"
                " Metaspace       used 8929K, committed 9088K, reserved 1114112K\n"
                "  class space    used 1062K, committed 1152K, reserved 1048576K\n")
    g1 = (" garbage-first heap   total 65536K, used 7721K [0x00000000fc000000, 0x0000000100000000)\n"
          "  region size 1024K, 5 young (5120K), 1 survivors (1024K)\n"
          " Metaspace       used 8921K, committed 9088K, reserved 1114112K\n")
    assert heap_used_mb(parallel) == 236
    assert heap_used_mb(g1) == 8
    assert heap_used_mb("") is None


class _Proc:
    def __init__(self, ends_after: int):
        self.polls, self.ends_after = 0, ends_after

    def poll(self):
        self.polls += 1
        return 1 if self.polls > self.ends_after else None


class _Rest:
    """A JobManager whose savepoint status polls time out `timeouts` times, then answer."""

    def __init__(self, timeouts: int, location: str):
        self.timeouts, self.location = timeouts, location

    def send(self, method, path, body):
        return {"request-id": "r1"}

    def get(self, path):
        if self.timeouts:
            self.timeouts -= 1
            raise TimeoutError(f"GET {path}: no answer within 10 s")
        return {"status": {"id": "COMPLETED"}, "operation": {"location": self.location}}


def _state_job(tmp_path, rest, proc):
    from bench.state import Job
    job = Job.__new__(Job)
    job.rest, job.proc, job.job_id, job.folder = rest, proc, "j1", str(tmp_path / "run")
    return job


@pytest.mark.unit
def test_state_bench_savepoint_asks_again_while_the_job_manager_is_too_busy_to_answer(tmp_path):
    """A savepoint of a million IPs: the JobManager, collecting a full heap, left a status poll
    unanswered and bench.state gave up with 'run: timed out', naming nothing; it asks again
    while the job runs, and says the job ended without its savepoint when it did."""
    target = tmp_path / "savepoints"
    done = _state_job(tmp_path, _Rest(3, f"file:{target}/sp"), _Proc(ends_after=10))
    assert done.savepoint(str(target), 60)["location"] == f"file:{target}/sp"
    ended = _state_job(tmp_path, _Rest(100, ""), _Proc(ends_after=2))
    with pytest.raises(RuntimeError, match=r"the job ended without its savepoint \(GET "
                                           r"/jobs/j1/savepoints/r1: no answer within 10 s\)"):
        ended.savepoint(str(target), 60)


@pytest.mark.unit
def test_state_bench_makes_a_rest_request_that_timed_out_again(monkeypatch):
    """bench.state's REST client: a request whose connection timed out (urllib raises a
    URLError, not a TimeoutError) ended the run's step at once, even a savepoint's polling,
    which waits out timeouts (a review). It is made again, up to REST_ATTEMPTS times in all;
    a refused one is not (the cluster is gone), nor a POST whose answer timed out (it may have
    been done)."""
    import io
    import urllib.error
    import urllib.request
    from bench import state
    calls = []

    def timing_out(times, error):
        def urlopen(request, timeout):
            if isinstance(request, str):
                request = urllib.request.Request(request)
            calls.append((request.get_method(), request.full_url, timeout))
            if len(calls) <= times:
                raise error
            return io.BytesIO(b'{"state": "RUNNING"}')
        return urlopen

    connect_timeout = urllib.error.URLError(TimeoutError("timed out"))
    monkeypatch.setattr(state.urllib.request, "urlopen", timing_out(2, connect_timeout))
    assert state.Rest(8081).get("/jobs/j") == {"state": "RUNNING"}
    assert calls == [("GET", "http://127.0.0.1:8081/jobs/j", 10)] * 3

    calls.clear()
    monkeypatch.setattr(state.urllib.request, "urlopen", timing_out(3, connect_timeout))
    with pytest.raises(TimeoutError, match=r"^GET /jobs/j: no answer within 10 s "
                                           r"\(connecting, 3 times\)$"):
        state.Rest(8081).get("/jobs/j")
    assert len(calls) == state.REST_ATTEMPTS == 3

    calls.clear()
    monkeypatch.setattr(state.urllib.request, "urlopen", timing_out(
        1, urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))))
    with pytest.raises(urllib.error.URLError, match="refused"):
        state.Rest(8081).get("/jobs/j")
    assert len(calls) == 1

    calls.clear()
    monkeypatch.setattr(state.urllib.request, "urlopen", timing_out(1, TimeoutError("timed out")))
    with pytest.raises(TimeoutError, match=r"^POST /jobs/j/savepoints: no answer within 30 s "
                                           r"\(answering, 1 time\)$"):
        state.Rest(8081).send("POST", "/jobs/j/savepoints", {"cancel-job": True})
    assert calls == [("POST", "http://127.0.0.1:8081/jobs/j/savepoints", 30)]
    calls.clear()
    assert state.Rest(8081).get("/jobs/j") == {"state": "RUNNING"}   # a GET's answer: again
    assert len(calls) == 2


@pytest.mark.unit
def test_state_bench_gives_up_on_a_rest_api_that_takes_no_connection():
    """A server whose queue of connections is full takes no more (Linux drops the SYN): each
    connection times out, a URLError, and after REST_ATTEMPTS the request is a TimeoutError
    naming it, which a savepoint's polling waits out."""
    import socket
    from bench import state
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    queued = []
    try:
        for _ in range(4):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
            queued.append(client)
        with pytest.raises(TimeoutError, match=r"^GET /jobs: no answer within 0.2 s "
                                               r"\(connecting, 3 times\)$"):
            state.Rest(port, timeout_s=0.2).get("/jobs")
    finally:
        for client in queued:
            client.close()
        server.close()
