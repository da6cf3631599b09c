package io.flowdredge.files;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;

/**
 * Event time of a changelog line at its source, for the flow-file gate (FileGate): the largest
 * "ts" it holds, whether the line is one event or a staged chunk of them (JSON inside a JSON
 * string, so the quotes are escaped), and no later than a staged chunk's own "not_after" (epoch
 * seconds, its file's modification time): an event past it, which the job refuses, must not open
 * the gate to every file. A line without a ts moves no time forward. Only the gate reads this
 * time; the job's own event time comes from the parse step.
 *
 * <p>The line comes as its bytes (LineBytes) and is scanned for what the pattern
 * {@code "ts\\?"\s*:\s*(\d{1,18})} finds, byte by byte: a regular expression over a large
 * estate's snapshot (200 MB) was most of the changelog source's time. ASCII never matches inside
 * a multi-byte UTF-8 character, whose bytes are all above 127.
 */
public class ChangelogTimestamps implements SerializableTimestampAssigner<byte[]> {
    private static final long serialVersionUID = 1L;
    private static final int MAX_DIGITS = 18;   // never past a long
    /** The staged record's own key, its quotes not escaped: a line's field of that name is. */
    private static final byte[] NOT_AFTER = "\"not_after\"".getBytes();

    @Override
    public long extractTimestamp(byte[] line, long recordTimestamp) {
        long latest = Long.MIN_VALUE;
        long notAfter = Long.MAX_VALUE;
        int n = line.length;
        for (int i = 0; i + 2 < n; i++) {
            if (line[i] != '"') {
                continue;
            }
            if (isKey(line, i, NOT_AFTER)) {
                long seconds = number(line, skipSpaces(line, skipSpaces(line, i + NOT_AFTER.length)
                        + 1));
                if (seconds >= 0 && seconds < Long.MAX_VALUE / 1000) {
                    notAfter = seconds * 1000;
                }
                continue;
            }
            if (line[i + 1] != 't' || line[i + 2] != 's') {
                continue;
            }
            int j = i + 3;
            if (j < n && line[j] == '\\') {
                j++;
            }
            if (j >= n || line[j] != '"') {
                continue;
            }
            j = skipSpaces(line, j + 1);
            if (j >= n || line[j] != ':') {
                continue;
            }
            j = skipSpaces(line, j + 1);
            int first = j;
            long value = 0;
            while (j < n && j - first < MAX_DIGITS && line[j] >= '0' && line[j] <= '9') {
                value = 10 * value + (line[j] - '0');
                j++;
            }
            if (j > first) {
                latest = Math.max(latest, value);
                i = j - 1;   // the next match starts after this one, as Matcher.find's
            }
        }
        return latest == Long.MIN_VALUE ? recordTimestamp : Math.min(latest, notAfter);
    }

    private static boolean isKey(byte[] line, int at, byte[] key) {
        if (at + key.length >= line.length) {
            return false;
        }
        for (int k = 0; k < key.length; k++) {
            if (line[at + k] != key[k]) {
                return false;
            }
        }
        int colon = skipSpaces(line, at + key.length);
        return colon < line.length && line[colon] == ':';
    }

    /** The digits at `from` as a number, or -1 if none (at most MAX_DIGITS read). */
    private static long number(byte[] line, int from) {
        long value = 0;
        int j = from;
        while (j < line.length && j - from < MAX_DIGITS && line[j] >= '0' && line[j] <= '9') {
            value = 10 * value + (line[j] - '0');
            j++;
        }
        return j > from ? value : -1;
    }

    /** The position of the first byte from `from` on that is not white space (regex \s). */
    private static int skipSpaces(byte[] line, int from) {
        int j = from;
        while (j < line.length && (line[j] == ' ' || line[j] == '\t' || line[j] == '\n'
                || line[j] == 0x0B || line[j] == '\f' || line[j] == '\r')) {
            j++;
        }
        return j;
    }
}
