"""The IP-metadata changelog contract (JSON Lines, one event per line; job.ownership also
reads a JSON array of events, or one event, spread over lines: docs/metadata.md).

ASSIGN: {"type","ts","ip", owner fields...}; UNASSIGN: {"type","ts","ip"};
HEARTBEAT: {"type","ts"}: every change with ts at or before it has been sent.
VPC_ASSIGN / VPC_UNASSIGN: as ASSIGN / UNASSIGN, with "vpc_id": the address's owner within that
VPC only, for flows whose line names the VPC (`vpc-id`) while the address has no owner of its
own (an address that overlapping VPCs both hold).
An ASSIGN may carry "interface_vpc_id": the VPC of the interface its `interface_id` names (a
line without `vpc-id` logged there is of that VPC). Not "vpc_id": an ASSIGN with one is refused.
`ts` is epoch milliseconds. Unknown extra fields are accepted and ignored.
"""
from flowdredge.schemas.fields import LONG, STRING, Field, Schema

ASSIGN = "ASSIGN"
UNASSIGN = "UNASSIGN"
HEARTBEAT = "HEARTBEAT"
VPC_ASSIGN = "VPC_ASSIGN"
VPC_UNASSIGN = "VPC_UNASSIGN"
EVENT_TYPES = (ASSIGN, UNASSIGN, HEARTBEAT, VPC_ASSIGN, VPC_UNASSIGN)
# A VPC event's change as the job keeps it: ASSIGN or UNASSIGN of a key naming VPC and address.
VPC_CHANGES = {VPC_ASSIGN: ASSIGN, VPC_UNASSIGN: UNASSIGN}
INTERFACE_VPC_ID = "interface_vpc_id"
# AWS's VPC ids: vpc- and 8 or 17 lowercase hex digits.
VPC_ID_PATTERN = r"vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?"

OWNER_FIELDS = ("app", "cluster", "asg", "account", "region", "zone", "interface_id",
                "resource_id", "kind")

# An owner field absent, empty or of white space only (job.ownership reads each as this).
ABSENT = "-"
# What no owner value may hold among other characters (job.ownership refuses the owner,
# not_text): a control character (C0, DEL, C1) or a line or paragraph separator.
OWNER_VALUE_BREAKS = "[\x00-\x1f\x7f-\x9f\u2028\u2029]"

# A changelog event's fields (job.ownership.MetaEvent holds the owner fields as one tuple).
METADATA_EVENT = Schema("metadata_event", (
    Field("type", STRING), Field("ts", LONG, "epoch milliseconds"), Field("ip", STRING),
    Field("vpc_id", STRING, "VPC_ASSIGN and VPC_UNASSIGN only"),
) + tuple(Field(f, STRING) for f in OWNER_FIELDS) + (
    Field(INTERFACE_VPC_ID, STRING, "ASSIGN only, optional: the VPC of its interface_id"),))
