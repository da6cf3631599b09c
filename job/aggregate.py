"""Pre-aggregation of attributed flows inside one batch. Pure Python.

The job sums these partial rows per event-time window in Flink (SQL TUMBLE), so Flink holds the
window state and Python touches each flow once.
"""


class PartialAggregates:
    """`sums`: dimension tuple -> [flows, packets, bytes], filled in place by the attribution's
    loop (a method call per flow cost it about a tenth); rows() yields dimensions + sums."""

    def __init__(self):
        self.sums = {}

    def __len__(self):
        return len(self.sums)

    def rows(self):
        """Tuples: the dimensions, then flows, packets, bytes (AGGREGATE field order for the
        aggregate dimensions)."""
        for key, sums in self.sums.items():
            yield key + tuple(sums)


def is_late(window_start: int, window_seconds: int, horizon_ms: int) -> bool:
    """A window fires once event time reaches its last millisecond; after that its rows are
    late. `horizon_ms` is the furthest event time known to have been reached."""
    return (window_start + window_seconds) * 1000 - 1 <= horizon_ms


class LatenessHorizon:
    """Event time as far as it is known to have been reached at one operator instance.

    Flink's watermark advances periodically; this also follows the records themselves, as the
    bounded-out-of-orderness watermark would if it were emitted after every record: per
    producer (upstream instance) the latest timestamp minus the bound, then the minimum over
    all producers. It is never behind the watermark, so a group judged on time here is on
    time for the window operator downstream.
    """

    def __init__(self, producers: int, out_of_orderness_ms: int):
        self.producers = producers
        self.out_of_orderness_ms = out_of_orderness_ms
        self.max_ts = {}

    def observe(self, producer: int, ts_ms: int, watermark_ms: int) -> int:
        if ts_ms > self.max_ts.get(producer, ts_ms - 1):
            self.max_ts[producer] = ts_ms
        if len(self.max_ts) < self.producers:
            return watermark_ms
        return max(watermark_ms, min(self.max_ts.values()) - self.out_of_orderness_ms - 1)
