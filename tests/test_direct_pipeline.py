"""The job reading AWS-format flow files itself (connectors.files.aws_file_sources: one element per
file, read in the parse step) gives the rows of the independent computation and of the staged
replay, and dead-letters a bad file as staging does."""
import base64
import gzip
import json
import os

import pytest

import reference
from helpers import job_aggregates, read_records, run_replay, total_counts
from flowdredge.job.config import Config
from flowdredge.job.parse import staged_records
from flowdredge.job.replay import delivery_order, flow_files, stage_metadata
from flowdredge.job.flink.run import aws_files_job
from flowdredge.synthetic.estate import Scenario, generate

pytestmark = pytest.mark.minicluster

SCENARIO = Scenario(minutes=8, flows_per_minute=400, instances_per_app=3,
                    churn_per_minute=4.0, seed=13)
HEADER = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
          "bytes start end action log-status")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    out = generate(SCENARIO, str(folder / "estate"))
    # A delivery file cut short: its good first lines must not count, the file is one dead
    # letter (as staging leaves it).
    bad = folder / "bad"
    bad.mkdir()
    line = (f"2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 {SCENARIO.start} "
            f"{SCENARIO.start + 5} ACCEPT OK")
    body = gzip.compress(("\n".join([HEADER] + [line] * 2000) + "\n").encode())
    truncated = bad / "123456789012_vpcflowlogs_us-east-1_fl-1_20260101T0003Z_cut.log.gz"
    truncated.write_bytes(body[:len(body) // 2])
    metadata = str(folder / "staged-metadata.jsonl")
    stage_metadata([out.metadata_file], metadata)
    return [str(folder / "estate" / "flows"), str(bad)], out, metadata, str(truncated)


def _config(parallelism):
    return Config().replace(job={"parallelism": parallelism, "checkpoint_interval_seconds": 2})


def _direct(flows, metadata, output, config):
    aws_files_job(config, flow_files(flows)[0], metadata, output,
                  checkpoint_dir=os.path.join(output, "checkpoints")).execute("direct test")


@pytest.fixture(scope="module")
def direct_runs(inputs, tmp_path_factory):
    """The job over the inputs' files at a parallelism, run once: the tests of the same run
    read its outputs (a run is a mini-cluster's start)."""
    flows, _, metadata, _ = inputs
    runs = {}

    def output(parallelism) -> str:
        if parallelism not in runs:
            runs[parallelism] = str(tmp_path_factory.mktemp(f"direct-p{parallelism}"))
            _direct(flows, metadata, runs[parallelism], _config(parallelism))
        return runs[parallelism]
    return output


@pytest.mark.parametrize("parallelism", [1, 2])
def test_direct_files_give_the_contract_and_dead_letter_a_bad_file(inputs, direct_runs,
                                                                   parallelism):
    flows, out, metadata, truncated = inputs
    expected = reference.aggregates(flows[:1], [out.metadata_file])
    output = direct_runs(parallelism)

    assert job_aggregates(output) == expected
    counts = total_counts(output)
    assert counts["flows_aggregated"] == out.flows
    assert counts["flows_late"] == 0 and counts["groups_after_max_wait"] == 0
    dead = [d for d in read_records(output, "dead_letter") if d["stage"] == "flows"]
    assert [(d["reason"], d["source"]) for d in dead] == [("bad_gzip", truncated)]
    assert counts["dead_letter_bad_gzip"] == 1


def test_direct_files_give_what_the_staged_replay_gives(inputs, direct_runs, tmp_path):
    flows, out, metadata, _ = inputs
    direct = direct_runs(2)
    run_replay(flows, [out.metadata_file], str(tmp_path / "staged"), _config(2))

    assert job_aggregates(direct) == job_aggregates(str(tmp_path / "staged"))
    # Every count too (the same records, parsed the same way), but how many flow groups found
    # the metadata behind them, which is timing.

    def counts(folder):
        return {k: v for k, v in total_counts(str(folder)).items() if k != "groups_waited"}
    assert counts(direct) == counts(tmp_path / "staged")

    def dead(folder):
        return sorted((d["stage"], d["reason"], d["source"], d["excerpt"])
                      for d in read_records(str(folder), "dead_letter"))
    assert dead(direct) == dead(tmp_path / "staged")


def _as_firehose_objects(estate_flows, folder):
    """The estate's flows as Firehose writes a CloudWatch Logs subscription's records to S3:
    objects of gzip envelopes one after another. Its CloudWatch records as they are; its S3
    delivery files' lines as envelopes of one interface's lines each (CloudWatch Logs sends one
    log stream per record), timestamped with the flows' starts (as AWS does)."""
    os.makedirs(folder)
    files = [os.path.join(root, name) for root, _dirs, names in os.walk(estate_flows)
             for name in names]
    for n, path in enumerate(sorted(files, key=delivery_order)):
        if path.endswith(".b64"):
            with open(path) as fh:
                members = [base64.b64decode(line) for line in fh if line.strip()]
        else:
            with gzip.open(path, "rt") as fh:
                header, *lines = fh.read().splitlines()
            assert header == HEADER
            streams = {}
            for line in lines:
                streams.setdefault(line.split()[2], []).append(line)
            members = [gzip.compress(json.dumps({
                "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "flows",
                "logStream": f"{interface}-all", "subscriptionFilters": ["all"],
                "logEvents": [{"id": str(i), "timestamp": int(line.split()[10]) * 1000,
                               "message": line} for i, line in enumerate(of_interface)]})
                .encode()) for interface, of_interface in streams.items()]
        # Firehose's own naming: no delivery stamp, the order of the names is the delivery's.
        with open(os.path.join(folder, f"flows-1-2026-01-01-00-00-{n:02d}-fh"), "wb") as fh:
            fh.write(b"".join(members))


@pytest.mark.parametrize("parallelism", [1, 2])
@pytest.mark.parametrize("layout", ["aws", "staged"])
def test_firehose_objects_give_the_rows_of_the_same_flows_in_s3_files(inputs, tmp_path,
                                                                      layout, parallelism):
    """Read by the job or staged (a file's records several a staged line), a file's small
    records are parsed together: the rows and counts of the same flows."""
    flows, out, metadata, _ = inputs
    _as_firehose_objects(flows[0], str(tmp_path / "firehose"))
    if layout == "aws":
        _direct([str(tmp_path / "firehose")], metadata, str(tmp_path / "out"),
                _config(parallelism))
    else:
        run_replay([str(tmp_path / "firehose")], [out.metadata_file], str(tmp_path / "out"),
                   _config(parallelism))
        staged = (tmp_path / "out" / "staging" / "flow-records.txt").read_text().splitlines()
        assert len(staged) == len(os.listdir(tmp_path / "firehose"))
        assert sum(len(staged_records(line)) for line in staged) > 2 * len(staged)

    assert job_aggregates(str(tmp_path / "out")) == \
        reference.aggregates(flows[:1], [out.metadata_file])
    counts = total_counts(str(tmp_path / "out"))
    assert counts["flows_aggregated"] == out.flows and counts["dead_letter"] == 0
    assert counts["flows_late"] == 0 and counts["groups_after_max_wait"] == 0


@pytest.mark.parametrize("parallelism", [1, 2])
def test_flow_files_past_the_changelog_wait_for_its_end_and_lose_nothing(inputs, tmp_path,
                                                                         parallelism):
    """The parse step gets a flow file once the changelog's time has reached the file before
    it (connectors/jvm FileGate): a changelog that stops early holds the later files back until
    it ends, and they are then read and attributed with what it said."""
    flows, out, _, _ = inputs
    with open(out.metadata_file, encoding="utf-8") as fh:
        lines = fh.readlines()
    early = tmp_path / "early-changelog.jsonl"
    early.write_text("".join(lines[:len(lines) // 2]), encoding="utf-8")
    staged = str(tmp_path / "early-changelog-staged.jsonl")
    stage_metadata([str(early)], staged)
    _direct(flows[:1], staged, str(tmp_path / "out"), _config(parallelism))

    assert job_aggregates(str(tmp_path / "out")) == \
        reference.aggregates(flows[:1], [str(early)])
    counts = total_counts(str(tmp_path / "out"))
    assert counts["flows_aggregated"] == out.flows
    assert counts["flows_late"] == 0 and counts["groups_after_max_wait"] == 0


def test_the_gate_lets_each_flow_file_go_when_the_changelog_reaches_the_stamp_before_it(
        tmp_path):
    """The gate (connectors/jvm FileGate) lets the first flow file go at once, before the
    changelog has any time (nothing before it to wait for: held, a job would read nothing
    until the changelog moved); file n once the changelog's watermark reaches the stamp of
    file n-1, on the very millisecond, not file n's own stamp (that holds each file back a
    whole file longer, the newest until the changelog ends); the last at the changelog's end.
    The changelog is a FIFO written step by step."""
    import time
    import urllib.request
    from pyflink.common import Types
    from helpers import open_fifo_for_writing
    from flowdredge.connectors.files import aws_file_sources
    from flowdredge.connectors.jars import adapter_jars
    from flowdredge.connectors.streams import add_jars
    from flowdredge.job.flink.run import local_rest_options, make_env

    changelog = str(tmp_path / "changelog.jsonl")
    os.mkfifo(changelog)
    released = str(tmp_path / "released.log")
    rest = local_rest_options()
    env = make_env(Config().replace(job={"checkpoint_interval_seconds": 1}), flink_options=rest)
    env.set_parallelism(1)
    add_jars(env, adapter_jars())
    files = ["f0", "f1", "f2", "f3"]   # only names: no parse step reads them here
    sources = aws_file_sources(files, changelog, [1000, 2000, 3000, 4000], 0,
                               metadata_chunk_lines=1)

    def note(row, log=released):
        with open(log, "a") as out:
            out.write(row[0] + "\n")
        return row[0]

    sources.flows(env).map(note, output_type=Types.STRING()).print()
    client = env.execute_async("flowdredge gate test")
    job = f"http://127.0.0.1:{rest['rest.port']}/jobs/{client.get_job_id()}"

    def released_files():
        if not os.path.exists(released):
            return []
        with open(released) as log:
            return log.read().splitlines()

    def poll(done, what, timeout_s):
        deadline = time.monotonic() + timeout_s
        while not (result := done()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not in {timeout_s} s; out: {released_files()}")
            time.sleep(0.2)
        return result

    def files_out(count, timeout_s):
        return poll(lambda: len(released_files()) >= count and released_files(),
                    f"{count} files out", timeout_s)

    def completed():
        with urllib.request.urlopen(job + "/checkpoints", timeout=10) as answer:
            return json.load(answer)["counts"]["completed"]

    def after_a_checkpoint():
        # Two more completed: one started after this call, and what the gate let go before
        # its barrier has reached the log when it completes.
        first = completed()
        poll(lambda: completed() >= first + 2, "two checkpoints", 30)
        return released_files()

    writer = None
    try:
        writer = open_fifo_for_writing(changelog, 60)
        assert files_out(1, 60) == ["f0"]
        assert after_a_checkpoint() == ["f0"]
        # The changelog's watermark: its latest ts less 1 ms (bounded out-of-orderness, 0):
        # 2000, f1's stamp, the due time of f2.
        os.write(writer, b'{"type": "HEARTBEAT", "ts": 2001}\n')
        assert files_out(3, 30) == ["f0", "f1", "f2"]
        assert after_a_checkpoint() == ["f0", "f1", "f2"]
        os.close(writer)
        writer = None
        assert files_out(4, 30) == files
        end = client.get_job_execution_result()
        poll(end.done, "the job's end", 30)
        end.result()   # raises if the job failed
    finally:
        if writer is not None:
            cancelled = client.cancel()
            os.close(writer)   # the source's blocked read ends, so the job can stop
            cancelled.result()


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_changelog_event_far_after_the_flows_moves_no_clock(inputs, tmp_path, parallelism):
    """An ASSIGN and a HEARTBEAT 30 days ahead in the middle of a replayed changelog (a
    publisher's clock, a hand-edited line) moved the metadata clock and opened the flow-file
    gate: every change after them was late. The job reads neither (no flow starts after the
    flows' end, job.replay.flows_end), counts them, and gives the rows of the changelog
    without them."""
    flows, out, _, _ = inputs
    with open(out.metadata_file, encoding="utf-8") as fh:
        lines = fh.readlines()
    ahead = (SCENARIO.start + 30 * 86400) * 1000
    bad = tmp_path / "changelog-with-a-line-ahead.jsonl"
    bad.write_text("".join(lines[:len(lines) // 2]) + "".join(
        json.dumps(event) + "\n" for event in (
            {"type": "ASSIGN", "ts": ahead, "ip": "10.99.0.1", "app": "ahead"},
            {"type": "HEARTBEAT", "ts": ahead})) + "".join(lines[len(lines) // 2:]),
        encoding="utf-8")
    staged = str(tmp_path / "staged.jsonl")
    stage_metadata([str(bad)], staged)
    _direct(flows[:1], staged, str(tmp_path / "out"), _config(parallelism))

    assert job_aggregates(str(tmp_path / "out")) == \
        reference.aggregates(flows[:1], [out.metadata_file])
    counts = total_counts(str(tmp_path / "out"))
    assert counts["metadata_after_flows"] == 2 and counts["metadata_late"] == 0
    assert counts["flows_aggregated"] == out.flows
    assert counts["flows_late"] == 0 and counts["groups_after_max_wait"] == 0


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_folder_of_changelog_files_as_the_publisher_writes_them(inputs, tmp_path,
                                                                  parallelism):
    """A cluster's or Managed Flink's file job reads its changelog (io.metadata) as it is, not
    staged: a folder of JSON Lines files, read in the order of their paths (Flink's own order
    is none: a change read before the changes it follows would be late), in chunks of
    metadata.chunk_lines lines, a bad line's dead letter naming its file and line; a line of
    bytes that are not UTF-8 too (a review: the reader decoded them as U+FFFD, an owner's name
    changed without a word)."""
    flows, out, _, _ = inputs
    with open(out.metadata_file, encoding="utf-8") as fh:
        lines = fh.readlines()
    folder = tmp_path / "changelog"
    folder.mkdir()
    parts = 8
    size = -(-len(lines) // parts)
    for n in reversed(range(parts)):
        part = lines[n * size:(n + 1) * size]
        if n == 5:
            part.insert(3, "{not json\n")
        data = "".join(part).encode()
        if n == 6:   # an address no flow has: its UNASSIGN changes no flow's owner
            data += b'{"type":"ASSIGN","ts":%d,"ip":"100.64.255.254","app":"caf\xe9"}\n' % (
                json.loads(part[-1])["ts"])
        (folder / f"part-{n:02d}.jsonl").write_bytes(data)
    config = _config(parallelism).replace(metadata={"chunk_lines": 40})
    _direct(flows[:1], str(folder), str(tmp_path / "out"), config)

    assert job_aggregates(str(tmp_path / "out")) == \
        reference.aggregates(flows[:1], [out.metadata_file])
    counts = total_counts(str(tmp_path / "out"))
    assert counts["flows_aggregated"] == out.flows
    assert counts["metadata_late"] == 0 and counts["flows_late"] == 0
    # In the order of their reasons: at parallelism 2 two files' dead letters are written in
    # either order.
    dead = sorted((d for d in read_records(str(tmp_path / "out"), "dead_letter")
                   if d["stage"] == "metadata"), key=lambda d: d["reason"])
    assert [(d["reason"], d["source"]) for d in dead] == [
        ("not_json", f"{folder / 'part-05.jsonl'}:4"),
        ("not_text", f"{folder / 'part-06.jsonl'}:{size + 1}")]
    assert dead[1]["excerpt"].endswith('"app":"caf\\udffd"}')


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_resumed_job_reads_the_files_of_its_first_start(inputs, tmp_path, parallelism):
    """A review: a job resumed from a savepoint lists its flow files again, and the file
    numbers its source and gate restored were taken through the new list: with a file
    delivered in between (its stamp among the others'), files were read twice and others
    never, with no word. The gate keeps the first start's list; a file listed since is
    left to a job of its own."""
    import shutil
    import time
    import urllib.request
    from flowdredge.job.flink.run import local_rest_options
    flows, out, _metadata, _ = inputs
    files = flow_files(flows[:1])[0]
    added = files[len(files) // 2]
    first = [f for f in files if f != added]
    # Until a writer opens it, the changelog source waits to open this: the gate holds every
    # file after the first, which the savepoint below keeps.
    changelog = str(tmp_path / "changelog.jsonl")
    os.mkfifo(changelog)
    config = _config(parallelism)
    rest = local_rest_options()
    client = aws_files_job(config, first, changelog, str(tmp_path / "first"), flink_options=rest,
                           checkpoint_dir=str(tmp_path / "checkpoints")).execute_async("first")
    job = f"http://127.0.0.1:{rest['rest.port']}/jobs/{client.get_job_id()}"

    def call(path, body=None):
        request = urllib.request.Request(job + path, method="POST" if body else "GET",
                                         data=body and json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    try:
        deadline = time.monotonic() + 120
        savepoint = None
        while savepoint is None:
            assert time.monotonic() < deadline, "no savepoint in 120 s"
            time.sleep(0.5)
            if call("")["state"] != "RUNNING":
                continue
            trigger = call("/savepoints", {"target-directory": str(tmp_path / "savepoints"),
                                           "cancel-job": False})["request-id"]
            while (status := call(f"/savepoints/{trigger}"))["status"]["id"] != "COMPLETED":
                time.sleep(0.2)
            savepoint = status["operation"].get("location")   # none: a task not running yet
        cancelled = client.cancel()
    finally:
        with open(changelog, "w"):   # an empty changelog lets the source go
            pass
    cancelled.result()
    os.remove(changelog)
    shutil.copy(out.metadata_file, changelog)
    aws_files_job(config, files, changelog, str(tmp_path / "resumed"),
                  flink_options={"execution.state-recovery.path": savepoint},
                  checkpoint_dir=str(tmp_path / "checkpoints")).execute("resumed")

    assert job_aggregates(str(tmp_path / "resumed")) == reference.aggregates(
        first, [out.metadata_file])
    assert total_counts(str(tmp_path / "resumed"))["flows_late"] == 0
