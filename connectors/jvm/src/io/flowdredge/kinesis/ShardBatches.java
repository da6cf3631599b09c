package io.flowdredge.kinesis;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * RawRecords' rows gathered per shard into one element, Row(stream, shard, records, repeats),
 * each record a Row(data, sequence, arrival), repeats the number of the shard's records marked
 * a repeat (kept out of records): the job's Python parse takes a batch in one call and
 * parses its records' lines together. CloudWatch Logs writes one log stream per interface, so
 * a record holds tens to hundreds of flows; one Python call and one flow group per record cost
 * about half the rate of large records (docs/performance.md, run 30).
 *
 * <p>A shard's batch goes downstream when it holds maxRecords records or maxBytes bytes,
 * maxWaitMs after the operator's oldest held record, before each checkpoint barrier, before any
 * watermark, and at the end of input. Flushed before the barrier, no record is ever held across
 * a checkpoint: the sources' positions in it never cover a record still here, and the operator
 * has no state.
 */
public class ShardBatches extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, BoundedOneInput, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;

    public static final String[] FIELDS = {"stream", "shard", "records", "repeats"};
    public static final String[] RECORD_FIELDS = {"data", "sequence", "arrival"};
    public static final TypeInformation<Row> RECORD_TYPE = Types.ROW_NAMED(RECORD_FIELDS,
            PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO, Types.STRING, Types.LONG);
    public static final TypeInformation<Row> TYPE = Types.ROW_NAMED(FIELDS, Types.STRING,
            Types.STRING, Types.OBJECT_ARRAY(RECORD_TYPE), Types.INT);

    private final int maxRecords;
    private final long maxBytes;
    private final long maxWaitMs;

    private transient Map<List<String>, Batch> batches;
    private transient boolean timerSet;

    private static final class Batch {
        final List<Row> records = new ArrayList<>();
        long bytes;
        int repeats;
        long latestArrival = Long.MIN_VALUE;
    }

    public ShardBatches(int maxRecords, long maxBytes, long maxWaitMs) {
        if (maxRecords < 1 || maxBytes < 1 || maxWaitMs < 1) {
            throw new IllegalArgumentException("batch limits must be positive");
        }
        this.maxRecords = maxRecords;
        this.maxBytes = maxBytes;
        this.maxWaitMs = maxWaitMs;
    }

    @Override
    public void open() throws Exception {
        super.open();
        batches = new LinkedHashMap<>();
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row raw = element.getValue();
        byte[] data = (byte[]) raw.getField(0);
        String sequence = (String) raw.getField(3);
        Long arrival = element.hasTimestamp() ? element.getTimestamp() : null;
        List<String> shard = List.of((String) raw.getField(1), (String) raw.getField(2));
        Batch batch = batches.computeIfAbsent(shard, key -> new Batch());
        if (Boolean.TRUE.equals(raw.getField(4))) {
            batch.repeats++;
        } else {
            batch.records.add(Row.of(data, sequence, arrival));
            batch.bytes += data.length;
        }
        if (arrival != null) {
            batch.latestArrival = Math.max(batch.latestArrival, arrival);
        }
        if (batch.records.size() >= maxRecords || batch.bytes >= maxBytes) {
            batches.remove(shard);
            emit(shard, batch);
        } else if (!timerSet) {
            timerSet = true;
            long now = getProcessingTimeService().getCurrentProcessingTime();
            getProcessingTimeService().registerTimer(now + maxWaitMs, this);
        }
    }

    @Override
    public void onProcessingTime(long time) {
        timerSet = false;
        flushAll();
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        flushAll();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        flushAll();
        super.processWatermark(mark);
    }

    @Override
    public void endInput() {
        flushAll();
    }

    private void flushAll() {
        for (Map.Entry<List<String>, Batch> entry : batches.entrySet()) {
            emit(entry.getKey(), entry.getValue());
        }
        batches.clear();
    }

    private void emit(List<String> shard, Batch batch) {
        Row out = Row.of(shard.get(0), shard.get(1), batch.records.toArray(new Row[0]),
                batch.repeats);
        output.collect(batch.latestArrival == Long.MIN_VALUE ? new StreamRecord<>(out)
                : new StreamRecord<>(out, batch.latestArrival));
    }
}
