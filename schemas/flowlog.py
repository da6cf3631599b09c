"""VPC Flow Log fields as AWS documents them (versions 2 to 8 and later).

`aws` is the name used in format strings and S3 header lines; `key` is the name used in our
outputs (dashes become underscores). `-` in a log line means absent and is carried as None.
"""
from dataclasses import dataclass

from flowdredge.schemas.fields import ADDR, INT, LONG, STRING


@dataclass(frozen=True)
class FlowLogField:
    aws: str
    kind: str
    version: int

    @property
    def key(self) -> str:
        return self.aws.replace("-", "_")


def _fields(version, kind, names):
    return tuple(FlowLogField(n, kind, version) for n in names.split())


FLOW_LOG_FIELDS = (
    _fields(2, INT, "version")
    + _fields(2, STRING, "account-id interface-id")
    + _fields(2, ADDR, "srcaddr dstaddr")
    + _fields(2, INT, "srcport dstport protocol")
    + _fields(2, LONG, "packets bytes start end")
    + _fields(2, STRING, "action log-status")
    + _fields(3, STRING, "vpc-id subnet-id instance-id")
    + _fields(3, INT, "tcp-flags")
    + _fields(3, STRING, "type")
    + _fields(3, ADDR, "pkt-srcaddr pkt-dstaddr")
    + _fields(4, STRING, "region az-id sublocation-type sublocation-id")
    + _fields(5, STRING, "pkt-src-aws-service pkt-dst-aws-service flow-direction")
    + _fields(5, INT, "traffic-path")
    + _fields(6, STRING, "resource-type tgw-id tgw-attachment-id tgw-src-vpc-account-id "
                         "tgw-dst-vpc-account-id tgw-src-vpc-id tgw-dst-vpc-id tgw-src-subnet-id "
                         "tgw-dst-subnet-id tgw-src-eni tgw-dst-eni tgw-src-az-id tgw-dst-az-id "
                         "tgw-pair-attachment-id")
    + _fields(6, LONG, "packets-lost-no-route packets-lost-blackhole packets-lost-mtu-exceeded "
                       "packets-lost-ttl-expired")
    + _fields(7, STRING, "ecs-cluster-arn ecs-cluster-name ecs-container-instance-arn "
                         "ecs-container-instance-id ecs-container-id ecs-second-container-id "
                         "ecs-service-name ecs-task-definition-arn ecs-task-arn ecs-task-id")
    + _fields(8, STRING, "reject-reason")
)

BY_AWS_NAME = {f.aws: f for f in FLOW_LOG_FIELDS}

DEFAULT_FORMAT = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    "start end action log-status"
).split()

# Without these a line cannot be attributed or placed in a window.
REQUIRED = ("srcaddr", "dstaddr", "start")

PORT_FIELDS = ("srcport", "dstport")
ACCEPT = "ACCEPT"
REJECT = "REJECT"
NO_TRAFFIC_STATUSES = ("NODATA", "SKIPDATA")
# Fields AWS writes from a fixed list ('-' aside): any other value is garbage that would make
# aggregate rows and views of its own (an action "ACC\0EPT").
CHOICES = {"action": (ACCEPT, REJECT), "log-status": ("OK",) + NO_TRAFFIC_STATUSES}
# Counters that are summed into aggregates (bounded further by flows.max_flow_bytes).
COUNT_FIELDS = ("packets", "bytes")

MAX_INT = 2**31 - 1
MAX_LONG = 2**63 - 1
# VPC Flow Logs date from 2015 (AWS's own examples from late 2014): a start outside
# [2010, 2100) is garbage whatever the stream.
EARLIEST_START = 1262304000
LATEST_START = 4102444800
# A record covers one aggregation interval (10 minutes at most; AWS's end may lag the last packet
# by up to a minute): an end hours after its start is garbage, and an end in the year 3000 or
# at 2**63 - 1 would break every reader that turns it into a time.
MAX_FLOW_SECONDS = 3600
# The shortest flow line with traffic ("::1 ::1 1262304000"): n characters of lines hold at
# most n / SHORTEST_LINE flows, and the shortest CloudWatch event carrying one
# ({"id":"","timestamp":0,"message":"::1 ::1 1262304000"}) takes SHORTEST_EVENT bytes.
SHORTEST_LINE = 18
SHORTEST_EVENT = 53
# JSON values an event opens with '{', '[' or ',': its object, two commas inside, the comma
# after it. Decoded, any JSON value costs tens of bytes however short its text.
EVENT_VALUE_MARKS = 4
# AWS's documented ranges; every other number is never negative and fits the Java type it
# crosses the JVM boundary as (INT: int32, LONG: int64).
_RANGES = {"protocol": (0, 255), "srcport": (0, 65535), "dstport": (0, 65535)}


def value_range(f: FlowLogField) -> tuple:
    """(lowest, highest) value of a numeric field."""
    return _RANGES.get(f.aws, (0, MAX_INT if f.kind == INT else MAX_LONG))
