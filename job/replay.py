"""Staging of flow-log files for a bounded replay. Pure Python, streaming: memory is bounded by
the limits (flows.max_line_bytes, flows.max_decompressed_bytes), not by the input.

Accepted inputs (files or folders of them; a file reached twice is staged once):
- S3 delivery files: text, usually gzip, first line a header naming the fields in any order;
- a CloudWatch Logs subscription record: one gzip JSON envelope per file;
- CloudWatch Logs subscription records as Firehose writes them to S3: gzip envelopes one after
  another (gzip members), one record each;
- CloudWatch Logs subscription records, one base64 record per line (text or gzip).

Flow files are staged in delivery order (delivery_order: the `_YYYYMMDDTHHMMZ_` stamp AWS puts
in file names, or the time in a Firehose object's name, then path) into one file of records,
one per line: JSON chunks of an S3 file (`chunk_lines` lines at most,
flows.max_decompressed_bytes at most, fewer when their JSON would pass what the job's reader
takes whole: connectors.staged), CloudWatch records with where they came from, and for
a file that cannot be read a record naming it and why (the job dead-letters it; flows.strict
refuses the replay instead). A file's CloudWatch records (one interface's lines each, often
tens) share staged lines, `{"records": [...]}` up to PACK_BYTES, so that the job parses them
together as it does a file it reads itself. One staged line is one Python call in the job
(job.parse.staged_records reads them all).

Changelog files are staged, in the order given, into one file too: a reader must see the
changelog in order, which may not be the order of the files' paths (the job's own reading of a
folder, connectors/jvm ChangelogFiles). Each staged
line holds up to `chunk_lines` changelog lines of one file (job.ownership.STAGED), fewer when
their JSON would pass what the job's reader takes whole (connectors.staged), one Python call in
the job. A changelog file that cannot be read refuses the replay: its order and
completeness decide every owner after it.
"""
import base64
import calendar
import codecs
import contextlib
import functools
import gzip
import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
import zlib
from dataclasses import dataclass, field

from flowdredge.connectors import s3
from flowdredge.connectors.staged import PACK_BYTES, staged_changelog_text, staged_flows_text
from flowdredge.job.config import FlowsSection, MetadataSection
from flowdredge.job.ownership import STAGED
from flowdredge.job.parse import (EXCERPT_BYTES, EXCERPT_CHARS, PACK_PREFIX, FlowFormat,
                                  FormatError, excerpt, format_names)
from flowdredge.schemas.flowlog import BY_AWS_NAME, REQUIRED

GZIP_MAGIC = b"\x1f\x8b"
COMPRESSED_TWICE = ("gzip data once decompressed (it starts 1f 8b): compressed twice, as "
                    "Firehose's own GZIP compression does to a CloudWatch Logs subscription's "
                    "records, gzip already")
# S3 error codes that make an object a dead file ("unreadable") rather than fail the job.
UNREADABLE_S3_ERRORS = ("NoSuchKey", "404", "AccessDenied", "403", "InvalidObjectState")


class InputError(ValueError):
    """An input that cannot be staged; names the file and what is wrong."""


class _BadFile(Exception):
    """A flow file that cannot be staged: dead-lettered with `reason`, or refused (strict)."""

    def __init__(self, reason: str, detail: str, head=b""):
        super().__init__(detail)
        self.reason, self.detail, self.head = reason, detail, head


@dataclass
class StageStats:
    files: int = 0
    records: int = 0
    lines: int = 0
    duplicates: int = 0                                 # files reached more than once
    dead_files: list = field(default_factory=list)      # (path, reason, detail)
    unknown_fields: dict = field(default_factory=dict)  # field name -> files naming it


_STAMP = re.compile(r"_(\d{8})T(\d{4})Z_")
# Firehose's object names: <stream>-<version>-YYYY-MM-DD-HH-MM-SS-<random>, the time it
# received the object's oldest record (UTC unless the stream sets a time zone).
_FIREHOSE_TIME = re.compile(r"-\d+-(\d{4})-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-")


def delivery_order(path: str):
    """Sort key: AWS's delivery stamp, or else the time in a Firehose object's name (both as
    YYYYMMDDHHMMSS, so that either kind of file falls among the other by time), then path; a
    file with neither comes first. Only an order: a Firehose object's records arrived up to
    its buffer's interval after its name's time, which bounds nothing."""
    name = os.path.basename(path)
    match = _STAMP.search(name)
    if match:
        return (match.group(1) + match.group(2) + "00", path)
    match = _FIREHOSE_TIME.search(name)
    return ("".join(match.groups()) if match else "", path)


def delivered_at(path: str):
    """Epoch seconds of AWS's delivery stamp in the file name, or None."""
    match = _STAMP.search(os.path.basename(path))
    if not match:
        return None
    try:
        return calendar.timegm(time.strptime("".join(match.groups()), "%Y%m%d%H%M"))
    except ValueError:   # 20261399T9999Z: not a time
        return None


# Java's Long.MIN_VALUE: earlier than any event time.
MIN_EPOCH_MS = -2 ** 63


def delivery_stamps_ms(files) -> list:
    """Each file's AWS delivery stamp in epoch ms; a file without one (a Firehose object)
    takes the stamp before it, the first ones the earliest time."""
    stamps, last = [], MIN_EPOCH_MS
    for path in files:
        seconds = delivered_at(path)
        last = last if seconds is None else seconds * 1000
        stamps.append(last)
    return stamps


def flows_end(files, max_ahead_seconds: int, listed: int):
    """Epoch seconds no flow of `files` starts at or after, as the parse step bounds their
    starts (job.parse): the latest file's delivery stamp, or a local file's modification time
    where its name has none, but no later than `listed` (when the files were listed: no file
    was delivered after it), plus `max_ahead_seconds` (flows.max_ahead_seconds) and a second.
    Without `listed`, one file named `_20991231T2355Z_` (a typo, a broken or hostile writer)
    made the end 2100: a changelog event far ahead was read and moved the metadata clock past
    the flows. None if an s3:// object has no stamp (its LastModified is not listed here) or
    a file is gone."""
    times = [_delivery_time(path) for path in files]
    if not times or None in times:
        return None
    return min(max(times), listed) + max_ahead_seconds + 1


def delivered_after(files, listed: int) -> list:
    """The files delivered after `listed`, when they were listed, by their stamp (or local
    modification time): not a time they were delivered at, which flows_end leaves out."""
    return [path for path in files if (_delivery_time(path) or listed) > listed]


def _delivery_time(path):
    """AWS's delivery stamp in a file's name, or else a local file's modification time; None
    for an s3:// object without a stamp (its LastModified is not listed here) or a file gone
    since it was listed (the parse step dead-letters it)."""
    stamp = delivered_at(path)
    if stamp is not None or s3.is_s3(path):
        return stamp
    try:
        return int(os.path.getmtime(path))
    except OSError:
        return None


def expand(paths):
    """The files of `paths`: a file named as it is (one that is not a regular file is read as a
    dead file); a folder's below it, links to folders followed, leaving out names with a
    leading dot and what is not a regular file (a FIFO: reading it waits for a writer)."""
    for path in paths:
        if os.path.isdir(path):
            yield from _folder_files(path)
        elif os.path.exists(path):
            yield path
        else:
            raise InputError(f"{path}: no such file or folder")


def _folder_files(folder):
    visited = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        # A folder reached twice (two links to it, a link to a folder above it) once.
        real = os.path.realpath(root)
        if real in visited:
            dirs.clear()
            continue
        visited.add(real)
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            # A broken link stays: a file that cannot be read, a dead file.
            if not name.startswith(".") and (os.path.isfile(path) or not os.path.exists(path)):
                yield path


def unique_files(paths) -> tuple:
    """(files, duplicates): each file once, by its real path, however many of `paths` (a
    folder and its subfolder, a link) reach it. InputError for a name that is not UTF-8."""
    seen, files, duplicates = set(), [], 0
    for path in expand(paths):
        check_text_path(path, "a flow file")
        real = os.path.realpath(path)
        if real in seen:
            duplicates += 1
        else:
            seen.add(real)
            files.append(path)
    return files, duplicates


def check_text_path(path: str, what: str) -> None:
    """InputError unless `path` is text: a name of bytes that are not UTF-8 (Python holds them
    as lone surrogates) cannot be sent to the JVM, and py4j's retries of the send ended the
    replay with "maximum recursion depth exceeded" after Flink had started."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise InputError(f"{shown}: {what} whose name is not UTF-8, which the job cannot "
                         f"carry: rename it") from None


def _lines(fh, max_line: int, errors: str = "replace", keep: int = EXCERPT_BYTES,
           bom: bool = False):
    """(line number, text, None) per line of a binary file that holds more than white space,
    without its line end, bytes that are not UTF-8 decoded as `errors` says, or (line number,
    None, its first `keep` bytes) for a line longer than `max_line`: such a line is read
    through, never held. Blank lines are passed over, the numbers counting them; a run of them a buffer at a
    time (fh.peek), not a line at a time: a gzip file of 102 KB, a header and 100 MiB of
    newlines, took 78 s. With `bom`, a byte-order mark the file starts with is no part of its
    first line, nor of its length."""
    number = 0
    while True:
        raw = fh.readline(max_line + 2 + (3 if bom and not number else 0))
        if not raw:
            return
        if bom and not number:
            raw = raw.removeprefix(_BOM)
        number += 1
        ended = raw.endswith(b"\n")
        if ended and raw.isspace():
            ahead = fh.peek(1)
            run = _BLANK_LINES.match(ahead)
            if run:
                number += ahead.count(b"\n", 0, run.end())
                fh.read(run.end())
            continue
        body = raw[:-1] if ended else raw
        if body.endswith(b"\r"):
            body = body[:-1]
        if len(body) > max_line:
            # Blank however long, as in a run of them, and by str.isspace() as a short line
            # (text.strip()): bytes.isspace() knows ASCII's alone, and a long line of U+001C
            # or U+00A0 was line_too_long.
            decoder = _UTF8(errors)
            blank = _blank(decoder, body)
            while not ended:
                more = fh.readline(1 << 20)
                if not more:
                    break
                ended = more.endswith(b"\n")
                blank = blank and _blank(decoder, more)
            if not (blank and not decoder.decode(b"", True)):   # no character cut short
                yield number, None, body[:keep]
        else:
            text = body.decode("utf-8", errors)
            if text.strip():
                yield number, text, None


def _blank(decoder, data) -> bool:
    """Whether `data` decodes to white space alone, a MiB at a time: a line too long may be as
    long as a base64 record (tens of MB), and is not copied whole to be looked at."""
    view = memoryview(data)
    return all(not decoder.decode(view[at:at + (1 << 20)]).strip()
               for at in range(0, len(view), 1 << 20))


# Blank lines (ASCII white space) up to the last line end among them.
_BLANK_LINES = re.compile(rb"\s*\n")
_BOM = "\ufeff".encode()
_UTF8 = codecs.getincrementaldecoder("utf-8")


@contextlib.contextmanager
def _open(path):
    """A binary file, gzip or not by its first bytes, opened once: a FIFO (`<(zcat ...)`,
    /dev/stdin) cannot be opened again, nor sought back to the bytes looked at."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
        if fh.seekable():
            fh.seek(0)
            stream = fh
        else:
            stream = io.BufferedReader(_Unread(magic, fh))
        with (gzip.GzipFile(fileobj=stream) if magic == GZIP_MAGIC else stream) as reader:
            yield reader


class _Unread(io.RawIOBase):
    """A stream that cannot seek, with the bytes read from its start given again first."""

    def __init__(self, head: bytes, stream):
        self.head, self.stream = head, stream

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.head:
            return self.stream.readinto(buffer)
        n = min(len(buffer), len(self.head))
        buffer[:n], self.head = self.head[:n], self.head[n:]
        return n


def _looks_like_base64(line: str) -> bool:
    # Base64 holds no white space and no comma: a header cut by tabs or commas (a
    # spreadsheet's) was taken for a record, and every line of its file was a bad_base64 dead
    # letter. A corrupt first record stays a record (one bad_base64, the others read).
    return (len(line) >= 16 and not line.startswith("{") and "," not in line
            and not any(c.isspace() for c in line))


# A str as JSON writes it, quoted and in ASCII (json.dumps's own, in C).
_ascii_json = json.encoder.encode_basestring_ascii


def _dumps(record: dict) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode("ascii")


def _write(out, record: dict) -> None:
    out.write(_dumps(record) + b"\n")


def stage_file(path: str, out, chunk_lines: int, stats: StageStats,
               flows: FlowsSection = FlowsSection()) -> None:
    """Stages one flow file into `out` (binary): the records of file_records, one per line, or
    for CloudWatch records one after another several a line, `{"records": [...]}` (as many as
    fill PACK_BYTES). A file that cannot be read leaves nothing of itself but a record naming
    it and why, or with flows.strict raises InputError."""
    start, pack, size = out.tell(), [], 0
    for record in file_records(path, chunk_lines, stats, flows):
        if "error" in record and record["source"] == path:
            pack, size = [], 0
            out.seek(start)   # the whole file failed (an I/O error midway): only this stays
            out.truncate()
        if "lines" in record:   # a chunk of an S3 file: a line of its own
            _write_pack(out, pack)
            pack, size = [], 0
            _write(out, record)
            continue
        text = _dumps(record)
        if size + len(text) > PACK_BYTES:
            _write_pack(out, pack)
            pack, size = [], 0
        pack.append(text)
        size += len(text)
    _write_pack(out, pack)


def _write_pack(out, pack: list) -> None:
    """Records (JSON, as bytes) as one staged line: a lone one as itself."""
    if pack:
        out.write((pack[0] if len(pack) == 1 else
                   PACK_PREFIX.encode() + b",".join(pack) + b"]}") + b"\n")


def file_records(path: str, chunk_lines: int, stats: StageStats = None,
                 flows: FlowsSection = FlowsSection(), *, local: str = None,
                 modified: int = None):
    """Yields, as dicts, the records of one flow file that staging writes (stage_file writes
    exactly these, CloudWatch records several a line; job.parse reads each): chunks of an S3 file,
    CloudWatch records, or for a file that cannot be read one record naming it and why, and
    nothing else of it (a gzip file is read through before its first chunk, so a truncated or
    corrupt one yields no chunk; only an I/O error midway comes after chunks, which staging
    then discards), or with flows.strict InputError. `path` names the file in the records; it
    is read from `local` (default `path`: an S3 object downloaded elsewhere), modified at
    `modified` (epoch seconds; default the local file's time). `stats` (default: a scratch
    one) counts records, lines, dead files and unknown header fields."""
    stats = StageStats() if stats is None else stats
    counted = (stats.records, stats.lines, len(stats.dead_files))
    try:
        yield from _file_records(path, local or path, modified, chunk_lines, stats, flows)
    except _BadFile as bad:
        # What it gave before is discarded (stage_file), a refused part's dead file too.
        stats.records, stats.lines = counted[:2]
        del stats.dead_files[counted[2]:]
        yield _dead_file(path, bad, stats, flows)


def _dead_file(path, bad: _BadFile, stats: StageStats, flows: FlowsSection) -> dict:
    if flows.strict:
        raise InputError(f"{path}: {bad.detail} (flows.strict)") from None
    stats.records += 1
    stats.dead_files.append((path, bad.reason, bad.detail))
    return {"source": path, "error": bad.reason, "excerpt": excerpt(bad.head),
            "detail": bad.detail}


def _file_records(path, local, modified, chunk_lines, stats, flows):
    try:
        # Opening a FIFO waits for a writer, forever in a replay.
        if not stat.S_ISREG(os.stat(local).st_mode):
            raise _BadFile("unreadable", "not a regular file (a FIFO, socket or device)")
        with open(local, "rb") as fh:
            head = fh.read(2)
        if modified is None:
            modified = int(os.path.getmtime(local))
        if head == GZIP_MAGIC:
            with gzip.open(local, "rb") as gz:
                first = gz.read(64).lstrip()
            _read_through(local)
            if first.startswith(GZIP_MAGIC):
                # Read as lines, its bytes were a bad_base64 dead letter per newline byte, or
                # a bad_header blaming old Mac line ends, none saying why.
                raise _BadFile("bad_gzip", COMPRESSED_TWICE, first)
            if first.startswith(b"{"):   # CloudWatch envelopes, one per gzip member
                yield from _envelope_records(path, local, modified, stats, flows)
                return
        with _open(local) as fh:
            yield from _line_records(path, modified, fh, chunk_lines, stats, flows)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise _BadFile("bad_gzip", f"not a complete gzip file ({err})") from None
    except OSError as err:
        raise _BadFile("unreadable", f"cannot read: {err.strerror or err}") from None


def _envelope_records(path, local, modified, stats, flows):
    """The CloudWatch records of a gzip file of envelopes: one gzip envelope (a subscription
    record saved as it is), or several, one per gzip member, as Firehose writes a CloudWatch
    Logs subscription's records to S3. A lone member's record is named by the file, each of
    several by the file and its member number. A member larger than
    flows.max_decompressed_bytes compressed is a record "too_large" (a lone one: the file is
    a dead file); one decompressing to more is caught when it is parsed. Members that hold
    nothing (Firehose writes none) are one record "empty_members" naming the first and how many:
    no record was in them, but what wrote them may have lost one (each a dead letter, 300,000
    of them took 12 s and said one thing 300,000 times)."""
    empty, first_empty = 0, None
    with open(local, "rb") as fh:
        members = _gzip_members(fh, flows.max_decompressed_bytes)
        current = next(members, None)
        number = 0
        while current is not None:
            following = next(members, None)
            number += 1
            where = path if number == 1 and following is None else f"{path}:{number}"
            member, head = current
            if member == b"":
                empty += 1
                first_empty = first_empty or number
                current = following
                continue
            if member is None and where == path:
                size = os.path.getsize(local)
                raise _BadFile("too_large", f"{size} bytes, more than "
                               f"flows.max_decompressed_bytes once decompressed")
            if member is None:
                record = {"source": where, "error": "too_large", "excerpt": excerpt(head),
                          "detail": "a gzip member of more than flows.max_decompressed_bytes "
                                    f"({flows.max_decompressed_bytes}) compressed"}
            else:
                record = _record(path, where, base64.b64encode(member).decode("ascii"),
                                 modified)
            stats.records += 1
            yield record
            current = following
    if empty:
        stats.records += 1
        yield {"source": f"{path}:{first_empty}", "error": "empty_members", "excerpt": "",
               "detail": f"{empty} gzip member(s) holding nothing, the first member "
                         f"{first_empty}: no record read from them"}


def _gzip_members(fh, cap: int):
    """(compressed bytes, None) per gzip member of a binary file (b"" for one that holds
    nothing), or (None, first bytes) for a member of more than `cap` bytes, read through, never
    held. Decompresses only to find where members end (a gzip bomb costs time, not memory); the
    zero padding gzip allows after the last member is skipped. The file must have been read
    through already (_read_through): a corrupt one fails there, before any record."""
    data, at = b"", 0
    while True:
        at = _ZEROS(data, at).end()
        while at == len(data):
            data = fh.read(1 << 20)
            if not data:
                return
            at = _ZEROS(data).end()
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        parts, size, head, empty = [], 0, data[at:at + EXCERPT_CHARS], True
        # The inflater copies what it is given past the member's end (unused_data): given the
        # rest of a buffer each, 300,000 small members took 7-11 s. A member is given a little
        # at first, twice as much each time after.
        feed = 1 << 12
        while not inflater.eof:
            if at == len(data):
                data, at = fh.read(1 << 20), 0
                if not data:
                    raise EOFError("a gzip member ends early")
            given = memoryview(data)[at:at + feed]
            empty = not inflater.decompress(given, 1 << 20) and empty
            # At the member's end, what follows it is unused_data; CPython's zlib may leave it
            # in unconsumed_tail too (a stale tail, after a call cut at 1 MiB of output).
            rest = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            used = len(given) - len(rest)
            size += used
            if size <= cap:
                parts.append(data[at:at + used])
            else:
                parts = None
            at += used
            feed = min(feed * 2, 1 << 20)
        yield (b"" if empty else b"".join(parts), None) if parts is not None else (None, head)


# The zero bytes gzip allows between and after members.
_ZEROS = re.compile(rb"\0*").match


def _read_through(path) -> None:
    """Decompresses a gzip file to its end, keeping nothing: raises as reading it would (a
    truncated or corrupt file) before any of its records is given out."""
    with gzip.open(path, "rb") as gz:
        while gz.read(1 << 20):
            pass


def _bounds(path, modified) -> dict:
    """What bounds the starts of a file's flows: AWS's delivery stamp in its name, or else its
    modification time (a Firehose object). Not both: a copy's or an archive's modification time
    can be years before the stamp, and every flow of the file was out of range."""
    delivered = delivered_at(path)
    return {"not_after": modified} if delivered is None else {"delivered": delivered}


def _record(path, where, record, modified):
    """A CloudWatch record read from a file, with what bounds its flows' starts."""
    return {"source": where, "record": record, **_bounds(path, modified)}


def _line_records(path, modified, fh, chunk_lines, stats, flows):
    # A base64 record is as long as a whole envelope compressed.
    record_max = 4 * (flows.max_decompressed_bytes // 3 + 1)
    # A byte-order mark the file starts with is no part of its first line (a too-long record's
    # excerpt showed it, `\ufeff`), nor of its length.
    lines = _lines(fh, max(flows.max_line_bytes, record_max), bom=True)
    # Blank lines (or a byte-order mark alone) before the header or the first record are passed
    # over, not an empty file; the lines keep the file's numbers.
    first = next((item for item in lines
                  if item[1] is None or item[1].lstrip("\ufeff").strip()), None)
    if first is None:
        raise _BadFile("empty_file", "empty: no header line")
    _, header, head = first
    # A byte-order mark before the header (a file saved by an editor) is not part of it.
    header = header.lstrip("\ufeff").strip() if header is not None else None
    # A first line too long to read (longer than a record takes and flows.max_line_bytes) is a
    # record too_large when its head looks like one, as a later line is (before, the file was a
    # bad_header, its other records lost): a header's names, spaced, are no 256 bytes without a
    # space.
    shown = header if header is not None else \
        head.decode("utf-8", "replace").lstrip("\ufeff").strip()
    if _looks_like_base64(shown):
        for number, line, head in [(first[0], header, head), *lines]:
            if line is None:
                record = {"source": f"{path}:{number}", "error": "too_large",
                          "excerpt": excerpt(head),
                          "detail": f"a line longer than the {record_max} characters of "
                                    "base64 a record of flows.max_decompressed_bytes takes"}
            else:
                record = _record(path, f"{path}:{number}", line.strip(), modified)
            stats.records += 1
            yield record
        return
    # `refused`: (header's line number, _BadFile, its part's lines) of a refused part. A first
    # header refused is read on: of files joined into one, a later header's part is read. A
    # first line that is no header (lines before the header) is one of its part's lines.
    try:
        fmt, refused = _header_format(header, head, flows), None
    except _BadFile as bad:
        fmt, refused = None, (first[0], bad, int(header is None or not _is_header(header)))
    chunk = None if fmt is None else _format_chunk(path, modified, fmt, chunk_lines, stats,
                                                   flows)
    for number, line, head in lines:
        if line is not None and len(line) > flows.max_line_bytes:   # only a records file's limit
            line, head = None, line.encode("utf-8")[:EXCERPT_BYTES]
        # Most lines: one search, in C (a call more cost 30 ns a line; "addr", which a header
        # lacking srcaddr holds too, 10-100 ns more than "srcaddr").
        if not (line and "srcaddr" in line and _is_header(line)):
            if refused is not None:
                refused = (*refused[:2], refused[2] + 1)
                continue
            full = chunk.add(number, line, head, stats)
            if full is not None:
                yield full
            continue
        # Files joined into one (`cat a.log.gz b.log.gz`): the lines after a header are read
        # by it, as in the file it began (another flow log's may order its fields otherwise);
        # a header refused, as a first one is, leaves its part unread, not read by another.
        if refused is not None:
            yield _refused_part(path, *refused, stats, flows)
            refused = None
        try:
            joined = _header_format(line.lstrip("\ufeff").strip(), None, flows, number)
        except _BadFile as bad:
            refused, joined = (number, bad, 0), None
        if joined != fmt:
            last = chunk.flush(stats) if chunk is not None else None
            if last is not None:
                yield last
            fmt = joined
            chunk = None if joined is None else _format_chunk(path, modified, fmt, chunk_lines,
                                                                stats, flows)
    if refused is not None:
        if refused[0] == first[0]:   # no header after it: the file is refused whole, as ever
            raise refused[1]
        yield _refused_part(path, *refused, stats, flows)
    last = chunk.flush(stats) if chunk is not None else None
    if last is not None:
        yield last


def _refused_part(path, number, bad: _BadFile, lines: int, stats, flows) -> dict:
    """The dead letter of a part of a joined file whose header is refused: as a file's whose
    first line is, its lines counted, none read."""
    return _dead_file(f"{path}:{number}", _BadFile(
        bad.reason, f"{bad.detail}: its {lines} line(s) (blank ones aside), to the next "
                    f"header or the file's end, not read", bad.head), stats, flows)


def _format_chunk(path, modified, fmt, chunk_lines, stats, flows) -> "_Chunk":
    """The chunks of a file's lines of format `fmt` (its header's)."""
    if fmt.unknown:
        if flows.strict:
            raise InputError(f"{path}: header names field(s) this release does not know "
                             f"{list(fmt.unknown)} (flows.strict)")
        for name in fmt.unknown:
            stats.unknown_fields[name] = stats.unknown_fields.get(name, 0) + 1
    base = {"source": path, "format": str(fmt)}
    if fmt.unknown:
        base["ignore"] = list(fmt.unknown)
    base.update(_bounds(path, modified))
    return _Chunk(base, chunk_lines, flows.max_decompressed_bytes, staged_flows_text(
        chunk_lines, flows.max_line_bytes, flows.max_decompressed_bytes))


def _is_header(line) -> bool:
    """Whether a line is a header: it names the fields every format has (a flow line holds
    values), spelt as a first line may spell them (`${srcaddr}` too), or it names fields this
    release knows and nothing else, a header refused for lacking one (no flow line is: its
    srcaddr, dstaddr and start are no field's name)."""
    names = format_names(line.lstrip("\ufeff"))
    return set(REQUIRED).issubset(names) or all(name in BY_AWS_NAME for name in names)


def _header_format(header, head, flows, number=None) -> FlowFormat:
    """The format of a file's first line (`number` None), or of header line `number` after it
    (files joined into one); _BadFile("bad_header") for a header refused."""
    line = "the first line" if number is None else f"line {number}"
    first = head or header.encode("utf-8")
    # Lines ending in a lone \r (old Mac line ends) read as one line, the header and the
    # values after it: its names were all there, the values taken for unknown fields, and the
    # file gave nothing. No header holds a \r within it.
    if b"\r" in first:
        raise _BadFile("bad_header", f"a carriage return (\\r) within {line}: lines "
                       "ending in \\r alone (old Mac line ends) are not read as lines", first)
    if header is None or len(header) > flows.max_line_bytes:
        raise _BadFile("bad_header", "first line is too long for a header", first)
    if len(header.split()) > flows.max_fields_per_line:
        raise _BadFile("bad_header", f"{'' if number is None else f'{line}: '}header names "
                       f"more than flows.max_fields_per_line ({flows.max_fields_per_line}) "
                       f"fields", header.encode("utf-8"))
    try:
        return FlowFormat.parse(header)
    except FormatError as err:
        raise _BadFile("bad_header", (
            "first line is neither a flow-log header nor a base64 CloudWatch record"
            if number is None else f"{line} is a header (a file joined to this one) this "
                                   f"release refuses") + f" ({err})",
            header.encode("utf-8")) from None


class _Chunk:
    """Lines of one file (an S3 flow file, a changelog) on their way to a staged chunk. A chunk
    starts and ends with a line that holds something; the blank lines between are kept (as "")
    so that a line's position gives its line number, those between chunks left out (a run of
    them made chunks of nothing else). `max_text` bounds the lines' characters (a flow chunk's:
    what one record may hold), `max_json` their JSON as staging writes it (ASCII: a character
    of Cyrillic text six, a byte that is not UTF-8 six), which the job's reader bounds
    (connectors.staged)."""

    def __init__(self, base, max_lines, max_text, max_json):
        self.base, self.max_lines = base, max_lines
        self.max_text, self.max_json = max_text, max_json
        self._start()

    def _start(self):
        self.first, self.lines, self.long, self.size, self.text = None, [], [], 0, 0
        # self.size is exact for the first `measured` lines and `long_measured` excerpts
        # (`exact` of it), at most for the rest.
        self.exact = self.measured = self.long_measured = 0

    def add(self, number, line, head, stats):
        """Adds a line (`number` past the last one's: blank lines between); returns the chunk it
        completed (a record), if any. A line's JSON with its comma ("",; [index,"excerpt"], for
        one too long, an index of at most 20 digits) is counted at most until the chunk might
        pass max_json (a character escaped is six characters, or twelve past U+FFFF), which
        costs nothing per line; then the lines counted so, exactly (_measure)."""
        lines = self.lines
        if line is None:
            # A changelog line's head is text kept whole (the parse reads its change's keys),
            # a flow line's bytes an excerpt.
            shown = head if isinstance(head, str) else excerpt(head)
            size, text = 12 * len(shown) + 28, 1
        else:
            text = len(line) + 1
            size = 12 * text - 9
        full, measured = None, False
        if lines:
            blank = number - self.first - len(lines)
            if self.size + 3 * blank + size > self.max_json:
                measured = True
                self._measure()
                size = len(_ascii_json(shown)) + 28 if line is None else \
                    len(_ascii_json(line)) + 1
            if (len(lines) + blank >= self.max_lines or self.size + 3 * blank + size
                    > self.max_json or self.text + blank + text > self.max_text):
                full = self.flush(stats)
                lines, blank, self.first = self.lines, 0, number
            elif blank:
                lines += [""] * blank
        else:
            blank, self.first = 0, number
        if line is None:
            self.long.append([len(lines), shown])
            line = ""
        lines.append(line)
        self.size += 3 * blank + size
        self.text += blank + text
        if measured:
            self.exact, self.measured, self.long_measured = (
                self.size, len(lines), len(self.long))
        return full

    def _measure(self):
        """Counts the lines and excerpts counted at most so far exactly (json's own escape, in
        C): the lines joined by newlines in one call, each newline two characters escaped where
        a line's quotes and comma are three."""
        lines = self.lines[self.measured:]
        self.exact += sum(len(_ascii_json(shown)) + 25 for _, shown in
                          self.long[self.long_measured:])
        if lines:
            self.exact += len(_ascii_json("\n".join(lines))) + len(lines)
        self.size, self.measured, self.long_measured = (
            self.exact, len(self.lines), len(self.long))

    def flush(self, stats):
        """The chunk's record (None when it holds no line); starts the next chunk."""
        if not self.lines:
            return None
        record = {**self.base, "first_line": self.first, "lines": self.lines}
        if self.long:
            record["long"] = self.long
        stats.records += 1
        stats.lines += sum(1 for line in self.lines if line.strip()) + len(self.long)
        self._start()
        return record


def stage_flows(paths, staged_path: str, chunk_lines: int, progress=None,
                flows: FlowsSection = FlowsSection()) -> StageStats:
    stats = StageStats()
    files, stats.duplicates = unique_files(paths)
    files.sort(key=delivery_order)
    if not files:
        raise InputError(f"no flow-log files found in {list(paths)}")
    os.makedirs(os.path.dirname(os.path.abspath(staged_path)), exist_ok=True)
    with open(staged_path, "wb") as out:
        for i, path in enumerate(files, 1):
            stage_file(path, out, chunk_lines, stats, flows)
            stats.files += 1
            if progress and (i % 50 == 0 or i == len(files)):
                progress(f"staged {i}/{len(files)} files, {stats.records} records")
    return stats


def flow_files(locations, s3_client=None) -> tuple:
    """(files, duplicates): the flow files at `locations` (files, folders, s3:// URLs of an
    object or a prefix, read as a folder) in delivery order, each once. InputError when a
    location holds none."""
    local = [location for location in locations if not s3.is_s3(location)]
    files, duplicates = unique_files(local)
    seen = set()
    for url in (location for location in locations if s3.is_s3(location)):
        found = 0
        for name in _s3_objects(url, s3_client):
            found += 1
            if name in seen:
                duplicates += 1
            else:
                seen.add(name)
                files.append(name)
        if not found:
            raise InputError(f"{url}: no objects")
    if not files:
        raise InputError(f"no flow-log files found in {list(locations)}")
    files.sort(key=delivery_order)
    return files, duplicates


def _s3(client):
    """`client`, or boto3's default S3 client, made once per process (a parse instance reads
    many objects; a client costs tens of milliseconds to make)."""
    return _default_s3() if client is None else client


@functools.lru_cache(maxsize=1)
def _default_s3():
    import boto3
    return boto3.client("s3")


def _s3_objects(url, client):
    """The objects under an s3:// URL, as URLs: the object it names, or those below it as a
    folder (names starting with a dot and folder markers left out, as in `expand`)."""
    try:
        bucket, key = s3.split(url, key_required=False)
    except ValueError as err:
        raise InputError(str(err)) from None
    folder = key.rstrip("/") + "/" if key.rstrip("/") else ""
    pages = _s3(client).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
    for page in pages:
        for item in page.get("Contents", ()):
            name = item["Key"]
            if name == key or (name.startswith(folder) and not name.endswith("/")
                               and not os.path.basename(name).startswith(".")):
                yield f"{s3.SCHEME}{bucket}/{name}"


def read_flow_file(location: str, chunk_lines: int, flows: FlowsSection = FlowsSection(),
                   stats: StageStats = None, s3_client=None, flows_end: int = None):
    """file_records of a path or an s3:// object (downloaded to a scratch file, which is
    removed after; the records name the URL, `not_after` is the object's LastModified). An
    object that cannot be fetched (gone, access denied) is a dead file, "unreadable"; other
    S3 errors raise (the job restarts). With `flows_end` (flows_end of the files the job
    listed) no flow starting at or after it is let through, whatever the file's time is now:
    a file rewritten since the listing would bring flows whose owners' changes the job does
    not read."""
    records = _read_flow_file(location, chunk_lines, flows, stats, s3_client)
    if flows_end is None:
        yield from records
        return
    cap = flows_end - flows.max_ahead_seconds - 1   # job.parse bounds starts by not_after + it
    for record in records:
        # A stamp past the end too (one after the listing, which flows_end left out).
        bound = record.get("not_after", record.get("delivered"))
        if bound is not None and bound > cap:
            record["not_after"] = cap
        yield record


def _read_flow_file(location, chunk_lines, flows, stats, s3_client):
    if not s3.is_s3(location):
        yield from file_records(location, chunk_lines, stats, flows)
        return
    from botocore.exceptions import ClientError
    stats = StageStats() if stats is None else stats
    with tempfile.TemporaryDirectory(prefix="flowdredge-flows-") as scratch:
        local = os.path.join(scratch, "object")
        try:
            bucket, key = s3.split(location)
            reply = _s3(s3_client).get_object(Bucket=bucket, Key=key)
            with open(local, "wb") as out:
                shutil.copyfileobj(reply["Body"], out, 1 << 20)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code not in UNREADABLE_S3_ERRORS:
                raise
            yield _dead_file(location, _BadFile("unreadable", f"cannot read: {code}"), stats,
                             flows)
            return
        yield from file_records(location, chunk_lines, stats, flows, local=local,
                                modified=int(reply["LastModified"].timestamp()))


def stage_metadata(paths, staged_path: str,
                   chunk_lines: int = MetadataSection.chunk_lines,
                   max_line_bytes: int = MetadataSection.max_line_bytes) -> int:
    """Stages changelog files (plain or gzip) in the order given, each file once, in chunks of
    `chunk_lines` lines of one file; returns the count of changelog lines (blank ones aside)."""
    n = 0
    os.makedirs(os.path.dirname(os.path.abspath(staged_path)), exist_ok=True)
    seen = set()
    with open(staged_path, "wb") as out:
        for path in paths:
            if os.path.isdir(path):
                raise InputError(f"{path}: a folder; --metadata takes the changelog's files, "
                                 f"in order (a snapshot, then the changes)")
            # A FIFO or /dev/stdin too (`--metadata <(zcat changes.jsonl.gz)`): read once.
            if not os.path.exists(path):
                raise InputError(f"{path}: no such metadata file")
            if os.path.realpath(path) in seen:
                continue
            seen.add(os.path.realpath(path))
            try:
                n += _stage_changelog(path, out, chunk_lines, max_line_bytes)
            except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
                raise InputError(f"{path}: cannot read: "
                                 f"{getattr(err, 'strerror', None) or err}") from None
    return n


# Flink's file source, which reads a streaming job's snapshot, decompresses by the name's end
# (StandardDeCompressors, with no dot: "x.tgz" is gzip too), where the replay goes by the first
# bytes.
JVM_GZIP_ENDS = ("gz", "gzip")
# ... and these as other formats, which a snapshot is never written in (xz Flink cannot read:
# it ships no xz library).
JVM_OTHER_ENDS = ("bz2", "deflate", "xz")


def check_snapshot(path: str) -> None:
    """InputError for a local snapshot file, or a file of a snapshot folder (or of a cluster
    file job's changelog: operate.cluster), that the job's reader would fail on once Flink had
    started (its restarts spent, with a Java trace naming no file) or read as garbage: gzip cut
    short or corrupt, a name ending in .gz on what is not gzip or on an empty file, a name
    Flink decompresses as another format, gzip under another name (every line a dead letter,
    every flow unattributed), and in a folder what _snapshot_files refuses. Reads each gzip
    file through: 0.11-0.13 s for a million ASSIGN lines (run 58)."""
    for file in _snapshot_files(path) if os.path.isdir(path) else [path]:
        if os.path.basename(file).startswith((".", "_")):
            continue   # Flink's file source leaves it out (connectors.files refuses it)
        if os.path.exists(file) and not os.path.isfile(file):
            continue   # a FIFO as the snapshot: the lines read here would not reach the job
        other = next((end for end in JVM_OTHER_ENDS if file.endswith(end)), None)
        if other:
            raise InputError(f"{file}: Flink's reader would decompress it as {other}, by its "
                             f"name's end; a changelog is read as text, or as gzip named .gz: "
                             f"give it another name, or write it as gzip")
        named_gzip = next((end for end in JVM_GZIP_ENDS if file.endswith(end)), None)
        try:
            with open(file, "rb") as fh:
                head = fh.read(2)
                if head == GZIP_MAGIC and not named_gzip:
                    raise InputError(f"{file}: gzip, but its name does not end in .gz: the job "
                                     f"goes by the name and would read the compressed bytes "
                                     f"as lines; rename it")
                if named_gzip and not head:   # Python's gzip reads nothing, Java's fails
                    raise InputError(f"{file}: empty, but its name ends in {named_gzip}: "
                                     f"Flink's reader would fail on the gzip header it lacks; "
                                     f"remove it, or rename it")
                if named_gzip:
                    fh.seek(0)
                    with gzip.GzipFile(fileobj=fh) as reader:
                        while reader.read(1 << 20):
                            pass
        except (OSError, EOFError, zlib.error) as err:
            raise InputError(f"{file}: cannot read: "
                             f"{getattr(err, 'strerror', None) or err}") from None


def check_changelog(path: str) -> None:
    """InputError for a local changelog file or folder that the job's own reader (connectors/jvm
    ChangelogFiles) would fail on after its restarts, wait on for ever (check_snapshot) or leave
    out: a name starting with '.' or '_', even the one given it (s3:// too). Nothing more for
    an s3:// URL or a path not there, which the hosts that read it may hold."""
    if os.path.basename(path.rstrip("/")).startswith((".", "_")):
        # Flink's file source leaves such a name out, even the one it is given: the job's
        # client refuses it (connectors.files.changelog_files), after the code is shipped.
        raise InputError(f"{path}: Flink does not read a file or folder whose name starts "
                         f"with '.' or '_'; rename it")
    if not s3.is_s3(path) and os.path.exists(path):
        check_snapshot(path)


def check_followed_folder(path: str) -> None:
    """InputError for a local folder of staged records a job follows (`feed`'s, read by Flink's
    file source in follow mode) holding what _snapshot_files refuses: a FIFO there kept the
    reader waiting for a writer, nothing after it read. Nothing for a file or an s3:// URL."""
    if os.path.isdir(path):
        for _ in _snapshot_files(path):
            pass


def _snapshot_files(folder):
    """A snapshot folder's files as Flink's file source lists them: links followed, names
    starting with '.' or '_' left out (a folder with all it holds). InputError for what that
    source reads otherwise than the replay's listing (_folder_files), which leaves it out or
    lists it once: a FIFO, socket or device (it opened a FIFO in the folder and waited for a
    writer, the snapshot never read to its end, while the job ran), a folder or file reached
    again through a link (read twice; a link to a folder above it, followed until the path was
    too long, failed the job), the link named, not what it links to."""
    top = os.path.realpath(folder)
    reached = {}
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(name for name in dirs if not name.startswith((".", "_")))
        if root != folder and (top + os.sep).startswith(os.path.realpath(root) + os.sep):
            link = _link_below(folder, root)
            raise InputError(f"{link}: a link to {os.path.realpath(link)}, the folder or one "
                             f"holding it: Flink's reader would follow it round until the path "
                             f"was too long, failing the job; remove the link")
        for path in [root] + [os.path.join(root, name) for name in sorted(names)
                              if not name.startswith((".", "_"))]:
            real = os.path.realpath(path)
            if real in reached:
                # Whichever came first: a path reached without a link is not the one to remove.
                other = reached[real]
                link = _link_below(folder, path)
                if link is None:
                    link, other = _link_below(folder, other), path
                target = os.path.realpath(link)
                raise InputError(f"{link}: a link to {target}, which the folder holds already"
                                 f"{'' if other == target else f' (as {other})'}: Flink's "
                                 f"reader would read it twice; remove the link")
            reached[real] = path
            if path == root:
                continue
            if os.path.exists(path) and not os.path.isfile(path):
                raise InputError(f"{path}: not a regular file (a FIFO, socket or device): "
                                 f"Flink's reader would wait on it for a writer or fail; "
                                 f"remove it from the folder (a FIFO can be named itself)")
            yield path


def _link_below(folder, path):
    """The first link on `path`'s way down from `folder`, or None."""
    at = folder
    for name in os.path.relpath(path, folder).split(os.sep):
        at = os.path.join(at, name)
        if os.path.islink(at):
            return at
    return None


def _stage_changelog(path, out, chunk_lines, max_line_bytes) -> int:
    stats = StageStats()
    base = {"staged": STAGED, "source": path}
    info = os.stat(path)
    # A FIFO's modification time is when it was made or last written, which bounds none of
    # the events still to come through it: nothing bounds them but the flows' end.
    if stat.S_ISREG(info.st_mode):
        base["not_after"] = int(info.st_mtime)
    text = staged_changelog_text(chunk_lines, max_line_bytes)
    # Its characters are fewer than its JSON's: the JSON bounds it.
    chunk = _Chunk(base, chunk_lines, text, text)
    with _open(path) as fh:
        # Bytes that are not UTF-8 as lone surrogates, which the changelog parse dead-letters
        # (job.ownership.JVM_NOT_UTF8): as U+FFFD, an owner's name changed without a word.
        # A line too long keeps its first max_line_bytes, as the job's own readers keep its
        # first max_line_bytes characters: its change's type, ts and ip are read from them.
        # A byte-order mark (a file saved by an editor) is not part of the first event, nor
        # counted in its length: the job's readers skip it first (connectors/jvm LineChunks).
        for number, line, head in _lines(fh, max_line_bytes, "surrogateescape", max_line_bytes,
                                         bom=True):
            if line is None:
                # A character the cut split is left out: its first bytes are UTF-8, not bytes
                # that are not (\udcXX).
                head = _UTF8("surrogateescape").decode(head)
            full = chunk.add(number, line, head, stats)
            if full is not None:
                _write(out, full)
        last = chunk.flush(stats)
        if last is not None:
            _write(out, last)
    return stats.lines
