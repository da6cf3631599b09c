"""Stand-ins for PyFlink's runtime, to drive the job's Python functions without a JVM.

PyFlink has no harness for Python functions outside a job: these hold what the functions read
from the runtime (state, clocks) and nothing else; and the inputs they take, built as the
operators before them send them."""
from pyflink.common import Row

from flowdredge.job.codec import encode_events, encode_group
from flowdredge.job.ownership import MetaEvent
from flowdredge.job.parse import FlowFormat, FlowGroup, parse_line
from flowdredge.schemas.metadata import OWNER_FIELDS
from flowdredge.schemas.outputs import FLOW_GROUP

class Group:
    def counter(self, name):
        return type("Counter", (), {"inc": lambda self, n=1: None})()

    def gauge(self, name, read):
        pass

    def meter(self, name, time_span_in_seconds=60):
        return type("Meter", (), {"mark_event": lambda self, n=1: None})()

    def add_group(self, name):
        return self


class State(dict):
    def put(self, key, value):
        self[key] = value

    def remove(self, key):
        del self[key]

    def is_empty(self):
        return not self


class Value:
    def __init__(self):
        self.stored = None

    def value(self):
        return self.stored

    def update(self, value):
        self.stored = value


class ListState(list):
    def add(self, value):
        self.append(value)

    def get(self):
        return iter(self)

    def update(self, values):
        self[:] = values


class Runtime:
    def __init__(self):
        self.states = {}   # one key's keyed state, by name
        self.broadcast = State()
        self.watermark = -2**63
        self.now = 0
        self.domain = None
        self.event_timers, self.processing_timers = set(), set()

    # RuntimeContext
    def get_map_state(self, descriptor):
        return self.states.setdefault(descriptor.name, State())

    def get_state(self, descriptor):
        return self.states.setdefault(descriptor.name, Value())

    def get_list_state(self, descriptor):
        return self.states.setdefault(descriptor.name, ListState())

    def get_metrics_group(self):
        return Group()

    def get_index_of_this_subtask(self):
        return 0

    # Context and TimerService
    def get_current_key(self):
        return 0   # the key field, as PyFlink gives it

    def get_broadcast_state(self, descriptor):
        return self.broadcast

    def timer_service(self):
        return self

    def time_domain(self):
        return self.domain

    def current_watermark(self):
        return self.watermark

    def current_processing_time(self):
        return self.now

    def register_event_time_timer(self, t):
        self.event_timers.add(t)

    def register_processing_time_timer(self, t):
        self.processing_timers.add(t)


FORMAT = FlowFormat.parse("srcaddr dstaddr dstport protocol packets bytes start action")


def changelog(*events, from_snapshot=False):
    """A chunk of (kind, ts, ip, app) as ParseMetadataEvents sends it."""
    chunk = []
    for kind, ts, ip, app in events:
        owner = dict.fromkeys(OWNER_FIELDS, "-")
        owner.update(app=app, region="us-east-1")
        chunk.append(MetaEvent(kind, ts, ip, tuple(owner[f] for f in OWNER_FIELDS)
                               if kind == "ASSIGN" else None))
    return encode_events(chunk, from_snapshot)


def group_row(start):
    window_start = start - start % 60
    flows = [parse_line(FORMAT, f"10.0.0.1 10.0.0.2 5432 6 1 100 {start} ACCEPT")]
    payload = encode_group(FlowGroup(FORMAT, window_start, start, flows, "t"))
    values = {"producer": 0, "window_start": window_start, "max_start": start,
              "payload": payload, "progress": start}
    return Row(*(values[name] for name in FLOW_GROUP.names))
