"""How long a staged line (job.replay, `feed`) can be: what staging writes with the job's limits
and what the job's file readers (connectors/jvm LineChunks, LineBytes) take whole. Pure Python:
staging and the readers share it."""

JAVA_INT_MAX = 2**31 - 1
# A staged line's room for what is not its lines (source, format, line numbers, excerpts).
STAGED_ROOM = 1 << 16
# The most a JVM reader holds of a line, and one more: a Java array is a little shorter than
# JAVA_INT_MAX at most.
MAX_HELD = JAVA_INT_MAX - 16
# A staged line of several CloudWatch records ends once their text reaches this: about
# 10,000 flow lines of base64 gzip, parsed in batches of flows.chunk_lines.
PACK_BYTES = 1 << 20


def staged_changelog_text(chunk_lines: int, max_line_bytes: int) -> int:
    """What a staged changelog line (job.replay, `feed`) holds of its lines at most, their JSON
    as staging writes it: `chunk_lines` lines of `max_line_bytes` with their quotes and commas,
    twice over for JSON's escapes (a publisher's line escapes its quotes, about a fifth of it),
    or one line escaped six times over (ASCII JSON writes a byte that is not UTF-8 as six
    characters, a character of Cyrillic text, two bytes, as six). Staging ends a chunk before
    its lines pass it."""
    return min(max(2 * chunk_lines * (max_line_bytes + 3), 6 * max_line_bytes + 3),
               MAX_HELD - STAGED_ROOM)


def staged_changelog_max(chunk_lines: int, max_line_bytes: int) -> int:
    """The longest staged changelog line (job.replay, `feed`) the job's readers take whole
    (connectors/jvm LineChunks, LineBytes): staged_changelog_text and STAGED_ROOM. A longer
    line (one of 200 MB ran the JVM out of heap) reaches the parse cut, a dead letter
    line_too_long."""
    return staged_changelog_text(chunk_lines, max_line_bytes) + STAGED_ROOM


def staged_flows_text(chunk_lines: int, max_line_bytes: int, max_decompressed_bytes: int) -> int:
    """What a staged flow-record line (job.replay, `feed`) holds of its records at most, as
    staging writes it: a CloudWatch record of `max_decompressed_bytes` as base64 (staging's own
    bound on a records file's line), a pack of smaller ones (PACK_BYTES of their text), a chunk
    of as much text (or one line of `max_line_bytes`) with its lines' quotes and commas, or one
    line of `max_line_bytes` characters escaped twelve times over (ASCII JSON writes a control
    character as six characters, one past U+FFFF as twelve). Staging ends a chunk before its
    lines' JSON passes it."""
    text = max(max_decompressed_bytes, max_line_bytes)
    return min(max(4 * (text // 3 + 1), PACK_BYTES, text + 3 * chunk_lines,
                   12 * max_line_bytes + 3), MAX_HELD - STAGED_ROOM)


def staged_flows_max(chunk_lines: int, max_line_bytes: int, max_decompressed_bytes: int) -> int:
    """The longest staged flow-record line (job.replay, `feed`) LineBytes takes whole:
    staged_flows_text and STAGED_ROOM. A longer line (one of 130 MB ran the JVM out of heap)
    reaches the parse cut, a dead letter too_large."""
    return staged_flows_text(chunk_lines, max_line_bytes, max_decompressed_bytes) + STAGED_ROOM
