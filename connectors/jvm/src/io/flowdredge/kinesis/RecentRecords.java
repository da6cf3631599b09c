package io.flowdredge.kinesis;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.Objects;

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

    /** A record's MD5 (equal by it) and when the record arrived. */
    private static final class Digest {
        final long high;
        final long low;
        final long arrivalMs;

        Digest(byte[] md5, long arrivalMs) {
            long h = 0;
            long l = 0;
            for (int i = 0; i < 8; i++) {
                h = (h << 8) | (md5[i] & 0xff);
                l = (l << 8) | (md5[i + 8] & 0xff);
            }
            high = h;
            low = l;
            this.arrivalMs = arrivalMs;
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

    private static final class Shard {
        final ArrayDeque<Digest> byArrival = new ArrayDeque<>();
        // Each digest to itself, the latest of its arrivals: arrival times out of order leave
        // an older one behind a newer in byArrival, and only its own time says it is too old.
        final Map<Digest, Digest> latest = new HashMap<>();
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
            Digest old = seen.byArrival.pollFirst();
            if (seen.latest.get(old) == old) {
                seen.latest.remove(old);
            }
        }
        Digest digest = new Digest(md5.digest(data), arrivalMs);
        Digest before = seen.latest.get(digest);
        if (before != null && before.arrivalMs >= arrivalMs - windowMs) {
            return true;
        }
        seen.latest.put(digest, digest);
        seen.byArrival.addLast(digest);
        return false;
    }

    /** How many records are remembered, over all shards. */
    public int size() {
        return shards.values().stream().mapToInt(s -> s.latest.size()).sum();
    }

    private void forgetShardsReadBefore(long readMs) {
        for (Iterator<Shard> it = shards.values().iterator(); it.hasNext(); ) {
            if (it.next().readMs < readMs) {
                it.remove();
            }
        }
    }
}
