package io.flowdredge.files;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;

import org.apache.flink.api.common.io.compression.InflaterInputStreamFactory;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.FileSource;
import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.connector.file.src.compression.StandardDeCompressors;
import org.apache.flink.connector.file.src.reader.BulkFormat;
import org.apache.flink.connector.file.src.util.CheckpointedPosition;
import org.apache.flink.connector.file.src.util.SingletonResultIterator;
import org.apache.flink.core.fs.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Changelog files read by the job itself (a file job's changelog, a stream's snapshot): a file
 * or a folder of them, each read whole, one after another in the order of their paths
 * (PathOrder: a changelog's order decides its owners), each as LineChunks naming its own path
 * (after `label`) and bounded by its modification time. Where a file's reading stands is the
 * count of its lines read, not of chunks: a restore goes on from the next line whatever
 * metadata.chunk_lines and max_line_bytes are then.
 */
public final class ChangelogFiles<T> implements BulkFormat<T, FileSourceSplit> {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(ChangelogFiles.class);

    private final int maxLines;
    private final int maxChars;
    private final int maxLineChars;
    private final int maxStagedChars;
    private final String label;
    private final boolean bytes;

    /** Chunks as UTF-8 bytes if `bytes`, else as str; the limits are LineChunks'. */
    public ChangelogFiles(int maxLines, int maxChars, int maxLineChars, int maxStagedChars,
            String label, boolean bytes) {
        this.maxLines = maxLines;
        this.maxChars = maxChars;
        this.maxLineChars = maxLineChars;
        this.maxStagedChars = maxStagedChars;
        this.label = label;
        this.bytes = bytes;
    }

    /** The chunks as str, as the streaming job's snapshot sends them. */
    public static FileSource<String> text(String path, int maxLines, int maxChars,
            int maxLineChars, int maxStagedChars, String label) {
        return source(path, new ChangelogFiles<String>(maxLines, maxChars, maxLineChars,
                maxStagedChars, label, false));
    }

    /** The chunks as UTF-8 bytes, as a file job's changelog parse takes them. */
    public static FileSource<byte[]> bytes(String path, int maxLines, int maxChars,
            int maxLineChars, int maxStagedChars, String label) {
        return source(path, new ChangelogFiles<byte[]>(maxLines, maxChars, maxLineChars,
                maxStagedChars, label, true));
    }

    private static <T> FileSource<T> source(String path, ChangelogFiles<T> format) {
        return FileSource.forBulkFileFormat(format, new Path(path))
                .setFileEnumerator(FileSource.DEFAULT_NON_SPLITTABLE_FILE_ENUMERATOR)
                .setSplitAssigner(PathOrder.provider())
                .build();
    }

    @Override
    public Reader<T> createReader(Configuration config, FileSourceSplit split)
            throws IOException {
        return read(split, 0);
    }

    @Override
    public Reader<T> restoreReader(Configuration config, FileSourceSplit split)
            throws IOException {
        CheckpointedPosition position = split.getReaderPosition().get();
        if (position.getOffset() != CheckpointedPosition.NO_OFFSET) {
            throw new IllegalStateException(split.path() + ": a position at a byte offset ("
                    + position + "), which no changelog reader of this job writes");
        }
        return read(split, position.getRecordsAfterOffset());
    }

    /** The split's file from line `skipLines` + 1 on, each chunk's position the lines read. */
    private Reader<T> read(FileSourceSplit split, long skipLines) throws IOException {
        Path path = split.path();
        InflaterInputStreamFactory<?> inflater =
                StandardDeCompressors.getDecompressorForFileName(path.getPath());
        // A FIFO (size 0: an empty file has no events either) is written after its time.
        long modified = split.fileSize() > 0 ? split.fileModificationTime() : 0;
        // A local file by its path, as the replay names it; others by their URL (s3://...).
        URI uri = path.toUri();
        String name = "file".equals(uri.getScheme()) ? uri.getPath() : path.toString();
        InputStream in = path.getFileSystem().open(path);
        LineChunks.Chunks chunks;
        try {
            chunks = new LineChunks(maxLines, maxChars, maxLineChars, maxStagedChars,
                    label + name, modified > 0 ? modified / 1000 : StagedChangelog.NO_TIME)
                    .read(inflater == null ? in : inflater.create(in), skipLines);
        } catch (IOException | RuntimeException e) {
            // Flink closes a reader it got, not one that failed to open (a bad gzip header).
            in.close();
            throw e;
        }
        if (chunks.linesRead() < skipLines) {
            LOG.warn("{}{}: restored after line {}, but the file has {} lines now (shortened or "
                    + "replaced since the checkpoint): nothing more of it is read", label, name,
                    skipLines, chunks.linesRead());
        }
        return new Reader<T>() {
            @Override
            @SuppressWarnings("unchecked")
            public RecordIterator<T> readBatch() throws IOException {
                String chunk = chunks.next();
                if (chunk == null) {
                    return null;
                }
                SingletonResultIterator<T> one = new SingletonResultIterator<>();
                one.set((T) (bytes ? chunk.getBytes(StandardCharsets.UTF_8) : chunk),
                        CheckpointedPosition.NO_OFFSET, chunks.linesRead());
                return one;
            }

            @Override
            public void close() throws IOException {
                chunks.close();
            }
        };
    }

    @Override
    public boolean isSplittable() {
        return false;
    }

    @Override
    @SuppressWarnings("unchecked")
    public TypeInformation<T> getProducedType() {
        return (TypeInformation<T>) (bytes ? PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO
                : Types.STRING);
    }
}
