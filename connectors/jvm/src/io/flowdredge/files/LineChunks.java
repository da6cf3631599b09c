package io.flowdredge.files;

import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.reader.SimpleStreamFormat;
import org.apache.flink.core.fs.FSDataInputStream;

/**
 * One changelog file as staged chunks (StagedChangelog) of up to maxLines lines (or about
 * maxChars characters), each named by the file and numbered from its first line's place in it,
 * bounded by the file's modification time: the Python step that parses them is called once per
 * chunk, not once per line (a million-line changelog line by line costs minutes of per-record
 * calls), and a dead letter names its file and line. A file that is already staged (its first
 * line a chunk of job.replay or `feed`) is passed on a line at a time, each line a chunk of its
 * own. Files named .gz are decompressed by the FileSource. A restore skips whole chunks already
 * emitted, reading them again, so the numbers hold. ChangelogFiles makes one per file.
 */
public class LineChunks extends SimpleStreamFormat<String> {
    private static final long serialVersionUID = 1L;

    /** How job.replay's staged lines start (its JSON has no spaces). */
    private static final String STAGED_FILE = "{\"staged\":\"changelog\"";
    private static final String BYTE_ORDER_MARK = "\ufeff";

    private final int maxLines;
    private final int maxChars;
    private final int maxLineChars;
    private final String source;
    private final long notAfter;

    /**
     * `maxLineChars`: a longer line is cut to one character more (the parse step dead-letters
     * it as too long, as it would the whole line): one line of any length is never held;
     * `source`: the file's name in dead letters; `notAfter`: epoch seconds, or
     * StagedChangelog.NO_TIME.
     */
    public LineChunks(int maxLines, int maxChars, int maxLineChars, String source,
            long notAfter) {
        this.maxLines = maxLines;
        this.maxChars = maxChars;
        this.maxLineChars = maxLineChars;
        this.source = source;
        this.notAfter = notAfter;
    }

    @Override
    public Reader<String> createReader(Configuration config, FSDataInputStream stream)
            throws IOException {
        Lines in = new Lines(new InputStreamReader(stream, StandardCharsets.UTF_8));
        // A byte-order mark (a file saved by an editor) is not part of the first line.
        in.skip(BYTE_ORDER_MARK);
        boolean staged = in.startsWith(STAGED_FILE);
        return new Reader<String>() {
            private long nextLine = 1;

            @Override
            public String read() throws IOException {
                if (staged) {
                    return in.next(Integer.MAX_VALUE);
                }
                List<String> lines = new ArrayList<>();
                int chars = 0;
                String line;
                // chars: the lines joined by newlines, as chunks were cut before they were staged
                // (a restore skips as many chunks as were emitted).
                while (lines.size() < maxLines && chars < maxChars
                        && (line = in.next(maxLineChars + 1)) != null) {
                    chars += (lines.isEmpty() ? 0 : 1) + line.length();
                    lines.add(line);
                }
                if (lines.isEmpty()) {
                    return null;
                }
                StagedChangelog chunk = new StagedChangelog(source, nextLine, notAfter, chars);
                for (String each : lines) {
                    chunk.add(each);
                }
                nextLine += lines.size();
                return chunk.toJson();
            }

            @Override
            public void close() throws IOException {
                in.close();
            }
        };
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

        /** The next line, cut to `keep` characters; null at the end of the text. */
        String next(int keep) throws IOException {
            if (position == limit && !fill()) {
                return null;
            }
            StringBuilder line = new StringBuilder();
            long length = 0;
            while (true) {
                int end = position;
                while (end < limit && buffer[end] != '\n') {
                    end++;
                }
                // One more than kept, so that a "\r" before the end is known as such.
                int room = (int) Math.max(0, Math.min(end - position, keep + 1L - line.length()));
                line.append(buffer, position, room);
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
            if (line.length() > keep) {
                line.setLength(keep);
            }
            return line.toString();
        }

        void close() throws IOException {
            in.close();
        }
    }

    @Override
    public TypeInformation<String> getProducedType() {
        return Types.STRING;
    }

    /** The same chunks as their UTF-8 bytes, as the file job's changelog parse takes them. */
    public SimpleStreamFormat<byte[]> asBytes() {
        LineChunks chunks = this;
        return new SimpleStreamFormat<byte[]>() {
            private static final long serialVersionUID = 1L;

            @Override
            public Reader<byte[]> createReader(Configuration config, FSDataInputStream stream)
                    throws IOException {
                Reader<String> text = chunks.createReader(config, stream);
                return new Reader<byte[]>() {
                    @Override
                    public byte[] read() throws IOException {
                        String chunk = text.read();
                        return chunk == null ? null : chunk.getBytes(StandardCharsets.UTF_8);
                    }

                    @Override
                    public void close() throws IOException {
                        text.close();
                    }
                };
            }

            @Override
            public TypeInformation<byte[]> getProducedType() {
                return PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
            }
        };
    }
}
