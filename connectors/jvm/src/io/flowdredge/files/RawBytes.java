package io.flowdredge.files;

import java.io.IOException;
import java.io.OutputStream;

import org.apache.flink.api.common.serialization.Encoder;

/**
 * Writes each element's bytes as they are, with nothing between them: the Python steps hand
 * over finished blocks (gzip members of JSON Lines), and concatenated gzip members are one valid
 * gzip file. SimpleStringEncoder would append a newline, which breaks the gzip stream.
 */
public class RawBytes implements Encoder<byte[]> {
    private static final long serialVersionUID = 1L;

    @Override
    public void encode(byte[] element, OutputStream stream) throws IOException {
        stream.write(element);
    }
}
