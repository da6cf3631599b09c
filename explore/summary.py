"""What a user wants to see first after a run, from its output folder. Pure Python."""
import os
import re
from collections import Counter

from flowdredge.job.outputs import OUTPUTS, fields_check, read_records, total_counts
from flowdredge.schemas.outputs import AGGREGATE, DEAD_LETTER, FLOW_RECORD_DEAD_LETTER_REASONS


# Control characters (C0, DEL, C1: U+009B starts an escape sequence on some terminals), line
# and paragraph separators, and the marks that reorder or hide text (U+202E) shown as escapes,
# so that an owner's tag cannot forge lines, drive the terminal or read as another name.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def _escape(match) -> str:
    c = match.group(0)
    return repr(c)[1:-1] if ord(c) < 0x80 else f"\\u{ord(c):04x}"


def printable(text) -> str:
    """`text` as a terminal shows it safely."""
    return _UNSAFE.sub(_escape, str(text))


def app_name(app) -> str:
    """An app as the summary and the report show it: null (an aggregate written by hand) is
    (unknown)."""
    return "(unknown)" if app is None else printable(app)


def summarize(output_dir: str, top: int = 10) -> dict:
    counts = total_counts(output_dir)
    edges, rejects = Counter(), Counter()
    for row in read_records(output_dir, "aggregates", fields_check(AGGREGATE.fields)):
        # A record that lacks a field (one written by hand) counts as query reads it: null.
        edges[(row.get("src_app"), row.get("dst_app"))] += row.get("bytes") or 0
        if row.get("action") == "REJECT":
            rejects[row.get("dst_app")] += row.get("flows") or 0
    return {"counts": counts, "top_edges": edges.most_common(top),
            "rejects": rejects.most_common(top), "dead_letters": dead_letter_examples(
                output_dir, _reasons(counts))}


def _reasons(counts) -> Counter:
    """Dead letters by (stage, reason)."""
    return Counter({("metadata" if name.startswith("metadata_") else "flows",
                     name.split("dead_letter_", 1)[1]): n for name, n in counts.items()
                    if name.startswith(("dead_letter_", "metadata_dead_letter_")) and n})


def dead_letter_examples(output_dir: str, reasons) -> dict:
    """The first dead letter of each (stage, reason) in `reasons` that dead_letter/ holds: what
    a user reads to see why, without a query."""
    examples = {}
    if reasons:
        for row in read_records(output_dir, "dead_letter", fields_check(DEAD_LETTER.fields)):
            key = (row.get("stage"), row.get("reason"))
            if key in reasons and key not in examples:
                examples[key] = row
                if len(examples) == len(reasons):
                    break
    return examples


def _pct(part, whole):
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def owned_ends(counts) -> tuple:
    """(flow ends attributed to an owner, flow ends attributed): the attributed share that the
    summary, the streaming demo and docs/operations.md give."""
    return (counts["src_owned"] + counts["dst_owned"],
            2 * (counts["flows_aggregated"] + counts["flows_late"]))


def attributed_share(counts) -> str:
    return _pct(*owned_ends(counts))


def dead_letter_reasons(counts) -> str:
    """The dead letters by reason, most first, and how many of them dead_letter/ lacks."""
    reasons = Counter({name: n for name, n in counts.items()
                       if name.startswith(("dead_letter_", "metadata_dead_letter_"))})
    text = "dead letters by reason: " + ", ".join(
        f"{name.replace('metadata_dead_letter_', 'metadata ').replace('dead_letter_', '')} "
        f"{n:,}" for name, n in reasons.most_common())
    not_kept = counts["dead_letters_not_kept"] + counts["metadata_dead_letters_not_kept"]
    if not_kept:
        text += (f" ({not_kept:,} counted only, beyond the 1,000 a batch or changelog record "
                 "dead_letter/ keeps)")
    return text


def render(summary: dict, output_dir: str) -> str:
    c = summary["counts"]
    owned, ends = owned_ends(c)
    aws = c["src_aws"] + c["dst_aws"]
    in_vpc = c["src_owned_in_vpc"] + c["dst_owned_in_vpc"]
    whole = sum(c[f"dead_letter_{reason}"] for reason in FLOW_RECORD_DEAD_LETTER_REASONS)
    lines = [
        f"flow lines read: {c['lines_in']:,} in {c['records_in']:,} records "
        + (f"({c['records_repeated']:,} of them written twice by their producer, not parsed; "
           if c["records_repeated"] else "(")
        + f"{c['dead_letter'] - whole:,} dead-lettered, {c['no_data'] + c['skip_data']:,} "
        f"NODATA/SKIPDATA)" + (f"; files, records and events dead-lettered whole: {whole:,}"
                               if whole else ""),
        f"flows attributed: {c['flows_aggregated']:,} into their windows (a window's "
        f"aggregates are written once it closes), {c['flows_late']:,} late",
        f"flow ends attributed to an owner: {owned:,} of {ends:,} ({_pct(owned, ends)}"
        + (f"; {in_vpc:,} within their VPC, of addresses overlapping VPCs hold" if in_vpc else "")
        + "); "
        f"internet: {c['src_internet'] + c['dst_internet']:,}; "
        f"unattributed private: {c['src_unattributed'] + c['dst_unattributed']:,}"
        + (f"; AWS services (metadata.ip_ranges): {aws:,}" if aws else ""),
        f"metadata events read: {c['metadata_events']:,} ({c['metadata_late']:,} of them "
        f"late); lines dead-lettered: {c['metadata_dead_letter']:,}"
        + (f"; after the flows' end, not read: {c['metadata_after_flows']:,}"
           if c["metadata_after_flows"] else "")
        + f"; flow groups that waited for metadata: {c['groups_waited']:,}, attributed "
        f"after max wait: {c['groups_after_max_wait']:,} ({c['flows_after_max_wait']:,} flows)",
    ]
    if c["dead_letter"] or c["metadata_dead_letter"]:
        lines.append(dead_letter_reasons(c))
        for (stage, reason), n in _reasons(c).most_common():
            row = summary["dead_letters"].get((stage, reason))
            if row is not None:
                lines.append(f"  e.g. {'metadata ' if stage == 'metadata' else ''}{reason}: "
                             f"{printable(row.get('source'))}"
                             + (f": {printable(row['detail'])}" if row.get("detail") else ""))
    if c["metadata_dead_letter_ts_out_of_range"]:
        # The bound a user least expects: a changelog file touched, copied or written with an
        # old modification time refuses every change after it.
        lines.append("metadata ts_out_of_range: a ts (epoch milliseconds) outside 2010..2100, "
                     "or more than metadata.max_ahead_seconds after its record's arrival or "
                     "its file's modification time")
    if c["unknown_fields_ignored"]:
        lines.append(f"values of header fields this release does not know, dropped: "
                     f"{c['unknown_fields_ignored']:,} (flows.strict: true names the field "
                     f"and refuses the replay)")
    lines += ["", "top app -> app edges by bytes:"]
    for (src, dst), nbytes in summary["top_edges"]:
        lines.append(f"  {app_name(src):>18} -> {app_name(dst):<18} {nbytes / 1e6:10.1f} MB")
    if not summary["top_edges"] and c["flows_aggregated"]:
        # A stream stopped before its first window closed: its flows are in no file yet.
        lines.append("  (none yet: no window's aggregates written; a window's are once it "
                     "closes)")
    lines += ["", "REJECTed flows by destination app:"]
    for app, n in summary["rejects"] or [("(none)", 0)]:
        lines.append(f"  {app_name(app):>18} {n:8,}")
    lines += ["", f"outputs (JSON Lines) under {output_dir}/: " + " ".join(
        f"{name}/" for name in OUTPUTS if os.path.isdir(os.path.join(output_dir, name)))]
    return "\n".join(lines)
