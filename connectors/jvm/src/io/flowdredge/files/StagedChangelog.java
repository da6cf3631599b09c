package io.flowdredge.files;

/**
 * Changelog lines as one staged chunk, the JSON document job.ownership's changelog_lines reads
 * (job.replay stages a changelog file the same way): {"staged": "changelog", "source": ...,
 * "not_after": ..., "first_line": N, "lines": [...]}, source and not_after optional. A dead
 * letter of its parse names the source and the line's number, the chunk's first line being
 * number N.
 */
public final class StagedChangelog {
    /** No time known. */
    public static final long NO_TIME = Long.MIN_VALUE;

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private final StringBuilder json;
    private boolean empty = true;

    /** `source` null: the parse step's own name for the input. */
    public StagedChangelog(String source, long firstLine, int expectedChars) {
        this(source, firstLine, NO_TIME, expectedChars);
    }

    /** `notAfter`: epoch seconds no event of the lines can be after (a file's modification
     * time), or NO_TIME. */
    public StagedChangelog(String source, long firstLine, long notAfter, int expectedChars) {
        // Room for the lines and their escapes: a publisher's line escapes about a fifth of
        // its characters (its quotes), so the builder rarely grows.
        json = new StringBuilder((int) Math.min(Integer.MAX_VALUE - 8,
                expectedChars + expectedChars / 4L + 180));
        json.append("{\"staged\": \"changelog\", ");
        if (source != null) {
            json.append("\"source\": ");
            quote(source);
            json.append(", ");
        }
        if (notAfter != NO_TIME) {
            json.append("\"not_after\": ").append(notAfter).append(", ");
        }
        json.append("\"first_line\": ").append(firstLine).append(", \"lines\": [");
    }

    public StagedChangelog add(String line) {
        if (!empty) {
            json.append(", ");
        }
        empty = false;
        quote(line);
        return this;
    }

    public String toJson() {
        return json.append("]}").toString();
    }

    private void quote(String text) {
        json.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '"' || c == '\\') {
                json.append('\\').append(c);
            } else if (c < 0x20) {
                json.append("\\u00").append(HEX[c >> 4]).append(HEX[c & 15]);
            } else {
                json.append(c);
            }
        }
        json.append('"');
    }
}
