"""The `flowdredge` command as a user runs it (a subprocess)."""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import (job_aggregates, job_running_then, rest_with_failures, subprocess_env,
                     wrapper_calls)
from flowdredge import cli
from flowdredge.connectors import logs
from flowdredge.synthetic.estate import Scenario, generate
import reference

BIN = os.path.join(os.path.dirname(sys.executable), "flowdredge")


def flowdredge(*args, cwd=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env=subprocess_env())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-inputs")
    return folder, generate(Scenario(minutes=3, flows_per_minute=200, seed=5), str(folder))


@pytest.mark.minicluster
def test_replay_writes_the_contract_and_prints_a_summary(inputs, tmp_path):
    folder, out = inputs
    flows = str(folder / "flows")
    result = flowdredge("replay", "--flows", flows, "--metadata", out.metadata_file,
                        "--output", str(tmp_path / "out"), "--parallelism", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"flows attributed: {out.flows:,} into their windows" in result.stdout
    assert "top app -> app edges by bytes" in result.stdout
    assert "flow files and" in result.stderr               # progress lines on stderr
    assert not os.path.exists(tmp_path / "out" / "staging" / "flow-records.txt")   # not staged
    assert job_aggregates(str(tmp_path / "out")) == reference.aggregates([flows], [out.metadata_file])

    again = flowdredge("replay", "--flows", flows, "--metadata", out.metadata_file,
                       "--output", str(tmp_path / "out"))
    assert again.returncode == 2 and "--overwrite" in again.stderr

    # Issue #14, item 8: --overwrite checks and stages everything first; a mistake leaves the
    # previous outputs as they were.
    before = job_aggregates(str(tmp_path / "out"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    for metadata in (str(tmp_path / "typo.jsonl"), str(empty)):
        failed = flowdredge("replay", "--flows", flows, "--metadata", metadata,
                            "--output", str(tmp_path / "out"), "--overwrite")
        assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
        assert job_aggregates(str(tmp_path / "out")) == before
    assert not [n for n in os.listdir(tmp_path / "out") if n.startswith(".replay-")]

    summary = flowdredge("summary", str(tmp_path / "out"))
    assert summary.returncode == 0 and \
        f"flows attributed: {out.flows:,} into their windows" in summary.stdout


@pytest.mark.minicluster
def test_a_replay_into_a_folder_whose_name_holds_a_quote_writes_its_aggregates(inputs, tmp_path):
    """The aggregates' sink is declared in Flink SQL, the folder in a quoted string: a folder
    named it's ended the string, and the replay failed ('SQL parse failed. Encountered "s"')."""
    folder, out = inputs
    flows, output = str(folder / "flows"), str(tmp_path / "it's")
    result = flowdredge("replay", "--flows", flows, "--metadata", out.metadata_file,
                        "--output", output)
    assert result.returncode == 0, result.stderr[-3000:]
    assert job_aggregates(output) == reference.aggregates([flows], [out.metadata_file])


@pytest.mark.unit
def test_an_unknown_option_is_told_with_its_commands_usage(capsys):
    """scripts/demo --bogus showed the usage of flowdredge, not of its demo."""
    with pytest.raises(SystemExit) as refused:
        cli.main(["demo", "--bogus"])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: flowdredge demo ") and \
        err.endswith("flowdredge demo: error: unrecognized arguments: --bogus\n")
    for argv, usage in ((["query", "out", "top-talkers", "--bogus"], "flowdredge query output "
                         "top-talkers"), (["--bogus", "summary", "x"], "flowdredge")):
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert f"{usage}: error: unrecognized arguments: --bogus\n" in capsys.readouterr().err


@pytest.mark.unit
@pytest.mark.parametrize("command", ["demo", "generate"])
def test_the_estates_options_give_their_defaults_in_the_help(command, capsys):
    """`flowdredge demo --help` gave --minutes, --flows-per-minute and --seed with no word,
    and the README's 30 minutes nowhere (a review)."""
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, default in (("--minutes MINUTES", Scenario.minutes),
                            ("--flows-per-minute FLOWS_PER_MINUTE", Scenario.flows_per_minute),
                            ("--seed SEED", Scenario.seed)):
        assert re.search(rf"{option} [^-]*\(?default {default}\)?", text), (option, text)


@pytest.mark.unit
def test_scripts_demo_takes_streaming_anywhere_among_its_arguments():
    """`scripts/demo --minutes 2 --streaming` gave `--streaming` to the replay demo, refused."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for argv, command in ((["--minutes", "2", "--streaming", "--bogus"], "stream-demo"),
                          (["--bogus"], "demo")):
        done = subprocess.run([os.path.join(root, "scripts", "demo"), *argv],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2
        assert done.stderr.endswith(f"flowdredge {command}: error: unrecognized arguments: "
                                    f"--bogus\n")


@pytest.mark.unit
def test_scripts_setup_refuses_what_it_does_not_take_and_explains_its_options():
    """`scripts/setup --tests --bogus` (or `--tests --python`) ran the tests' setup, the rest
    unread, and `--help` was refused as an unknown option (a review)."""
    setup = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "scripts", "setup")
    for argv, error in ((["--tests", "--bogus"], "one option at most, got: --tests --bogus"),
                        (["--tests", "--python"], "one option at most, got: --tests --python"),
                        (["--bogus"], "unknown option '--bogus'")):
        done = subprocess.run([setup, *argv], capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stderr) == (
            2, f"usage: scripts/setup [--tests | --python]\nscripts/setup: error: {error}\n")
    done = subprocess.run([setup, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    assert [line.split()[0] for line in done.stdout.splitlines()
            if not line.startswith(" " * 4)] == ["usage:", "(none)", "--tests", "--python"]
    # kinesis-local only where npm is, which --tests requires (a review of a review's change:
    # the help said it was installed, whatever).
    text = " ".join(done.stdout.split())
    assert "kinesis-local in .tools/ for scripts/demo --streaming where npm is (else warns)" in text
    assert "--tests that, stopping without npm for kinesis-local, and Chromium" in text


@pytest.mark.unit
def test_the_tests_setup_stops_without_npm_naming_it(tmp_path):
    """Without Node.js, `scripts/setup --tests` warned and went on, and every kinesis test
    failed on the missing kinesis-local (a review). A copy of the setup, its virtualenv's
    stamp current, with a PATH of this PATH's tools but npm and node."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checkout, tools = tmp_path / "checkout", tmp_path / "bin"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / ".venv" / "bin").mkdir(parents=True)
    tools.mkdir()
    shutil.copy(os.path.join(root, "scripts", "setup"), checkout / "scripts" / "setup")
    shutil.copy(os.path.join(root, "pyproject.toml"), checkout / "pyproject.toml")
    (checkout / ".venv" / "bin" / "python").symlink_to(sys.executable)
    stamp = subprocess.run("sha1sum pyproject.toml | sha1sum | cut -c1-16", shell=True,
                           cwd=checkout, capture_output=True, text=True, check=True).stdout
    (checkout / ".venv" / ".flowdredge-stamp").write_text(stamp)
    for folder in os.environ["PATH"].split(os.pathsep):
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            if name not in ("npm", "node") and not (tools / name).exists():
                (tools / name).symlink_to(os.path.join(folder, name))
    done = subprocess.run(["bash", str(checkout / "scripts" / "setup"), "--tests"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": str(tools), "PYTHON": sys.executable,
                               "HOME": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.endswith(
        "[setup] error: Node.js with npm is required by the kinesis tests (the local Kinesis "
        "API server, npm kinesis-local): install nodejs and npm, and run scripts/setup "
        "--tests again\n")
    assert not (checkout / ".jars").exists()


@pytest.mark.unit
def test_scripts_demo_runs_the_full_setup_but_for_help(tmp_path):
    """`scripts/demo --help` built the jars and recorded the class archive (minutes on a fresh
    machine) before printing its help; scripts/cluster and scripts/managed-flink ran the
    virtualenv's setup alone for theirs (a review)."""
    for args, setup, command in ((["--help"], "setup --python", "flowdredge demo --help"),
                                 (["--streaming", "-h"], "setup --python",
                                  "flowdredge stream-demo -h"),
                                 (["--minutes", "2"], "setup", "flowdredge demo --minutes 2"),
                                 (["--streaming"], "setup", "flowdredge stream-demo")):
        assert wrapper_calls(tmp_path, "demo", args) == [setup, command]


@pytest.mark.unit
def test_scripts_demo_reads_relative_paths_from_where_it_is_run(tmp_path):
    """scripts/demo ran its command from the checkout: `--output out` (and `--config`) given
    in another folder named the checkout's out/, and the demo said its outputs were "under
    out/" (a review)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / "mine.yaml").write_text("job:\n  parallelism: 1000\n")
    done = subprocess.run([os.path.join(root, "scripts", "demo"), "--streaming", "--config",
                           "mine.yaml", "--output", "out"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "job.parallelism (or --parallelism) 1000 is more than" in done.stderr, done.stderr


@pytest.mark.unit
@pytest.mark.parametrize("args,message", [
    (["--metadata", "/nonexistent/changes.jsonl"], "no such metadata file"),
    (["--metadata", "{folder}"], "a folder; --metadata takes the changelog's files"),
    (["--flows", "/nonexistent/flows"], "no such file or folder"),
    (["--config", "/nonexistent/c.yaml"], "cannot read config"),
    # Issue #14, items 4 and 10: parallelism 0 ran at 1, 1000 ran the machine out of memory.
    (["--parallelism", "0"], "--parallelism must be at least 1"),
    (["--parallelism", "1000"], "more than this machine runs well"),
    (["--config", "{huge}"], "metadata.out_of_orderness_seconds: 99999999999999999999 is out of"),
    (["--config", "{float}"], "job.window_seconds: expected an integer, got 90.7"),
    (["--config", "{ranges}"], "metadata.ip_ranges: cannot read /nonexistent/ip-ranges.json"),
    # Item 10: an empty changelog gave 0 % attribution without a word.
    (["--metadata", "{empty}"], "holds no line"),
    # Item 13: an output folder that cannot be one.
    (["--output", "{file}"], "not a folder"),
    (["--output", "{file}/out"], "cannot write there"),
    (["--output", "/proc/flowdredge-out"], "cannot write there"),
])
def test_bad_arguments_are_clear_errors(inputs, tmp_path, args, message):
    folder, out = inputs
    files = {"huge": tmp_path / "huge.yaml", "float": tmp_path / "float.yaml",
             "empty": tmp_path / "empty.jsonl", "file": tmp_path / "a-file",
             "folder": folder / "metadata"}
    files["huge"].write_text("metadata:\n  out_of_orderness_seconds: 99999999999999999999\n")
    files["float"].write_text("job:\n  window_seconds: 90.7\n")
    files["ranges"] = tmp_path / "ranges.yaml"
    files["ranges"].write_text("metadata:\n  ip_ranges: /nonexistent/ip-ranges.json\n")
    files["empty"].write_text("\n\n")
    files["file"].write_text("not a folder\n")
    base = {"--flows": str(folder / "flows"), "--metadata": out.metadata_file,
            "--output": str(tmp_path / "out")}
    base.update({k: v.format(**files) for k, v in zip(args[::2], args[1::2])})
    result = flowdredge("replay", *[x for kv in base.items() for x in kv])
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    # A refused replay leaves no output folder behind.
    assert "--output" in args or not os.path.exists(tmp_path / "out")


@pytest.mark.unit
def test_a_local_heap_above_the_machine_s_memory_is_refused_before_anything_runs(
        tmp_path, monkeypatch, capsys):
    """job.local_heap_mb takes up to 2**31 - 1: a replay with a heap the JVM could not reserve
    staged its inputs, then said 'the job failed: Stderr:' (the JVM's 'Could not reserve
    enough space' only above it), and a demo generated its estate first. A heap the machine
    has is taken."""
    from flowdredge.synthetic import estate

    def went_on(*args, **kwargs):
        raise AssertionError("the demo generated its estate")
    monkeypatch.setattr(estate, "generate", went_on)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    for heap in (memory + 1, 2**31 - 1):
        (tmp_path / "c.yaml").write_text(f"job:\n  local_heap_mb: {heap}\n")
        assert cli.main(["demo", "--output", str(tmp_path / "demo"), "--config",
                         str(tmp_path / "c.yaml")]) == 2
        assert capsys.readouterr().err == (
            f"flowdredge: error: job.local_heap_mb {heap:,} is more than this machine's "
            f"memory ({memory:,} MB)\n")
    (tmp_path / "c.yaml").write_text(f"job:\n  local_heap_mb: {memory}\n")
    with pytest.raises(AssertionError, match="generated its estate"):
        cli.main(["demo", "--output", str(tmp_path / "demo"), "--config",
                  str(tmp_path / "c.yaml")])


def _s3_checkpoints_without_s3_file_system(tmp_path, monkeypatch, module, starts: str) -> None:
    """tmp_path/c.yaml checkpointing to s3://b/checkpoints, a local Flink (FLINK_HOME) with no
    S3 plugin, and `module`.`starts` raising if the job starts."""
    def started(*args, **kwargs):
        raise AssertionError("Flink started")
    monkeypatch.setattr(module, starts, started)
    monkeypatch.setenv("FLINK_HOME", str(tmp_path / "flink"))
    monkeypatch.setenv("FLINK_PLUGINS_DIR", str(tmp_path / "plugins"))
    (tmp_path / "c.yaml").write_text("job:\n  checkpoint_dir: s3://b/checkpoints\n")


@pytest.mark.unit
def test_a_replay_s_s3_checkpoints_without_flink_s_s3_file_system_are_refused_at_start(
        inputs, tmp_path, monkeypatch, capsys):
    """`flowdredge run` refused an s3:// job.checkpoint_dir where the local Flink has no S3 file
    system; a replay (and the demo) started Flink, which failed on it ('Could not find a file
    system implementation for scheme 's3''), the inputs staged."""
    from flowdredge.job.flink import run
    folder, out = inputs
    _s3_checkpoints_without_s3_file_system(tmp_path, monkeypatch, run, "aws_files_job")
    assert cli.main(["replay", "--config", str(tmp_path / "c.yaml"), "--flows",
                     str(folder / "flows"), "--metadata", out.metadata_file, "--output",
                     str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(
        "flowdredge: error: job.checkpoint_dir s3://b/checkpoints: this local Flink has no S3 "
        "file system")
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.unit
def test_run_names_every_s3_location_its_local_flink_cannot_reach_in_one_line(
        tmp_path, monkeypatch, capsys):
    """`flowdredge run` named each s3:// location at once (check_local_locations); since
    cc4b0cc _load_config refused an s3:// job.checkpoint_dir alone first, so a run writing to
    S3 was refused for its checkpoints, then, once fixed, for its --output. A missing
    snapshot is said before them, as before."""
    _s3_checkpoints_without_s3_file_system(tmp_path, monkeypatch, cli, "_start_run")
    run = ["run", "--config", str(tmp_path / "c.yaml"), "--flow-streams", "f",
           "--metadata-stream", "m", "--output", "s3://b/out"]
    assert cli.main(run) == 2
    assert capsys.readouterr().err.startswith(
        "flowdredge: error: --output s3://b/out, job.checkpoint_dir s3://b/checkpoints: this "
        "local Flink has no S3 file system")
    snapshot = tmp_path / "snapshot.jsonl"
    assert cli.main([*run, "--metadata-snapshot", str(snapshot)]) == 2
    assert capsys.readouterr().err == (
        f"flowdredge: error: kinesis.metadata_snapshot: {snapshot} does not exist\n")


@pytest.mark.unit
def test_a_demo_of_too_much_parallelism_is_refused_before_it_replaces_the_last_ones_inputs(
        tmp_path, monkeypatch, capsys):
    """`flowdredge demo --parallelism 1000` generated its estate, replacing the previous
    demo's inputs, and was refused only then (a review)."""
    from flowdredge.synthetic import estate

    def went_on(*args, **kwargs):
        raise AssertionError("the demo generated its estate")
    monkeypatch.setattr(estate, "generate", went_on)
    output = tmp_path / "demo"
    (output / "inputs").mkdir(parents=True)
    (output / "inputs" / "kept").write_text("the last demo's\n")
    assert cli.main(["demo", "--output", str(output), "--parallelism", "1000"]) == 2
    assert capsys.readouterr().err.startswith(
        "flowdredge: error: job.parallelism (or --parallelism) 1000 is more than this machine "
        "runs well")
    assert (output / "inputs" / "kept").read_text() == "the last demo's\n"


@pytest.mark.unit
def test_a_refused_replay_keeps_its_error_when_a_folder_cannot_go(inputs, tmp_path,
                                                                  monkeypatch):
    from flowdredge import cli
    from flowdredge.job.config import Config
    from flowdredge.job.replay import InputError
    folder, _ = inputs
    (tmp_path / "empty.jsonl").write_text("\n")
    monkeypatch.setattr(os, "rmdir", lambda *args, **kwargs: (_ for _ in ()).throw(
        OSError(39, "busy")))
    with pytest.raises(InputError, match="holds no line"):
        cli._replay([str(folder / "flows")], [str(tmp_path / "empty.jsonl")],
                    str(tmp_path / "a" / "out"), Config(), overwrite=False)


@pytest.mark.unit
def test_the_summary_of_a_folder_that_is_not_there_is_an_error(inputs, tmp_path):
    result = flowdredge("summary", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "no such output folder" in result.stderr
    # A file there (the report's page, say) was "no such output folder" too (a review).
    (tmp_path / "report.html").write_text("<html></html>\n")
    for command in (["summary"], ["report"], ["query"]):
        result = flowdredge(*command, str(tmp_path / "report.html"),
                            *(["top-talkers"] if command == ["query"] else []))
        assert (result.returncode, result.stderr) == (
            2, f"flowdredge: error: {tmp_path / 'report.html'}: a file, not an output "
               f"folder\n")
    # The inputs' folder: no output in it to sum up (it printed zeros).
    result = flowdredge("summary", str(inputs[0]))
    assert result.returncode == 2 and "is not an output folder" in result.stderr


@pytest.mark.unit
def test_generate_never_adds_an_estate_to_an_earlier_one(tmp_path):
    out = str(tmp_path / "gen")
    assert flowdredge("generate", "--output", out, "--minutes", "20",
                      "--flows-per-minute", "50").returncode == 0
    # A replay of flows/ read the 20 minutes' files with the 5 minutes' changelog.
    again = flowdredge("generate", "--output", out, "--minutes", "5", "--flows-per-minute", "50")
    assert again.returncode == 2 and "already holds flows/ and metadata/" in again.stderr
    replaced = flowdredge("generate", "--output", out, "--minutes", "5",
                          "--flows-per-minute", "50", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    alone = generate(Scenario(minutes=5, flows_per_minute=50), str(tmp_path / "alone"))
    assert sorted(os.path.relpath(p, str(tmp_path / "alone")) for p in alone.flow_files) == \
        sorted(os.path.relpath(os.path.join(root, f), out)
               for root, _, files in os.walk(os.path.join(out, "flows")) for f in files)
    # A linked folder is refused before anything is removed.
    os.symlink(str(tmp_path / "alone" / "metadata"), str(tmp_path / "linked-metadata"))
    os.rename(os.path.join(out, "metadata"), str(tmp_path / "moved"))
    os.symlink(str(tmp_path / "linked-metadata"), os.path.join(out, "metadata"))
    linked = flowdredge("generate", "--output", out, "--minutes", "5", "--overwrite")
    assert linked.returncode == 2 and "metadata is a link" in linked.stderr
    assert os.listdir(os.path.join(out, "flows"))
    for bad in ("0", "-3", "x"):
        refused = flowdredge("generate", "--output", out, "--minutes", bad)
        assert refused.returncode == 2 and "expected a positive integer" in refused.stderr


@pytest.mark.unit
def test_the_summary_names_the_dead_letters_reasons_and_what_was_counted_only():
    from collections import Counter
    from flowdredge.explore.summary import render
    counts = Counter(lines_in=5000, records_in=3, dead_letter=4200, dead_letter_field_count=4000,
                     dead_letter_not_gzip=200, dead_letters_not_kept=3200,
                     metadata_dead_letter=2, metadata_dead_letter_not_json=2,
                     metadata_dead_letters_not_kept=1)
    examples = {("flows", "field_count"): {"source": "f.log.gz:7",
                                           "detail": "13 fields; the format has 14"},
                ("metadata", "not_json"): {"source": "c.jsonl:2", "detail": ""}}
    text = render({"counts": counts, "top_edges": [], "rejects": [], "dead_letters": examples},
                  "out")
    # An example of each reason dead_letter/ holds says why; a reason without one is named only.
    assert ("\n  e.g. field_count: f.log.gz:7: 13 fields; the format has 14\n"
            "  e.g. metadata not_json: c.jsonl:2\n") in text
    assert "e.g. not_gzip" not in text
    assert ("dead letters by reason: field_count 4,000, not_gzip 200, metadata not_json 2 "
            "(3,201 counted only, beyond the 1,000 a batch or changelog record dead_letter/ "
            "keeps)") in text
    assert "dropped: 7 (flows.strict" in render(
        {"counts": Counter(unknown_fields_ignored=7), "top_edges": [], "rejects": [], "dead_letters": {}}, "out")
    # Lines read balance with the lines dead-lettered; a whole file or record is apart.
    assert text.startswith("flow lines read: 5,000 in 3 records (4,000 dead-lettered, 0 "
                           "NODATA/SKIPDATA); files, records and events dead-lettered whole: 200")
    assert "dead letters by reason" not in render(
        {"counts": Counter(lines_in=5), "top_edges": [], "rejects": [], "dead_letters": {}}, "out")
    assert "(none yet: no window's aggregates written" in render(
        {"counts": Counter(flows_aggregated=6), "top_edges": [], "rejects": [], "dead_letters": {}}, "out")
    assert "(none yet" not in render(
        {"counts": Counter(lines_in=5), "top_edges": [], "rejects": [], "dead_letters": {}}, "out")
    assert "ts_out_of_range: a ts" not in text
    assert "its file's modification time" in render(
        {"counts": Counter(metadata_dead_letter=3, metadata_dead_letter_ts_out_of_range=3),
         "top_edges": [], "rejects": [], "dead_letters": {}}, "out")
    assert render({"counts": Counter(lines_in=5, records_in=3, records_repeated=1),
                   "top_edges": [], "rejects": [], "dead_letters": {}}, "out").startswith(
        "flow lines read: 5 in 3 records (1 of them written twice by their producer, not "
        "parsed; 0 dead-lettered")
    ends = render({"counts": Counter(flows_aggregated=10, src_owned=10, dst_owned=4,
                                     dst_internet=2, dst_unattributed=1, dst_aws=3),
                   "top_edges": [], "rejects": [], "dead_letters": {}}, "out")
    assert ("flow ends attributed to an owner: 14 of 20 (70.0%); internet: 2; unattributed "
            "private: 1; AWS services (metadata.ip_ranges): 3\n") in ends
    assert "flow ends attributed to an owner: 14 of 20 (70.0%; 3 within their VPC, of " \
           "addresses overlapping VPCs hold); internet: 0;" in render(
               {"counts": Counter(flows_aggregated=10, src_owned=10, dst_owned=4,
                                  dst_owned_in_vpc=3),
                "top_edges": [], "rejects": [], "dead_letters": {}}, "out")


@pytest.mark.unit
def test_the_summarys_attributed_share_counts_the_ends_of_late_flows():
    # A late flow's ends are attributed too (docs/operations.md: the attribution rate).
    from collections import Counter
    from flowdredge.explore.summary import render
    counts = Counter(flows_aggregated=8, flows_late=2, src_owned=10, dst_owned=4)
    assert "flow ends attributed to an owner: 14 of 20 (70.0%)" in render(
        {"counts": counts, "top_edges": [], "rejects": [], "dead_letters": {}}, "out")


@pytest.mark.unit
def test_a_failed_job_is_named_by_its_cause_not_by_what_followed_from_it():
    from flowdredge.connectors.logs import failure_line
    worker_gone = """org.apache.flink.runtime.client.JobExecutionException: Job execution failed.
    at org.apache.flink.runtime.jobmaster.JobResult.toJobExecutionResult(JobResult.java:144)
Caused by: org.apache.flink.runtime.JobException: Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=3, backoffTimeMS=1000)
    at org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(ExecutionFailureHandler.java:219)
Caused by: java.lang.RuntimeException: Failed to start remote bundle
    at org.apache.flink.python.BeamPythonFunctionRunner.startBundle(BeamPythonFunctionRunner.java:389)
Caused by: org.apache.beam.vendor.grpc.v1p60p1.io.grpc.StatusRuntimeException: CANCELLED: call already cancelled
    ... 20 more"""
    assert failure_line(worker_gone) == (
        "no restart left (job.max_restarts); the last failure: "
        "java.lang.RuntimeException: Failed to start remote bundle")
    refused = """org.apache.flink.runtime.client.JobExecutionException: Job execution failed.
Caused by: org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy
Caused by: java.net.ConnectException: Connection refused"""
    assert failure_line(refused).endswith("failure: java.net.ConnectException: Connection refused")
    assert failure_line("Caused by: java.lang.UnsupportedOperationException: Partial recovery is "
                        "not supported") == ("java.lang.UnsupportedOperationException: "
                                             "Partial recovery is not supported")
    # The last restart taken by a Kinesis source's failover: its trace names nothing else.
    failover = """org.apache.flink.runtime.JobException: Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=3, backoffTimeMS=1000)
Caused by: org.apache.flink.util.FlinkException: Global failure triggered by OperatorCoordinator for 'Source: flow stream r-flows' (operator 5e04fe3d4719584062c909a6bfee93ea).
Caused by: java.lang.UnsupportedOperationException: Partial recovery is not supported"""
    assert failure_line(failover) == (
        "no restart left (job.max_restarts); the last failure followed from an earlier one (a "
        "task's failure also fails each Kinesis source once), named in the Flink log")
    # With the job's earlier failures (its REST API's exception history, newest first): the
    # latest that names a cause of its own (a fault review: an unwritable output's job ended
    # naming nothing, and the next start replaced the Flink log that held it).
    unwritable = """org.apache.flink.runtime.JobException: Recovery is suppressed by FailureRateRestartBackoffTimeStrategy(...)
Caused by: java.nio.file.FileSystemException: /out/aggregates/.part-0.inprogress: Operation not permitted"""
    older = "Caused by: java.net.ConnectException: Connection refused"
    assert failure_line(failover, [failover, unwritable, older]) == (
        "no restart left (job.max_restarts); the last failure of its own: java.nio.file."
        "FileSystemException: /out/aggregates/.part-0.inprogress: Operation not permitted")
    assert failure_line(failover, [failover]) == failure_line(failover)
    assert failure_line("java.lang.IllegalStateException: boom") == \
        "java.lang.IllegalStateException: boom"
    # An end whose trace has no `Caused by:` comes with the latest earlier failure of its own.
    assert failure_line("java.lang.IllegalStateException: boom", [failover, older]) == (
        "java.lang.IllegalStateException: boom; the last failure of its own: "
        "java.net.ConnectException: Connection refused")
    # A Python worker's exception: named by the line its traceback ends with.
    python = """org.apache.flink.runtime.client.JobExecutionException: Job execution failed.
Caused by: org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy
Caused by: java.lang.RuntimeException: Error received from SDK harness for instruction 3: Traceback (most recent call last):
  File "/venv/pyflink/fn_execution/beam/beam_operations_fast.pyx", line 88, in process
  File "/work/job/replay.py", line 236, in _dead_file
    raise InputError(f"{path}: {bad.detail} (flows.strict)") from None
flowdredge.job.replay.InputError: a.log.gz: empty: no header line (flows.strict)

	at org.apache.beam.runners.fnexecution.control.FnApiControlClient$ResponseStreamObserver.onNext(FnApiControlClient.java:180)"""
    assert failure_line(python) == ("no restart left (job.max_restarts); the last failure: "
                                    "flowdredge.job.replay.InputError: a.log.gz: empty: no "
                                    "header line (flows.strict)")


@pytest.mark.unit
def test_a_stream_deleted_under_the_job_is_named_plainly_with_what_to_do():
    """A flow stream deleted while the job read it ended the run with the SDK's shaded class
    name, request ids and attempts (400 characters) and no word of what to do (a review)."""
    from flowdredge.connectors.logs import failure_line, own_cause
    gone = """org.apache.flink.util.FlinkException: Global failure triggered by OperatorCoordinator for 'Source: flow stream f' (operator c30c).
	at org.apache.flink.runtime.operators.coordination.OperatorCoordinatorHolder$LazyInitializedCoordinatorContext.failJob(OperatorCoordinatorHolder.java:651)
Caused by: org.apache.flink.connector.kinesis.source.exception.KinesisStreamsSourceException: Failed to list shards.
Caused by: org.apache.flink.connector.kinesis.sink.shaded.software.amazon.awssdk.services.kinesis.model.ResourceNotFoundException: Stream arn arn:aws:kinesis:us-east-1:000000000000:stream/f not found (Service: Kinesis, Status Code: 400, Request ID: 00183fee-5fad, Extended Request ID: UY3oY1VIoJVgt+1ffu/9A==) (SDK Attempt Count: 1)
	... 3 more"""
    said = ("software.amazon.awssdk.services.kinesis.model.ResourceNotFoundException: Stream arn "
            "arn:aws:kinesis:us-east-1:000000000000:stream/f not found; a stream the job reads "
            "is gone (deleted, or a local Kinesis restarted without it), its unread records "
            "with it: once it exists again, start a new run into another --output (--resume "
            "refuses it: docs/streaming.md)")
    assert own_cause(gone) == said
    ended = ("org.apache.flink.runtime.JobException: Recovery is suppressed by "
             "FailureRateRestartBackoffTimeStrategy(...)\n" + gone.replace(
                 "org.apache.flink.util", "Caused by: org.apache.flink.util", 1))
    assert failure_line(ended) == f"no restart left (job.max_restarts); the last failure: {said}"


@pytest.mark.unit
def test_flowdredge_run_says_why_its_job_restarts_while_it_runs(monkeypatch, capsys):
    """A running job's failures are named as they happen, once while a cause repeats: the
    status line showed only its restarts rising (a review: 12 restarts in 3 minutes of a
    Kinesis outage, no word why until the job ended)."""

    from flowdredge.explore import health
    # As the REST API's exception history has them: the exception, then its causes.
    refused = ("org.apache.flink.runtime.source.reader.fetcher.SplitFetcherException: fetch "
               "failed\n\tat org.apache.flink.X.run(X.java:1)\nCaused by: java.net."
               "ConnectException: Connection refused\n\t... 9 more")
    failover = ("org.apache.flink.util.FlinkException: Global failure triggered by "
                "OperatorCoordinator for 'Source: flow stream f'.\nCaused by: java.lang."
                "UnsupportedOperationException: Partial recovery is not supported")
    unwritable = ("java.nio.file.FileSystemException: /out/counts/.c.inprogress: Operation not "
                  "permitted\n\tat java.base/sun.nio.fs.UnixException.translateToIOException")
    # The exception history at each second's poll, newest first.
    monkeypatch.setattr(health, "JobRest", rest_with_failures([
        [], [(10, refused)], [(12, failover), (11, refused), (10, refused)],
        [(12, failover), (11, refused), (10, refused)],
        [(20, unwritable), (12, failover), (11, refused), (10, refused)]]))
    job = job_running_then("CANCELED", 5)
    monkeypatch.setattr(cli.time, "sleep", lambda s: None)
    logs.setup("flowdredge", "[flowdredge]")
    assert cli._run_until_stopped(job, "http://127.0.0.1:9", 0, "unused") == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "restarts" in line]
    assert said == [
        "[flowdredge] the job failed and restarts from its last checkpoint while "
        "job.max_restarts allows: java.net.ConnectException: Connection refused",
        "[flowdredge] the job failed and restarts from its last checkpoint while "
        "job.max_restarts allows: java.nio.file.FileSystemException: /out/counts/.c.inprogress: "
        "Operation not permitted"]


# What the job's client raised: the exception alone, and as py4j gives it (the Java future's
# ExecutionException, the JobExecutionException as its cause, with no cause of its own).
_NO_CAUSE = "org.apache.flink.runtime.client.JobExecutionException: Job execution failed."
_NO_CAUSE_PY4J = (
    "An error occurred while calling o0.get.\n: java.util.concurrent.ExecutionException: "
    f"{_NO_CAUSE}\n\tat java.base/java.util.concurrent.CompletableFuture.reportGet("
    "CompletableFuture.java:396)\n\tat java.base/java.lang.Thread.run(Thread.java:840)\n"
    f"Caused by: {_NO_CAUSE}\n\tat org.apache.flink.runtime.jobmaster.JobResult."
    "toJobExecutionResult(JobResult.java:145)\n\t... 2 more")


@pytest.mark.unit
@pytest.mark.parametrize("error", [_NO_CAUSE, _NO_CAUSE_PY4J])
def test_a_run_whose_job_ended_without_a_cause_names_the_last_failure_it_saw(monkeypatch,
                                                                             capsys, error):
    """A job that ended as its mini-cluster went gave only "JobExecutionException: Job
    execution failed." (no cause), and the REST API was gone with it: a review's run ended on
    that line after 12 restarts, each a deleted stream's. As py4j gives it, that exception is
    the `Caused by:` of the future's ExecutionException: the run ended on it alone all the same
    (a review)."""
    import urllib.error
    from types import SimpleNamespace

    from flowdredge.explore import health
    gone = ("org.apache.flink.util.FlinkException: Global failure triggered by "
            "OperatorCoordinator for 'Source: flow stream f'.\nCaused by: org.apache.flink."
            "connector.kinesis.source.exception.KinesisStreamsSourceException: Failed to list "
            "shards.\nCaused by: java.net.ConnectException: Connection refused")
    polls = iter([[(10, gone)]])

    class Rest(health.JobRest):
        def failures(self):
            for history in polls:
                return history
            raise urllib.error.URLError("Connection refused")

    def ended():
        raise RuntimeError(error)

    statuses = iter(["RUNNING", "FAILED"])
    job = SimpleNamespace(
        get_job_id=lambda: "j",
        get_job_status=lambda: SimpleNamespace(result=lambda: SimpleNamespace(
            name=next(statuses))),
        get_job_execution_result=lambda: SimpleNamespace(result=ended))
    monkeypatch.setattr(health, "JobRest", Rest)
    monkeypatch.setattr(cli.time, "sleep", lambda s: None)
    logs.setup("flowdredge", "[flowdredge]")
    assert cli._run_until_stopped(job, "http://127.0.0.1:9", 0, "unused") == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "[flowdredge] the job ended: org.apache.flink.runtime.client.JobExecutionException: Job "
        "execution failed.; the last failure of its own: java.net.ConnectException: Connection "
        "refused (the whole trace: ")


@pytest.mark.minicluster
def test_strict_refuses_a_bad_file_in_one_line_and_leaves_no_output_folder(inputs, tmp_path):
    """flows.strict: the parse step refuses a bad flow file inside the job: the replay says so
    in one line (exit 2), as it does for input errors found before the job, and leaves no
    output folder (or checkpoints) behind."""
    folder, out = inputs
    flows = tmp_path / "flows"
    flows.mkdir()
    bad = flows / "123456789012_vpcflowlogs_us-east-1_fl-1234_20260101T0000Z_aaaa.log.gz"
    bad.write_bytes(gzip.compress(b""))
    config = tmp_path / "strict.yaml"
    config.write_text("flows: {strict: true}\n")
    result = flowdredge("replay", "--config", str(config), "--flows", str(flows), "--metadata",
                        out.metadata_file, "--output", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if not line.startswith("[flowdredge]")]
    assert errors == [f"flowdredge: error: {bad}: empty: no header line (flows.strict)"]
    assert not os.path.exists(tmp_path / "out")


def _terminated(tmp_path, command: str) -> tuple:
    """`flowdredge stream-demo --no-job` with `command` (the body of a function of args) in
    place of the demo, sent SIGTERM once it printed its first line: (exit status, the rest
    of stdout, stderr)."""
    script = tmp_path / "stopped.py"
    script.write_text("import sys, time\n"
                      "from flowdredge import cli\n"
                      "from flowdredge.connectors import logs\n"
                      "def command(args):\n" + command +
                      "cli.cmd_stream_demo = command\n"
                      "sys.exit(cli.main(['stream-demo', '--no-job']))\n")
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert child.stdout.readline() in ("serving\n", "starting\n")
        child.terminate()
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    return child.returncode, out, err


@pytest.mark.unit
def test_sigterm_stops_a_command_as_ctrl_c_does(tmp_path):
    """SIGTERM (kill, systemd, a container's stop) ended `flowdredge stream-demo` at once: its
    kinesis-local was left running, listening on every interface (a review). It now takes the
    command's Ctrl-C path, exit status 143."""
    # 'serving' is printed inside the try: the SIGTERM it prompts can be handled as print
    # returns (CPython runs handlers after a C call), before a try that followed it (1 run in
    # 3 failed with 'flowdredge: interrupted' and no clean-up).
    assert _terminated(tmp_path, "    try:\n"
                                 "        print('serving', flush=True)\n"
                                 "        time.sleep(60)\n"
                                 "    except KeyboardInterrupt as stop:\n"
                                 "        print('cleaned up after', logs.stopped_by(stop), "
                                 "flush=True)\n"
                                 "        return 130\n") == \
        (143, "cleaned up after SIGTERM\n", "")
    # Stopped before the command's own handling: said so, naming SIGTERM (its lines said
    # "Ctrl-C" for both).
    assert _terminated(tmp_path, "    print('starting', flush=True)\n"
                                 "    time.sleep(60)\n") == \
        (143, "", "flowdredge: interrupted (SIGTERM)\n")


@pytest.mark.unit
def test_the_demos_default_outputs_are_ignored_by_git():
    """`scripts/demo --streaming` left stream-demo-output/ untracked in `git status` (a
    review): .gitignore named only the replay demo's folder."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, ".gitignore"), encoding="utf-8") as fh:
        ignored = fh.read().split()
    for command in ("demo", "stream-demo"):
        assert f"{cli.parser().parse_args([command]).output}/" in ignored


@pytest.mark.unit
def test_flowdredge_run_without_restarts_says_a_failure_ends_it(tmp_path, capsys, monkeypatch):
    """job.max_restarts defaults to 0, right for a replay: a streaming run without a config
    of its own ended at its first failure, the Kinesis connector's start-up race included,
    without a word before (a review). Said once the job has started (a refusal stays one
    line)."""
    from types import SimpleNamespace
    job = SimpleNamespace(get_job_id=lambda: "job-1")
    monkeypatch.setattr(cli, "_start_run", lambda cfg, args: (job, "http://127.0.0.1:9", {}))
    monkeypatch.setattr(cli, "_run_until_stopped", lambda *args: 0)
    restarts = tmp_path / "restarts.yaml"
    restarts.write_text("job:\n  max_restarts: 3\n")
    for more, warned in (([], True), (["--config", str(restarts)], False)):
        assert cli.main(["run", "--output", str(tmp_path / "out"), "--flow-streams", "f",
                         "--metadata-stream", "m", *more]) == 0
        err = capsys.readouterr().err
        assert ("job.max_restarts is 0: the first failure ends this run" in err) is warned, err


def _integer_options(value: str) -> list:
    """(parse, argv, option) giving `value` to an integer option of each tool: flowdredge,
    job/submit.py, scripts/cluster, the workload generator."""
    from flowdredge.job import submit
    from flowdredge.operate import cluster
    from flowdredge.synthetic import workload
    return [(cli.parser().parse_args, ["replay", "--flows", "f", "--metadata", "m", "--output",
                                       "o", "--parallelism", value], "--parallelism"),
            (submit.parser().parse_args, ["--output", "o", "--follow-seconds", value],
             "--follow-seconds"),
            (cluster.parser().parse_args, ["start", "--slots", value], "--slots"),
            (workload.main, ["--output", "o", "--flows", value], "--flows")]


@pytest.mark.unit
@pytest.mark.parametrize("digits", ("\u0661\u0662", "\uff11\uff12"))
def test_an_integer_flag_is_ascii_digits_only(capsys, digits):
    """int() took "١٢" as 12: `--parallelism ١٢` ran twelve-wide, `--within ١٥m` 15 minutes."""
    from flowdredge.explore.query import QueryError, parse_duration, parse_time, whole_number
    for parse, argv, said in (
            (cli.parser().parse_args, ["generate", "--output", "o", "--minutes", digits],
             f"argument --minutes: expected a positive integer, got '{digits}'"),
            *[(parse, argv, f"argument {option}: expected an integer, got '{digits}'")
              for parse, argv, option in _integer_options(digits)]):
        with pytest.raises(SystemExit) as refused:
            parse(argv)
        assert refused.value.code == 2 and capsys.readouterr().err.endswith(f"{said}\n")
    for parse in (parse_time, parse_duration, whole_number(0, 100)):
        with pytest.raises(QueryError, match=re.escape(repr(digits))):
            parse(digits)


@pytest.mark.unit
def test_every_tools_integer_option_quotes_a_huge_value_cut_short(capsys):
    """job/submit.py's, scripts/cluster's and the workload generator's integer options (and
    flowdredge's own --parallelism) said argparse's 'invalid integer value: ' and the value
    whole, 5,000 digits in one message, where the job's positive options cut it since 4e380f1
    (a review); scripts/managed-flink's --io quoted a bad item whole too."""
    from flowdredge.operate import cluster, deploy
    digits = "9" * 5000
    cut = "'" + "9" * 39 + "... (5,002 characters)"
    for parse, argv, said in (
            *[(parse, argv, f"argument {option}: {cut} is out of range")
              for parse, argv, option in _integer_options(digits)],
            (cluster.parser().parse_args, ["feed", "--flows-dir", "f", "--metadata-dir", "m",
                                           "--chunk-lines", "x" + digits],
             f"argument --chunk-lines: expected an integer, got 'x{'9' * 38}... (5,003 "
             f"characters)"),
            (deploy.parser().parse_args, ["create", "--name", "n", "--role", "r", "--bucket",
                                          "b", "--io", "x" * 5000],
             "argument --io: expected key=value[,key=value...], got '" + "x" * 39
             + "... (5,002 characters)")):
        with pytest.raises(SystemExit) as refused:
            parse(argv)
        err = capsys.readouterr().err
        assert refused.value.code == 2 and err.endswith(f"{said}\n"), err[-300:]
        assert len(err.splitlines()[-1]) < 200


@pytest.mark.unit
def test_an_integer_grouped_by_underscores_is_read_alike_by_options_and_settings(tmp_path, capsys):
    """A YAML file's unquoted 1_000 was 1000, as Python's int() reads it, while `--minutes
    1_000`, a quoted '1_000' and an application property's "1_000" were refused (a review);
    a grouping neither writes (1__000, 1000_) is refused by each, in one line naming it, a
    value too long to read cut short (the option's error quoted it whole, 5,000 digits)."""
    from flowdredge.job.config import ConfigError, load
    args = cli.parser().parse_args(["generate", "--output", "o", "--minutes", "1_000",
                                    "--seed=-1_0"])
    assert (args.minutes, args.seed) == (1000, -10)
    (tmp_path / "props.json").write_text(json.dumps([
        {"PropertyGroupId": "job", "PropertyMap": {"window_seconds": "1_000"}}]))
    for written in ("1_000", "'1_000'"):
        (tmp_path / "c.yaml").write_text(f"job: {{window_seconds: {written}}}\n")
        assert load(str(tmp_path / "c.yaml")).job.window_seconds == 1000
    assert load(str(tmp_path / "props.json")).job.window_seconds == 1000
    for bad, said in (("1__000", "'1__000'"), ("1000_", "'1000_'"), ("_1000", "'_1000'"),
                      ("9" * 5000, "'" + "9" * 39 + "... (5,002 characters)")):
        with pytest.raises(SystemExit):
            cli.parser().parse_args(["generate", "--output", "o", "--minutes", bad])
        assert capsys.readouterr().err.endswith(
            f"argument --minutes: expected a positive integer, got {said}\n")
    for bad in ("1__000", "1000_", "_1000"):
        (tmp_path / "c.yaml").write_text(f"job: {{window_seconds: {bad}}}\n")
        with pytest.raises(ConfigError, match=f"^job.window_seconds: expected an integer, "
                                              f"got '{bad}'$"):
            load(str(tmp_path / "c.yaml"))


@pytest.mark.unit
@pytest.mark.parametrize("command, options, said", [
    ("demo", ["--minutes", "999999999999999999999999999999"],
     "999,999,999,999,999,999,999,999,999,999 minutes of traffic is more than a synthetic "
     "estate is generated for: at most 43,200 (30 days)"),
    ("generate", ["--minutes", "2501"],
     "2,501 minutes of 2,000 flows a minute is 5,002,000 flows: a synthetic estate is "
     "generated in memory (about 0.5 KB a flow), at most 5,000,000"),
    ("stream-demo", ["--rate", "100000", "--minutes", "26"],
     "26 minutes of 200,000 flows a minute is 5,200,000 flows: a synthetic estate is "
     "generated in memory (about 0.5 KB a flow), at most 5,000,000"),
])
def test_an_estate_larger_than_generate_holds_is_refused_before_a_folder_is_touched(
        command, options, said, tmp_path, capsys):
    """`flowdredge demo --minutes 99999999999999999999999999999` was taken, and the estate
    held in memory grew to 21 GB before it was stopped (a review)."""
    output = tmp_path / "out"
    (output / "inputs").mkdir(parents=True)
    (output / "inputs" / "kept").write_text("the last demo's\n")
    assert cli.main([command, "--output", str(output), *options]) == 2
    assert capsys.readouterr().err == f"flowdredge: error: {said}\n"
    assert (output / "inputs" / "kept").read_text() == "the last demo's\n"
