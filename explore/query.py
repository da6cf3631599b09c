"""SQL and named questions over an output folder, with DuckDB (embedded, no server). Pure Python.

One view per output (`aggregates`, `enriched`, `late`, `dead_letter`, `counts`, `data_quality`)
reads the committed JSON Lines part files of a local output folder, or of an s3:// prefix copied
once into a local cache.
Their columns are derived from schemas/, and so are the Athena / AWS Glue table definitions
(`athena_ddl`), so neither can drift from what the job writes.
"""
import atexit
import csv
import io
import ipaddress
import json
import math
import os
import re
import shutil
import tempfile
import textwrap
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import duckdb

from flowdredge.connectors import s3 as s3_url
from flowdredge.explore.summary import printable

from flowdredge.job.addresses import embeds_ipv4
from flowdredge.job.config import JobSection
from flowdredge.connectors.s3 import is_s3
from flowdredge.job.outputs import OUTPUTS, committed_files, is_committed, read_file_records
from flowdredge.job.parse import EARLIEST_START, LATEST_START
from flowdredge.schemas import security
from flowdredge.schemas.fields import ADDR, INT, LONG, STRING, Field
from flowdredge.schemas.flowlog import FLOW_LOG_FIELDS, MAX_LONG, value_range
from flowdredge.schemas.metadata import METADATA_EVENT
from flowdredge.schemas.outputs import (AGGREGATE, AGGREGATE_DIMENSIONS, COUNTERS, COUNTS_STAGE,
                                        DATA_QUALITY, DEAD_LETTER, ENRICHED_OWNER_KEYS,
                                        LATE_EXTRA_KEYS, TCP_FLAGS_NAMES)
from flowdredge.schemas.settings import integer, quoted

FORMATS = ("table", "csv", "json")
DEFAULT_WINDOW_SECONDS = JobSection().window_seconds   # when no config sets it


class QueryError(ValueError):
    """Bad SQL, a bad parameter or an unreadable output folder; the message says what to do."""


# ---------------------------------------------------------------- columns, from schemas/

def _schema_columns(schema_or_fields) -> tuple:
    """A view's columns: a schema's fields (schemas/), or fields."""
    return tuple(getattr(schema_or_fields, "fields", schema_or_fields))


def _owner_column(key):
    """src_app, dst_zone, ...: typed like the owner field in the metadata changelog."""
    side, owner_field = key.split("_", 1)
    meta = METADATA_EVENT.fields[METADATA_EVENT.index(owner_field)]
    return Field(key, meta.kind, f"{owner_field} of the {side} end's owner at flow start")


def _aggregate_column(name):
    return _schema_columns(AGGREGATE)[AGGREGATE.index(name)]


ENRICHED_COLUMNS = (tuple(Field(f.key, f.kind, f"flow log field {f.aws} (v{f.version})")
                          for f in FLOW_LOG_FIELDS)
                    + _schema_columns((TCP_FLAGS_NAMES,))
                    + tuple(_owner_column(k) for k in ENRICHED_OWNER_KEYS))

def _union_columns(schemas):
    columns = {}
    for schema in schemas:
        for column in _schema_columns(schema):
            columns.setdefault(column.name, column)
    return tuple(columns.values())


VIEW_COLUMNS = {
    "aggregates": _schema_columns(AGGREGATE),
    "enriched": ENRICHED_COLUMNS,
    "late": ENRICHED_COLUMNS + tuple(_aggregate_column(k) for k in LATE_EXTRA_KEYS),
    "dead_letter": _schema_columns(DEAD_LETTER),
    "counts": _schema_columns((COUNTS_STAGE,))
              + tuple(Field(c, LONG, "0 when the record does not carry it") for c in COUNTERS),
    "data_quality": _schema_columns(DATA_QUALITY),
    security.DEPENDENCIES: _schema_columns(security.DEPENDENCY),
    security.REJECTED_OUTPUT: _schema_columns(security.REJECTED),
    security.EXPOSURE_OUTPUT: _schema_columns(security.EXPOSURE),
    security.EGRESS_OUTPUT: _schema_columns(security.INTERNET_EGRESS),
    security.SCANS: _schema_columns(security.SCAN),
    security.RISK_OUTPUT: _schema_columns(security.RISK),
    # One folder for every event type: the union of their fields (absent ones are null).
    security.EVENTS: _union_columns(security.EVENT_SCHEMAS),
}

_DUCKDB_TYPES = {LONG: "BIGINT", INT: "INTEGER", STRING: "VARCHAR", ADDR: "VARCHAR"}

# Aggregate dimensions as the enriched view names them (for drill-down).
_ENRICHED_NAME = {"dst_port": "dstport"}
DIMENSIONS = tuple(f.name for f in AGGREGATE_DIMENSIONS if f.name != "window_start")


def describe_views() -> str:
    """Every view and its columns, for help and error messages."""
    lines = ["available views and columns:"]
    for view, columns in VIEW_COLUMNS.items():
        if view == "late":
            extra = columns[len(ENRICHED_COLUMNS):]
            listed = "the enriched columns, then " + ", ".join(
                f"{c.name} {_DUCKDB_TYPES[c.kind]}" for c in extra)
        else:
            listed = ", ".join(f"{c.name} {_DUCKDB_TYPES[c.kind]}" for c in columns)
        lines += textwrap.wrap(f"{view}: {listed}", width=100, initial_indent="  ",
                               subsequent_indent="      ")
    lines.append('  (utc(epoch_seconds) gives an ISO-8601 UTC string; end is a keyword: write "end")')
    return "\n".join(lines)


# ---------------------------------------------------------------- reading an output folder

def local_folder(output: str, views=OUTPUTS, cache_dir: str = None) -> str:
    """A local folder holding `views`: the folder itself, or a cache mirroring an s3:// prefix."""
    if is_s3(output):
        return mirror_s3(output, views, cache_dir)
    if os.path.exists(output) and not os.path.isdir(output):
        raise QueryError(f"{output}: a file, not an output folder")
    if not os.path.isdir(output):
        raise QueryError(f"{output}: no such output folder")
    if not any(os.path.isdir(os.path.join(output, name)) for name in OUTPUTS):
        raise QueryError(f"{output} is not an output folder: it has none of "
                         f"{', '.join(n + '/' for n in OUTPUTS)}")
    return output


def mirror_s3(url: str, views, cache_dir: str = None) -> str:
    """Copies the committed part files of `views` under s3://bucket/prefix into a local cache
    (again only when new or changed; files gone from S3 are removed) and returns the cache.
    Credentials, region and endpoint come from the standard AWS chain (environment, profile,
    role), so DuckDB needs no extension or network access of its own."""
    import boto3
    import botocore.exceptions

    try:
        bucket, prefix = s3_url.split(url, key_required=False)
    except ValueError as err:
        raise QueryError(str(err)) from None
    prefix = prefix.strip("/")
    cache = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "flowdredge", "s3",
                                      bucket, *filter(None, prefix.split("/")))
    _check_cache(cache, f"s3://{bucket}/{prefix}", given=bool(cache_dir))
    s3 = boto3.client("s3")
    try:
        top = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/" if prefix else "",
                                 Delimiter="/")
        folders = {p["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                   for p in top.get("CommonPrefixes", ())}
        if not (top.get("Contents") or top.get("CommonPrefixes")):
            raise QueryError(f"{url}: no objects there; expected an output folder holding "
                             f"{', '.join(n + '/' for n in OUTPUTS)}")
        if not folders & set(OUTPUTS):
            raise QueryError(f"{url} is not an output folder: it has none of "
                             f"{', '.join(n + '/' for n in OUTPUTS)}")
        _mark_cache(cache, f"s3://{bucket}/{prefix}", given=bool(cache_dir))
        for view in views:
            base = f"{prefix}/{view}/" if prefix else f"{view}/"
            folder = os.path.join(cache, view)
            wanted = set()
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
                for obj in page.get("Contents", ()):
                    parts = obj["Key"][len(base):].split("/")
                    # Not a folder's marker (a key ending in /), not in a hidden folder, and
                    # never a path out of the cache (a key's .. segments).
                    if not all(parts) or not all(map(is_committed, parts)):
                        continue
                    target = os.path.join(folder, *parts)
                    wanted.add(target)
                    # The copy has the object's size and time: a rewritten object is copied
                    # again even at the same size.
                    modified = obj["LastModified"].timestamp()
                    if (os.path.isfile(target) and os.path.getsize(target) == obj["Size"]
                            and os.path.getmtime(target) == modified):
                        continue
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    # Hidden while incomplete, so an interrupted copy is never read.
                    partial = os.path.join(os.path.dirname(target),
                                           "." + os.path.basename(target) + ".partial")
                    s3.download_file(bucket, obj["Key"], partial)
                    os.utime(partial, (modified, modified))
                    os.replace(partial, target)
            for path in committed_files(cache, view):
                if path not in wanted:
                    os.remove(path)
            if view in folders:
                os.makedirs(folder, exist_ok=True)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        raise QueryError(f"cannot read {url}: {err}") from None
    return cache


# In a folder `flowdredge query` copies S3 into: what it holds that S3 no longer does is
# removed, so a folder without it (a local output given as --cache) is refused.
CACHE_MARK = ".flowdredge-s3-cache"


def _check_cache(cache: str, url: str, given: bool) -> None:
    """Refuses a folder given as --cache that holds files of no cache (a default one made
    before caches were marked is taken as it is), or another prefix's cache."""
    where = _cache_name(cache, given)
    try:
        with open(os.path.join(cache, CACHE_MARK)) as file:
            mirrored = file.read().strip()
    except FileNotFoundError:
        mirrored = None
    except OSError as err:
        raise QueryError(f"{where}: {err.strerror}") from None
    if mirrored is None:
        if given and any(_files_outside_caches(cache)):
            raise QueryError(f"{where}: holds files, and is no cache of flowdredge query (no "
                             f"{CACHE_MARK}); files not in S3 are removed from a cache: give "
                             f"a new or empty folder")
    elif mirrored != url:
        raise QueryError(f"{where}: the cache of {mirrored}, not of {url}: give another "
                         f"--cache")


def _files_outside_caches(folder: str):
    """The files under `folder` but in the caches inside it (the default cache of a prefix
    holds those of the prefixes under it)."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not os.path.exists(os.path.join(root, d, CACHE_MARK))]
        yield from files


def _cache_name(cache: str, given: bool) -> str:
    return f"--cache {cache}" if given else f"the cache {cache}"


def _mark_cache(cache: str, url: str, given: bool) -> None:
    try:
        os.makedirs(cache, exist_ok=True)
        with open(os.path.join(cache, CACHE_MARK), "w") as file:
            file.write(url + "\n")
    except OSError as err:
        raise QueryError(f"{_cache_name(cache, given)}: {err.strerror}") from None


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _glob_literal(path: str) -> str:
    """`path` for DuckDB's read_json, which reads it as a glob: each [, * and ? a class of
    itself. As they were, a folder o[1] beside an o1 was read as o1, o? as o? and oX, and the
    query failed on a file outside the folder (Permission Error)."""
    return re.sub(r"[\[*?]", r"[\g<0>]", path)


def _view_sql(view: str, files) -> str:
    columns = VIEW_COLUMNS[view]
    if files:
        spec = ", ".join(f"{_sql_string(c.name)}: {_sql_string(_DUCKDB_TYPES[c.kind])}"
                         for c in columns)
        source = (f"read_json([{', '.join(_sql_string(_glob_literal(f)) for f in files)}], "
                  f"format = 'newline_delimited', hive_partitioning = false, "
                  f"columns = {{{spec}}})")
    else:
        source = "(SELECT 1 WHERE false)"
    if files and view == "counts":
        # A counts record holds only its non-zero counters.
        select = ", ".join(f'"{c.name}"' if c.kind == STRING
                           else f'COALESCE("{c.name}", 0) AS "{c.name}"' for c in columns)
    elif files:
        select = ", ".join(f'"{c.name}"' for c in columns)
    else:
        select = ", ".join(f'CAST(NULL AS {_DUCKDB_TYPES[c.kind]}) AS "{c.name}"' for c in columns)
    return f'CREATE VIEW "{view}" AS SELECT {select} FROM {source}'


def connect(folder: str, views=OUTPUTS) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per output, over the local folder's committed files
    for `views` (the others empty: a misspelt view name is then told the view it meant)."""
    con = duckdb.connect(":memory:")
    con.execute("CREATE MACRO utc(s) AS "
                "strftime(make_timestamp(CAST(s AS BIGINT) * 1000000), '%Y-%m-%dT%H:%M:%SZ')")
    inside = os.path.realpath(folder) + os.sep
    linked = set()   # DuckDB opens a file where its links lead: those outside, file by file
    for view in OUTPUTS:
        # An empty file holds no record (DuckDB fails on an empty .gz).
        files = [os.path.abspath(p) for p in committed_files(folder, view)
                 if os.path.getsize(p)] if view in views else []
        con.execute(_view_sql(view, files))
        linked.update(t for t in map(os.path.realpath, files) if not t.startswith(inside))
        # A file's glob (_glob_literal), a path of its own to DuckDB's check: allowed as such.
        linked.update(g for g in map(_glob_literal, files) if g not in files)
    # DuckDB allows queries its folder of temporary files, by default .tmp/ in the working
    # folder: one of its own, emptied when the process ends.
    spill = tempfile.mkdtemp(prefix="flowdredge-query-")
    atexit.register(shutil.rmtree, spill, True)
    con.execute(f"SET temp_directory = {_sql_string(spill)}")
    # Queries read the folder's outputs and nothing else: no other file, no URL, no extension
    # fetched; and no SQL can lift it. (Spilling to DuckDB's temporary files still works.)
    con.execute("SET allowed_directories = ["
                + ", ".join(_sql_string(d + os.sep) for d in sorted(
                    {os.path.abspath(folder), inside[:-1]})) + "]")
    if linked:
        con.execute("SET allowed_paths = ["
                    + ", ".join(_sql_string(p) for p in sorted(linked)) + "]")
    for setting in ("enable_external_access", "autoinstall_known_extensions",
                    "autoload_known_extensions"):
        con.execute(f"SET {setting} = false")
    con.execute("SET lock_configuration = true")
    return con


# Outputs a run may turn off (outputs.enriched, outputs.security); the others are always on,
# and late/, dead_letter/ and data_quality/ appear only once there is something to write.
SWITCHED_OUTPUTS = ("enriched",) + tuple(security.OUTPUTS)


def missing_views(folder: str, views) -> list:
    """Of `views`, the outputs a run may turn off that the folder has no folder for: turned
    off (or nothing written yet), they read as empty."""
    return [v for v in views
            if v in SWITCHED_OUTPUTS and not os.path.isdir(os.path.join(folder, v))]


# Table functions reading a table named in a string, or running SQL given as one.
_TABLES_IN_TEXT = {"query", "query_table", "duckdb_table_sample", "json_execute_serialized_sql"}


def referenced_views(sql: str) -> tuple:
    """Outputs whose view names the SQL uses (for S3, only those are copied): as a name, not
    in a string or a comment, as DuckDB's own scanner tells them (`SELECT 'late'` read late/,
    and said it was missing: a review); anywhere where a function reads tables named in text."""
    text = sql.encode()   # the scanner's positions count bytes
    tokens = duckdb.tokenize(sql)
    names = {text[start:end].decode().strip().strip('"').lower()
             for (start, kind), (end, _) in zip(tokens, tokens[1:] + [(len(text), None)])
             if kind in (duckdb.token_type.identifier, duckdb.token_type.keyword)}
    if names & _TABLES_IN_TEXT:
        return tuple(v for v in OUTPUTS if re.search(rf"\b{v}\b", sql, re.IGNORECASE))
    return tuple(v for v in OUTPUTS if v in names)


@dataclass
class Result:
    columns: list
    rows: list
    missing: tuple = ()   # views read whose output folder is missing (read as empty)
    notes: tuple = ()     # what else the asker should know of an answer
    cut: bool = False     # --limit left rows out


# Statements that only read: the tool answers questions and changes nothing (no COPY ... TO,
# ATTACH, INSTALL or CREATE writing files or fetching extensions).
READING_STATEMENTS = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)


def run_sql(con, sql: str, params: dict = None) -> Result:
    try:
        statements = con.extract_statements(sql)
        refused = [s for s in statements if s.type not in READING_STATEMENTS]
        if refused:
            raise QueryError(
                f"only queries are run (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN), "
                f"not {refused[0].type.name}: {refused[0].query.strip()[:80]}\n"
                f"To keep a result, use --format csv or json and redirect it to a file.")
        # DuckDB runs them all and answers the last only (a review).
        if len(statements) > 1:
            raise QueryError(f"one statement at a time: {len(statements)} given, each ended "
                             f"by a ';' (run them one by one)")
        cursor = con.execute(sql, params) if params else con.execute(sql)
        if cursor is None:
            raise QueryError("no SQL statement given")
        if cursor.description is None:
            return Result([], [])
        return Result([d[0] for d in cursor.description], cursor.fetchall())
    except (duckdb.ParserException, duckdb.CatalogException, duckdb.BinderException) as err:
        raise QueryError(f"{str(err).strip()}\n\n{describe_views()}") from None
    except duckdb.PermissionException as err:
        raise QueryError(f"{str(err).strip()}\n(a query reads the output folder's files "
                         f"only)") from None
    except duckdb.Error as err:   # the data (a file DuckDB names), not the SQL's names
        raise QueryError(_data_error(str(err).strip())) from None


# DuckDB's words for a line of a file it cannot read (and its own prefix, which says nothing).
_FILE_LINE = re.compile(r'(?:Invalid Input Error: )?(?:Malformed JSON|JSON transform error) in '
                        r'file "(?P<file>.+?)", (?:at byte \d+ )?in line (?P<line>\d+): '
                        r'(?P<what>.*)')


def _data_error(message: str) -> str:
    """One line for a file DuckDB cannot read: the file, the line and what is wrong, found again
    here (DuckDB 2.0 counts one line too many in malformed JSON, and shows none of it), else as
    DuckDB says it; never its advice on the reader's options ('Try setting auto_detect ...'),
    which a user of query and report has no say over (a review)."""
    lines = [line for line in message.splitlines()
             if line.strip() and not line.lstrip().startswith("Try ")]
    found = _FILE_LINE.fullmatch(lines[0].strip()) if lines else None
    if found:
        try:
            for _ in read_file_records(found["file"]):
                pass
        except ValueError as err:
            return str(err)
        return f'{found["file"]}: line {found["line"]}: {found["what"].rstrip(". ")}'
    return "\n".join(lines)


# ---------------------------------------------------------------- parameters

def parse_time(text: str) -> int:
    """Epoch seconds, or ISO-8601 (UTC unless it says otherwise): 2026-01-01T00:10:00Z; within
    the years the job reads flows of (2010-2099), so that epoch milliseconds (a changelog's
    ts) are told, not read as a time thousands of years ahead that matches nothing."""
    text = str(text).strip()
    if re.fullmatch(r"-?[0-9]+", text):
        # Past 20 digits no time of flows, and past 4,300 more than int() reads; leading zeros
        # count for neither (as int() read them before, and parse_duration does).
        digits = text.lstrip("-").lstrip("0") or "0"
        seconds = (-int(digits) if text.startswith("-") else int(digits)) \
            if len(digits) <= 20 else None
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise QueryError(f"{text!r} is not a time: give epoch seconds or ISO-8601 "
                             f"such as 2026-01-01T00:10:00Z") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = int(moment.timestamp())
    # The end too: --until is exclusive.
    if seconds is None or not EARLIEST_START <= seconds <= LATEST_START:
        raise QueryError(f"{text!r} is not a time of flows (2010-2099): give epoch seconds "
                         f"(not milliseconds) or ISO-8601 such as 2026-01-01T00:10:00Z")
    return seconds


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds from 90, 90s, 15m, 1h or 1d; at most the span of times the job reads flows of,
    which a longer one only overflows (DuckDB failed on a --within of 10**40 s: a review)."""
    match = re.fullmatch(r"0*([0-9]+)([smhd]?)", str(text).strip())
    if not match or match.group(1) == "0":
        raise QueryError(f"{text!r} is not a duration: give a positive number of seconds or "
                         f"a number with a unit s, m, h or d (15m, 1h, 1d)")
    digits = match.group(1)   # past 20 too long anyway, and past 4,300 more than int() reads
    seconds = int(digits) * _UNIT_SECONDS[match.group(2) or "s"] if len(digits) <= 20 else None
    if seconds is None or seconds > LATEST_START - EARLIEST_START:
        raise QueryError(f"{text!r} is longer than the years the job reads flows of "
                         f"(2010-2099)")
    return seconds


def parse_ip(text: str) -> str:
    """The address as the job writes it. An IPv6 address spelling an IPv4 one (::ffff:10.0.0.1,
    as a dual-stack socket shows 10.0.0.1) is that IPv4 address, the only form a flow holds
    it in (job.parse refuses the other); a zone id (fe80::1%eth0) names a host's interface,
    which no flow holds. Before, both were looked for as given and found nothing, without a
    word."""
    try:
        address = ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise QueryError(f"{text!r} is not an IPv4 or IPv6 address") from None
    if address.version == 4:
        return str(address)
    if address.scope_id is not None:
        raise QueryError(f"{text!r} is an IPv6 address with a zone id, which flow logs never "
                         f"hold: give the address without it")
    if embeds_ipv4(address):
        return str(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return str(address)


def whole_number(lowest: int, highest: int):
    """A parser of the whole numbers from lowest to highest."""
    def parse(text) -> int:
        # Text or an exact int: int() made 443.9 443 and True 1 (a review); a number of
        # thousands of digits is none of these ranges' anyway.
        try:
            value = (integer(text) if isinstance(text, str) and len(text.strip()) < 40
                     else text if type(text) is int else None)
        except ValueError:
            value = None
        if value is None or not lowest <= value <= highest:
            raise QueryError(f"{text!r}: expected a whole number from {lowest} to {highest}")
        return value
    return parse


def parse_flag(text) -> bool:
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered not in ("true", "false", "yes", "no", "1", "0"):
        raise QueryError(f"{text!r}: expected true or false")
    return lowered in ("true", "yes", "1")


def parse_dimensions(text) -> tuple:
    """Comma-separated aggregate dimensions, e.g. src_app,dst_app (or their sequence); empty
    for totals only."""
    names = tuple(n.strip() for n in (text.split(",") if isinstance(text, str) else text)
                  if n.strip())
    unknown = [n for n in names if n not in DIMENSIONS]
    if unknown:
        raise QueryError(f"unknown dimension(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(DIMENSIONS)}")
    return names


@dataclass(frozen=True)
class Param:
    name: str          # keyword in `values`; the CLI flag is --name-with-dashes
    parse: object      # str -> value; raises QueryError
    help: str
    default: object = None
    required: bool = False
    choices: tuple = None


TIME_RANGE = (
    Param("since", parse_time, "from this time (epoch seconds or ISO-8601), inclusive"),
    Param("until", parse_time, "to this time, exclusive"),
)
ACTIONS = ("ACCEPT", "REJECT")
_FLOW_LOG_FIELD = {f.key: f for f in FLOW_LOG_FIELDS}


def _dimension_filter(f) -> Param:
    """A number in AWS's range of its flow log field: --dst-port 99999 matched nothing, without
    a word (a review)."""
    if f.kind not in (INT, LONG):
        return Param(f.name, str, f"only rows with this {f.name}",
                     choices=ACTIONS if f.name == "action" else None)
    lowest, highest = value_range(_FLOW_LOG_FIELD[_ENRICHED_NAME.get(f.name, f.name)])
    return Param(f.name, whole_number(lowest, highest),
                 f"only rows with this {f.name} ({lowest}-{highest})")


DIMENSION_FILTERS = tuple(_dimension_filter(f) for f in AGGREGATE_DIMENSIONS
                          if f.name != "window_start")
WINDOW_SECONDS = Param("window_seconds", parse_duration,
                       "the job's job.window_seconds (the size of the stored windows)",
                       default=DEFAULT_WINDOW_SECONDS)


def _limit(default):
    # One less than the largest BIGINT: a query asks for one row more (_Sql.limit_sql).
    return Param("limit", whole_number(0, MAX_LONG - 1), "at most this many rows (0: all)",
                 default=default)


class _Sql:
    """WHERE clauses and their named parameters, built together so they always match."""

    def __init__(self):
        self.clauses, self.params = [], {}

    def where(self, clause: str, **params) -> None:
        self.clauses.append(clause)
        self.params.update(params)

    def time_range(self, column: str, values: dict) -> None:
        if values.get("since") is not None:
            self.where(f"{column} >= $since", since=values["since"])
        if values.get("until") is not None:
            self.where(f"{column} < $until", until=values["until"])

    def dimensions(self, values: dict, rename=None) -> None:
        for name in DIMENSIONS:
            if values.get(name) is not None:
                column = (rename or {}).get(name, name)
                self.where(f"{column} = ${name}", **{name: values[name]})

    @property
    def where_sql(self) -> str:
        return ("WHERE " + " AND ".join(self.clauses)) if self.clauses else ""

    @staticmethod
    def limit_sql(values: dict) -> str:
        """One row more than --limit: whether the limit left rows out (Outputs.ask)."""
        return f"LIMIT {int(values['limit']) + 1}" if values.get("limit") else ""


# ---------------------------------------------------------------- named questions

_REJECTED = "COALESCE(sum(flows) FILTER (WHERE action = 'REJECT'), 0)"
_REJECT_PCT = f"round(100.0 * {_REJECTED} / sum(flows), 2)"


def _top_talkers(v):
    q = _Sql()
    q.time_range("window_start", v)
    if v.get("action"):
        q.where("action = $action", action=v["action"])
    return f"""
        SELECT src_app, dst_app, sum(flows) AS flows, sum(packets) AS packets,
               sum(bytes) AS bytes, {_REJECTED} AS rejected_flows, {_REJECT_PCT} AS reject_pct
        FROM aggregates {q.where_sql}
        GROUP BY src_app, dst_app ORDER BY bytes DESC, src_app, dst_app {q.limit_sql(v)}""", \
        q.params


def _dependencies(v):
    q = _Sql()
    q.time_range("window_start", v)
    time_sql = "".join(f" AND {clause}" for clause in q.clauses)
    return f"""
        SELECT direction, peer_app, dst_port, protocol, sum(flows) AS flows, sum(bytes) AS bytes,
               {_REJECTED} AS rejected_flows
        FROM (SELECT 'depends_on' AS direction, dst_app AS peer_app, * FROM aggregates
              WHERE src_app = $app{time_sql}
              UNION ALL BY NAME
              SELECT 'depended_on_by' AS direction, src_app AS peer_app, * FROM aggregates
              WHERE dst_app = $app{time_sql})
        GROUP BY ALL ORDER BY direction DESC, bytes DESC, peer_app, dst_port, protocol""", \
        {**q.params, "app": v["app"]}


def _rejects(v):
    by_address = v["source"] == "address"
    q = _Sql()
    q.time_range("start" if by_address else "window_start", v)
    q.where("action = 'REJECT'")
    if v.get("app"):
        q.where("dst_app = $app", app=v["app"])
    if by_address:
        return f"""
            SELECT dst_app, dstport AS dst_port, protocol, src_app,
                   COALESCE(pkt_srcaddr, srcaddr) AS src_addr, count(*) AS flows,
                   sum(packets) AS packets, sum(bytes) AS bytes
            FROM enriched {q.where_sql}
            GROUP BY ALL ORDER BY flows DESC, dst_app, dst_port, protocol, src_addr, src_app
                     {q.limit_sql(v)}""", \
            q.params
    return f"""
        SELECT dst_app, dst_port, protocol, src_app, src_region, sum(flows) AS flows,
               sum(packets) AS packets, sum(bytes) AS bytes
        FROM aggregates {q.where_sql}
        GROUP BY ALL ORDER BY flows DESC, dst_app, dst_port, protocol, src_app, src_region
                 {q.limit_sql(v)}""", q.params


_FLOW_COLUMNS = ("start", "srcaddr", "dstaddr", "pkt_srcaddr", "pkt_dstaddr", "dstport",
                 "protocol", "action", "packets", "bytes") + ENRICHED_OWNER_KEYS
OWNER_SUMMARY = ("app", "asg", "resource_id", "account", "region", "zone")


def _who_owned(v):
    at, within = v["at"], v["within"]
    # As given, and in the canonical form AWS writes (lower case, IPv6 compressed).
    ips = sorted({v["ip"].strip(), parse_ip(v["ip"])})
    flow_columns = ", ".join(f'"{c}"' for c in _FLOW_COLUMNS)

    def end(direction, mine, peer):
        owner = ", ".join(f"{mine}_{f} AS owner_{f}" for f in OWNER_SUMMARY)
        return (f"SELECT start, '{direction}' AS direction, {owner}, {peer}_app AS peer_app, "
                f"COALESCE(pkt_{peer}addr, {peer}addr) AS peer_addr, dstport, bytes FROM flows "
                f"WHERE list_contains($ips, COALESCE(pkt_{mine}addr, {mine}addr))")

    owner_columns = ", ".join(f"owner_{f}" for f in OWNER_SUMMARY)
    return f"""
        WITH flows AS (
            SELECT {flow_columns} FROM enriched WHERE start BETWEEN $first AND $last
            UNION ALL
            SELECT {flow_columns} FROM late WHERE start BETWEEN $first AND $last),
        ends AS ({end('out', 'src', 'dst')} UNION ALL {end('in', 'dst', 'src')})
        SELECT {owner_columns}, direction, peer_app, dstport AS dst_port, count(*) AS flows,
               count(DISTINCT peer_addr) AS peer_addrs, sum(bytes) AS bytes,
               utc(min(start)) AS first_seen, utc(max(start)) AS last_seen
        FROM ends GROUP BY ALL
        ORDER BY min(start), {owner_columns}, direction DESC, bytes DESC, peer_app, dst_port""", \
        {"ips": ips, "first": at - within, "last": at + within}


def _egress(v):
    q = _Sql()
    q.time_range("window_start", v)
    q.where("dst_app = 'internet'")
    return f"""
        SELECT src_app AS app, src_region AS region, sum(flows) AS flows,
               sum(packets) AS packets, sum(bytes) AS bytes, {_REJECTED} AS rejected_flows
        FROM aggregates {q.where_sql}
        GROUP BY ALL ORDER BY bytes DESC, app, region {q.limit_sql(v)}""", q.params


def _exposure(v):
    q = _Sql()
    q.time_range("window_start", v)
    q.where("src_app = 'internet'")
    return f"""
        SELECT dst_app AS app, dst_region AS region, dst_port, protocol, sum(flows) AS flows,
               sum(bytes) AS bytes, {_REJECTED} AS rejected_flows
        FROM aggregates {q.where_sql}
        GROUP BY ALL ORDER BY flows DESC, app, region, dst_port, protocol {q.limit_sql(v)}""", q.params


def _region_pairs(v):
    q = _Sql()
    q.time_range("window_start", v)
    if v.get("cross_only"):
        q.where("src_region <> dst_region AND src_region <> '-' AND dst_region <> '-'")
    return f"""
        SELECT src_region, dst_region,
               src_region <> dst_region AND src_region <> '-' AND dst_region <> '-'
                   AS cross_region,
               sum(flows) AS flows, sum(packets) AS packets, sum(bytes) AS bytes
        FROM aggregates {q.where_sql}
        GROUP BY ALL ORDER BY bytes DESC, src_region, dst_region {q.limit_sql(v)}""", q.params


def _zone_pairs(v):
    q = _Sql()
    q.time_range("start", v)
    if v.get("cross_only"):
        q.where("src_zone <> dst_zone AND src_zone <> '-' AND dst_zone <> '-'")
    return f"""
        SELECT src_zone, dst_zone,
               src_zone <> dst_zone AND src_zone <> '-' AND dst_zone <> '-' AS cross_zone,
               count(*) AS flows, sum(packets) AS packets, sum(bytes) AS bytes
        FROM enriched {q.where_sql}
        GROUP BY ALL ORDER BY bytes DESC, src_zone, dst_zone {q.limit_sql(v)}""", q.params


def _rollup(v):
    every, window = v["every"], v["window_seconds"]
    if every % window:
        raise QueryError(f"--every {every}s is not a whole number of stored {window}s windows: "
                         f"a roll-up can only merge whole windows")
    q = _Sql()
    q.time_range("window_start", v)
    q.dimensions(v)
    by = "".join(f", {d}" for d in v["by"])
    return f"""
        SELECT window_start - window_start % {every} AS bucket_start,
               utc(window_start - window_start % {every}) AS bucket{by},
               sum(flows) AS flows, sum(packets) AS packets, sum(bytes) AS bytes
        FROM aggregates {q.where_sql}
        GROUP BY ALL ORDER BY bucket_start, bytes DESC{by} {q.limit_sql(v)}""", q.params


def check_stored_windows(con, values: dict, given: bool) -> None:
    """Refuses a roll-up that would merge the stored windows wrongly, or a drill-down that
    would list flows by windows the aggregates do not have (it listed them: a review), with
    no word: windows that are not --window-seconds long (a window starting inside one), or,
    with the default window, stored windows further apart than --every (a drill-down: the
    window) allows (a run of 300 s windows rolled up every 2m had its 00:05 window counted at
    00:04)."""
    window = values["window_seconds"]
    every = values.get("every", window)
    starts = [row[0] for row in con.execute(
        "SELECT DISTINCT window_start FROM aggregates WHERE window_start IS NOT NULL "
        "ORDER BY 1").fetchall()]
    # A window outside --since/--until is not rolled up; the gaps are the run's, over all.
    since, until = values.get("since"), values.get("until")
    odd = next((start for start in starts if start % window
                and (since is None or start >= since) and (until is None or start < until)),
               None)
    if odd is not None:
        raise QueryError(f"a stored window starts at {odd} ({_utc(odd)}), inside a "
                         f"{window}s window: pass --window-seconds as the run's "
                         f"job.window_seconds")
    apart = math.gcd(*(start - starts[0] for start in starts))
    if not given and apart > window and every % apart:
        if "every" not in values:
            raise QueryError(f"the stored windows start {apart}s apart, so the flows of "
                             f"{window}s windows would not be those of an aggregate row: pass "
                             f"--window-seconds as the run's job.window_seconds ({apart} if "
                             f"that is it)")
        raise QueryError(f"the stored windows start {apart}s apart, so --every {every}s would "
                         f"split them: pass --window-seconds as the run's job.window_seconds "
                         f"({apart} if that is it), or an --every of a multiple of it")


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


DRILL_DOWN_COLUMNS = ("start", "end", "interface_id", "srcaddr", "srcport", "dstaddr", "dstport",
                      "protocol", "packets", "bytes", "action", "src_app", "src_asg",
                      "src_resource_id", "src_region", "dst_app", "dst_asg", "dst_resource_id",
                      "dst_region")


def _drill_down(v):
    window = v["window_seconds"]
    q = _Sql()
    # The flow's window, so the rows are exactly those summed by the aggregates in the range.
    q.time_range(f"(start - start % {window})", v)
    q.dimensions(v, rename=_ENRICHED_NAME)
    columns = ", ".join(f'"{c}"' for c in DRILL_DOWN_COLUMNS)
    # Every column, so that equal keys come in one order at every run.
    first = ("start", "srcaddr", "dstaddr", "srcport", "dstport")
    order = ", ".join(f'"{c}"' for c in first + tuple(c for c in DRILL_DOWN_COLUMNS
                                                      if c not in first))
    return f"""
        SELECT start - start % {window} AS window_start, {columns}
        FROM enriched {q.where_sql}
        ORDER BY {order} {q.limit_sql(v)}""", q.params


@dataclass(frozen=True)
class Question:
    name: str
    help: str
    build: object       # values -> (sql, params)
    params: tuple
    views: object       # the outputs it reads: a tuple, or values -> tuple


_APP_REQUIRED = Param("app", str, "the app", required=True)
_CROSS_ONLY = Param("cross_only", parse_flag, "only pairs of two different known places",
                    default=False)

QUESTIONS = {q.name: q for q in (
    Question("top-talkers", "app pairs by bytes, with REJECT share", _top_talkers,
             TIME_RANGE + (Param("action", str, "only ACCEPT or only REJECT",
                                 choices=ACTIONS), _limit(20)), ("aggregates",)),
    Question("dependencies", "what an app depends on and what depends on it", _dependencies,
             (_APP_REQUIRED,) + TIME_RANGE, ("aggregates",)),
    Question("rejects", "REJECTed flows to an app (or all apps) by port and source", _rejects,
             (Param("app", str, "destination app (default: all)"),
              Param("source", str, "group sources by app (aggregates) or by address (enriched)",
                    default="app", choices=("app", "address"))) + TIME_RANGE + (_limit(20),),
             lambda v: ("enriched",) if v["source"] == "address" else ("aggregates",)),
    Question("who-owned", "who owned an IP around a time, and what it talked to", _who_owned,
             (Param("ip", str, "the address (IPv4 or IPv6)", required=True),
              Param("at", parse_time, "the time (epoch seconds or ISO-8601)", required=True),
              Param("within", parse_duration, "look at flows starting this close to --at",
                    default=300)), ("enriched", "late")),
    Question("egress", "traffic to the internet by app", _egress, TIME_RANGE + (_limit(0),),
             ("aggregates",)),
    Question("exposure", "traffic from the internet by app and port", _exposure,
             TIME_RANGE + (_limit(0),), ("aggregates",)),
    Question("region-pairs", "traffic by source and destination region", _region_pairs,
             TIME_RANGE + (_CROSS_ONLY, _limit(0)), ("aggregates",)),
    Question("zone-pairs", "traffic by source and destination zone (enriched flows)", _zone_pairs,
             TIME_RANGE + (_CROSS_ONLY, _limit(0)), ("enriched",)),
    Question("rollup", "aggregates merged into larger windows (an hour, a day, ...)", _rollup,
             (Param("every", parse_duration, "the roll-up window: 15m, 1h, 1d, ...; buckets "
                    "start at its multiples from 1970-01-01T00:00Z, as the job's windows do: "
                    "days at 00:00 UTC, 7d weeks on Thursdays (see docs/query.md)",
                    required=True),
              Param("by", parse_dimensions, "comma-separated dimensions to keep "
                    f"({', '.join(DIMENSIONS)}); empty for totals", default=("src_app", "dst_app")),
              WINDOW_SECONDS) + TIME_RANGE + DIMENSION_FILTERS + (_limit(0),), ("aggregates",)),
    Question("drill-down", "the enriched flows behind aggregate rows (same filters)", _drill_down,
             (WINDOW_SECONDS,) + TIME_RANGE + DIMENSION_FILTERS + (_limit(1000),),
             ("enriched", "aggregates")),
)}


def question_sql(name: str, values: dict):
    """(sql, params) of a named question; `values` holds its parameters, parsed or as given."""
    return QUESTIONS[name].build(_filled(name, values))


def question_views(name: str, values: dict) -> tuple:
    """The outputs a named question reads with `values`."""
    views = QUESTIONS[name].views
    return views(_filled(name, values)) if callable(views) else views


def _filled(name: str, values: dict) -> dict:
    """The question's parameters parsed, checked, and their defaults filled."""
    question = QUESTIONS.get(name)
    if question is None:
        raise QueryError(f"unknown question {name!r}; known: {', '.join(QUESTIONS)}")
    filled = {}
    for p in question.params:
        value = values.get(p.name)
        if value is None:
            if p.required:
                raise QueryError(f"{name}: --{p.name.replace('_', '-')} is required")
            value = p.default
        elif p.parse is not str:
            try:
                value = p.parse(value)
            except QueryError as err:
                raise QueryError(f"{name}: --{p.name.replace('_', '-')}: {err}") from None
        if p.choices and value is not None and value not in p.choices:
            raise QueryError(f"{name}: --{p.name.replace('_', '-')} must be one of "
                             f"{', '.join(p.choices)}")
        filled[p.name] = value
    if None not in (filled.get("since"), filled.get("until")) and \
            filled["since"] >= filled["until"]:
        raise QueryError(f"{name}: --since must be before --until")
    return filled


class Outputs:
    """An output folder (local, or s3:// copied to a cache) open for queries."""

    def __init__(self, output: str, views=OUTPUTS, cache_dir: str = None):
        self.folder = local_folder(output, views, cache_dir)
        self.con = connect(self.folder, views)
        self.missing = missing_views(self.folder, views)

    def sql(self, sql: str, params: dict = None) -> Result:
        return run_sql(self.con, sql, params)

    def ask(self, name: str, **values) -> Result:
        sql, params = question_sql(name, values)
        filled = _filled(name, values)
        if name in ("rollup", "drill-down"):
            check_stored_windows(self.con, filled, given=values.get("window_seconds") is not None)
        result = self.sql(sql, params)
        limit = filled.get("limit")
        if limit and len(result.rows) > limit:
            result.rows, result.cut = result.rows[:limit], True
        return result

    def close(self) -> None:
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def answer(output: str, question: str = None, values: dict = None, sql: str = None,
           cache_dir: str = None) -> Result:
    """Runs `sql`, or the named `question` with `values`, over an output folder; only the
    outputs it reads are opened (and, for S3, copied)."""
    if question:
        views = question_views(question, values or {})
        with Outputs(output, views, cache_dir) as outputs:
            result = outputs.ask(question, **(values or {}))
            result.missing = tuple(outputs.missing)
            # rollup's and drill-down's --src-app and --dst-app too: 'API' for api gave no
            # rows without a word there, where --app's questions said why.
            apps = dict.fromkeys(app for key in ("app", "src_app", "dst_app")
                                 if (app := (values or {}).get(key)))
            if apps and not result.rows and "aggregates" in views and os.path.isdir(
                    os.path.join(outputs.folder, "aggregates")):
                result.notes = tuple(
                    f"no aggregate names the app {app!r} (names are as the owners' tags give "
                    f"them, case and all)" for app in apps if not outputs.sql(
                        "SELECT 1 FROM aggregates WHERE src_app = $app OR dst_app = $app "
                        "LIMIT 1", {"app": app}).rows)
            return result
    with Outputs(output, referenced_views(sql), cache_dir) as outputs:
        result = outputs.sql(sql)
        result.missing = tuple(outputs.missing)
        return result


# ---------------------------------------------------------------- output formats

def _json_text(value) -> str:
    """A value as JSON, at any depth of a list or struct: a DECIMAL as its exact number, an
    integer at scale 0 (a float lost a large sum's last digits: a review); a NaN or an
    infinity as a string, JSON having no such number (json.dumps wrote NaN)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float) and not math.isfinite(value):
        value = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_json_text, value)) + "]"
    if isinstance(value, dict):   # a MAP's keys too, as JSON's strings
        return "{" + ", ".join(
            f"{json.dumps(_map_key(key))}: {_json_text(item)}"
            for key, item in value.items()) + "}"
    return json.dumps(value, default=_json_value)


def _map_key(key) -> str:
    """A MAP's key as JSON's object key, a string: a number or a boolean as JSON writes it,
    any other value as its text (a date's was quoted twice: a review)."""
    if isinstance(key, str):
        return key
    if isinstance(key, (bool, int, float, Decimal)):
        return _json_text(key)
    return str(_json_value(key))


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# A spreadsheet opening the CSV reads a field starting with these as a formula (OWASP's CSV
# injection list, LF since added), also after spaces, which an import may trim; a field starting
# with ' gets one more, so that one leading ' can always be taken off again.
_FORMULA_START = re.compile(r"[\t\r\n']| *[=+\-@]")
# No formula, kept as they are: a number written as text (a VARCHAR column of them) and the
# '-' of an unowned end's owner fields (docs/outputs.md).
_PLAIN = re.compile(r"-|[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _csv_field(value) -> str:
    """A CSV field a spreadsheet does not run: a text that starts like a formula (an app name is
    whatever an instance's tags say: =HYPERLINK(...), @SUM(A1), -2+3+cmd|...) with ' before
    it, which spreadsheets take as "this is text". A number's field is its number, a negative
    one too."""
    text = _cell(value)
    if isinstance(value, (int, float, Decimal)) or not _FORMULA_START.match(text) \
            or _PLAIN.fullmatch(text):
        return text
    return "'" + text


def _csv_line(fields) -> str:
    """One CSV row, without its line end. Written ended by CR LF, so that a field holding a CR
    is quoted as one holding a LF is: ended by LF alone, Python 3.11's writer left a CR bare,
    a spreadsheet split the row there, and what followed the CR (=...) began a row of its own."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(fields)
    return out.getvalue()[:-2]


def _table_cell(value) -> str:
    """NULL for SQL's null, told from an empty text and the text NULL (shown \\NULL: a review
    found null and '' both shown as nothing); a text's backslash doubled, told from those of
    the escapes a control character is shown as (a newline, \\n). Other values (a list, a
    struct) are shown as Python writes them, their texts quoted and escaped."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "\\NULL" if value == "NULL" else printable(value.replace("\\", "\\\\"))
    return printable(_cell(value))


def _width(text: str) -> int:
    """Columns a terminal gives the text: two for a wide (East Asian) character."""
    return len(text) + sum(unicodedata.east_asian_width(c) in "WF" for c in text
                           if not c.isascii())


def format_result(result: Result, fmt: str) -> str:
    if fmt == "json":
        repeated = sorted({c for c in result.columns if result.columns.count(c) > 1})
        if repeated:   # an object holds a name once: all but the last column of it were lost
            raise QueryError(f"columns {', '.join(map(repr, repeated))} given more than once: "
                             f"name each with AS for --format json")
        return "\n".join(_json_text(dict(zip(result.columns, row))) for row in result.rows)
    if fmt == "csv":
        # A column name as any field (an asker's AS "=x").
        return "\n".join(_csv_line(map(_csv_field, row))
                         for row in [result.columns] + list(result.rows))
    if fmt != "table":
        raise QueryError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    # A control character (an app name's tab or newline) would break the row: shown escaped.
    cells = [[_table_cell(v) for v in row] for row in result.rows]
    headers = [printable(c) for c in result.columns]
    widths = [max([_width(c)] + [_width(r[i]) for r in cells]) for i, c in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float, Decimal)) and not isinstance(row[i], bool)
                   for row in result.rows if row[i] is not None) and bool(result.rows)
               for i in range(len(result.columns))]

    def line(values):
        return "  ".join(" " * (w - _width(v)) + v if num else v + " " * (w - _width(v))
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])]
    lines += [line(r) for r in cells]
    lines.append(f"({len(result.rows)} row{'' if len(result.rows) == 1 else 's'})")
    return "\n".join(lines)


# ---------------------------------------------------------------- Athena / AWS Glue

_ATHENA_TYPES = {LONG: "bigint", INT: "int", STRING: "string", ADDR: "string"}


def _hive_string(text: str) -> str:
    """A string of Athena's DDL, which Hive parses: a quote and a backslash escaped by a
    backslash. SQL's doubled quote is two strings to Hive, read as one without the quote
    between them ('end''s' was "ends")."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def athena_ddl(location: str, database: str = "flowdredge", first_date: str = "2026-01-01",
               table_prefix: str = "") -> str:
    """CREATE statements for Athena (tables land in the AWS Glue Data Catalog), one table per
    output under `location`, partitioned by `dt` (yyyy-MM-dd) and `hour` (HH) with partition
    projection, so new partitions need no crawler or MSCK REPAIR."""
    if not is_s3(location):
        raise QueryError(f"{location}: Athena reads S3; expected s3://bucket/prefix")
    # Written into the statements' quoted strings as it is: a quote ended the string (the
    # statement failed in Athena), a line end split it, a lone surrogate (a name that is not
    # UTF-8) cannot be printed. Any other character is an S3 key's and a string's, a no-break
    # space or one newer than Python's tables too (str.isprintable refused those).
    odd = sorted({c for c in location
                  if c in "'\\" or unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")})
    if odd:
        raise QueryError(f"{quoted(location)}: a location holding {', '.join(map(repr, odd))} "
                         f"cannot be written in these statements' quoted strings: copy the "
                         f"outputs to a prefix without it")
    # Athena fills ${name} in storage.location.template with a partition's value and documents
    # no escape: s3://b/x${dt} had the tables read s3://b/x2026-01-01/..., where nothing is;
    # what it makes of a ${name} that is no partition column, it does not say.
    if "${" in location:
        raise QueryError(f"{quoted(location)}: a location holding '${{' cannot be written in "
                         f"storage.location.template, where Athena reads ${{name}} as a "
                         f"partition's value: copy the outputs to a prefix without it")
    if not re.fullmatch(r"[a-z0-9_]+", database + table_prefix):
        raise QueryError("database and table prefix: lower-case letters, digits and _ only")
    try:
        datetime.strptime(first_date, "%Y-%m-%d")
    except ValueError:
        raise QueryError(f"{first_date!r}: expected the first date as YYYY-MM-DD") from None
    location = location.rstrip("/")
    statements = [f"CREATE DATABASE IF NOT EXISTS `{database}`;"]
    for view, columns in VIEW_COLUMNS.items():
        column_sql = ",\n".join(
            f"  `{c.name}` {_ATHENA_TYPES[c.kind]}"
            + (f" COMMENT {_hive_string(c.doc)}" if c.doc else "") for c in columns)
        where = f"{location}/{view}/"
        table = f"`{database}`.`{table_prefix}{view}`"
        statements.append(f"""CREATE EXTERNAL TABLE IF NOT EXISTS {table} (
{column_sql}
)
PARTITIONED BY (`dt` string COMMENT 'UTC date the file was written, yyyy-MM-dd',
                `hour` string COMMENT 'UTC hour the file was written, HH')
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION '{where}'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '{first_date},NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = '{where}dt=${{dt}}/hour=${{hour}}/'
);""")
    return "\n\n".join(statements)
