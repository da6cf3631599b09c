"""`flowdredge query` and the Athena DDL (explore.query).

Expected answers are computed here from the generated input files (tests/reference.py, which
shares no code with the job) or with plain Python, never with DuckDB.
"""
import csv
import io
import json
import os
import re
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from decimal import Decimal

import duckdb
import pytest

import reference
from helpers import run_replay
from flowdredge import cli
from flowdredge.job.config import Config
from flowdredge.synthetic.estate import APPS, Scenario, generate
from flowdredge.job.outputs import OUTPUTS, committed_files, is_committed
from flowdredge.explore.query import (VIEW_COLUMNS, Outputs, QueryError, Result, answer, athena_ddl,
                       format_result, parse_duration, parse_time, referenced_views)
from flowdredge.schemas.flowlog import FLOW_LOG_FIELDS
from flowdredge.schemas.outputs import (AGGREGATE, COUNTERS, COUNTS_STAGE, DATA_QUALITY,
                                        DEAD_LETTER, ENRICHED_OWNER_KEYS, LATE_EXTRA_KEYS)
from flowdredge.schemas.security import UNOWNED_APPS

SCENARIO = Scenario(minutes=6, flows_per_minute=300, instances_per_app=3, churn_per_minute=4.0,
                    reject_share=0.05, seed=11)


def _write_part(folder, name, records, file_name):
    os.makedirs(folder / name, exist_ok=True)
    (folder / name / file_name).write_text("".join(json.dumps(r) + "\n" for r in records))


def _aggregate(window_start, src, dst, port, action, flows, nbytes, region="us-east-1"):
    return {"window_start": window_start, "src_app": src, "src_region": region, "dst_app": dst,
            "dst_region": region, "dst_port": port, "protocol": 6, "action": action,
            "flows": flows, "packets": flows, "bytes": nbytes}


@pytest.fixture
def small_outputs(tmp_path):
    """A hand-written output folder: two committed aggregate files, an unfinished one, counts
    records that carry only their non-zero counters, and no late/ folder at all."""
    _write_part(tmp_path, "aggregates", [_aggregate(60, "api", "db", 5432, "ACCEPT", 3, 300)],
                "part-a-0-0")
    _write_part(tmp_path, "aggregates", [_aggregate(120, "api", "db", 5432, "REJECT", 1, 40)],
                "part-b-0-0")
    (tmp_path / "aggregates" / ".part-c-0-0.inprogress").write_text('{"window_start": 6')
    _write_part(tmp_path, "counts", [{"stage": "parse", "lines_in": 4},
                                     {"stage": "attribute", "src_owned": 4}], "counts-0.jsonl")
    return tmp_path


# ---------------------------------------------------------------- unit

@pytest.mark.unit
def test_every_output_is_a_view_with_every_schema_field():
    assert set(VIEW_COLUMNS) == set(OUTPUTS)
    names = {view: [c.name for c in columns] for view, columns in VIEW_COLUMNS.items()}
    assert names["aggregates"] == list(AGGREGATE.names)
    assert names["dead_letter"] == list(DEAD_LETTER.names)
    enriched = [f.key for f in FLOW_LOG_FIELDS] + list(ENRICHED_OWNER_KEYS)
    assert set(enriched) <= set(names["enriched"])
    assert set(enriched) | set(LATE_EXTRA_KEYS) <= set(names["late"])
    assert set(COUNTERS) <= set(names["counts"])
    assert names["data_quality"] == list(DATA_QUALITY.names)


@pytest.mark.unit
def test_the_side_output_lines_have_their_schemas_fields():
    from flowdredge.job.outputs import counts_line, data_quality_blocks
    no_traffic = {(60, "123456789012", "eni-1", "NODATA"): 2, (60, "123456789012", "eni-1",
                                                              "SKIPDATA"): 1}
    ((row,),) = [list(map(json.loads, block.splitlines()))
                 for block in data_quality_blocks(no_traffic)]
    assert list(row) == list(DATA_QUALITY.names)
    assert (row["no_data"], row["skip_data"]) == (2, 1)
    # One element each: a record of NODATA lines of distinct interfaces has a row each.
    many = {(60, "1", f"eni-{i}", "NODATA"): 1 for i in range(7)}
    blocks = data_quality_blocks(many, most=3)
    assert [len(block.splitlines()) for block in blocks] == [3, 3, 1]
    assert [json.loads(line)["interface_id"] for b in blocks for line in b.splitlines()] == [
        f"eni-{i}" for i in range(7)]
    assert data_quality_blocks({}) == []
    assert json.loads(counts_line("parse", {"lines_in": 3, "flows_parsed": 0})) == {
        COUNTS_STAGE.name: "parse", "lines_in": 3}


@pytest.mark.unit
def test_athena_ddl_declares_every_schema_field_partitioned_by_date_and_hour():
    ddl = athena_ddl("s3://flows-bucket/prod/", database="netflows", first_date="2026-01-01")
    tables = dict(re.findall(r"CREATE EXTERNAL TABLE IF NOT EXISTS `netflows`\.`(\w+)` \((.*?)\n\)"
                             r"\nPARTITIONED BY", ddl, re.S))
    assert set(tables) == set(OUTPUTS)
    columns = {t: re.findall(r"^  `(\w+)` (\w+)", body, re.M) for t, body in tables.items()}
    expected = {
        "aggregates": list(AGGREGATE.names),
        "enriched": [f.key for f in FLOW_LOG_FIELDS] + list(ENRICHED_OWNER_KEYS),
        "late": [f.key for f in FLOW_LOG_FIELDS] + list(ENRICHED_OWNER_KEYS)
                + list(LATE_EXTRA_KEYS),
        "dead_letter": list(DEAD_LETTER.names),
        "counts": ["stage"] + list(COUNTERS),
    }
    for table, wanted in expected.items():
        declared = [name for name, _type in columns[table]]
        missing = set(wanted) - set(declared)
        assert not missing, f"{table} lacks {missing}"
    assert dict(columns["aggregates"])["window_start"] == "bigint"
    assert dict(columns["aggregates"])["dst_port"] == "int"
    for table in OUTPUTS:
        assert f"LOCATION 's3://flows-bucket/prod/{table}/'" in ddl
        assert (f"'storage.location.template' = "
                f"'s3://flows-bucket/prod/{table}/dt=${{dt}}/hour=${{hour}}/'") in ddl
    assert ddl.count("PARTITIONED BY (`dt` string") == len(OUTPUTS)
    assert "'projection.dt.range' = '2026-01-01,NOW'" in ddl
    with pytest.raises(QueryError, match="s3://"):
        athena_ddl("/local/folder")
    # Written into quoted strings as it is, a quote ended one (Athena refused the statement),
    # a line end split it: refused, saying which.
    for location, shown in (("s3://b/it's/x", "\"'\""), ("s3://b/a\\b", "'\\\\'"),
                            ("s3://b/x\ny", "'\\n'")):
        with pytest.raises(QueryError, match=re.escape(f"a location holding {shown} cannot be "
                                                       f"written")):
            athena_ddl(location)
    assert "LOCATION 's3://b/with space/aggregates/'" in athena_ddl("s3://b/with space")
    # S3 keys and Athena's strings hold any other character: a no-break space, a zero-width
    # space, a private-use one, one newer than Python's Unicode tables (U+1FA77) were refused
    # as "not printable" by str.isprintable, which only a control character, a line or
    # paragraph separator, or a lone surrogate (no UTF-8) is here.
    for kept in ("\xa0", "\u200b", "\ue000", "\U0001fa77"):
        assert f"LOCATION 's3://b/a{kept}b/aggregates/'" in athena_ddl(f"s3://b/a{kept}b")
    for refused in ("\t", "\x85", "\u2028", "\udc80"):
        with pytest.raises(QueryError, match=re.escape(f"a location holding {refused!r} ")):
            athena_ddl(f"s3://b/a{refused}b")
    # Athena fills ${name} in storage.location.template with a partition's value, no escape
    # documented: s3://b/x${dt} had the tables read s3://b/x2026-01-01/..., where nothing is.
    for location in ("s3://b/x${dt}", "s3://b/${hour}/y", "s3://b/a${b}"):
        with pytest.raises(QueryError, match=re.escape("a location holding '${' cannot be")):
            athena_ddl(location)
    assert "'s3://b/a$b{c}/aggregates/dt=${dt}/hour=${hour}/'" in athena_ddl("s3://b/a$b{c}")


def _hive_strings(text):
    """The string literals of Hive DDL as Hive's lexer and BaseSemanticAnalyzer.unescapeSQLString
    read them: a backslash escapes the next character, and quoted strings side by side ('a''b')
    are one string, the quotes between them dropped."""
    return [re.sub(r"\\(.)", r"\1", "".join(re.findall(r"'((?:[^'\\]|\\.)*)'", literal)))
            for literal in re.findall(r"(?:'(?:[^'\\]|\\.)*')+", text)]


@pytest.mark.unit
def test_athena_ddl_comments_read_as_the_columns_docs():
    """The comments were written as SQL writes a quote, doubled: Hive, which parses Athena's
    DDL, reads 'end''s' as two strings, "ends" (a review)."""
    statements = athena_ddl("s3://b/x").split("\n\n")[1:]
    read = set()
    for (view, columns), statement in zip(VIEW_COLUMNS.items(), statements):
        assert statement.startswith(f"CREATE EXTERNAL TABLE IF NOT EXISTS `flowdredge`.`{view}`")
        comments = re.findall(r"^  `(\w+)` \w+ COMMENT ((?:'(?:[^'\\]|\\.)*')+),?$",
                              statement, re.M)
        assert [(name, _hive_strings(literal)) for name, literal in comments] == \
            [(c.name, [c.doc]) for c in columns if c.doc]
        read.update(c.doc for c in columns if c.doc)
    assert "app of the src end's owner at flow start" in read


@pytest.mark.unit
def test_athena_ddl_command_prints_it(capsys):
    assert cli.main(["athena-ddl", "--location", "s3://b/x", "--first-date", "2026-02-01"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CREATE DATABASE IF NOT EXISTS `flowdredge`;")
    assert out.count("CREATE EXTERNAL TABLE") == len(OUTPUTS)


@pytest.mark.unit
def test_wrong_sql_names_the_views_and_their_columns(small_outputs, capsys):
    with pytest.raises(QueryError) as err:
        answer(str(small_outputs), sql="SELECT nope FROM aggregates")
    message = str(err.value)
    assert '"nope" not found' in message
    for view in OUTPUTS:
        assert f"  {view}: " in message
    for column in ("window_start BIGINT", "dst_port INTEGER", "src_zone VARCHAR",
                   "dst_zone VARCHAR", "excerpt VARCHAR", "flows_late BIGINT"):
        assert column in message

    assert cli.main(["query", str(small_outputs), "sql", "SELECT * FROM aggregate"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("flowdredge: error: Catalog Error")
    assert "available views and columns:" in stderr and "aggregates: window_start" in stderr
    # Every view exists, read or not, so DuckDB suggests ours, not its own catalog's.
    assert 'Did you mean "aggregates"' in stderr
    with pytest.raises(QueryError, match='Did you mean "enriched"'):
        answer(str(small_outputs), sql="SELECT * FROM enrichd")
    for empty in ("", "  ", "-- a comment"):
        assert cli.main(["query", str(small_outputs), "sql", empty]) == 2
        assert capsys.readouterr().err == "flowdredge: error: no SQL statement given\n"


@pytest.mark.unit
def test_one_statement_at_a_time(small_outputs, capsys):
    """`SELECT 1; SELECT 2` ran both and answered the last only (a review)."""
    for sql in ("SELECT 1; SELECT 2", "SELECT 1;\nSELECT count(*) FROM aggregates;"):
        assert cli.main(["query", str(small_outputs), "sql", sql]) == 2
        assert capsys.readouterr().err == ("flowdredge: error: one statement at a time: 2 "
                                           "given, each ended by a ';' (run them one by one)\n")
    # A ';' in a string, a quoted name or a comment ends nothing; nor does a last one.
    for sql in ("SELECT 1;", "SELECT 1 ;  -- done", "SELECT 'a;b' AS \"x;y\" -- c;\n",
                "SELECT 1 /* ; SELECT 2 */;", "SELECT $$;$$ AS x;"):
        assert cli.main(["query", str(small_outputs), "sql", sql]) == 0, sql
        assert capsys.readouterr().out.endswith("(1 row)\n")


@pytest.mark.unit
def test_sql_that_would_write_or_fetch_is_refused_and_writes_nothing(small_outputs, tmp_path,
                                                                      tmp_path_factory, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "copy.csv"
    for sql in (f"COPY (SELECT * FROM aggregates) TO '{target}'",
                f"SELECT 1; COPY aggregates TO '{target}'",
                f"ATTACH '{elsewhere / 'x.db'}'", "INSTALL httpfs",
                "CREATE TABLE t AS SELECT 1"):
        assert cli.main(["query", str(small_outputs), "sql", sql]) == 2
        assert capsys.readouterr().err.startswith("flowdredge: error: only queries are run")
    assert list(elsewhere.iterdir()) == []
    for sql in ("DESCRIBE aggregates", "SUMMARIZE aggregates", "EXPLAIN SELECT 1",
                "FROM aggregates LIMIT 1", "WITH a AS (SELECT 1) SELECT * FROM a"):
        assert answer(str(small_outputs), sql=sql).rows
    # A query reads the folder's outputs only: no other file, no URL (nor the extension
    # DuckDB would download for it), and no SET lifts that.
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.csv").write_text("a\n1\n")
    for sql in (f"SELECT * FROM read_csv('{outside / 'secret.csv'}')",
                f"SELECT * FROM read_text('{small_outputs}/../{outside.name}/secret.csv')",
                "SELECT * FROM read_csv('https://example.com/x.csv')"):
        with pytest.raises(QueryError, match="disabled by configuration"):
            answer(str(small_outputs), sql=sql)
    with Outputs(str(small_outputs), ("aggregates",)) as outputs, \
            pytest.raises(duckdb.Error, match="configuration has been locked"):
        outputs.con.execute("SET enable_external_access = true")
    # An output folder linked from elsewhere is read where it is; a file linked from a folder
    # outside opens that file, not its folder.
    linked = tmp_path_factory.mktemp("linked")
    os.symlink(small_outputs / "aggregates", linked / "aggregates")
    assert answer(str(linked), sql="SELECT count(*) FROM aggregates").rows == [(2,)]
    (outside / "part-x").write_text((small_outputs / "aggregates" / "part-a-0-0").read_text())
    os.symlink(outside / "part-x", small_outputs / "aggregates" / "part-x")
    assert answer(str(small_outputs), sql="SELECT count(*) FROM aggregates").rows == [(3,)]
    with pytest.raises(QueryError, match="disabled by configuration"):
        answer(str(small_outputs), sql=f"SELECT * FROM read_csv('{outside / 'secret.csv'}')")


@pytest.mark.unit
def test_duckdbs_temporary_folder_is_not_the_working_folders(small_outputs, tmp_path_factory,
                                                              monkeypatch):
    """DuckDB allows queries its temporary folder, by default .tmp/ in the working folder: a
    file there was readable."""
    cwd = tmp_path_factory.mktemp("cwd")
    (cwd / ".tmp").mkdir()
    (cwd / ".tmp" / "secret.txt").write_text("SECRET")
    monkeypatch.chdir(cwd)
    with pytest.raises(QueryError, match="a query reads the output folder's files only"):
        answer(str(small_outputs), sql="SELECT content FROM read_text('.tmp/secret.txt')")


@pytest.mark.unit
def test_a_question_opens_only_the_outputs_it_reads(small_outputs):
    """rejects by app read the aggregates, and said enriched/ was missing (and, on S3, copied
    every enriched file); by address it reads enriched/."""
    assert answer(str(small_outputs), "rejects", {}).missing == ()
    assert answer(str(small_outputs), "rejects", {"source": "address"}).missing == \
        ("enriched",)


@pytest.mark.unit
def test_sql_opens_the_views_it_names_outside_strings_and_comments(small_outputs):
    """A string or a comment naming a view was taken as a use of it (a review): enriched/ said
    missing for `SELECT 'enriched'`, and on S3 copied."""
    assert answer(str(small_outputs), sql="SELECT 'enriched' AS x").missing == ()
    assert referenced_views("SELECT 'late', E'\\' enriched', $$dead_letter$$ AS \"x\" -- counts\n"
                            "FROM \"Aggregates\" /* data_quality */") == ("aggregates",)
    assert referenced_views("SELECT * FROM late JOIN enriched USING (start)") == (
        "enriched", "late")
    assert answer(str(small_outputs), sql='SELECT count(*) FROM "enriched"').missing == (
        "enriched",)
    # A function reading a table named in text: any mention counts.
    assert referenced_views("SELECT * FROM query_table('late')") == ("late",)
    assert answer(str(small_outputs), sql="SELECT count(*) FROM query('FROM aggregates')"
                  ).rows == [(2,)]


@pytest.mark.unit
def test_an_app_no_aggregate_names_is_told(small_outputs, capsys):
    assert cli.main(["query", str(small_outputs), "dependencies", "--app", "API"]) == 0
    assert "note: no aggregate names the app 'API' (names are as the owners' tags give them" \
        in capsys.readouterr().err
    assert cli.main(["query", str(small_outputs), "dependencies", "--app", "api"]) == 0
    assert "note: no aggregate" not in capsys.readouterr().err
    # A roll-up's or drill-down's app filters, each named (before, no rows without a word).
    for question in (["rollup", "--every", "1h"], ["drill-down"]):
        assert cli.main(["query", str(small_outputs), *question, "--src-app", "API",
                         "--dst-app", "db"]) == 0
        err = capsys.readouterr().err
        assert "note: no aggregate names the app 'API'" in err
        assert "names the app 'db'" not in err
        assert cli.main(["query", str(small_outputs), *question, "--src-app", "db",
                         "--dst-app", "api"]) == 0
        assert "note: no aggregate" not in capsys.readouterr().err


@pytest.mark.unit
def test_equal_rows_come_in_one_order(tmp_path):
    """TCP and UDP on one port with equal counts came in either order from run to run, and
    `exposure --limit 1` gave either (a review): every grouped column is in the order."""
    udp, tcp = ({**_aggregate(60, "internet", "dns", 53, "ACCEPT", 2, 100), "protocol": p}
                for p in (17, 6))
    _write_part(tmp_path, "aggregates", [udp], "part-a-0-0")
    _write_part(tmp_path, "aggregates", [tcp], "part-b-0-0")
    for _ in range(5):
        assert [r[3] for r in answer(str(tmp_path), "exposure", {}).rows] == [6, 17]
        assert [r[3] for r in answer(str(tmp_path), "exposure", {"limit": "1"}).rows] == [6]


@pytest.mark.unit
def test_an_answer_cut_by_its_limit_says_so(tmp_path, capsys):
    """A limit of exactly the answer's rows left none out; it said so all the same (a
    review): one row more is asked for, to know."""
    _write_part(tmp_path, "aggregates", [_aggregate(60, src, "db", 5432, "ACCEPT", 1, size)
                                         for src, size in (("api", 300), ("web", 200),
                                                           ("cron", 100))], "part-a-0-0")
    for limit, cut in (("1", True), ("2", True), ("3", False), ("4", False)):
        assert cli.main(["query", str(tmp_path), "top-talkers", "--limit", limit]) == 0
        out, err = capsys.readouterr()
        assert (f"note: the first {limit} rows only (--limit 0 gives all)" in err) == cut
        assert f"({min(int(limit), 3)} row" in out


@pytest.mark.unit
def test_the_summary_shows_names_as_text(small_outputs):
    """An owner's tag can hold a newline, a terminal's escape sequence or a mark reversing
    the text: the summary printed them raw (a forged edge line, the terminal's title set)."""
    from flowdredge.explore.summary import render, summarize
    forged = "x\n     attacker -> payments 999999.0 MB\n\x1b]0;pwned\x07 evil\u202eppa \x9b2J"
    _write_part(small_outputs, "aggregates", [_aggregate(180, forged, "db", 443, "REJECT", 1, 9)],
                "part-e-0-0")
    text = render(summarize(str(small_outputs)), str(small_outputs))
    assert "attacker" in text and "\n     attacker" not in text and "\x1b" not in text
    assert "\u202e" not in text and "\\u202e" in text and "\x9b" not in text
    assert not any(line.lstrip().startswith("attacker") for line in text.splitlines())


@pytest.mark.unit
def test_the_summary_counts_rejects_by_destination_app(small_outputs):
    # A REJECT from api to db: the app whose security group refused it is db.
    from flowdredge.explore.summary import summarize
    assert summarize(str(small_outputs))["rejects"] == [("db", 1)]


@pytest.mark.unit
def test_a_file_that_cannot_be_read_is_named_without_the_views(small_outputs, capsys):
    part = small_outputs / "aggregates" / "part-d-0-0"
    part.write_text('{"window_start": 180, "src_app": "api\n')
    with pytest.raises(QueryError) as err:
        answer(str(small_outputs), sql="SELECT count(*) FROM aggregates")
    assert str(part) in str(err.value) and "available views" not in str(err.value)
    assert cli.main(["summary", str(small_outputs)]) == 2
    assert capsys.readouterr().err.startswith(f"flowdredge: error: {part}: line 1: not JSON: ")


@pytest.mark.unit
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_a_malformed_line_is_named_by_its_number_and_text(small_outputs, suffix):
    # DuckDB 2.0 names the line after the bad one, and not its text.
    import gzip
    part = small_outputs / "aggregates" / f"part-d-0-0{suffix}"
    good = json.dumps(_aggregate(180, "api", "db", 5432, "ACCEPT", 1, 10))
    text = f"{good}\n{{\"window_start\": 240, \"src_app\n{good}\n{good}\n"
    if suffix:
        part.write_bytes(gzip.compress(text.encode()))
    else:
        part.write_text(text)
    with pytest.raises(QueryError) as err:
        answer(str(small_outputs), sql="SELECT count(*) FROM aggregates")
    assert str(err.value).startswith(f"{part}: line 2: not JSON: ")


@pytest.mark.unit
@pytest.mark.parametrize("line, said", [
    ("[1, 2]", "line 2: not a JSON object: [1, 2]"),
    ('{"flows": 1, "flows": 2}', 'line 2: Object {"flows":1,"flows":2} has duplicate key "flows"')])
def test_a_line_duckdb_cannot_read_is_one_line_without_its_advice(small_outputs, capsys, line,
                                                                   said):
    """DuckDB named the line before a line that is no object, and added 'Try setting
    'auto_detect' to true, ... or setting 'ignore_errors' to true.', options a user of query
    and report has no say over (a review)."""
    part = small_outputs / "aggregates" / "part-d-0-0"
    good = json.dumps(_aggregate(180, "api", "db", 5432, "ACCEPT", 1, 10))
    part.write_text(f"{good}\n{line}\n{good}\n")
    assert cli.main(["query", str(small_outputs), "sql", "SELECT sum(flows) FROM aggregates"]) == 2
    assert capsys.readouterr().err == f"flowdredge: error: {part}: {said}\n"


@pytest.mark.unit
@pytest.mark.parametrize("value, said", [
    ("[" * 100_000 + "]" * 100_000, "not JSON: nested deeper than its decoder goes"),
    ("9" * 5000, "not JSON: an integer of more than 4300 digits")])
def test_a_line_json_cannot_hold_is_named_by_its_number(small_outputs, capsys, value, said):
    """Python's decoder raises RecursionError for a line nested deeper than it goes (summary
    printed a traceback) and a ValueError that named no file for an integer of more than 4,300
    digits (a review)."""
    part = small_outputs / "counts" / "counts-d-0.jsonl"
    good = json.dumps({"stage": "flows", "records_in": 1})
    part.write_text(f'{good}\n{{"stage": "flows", "records_in": {value}}}\n')
    assert cli.main(["summary", str(small_outputs)]) == 2
    assert capsys.readouterr().err == f"flowdredge: error: {part}: line 2: {said}\n"
    assert cli.main(["query", str(small_outputs), "sql", "SELECT sum(records_in) FROM counts"]) == 2
    assert capsys.readouterr().err == f"flowdredge: error: {part}: line 2: {said}\n"


@pytest.mark.unit
def test_a_question_on_an_output_turned_off_says_so(small_outputs, capsys):
    """No enriched/ (outputs.enriched: false): who-owned would read as 'nobody owned it'. late/
    appears only once a flow is late: its absence is no news."""
    assert answer(str(small_outputs), "who-owned", {"ip": "10.0.0.1", "at": "1767225600"}).missing \
        == ("enriched",)
    assert answer(str(small_outputs), sql="SELECT count(*) FROM late").missing == ()
    assert cli.main(["query", str(small_outputs), "sql", "SELECT count(*) FROM scans"]) == 0
    assert f"{small_outputs} has no scans/ (that output was off in the run" \
        in capsys.readouterr().err


def _flow(start, srcaddr, dstaddr, **fields):
    """An enriched line of one flow from api to db; the fields it leaves out read as null."""
    return {"start": start, "end": start + 60, "srcaddr": srcaddr, "dstaddr": dstaddr,
            "dstport": 5432, "protocol": 6, "action": "ACCEPT", "packets": 1, "bytes": 100,
            "src_app": "api", "dst_app": "db", **fields}


def _enriched(folder, flows):
    _write_part(folder / "enriched" / "dt=2026-01-01", "hour=00", flows,
                "enriched-3c9e1f7a-6d2b-4a8e-b5c0-7f1e2d3a4b56-0.jsonl")


def _who_owned_rows(folder, ip, at):
    result = answer(str(folder), "who-owned", {"ip": ip, "at": str(at)})
    return [dict(zip(result.columns, row)) for row in result.rows]


@pytest.mark.unit
def test_who_owned_counts_late_flows(tmp_path):
    """A late flow is written to late/ only: left out, its owner was never seen there."""
    at = 1767225630
    (tmp_path / "enriched").mkdir()
    _write_part(tmp_path / "late" / "dt=2026-01-01", "hour=00",
                [{**_flow(at, "10.0.0.1", "10.0.0.2"), "window_start": at - at % 60}],
                "late-0d6f2a9e-1b7c-4d3e-9f20-5a8b7c6d4e31-0.jsonl")
    assert [(r["owner_app"], r["direction"], r["flows"])
            for r in _who_owned_rows(tmp_path, "10.0.0.1", at)] == [("api", "out", 1)]


@pytest.mark.unit
def test_who_owned_matches_the_packet_addresses(tmp_path):
    """Behind NAT or a load balancer srcaddr is the interface's; pkt_srcaddr is the real
    endpoint, the address the job attributed."""
    at = 1767225630
    _enriched(tmp_path, [_flow(at, "10.0.0.9", "10.0.0.2", pkt_srcaddr="10.0.0.5")])
    assert [(r["owner_app"], r["direction"], r["flows"])
            for r in _who_owned_rows(tmp_path, "10.0.0.5", at)] == [("api", "out", 1)]


@pytest.mark.unit
def test_who_owned_takes_an_ipv4_address_spelt_as_ipv6_and_refuses_a_zone_id(tmp_path):
    """A flow holds an IPv4 address as a VPC writes it; asked as a dual-stack socket shows it
    (::ffff:10.0.0.5), or IPv4-compatible, it is the same address. A zone id names a host's
    interface: no flow holds one. Before, both answered no rows without a word."""
    at = 1767225630
    _enriched(tmp_path, [_flow(at, "10.0.0.5", "10.0.0.2"),
                         _flow(at, "2001:db8::5", "10.0.0.2")])
    for spelt in ("::ffff:10.0.0.5", "::FFFF:a00:5", "::10.0.0.5", "0:0:0:0:0:ffff:0a00:0005"):
        assert [(r["owner_app"], r["direction"], r["flows"])
                for r in _who_owned_rows(tmp_path, spelt, at)] == [("api", "out", 1)], spelt
    assert len(_who_owned_rows(tmp_path, "2001:DB8:0::5", at)) == 1
    with pytest.raises(QueryError, match="an IPv6 address with a zone id, which flow logs "
                                         "never hold"):
        _who_owned_rows(tmp_path, "2001:db8::5%eth0", at)


@pytest.mark.unit
def test_cross_zone_pairs_leave_out_unknown_zones(tmp_path):
    """'-' is no zone (an end without an owner): a flow to or from it crosses none."""
    at = 1767225630
    _enriched(tmp_path, [_flow(at, "10.0.0.1", "10.0.0.2", src_zone=src, dst_zone=dst)
                         for src, dst in (("use1-az1", "use1-az2"), ("use1-az1", "-"),
                                          ("-", "use1-az1"))])
    cross = answer(str(tmp_path), "zone-pairs", {"cross_only": True})
    assert [(r[0], r[1]) for r in cross.rows] == [("use1-az1", "use1-az2")]


@pytest.mark.unit
def test_rejects_by_address_name_the_packet_source(tmp_path):
    """Behind NAT or a load balancer srcaddr is the interface's; pkt_srcaddr is who sent."""
    at = 1767225630
    _enriched(tmp_path, [_flow(at, "10.0.0.9", "10.0.0.2", pkt_srcaddr="203.0.113.5",
                               action="REJECT")])
    result = answer(str(tmp_path), "rejects", {"app": "db", "source": "address"})
    assert [row[result.columns.index("src_addr")] for row in result.rows] == ["203.0.113.5"]


@pytest.mark.unit
def test_unfinished_files_are_skipped_and_missing_outputs_are_empty_typed_views(small_outputs):
    assert answer(str(small_outputs), sql="SELECT count(*), sum(bytes) FROM aggregates").rows \
        == [(2, 340)]
    late = answer(str(small_outputs), sql="SELECT * FROM late")
    assert late.rows == [] and late.columns == [c.name for c in VIEW_COLUMNS["late"]]
    counts = answer(str(small_outputs),
                    sql="SELECT sum(lines_in), sum(src_owned), sum(flows_late) FROM counts")
    assert counts.rows == [(4, 4, 0)]     # absent counters read as 0, not null
    # Committed files in hidden folders (a copy's _temporary/, .staging/) were counted twice
    # more; an empty .gz failed every query of its view.
    for hidden in ("_temporary/0/task_1", ".staging"):
        (small_outputs / "aggregates" / hidden).mkdir(parents=True)
        (small_outputs / "aggregates" / hidden / "part-a-0-0").write_bytes(
            (small_outputs / "aggregates" / "part-a-0-0").read_bytes())
    (small_outputs / "aggregates" / "part-d-0-0.jsonl.gz").write_bytes(b"")
    assert answer(str(small_outputs), sql="SELECT count(*), sum(bytes) FROM aggregates").rows \
        == [(2, 340)]
    from flowdredge.explore.summary import summarize
    assert summarize(str(small_outputs))["top_edges"] == [(("api", "db"), 340)]


@pytest.mark.unit
def test_bad_folders_and_parameters_are_explained(tmp_path, small_outputs):
    with pytest.raises(QueryError, match="no such output folder"):
        answer(str(tmp_path / "nowhere"), sql="SELECT 1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(QueryError, match="not an output folder"):
        answer(str(tmp_path / "empty"), sql="SELECT 1")
    with pytest.raises(QueryError, match="--app is required"):
        answer(str(small_outputs), "dependencies", {})
    with pytest.raises(QueryError, match="not a whole number of stored 60s windows"):
        answer(str(small_outputs), "rollup", {"every": "90s"})
    with pytest.raises(QueryError, match="unknown dimension"):
        answer(str(small_outputs), "rollup", {"every": "1h", "by": "src_app,colour"})
    with pytest.raises(QueryError, match="not an IPv4 or IPv6 address"):
        answer(str(small_outputs), "who-owned", {"ip": "10.0.0.300", "at": "1767225600"})
    with pytest.raises(QueryError, match="not a time"):
        parse_time("yesterday")
    # What gave an empty answer without a word: a reversed range, epoch milliseconds (a
    # changelog's ts), an action in lower case; a limit DuckDB cannot take quoted its SQL.
    with pytest.raises(QueryError, match="--since must be before --until"):
        answer(str(small_outputs), "top-talkers", {"since": "2026-01-01T00:20Z",
                                                   "until": "2026-01-01T00:10Z"})
    with pytest.raises(QueryError, match="not a time of flows .*not milliseconds"):
        answer(str(small_outputs), "who-owned", {"ip": "10.0.0.1", "at": "1767225630000"})
    for question, values in (("rollup", {"every": "1h"}), ("drill-down", {})):
        with pytest.raises(QueryError, match="--action must be one of ACCEPT, REJECT"):
            answer(str(small_outputs), question, {**values, "action": "reject"})
    with pytest.raises(QueryError, match="expected a whole number"):
        answer(str(small_outputs), "egress", {"limit": "99999999999999999999"})
    # A roll-up over windows of another length than --window-seconds merged them wrongly,
    # without a word: a 60 s window inside a 300 s one, 300 s windows every 2m.
    with pytest.raises(QueryError, match=r"a stored window starts at 60 \(1970-01-01T00:01:00Z"
                                         r"\), inside a 300s window"):
        answer(str(small_outputs), "rollup", {"every": "15m", "window_seconds": "300"})
    five = tmp_path / "five"
    _write_part(five, "aggregates", [_aggregate(1767225600 + 300 * i, "api", "db", 5432,
                                                "ACCEPT", 1, 10) for i in range(3)], "part-0")
    with pytest.raises(QueryError, match="the stored windows start 300s apart, so --every 120s"):
        answer(str(five), "rollup", {"every": "2m"})
    # A range of one window: still the run's 300 s apart (its 00:05 window was counted at 00:04).
    with pytest.raises(QueryError, match="the stored windows start 300s apart"):
        answer(str(five), "rollup", {"every": "2m", "since": "1767225900",
                                     "until": "1767226200"})
    assert answer(str(five), "rollup", {"every": "10m", "by": ""}).rows == [
        (1767225600, "2026-01-01T00:00:00Z", 2, 2, 20), (1767226200, "2026-01-01T00:10:00Z",
                                                          1, 1, 10)]
    # A drill-down listed the flows of 60 s windows the aggregates did not have (a review).
    with pytest.raises(QueryError, match="the stored windows start 300s apart, so the flows of "
                                         "60s windows would not be those of an aggregate row"):
        answer(str(five), "drill-down", {})
    with pytest.raises(QueryError, match=r"a stored window starts at 60 .*inside a 300s window"):
        answer(str(small_outputs), "drill-down", {"window_seconds": "300"})
    assert answer(str(five), "drill-down", {"window_seconds": "300"}).rows == []
    # A window starting inside one of --window-seconds outside the range is not rolled up.
    _write_part(five, "aggregates", [_aggregate(1767225660, "api", "db", 5432, "ACCEPT", 1, 10)],
                "part-1")
    assert answer(str(five), "rollup", {"every": "10m", "by": "", "window_seconds": "300",
                                        "since": "1767225900"}).rows == [
        (1767225600, "2026-01-01T00:00:00Z", 1, 1, 10),
        (1767226200, "2026-01-01T00:10:00Z", 1, 1, 10)]


@pytest.mark.unit
def test_numbers_out_of_their_range_are_refused(small_outputs, capsys):
    """--dst-port 99999 or -5 answered nothing without a word, a --limit of 2**63 - 1 ended
    in DuckDB's words and its SQL, a --within of 10**40 s in DuckDB's (a review)."""
    for argv, said in (
            (["rollup", "--every", "1h", "--dst-port", "99999"],
             "rollup: --dst-port: '99999': expected a whole number from 0 to 65535"),
            (["drill-down", "--dst-port", "-5"],
             "drill-down: --dst-port: '-5': expected a whole number from 0 to 65535"),
            (["rollup", "--every", "1h", "--protocol", "256"],
             "rollup: --protocol: '256': expected a whole number from 0 to 255"),
            (["top-talkers", "--limit", str(2**63 - 1)],
             f"top-talkers: --limit: '{2**63 - 1}': expected a whole number from 0 to "
             f"{2**63 - 2}"),
            (["egress", "--limit", "-1"], "egress: --limit: '-1': expected a whole number"),
            (["who-owned", "--ip", "10.0.0.1", "--at", "1767225600", "--within",
              str(10**40)], f"who-owned: --within: '{10**40}' is longer than the years "
                            f"the job reads flows of (2010-2099)"),
            (["rollup", "--every", "40000d"], "rollup: --every: '40000d' is longer than"),
            # More digits than int() reads said Python's limit, not the option (a review).
            (["who-owned", "--ip", "10.0.0.1", "--at", "1767225600", "--within", "9" * 5000],
             f"who-owned: --within: '{'9' * 5000}' is longer than the years"),
            (["who-owned", "--ip", "10.0.0.1", "--at", "9" * 5000],
             f"who-owned: --at: '{'9' * 5000}' is not a time of flows (2010-2099)"),
            (["top-talkers", "--since", "-" + "9" * 5000],
             f"top-talkers: --since: '-{'9' * 5000}' is not a time of flows (2010-2099)"),
            (["rollup", "--every", "1h", "--window-seconds", "0"],
             "rollup: --window-seconds: '0' is not a duration")):
        assert cli.main(["query", str(small_outputs)] + argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"flowdredge: error: {said}") and err.count("\n") == 1, err
    # The ends of the ranges are taken, from the API's numbers too.
    assert answer(str(small_outputs), "rollup", {"every": "1h", "dst_port": "65535",
                                                 "protocol": 0}).rows == []
    assert answer(str(small_outputs), "top-talkers", {"limit": 2**63 - 2}).rows
    with pytest.raises(QueryError, match="--dst-port: 70000: expected a whole number"):
        answer(str(small_outputs), "rollup", {"every": "1h", "dst_port": 70000})
    # int() made 443.9 443 and True 1; 5,000 digits said Python's limit, not the option.
    for port in (443.9, True, "9" * 5000):
        with pytest.raises(QueryError, match="--dst-port: .*expected a whole number"):
            answer(str(small_outputs), "rollup", {"every": "1h", "dst_port": port})


@pytest.mark.unit
def test_week_buckets_start_on_thursdays_as_the_help_says(tmp_path, capsys):
    """`--every 7d` buckets start on Thursdays, the epoch's weekday, as the job's windows are
    aligned; --help said only "the roll-up window" (a review)."""
    monday = 1767571200   # 2026-01-05T00:00:00Z
    _write_part(tmp_path, "aggregates", [_aggregate(monday + 86400 * d, "api", "db", 5432,
                                                    "ACCEPT", 1, 10) for d in range(7)], "part-0")
    assert answer(str(tmp_path), "rollup", {"every": "7d", "by": "", "window_seconds": "1d"}
                  ).rows == [(1767225600, "2026-01-01T00:00:00Z", 3, 3, 30),
                             (1767830400, "2026-01-08T00:00:00Z", 4, 4, 40)]
    with pytest.raises(SystemExit):
        cli.main(["query", str(tmp_path), "rollup", "-h"])
    assert "7d weeks on Thursdays" in " ".join(capsys.readouterr().out.split())


@pytest.mark.unit
def test_time_and_duration_parameters():
    assert parse_time("1767225600") == 1767225600
    # Leading zeros, read before a time was refused by its length (a review of a review's
    # change), as a duration's are.
    assert parse_time("0" * 5000 + "1767225600") == 1767225600
    assert parse_duration("0" * 5000 + "90") == 90
    assert parse_time("2026-01-01T00:10:00Z") == 1767225600 + 600
    assert parse_time("2026-01-01 00:10") == 1767225600 + 600      # UTC unless told
    assert parse_time("2026-01-01T01:10:00+01:00") == 1767225600 + 600
    assert [parse_duration(d) for d in ("90", "90s", "15m", "1h", "1d")] == \
        [90, 90, 900, 3600, 86400]
    with pytest.raises(QueryError):
        parse_duration("0")


@pytest.mark.unit
def test_formats():
    result = Result(["app", "bytes", "share"], [("api", 1200, 0.5), ("db", 7, None)])
    assert format_result(result, "table").splitlines() == [
        "app  bytes  share",
        "---  -----  -----",
        "api   1200    0.5",
        "db       7   NULL",
        "(2 rows)"]
    assert format_result(result, "csv") == "app,bytes,share\napi,1200,0.5\ndb,7,"
    # A tab or newline in a name stays in its row; a wide character takes two columns.
    odd = Result(["app", "flows"], [("a\tb\n", 1), ("数据", 22)])
    assert format_result(odd, "table").splitlines() == [
        "app     flows", "------  -----", "a\\tb\\n      1", "数据       22", "(2 rows)"]
    assert [json.loads(line) for line in format_result(result, "json").splitlines()] == [
        {"app": "api", "bytes": 1200, "share": 0.5}, {"app": "db", "bytes": 7, "share": None}]
    # JSON has no NaN nor infinity (json.dumps wrote them bare).
    odd_numbers = Result(["x"], [(float("nan"),), (float("-inf"),),
                                 ([1.5, float("nan")],), ({"a": [Decimal("1.50")]},),
                                 ({Decimal("1.50"): 1, float("nan"): 2},)])
    assert [json.loads(line, parse_constant=lambda c: pytest.fail(c))
            for line in format_result(odd_numbers, "json").splitlines()] == \
        [{"x": "NaN"}, {"x": "-Infinity"}, {"x": [1.5, "NaN"]}, {"x": {"a": [1.5]}},
         {"x": {"1.50": 1, '"NaN"': 2}}]


@pytest.mark.unit
def test_csv_fields_that_start_like_a_formula_are_text(tmp_path, capsys):
    """An app name is whatever an instance's tags say; written as it is, one starting with =, +,
    -, @, a tab or a line end opened as a formula in a spreadsheet (CSV injection): a ' before
    it now. Numbers, negative ones too, a number written as text and the unowned ends' '-'
    stay as they are; JSON is not read as formulas: unchanged (a review)."""
    hostile = ['=HYPERLINK("http://evil","x")', "@SUM(A1)", "-2+3+cmd|' /C calc'!A0",
               "+1+1", "\t=1", "\r=1", "\n=1", "  =1", "'quoted"]
    harmless = ["-", "-5", "+1.5", "-1e5", "api", "a=b", " api"]
    _write_part(tmp_path, "aggregates",
                [_aggregate(60, name, "internet", 443, "ACCEPT", i + 1, 10 * (i + 1),
                            region="-") for i, name in enumerate(hostile + harmless)],
                "part-a-0-0")
    sql = ("SELECT src_app, dst_region, -bytes AS minus, -bytes / 4 AS share, "
           "(-bytes)::DECIMAL(9, 1) AS exact FROM aggregates ORDER BY flows")
    assert cli.main(["query", str(tmp_path), "sql", sql, "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["src_app", "dst_region", "minus", "share", "exact"]
    names = hostile + harmless
    assert [r[0] for r in rows[1:]] == ["'" + n for n in hostile] + harmless
    for i, row in enumerate(rows[1:]):
        assert row[1:] == ["-", str(-10 * (i + 1)), str(-10 * (i + 1) / 4),
                           f"{-10 * (i + 1)}.0"], names[i]
    # A column name is a field as any other; a CR in one is quoted as a LF is (it split the row).
    named = 'SELECT 1 AS "@x", 2 AS "a\rb", \'x\r=1\' AS c'
    assert cli.main(["query", str(tmp_path), "sql", named, "--format", "csv"]) == 0
    assert capsys.readouterr().out == '\'@x,"a\rb",c\n1,2,"x\r=1"\n'
    assert cli.main(["query", str(tmp_path), "sql", sql, "--format", "json"]) == 0
    assert [json.loads(line)["src_app"] for line in capsys.readouterr().out.splitlines()] == names


@pytest.mark.unit
def test_a_folder_named_like_a_glob_is_read_as_named(tmp_path, capsys):
    """DuckDB reads a file's path as a glob: a folder o[1] beside an o1 was read as o1, one
    named o? as o? and oX, and the query failed on a file outside the folder (a review)."""
    for name, flows in (("o[1]", 3), ("o1", 5), ("q?*", 7), ("qX*", 11), ("qXY", 13)):
        _write_part(tmp_path / name, "aggregates",
                    [_aggregate(60, "api", "db", 5432, "ACCEPT", flows, 10)], "part-a-0-0")
    for name, flows in (("o[1]", 3), ("q?*", 7)):
        assert cli.main(["query", str(tmp_path / name), "sql",
                         "SELECT sum(flows) AS flows FROM aggregates", "--format", "csv"]) == 0
        assert capsys.readouterr().out == f"flows\n{flows}\n", name


@pytest.mark.unit
def test_decimals_are_exact_json_numbers(small_outputs, capsys):
    """A DECIMAL was written as a float: a sum of bytes past 2**53 lost its last digits (a
    review)."""
    sql = ("SELECT (sum(bytes) + 9007199254740993)::DECIMAL(38, 0) AS total, "
           "12345678901234567890.123456789 AS exact, [0.10, -2.00] AS listed, "
           "{'mb': 1.5::DECIMAL(4, 2)} AS struct FROM aggregates")
    assert cli.main(["query", str(small_outputs), "sql", sql, "--format", "json"]) == 0
    line = capsys.readouterr().out
    assert line == ('{"total": 9007199254741333, "exact": 12345678901234567890.123456789, '
                    '"listed": [0.10, -2.00], "struct": {"mb": 1.50}}\n')
    assert json.loads(line, parse_float=Decimal)["exact"] == Decimal(
        "12345678901234567890.123456789")


@pytest.mark.unit
def test_json_names_every_column_and_key_once(small_outputs, capsys):
    """Two columns of one name were one JSON key, and all but the last column of it lost
    without a word; a MAP's date key was quoted twice; a table's header was not escaped as
    its cells are (a review)."""
    joined = "SELECT 1 AS w, 2 AS w, 3 AS v"
    assert cli.main(["query", str(small_outputs), "sql", joined, "--format", "json"]) == 2
    assert capsys.readouterr().err == ("flowdredge: error: columns 'w' given more than once: "
                                       "name each with AS for --format json\n")
    assert cli.main(["query", str(small_outputs), "sql", joined, "--format", "csv"]) == 0
    assert capsys.readouterr().out == "w,w,v\n1,2,3\n"
    keyed = "SELECT MAP {DATE '2024-01-01': 1} AS d, MAP {2: 'x'} AS n, 1 AS \"a\x1b[31m\""
    assert cli.main(["query", str(small_outputs), "sql", keyed, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"d": {"2024-01-01": 1}, "n": {"2": "x"},
                                                   "a\x1b[31m": 1}
    assert cli.main(["query", str(small_outputs), "sql", keyed]) == 0
    assert "\x1b" not in capsys.readouterr().out


@pytest.mark.unit
def test_a_table_tells_null_from_every_text(small_outputs, capsys):
    """NULL and an empty text were both shown as nothing, and a backslash and an n as a
    newline is (a review)."""
    sql = ("SELECT * FROM (VALUES (1, NULL), (2, ''), (3, 'NULL'), (4, 'a' || chr(10) || 'b'), "
           "(5, 'a\\nb'), (6, '\\')) AS t(n, x) ORDER BY n")
    assert cli.main(["query", str(small_outputs), "sql", sql]) == 0
    assert capsys.readouterr().out.splitlines()[2:8] == [
        "1  NULL", "2", "3  \\NULL", "4  a\\nb", "5  a\\\\nb", "6  \\\\"]
    assert cli.main(["query", str(small_outputs), "sql", sql, "--format", "json"]) == 0
    assert [json.loads(line)["x"] for line in capsys.readouterr().out.splitlines()] == [
        None, "", "NULL", "a\nb", "a\\nb", "\\"]
    assert format_result(Result(["x"], [([None, "a\\b", "c\n"],)]), "table").splitlines()[2] \
        == "[None, 'a\\\\b', 'c\\n']"


@pytest.mark.unit
def test_one_committed_file_rule_and_one_s3_url_parser(small_outputs):
    from bench.compare import read_aggregates
    from flowdredge.connectors import s3
    assert [is_committed(n) for n in ("part-0-1.json", ".part-0-2.inprogress", "_SUCCESS")] \
        == [True, False, False]
    # bench.compare reads the same files as the query views (small_outputs has hidden ones).
    assert sum(measures[2] for measures in read_aggregates(str(small_outputs)).values()) == 340
    assert s3.split("s3://b/runs/r1/") == ("b", "runs/r1/")
    assert s3.split("s3://b", key_required=False) == ("b", "")
    for url, key_required in (("s3://b", True), ("s3:///k", False), ("/tmp/x", False)):
        with pytest.raises(ValueError, match="expected s3://bucket/"):
            s3.split(url, key_required)
    with pytest.raises(QueryError, match="expected s3://bucket/prefix"):
        answer("s3:///runs", sql="SELECT 1")
    assert not s3.is_s3("/tmp/s3://x")


@pytest.mark.unit
def test_s3_folder_is_copied_once_with_the_same_rules(small_outputs, tmp_path, monkeypatch):
    moto = pytest.importorskip("moto", reason="moto (test extra) emulates S3 in-process")
    import boto3
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "cache"
    with moto.mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="flows")
        for path in small_outputs.rglob("*"):
            if path.is_file():
                key = "runs/r1/" + path.relative_to(small_outputs).as_posix()
                s3.put_object(Bucket="flows", Key=key, Body=path.read_bytes())
        total = "SELECT count(*), sum(bytes) FROM aggregates"
        assert answer("s3://flows/runs/r1", sql=total, cache_dir=str(cache)).rows == [(2, 340)]
        assert sorted(p.name for p in (cache / "aggregates").iterdir()) == \
            ["part-a-0-0", "part-b-0-0"]
        assert not (cache / "counts").exists()     # the SQL did not read counts: not copied

        s3.delete_object(Bucket="flows", Key="runs/r1/aggregates/part-a-0-0")
        assert answer("s3://flows/runs/r1/", sql=total, cache_dir=str(cache)).rows == [(1, 40)]
        # Rewritten at the same size: copied again (its time changed).
        os.utime(cache / "aggregates" / "part-b-0-0", (0, 0))
        body = (small_outputs / "aggregates" / "part-b-0-0").read_text()
        s3.put_object(Bucket="flows", Key="runs/r1/aggregates/part-b-0-0",
                      Body=body.replace('"bytes": 40', '"bytes": 41'))
        assert answer("s3://flows/runs/r1/", sql=total, cache_dir=str(cache)).rows == [(1, 41)]
        with pytest.raises(QueryError, match="no objects there"):
            answer("s3://flows/runs/none", sql=total, cache_dir=str(tmp_path / "c2"))
        for too_high in ("s3://flows/runs", "s3://flows"):   # not silently empty
            with pytest.raises(QueryError, match="is not an output folder"):
                answer(too_high, sql=total, cache_dir=str(tmp_path / "c3"))

        # Keys a bucket's writer may add: a path out of the cache (it wrote a file there), a
        # folder's marker (every query failed), files in a hidden folder (counted).
        body = (small_outputs / "aggregates" / "part-a-0-0").read_bytes()
        for key in ("aggregates/../../escaped", "aggregates/dt=2026-01-01/",
                    "aggregates/_temporary/0/part-e", "aggregates/.staging/part-f"):
            s3.put_object(Bucket="flows", Key="runs/r1/" + key, Body=body)
        assert answer("s3://flows/runs/r1", sql=total, cache_dir=str(cache)).rows == [(1, 41)]
        assert not (tmp_path / "escaped").exists()
        assert sorted(p.name for p in (cache / "aggregates").iterdir()) == ["part-b-0-0"]

        # A cache loses the files S3 does not hold: a folder that is not one is refused.
        with pytest.raises(QueryError, match="holds files, and is no cache of flowdredge "
                                             "query"):
            answer("s3://flows/runs/r1", sql=total, cache_dir=str(small_outputs))
        assert (small_outputs / "aggregates" / "part-a-0-0").exists()
        s3.put_object(Bucket="flows", Key="runs/r2/aggregates/part-a-0-0", Body=body)
        with pytest.raises(QueryError, match="the cache of s3://flows/runs/r1, not of "
                                             "s3://flows/runs/r2"):
            answer("s3://flows/runs/r2", sql=total, cache_dir=str(cache))
        assert answer("s3://flows/runs/r2", sql=total, cache_dir=str(tmp_path / "c4")).rows \
            == [(1, 300)]
        # A cache inside another (the default cache of s3://flows/runs holds that of
        # s3://flows/runs/r2) is no file of it.
        nest = tmp_path / "nest"
        assert answer("s3://flows/runs/r2", sql=total, cache_dir=str(nest / "r2")).rows == \
            [(1, 300)]
        s3.put_object(Bucket="flows", Key="runs/aggregates/part-a-0-0", Body=body)
        assert answer("s3://flows/runs", sql=total, cache_dir=str(nest)).rows == [(1, 300)]
        assert (nest / "r2" / "aggregates" / "part-a-0-0").exists()
        # A default cache made before caches were marked is taken as it is.
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        old = tmp_path / "home" / ".cache" / "flowdredge" / "s3" / "flows" / "runs" / "r2"
        (old / "aggregates").mkdir(parents=True)
        (old / "aggregates" / "part-gone").write_text("{}\n")
        assert answer("s3://flows/runs/r2", sql=total).rows == [(1, 300)]
        assert sorted(os.listdir(old / "aggregates")) == ["part-a-0-0"]


# ---------------------------------------------------------------- on a real replay

@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    inputs = tmp_path_factory.mktemp("query-inputs")
    generated = generate(SCENARIO, str(inputs))
    flows = str(inputs / "flows")
    output = str(tmp_path_factory.mktemp("query-outputs"))
    started = time.time()
    run_replay([flows], [generated.metadata_file], output,
               Config().replace(job={"parallelism": 1, "checkpoint_interval_seconds": 2}))
    events = reference.metadata_events([generated.metadata_file])
    return {"output": output, "flows": flows, "written": (started, time.time()),
            "aggregates": reference.aggregates([flows], [generated.metadata_file]),
            "events": events,
            "lines": [_attributed(f, events) for f in reference.flow_lines([flows])]}


def _attributed(line, events):
    start = int(line["start"])
    return {**line, "start": start, "dstport": int(line["dstport"]), "bytes": int(line["bytes"]),
            "src": reference.owner_at(events, line["srcaddr"], start * 1000),
            "dst": reference.owner_at(events, line["dstaddr"], start * 1000)}


def _keyed(result, key_columns):
    rows = [dict(zip(result.columns, row)) for row in result.rows]
    keyed = {tuple(r[c] for c in key_columns): r for r in rows}
    assert len(keyed) == len(rows), "duplicate keys in the answer"
    return keyed


def _sum_by(aggregates, key, where=lambda k: True):
    """{key(k): [flows, packets, bytes, rejected flows]} over reference aggregate rows."""
    out = defaultdict(lambda: [0, 0, 0, 0])
    for k, (flows, packets, nbytes) in aggregates.items():
        if where(k):
            sums = out[key(k)]
            sums[0] += flows
            sums[1] += packets
            sums[2] += nbytes
            sums[3] += flows if k[7] == "REJECT" else 0
    return dict(out)


@pytest.mark.minicluster
def test_outputs_are_in_the_folders_athena_projects(replayed):
    """Every committed file lies in <output>/dt=YYYY-MM-DD/hour=HH/ of its UTC writing hour."""
    first, last = (int(t) // 3600 * 3600 for t in replayed["written"])
    seen = set()
    for name in OUTPUTS:
        for path in committed_files(replayed["output"], name):
            relative = os.path.relpath(path, os.path.join(replayed["output"], name))
            match = re.fullmatch(r"dt=(\d{4}-\d\d-\d\d)/hour=(\d\d)/[^/]+", relative)
            assert match, relative
            hour = datetime.strptime(" ".join(match.groups()), "%Y-%m-%d %H")
            assert first <= hour.replace(tzinfo=timezone.utc).timestamp() <= last, relative
            seen.add(name)
    assert {"aggregates", "enriched", "counts", "dependencies"} <= seen


# reference aggregate keys: (window_start, src_app, src_region, dst_app, dst_region, dst_port,
# protocol, action)

@pytest.mark.minicluster
def test_top_talkers(replayed):
    expected = _sum_by(replayed["aggregates"], lambda k: (k[1], k[3]))
    got = _keyed(answer(replayed["output"], "top-talkers", {"limit": 0}), ("src_app", "dst_app"))
    assert {k: [r["flows"], r["packets"], r["bytes"], r["rejected_flows"]]
            for k, r in got.items()} == expected
    for (src, dst), r in got.items():
        assert r["reject_pct"] == round(100 * expected[src, dst][3] / expected[src, dst][0], 2)
    top = answer(replayed["output"], "top-talkers", {"limit": 3})
    by_bytes = sorted(expected.items(), key=lambda kv: (-kv[1][2], kv[0]))[:3]
    assert [(r[0], r[1]) for r in top.rows] == [k for k, _v in by_bytes]


@pytest.mark.minicluster
def test_dependencies_of_an_app(replayed):
    got = _keyed(answer(replayed["output"], "dependencies", {"app": "api"}),
                 ("direction", "peer_app", "dst_port", "protocol"))
    callees = _sum_by(replayed["aggregates"], lambda k: ("depends_on", k[3], k[5], k[6]),
                      lambda k: k[1] == "api")
    callers = _sum_by(replayed["aggregates"], lambda k: ("depended_on_by", k[1], k[5], k[6]),
                      lambda k: k[3] == "api")
    expected = {**callees, **callers}
    assert {k: [r["flows"], r["bytes"], r["rejected_flows"]] for k, r in got.items()} == \
        {k: [v[0], v[2], v[3]] for k, v in expected.items()}
    assert {k[1] for k in got if k[0] == "depends_on"} >= set(APPS["api"][1])
    assert {k[1] for k in got if k[0] == "depended_on_by"} >= {"edge-gateway"}


@pytest.mark.minicluster
def test_rejects_to_an_app_by_port_and_source(replayed):
    app = "api"
    got = _keyed(answer(replayed["output"], "rejects", {"app": app, "limit": 0}),
                 ("dst_port", "protocol", "src_app", "src_region"))
    expected = _sum_by(replayed["aggregates"], lambda k: (k[5], k[6], k[1], k[2]),
                       lambda k: k[7] == "REJECT" and k[3] == app)
    assert expected, "the scenario has REJECTs to the app"
    assert {k: [r["flows"], r["packets"], r["bytes"]] for k, r in got.items()} == \
        {k: v[:3] for k, v in expected.items()}

    by_address = _keyed(answer(replayed["output"], "rejects",
                               {"app": app, "source": "address", "limit": 0}),
                        ("dst_port", "src_app", "src_addr"))
    flows = Counter()
    for f in replayed["lines"]:
        if f["action"] == "REJECT" and f["dst"]["app"] == app:
            flows[f["dstport"], f["src"]["app"], f["srcaddr"]] += 1
    assert {k: r["flows"] for k, r in by_address.items()} == dict(flows)


def _utc(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@pytest.mark.minicluster
def test_who_owned_an_ip_at_a_time_and_what_it_talked_to(replayed):
    """An IP that changed owners during the run, asked about at a time when its owner was not
    its last one: the answer is the owner then, not now."""
    events, lines = replayed["events"], replayed["lines"]
    last_app = {ip: (max(evs)[3] or {}).get("app") for ip, evs in events.items()}
    ip, at = next((ip, f["start"]) for f in sorted(lines, key=lambda f: f["start"])
                  for ip, side in ((f["srcaddr"], "src"), (f["dstaddr"], "dst"))
                  if len({e[3]["app"] for e in events.get(ip, ()) if e[3]}) > 1
                  and f[side]["app"] not in UNOWNED_APPS and f[side]["app"] != last_app[ip])
    within = 20
    expected = defaultdict(lambda: {"flows": 0, "bytes": 0, "peers": set(), "starts": []})
    for f in lines:
        if abs(f["start"] - at) > within:
            continue
        for direction, mine, peer, peer_addr in (("out", "src", "dst", f["dstaddr"]),
                                                 ("in", "dst", "src", f["srcaddr"])):
            if (f["srcaddr"] if mine == "src" else f["dstaddr"]) != ip:
                continue
            owner = tuple(f[mine].get(k, "-") for k in ("app", "asg", "account", "region",
                                                          "zone"))
            row = expected[owner + (direction, f[peer]["app"], f["dstport"])]
            row["flows"] += 1
            row["bytes"] += f["bytes"]
            row["peers"].add(peer_addr)
            row["starts"].append(f["start"])

    got = answer(replayed["output"], "who-owned", {"ip": ip, "at": _utc(at),
                                                   "within": str(within)})
    got = _keyed(got, ("owner_app", "owner_asg", "owner_account", "owner_region", "owner_zone",
                       "direction", "peer_app", "dst_port"))
    assert {k: (r["flows"], r["bytes"], r["peer_addrs"], r["first_seen"], r["last_seen"])
            for k, r in got.items()} == \
        {k: (v["flows"], v["bytes"], len(v["peers"]), _utc(min(v["starts"])),
             _utc(max(v["starts"]))) for k, v in expected.items()}
    owner_at_t = reference.owner_at(events, ip, at * 1000)["app"]
    assert owner_at_t in {k[0] for k in got} and owner_at_t != last_app[ip]


@pytest.mark.minicluster
def test_internet_egress_and_exposure(replayed):
    egress = _keyed(answer(replayed["output"], "egress", {}), ("app", "region"))
    expected = _sum_by(replayed["aggregates"], lambda k: (k[1], k[2]),
                       lambda k: k[3] == "internet")
    assert {k: [r["flows"], r["packets"], r["bytes"], r["rejected_flows"]]
            for k, r in egress.items()} == expected
    assert set(egress) == {("edge-gateway", "us-east-1")}   # the only internet-facing app

    exposure = _keyed(answer(replayed["output"], "exposure", {}),
                      ("app", "region", "dst_port", "protocol"))
    expected = _sum_by(replayed["aggregates"], lambda k: (k[3], k[4], k[5], k[6]),
                       lambda k: k[1] == "internet")
    assert {k: [r["flows"], r["bytes"], r["rejected_flows"]] for k, r in exposure.items()} == \
        {k: [v[0], v[2], v[3]] for k, v in expected.items()}


@pytest.mark.minicluster
def test_traffic_by_region_pair_and_zone_pair(replayed):
    regions = _keyed(answer(replayed["output"], "region-pairs", {}), ("src_region", "dst_region"))
    expected = _sum_by(replayed["aggregates"], lambda k: (k[2], k[4]))
    assert {k: [r["flows"], r["packets"], r["bytes"]] for k, r in regions.items()} == \
        {k: v[:3] for k, v in expected.items()}
    assert regions["us-east-1", "eu-west-1"]["cross_region"] is True
    assert regions["us-east-1", "us-east-1"]["cross_region"] is False
    cross = answer(replayed["output"], "region-pairs", {"cross_only": True})
    assert {(r[0], r[1]) for r in cross.rows} == {
        k for k in expected if k[0] != k[1] and "-" not in k}

    zones = _keyed(answer(replayed["output"], "zone-pairs", {}), ("src_zone", "dst_zone"))
    expected = defaultdict(lambda: [0, 0])
    for f in replayed["lines"]:
        sums = expected[f["src"].get("zone", "-"), f["dst"].get("zone", "-")]
        sums[0] += 1
        sums[1] += f["bytes"]
    assert {k: [r["flows"], r["bytes"]] for k, r in zones.items()} == dict(expected)


@pytest.mark.minicluster
@pytest.mark.parametrize("every", ["2m", "1h", "1d"])
def test_rollup_over_larger_windows(replayed, every):
    seconds = parse_duration(every)
    got = _keyed(answer(replayed["output"], "rollup", {"every": every}),
                 ("bucket_start", "src_app", "dst_app"))
    expected = _sum_by(replayed["aggregates"], lambda k: (k[0] - k[0] % seconds, k[1], k[3]))
    assert {k: [r["flows"], r["packets"], r["bytes"]] for k, r in got.items()} == \
        {k: v[:3] for k, v in expected.items()}
    for (bucket, _src, _dst), r in got.items():
        assert r["bucket"] == _utc(bucket)


@pytest.mark.minicluster
def test_rollup_totals_with_filters(replayed):
    got = answer(replayed["output"], "rollup", {"every": "3m", "by": "", "dst_app": "auth",
                                                "action": "ACCEPT"})
    expected = _sum_by(replayed["aggregates"], lambda k: k[0] - k[0] % 180,
                       lambda k: k[3] == "auth" and k[7] == "ACCEPT")
    assert {r[0]: list(r[2:]) for r in got.rows} == {k: v[:3] for k, v in expected.items()}


@pytest.mark.minicluster
def test_drill_down_from_an_aggregate_row_and_a_rollup_bucket(replayed):
    key, (flows, _packets, nbytes) = max(replayed["aggregates"].items(),
                                         key=lambda kv: (kv[1][0], kv[0][0]))
    window_start, src_app, src_region, dst_app, dst_region, dst_port, protocol, action = key
    got = answer(replayed["output"], "drill-down", {
        "since": str(window_start), "until": str(window_start + 60), "src_app": src_app,
        "src_region": src_region, "dst_app": dst_app, "dst_region": dst_region,
        "dst_port": str(dst_port), "protocol": str(protocol), "action": action})
    rows = [dict(zip(got.columns, r)) for r in got.rows]
    assert len(rows) == flows and sum(r["bytes"] for r in rows) == nbytes
    expected = Counter((f["start"], f["srcaddr"], f["dstaddr"], f["dstport"], f["bytes"])
                       for f in replayed["lines"]
                       if f["start"] - f["start"] % 60 == window_start
                       and f["src"]["app"] == src_app and f["dst"]["app"] == dst_app
                       and f["dstport"] == dst_port and f["action"] == action)
    assert Counter((r["start"], r["srcaddr"], r["dstaddr"], r["dstport"], r["bytes"])
                   for r in rows) == expected

    bucket = answer(replayed["output"], "rollup", {"every": "2m", "src_app": "api",
                                                   "by": "dst_app", "limit": 1})
    bucket_start, _iso, dst, bucket_flows, _p, bucket_bytes = bucket.rows[0]
    flows_in_bucket = answer(replayed["output"], "drill-down", {
        "since": str(bucket_start), "until": str(bucket_start + 120), "src_app": "api",
        "dst_app": dst, "limit": 0})
    assert len(flows_in_bucket.rows) == bucket_flows
    assert sum(r[flows_in_bucket.columns.index("bytes")] for r in flows_in_bucket.rows) == \
        bucket_bytes


@pytest.mark.minicluster
def test_time_range_and_ad_hoc_sql(replayed):
    start = SCENARIO.start
    got = answer(replayed["output"], "top-talkers",
                 {"since": str(start + 60), "until": _utc(start + 180), "limit": 0})
    expected = _sum_by(replayed["aggregates"], lambda k: (k[1], k[3]),
                       lambda k: start + 60 <= k[0] < start + 180)
    assert {(r[0], r[1]): r[2] for r in got.rows} == {k: v[0] for k, v in expected.items()}

    with Outputs(replayed["output"]) as outputs:
        late, enriched, counted = outputs.sql(
            "SELECT (SELECT count(*) FROM late), (SELECT count(*) FROM enriched), "
            "(SELECT sum(flows_aggregated) FROM counts)").rows[0]
    assert late == 0 and enriched == counted == len(replayed["lines"])


@pytest.mark.minicluster
def test_command_line_formats(replayed, capsys):
    assert cli.main(["query", replayed["output"], "egress", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [dict(zip(("app", "region", "flows", "packets", "bytes", "rejected_flows"),
                             ("edge-gateway", "us-east-1", *v)))
                    for v in _sum_by(replayed["aggregates"], lambda k: 0,
                                     lambda k: k[3] == "internet").values()]

    assert cli.main(["query", replayed["output"], "sql",
                     "SELECT src_app, count(*) AS n FROM enriched GROUP BY 1 ORDER BY 1",
                     "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "src_app,n"
    counted = Counter(f["src"]["app"] for f in replayed["lines"])
    assert lines[1:] == [f"{app},{n}" for app, n in sorted(counted.items())]

    assert cli.main(["query", replayed["output"], "top-talkers", "--limit", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["src_app", "dst_app", "flows", "packets", "bytes",
                                "rejected_flows", "reject_pct"]
    assert table[-1] == "(2 rows)"
