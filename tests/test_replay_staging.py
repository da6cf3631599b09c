import base64
import gzip
import json
import os

import pytest

from flowdredge.job.config import FlowsSection
from flowdredge.job.ownership import (MetadataClock, OwnershipIndex, apply_events,
                                       changelog_lines, parse_chunk)
from flowdredge.job.parse import FlowFormat, Limits, parse_record
from flowdredge.job.replay import (MIN_EPOCH_MS, InputError, delivery_order, delivery_stamps_ms,
                                   stage_flows, stage_metadata)

pytestmark = pytest.mark.unit
HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
LINE = "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 60 70 ACCEPT OK"


def test_s3_files_become_chunks_in_delivery_order(tmp_path):
    late = tmp_path / "a" / "x_vpcflowlogs_r_fl-1_20260101T0010Z_1.log.gz"
    early = tmp_path / "b" / "x_vpcflowlogs_r_fl-1_20260101T0005Z_1.log.gz"
    for p in (late, early):
        p.parent.mkdir()
        with gzip.open(p, "wt") as fh:
            fh.write(HEADER + "\n" + "\n".join([LINE] * 5) + "\n")
    staged = tmp_path / "staged.txt"
    stats = stage_flows([str(tmp_path / "a"), str(tmp_path / "b")], str(staged), chunk_lines=2)
    chunks = [json.loads(line) for line in staged.read_text().splitlines()]
    assert stats.files == 2 and stats.records == 6 and stats.lines == 10
    assert [c["source"].split("/")[-2] for c in chunks][:3] == ["b"] * 3
    assert chunks[0]["format"] == HEADER and chunks[0]["lines"] == [LINE, LINE]
    # Line numbers of the file (the header is line 1) and the AWS stamp, which bounds the
    # flows' starts (the file's time does not: a copy's can be any).
    assert [c["first_line"] for c in chunks[:3]] == [2, 4, 6]
    assert chunks[0]["delivered"] == 1767225900 and "not_after" not in chunks[0]


def test_a_stamped_file_keeps_its_flows_whatever_its_modification_time(tmp_path):
    """A file touched to 1980 (an archive's extraction) lost every flow: its time bounded
    them as well as its stamp."""
    line = "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 100 1767225600 1767225660 ACCEPT OK"
    stamped = tmp_path / "s" / "x_vpcflowlogs_r_fl-1_20260101T0005Z_1.log.gz"
    unstamped = tmp_path / "u" / "flows.log.gz"
    for path in (stamped, unstamped):
        path.parent.mkdir()
        with gzip.open(path, "wt") as fh:
            fh.write(HEADER + "\n" + line + "\n")
        os.utime(path, (315532800, 315532800))   # 1980-01-01
    for path, kept in ((stamped, 1), (unstamped, 0)):
        staged = tmp_path / f"{path.parent.name}.txt"
        stage_flows([str(path)], str(staged), 10)
        (chunk,) = staged.read_text().splitlines()
        result = parse_record(chunk, "r", FlowFormat.parse(HEADER), Limits(60, 10**6, 86400))
        assert result.counts["flows_parsed"] == kept
        # A file without a stamp is bounded by its time: flows after it are not believed.
        assert result.counts["dead_letter_timestamp_out_of_range"] == 1 - kept


def test_cloudwatch_inputs_pass_through(tmp_path):
    record = gzip.compress(b'{"messageType":"CONTROL_MESSAGE"}')
    (tmp_path / "one.gz").write_bytes(record)
    (tmp_path / "many.b64").write_text(base64.b64encode(record).decode() + "\n" * 2)
    staged = tmp_path / "out" / "staged.txt"
    stage_flows([str(tmp_path / "one.gz"), str(tmp_path / "many.b64")], str(staged), 100)
    # In delivery order (no stamps: by path), each with where it came from.
    encoded = base64.b64encode(record).decode()
    assert [(r["source"], r["record"]) for r in map(json.loads, staged.read_text().splitlines())] \
        == [(str(tmp_path / "many.b64") + ":1", encoded), (str(tmp_path / "one.gz"), encoded)]


def test_unreadable_inputs_name_the_file(tmp_path):
    (tmp_path / "bad.log").write_text("this is not a header\n")
    with pytest.raises(InputError, match="bad.log"):
        stage_flows([str(tmp_path / "bad.log")], str(tmp_path / "s.txt"), 10,
                    flows=FlowsSection(strict=True))
    with pytest.raises(InputError, match="no such file"):
        stage_flows([str(tmp_path / "missing")], str(tmp_path / "s.txt"), 10)
    with pytest.raises(InputError, match="no such metadata file"):
        stage_metadata([str(tmp_path / "missing.jsonl")], str(tmp_path / "m.jsonl"))


def test_metadata_files_are_staged_in_order_in_chunks_with_line_numbers(tmp_path):
    snap, changes = str(tmp_path / "snap.jsonl.gz"), str(tmp_path / "changes.jsonl")
    (tmp_path / "snap.jsonl.gz").write_bytes(gzip.compress(b'{"a":1}\n{"a":2}'))
    (tmp_path / "changes.jsonl").write_text('{"a":3}\r\n\n  \n{"a":"\u2028"}\nnot json\n')
    mtime = int(os.path.getmtime(changes))
    # (source, first line number, lines): blank lines kept, so positions give line numbers.
    for size, chunks in [
            (2, [(snap, 1, ['{"a":1}', '{"a":2}']), (changes, 1, ['{"a":3}', ""]),
                 (changes, 3, ["", '{"a":"\u2028"}']), (changes, 5, ["not json"])]),
            (9, [(snap, 1, ['{"a":1}', '{"a":2}']),
                 (changes, 1, ['{"a":3}', "", "", '{"a":"\u2028"}', "not json"])])]:
        staged = tmp_path / f"m{size}.jsonl"
        # A file given twice is staged once.
        n = stage_metadata([snap, changes, changes], str(staged), size)
        records = staged.read_text(encoding="utf-8").split("\n")
        assert n == 5 and records[-1] == ""
        read = [changelog_lines(r) for r in records[:-1]]
        assert [(r.source, r.first_line, r.lines) for r in read] == chunks
        assert {r.not_after for r in read if r.source == changes} == {mtime}


T0 = 1767225600   # 2026-01-01T00:00:00Z


def _change(t, ip="10.0.0.1", app="a", **extra) -> str:
    return json.dumps({"type": "ASSIGN", "ts": (T0 + t) * 1000, "ip": ip, "app": app, **extra})


class _Replayed:
    """The staged changelog as the job applies it: record by record, with the metadata clock
    (30 s out of orderness) read between records, where flows are attributed."""

    def __init__(self, tmp_path, *files, chunk_lines=100):
        paths = []
        for name, lines in files:
            (tmp_path / name).write_text("\n".join(lines) + "\n")
            paths.append(str(tmp_path / name))
        staged = tmp_path / "staged.jsonl"
        stage_metadata(paths, str(staged), chunk_lines)
        self.index, clock = OwnershipIndex(), MetadataClock(30_000)
        self.rejected, self.late, self.moved, self.clocks = [], 0, [], []
        for record in staged.read_text().splitlines():
            self.moved += [(os.path.basename(m[0]), m[1]) for m in changelog_lines(record).moved]
            chunk = parse_chunk(record)
            self.rejected += chunk.rejected
            counts, _ = apply_events(chunk.events, self.index, clock)
            self.late += counts.get("metadata_late", 0)
            self.clocks.append(clock.watermark)

    def owner(self, ip, t):
        owner = self.index.owner_at(ip, (T0 + t) * 1000)
        return owner and owner[0]


@pytest.mark.parametrize("stamps,held,late", [
    # One event 30 days ahead, then the changelog goes on: it alone is held back, to the end.
    ([100, 110, 120, 120 + 30 * 86400, 130, 140, 150, 160, 170, 180], [4], 0),
    # Two in a row: the median of the changes after each still judges them.
    ([100, 110, 9_000_000, 9_000_001, 130, 140, 150, 160, 170, 180], [3, 4], 0),
    # A late event (10 minutes behind): the events before it stay where they are.
    ([1000, 1010, 1020, 400, 1030, 1040, 1050, 1060, 1070, 1080], [], 1),
    # The whole changelog jumps ahead (an outage): nothing held.
    ([100, 110, 120, 90_000, 90_010, 90_020, 90_030, 90_040, 90_050, 90_060], [], 0),
    # Within out-of-orderness plus max_ahead (30 + 120 s) of the events after it: in place,
    # and the seven after it late, as they always were.
    ([100, 110, 120 + 150, 120, 130, 140, 150, 160, 170, 180], [], 7),
    # The last events have too few after them to be judged: in place.
    ([100, 110, 120, 130, 140, 150, 160, 170, 180, 9_000_000], [], 0),
])
def test_an_event_far_ahead_of_the_changelog_after_it_is_held_back(tmp_path, stamps, held,
                                                                    late):
    """One changelog event far ahead in a replayed file (bounded only by the file's time)
    moved the metadata clock past every later change: they counted as late, flows were
    attributed before their owners came. Held back to where the changelog reaches it, it is
    still applied, and no other event is late."""
    lines = [_change(t, ip=f"10.0.0.{i}") for i, t in enumerate(stamps)]
    for chunk_lines in (3, 100):
        replayed = _Replayed(tmp_path, ("changes.jsonl", lines), chunk_lines=chunk_lines)
        assert replayed.moved == [("changes.jsonl", n) for n in held]
        assert replayed.rejected == [] and replayed.late == late
        assert all(replayed.owner(f"10.0.0.{i}", t) == "a" for i, t in enumerate(stamps))


@pytest.mark.parametrize("after", [
    # Only the events the job reads judge: not a "ts" inside another field...
    [json.dumps({"previous": {"ts": (T0 - 7200) * 1000}, "type": "ASSIGN",
                 "ts": (T0 + 610) * 1000, "ip": "10.0.0.3", "app": "c"})] * 5,
    # ... nor lines it refuses (ts in seconds) ...
    [json.dumps({"type": "ASSIGN", "ts": T0, "ip": "10.0.0.2", "app": "b"})] * 5,
    # ... nor HEARTBEATs, which may lag the changes already sent.
    [json.dumps({"type": "HEARTBEAT", "ts": (T0 - 3600) * 1000})] * 5,
])
def test_only_the_changes_after_an_event_judge_it(tmp_path, after):
    lines = [_change(0), json.dumps({"type": "UNASSIGN", "ts": (T0 + 600) * 1000,
                                     "ip": "10.0.0.1"})] + after + [_change(700 + i, ip="10.0.1.1")
                                                                     for i in range(5)]
    replayed = _Replayed(tmp_path, ("changes.jsonl", lines))
    assert replayed.moved == [] and replayed.owner("10.0.0.1", 650) is None


def test_an_event_far_ahead_at_the_end_of_a_file_is_judged_by_the_next_file(tmp_path):
    snapshot = [_change(-3600, ip="10.0.0.7", app="old-owner"), _change(30 * 86400, ip="10.9.9.9")]
    changes = [_change(60 + i, ip=f"10.0.1.{i}") for i in range(5)] + [
        _change(65, ip="10.0.0.7", app="new-owner")]
    replayed = _Replayed(tmp_path, ("snapshot.jsonl", snapshot), ("changes.jsonl", changes))
    assert replayed.moved == [("snapshot.jsonl", 2)] and replayed.late == 0
    # The clock stayed with the changelog until its end, where the event went.
    assert max(replayed.clocks[:-1]) < (T0 + 65) * 1000
    assert replayed.owner("10.0.0.7", 70) == "new-owner"
    assert replayed.owner("10.9.9.9", 30 * 86400) == "a"


def test_a_snapshot_of_owners_dated_when_they_took_their_addresses_loses_none(tmp_path):
    # The publisher's snapshot is sorted by address, each ASSIGN dated when its owner took the
    # address: weeks apart, in no order. Judged far ahead, such lines had been refused.
    taken = [(i * 7919) % (30 * 86400) - 30 * 86400 for i in range(40)]
    snapshot = [_change(t, ip=f"10.0.0.{i}", app=f"app{i}") for i, t in enumerate(taken)]
    changes = [_change(i, ip="10.0.1.1") for i in range(10)]
    for chunk_lines in (7, 100):
        replayed = _Replayed(tmp_path, ("snapshot.jsonl", snapshot), ("changes.jsonl", changes),
                             chunk_lines=chunk_lines)
        assert replayed.rejected == []
        assert [replayed.owner(f"10.0.0.{i}", 5) for i in range(40)] == [
            f"app{i}" for i in range(40)]


def test_a_restarted_publishers_snapshot_does_not_undo_a_release_before_it(tmp_path):
    # The last run released 10.0.0.5 at T0 + 60; restarted without its state, the publisher
    # sends every attached address again, dated when each was taken, days before.
    first_run = [_change(-86400, ip="10.0.0.5", app="api"), _change(30, ip="10.0.0.6"),
                 json.dumps({"type": "UNASSIGN", "ts": (T0 + 60) * 1000, "ip": "10.0.0.5"})]
    restart = [_change(-86400 * d, ip=f"10.0.2.{d}") for d in range(1, 6)] + [
        json.dumps({"type": "HEARTBEAT", "ts": (T0 + 120) * 1000})]
    for files in ([("changes.jsonl", first_run + restart)],
                  [("run1.jsonl", first_run), ("run2.jsonl", restart)]):
        replayed = _Replayed(tmp_path, *files)
        assert replayed.rejected == [] and replayed.owner("10.0.0.5", 100) is None


def test_a_change_far_ahead_stays_before_a_later_change_of_its_address_at_its_time(tmp_path):
    # Two ASSIGNs of one address at one ts: the later one wins, so neither may pass the other.
    lines = [_change(100), _change(9_000_000, ip="10.0.0.9", app="first")] + [
        _change(110 + i, ip=f"10.0.1.{i}") for i in range(5)] + [
        _change(9_000_000, ip="10.0.0.9", app="second")] + [
        _change(120 + i, ip=f"10.0.1.{i}") for i in range(5)]
    replayed = _Replayed(tmp_path, ("changes.jsonl", lines))
    assert ("changes.jsonl", 2) not in replayed.moved
    assert replayed.owner("10.0.0.9", 9_000_000) == "second"


def test_delivery_order_uses_the_aws_stamp():
    assert delivery_order("z/1_vpcflowlogs_r_fl_20260101T0000Z_a.log.gz") < \
        delivery_order("a/1_vpcflowlogs_r_fl_20260101T0005Z_a.log.gz")


def test_delivery_stamps_pace_the_files_and_a_file_without_one_takes_the_stamp_before():
    files = ["firehose-object-1", "a/1_vpcflowlogs_r_fl_20260101T0000Z_a.log.gz",
             "firehose-object-2", "b/1_vpcflowlogs_r_fl_20260101T0005Z_b.log.gz"]
    t0 = 1767225600000   # 2026-01-01T00:00Z
    assert delivery_stamps_ms(files) == [MIN_EPOCH_MS, t0, t0, t0 + 300_000]


def test_a_byte_order_mark_before_the_header_is_not_a_field(tmp_path):
    path = tmp_path / "x_vpcflowlogs_r_fl-1_20260101T0005Z_1.log.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\ufeff" + HEADER + "\n" + LINE + "\n")
    staged = tmp_path / "staged.txt"
    stats = stage_flows([str(path)], str(staged), chunk_lines=10)
    (chunk,) = [json.loads(line) for line in staged.read_text().splitlines()]
    assert chunk["format"] == HEADER and not stats.unknown_fields
