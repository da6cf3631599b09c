package io.flowdredge.kinesis;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kinesis.sink.shaded.software.amazon.awssdk.services.kinesis.model.Record;
import org.apache.flink.connector.kinesis.source.serialization.KinesisDeserializationSchema;
import org.apache.flink.util.Collector;

import io.flowdredge.files.StagedChangelog;

/**
 * A changelog record from the metadata stream (one or many lines of UTF-8 JSON, as
 * flowdredge-publisher writes them) as a staged chunk (StagedChangelog) of its lines, as
 * Python's str.split("\n") cuts them, whose source is kinesis:STREAM/SHARD/SEQUENCE: a dead
 * letter names the record that holds it. Whatever the record's text, it is only ever lines;
 * bytes that are not UTF-8 are StagedChangelog.NOT_UTF8, whose lines the parse dead-letters.
 * Its arrival time travels as the element's timestamp (the connector's record emitter sets it).
 */
public class ChangelogRecords implements KinesisDeserializationSchema<String> {
    private static final long serialVersionUID = 1L;

    @Override
    public void deserialize(Record record, String stream, String shardId,
            Collector<String> output) {
        String text = StagedChangelog.decode(record.data().asByteArray());
        StagedChangelog chunk = new StagedChangelog("kinesis:"
                + stream.substring(stream.lastIndexOf('/') + 1) + "/" + shardId + "/"
                + record.sequenceNumber(), 1, text.length());
        int start = 0;
        for (int end; (end = text.indexOf('\n', start)) >= 0; start = end + 1) {
            chunk.add(text.substring(start, end));
        }
        output.collect(chunk.add(text.substring(start)).toJson());
    }

    @Override
    public TypeInformation<String> getProducedType() {
        return Types.STRING;
    }
}
