package io.flowdredge.kinesis;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * The records each shard delivered within the last windowMs of arrival time, to know a repeat.
 * A producer that sends a PutRecords again after losing its answer (a timeout after Kinesis
 * wrote the records) writes the same bytes twice, and Kinesis keeps both. CloudWatch Logs gives
 * every log event of its data records an id of its own, so two subscription records of equal
 * bytes are one delivery written twice. A retry of the same call keeps its partition keys, so
 * its shards: records are remembered per shard, by their MD5 (a false match would need a
 * collision of 128 bits).
 *
 * <p>Memory is about 100 bytes a record in the window, per shard. A shard not read for the
 * window (processing time: a reshard's parents are never read again) is forgotten; a reader
 * that is caught up loses nothing by it, since a later record of that shard arrives after the
 * window. Not checkpointed: a repeat of a record read before the restored checkpoint is not
 * known.
 */
public final class RecentRecords {
    private final long windowMs;
    private final Map<String, Shard> shards = new HashMap<>();
    private final MessageDigest md5;
    private long nextSweepMs = Long.MIN_VALUE;

    private static final class Digest {
        final long high;
        final long low;

        Digest(byte[] md5) {
            long h = 0;
            long l = 0;
            for (int i = 0; i < 8; i++) {
                h = (h << 8) | (md5[i] & 0xff);
                l = (l << 8) | (md5[i + 8] & 0xff);
            }
            high = h;
            low = l;
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof Digest && ((Digest) other).high == high
                    && ((Digest) other).low == low;
        }

        @Override
        public int hashCode() {
            return Objects.hash(high, low);
        }
    }

    private static final class Seen {
        final Digest digest;
        final long arrivalMs;

        Seen(Digest digest, long arrivalMs) {
            this.digest = digest;
            this.arrivalMs = arrivalMs;
        }
    }

    private static final class Shard {
        final ArrayDeque<Seen> byArrival = new ArrayDeque<>();
        final Set<Digest> digests = new HashSet<>();
        long readMs;
    }

    public RecentRecords(long windowMs) {
        if (windowMs < 1) {
            throw new IllegalArgumentException("the window must be positive");
        }
        this.windowMs = windowMs;
        try {
            md5 = MessageDigest.getInstance("MD5");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has MD5", e);
        }
    }

    /**
     * Whether `data`, read at `nowMs` (a monotonic clock), is a repeat of a record of `shard` that
     * arrived at most the window before it.
     */
    public boolean repeated(String shard, byte[] data, long arrivalMs, long nowMs) {
        if (nowMs >= nextSweepMs) {
            forgetShardsReadBefore(nowMs - windowMs);
            nextSweepMs = nowMs + Math.min(windowMs, 1000);
        }
        Shard seen = shards.computeIfAbsent(shard, key -> new Shard());
        seen.readMs = nowMs;
        while (!seen.byArrival.isEmpty()
                && seen.byArrival.peekFirst().arrivalMs < arrivalMs - windowMs) {
            seen.digests.remove(seen.byArrival.pollFirst().digest);
        }
        Digest digest = new Digest(md5.digest(data));
        if (!seen.digests.add(digest)) {
            return true;
        }
        seen.byArrival.addLast(new Seen(digest, arrivalMs));
        return false;
    }

    /** How many records are remembered, over all shards. */
    public int size() {
        return shards.values().stream().mapToInt(s -> s.digests.size()).sum();
    }

    private void forgetShardsReadBefore(long readMs) {
        for (Iterator<Shard> it = shards.values().iterator(); it.hasNext(); ) {
            if (it.next().readMs < readMs) {
                it.remove();
            }
        }
    }
}
