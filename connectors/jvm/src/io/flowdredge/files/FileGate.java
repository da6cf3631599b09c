package io.flowdredge.files;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

import org.apache.flink.api.common.functions.FilterFunction;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.co.KeyedCoProcessFunction;
import org.apache.flink.util.Collector;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Holds each flow file's number until the changelog's event time (the watermark of its source,
 * ChangelogTimestamps) has reached the AWS delivery stamp of the file before it, so the parse
 * step reads a file only once the owners of its flows are (nearly all) loaded: otherwise a
 * bounded job's first files race a large changelog, and their flows wait in the attribution's
 * keyed state. The changelog's lines only bring time here (they are filtered out before the
 * gate); the held numbers are keyed state, so a restore keeps them.
 *
 * <p>Releases each number as its file's path. The list of files (and their stamps) is the
 * gate's state from the job's first start: a restored job lists its input again, and the
 * numbers its source and this gate restored count through the first list, so a list that
 * changed in between (AWS delivered more files, interleaved by their stamps) would map them to
 * other files, some read twice and some never. A restored job reads the files of its first
 * start; files listed since are left to a job of their own (a warning in the job's log says
 * how many).
 */
public class FileGate<T> extends KeyedCoProcessFunction<Byte, Long, T, String>
        implements CheckpointedFunction {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(FileGate.class);

    private final String[] listedFiles;
    private final long[] listedStamps;
    private transient String[] files;
    private transient long[] stamps;
    private transient ListState<Long> held;

    /**
     * `stampsMs`: each file's delivery stamp (epoch ms), comma-separated, in file order;
     * `paths`: the files' paths or URLs in that order, separated by NUL (a character no path
     * holds).
     */
    public FileGate(String stampsMs, String paths) {
        String[] parts = stampsMs.isEmpty() ? new String[0] : stampsMs.split(",");
        listedStamps = new long[parts.length];
        for (int i = 0; i < parts.length; i++) {
            listedStamps[i] = Long.parseLong(parts[i]);
        }
        listedFiles = paths.isEmpty() ? new String[0] : paths.split("\0", -1);
        if (listedFiles.length != listedStamps.length) {
            throw new IllegalArgumentException("a stamp for each file: " + listedStamps.length
                    + " stamps, " + listedFiles.length + " files");
        }
    }

    /**
     * The file numbers `numbers`, each released as its file's path once `changelog`'s
     * watermark allows (its lines, of any type, are not read).
     */
    public static <T> SingleOutputStreamOperator<String> apply(
            DataStream<Long> numbers, DataStream<T> changelog, String stampsMs, String paths) {
        DataStream<T> time = changelog.filter(new NoLines<T>())
                .name("changelog time").uid("changelog-time").setParallelism(1);
        return numbers.connect(time).keyBy(new One<Long>(), new One<T>())
                .process(new FileGate<T>(stampsMs, paths), Types.STRING)
                .name("flow files: after the changelog").uid("flow-file-gate").setParallelism(1);
    }

    @Override
    public void initializeState(FunctionInitializationContext context) throws Exception {
        // One gzip value: operator state is written whole at every checkpoint, and a
        // backfill's list (hundreds of thousands of S3 URLs) compresses about tenfold.
        ListState<byte[]> listed = context.getOperatorStateStore().getListState(
                new ListStateDescriptor<>("first-listing",
                        PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO));
        byte[] kept = null;
        for (byte[] value : listed.get()) {
            kept = value;
        }
        if (kept == null) {
            // A first start, or a state written before the gate kept its list: this list.
            files = listedFiles;
            stamps = listedStamps;
            listed.update(List.of(encode(listedFiles, listedStamps)));
            return;
        }
        decode(kept);
        if (!Arrays.equals(files, listedFiles)) {
            Set<String> first = new HashSet<>(Arrays.asList(files));
            Set<String> now = new HashSet<>(Arrays.asList(listedFiles));
            long added = now.stream().filter(f -> !first.contains(f)).count();
            long gone = first.stream().filter(f -> !now.contains(f)).count();
            LOG.warn("flow files: resumed over the {} files the job's first start listed; {} "
                    + "of the {} listed now are not among them, and are left to a job of their "
                    + "own; {} of the first are listed no more (each a dead letter if gone)",
                    files.length, added, listedFiles.length, gone);
        }
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) {
        // The list is written once, at the first start: nothing changes it.
    }

    /** The stamps and paths, NUL-separated in turn, gzipped. */
    private static byte[] encode(String[] paths, long[] times) throws IOException {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < paths.length; i++) {
            text.append(times[i]).append('\0').append(paths[i]).append('\0');
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (GZIPOutputStream gzip = new GZIPOutputStream(bytes)) {
            gzip.write(text.toString().getBytes(StandardCharsets.UTF_8));
        }
        return bytes.toByteArray();
    }

    private void decode(byte[] kept) throws IOException {
        String text;
        try (GZIPInputStream gzip = new GZIPInputStream(new ByteArrayInputStream(kept))) {
            text = new String(gzip.readAllBytes(), StandardCharsets.UTF_8);
        }
        String[] parts = text.isEmpty() ? new String[0] : text.split("\0", -1);
        int n = parts.length / 2;   // the text ends in a separator: one empty part after it
        files = new String[n];
        stamps = new long[n];
        for (int i = 0; i < n; i++) {
            stamps[i] = Long.parseLong(parts[2 * i]);
            files[i] = parts[2 * i + 1];
        }
    }

    private long due(long index) {
        return index == 0 ? Long.MIN_VALUE : stamps[(int) index - 1];
    }

    private String file(long index) {
        if (index >= files.length) {
            throw new IllegalStateException("flow file number " + index + ": the job listed "
                    + files.length + " files at its first start");
        }
        return files[(int) index];
    }

    @Override
    public void open(OpenContext openContext) {
        held = getRuntimeContext().getListState(new ListStateDescriptor<>("held", Types.LONG));
    }

    @Override
    public void processElement1(Long index, Context ctx, Collector<String> out)
            throws Exception {
        long due = due(index);
        if (due <= ctx.timerService().currentWatermark()) {
            out.collect(file(index));
        } else {
            held.add(index);
            ctx.timerService().registerEventTimeTimer(due);
        }
    }

    @Override
    public void processElement2(T line, Context ctx, Collector<String> out) {
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<String> out)
            throws Exception {
        List<Long> waiting = new ArrayList<>();
        for (Long index : held.get()) {
            if (due(index) <= timestamp) {
                out.collect(file(index));
            } else {
                waiting.add(index);
            }
        }
        held.update(waiting);
    }

    /** Keeps no line: the gate's second input carries only the changelog's watermarks. */
    public static final class NoLines<T> implements FilterFunction<T> {
        private static final long serialVersionUID = 1L;

        @Override
        public boolean filter(T line) {
            return false;
        }
    }

    /** One key for everything: the gate is one instance with keyed state and timers. */
    public static final class One<T> implements KeySelector<T, Byte> {
        private static final long serialVersionUID = 1L;

        @Override
        public Byte getKey(T value) {
            return 0;
        }
    }
}
