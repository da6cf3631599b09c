"""Reading a run's output folder back (summary, tests). Pure Python."""
import gzip
import json
import os
import shutil
from collections import Counter

from schemas.security import OUTPUTS as SECURITY_OUTPUTS

OUTPUTS = ("aggregates", "enriched", "late", "dead_letter", "counts",
           "data_quality") + tuple(SECURITY_OUTPUTS)


def clear_outputs(output_dir: str) -> None:
    for name in OUTPUTS + ("staging",):
        shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)


def prepare_output(output_dir: str, overwrite: bool) -> None:
    existing = [name for name in OUTPUTS
                if os.path.isdir(os.path.join(output_dir, name))
                and os.listdir(os.path.join(output_dir, name))]
    if existing and not overwrite:
        raise FileExistsError(f"{output_dir} already holds outputs {existing}; choose another "
                              f"--output or pass --overwrite")
    clear_outputs(output_dir)


def committed_files(output_dir: str, name: str):
    """Finished part files (Flink keeps unfinished ones hidden, with a leading dot)."""
    folder = os.path.join(output_dir, name)
    for root, _dirs, files in os.walk(folder):
        for f in sorted(files):
            if not f.startswith(".") and not f.startswith("_"):
                yield os.path.join(root, f)


def read_records(output_dir: str, name: str):
    for path in committed_files(output_dir, name):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def total_counts(output_dir: str) -> Counter:
    totals = Counter()
    for record in read_records(output_dir, "counts"):
        record.pop("stage", None)
        totals.update(record)
    return totals
