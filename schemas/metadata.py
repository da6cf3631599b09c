"""The IP-metadata changelog contract (JSON Lines, one event per line).

ASSIGN: {"type","ts","ip", owner fields...}; UNASSIGN: {"type","ts","ip"};
HEARTBEAT: {"type","ts"}: every change with ts at or before it has been sent.
`ts` is epoch milliseconds. Unknown extra fields are accepted and ignored.
"""
from flowdredge.schemas.fields import LONG, STRING, Field, Schema

ASSIGN = "ASSIGN"
UNASSIGN = "UNASSIGN"
HEARTBEAT = "HEARTBEAT"
EVENT_TYPES = (ASSIGN, UNASSIGN, HEARTBEAT)

OWNER_FIELDS = ("app", "cluster", "asg", "account", "region", "zone", "interface_id",
                "resource_id", "kind")

ABSENT = "-"

# A changelog event's fields (job.ownership.MetaEvent holds the owner fields as one tuple).
METADATA_EVENT = Schema("metadata_event", (
    Field("type", STRING), Field("ts", LONG, "epoch milliseconds"), Field("ip", STRING),
) + tuple(Field(f, STRING) for f in OWNER_FIELDS))
