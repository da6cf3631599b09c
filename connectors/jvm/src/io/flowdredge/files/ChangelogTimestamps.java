package io.flowdredge.files;

import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;

/**
 * Event time of a changelog line at its source, for the flow-file gate (FileGate): the largest
 * "ts" it holds, whether the line is one event or a staged chunk of them (JSON inside a JSON
 * string, so the quotes are escaped). A line without one moves no time forward. Only the gate
 * reads this time; the job's own event time comes from the parse step. The line comes as its
 * bytes (LineBytes), read as Latin-1: every byte one character, and the pattern's ASCII never
 * matches inside a multi-byte UTF-8 character (whose bytes are all above 127).
 */
public class ChangelogTimestamps implements SerializableTimestampAssigner<byte[]> {
    private static final long serialVersionUID = 1L;
    private static final Pattern TS = Pattern.compile("\"ts\\\\?\"\\s*:\\s*(\\d{1,18})");

    @Override
    public long extractTimestamp(byte[] line, long recordTimestamp) {
        long latest = Long.MIN_VALUE;
        Matcher m = TS.matcher(new String(line, StandardCharsets.ISO_8859_1));
        while (m.find()) {
            latest = Math.max(latest, Long.parseLong(m.group(1)));
        }
        return latest == Long.MIN_VALUE ? recordTimestamp : latest;
    }
}
