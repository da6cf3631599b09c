package io.flowdredge.kinesis;

import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kinesis.sink.shaded.software.amazon.awssdk.services.kinesis.model.Record;
import org.apache.flink.connector.kinesis.source.serialization.KinesisDeserializationSchema;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * A Kinesis record as the job's Python parse step takes it: the record's bytes as they are
 * (CloudWatch Logs subscription records are gzip: no string decoding may touch them) and where
 * it came from, for per-shard watermarks and traceable dead letters. The record's approximate
 * arrival time travels as the element's timestamp (the connector's record emitter sets it).
 *
 * <p>A record with the bytes of one its shard delivered at most repeatWindowMs before (a
 * producer's retry: RecentRecords) goes on without its bytes, marked a repeat, so that the
 * parse counts it and no flow is counted twice. The connector calls this from the source
 * reader's task thread, once per record in shard order; a window of 0 marks none.
 */
public class RawRecords implements KinesisDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    public static final String[] FIELDS = {"data", "stream", "shard", "sequence", "repeat"};
    private static final byte[] NO_BYTES = new byte[0];

    private final long repeatWindowMs;
    private transient RecentRecords recent;

    public RawRecords(long repeatWindowMs) {
        if (repeatWindowMs < 0) {
            throw new IllegalArgumentException("the repeat window cannot be negative");
        }
        this.repeatWindowMs = repeatWindowMs;
    }

    @Override
    public void deserialize(Record record, String stream, String shardId, Collector<Row> output) {
        byte[] data = record.data().asByteArray();
        boolean repeat = false;
        if (repeatWindowMs > 0 && record.approximateArrivalTimestamp() != null) {
            if (recent == null) {
                recent = new RecentRecords(repeatWindowMs);
            }
            repeat = recent.repeated(stream + "/" + shardId, data,
                    record.approximateArrivalTimestamp().toEpochMilli(),
                    System.nanoTime() / 1_000_000);
        }
        output.collect(Row.of(repeat ? NO_BYTES : data, stream, shardId, record.sequenceNumber(),
                repeat));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW_NAMED(FIELDS, PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO,
                Types.STRING, Types.STRING, Types.STRING, Types.BOOLEAN);
    }
}
