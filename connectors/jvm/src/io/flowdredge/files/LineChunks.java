package io.flowdredge.files;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;

/**
 * One changelog file as staged chunks (StagedChangelog) of up to maxLines lines (or about
 * maxChars characters), each named by the file and numbered from its first line's place in it,
 * bounded by the file's modification time: the Python step that parses them is called once per
 * chunk, not once per line (a million-line changelog line by line costs minutes of per-record
 * calls), and a dead letter names its file and line. A file that is already staged (its first
 * line a chunk of job.replay or `feed`) is passed on a line at a time, each line a chunk of its
 * own, unless it is longer than any chunk of maxLines lines can be (maxStagedChars): then
 * cut as a line too long, a chunk of its own naming its file and line. Lines are cut as
 * job.replay cuts a changelog file's; a chunk of blank lines only is not sent. Bytes that are not UTF-8 are StagedChangelog.NOT_UTF8, whose lines the parse
 * dead-letters. Where the reading stands is the count of the file's lines read, so a restore
 * goes on from the next line whatever the chunks' size (ChangelogFiles).
 */
public final class LineChunks {
    /** How job.replay's staged lines start (its JSON has no spaces). */
    private static final String STAGED_FILE = "{\"staged\":\"changelog\"";
    private static final String BYTE_ORDER_MARK = "\ufeff";

    private final int maxLines;
    private final int maxChars;
    private final int maxLineChars;
    private final int maxStagedChars;
    private final String source;
    private final long notAfter;

    /**
     * `maxLineChars`: a line of more characters (code points, as Python counts them) is cut to
     * one more (the parse step dead-letters it as too long, as it would the whole line), so one
     * line of any length is never held; `maxStagedChars`: a staged file's line of more
     * characters (connectors.staged.staged_changelog_max: one of 200 MB ran the JVM out of heap)
     * is sent cut as such a line; `source`: the file's name in dead letters; `notAfter`: epoch
     * seconds, or StagedChangelog.NO_TIME.
     */
    public LineChunks(int maxLines, int maxChars, int maxLineChars, int maxStagedChars,
            String source, long notAfter) {
        this.maxLines = maxLines;
        this.maxChars = maxChars;
        this.maxLineChars = maxLineChars;
        this.maxStagedChars = maxStagedChars;
        this.source = source;
        this.notAfter = notAfter;
    }

    /** The chunks of the file `in` holds (decompressed), from line `skipLines` + 1 on. */
    public Chunks read(InputStream in, long skipLines) throws IOException {
        return new Chunks(in, skipLines);
    }

    /** A file's chunks, one at a time. */
    public final class Chunks implements Closeable {
        private final Lines lines;
        private final boolean staged;
        private long linesRead;

        private Chunks(InputStream in, long skipLines) throws IOException {
            lines = new Lines(new InputStreamReader(in, StagedChangelog.utf8()));
            // A byte-order mark (a file saved by an editor) is not part of the first line.
            lines.skip(BYTE_ORDER_MARK);
            staged = lines.startsWith(STAGED_FILE);
            while (linesRead < skipLines && lines.next(0) != null) {
                linesRead++;
            }
        }

        /** The next chunk; null at the end of the file. */
        public String next() throws IOException {
            if (staged) {
                String line = lines.next(maxStagedChars + 1L, maxStagedChars + 1L);
                if (line == null) {
                    return null;
                }
                linesRead++;
                if (line.length() <= maxStagedChars) {
                    return line;
                }
                int cut = line.offsetByCodePoints(0,
                        Math.min(maxLineChars + 1, line.codePointCount(0, line.length())));
                return new StagedChangelog(source, linesRead, notAfter, cut)
                        .cut(maxStagedChars).add(line.substring(0, cut)).toJson();
            }
            while (true) {
                long first = linesRead + 1;
                List<String> chunk = new ArrayList<>();
                boolean blank = true;
                int chars = 0;
                String line;
                // chars: the lines joined by newlines.
                while (chunk.size() < maxLines && chars < maxChars
                        && (line = lines.next(maxLineChars + 1L)) != null) {
                    chars += (chunk.isEmpty() ? 0 : 1) + line.length();
                    chunk.add(line);
                    linesRead++;
                    blank = blank && Lines.isBlank(line);
                }
                if (chunk.isEmpty()) {
                    return null;
                }
                if (!blank) {
                    StagedChangelog staged = new StagedChangelog(source, first, notAfter, chars);
                    for (String each : chunk) {
                        staged.add(each);
                    }
                    return staged.toJson();
                }
            }
        }

        /** The file's lines read so far, the chunks' and those skipped. */
        public long linesRead() {
            return linesRead;
        }

        @Override
        public void close() throws IOException {
            lines.close();
        }
    }

    /**
     * A text's lines as job.replay cuts a changelog file's: each ends at "\n", less a "\r"
     * before it (a lone "\r" ends nothing: JSON may hold it between values).
     */
    static final class Lines {
        private final java.io.Reader in;
        private final char[] buffer = new char[1 << 16];
        private int position;
        private int limit;

        Lines(java.io.Reader in) {
            this.in = in;
        }

        /** False at the end of the text. */
        private boolean fill() throws IOException {
            position = 0;
            limit = Math.max(in.read(buffer), 0);
            return limit > 0;
        }

        /** Whether the text from here starts with `prefix` (read, not consumed); only at the
         * start of the text, while the buffer holds it. */
        boolean startsWith(String prefix) throws IOException {
            while (limit < position + prefix.length()) {
                int n = in.read(buffer, limit, buffer.length - limit);
                if (n < 0) {
                    break;
                }
                limit += n;
            }
            return limit - position >= prefix.length()
                    && new String(buffer, position, prefix.length()).equals(prefix);
        }

        /** Passes over `prefix` if the text from here starts with it. */
        void skip(String prefix) throws IOException {
            if (startsWith(prefix)) {
                position += prefix.length();
            }
        }

        /** The next line, cut to `keep` code points; null at the end of the text. */
        String next(long keep) throws IOException {
            // Up to two characters a code point, and one more: a "\r" before the end is known.
            return next(keep, Math.min(Integer.MAX_VALUE, 2 * keep + 1));
        }

        /** The next line, cut to `keep` code points and at most `room` characters held; null
         * at the end of the text. */
        String next(long keep, long room) throws IOException {
            if (position == limit && !fill()) {
                return null;
            }
            StringBuilder line = new StringBuilder();
            long length = 0;
            char beyond = 0;   // a character past the cut that is not white space
            while (true) {
                int end = position;
                while (end < limit && buffer[end] != '\n') {
                    end++;
                }
                int kept = (int) Math.max(0, Math.min(end - position, room - line.length()));
                line.append(buffer, position, kept);
                for (int i = position + kept; beyond == 0 && i < end; i++) {
                    beyond = visible(buffer[i]);
                }
                length += end - position;
                position = end;
                if (end < limit) {
                    position++;
                    break;
                }
                if (!fill()) {
                    break;
                }
            }
            if (length == line.length() && line.length() > 0
                    && line.charAt(line.length() - 1) == '\r') {
                line.setLength(line.length() - 1);
            }
            if (line.codePointCount(0, line.length()) > keep) {
                int cut = line.offsetByCodePoints(0, (int) keep);
                for (int i = cut; beyond == 0 && i < line.length(); i++) {
                    beyond = visible(line.charAt(i));
                }
                line.setLength(cut);
                // White space, then text past the cut: still too long, not a blank line.
                if (keep > 0 && beyond != 0 && isBlank(line)) {
                    line.setCharAt(line.length() - 1, beyond);
                }
            }
            return line.toString();
        }

        /** 0 for white space; a character that stands alone for others. */
        private static char visible(char c) {
            return isSpace(c) ? 0 : Character.isSurrogate(c) ? '\ufffd' : c;
        }

        /** White space as Python's str.isspace() knows it, by which the parse and job.replay
         * tell a blank line: Java's Character.isWhitespace and String.isBlank leave out U+0085
         * and the no-break spaces, and a line of them then text past the cut went on as a blank
         * line, nothing counted, where staging dead-letters it as too long. */
        static boolean isSpace(char c) {
            return Character.isWhitespace(c)
                    || c == '\u0085' || c == '\u00a0' || c == '\u2007' || c == '\u202f';
        }

        static boolean isBlank(CharSequence text) {
            for (int i = 0; i < text.length(); i++) {
                if (!isSpace(text.charAt(i))) {
                    return false;
                }
            }
            return true;
        }

        void close() throws IOException {
            in.close();
        }
    }
}
