"""Per-shard event time for a parse instance reading Kinesis records. Pure Python (no pyflink).

A Kinesis stream's shards are read independently and may be far apart in event time (one is
catching up after a restart, one holds a slow account's log groups). The job's watermark must
follow the slowest shard that is still sending, not the fastest: each shard's event time is the
latest flow start seen in it, and the time a parse instance reports is the minimum over the
shards heard from within `idle_ms` of processing time. A shard silent for longer (quiet, or
closed by a reshard) stops holding event time back: that is what a quiet shard costs in delay.
"""


class ShardClock:
    def __init__(self, idle_ms: int, expected=()):
        """`expected`: the shards known to exist when the job started; until each is heard
        from (or idle for `idle_ms`), event time does not move: a shard read later than the
        others (one reader takes a whole backlog of one shard at a time) would find its
        flows late."""
        self.idle_ms = idle_ms
        # shard -> (latest event time ms or None if not heard yet, processing time heard ms)
        self._shards = {shard: (None, None) for shard in expected}

    def observe(self, shard, event_ms: int, now_ms: int):
        """Records a record of `shard` whose latest flow starts at `event_ms`, heard at
        `now_ms`; returns the event time this instance has reached (ms), or None while an
        expected shard has not been heard from."""
        previous = self._shards.get(shard)
        latest = event_ms if previous is None or previous[0] is None \
            else max(previous[0], event_ms)
        self._shards[shard] = (latest, now_ms)
        horizon = now_ms - self.idle_ms
        reached = latest
        for name, (time, heard) in list(self._shards.items()):
            if heard is None:
                # Expected: the idle time counts from the first record this instance saw.
                self._shards[name] = (None, now_ms)
                reached = None
            elif heard < horizon:
                # Idle: forgotten, so a shard closed by a reshard does not stay for ever.
                del self._shards[name]
            elif time is None:
                reached = None
            elif reached is not None:
                reached = min(reached, time)
        return reached

    def __len__(self):
        return len(self._shards)
