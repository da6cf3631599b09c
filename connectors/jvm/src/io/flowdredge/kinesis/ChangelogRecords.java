package io.flowdredge.kinesis;

import java.nio.charset.StandardCharsets;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kinesis.sink.shaded.software.amazon.awssdk.services.kinesis.model.Record;
import org.apache.flink.connector.kinesis.source.serialization.KinesisDeserializationSchema;
import org.apache.flink.util.Collector;

/**
 * A changelog record from the metadata stream (one or many lines of UTF-8 JSON, as
 * flowdredge-publisher writes them) as the job's changelog parse takes a staged chunk (job.ownership
 * changelog_lines): its lines, and where they came from, kinesis:STREAM/SHARD/SEQUENCE, so that a
 * dead letter names the record that holds it. Its arrival time travels as the element's
 * timestamp (the connector's record emitter sets it).
 */
public class ChangelogRecords implements KinesisDeserializationSchema<String> {
    private static final long serialVersionUID = 1L;

    @Override
    public void deserialize(Record record, String stream, String shardId,
            Collector<String> output) {
        String text = new String(record.data().asByteArray(), StandardCharsets.UTF_8);
        StringBuilder chunk = new StringBuilder(text.length() + text.length() / 8 + 160);
        chunk.append("{\"staged\": \"changelog\", \"source\": ");
        quote(chunk, "kinesis:" + stream.substring(stream.lastIndexOf('/') + 1) + "/" + shardId
                + "/" + record.sequenceNumber());
        chunk.append(", \"lines\": [");
        // As Python's str.split("\n"): every piece, the empty ones too.
        int start = 0;
        while (true) {
            int end = text.indexOf('\n', start);
            quote(chunk, end < 0 ? text.substring(start) : text.substring(start, end));
            if (end < 0) {
                break;
            }
            chunk.append(", ");
            start = end + 1;
        }
        output.collect(chunk.append("]}").toString());
    }

    private static void quote(StringBuilder out, String text) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        out.append('"');
    }

    @Override
    public TypeInformation<String> getProducedType() {
        return Types.STRING;
    }
}
