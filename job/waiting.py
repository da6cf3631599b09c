"""Flow groups waiting for metadata: when each is released. Pure Python (no pyflink); the keyed
state and the timers are job.flink.operators.AttributeFlows'.

A group waits while the metadata clock has not passed its latest start, and no longer than
`metadata.max_wait_seconds` of processing time (docs/design.md, "Waiting for metadata").
"""
from typing import NamedTuple


class Waiting(NamedTuple):
    """A waiting group's times, kept in keyed state apart from the group itself (a timer reads
    only these): its window and latest flow start (epoch s), and the processing time (epoch ms)
    its max wait ends; `late` when its window had closed before it came (it goes to the late
    output once released, as it would have at once: it waits for its owners all the same)."""
    window_start: int
    max_start: int
    deadline: int
    late: bool = False

    def encode(self) -> str:
        # A late group's deadline is written with a "+": the three numbers are what earlier
        # releases read (int() takes the sign), so a job rolled back restores them.
        return ("%d %d +%d" if self.late else "%d %d %d") % self[:3]

    @classmethod
    def decode(cls, text: str) -> "Waiting":
        window_start, max_start, deadline = text.split()
        return cls(int(window_start), int(max_start), int(deadline), deadline[0] == "+")

    def restarted(self, now_ms: int, max_wait_ms: int) -> "Waiting":
        """Its whole max wait again from `now_ms`: after a restore the changelog is read again
        from the checkpoint too, and a deadline that passed while the job was down would
        release the group before the changelog caught up."""
        return self._replace(deadline=now_ms + max_wait_ms)

    def due(self, timer_ms: int, event_time: bool, complete: bool) -> bool:
        """Whether a timer at `timer_ms` releases it: the metadata is `complete` up to its
        latest start, or an event-time timer reached that start (the watermark, which the
        changelog's holds back, passed it), or a processing-time timer its deadline."""
        return complete or (self.max_start * 1000 if event_time else self.deadline) <= timer_ms


def next_poll(now_ms: int, poll_ms: int) -> int:
    """The next check of waiting groups after `now_ms`, aligned to `poll_ms`, so that the
    groups of one key share one timer per interval."""
    return now_ms - now_ms % poll_ms + poll_ms
