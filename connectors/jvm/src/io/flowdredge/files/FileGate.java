package io.flowdredge.files;

import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.functions.FilterFunction;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.co.KeyedCoProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Holds each flow file's number until the changelog's event time (the watermark of its source,
 * ChangelogTimestamps) has reached the AWS delivery stamp of the file before it, so the parse
 * step reads a file only once the owners of its flows are (nearly all) loaded: otherwise a
 * bounded job's first files race a large changelog, and their flows wait in the attribution's
 * keyed state. The changelog's lines only bring time here (they are filtered out before the
 * gate); the held numbers are keyed state, so a restore keeps them.
 */
public class FileGate<T> extends KeyedCoProcessFunction<Byte, Long, T, Long> {
    private static final long serialVersionUID = 1L;

    private final long[] stamps;
    private transient ListState<Long> held;

    /** `stampsMs`: each file's delivery stamp (epoch ms), comma-separated, in file order. */
    public FileGate(String stampsMs) {
        String[] parts = stampsMs.isEmpty() ? new String[0] : stampsMs.split(",");
        stamps = new long[parts.length];
        for (int i = 0; i < parts.length; i++) {
            stamps[i] = Long.parseLong(parts[i]);
        }
    }

    /**
     * The file numbers `numbers`, each released once `changelog`'s watermark allows (its lines,
     * of any type, are not read).
     */
    public static <T> SingleOutputStreamOperator<Long> apply(
            DataStream<Long> numbers, DataStream<T> changelog, String stampsMs) {
        DataStream<T> time = changelog.filter(new NoLines<T>())
                .name("changelog time").uid("changelog-time").setParallelism(1);
        return numbers.connect(time).keyBy(new One<Long>(), new One<T>())
                .process(new FileGate<T>(stampsMs), Types.LONG)
                .name("flow files: after the changelog").uid("flow-file-gate").setParallelism(1);
    }

    private long due(long index) {
        return index == 0 ? Long.MIN_VALUE : stamps[(int) index - 1];
    }

    @Override
    public void open(OpenContext openContext) {
        held = getRuntimeContext().getListState(new ListStateDescriptor<>("held", Types.LONG));
    }

    @Override
    public void processElement1(Long index, Context ctx, Collector<Long> out) throws Exception {
        long due = due(index);
        if (due <= ctx.timerService().currentWatermark()) {
            out.collect(index);
        } else {
            held.add(index);
            ctx.timerService().registerEventTimeTimer(due);
        }
    }

    @Override
    public void processElement2(T line, Context ctx, Collector<Long> out) {
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<Long> out) throws Exception {
        List<Long> waiting = new ArrayList<>();
        for (Long index : held.get()) {
            if (due(index) <= timestamp) {
                out.collect(index);
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
