package io.flowdredge.files;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.reader.SimpleStreamFormat;
import org.apache.flink.core.fs.FSDataInputStream;

/**
 * A changelog file (a snapshot) as staged chunks (StagedChangelog) of up to maxLines lines (or
 * about maxChars characters), each numbered from its first line's place in the file: the Python
 * step that parses them is called once per chunk, not once per line (a million-line changelog
 * snapshot line by line costs minutes of per-record calls), and a dead letter names its line.
 * Files named .gz are decompressed by the FileSource. A restore skips whole chunks already
 * emitted, reading them again, so the numbers hold.
 */
public class LineChunks extends SimpleStreamFormat<String> {
    private static final long serialVersionUID = 1L;

    private final int maxLines;
    private final int maxChars;

    public LineChunks(int maxLines, int maxChars) {
        this.maxLines = maxLines;
        this.maxChars = maxChars;
    }

    @Override
    public Reader<String> createReader(Configuration config, FSDataInputStream stream) {
        BufferedReader in = new BufferedReader(
                new InputStreamReader(stream, StandardCharsets.UTF_8));
        return new Reader<String>() {
            private long nextLine = 1;

            @Override
            public String read() throws IOException {
                List<String> lines = new ArrayList<>();
                int chars = 0;
                String line;
                // chars: the lines joined by newlines, as chunks were cut before they were staged
                // (a restore skips as many chunks as were emitted).
                while (lines.size() < maxLines && chars < maxChars
                        && (line = in.readLine()) != null) {
                    chars += (lines.isEmpty() ? 0 : 1) + line.length();
                    lines.add(line);
                }
                if (lines.isEmpty()) {
                    return null;
                }
                StagedChangelog chunk = new StagedChangelog(null, nextLine, chars);
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

    @Override
    public TypeInformation<String> getProducedType() {
        return Types.STRING;
    }
}
