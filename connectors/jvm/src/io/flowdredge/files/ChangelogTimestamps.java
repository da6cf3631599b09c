package io.flowdredge.files;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;

/**
 * Event time of a changelog line at its source, for the flow-file gate (FileGate): the largest
 * "ts" it holds, whether the line is one event or a staged chunk of them (JSON inside a JSON
 * string, so the quotes are escaped). A line without one moves no time forward. Only the gate
 * reads this time; the job's own event time comes from the parse step.
 */
public class ChangelogTimestamps implements SerializableTimestampAssigner<String> {
    private static final long serialVersionUID = 1L;
    private static final Pattern TS = Pattern.compile("\"ts\\\\?\"\\s*:\\s*(\\d{1,18})");

    @Override
    public long extractTimestamp(String line, long recordTimestamp) {
        long latest = Long.MIN_VALUE;
        Matcher m = TS.matcher(line);
        while (m.find()) {
            latest = Math.max(latest, Long.parseLong(m.group(1)));
        }
        return latest == Long.MIN_VALUE ? recordTimestamp : latest;
    }
}
