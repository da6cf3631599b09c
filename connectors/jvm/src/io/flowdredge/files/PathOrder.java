package io.flowdredge.files;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.Optional;
import java.util.TreeSet;

import org.apache.flink.connector.file.src.FileSourceSplit;
import org.apache.flink.connector.file.src.assigners.FileSplitAssigner;

/**
 * A file source's splits handed out by path, then offset: with one reader, its files are read in
 * that order. Flink's own assigner hands out the files of a folder, or those one scan of a
 * followed folder finds, in no fixed order; a changelog's order decides its owners, and flows far
 * out of order are late.
 */
public final class PathOrder implements FileSplitAssigner {
    private static final Comparator<FileSourceSplit> ORDER = Comparator
            .comparing((FileSourceSplit split) -> split.path().toString())
            .thenComparingLong(FileSourceSplit::offset)
            .thenComparing(FileSourceSplit::splitId);

    private final TreeSet<FileSourceSplit> splits = new TreeSet<>(ORDER);

    PathOrder(Collection<FileSourceSplit> initial) {
        splits.addAll(initial);
    }

    /** For FileSource's builder (setSplitAssigner). */
    public static FileSplitAssigner.Provider provider() {
        return new Provider();
    }

    @Override
    public Optional<FileSourceSplit> getNext(String hostname) {
        return Optional.ofNullable(splits.pollFirst());
    }

    @Override
    public void addSplits(Collection<FileSourceSplit> more) {
        splits.addAll(more);
    }

    @Override
    public Collection<FileSourceSplit> remainingSplits() {
        return new ArrayList<>(splits);
    }

    private static final class Provider implements FileSplitAssigner.Provider {
        private static final long serialVersionUID = 1L;

        @Override
        public FileSplitAssigner create(Collection<FileSourceSplit> initial) {
            return new PathOrder(initial);
        }
    }
}
