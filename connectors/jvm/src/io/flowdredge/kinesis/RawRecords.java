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
 */
public class RawRecords implements KinesisDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    public static final String[] FIELDS = {"data", "stream", "shard", "sequence"};

    @Override
    public void deserialize(Record record, String stream, String shardId, Collector<Row> output) {
        output.collect(Row.of(record.data().asByteArray(), stream, shardId,
                record.sequenceNumber()));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW_NAMED(FIELDS, PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO,
                Types.STRING, Types.STRING, Types.STRING);
    }
}
