"""Do two runs hold the same aggregates? Every row of `aggregates/` is compared."""
from flowdredge.job.outputs import read_records
from flowdredge.schemas.outputs import AGGREGATE_DIMENSIONS, AGGREGATE_MEASURES

DIMENSIONS = tuple(f.name for f in AGGREGATE_DIMENSIONS)
MEASURES = tuple(f.name for f in AGGREGATE_MEASURES)


def read_aggregates(output_dir: str) -> dict:
    """{dimension tuple: measure tuple} from the committed files of `aggregates/` (any
    layout: the job's FileSink and the SQL filesystem sink name their files differently)."""
    rows = {}
    for row in read_records(output_dir, "aggregates"):
        key = tuple(row[d] for d in DIMENSIONS)
        if key in rows:
            raise ValueError(f"{output_dir}: aggregate row twice: {key}")
        rows[key] = tuple(row[m] for m in MEASURES)
    return rows


def aggregates_agree(ours_dir: str, other_dir: str, expected_flows: int) -> dict:
    ours, other = read_aggregates(ours_dir), read_aggregates(other_dir)
    differing = sorted(k for k in ours.keys() | other.keys() if ours.get(k) != other.get(k))
    flows = [sum(v[0] for v in rows.values()) for rows in (ours, other)]
    agree = not differing and flows[0] == expected_flows
    summary = (f"{'agree' if agree else 'DISAGREE'}: {len(ours):,} rows from the job, "
               f"{len(other):,} from the SQL baseline, {len(differing):,} differ; flows "
               f"{flows[0]:,} and {flows[1]:,} of {expected_flows:,} generated")
    return {"agree": agree, "rows": len(ours), "other_rows": len(other),
            "differing_rows": len(differing), "flows": flows[0], "other_flows": flows[1],
            "first_differences": [[list(k), ours.get(k), other.get(k)] for k in differing[:5]],
            "summary": summary}
