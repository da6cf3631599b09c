"""The side outputs' lines (counts, dead letters, data quality); reading a run's output folder
back (summary, tests), and checking and replacing one. Pure Python."""
import contextlib
import fcntl
import gzip
import json
import os
import shutil
import sys
import tempfile
import zlib
from collections import Counter

from flowdredge.schemas.fields import INT, LONG, STRING
from flowdredge.schemas.outputs import COUNTERS, COUNTS_STAGE, DATA_QUALITY, DEAD_LETTER
from flowdredge.schemas.security import OUTPUTS as SECURITY_OUTPUTS
from flowdredge.schemas.settings import quoted

OUTPUTS = ("aggregates", "enriched", "late", "dead_letter", "counts",
           "data_quality") + tuple(SECURITY_OUTPUTS)
# `flowdredge report`'s page, by default beside the outputs it describes.
REPORT_FILE = "report.html"


def counts_line(stage: str, counts) -> str:
    return json.dumps({COUNTS_STAGE.name: stage, **{k: v for k, v in counts.items() if v}})


def dead_letter_lines(dead_letters) -> str:
    return "\n".join(json.dumps(dict(zip(DEAD_LETTER.names, d))) for d in dead_letters)


# Rows of a data-quality block at most: a block is one element to the JVM (job.parse's groups
# are bounded for the same reason), and a record of NODATA lines of distinct interfaces has a
# row each.
DATA_QUALITY_ROWS = 1 << 15


def data_quality_blocks(no_traffic, most: int = DATA_QUALITY_ROWS) -> list:
    """`no_traffic`: (window_start, account, interface, NODATA or SKIPDATA) -> lines; the
    rows, one an interface and window, in blocks of lines of at most `most` rows."""
    window, account, interface, no_data, skip_data = DATA_QUALITY.names
    by_interface = {}
    for (window_start, account_id, interface_id, status), n in no_traffic.items():
        row = by_interface.setdefault((window_start, account_id, interface_id), {
            window: window_start, account: account_id, interface: interface_id,
            no_data: 0, skip_data: 0})
        row[no_data if status == "NODATA" else skip_data] += n
    rows = [json.dumps(row) for row in by_interface.values()]
    return ["\n".join(rows[first:first + most]) for first in range(0, len(rows), most)]


class OutputError(ValueError):
    """An output folder that cannot take a run's outputs; one line for the user."""


# In Flink's refusal of a checkpoint or savepoint whose state an operator of the new job
# does not take.
UNMAPPED_STATE = "Cannot map checkpoint/savepoint state"


def unmapped_state_error(option: str) -> str:
    """The one line for UNMAPPED_STATE, `option` the command's (`--resume PATH`)."""
    return (f"{option}: it holds state of operators this job no longer has (an output or "
            f"Kinesis output turned off, a flow stream left out or renamed, job.window_seconds "
            f"changed?); --allow-non-restored-state drops it, and the outputs of what it held "
            f"stop (docs/operations.md, upgrades). Not for a changed job.window_seconds: the "
            f"open windows' flows would be lost; run with the old size")


def latest_checkpoint(checkpoint_dir: str, jobs=None):
    """The newest completed checkpoint (a `chk-N` folder with its `_metadata`) of any job under
    a local checkpoint folder, or of those of `jobs` (ids), or None."""
    found = []
    for job in os.listdir(checkpoint_dir) if os.path.isdir(checkpoint_dir) else ():
        if jobs is not None and job not in jobs:
            continue
        job_dir = os.path.join(checkpoint_dir, job)
        for name in os.listdir(job_dir) if os.path.isdir(job_dir) else ():
            metadata = os.path.join(job_dir, name, "_metadata")
            if name.startswith("chk-") and os.path.isfile(metadata):
                found.append((os.path.getmtime(metadata), os.path.join(job_dir, name)))
    return max(found)[1] if found else None


def remove_empty_folders(path: str) -> None:
    """Removes `path` and the folders under it that hold no file (what a command that made
    `path` leaves when it did not run): a file keeps its folders. A link is not followed."""
    if os.path.islink(path) or not os.path.isdir(path):
        return
    for root, _dirs, _files in os.walk(path, topdown=False):
        if not os.listdir(root):
            os.rmdir(root)


# Held (flock) by the `flowdredge run` that writes the folder, for as long as its process lives.
RUN_LOCK = ".flowdredge-run.lock"


def _check_text(output_dir: str) -> None:
    """A folder whose path (made absolute, as it goes to Flink) is not UTF-8 cannot be sent to
    the JVM: py4j's retries of the send ended the job with "maximum recursion depth exceeded"
    after Flink had started."""
    try:
        os.path.abspath(output_dir).encode("utf-8")
    except UnicodeEncodeError:
        shown = output_dir.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise OutputError(f"--output {shown}: a path that is not UTF-8, which the job cannot "
                          f"carry: choose another") from None


def hold_output(output_dir: str, holder: str = "flowdredge run",
                why: str = "two jobs from one checkpoint commit every flow twice"):
    """A lock on the local folder `output_dir`, held while the returned file is open (the
    system lets it go when the process ends, however it ends). A second job writing there, a
    --resume started while the first still ran, restored the same checkpoint and committed
    every flow a second time. The lock file names its `holder` and process, so that a refused
    command says which one to stop; `why`: what two of them there would do."""
    _check_text(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise OutputError(f"--output {output_dir}: not a folder")
    try:
        os.makedirs(output_dir, exist_ok=True)
        # "a", not "w": a refused opener must not empty the holder's name.
        held = open(os.path.join(output_dir, RUN_LOCK), "a+", encoding="utf-8")
    except OSError as err:
        raise OutputError(f"--output {output_dir}: cannot write there "
                          f"({err.strerror or err})") from None
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.seek(0)
        named = held.read(200).partition("\n")[0].strip()
        held.close()
        raise OutputError(f"--output {output_dir}: {named or 'another flowdredge command'} "
                          f"writes there (it holds {RUN_LOCK}); stop it first: {why}") from None
    except OSError as err:   # a file system without locks (some NFS and FUSE mounts)
        held.close()
        raise OutputError(f"--output {output_dir}: cannot lock {RUN_LOCK} there "
                          f"({err.strerror or err}); use a local folder") from None
    held.truncate(0)
    held.write(f"{holder} (pid {os.getpid()})\n")
    held.flush()
    return held


def check_output(output_dir: str, overwrite: bool) -> None:
    """Fails unless `output_dir` is (or can be made) a writable folder that holds no outputs,
    or `overwrite`. Touches no output."""
    _check_text(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise OutputError(f"--output {output_dir}: not a folder")
    try:
        os.makedirs(output_dir, exist_ok=True)
        probe, name = tempfile.mkstemp(prefix=".write-check-", dir=output_dir)
        os.close(probe)
        os.remove(name)
    except OSError as err:
        raise OutputError(f"--output {output_dir}: cannot write there "
                          f"({err.strerror or err})") from None
    # Committed files only: a run stopped before its first checkpoint leaves hidden in-progress
    # files, which no reader takes for outputs.
    existing = [name for name in OUTPUTS if next(committed_files(output_dir, name), None)]
    if existing and not overwrite:
        raise FileExistsError(f"{output_dir} already holds outputs {existing}; choose another "
                              f"--output or pass --overwrite")


def remove_outputs(output_dir: str, also=()) -> list:
    """Removes the output folders from `output_dir`, and the entries named in `also`; nothing
    else there. Returns the names removed."""
    removed = []
    for name in OUTPUTS + tuple(also):
        path = os.path.join(output_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        else:
            continue
        removed.append(name)
    return removed


def replace_outputs(new_dir: str, output_dir: str) -> None:
    """Moves the outputs of a finished run from `new_dir` into `output_dir`, replacing what
    was there: the last step of a replay, so that a failed one leaves the previous outputs as
    they were. The run's staged changelog and checkpoints stay behind, removed with it. A
    report of the previous outputs goes: it would describe a run no longer there."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(output_dir, REPORT_FILE))
    for name in OUTPUTS:
        target = os.path.join(output_dir, name)
        shutil.rmtree(target, ignore_errors=True)
        if os.path.isdir(os.path.join(new_dir, name)):
            os.replace(os.path.join(new_dir, name), target)


def is_committed(file_name: str) -> bool:
    """Whether a part file, or a folder of them, is finished: Flink's sinks keep unfinished
    ones hidden ('.'), and writers of other layouts mark theirs with '_' (_SUCCESS,
    _temporary/)."""
    return not file_name.startswith((".", "_"))


def committed_files(output_dir: str, name: str):
    """Finished part files of output `name`, in a stable order (any folder layout); none in a
    hidden folder (a copy's _temporary/ or .staging/ counted its files twice)."""
    folder = os.path.join(output_dir, name)
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if is_committed(d))
        for f in sorted(files):
            if is_committed(f):
                yield os.path.join(root, f)


# The values a field of each kind holds, as the query views (DuckDB's INTEGER, BIGINT) read them.
_INTEGERS = {INT: range(-2**31, 2**31), LONG: range(-2**63, 2**63)}


def wrong_value(name: str, value, kind: str):
    """What is wrong with a record's `value` of field `name`, or None: a text where `kind` is
    STRING, an integer in the kind's range where it is INT or LONG; null is no value."""
    if value is None or (isinstance(value, str) if kind == STRING else
                         type(value) is int and value in _INTEGERS[kind]):
        return None
    expected = "a text" if kind == STRING else "a 32-bit integer" if kind == INT else \
        "a 64-bit integer"
    return f"{name} is {quoted(value, json.dumps)}, not {expected}"


def fields_check(fields):
    """A read_records check: each of `fields` of a record holds its kind or null."""
    def check(record):
        return next(filter(None, (wrong_value(f.name, record.get(f.name), f.kind)
                                  for f in fields)), None)
    return check


def _is_counter(name: str, value) -> bool:
    """Of a counts record's fields, the counters: this release's, and those of another that
    are integers (a field of another kind is not one, and not read)."""
    return name in COUNTERS or name.startswith(("dead_letter_", "metadata_dead_letter_")) or (
        name != COUNTS_STAGE.name and type(value) is int)


def _counts_check(record):
    """Every counter of a counts record is a LONG."""
    return next(filter(None, (wrong_value(name, value, LONG) for name, value in record.items()
                              if _is_counter(name, value))), None)


def read_records(output_dir: str, name: str, check=None):
    """The records of output `name`; a file that cannot be read, or a record that `check`
    refuses (it says what is wrong, or None), is a ValueError naming it."""
    for path in committed_files(output_dir, name):
        yield from read_file_records(path, check)


def read_file_records(path: str, check=None):
    """The records of one part file (JSON Lines, gzip or not); a ValueError names the line,
    also of a line that is not a JSON object or that `check` refuses (a file written by
    hand)."""
    opener = gzip.open if path.endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    record = _json_line(line, f"{path}: line {number}")
                    if not isinstance(record, dict):
                        raise ValueError(f"{path}: line {number}: not a JSON object: "
                                         f"{line.strip()[:80]}")
                    wrong = check and check(record)
                    if wrong:
                        raise ValueError(f"{path}: line {number}: {wrong}")
                    yield record
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as err:
        raise ValueError(f"{path}: cannot be read after line {number}: {err}") from None


def _json_line(line: str, where: str):
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not JSON: {err}") from None
    except ValueError:   # the decoder's other: int()'s limit on digits
        raise ValueError(f"{where}: not JSON: an integer of more than "
                         f"{sys.get_int_max_str_digits()} digits") from None
    except RecursionError:
        raise ValueError(f"{where}: not JSON: nested deeper than its decoder goes") from None


def total_counts(output_dir: str) -> Counter:
    totals = Counter()
    for record in read_records(output_dir, "counts", _counts_check):
        # null as absent, 0, as the counts view reads it (a record written by hand)
        totals.update({name: n for name, n in record.items()
                       if n is not None and _is_counter(name, n)})
    return totals
