package io.flowdredge.files;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;

/**
 * Event time of a changelog line at its source, for the flow-file gate (FileGate): the "ts" of
 * the event the line is, or the latest "ts" of the events a staged chunk holds (its "lines", each
 * an event's JSON inside a JSON string), no later than the chunk's own "not_after" (epoch
 * seconds, its file's modification time): an event past it, which the job refuses, must not open
 * the gate to every file. An event at or after the replay's flows' end (flowsEndMs: no flow of
 * it starts then), which the job does not read, gives no time. A line without a ts moves no time
 * forward. Only the gate reads this
 * time; the job's own event time comes from the parse step (job.ownership).
 *
 * <p>Only an event's top-level "ts" counts, as the parse step reads it: a "ts" inside an owner's
 * nested field or inside a string value would open the gate early (unknown fields are accepted).
 * Where the scan is unsure the parse step would read the same (an escaped key name or "staged"
 * value, an exponent, a whole float past 2^53, JSON cut short, nested too deep, with a control
 * character, a stray word or mismatched brackets) it finds no time, which only holds the gate
 * longer. It does not check every rule of JSON: an event the parse step refuses for a missing
 * or trailing comma still gives its ts. The line comes as its bytes (LineBytes) and is scanned
 * byte by byte: a regular expression or a JSON parser over a large estate's snapshot (200 MB) was
 * most of the changelog source's time.
 * ASCII never matches inside a multi-byte UTF-8 character, whose bytes are all above 127.
 */
public class ChangelogTimestamps implements SerializableTimestampAssigner<byte[]> {
    private static final long serialVersionUID = 1L;
    static final long NONE = Long.MIN_VALUE;
    private static final int MAX_DIGITS = 18;   // never past a long
    private static final long EXACT_DOUBLES = 1L << 53;
    /** Brackets are tracked in a long's bits: deeper nesting finds no time. */
    private static final int MAX_DEPTH = 62;
    /** job.ownership.changelog_lines takes a record as staged only if this is in its start. */
    private static final byte[] STAGED = "changelog".getBytes();
    private static final int STAGED_WITHIN = 40;   // characters
    /** Bytes that may stand outside strings: structure, white space, numbers, true/false/null. */
    private static final boolean[] BARE = new boolean[128];

    static {
        for (char c : "{}[]:, \t\r\n0123456789-+.eEtrufalsn".toCharArray()) {
            BARE[c] = true;
        }
    }

    /** Epoch ms no flow of the replay starts at or after (job.replay.flows_end), or NONE. */
    private final long flowsEndMs;
    /** One staged event's JSON, its escapes undone, reused from line to line. */
    private transient byte[] event;
    /** What escapedTs found besides the time. */
    private transient int escapedEnd;
    private transient boolean unsure;

    public ChangelogTimestamps() {
        this(NONE);
    }

    public ChangelogTimestamps(long flowsEndMs) {
        this.flowsEndMs = flowsEndMs;
    }

    @Override
    public long extractTimestamp(byte[] line, long recordTimestamp) {
        long latest = scan(line);
        return latest == NONE ? recordTimestamp : latest;
    }

    /** The line's time as described above, or NONE. */
    long scan(byte[] b) {
        // The parse step takes a line as a staged chunk only if it starts with its brace.
        return object(b, 0, b.length, b.length > 0 && b[0] == '{');
    }

    /**
     * The time of the JSON object b[from, n): its last top-level "ts" if a whole number, or,
     * if `staging` and it is a staged chunk, its events' latest as described above; else NONE.
     */
    private long object(byte[] b, int from, int n, boolean staging) {
        int i = skipSpaces(b, from, n);
        if (i >= n || b[i] != '{') {
            return NONE;   // not an object: the parse step rejects it
        }
        long ts = NONE;
        long notAfter = NONE;
        boolean notAfterUnsure = false;   // a number the scan does not read (19 digits, 1.5)
        boolean staged = false;
        boolean inLines = false;
        boolean linesOk = false;
        long linesLatest = NONE;
        int depth = 0;
        long kinds = 0;   // bit k: the bracket open at depth k+1 is '['
        for (; i < n; i++) {
            byte c = b[i];
            if (c == '"') {
                int end = stringEnd(b, i, n);
                if (end < 0) {
                    return NONE;
                }
                if (depth == 1) {
                    int colon = skipSpaces(b, end + 1, n);
                    if (colon < n && b[colon] == ':') {
                        if (hasBackslash(b, i, end)) {
                            return NONE;   // a key the parse step may read as one of these
                        }
                        int value = skipSpaces(b, colon + 1, n);
                        if (isName(b, i, end, "ts")) {
                            ts = integer(b, value, n, false);
                        } else if (staging && isName(b, i, end, "not_after")) {
                            notAfter = integer(b, value, n, true);
                            notAfterUnsure = notAfter == NONE && value < n
                                    && (b[value] == '-' || (b[value] >= '0' && b[value] <= '9'));
                        } else if (staging && isName(b, i, end, "staged")) {
                            int close = value < n && b[value] == '"' ? stringEnd(b, value, n) : -1;
                            if (close > 0 && hasBackslash(b, value, close)) {
                                return NONE;
                            }
                            staged = close > 0 && isName(b, value, close, "changelog");
                        } else if (staging && isName(b, i, end, "lines")) {
                            inLines = value < n && b[value] == '[';
                            linesOk = inLines;
                            linesLatest = NONE;
                        }
                        i = colon;
                        continue;
                    }
                } else if (depth == 2 && inLines) {
                    long eventTs = escapedTs(b, i + 1, n);
                    if (unsure) {
                        end = stringEnd(b, i, n);
                        if (end < 0) {
                            return NONE;
                        }
                        eventTs = decodedTs(b, i + 1, end);
                    } else {
                        end = escapedEnd;
                    }
                    linesLatest = Math.max(linesLatest, beforeFlowsEnd(eventTs));
                }
                i = end;
            } else if (c == '{' || c == '[') {
                if (depth == 2 && inLines) {
                    linesOk = false;
                }
                if (depth == MAX_DEPTH) {
                    return NONE;
                }
                kinds = kinds << 1 | (c == '[' ? 1 : 0);
                depth++;
            } else if (c == '}' || c == ']') {
                if ((kinds & 1) != (c == ']' ? 1 : 0)) {
                    return NONE;   // mismatched
                }
                kinds >>>= 1;
                depth--;
                if (depth == 1) {
                    inLines = false;
                } else if (depth == 0) {
                    if (skipSpaces(b, i + 1, n) != n) {
                        return NONE;   // trailing data: not JSON
                    }
                    int marker = stagedMarker(b);
                    if (!staged || !linesOk || marker == 0) {
                        return beforeFlowsEnd(ts);
                    }
                    if (marker < 0 || notAfterUnsure
                            || notAfter != NONE && notAfter < Long.MIN_VALUE / 1000) {
                        return NONE;
                    }
                    return notAfter == NONE || linesLatest == NONE
                            || notAfter > Long.MAX_VALUE / 1000
                            ? linesLatest : Math.min(linesLatest, notAfter * 1000);
                }
            } else if (c < 0 || !BARE[c]) {
                return NONE;
            } else if (depth == 2 && inLines && c != ',' && !isSpace(c)) {
                linesOk = false;   // not a string: the parse step takes no lines from it
            }
        }
        return NONE;   // unclosed
    }

    private long beforeFlowsEnd(long ts) {
        return flowsEndMs != NONE && ts >= flowsEndMs ? NONE : ts;
    }

    /**
     * Whether "changelog" is within the line's first 40 characters, as the parse step asks: 1
     * if within its first 40 bytes; 0 if not, and the 40 bytes are 40 characters (ASCII); -1 if
     * it is further, where non-ASCII characters of several bytes may still bring it within.
     */
    private static int stagedMarker(byte[] b) {
        if (indexOf(b, STAGED, STAGED_WITHIN) >= 0) {
            return 1;
        }
        for (int k = 0; k < Math.min(b.length, STAGED_WITHIN); k++) {
            if (b[k] < 0) {
                return indexOf(b, STAGED, 4 * STAGED_WITHIN) >= 0 ? -1 : 0;
            }
        }
        return 0;
    }

    /**
     * The top-level ts of the event whose JSON is the string starting at b[from], read where it
     * stands, without a copy: its quotes are escaped quotes, a backslash in its own strings an
     * escaped backslash. Sets escapedEnd to the index of the string's closing quote, or `unsure`
     * where another escape could shape the event (a newline between its fields, an ASCII
     * character as a u-escape, a control byte, an escape in a key) or it is not plain JSON:
     * decodedTs then decides.
     */
    private long escapedTs(byte[] b, int from, int n) {
        unsure = true;
        long ts = NONE;
        int depth = 0;
        long kinds = 0;
        boolean inString = false;
        boolean stringEscapes = false;
        boolean closed = false;
        boolean keyIsTs = false;
        boolean keyEscapes = false;
        boolean afterKey = false;
        int stringStart = 0;
        for (int j = from; j < n; j++) {
            byte c = b[j];
            if (inString) {
                while (c != '\\' && c != '"' && (c < 0 || c >= 0x20) && ++j < n) {
                    c = b[j];   // the event's string content: most of its bytes
                }
                if (j == n) {
                    return NONE;
                }
            }
            if (c == '"') {
                unsure = false;
                escapedEnd = j;
                return closed ? ts : NONE;
            }
            if (c >= 0 && c < 0x20) {
                return NONE;
            }
            if (c == '\\') {
                if (j + 1 >= n) {
                    return NONE;
                }
                byte e = b[++j];
                if (e == '"') {
                    if (inString) {
                        inString = false;
                        afterKey = depth == 1;
                        keyEscapes = stringEscapes;
                        keyIsTs = j - 1 - stringStart == 2 && b[stringStart] == 't'
                                && b[stringStart + 1] == 's';
                    } else if (depth == 0 || closed) {
                        return NONE;
                    } else {
                        inString = true;
                        stringEscapes = false;
                        afterKey = false;
                        stringStart = j + 1;
                    }
                } else if (inString && e == '\\') {
                    // The event's own escape: skip the character it escapes.
                    stringEscapes = true;
                    if (j + 2 < n && b[j + 1] == '\\' && (b[j + 2] == '"' || b[j + 2] == '\\')) {
                        j += 2;
                    } else if (j + 1 < n && b[j + 1] == '"') {
                        // The line's string ends on the escape: the event is cut short.
                        unsure = false;
                        escapedEnd = j + 1;
                        return NONE;
                    } else if (j + 1 < n && b[j + 1] != '\\') {
                        j += 1;
                    } else {
                        return NONE;
                    }
                } else if (inString && e == 'u' && j + 4 < n && hex(b, j + 1) >= 128) {
                    j += 4;
                } else {
                    return NONE;
                }
                continue;
            }
            if (c == ' ') {
                continue;
            }
            if (closed || c < 0 || !BARE[c]) {
                return NONE;
            }
            if (c == ':' && afterKey) {
                if (keyEscapes) {
                    return NONE;
                }
                if (keyIsTs) {
                    ts = integer(b, skipSpaces(b, j + 1, n), n, false);
                }
            } else if (c == '{' || (c == '[' && depth > 0)) {
                if (depth == MAX_DEPTH) {
                    return NONE;
                }
                kinds = kinds << 1 | (c == '[' ? 1 : 0);
                depth++;
            } else if ((c == '}' || c == ']') && depth > 0) {
                if ((kinds & 1) != (c == ']' ? 1 : 0)) {
                    return NONE;
                }
                kinds >>>= 1;
                closed = --depth == 0;
            } else if (depth == 0) {
                return NONE;
            }
            afterKey = false;
        }
        return NONE;
    }

    /** The top-level ts of the event whose JSON is the escaped string content b[from, to). */
    private long decodedTs(byte[] b, int from, int to) {
        if (event == null || event.length < to - from) {
            event = new byte[Math.max(to - from, 4096)];
        }
        int m = 0;
        for (int j = from; j < to; j++) {
            byte c = b[j];
            if (c == '\\' && j + 1 < to) {
                byte e = b[++j];
                if (e == 'u' && j + 4 < to) {
                    int code = hex(b, j + 1);
                    j += 4;
                    // Only ASCII shapes the JSON; a code above it (or bad hex) is content.
                    c = code >= 0 && code < 128 ? (byte) code : (byte) 0x80;
                } else {
                    c = e == 'n' ? (byte) '\n' : e == 't' ? (byte) '\t' : e == 'r' ? (byte) '\r'
                            : e == 'b' ? (byte) '\b' : e == 'f' ? (byte) '\f' : e;
                }
            }
            event[m++] = c;
        }
        return object(event, 0, m, false);
    }

    /** The index of the quote closing the string opened at b[open], or -1 (none, not JSON). */
    private static int stringEnd(byte[] b, int open, int to) {
        for (int j = open + 1; j < to; j++) {
            if (b[j] == '\\') {
                j++;
            } else if (b[j] == '"') {
                return j;
            } else if (b[j] >= 0 && b[j] < 0x20) {
                return -1;   // a control character: not JSON
            }
        }
        return -1;
    }

    private static boolean hasBackslash(byte[] b, int open, int close) {
        for (int k = open + 1; k < close; k++) {
            if (b[k] == '\\') {
                return true;
            }
        }
        return false;
    }

    /** Whether the string b[open, close] (quotes included) is exactly `name`, no escapes. */
    private static boolean isName(byte[] b, int open, int close, String name) {
        if (close - open - 1 != name.length()) {
            return false;
        }
        for (int k = 0; k < name.length(); k++) {
            if (b[open + 1 + k] != name.charAt(k)) {
                return false;
            }
        }
        return true;
    }

    /**
     * The JSON number at `from` if it is a whole number of at most MAX_DIGITS digits ("1.0" is,
     * as the parse step takes it, while a double holds it exactly; an exponent is not read),
     * else NONE. A sign only if `signed`.
     */
    private static long integer(byte[] b, int from, int to, boolean signed) {
        int j = from;
        boolean negative = signed && j < to && b[j] == '-';
        if (negative) {
            j++;
        }
        int first = j;
        long value = 0;
        while (j < to && b[j] >= '0' && b[j] <= '9') {
            if (j - first == MAX_DIGITS) {
                return NONE;
            }
            value = 10 * value + (b[j] - '0');
            j++;
        }
        if (j == first || (j - first > 1 && b[first] == '0')) {
            return NONE;   // no digits, or a leading zero (not JSON)
        }
        if (j < to && b[j] == '.') {
            int fraction = ++j;
            while (j < to && b[j] == '0') {
                j++;
            }
            if (j == fraction || value > EXACT_DOUBLES) {
                return NONE;
            }
        }
        // What follows a value: a comma or a bracket (or an escape, in a staged event's text).
        int next = skipSpaces(b, j, to);
        if (next < to && b[next] != ',' && b[next] != '}' && b[next] != ']' && b[next] != '\\') {
            return NONE;
        }
        return negative ? -value : value;
    }

    private static int hex(byte[] b, int from) {
        int code = 0;
        for (int k = from; k < from + 4; k++) {
            int d = Character.digit(b[k], 16);
            if (d < 0) {
                return -1;
            }
            code = 16 * code + d;
        }
        return code;
    }

    /** Where `what` starts within b's first `within` bytes, or -1. */
    private static int indexOf(byte[] b, byte[] what, int within) {
        for (int at = 0; at + what.length <= Math.min(b.length, within); at++) {
            int k = 0;
            while (k < what.length && b[at + k] == what[k]) {
                k++;
            }
            if (k == what.length) {
                return at;
            }
        }
        return -1;
    }

    private static boolean isSpace(byte c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
    }

    /** The position of the first byte from `from` on that is not JSON white space. */
    private static int skipSpaces(byte[] b, int from, int to) {
        int j = from;
        while (j < to && isSpace(b[j])) {
            j++;
        }
        return j;
    }
}
