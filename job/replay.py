"""Staging of flow-log files for a bounded replay. Pure Python, streaming (no whole file held).

Accepted inputs (files or folders of them):
- S3 delivery files: text, usually gzip, first line a header naming the fields in any order;
- a CloudWatch Logs subscription record: one gzip JSON envelope per file;
- CloudWatch Logs subscription records, one base64 record per line (text or gzip).

Flow files are staged in delivery order (the `_YYYYMMDDTHHMMZ_` stamp AWS puts in file names,
then path) into one file of records, one per line: base64 envelopes as they are, S3 files as JSON
chunks of `chunk_lines` lines. One staged line is one Python call in the job.

Changelog files are staged, in the order given, into one file too: a reader must see the
changelog in order, and Flink assigns the splits of several files in no fixed order. Each staged
line is a JSON array of `chunk_lines` changelog lines, one Python call in the job
(job.ownership.changelog_lines).
"""
import base64
import calendar
import gzip
import json
import os
import re
import time
from dataclasses import dataclass

from job.config import MetadataSection
from job.parse import FlowFormat, FormatError


class InputError(ValueError):
    """An input file that cannot be staged; names the file and what is wrong."""


@dataclass
class StageStats:
    files: int = 0
    records: int = 0
    lines: int = 0


_STAMP = re.compile(r"_(\d{8}T\d{4}Z)_")


def delivery_order(path: str):
    match = _STAMP.search(os.path.basename(path))
    return (match.group(1) if match else "", path)


def delivered_at(path: str):
    """Epoch seconds of AWS's delivery stamp in the file name, or None."""
    match = _STAMP.search(os.path.basename(path))
    if not match:
        return None
    return calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H%MZ"))


def expand(paths):
    for path in paths:
        if os.path.isdir(path):
            for root, _dirs, names in sorted(os.walk(path)):
                for name in sorted(names):
                    if not name.startswith("."):
                        yield os.path.join(root, name)
        elif os.path.isfile(path):
            yield path
        else:
            raise InputError(f"{path}: no such file or folder")


def _open_text(path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _looks_like_base64(line: str) -> bool:
    return len(line) >= 16 and " " not in line and not line.startswith("{")


def stage_file(path: str, out, chunk_lines: int, stats: StageStats) -> None:
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b":
        with gzip.open(path, "rb") as gz:
            first = gz.read(64).lstrip()
        if first.startswith(b"{"):  # a single CloudWatch envelope
            with open(path, "rb") as fh:
                out.write(base64.b64encode(fh.read()).decode("ascii") + "\n")
            stats.records += 1
            return
    try:
        with _open_text(path) as lines:
            header = next(lines, "").strip()
            if _looks_like_base64(header):
                for line in [header] + [l.strip() for l in lines]:
                    if line:
                        out.write(line + "\n")
                        stats.records += 1
                return
            try:
                fmt = FlowFormat.parse(header)
            except FormatError as err:
                raise InputError(f"{path}: first line is neither a flow-log header nor a base64 "
                                 f"CloudWatch record ({err})") from None
            chunk, n, delivered = [], 0, delivered_at(path)
            for line in lines:
                line = line.rstrip("\n")
                if not line:
                    continue
                chunk.append(line)
                if len(chunk) >= chunk_lines:
                    _write_chunk(out, path, n, fmt, delivered, chunk, stats)
                    chunk, n = [], n + 1
            if chunk:
                _write_chunk(out, path, n, fmt, delivered, chunk, stats)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise InputError(f"{path}: cannot read: {err}") from None


def _write_chunk(out, path, n, fmt, delivered, chunk, stats):
    record = {"source": f"{path}#{n}", "format": str(fmt), "lines": chunk}
    if delivered is not None:
        record["delivered"] = delivered
    out.write(json.dumps(record, separators=(",", ":")) + "\n")
    stats.records += 1
    stats.lines += len(chunk)


def stage_flows(paths, staged_path: str, chunk_lines: int, progress=None) -> StageStats:
    stats = StageStats()
    files = sorted(expand(paths), key=delivery_order)
    if not files:
        raise InputError(f"no flow-log files found in {list(paths)}")
    os.makedirs(os.path.dirname(os.path.abspath(staged_path)), exist_ok=True)
    with open(staged_path, "w", encoding="utf-8") as out:
        for i, path in enumerate(files, 1):
            stage_file(path, out, chunk_lines, stats)
            stats.files += 1
            if progress and (i % 50 == 0 or i == len(files)):
                progress(f"staged {i}/{len(files)} files, {stats.records} records")
    return stats


def stage_metadata(paths, staged_path: str,
                   chunk_lines: int = MetadataSection.chunk_lines) -> int:
    """Concatenates changelog files (plain or gzip) in the order given, in chunks of
    `chunk_lines` lines; returns the line count."""
    n = 0
    chunk = []
    os.makedirs(os.path.dirname(os.path.abspath(staged_path)), exist_ok=True)
    with open(staged_path, "w", encoding="utf-8") as out:
        for path in paths:
            if not os.path.isfile(path):
                raise InputError(f"{path}: no such metadata file")
            try:
                with _open_text(path) as lines:
                    for line in lines:
                        if line.strip():
                            chunk.append(line.rstrip("\n"))
                            n += 1
                            if len(chunk) >= chunk_lines:
                                out.write(json.dumps(chunk) + "\n")
                                chunk = []
            except (OSError, EOFError, gzip.BadGzipFile) as err:
                raise InputError(f"{path}: cannot read: {err}") from None
        if chunk:
            out.write(json.dumps(chunk) + "\n")
    return n
