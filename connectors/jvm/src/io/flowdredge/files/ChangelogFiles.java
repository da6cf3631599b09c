package io.flowdredge.files;

import java.io.IOException;
import java.net.URI;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.FileSource;
import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.connector.file.src.impl.StreamFormatAdapter;
import org.apache.flink.connector.file.src.reader.BulkFormat;
import org.apache.flink.connector.file.src.reader.StreamFormat;
import org.apache.flink.core.fs.Path;

/**
 * Changelog files read by the job itself (a file job's changelog, a stream's snapshot): a file
 * or a folder of them, each read whole, one after another in the order of their paths
 * (PathOrder: a changelog's order decides its owners), each as LineChunks naming its own path (with `label` before it) and bounded by its
 * modification time, a line longer than maxLineChars cut (LineChunks).
 */
public final class ChangelogFiles<T> implements BulkFormat<T, FileSourceSplit> {
    private static final long serialVersionUID = 1L;

    private final int maxLines;
    private final int maxChars;
    private final int maxLineChars;
    private final String label;
    private final boolean bytes;

    private ChangelogFiles(int maxLines, int maxChars, int maxLineChars, String label,
            boolean bytes) {
        this.maxLines = maxLines;
        this.maxChars = maxChars;
        this.maxLineChars = maxLineChars;
        this.label = label;
        this.bytes = bytes;
    }

    /** The chunks as str, as the streaming job's snapshot sends them. */
    public static FileSource<String> text(String path, int maxLines, int maxChars,
            int maxLineChars, String label) {
        return source(path,
                new ChangelogFiles<String>(maxLines, maxChars, maxLineChars, label, false));
    }

    /** The chunks as UTF-8 bytes, as a file job's changelog parse takes them. */
    public static FileSource<byte[]> bytes(String path, int maxLines, int maxChars,
            int maxLineChars, String label) {
        return source(path,
                new ChangelogFiles<byte[]>(maxLines, maxChars, maxLineChars, label, true));
    }

    private static <T> FileSource<T> source(String path, ChangelogFiles<T> format) {
        return FileSource.forBulkFileFormat(format, new Path(path))
                .setFileEnumerator(FileSource.DEFAULT_NON_SPLITTABLE_FILE_ENUMERATOR)
                .setSplitAssigner(PathOrder.provider())
                .build();
    }

    @SuppressWarnings("unchecked")
    private StreamFormatAdapter<T> adapter(FileSourceSplit split) {
        long modified = split.fileModificationTime();
        // A local file by its path, as the replay names it; others by their URL (s3://...).
        URI uri = split.path().toUri();
        String name = "file".equals(uri.getScheme()) ? uri.getPath() : split.path().toString();
        LineChunks chunks = new LineChunks(maxLines, maxChars, maxLineChars, label + name,
                modified > 0 ? modified / 1000 : StagedChangelog.NO_TIME);
        return new StreamFormatAdapter<>(
                (StreamFormat<T>) (bytes ? chunks.asBytes() : chunks));
    }

    @Override
    public Reader<T> createReader(Configuration config, FileSourceSplit split)
            throws IOException {
        return adapter(split).createReader(config, split);
    }

    @Override
    public Reader<T> restoreReader(Configuration config, FileSourceSplit split)
            throws IOException {
        return adapter(split).restoreReader(config, split);
    }

    @Override
    public boolean isSplittable() {
        return false;
    }

    @Override
    @SuppressWarnings("unchecked")
    public TypeInformation<T> getProducedType() {
        LineChunks any = new LineChunks(1, 1, 1, "", StagedChangelog.NO_TIME);
        return (TypeInformation<T>) (bytes ? any.asBytes().getProducedType()
                : any.getProducedType());
    }
}
