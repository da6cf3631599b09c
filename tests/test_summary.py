"""`flowdredge summary` over output files a user edited by hand or another version of the job
wrote: a correct summary, or one error line naming the file."""
import json

import pytest

from flowdredge import cli

pytestmark = pytest.mark.unit


def _write(folder, view, lines, name="part-0-0"):
    (folder / view).mkdir(parents=True, exist_ok=True)
    (folder / view / name).write_text("".join(
        (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return folder


def _aggregate(src="api", dst="db", nbytes=5_000_000, **fields):
    return {"window_start": 60, "src_app": src, "src_region": "us-east-1", "dst_app": dst,
            "dst_region": "us-east-1", "dst_port": 443, "protocol": 6, "action": "ACCEPT",
            "flows": 1, "packets": 1, "bytes": nbytes, **fields}


def _summary(folder, capsys):
    code = cli.main(["summary", str(folder)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("view,line", [("aggregates", "[1, 2]"), ("counts", "5"),
                                       ("dead_letter", '"text"')])
def test_a_line_that_is_not_a_record_is_named(tmp_path, capsys, view, line):
    """A JSON value that is not an object stopped the summary with a traceback (a review)."""
    _write(tmp_path, "aggregates", [_aggregate()])
    _write(tmp_path, "counts", [{"stage": "parse", "dead_letter": 1,
                                 "dead_letter_bad_address": 1}])
    records = {"aggregates": _aggregate(), "counts": {"stage": "parse", "lines_in": 2},
               "dead_letter": {"stage": "flows", "reason": "bad_address", "source": "f:1"}}
    _write(tmp_path, view, ["", line, records[view]], "part-9")
    code, out, err = _summary(tmp_path, capsys)
    assert (code, out) == (2, "")
    assert err == (f"flowdredge: error: {tmp_path / view / 'part-9'}: line 2: not a JSON "
                   f"object: {line}\n")


def test_a_null_counter_counts_zero(tmp_path, capsys):
    """As the counts view reads it; it stopped the summary with a traceback (a review)."""
    _write(tmp_path, "aggregates", [_aggregate()])
    _write(tmp_path, "counts", [{"stage": "attribute", "flows_aggregated": 4, "src_owned": 4,
                                 "dst_owned": None},
                                {"stage": "attribute", "dst_owned": 2, "flows_late": None}])
    code, out, err = _summary(tmp_path, capsys)
    assert (code, err) == (0, "")
    assert "flows attributed: 4 into their windows (" in out and ", 0 late" in out
    assert "flow ends attributed to an owner: 6 of 8 (75.0%)" in out


@pytest.mark.parametrize("view,record,told", [
    ("aggregates", _aggregate(nbytes="5"), 'bytes is "5", not a 64-bit integer'),
    ("aggregates", _aggregate(nbytes=5.5), "bytes is 5.5, not a 64-bit integer"),
    ("aggregates", _aggregate(nbytes=float("nan")), "bytes is NaN, not a 64-bit integer"),
    ("aggregates", _aggregate(nbytes=2**63), f"bytes is {2**63}, not a 64-bit integer"),
    ("aggregates", _aggregate(flows=True), "flows is true, not a 64-bit integer"),
    ("aggregates", _aggregate(dst_port=2**31), f"dst_port is {2**31}, not a 32-bit integer"),
    ("aggregates", _aggregate(src={"a": 1}), 'src_app is {"a": 1}, not a text'),
    # Cut to 40 characters, then its length (a review: cut without a word before).
    ("aggregates", _aggregate(src={"a": "x" * 5000}),
     'src_app is {"a": "' + "x" * 33 + '... (5,009 characters), not a text'),
    ("counts", {"stage": "parse", "lines_in": "4"}, 'lines_in is "4", not a 64-bit integer'),
    ("counts", {"stage": "parse", "dead_letter_of_a_newer_job": float("inf")},
     "dead_letter_of_a_newer_job is Infinity, not a 64-bit integer"),
    ("dead_letter", {"stage": "flows", "reason": "bad_address", "source": 7},
     "source is 7, not a text"),
])
def test_a_value_of_the_wrong_type_is_named(tmp_path, capsys, view, record, told):
    """A string where a number is, a fraction, NaN, a number past the field's: the summary
    stopped with a traceback (int += str, unhashable dict) or printed 'nan MB' (a review)."""
    _write(tmp_path, "aggregates", [_aggregate()])
    _write(tmp_path, "counts", [{"stage": "parse", "dead_letter": 1,
                                 "dead_letter_bad_address": 1}])
    _write(tmp_path, view, [record], "part-9")
    code, out, err = _summary(tmp_path, capsys)
    assert (code, out) == (2, "")
    assert err == f"flowdredge: error: {tmp_path / view / 'part-9'}: line 1: {told}\n"


def test_nulls_and_unknown_fields_are_read(tmp_path, capsys):
    """Null is no value (the query views read it so); a field of another release is not read."""
    _write(tmp_path, "aggregates", [_aggregate(nbytes=None, dst_port=None, action=None),
                                    _aggregate(newer_field={"x": [1]})])
    _write(tmp_path, "counts", [{"stage": None, "flows_aggregated": 2, "newer_counter": 3,
                                 "newer_note": "text", "newer_ratio": 0.5}])
    code, out, err = _summary(tmp_path, capsys)
    assert (code, err) == (0, "")
    assert "flows attributed: 2 into their windows" in out
    assert " api -> db                        5.0 MB" in out


def test_an_aggregate_without_an_app_is_the_unknown_app(tmp_path, capsys):
    """As the report shows it: the summary printed None (a review)."""
    _write(tmp_path, "aggregates", [_aggregate(src=None, action="REJECT"),
                                    {k: v for k, v in _aggregate(nbytes=3_000_000,
                                                                 action="REJECT").items()
                                     if k != "dst_app"}])
    code, out, err = _summary(tmp_path, capsys)
    assert (code, err) == (0, "")
    assert "\n           (unknown) -> db                        5.0 MB\n" in out
    assert "\n                 api -> (unknown)                 3.0 MB\n" in out
    assert ("REJECTed flows by destination app:\n                  db        1\n"
            "           (unknown)        1\n") in out
    assert "None" not in out


def test_a_gzip_file_whose_data_is_corrupt_is_named(tmp_path, capsys):
    """zlib's error was no OSError: the summary stopped with a traceback (a review)."""
    import gzip
    data = bytearray(gzip.compress(json.dumps(_aggregate()).encode() * 50 + b"\n"))
    data[10] = 0xFF
    (tmp_path / "counts").mkdir()
    (tmp_path / "counts" / "part-0-0.gz").write_bytes(bytes(data))
    code, _out, err = _summary(tmp_path, capsys)
    assert code != 0 and f"{tmp_path}/counts/part-0-0.gz: cannot be read after line 0: " in err
    assert "Traceback" not in err
