package io.flowdredge.files;

import java.io.IOException;
import java.util.Arrays;

import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.reader.SimpleStreamFormat;
import org.apache.flink.core.fs.FSDataInputStream;

/**
 * A text file's lines as their bytes, ended where BufferedReader.readLine ends them ("\n",
 * "\r\n" or "\r", none of them kept). A staged flow record is a line of about half a megabyte:
 * as a String it was decoded, serialized and encoded again character by character on its way to
 * the Python parse step, about a third of the local JVM's work (docs/performance.md, run 20);
 * as bytes each of those steps is a copy. The parse step decodes them (UTF-8). A line of more
 * than maxLineBytes is cut to one byte more, the rest read through, never held (one of 130 MB
 * ran the JVM out of heap): the parse step dead-letters it as too long.
 */
public class LineBytes extends SimpleStreamFormat<byte[]> {
    private static final long serialVersionUID = 1L;

    private final int maxLineBytes;

    /** `maxLineBytes`: below Integer.MAX_VALUE, as the line is an array of one byte more. */
    public LineBytes(int maxLineBytes) {
        this.maxLineBytes = maxLineBytes;
    }

    @Override
    public Reader<byte[]> createReader(Configuration config, FSDataInputStream stream) {
        return new Reader<byte[]>() {
            private final byte[] buffer = new byte[1 << 16];
            private int position;
            private int limit;
            private boolean afterCarriageReturn;   // a '\n' right after it ends nothing
            private byte[] line = new byte[1 << 16];   // the line so far, reused
            private int size;

            /** False at the end of the file. */
            private boolean fill() throws IOException {
                position = 0;
                limit = Math.max(stream.read(buffer), 0);
                return limit > 0;
            }

            @Override
            public byte[] read() throws IOException {
                if (position == limit && !fill()) {
                    return null;
                }
                if (afterCarriageReturn) {
                    afterCarriageReturn = false;
                    if (buffer[position] == '\n') {
                        position++;
                        if (position == limit && !fill()) {
                            return null;
                        }
                    }
                }
                size = 0;
                while (true) {
                    int end = position;
                    while (end < limit && buffer[end] != '\n' && buffer[end] != '\r') {
                        end++;
                    }
                    append(end - position);
                    if (end < limit) {
                        afterCarriageReturn = buffer[end] == '\r';
                        position = end + 1;
                        return Arrays.copyOf(line, size);
                    }
                    position = end;
                    if (!fill()) {
                        return Arrays.copyOf(line, size);
                    }
                }
            }

            /** Adds the buffer's next `length` bytes to the line, up to one past maxLineBytes. */
            private void append(int length) {
                int kept = Math.min(length, maxLineBytes + 1 - size);
                if (size + kept > line.length) {
                    line = Arrays.copyOf(line, (int) Math.min(maxLineBytes + 1L,
                            Math.max(2L * line.length, size + kept)));
                }
                System.arraycopy(buffer, position, line, size, kept);
                size += kept;
            }

            @Override
            public void close() throws IOException {
                stream.close();
            }
        };
    }

    @Override
    public TypeInformation<byte[]> getProducedType() {
        return PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
    }
}
