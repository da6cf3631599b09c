package io.flowdredge.files;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

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

    /**
     * What the readers put for bytes that are not UTF-8, where a decoder puts U+FFFD: a lone
     * surrogate, which no UTF-8 text decodes to, so the changelog parse dead-letters the line
     * (job.ownership.JVM_NOT_UTF8). U+FFFD, the decoders' default, is text: an owner's name
     * changed without a word.
     */
    public static final String NOT_UTF8 = "\udffd";

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private final StringBuilder json;
    private boolean empty = true;
    private long stagedMax = -1;

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

    /**
     * The chunk of one staged file's line cut past `longest` characters, the longest its reader
     * takes whole: its dead letter names that limit (job.ownership), not
     * metadata.max_line_bytes, which the line is cut to.
     */
    public StagedChangelog cut(int longest) {
        stagedMax = longest;
        return this;
    }

    public String toJson() {
        json.append(']');
        if (stagedMax >= 0) {
            json.append(", \"staged_max\": ").append(stagedMax);
        }
        return json.append('}').toString();
    }

    /** UTF-8 text, NOT_UTF8 for bytes that are not UTF-8. */
    public static CharsetDecoder utf8() {
        return StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPLACE)
                .onUnmappableCharacter(CodingErrorAction.REPLACE)
                .replaceWith(NOT_UTF8);
    }

    /** `bytes` as utf8() decodes them. */
    public static String decode(byte[] bytes) {
        try {
            return utf8().decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {   // replaced, never reported
            throw new IllegalStateException(e);
        }
    }

    private void quote(String text) {
        json.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '"' || c == '\\') {
                json.append('\\').append(c);
            } else if (c < 0x20) {
                json.append("\\u00").append(HEX[c >> 4]).append(HEX[c & 15]);
            } else if (Character.isHighSurrogate(c) && i + 1 < text.length()
                    && Character.isLowSurrogate(text.charAt(i + 1))) {
                json.append(c).append(text.charAt(++i));
            } else if (Character.isSurrogate(c)) {
                // A lone surrogate (NOT_UTF8) escaped: the UTF-8 that carries the chunk on has
                // none (Java writes "?" for it).
                json.append("\\u").append(HEX[c >> 12]).append(HEX[(c >> 8) & 15])
                        .append(HEX[(c >> 4) & 15]).append(HEX[c & 15]);
            } else {
                json.append(c);
            }
        }
        json.append('"');
    }
}
