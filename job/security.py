"""The decisions of the security and dependency views. Pure Python (no pyflink).

job.flink.security runs these inside Flink; docs/security.md states the rules for users.
"""
import heapq
import ipaddress
import json
import re
from json.encoder import encode_basestring, encode_basestring_ascii
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import NamedTuple

import numpy as np

from flowdredge.job.addresses import OTHER_ADDRESSES, address_code, address_text, ipv4_int
from flowdredge.job.groupby import grouped
from flowdredge.schemas.fields import ADDR, INT, LONG, STRING, Schema
from flowdredge.schemas.flowlog import ACCEPT, REJECT
from flowdredge.schemas.outputs import CONVERSATION
from flowdredge.schemas.settings import MAX_INT, MAX_LONG, quoted
from flowdredge.schemas.security import (DEPENDENCY_GONE, EVENT_SCHEMAS, EXPOSURE_NEW,
                                         HOST_SWEEP, INTERNET, NEW_DEPENDENCY, PORT_SCAN,
                                         REJECT_SPIKE, REJECTED, RISK, RISK_FACTORS, RISK_INPUT,
                                         SCAN, SCAN_ALERTS, SCAN_ALERTS_CUT, is_internet,
                                         is_unowned)

# AWS's tcp-flags field: FIN 1, SYN 2, RST 4, SYN-ACK 18 (ACK only ever appears with SYN),
# ORed over the aggregation interval.
SYN = 2
ACK = 16


# --- configuration values (read once by job.config) -----------------------------------------

# str.isdigit() and int() take other scripts' digits too; a sign, and an underscore between two
# digits (1_000, Python's and YAML's grouping), are read as schemas.settings reads an integer
# setting's and YAML an unquoted item's.
_INTEGER = re.compile("[-+]?[0-9]+(?:_[0-9]+)*").fullmatch


def parse_ports(value) -> frozenset:
    """"22,443,8080", or a list of ports -> {22, 443, 8080}; ValueError names the bad item."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        items = value.split(",") if isinstance(value, str) else [value]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=lambda item: quoted(item, str)) if isinstance(value, (set, frozenset)) else value
    else:
        raise ValueError(f"expected a list of ports or \"22,443\", got {quoted(value)}")
    ports = set()
    for item in items:
        item = item.strip() if isinstance(item, str) else item
        if item == "":
            continue
        port = _whole(item)
        if port is None or not 0 <= port <= 65535:
            raise ValueError(f"not a port: {quoted(item, _as_text)}")
        if port in ports:
            raise ValueError(f"port {port} is listed twice")
        ports.add(port)
    return frozenset(ports)


def parse_factors(value, defaults: dict = None, maximum: int = MAX_INT) -> dict:
    """"exposed_ports=30,dependencies=5", or a mapping -> {factor: int} over RISK_FACTORS, each
    from 0 to `maximum`; the factors it leaves out keep their value in `defaults` (0 without);
    ValueError names the bad item."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = [item.partition("=")[::2] for item in value.split(",") if item.strip()]
    else:
        raise ValueError(f"expected a mapping or \"factor=n,factor=n\", got {quoted(value)}")
    values = {name: (defaults or {}).get(name, 0) for name in RISK_FACTORS}
    given = set()
    for name, number in pairs:
        name = name.strip() if isinstance(name, str) else name
        number = number.strip() if isinstance(number, str) else number
        if name not in values:
            raise ValueError(f"unknown risk factor {quoted(name, _as_text)}; known: "
                             f"{', '.join(RISK_FACTORS)}")
        if name in given:
            raise ValueError(f"{name} is given twice")
        whole = _whole(number)
        if whole is None or not 0 <= whole <= maximum:
            raise ValueError(f"{name}: expected an integer from 0 to {maximum}, got "
                             f"{quoted(number, _as_text)}")
        values[name] = whole
        given.add(name)
    return values


def _as_text(value) -> str:
    # A YAML value as its text, quoted: str() of an integer past int()'s 4,300 digits raises,
    # which quoted() names by its size.
    return repr(str(value))


def _whole(value):
    """An int, or ASCII digits (a sign before them or not), as an int; None for anything else.
    Digits past int()'s 4,300 are too many for any range here: None too."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not _INTEGER(value):
        return None
    try:
        return int(value)
    except ValueError:
        return None


# The default of security.service_ports: the client/server rule's well-known servers.
DEFAULT_SERVICE_PORTS = parse_ports(
    "22,25,53,80,88,110,123,143,389,443,445,465,587,636,993,995,1433,1521,2049,2181,2379,3306,"
    "3389,5432,5439,5672,6379,6443,7000,7001,8080,8443,9042,9092,9200,9300,11211,27017")


# --- who is the client -----------------------------------------------------------------------

def client_is_source(src_port, dst_port, tcp_flags, service_ports: frozenset) -> bool:
    """Whether the source end of a flow record opened the connection.

    In order, the first rule that decides:
    1. tcp-flags: SYN-ACK means the source answered (server); SYN without ACK means it opened.
    2. configured service ports: the end whose port is listed is the server.
    3. the lower port is the server's (a well-known one, below 1024, always is: a rule of
       its own decided nothing more); equal or missing ports: the record's direction.
    """
    if tcp_flags:
        if tcp_flags & ACK:
            return False
        if tcp_flags & SYN:
            return True
    if src_port is None or dst_port is None:
        return True
    src_listed, dst_listed = src_port in service_ports, dst_port in service_ports
    if src_listed != dst_listed:
        return dst_listed
    return dst_port <= src_port


def source_class(src_app: str, dst_app: str) -> str:
    if is_unowned(src_app):
        return INTERNET if is_internet(src_app) else src_app
    return "same_app" if src_app == dst_app else "other_app"


# --- event time ------------------------------------------------------------------------------

def warmed_up(window_start: int, first_window: int, warmup_seconds: int) -> bool:
    """Events (new_dependency, exposure_new) start once the warm-up has passed since the first
    window the job saw: before that every edge would look new."""
    return first_window is not None and window_start >= first_window + warmup_seconds


def silence_deadline(last_seen: int, window_seconds: int, silence_seconds: int) -> int:
    """Epoch seconds at which a key last seen in the window starting at last_seen has been
    silent for silence_seconds, in whole windows: the start of the first window that may
    begin that long after the key's window ended. A key's traffic is known by window only, so
    a window starting before then may hold traffic within the silence, and the key is not
    silent before event time has passed that window."""
    return last_seen + window_seconds + -(-silence_seconds // window_seconds) * window_seconds


class Edge(NamedTuple):
    """What is kept of a known dependency edge."""
    client_app: str
    server_app: str
    port: int
    protocol: int
    first_seen: int
    last_seen: int
    flows: int
    bytes: int

    def seen(self, window_start: int, flows: int, nbytes: int) -> "Edge":
        return self._replace(last_seen=max(self.last_seen, window_start),
                             flows=self.flows + flows, bytes=self.bytes + nbytes)


# --- rejected traffic ------------------------------------------------------------------------

def top(counts: Counter, n: int) -> str:
    """"key=count,..." with the n largest counts, ties by key."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:n]
    return ",".join(f"{k}={v}" for k, v in ranked)


def port_label(port, protocol) -> str:
    return f"{'-' if port is None else port}/{'-' if protocol is None else protocol}"


class RejectSource(NamedTuple):
    """REJECTed flows of one window from one source address to one port of the app (a tuple:
    a window has a thousand, made at its timer, and a frozen dataclass took three to six times
    as long to make)."""
    port: int
    protocol: int
    src_app: str
    src_addr: str
    flows: int
    packets: int
    bytes: int


def reject_rows(window_start: int, app: str, sources, top_n: int, spike: bool) -> list:
    """schemas.security.REJECTED rows: one per port, protocol and source class."""
    sources = list(sources)
    app_total = sum(s.flows for s in sources)
    groups = {}
    for s in sources:
        groups.setdefault((s.port, s.protocol, source_class(s.src_app, app)), []).append(s)
    rows = []
    for (port, protocol, klass), members in groups.items():
        by_addr = Counter()
        for s in members:
            by_addr[s.src_addr] += s.flows
        rows.append((window_start, app, port, protocol, klass,
                     sum(s.flows for s in members), sum(s.packets for s in members),
                     sum(s.bytes for s in members), len(by_addr),
                     ",".join(sorted({s.src_app for s in members})), top(by_addr, top_n),
                     app_total, int(spike)))
    return rows


def spike_evidence(sources, n: int):
    """(top ports, top source addresses) of a window's REJECTs."""
    ports, addrs = Counter(), Counter()
    for s in sources:
        ports[port_label(s.port, s.protocol)] += s.flows
        addrs[s.src_addr] += s.flows
    return top(ports, n), top(addrs, n)


def reject_baseline(history: dict, window_start: int, first_window: int, window_seconds: int,
                    windows: int):
    """(REJECTed flows, windows) over the up to `windows` windows before window_start since
    the job's first window; history maps window start -> flows (absent windows had none)."""
    since = max(first_window, window_start - windows * window_seconds)
    n = max(0, (window_start - since) // window_seconds)
    return sum(v for w, v in history.items() if since <= w < window_start), n


def is_spike(flows: int, baseline_flows: int, baseline_windows: int, factor: int,
             min_flows: int) -> bool:
    """More than factor x the baseline mean, and at least min_flows; no baseline, no spike."""
    return (baseline_windows > 0 and flows >= min_flows
            and flows * baseline_windows > factor * baseline_flows)


# --- scans -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScanRules:
    port_scan_min_ports: int
    port_scan_max_hosts: int
    host_sweep_min_hosts: int
    host_sweep_max_ports: int
    min_reject_percent: int
    evidence_samples: int


def reject_percent(rejected: int, flows: int) -> int:
    return rejected * 100 // flows if flows else 0


def classify_scan(hosts: int, ports: int, reject_pct: int, rules: ScanRules):
    """port_scan: many ports on few hosts; host_sweep: few ports on many hosts; else None."""
    if reject_pct < rules.min_reject_percent:
        return None
    if ports >= rules.port_scan_min_ports and hosts <= rules.port_scan_max_hosts:
        return PORT_SCAN
    if hosts >= rules.host_sweep_min_hosts and ports <= rules.host_sweep_max_ports:
        return HOST_SWEEP
    return None


def _address_order(text):
    """IP addresses' order (IPv4 first, then by value). An address without a colon is an IPv4
    one (of valid addresses, as these are): its value without ipaddress, a fifteenth of the
    time, where a window's scans sort up to 100,000 of them (docs/performance.md, run 29)."""
    if ":" not in text:
        return 4, ipv4_int(text)
    return 6, int(ipaddress.ip_address(text))


def scan_evidence(src_addr, src_apps, hosts, ports, flows, rejected, target_apps, host_list,
                  port_list, samples: int) -> tuple:
    """The fields of schemas.security._SCAN_EVIDENCE from a source's counts and lists (any
    order; src_apps too: the address's owners in the window). Lists, not comma-joined text:
    split again, an app whose name holds a comma (a tag's value may) made two apps that do
    not exist, each with a scan against it (a review)."""
    host_items = sorted(host_list, key=_address_order)
    port_items = sorted(port_list)
    return (src_addr, _app_list(src_apps), hosts, ports, flows, rejected,
            reject_percent(rejected, flows), _app_list(target_apps),
            port_items[0] if port_items else None, port_items[-1] if port_items else None,
            ",".join(host_items[:samples]), ",".join(map(str, port_items[:samples])))


def _app_list(apps) -> str:
    return ",".join(sorted({a for a in apps if a}))


# A scan alert's src_app and target_apps hold at most this many bytes of JSON text each (their
# apps in order while they fit): a sweep across tens of thousands of apps listed them all, an
# alert past the 1 MiB a Kinesis record holds, which fails the job at every restart
# (docs/streaming.md). With the samples at their bound (job.config.KINESIS_EVIDENCE_SAMPLES)
# the largest alert takes less than 985,000 bytes (event_bytes_bound).
ALERT_APPS_BYTES = 256 * 1024
# Where scan_evidence puts the lists of apps.
_SRC_APP, _TARGET_APPS = SCAN.index("src_app") - 1, SCAN.index("target_apps") - 1


def bounded_app_list(apps, most: int = ALERT_APPS_BYTES) -> tuple:
    """(_app_list of `apps`, 0) when its JSON text (as event lines write it) holds at most
    `most` bytes; else (the list of its first apps that fit, how many are left out)."""
    names = sorted({a for a in apps if a})
    text = ",".join(names)
    if len(encode_basestring_ascii(text)) - 2 <= most:
        return text, 0
    size = -1   # no comma before the first
    for kept, name in enumerate(names):
        size += len(encode_basestring_ascii(name)) - 1   # its quotes out, a comma in
        if size > most:
            break
    return ",".join(names[:kept]), len(names) - kept


def scan_alert_line(pattern: str, window_start: int, evidence: tuple, src_apps,
                    target_apps) -> str:
    """The alert of a scan (scan_evidence's `evidence` of `src_apps` and `target_apps`): the
    evidence as it is when both lists are within ALERT_APPS_BYTES, else the lists cut to it
    and what each left out counted (schemas.security.SCAN_ALERTS_CUT). The scans row keeps
    them whole."""
    owners, owners_out = bounded_app_list(src_apps)
    targets, targets_out = bounded_app_list(target_apps)
    if not (owners_out or targets_out):
        return event_line(SCAN_ALERTS[pattern], window_start, evidence)
    values = list(evidence)
    values[_SRC_APP], values[_TARGET_APPS] = owners, targets
    return event_line(SCAN_ALERTS_CUT[pattern], window_start,
                      tuple(values) + (owners_out, targets_out))


# The longest text of a number of an event line: a LONG's (-2**63) and an INT's (-2**31).
_NUMBER_TEXT = {LONG: 20, INT: 11}
# The most bytes a character of an owner value (an app, a resource_id) takes in an event line:
# its lines are ASCII (JSON's escapes), a code point past U+FFFF two of them ("\ud83d\ude00").
OWNER_CHAR_BYTES = 12
# The longest canonical text of an IPv6 address (job.parse writes them so).
_ADDRESS_TEXT = 39


def event_bytes_bound(owner_chars: int, evidence_samples: int, top_sources: int) -> dict:
    """The most bytes of an event line of each schema (schemas.security.EVENT_SCHEMAS, by name:
    the bound of the larger where two share a name) with owner values (apps, resources: one
    field each) of at most `owner_chars` characters, security.evidence_samples and
    reject_top_sources at these values, and every number at its longest. A scan alert's owners
    are lists within ALERT_APPS_BYTES."""
    owner = OWNER_CHAR_BYTES * owner_chars
    flows = _NUMBER_TEXT[LONG]
    texts = {
        "client_app": owner, "server_app": owner, "app": owner, "resource": owner,
        "src_addr": _ADDRESS_TEXT, "src_app": ALERT_APPS_BYTES, "target_apps": ALERT_APPS_BYTES,
        # Each item with its comma: an address, a port (0-65535).
        "hosts_sample": evidence_samples * (_ADDRESS_TEXT + 1),
        "ports_sample": evidence_samples * len("65535,"),
        # "port/protocol=flows" (protocol 0-255), "address=flows".
        "top_ports": top_sources * (len("65535/255=,") + flows),
        "top_sources": top_sources * (_ADDRESS_TEXT + len("=,") + flows),
    }
    bounds = {}
    for schema in EVENT_SCHEMAS:
        size = 1   # the braces, less the comma the last field has not
        for f in schema.fields:
            if f.name == "event":
                value = len(schema.name) + 2
            elif f.kind in _NUMBER_TEXT:
                value = _NUMBER_TEXT[f.kind]
            else:
                value = texts[f.name] + 2
            size += len(f.name) + len('"":,') + value
        bounds[schema.name] = max(size, bounds.get(schema.name, 0))
    return bounds


def scanned_apps(target_apps) -> list:
    """The owned apps a scan reached (risk factor scan_sources)."""
    return sorted(a for a in set(target_apps) if a and not is_unowned(a))


# --- risk ------------------------------------------------------------------------------------

def risk_score(values: dict, weights: dict, scales: dict):
    """(score 0..100, "factor=points,...") where each factor with a weight adds
    weight * min(1, value / scale), normalised so all weights at full scale make 100."""
    total = sum(weights.values())
    points = {f: 100 * w * min(1.0, values[f] / scales[f]) / total
              for f, w in weights.items() if w and values.get(f)}
    ranked = sorted(points.items(), key=lambda kv: (-kv[1], kv[0]))
    return round(sum(points.values())), ",".join(
        f"{f}={round(p)}" for f, p in ranked if round(p))


# --- output ----------------------------------------------------------------------------------

# json.dumps with separators would build an encoder per line.
_JSON = json.JSONEncoder(separators=(",", ":")).encode


def json_line(schema: Schema, values) -> str:
    return _JSON(dict(zip(schema.names, capped(schema, [values])[0])))


def event_line(schema: Schema, time: int, values) -> str:
    return json_line(schema, (schema.name, time) + tuple(values))


# The window tables (dependencies, exposure, internet_egress) were written by Flink's SQL json
# format (Jackson) before the job rendered them; their lines stay as Jackson wrote them: other
# characters than ASCII as they are (UTF-8), except those beyond U+FFFF (an escaped surrogate
# pair), and control characters escaped in upper-case hex.
_JACKSON_SHORT = {"\"": '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n",
                  "\f": "\\f", "\r": "\\r"}


def _jackson_string(text: str) -> str:
    if text.isascii() and text.isprintable():
        return encode_basestring(text)   # in C; escapes only '"' and backslash here
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _JACKSON_SHORT:
            out.append(_JACKSON_SHORT[ch])
        elif code < 0x20:
            out.append(f"\\u{code:04X}")
        elif code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@lru_cache(maxsize=None)
def _long_fields(schema: Schema) -> tuple:
    """(positions of the schema's LONG fields, a function of a row giving their values)."""
    at = tuple(i for i, f in enumerate(schema.fields) if f.kind == LONG)
    values = (lambda row: ()) if not at else (lambda row: (row[at[0]],)) if len(at) == 1 \
        else itemgetter(*at)
    return at, values


def capped(schema: Schema, rows: list) -> list:
    """`rows` with a LONG field's value past 2**63 - 1 as that largest value, as the job's
    aggregates write theirs: a view's sum of a window, or of an edge's life, passed it on bad
    input and was written whole, which a reader of a 64-bit integer refuses (a review)."""
    at, values = _long_fields(schema)
    try:   # in C: max refuses None, which the slower test below lets by
        if max(chain.from_iterable(map(values, rows)), default=0) <= MAX_LONG:
            return rows
    except TypeError:
        if all(value is None or value <= MAX_LONG for row in rows for value in values(row)):
            return rows
    return [tuple(MAX_LONG if i in at and value is not None and value > MAX_LONG else value
                  for i, value in enumerate(row)) for row in rows]


def table_lines(schema: Schema, rows) -> list:
    """Rows (tuples of str, int and None in `schema`'s order) as JSON lines, byte for byte as
    Flink's json format writes them: every field, null for None. When every string of the
    rows is plain (nothing to escape) and where its types are the schema's, a row renders
    through one %-template, in one C call: a window's tables are thousands of rows."""
    rows = capped(schema, rows)
    heads = [f'"{name}":' for name in schema.names]
    heads[0] = "{" + heads[0]
    template, strings = _table_template(schema)
    try:
        # join refuses a value not a string (None among them too): such rows go field by field.
        text = "".join(chain.from_iterable(map(strings, rows)))
    except TypeError:
        text = None
    if text is not None and text.isascii() and text.isprintable() and '"' not in text \
            and "\\" not in text:
        try:
            return list(map(template.__mod__, rows))
        except TypeError:   # %d refuses None and str: the rows go field by field
            pass
    return [",".join([head + (_jackson_string(value) if value.__class__ is str
                              else "null" if value is None else str(value))
                      for head, value in zip(heads, row)]) + "}"
            for row in rows]


@lru_cache(maxsize=None)
def _table_template(schema: Schema) -> tuple:
    """(template, itemgetter of the string fields' values as a tuple) of a schema's rows
    without a null: %d for its integer fields, "%s" for its strings."""
    texts = (STRING, ADDR)
    template = "{" + ",".join(f'"{f.name}":' + ('"%s"' if f.kind in texts else "%d")
                              for f in schema.fields) + "}"
    at = [i for i, f in enumerate(schema.fields) if f.kind in texts]
    return template, (lambda row: tuple(row[i] for i in at)) if len(at) < 2 else itemgetter(*at)


# --- one window's conversations, reduced ---------------------------------------------------
#
# The views need of a window's conversations only sums and sets of addresses per view key, so
# each batch's conversations are reduced to these in the attribution step and the batches of a
# window merged where it closes: no conversation row leaves the Python worker that made it.

# schemas.outputs.CONVERSATION: its dimensions, then the sums from `flows` on.
CONVERSATION_DIMENSIONS = CONVERSATION.names.index("flows")

# A set's member: its row (the key's position in its view) and an address code
# (job.addresses), in one int64.
ADDRESS_BITS = 34
ADDRESS_MASK = (1 << ADDRESS_BITS) - 1


class WindowViews:
    """One window's conversations, reduced per view (or a batch's share of them):

    - dependencies: (client app, server app, port, protocol) -> [flows, packets, bytes],
      ACCEPTed and both ends owned; their distinct client and server addresses in `sets`;
    - exposure: (app, resource, port, protocol) -> [flows, packets, bytes], ACCEPTed from the
      internet to an owned server; its distinct internet clients in `sets`;
    - egress: (app, port, protocol, action) -> [flows, packets, bytes, bytes sent], to
      internet servers; its distinct destinations in `sets`;
    - rejects: (destination app, port, protocol, source app, source address) -> [flows,
      packets, bytes], the REJECTed records in the direction logged;
    - records: every record in the direction logged, for the scans view, as columns
      (RECORD_COLUMNS) of integer codes: addresses as codes (job.addresses), apps by their code in
      `apps`, a missing port -1, rejected 0 or 1.

    `sets` (SETS: the view each reads) and `records` hold chunks of int64 arrays, one a merged
    batch; a set's members are row << ADDRESS_BITS | address code, the row the key's position
    in its view. Nothing here is a Python object a flow or an address: a batch is encoded and
    decoded as arrays, and the close merges them and counts distinct addresses in numpy
    (docs/performance.md, run 28). Which conversations and records each view reads is
    docs/security.md's."""
    __slots__ = ("dependencies", "exposure", "egress", "rejects", "sets", "records", "apps",
                 "others", "_rows")
    RECORD_COLUMNS = ("src_addr", "src_app", "dst_addr", "dst_port", "dst_app", "flows",
                      "rejected")
    SETS = ("dependencies", "dependencies", "exposure", "egress")

    def __init__(self):
        self.dependencies, self.exposure, self.egress, self.rejects = {}, {}, {}, {}
        self.sets = tuple([] for _ in self.SETS)
        self.records = tuple([] for _ in self.RECORD_COLUMNS)
        self.apps = {}     # app -> its code in the records
        self.others = {}   # address other than IPv4 -> its position (address_code)
        self._rows = {}    # view -> {key: row}, made when a batch is merged into this one

    def is_empty(self) -> bool:
        return not (self.dependencies or self.exposure or self.egress or self.rejects
                    or self.records[0])

    def add_set(self, which: int, rows: np.ndarray, codes: np.ndarray) -> None:
        """Adds (row, address code) pairs to set `which` (SETS), as given or repeated."""
        if len(rows):
            self.sets[which].append(np.unique(rows << ADDRESS_BITS | codes))

    def add_records(self, *columns) -> None:
        """Adds records as RECORD_COLUMNS arrays (int64 codes)."""
        if len(columns[0]):
            for chunks, column in zip(self.records, columns):
                chunks.append(column)

    @classmethod
    def of_conversations(cls, rows) -> "WindowViews":
        """Reduces conversation rows (schemas.outputs.CONVERSATION) of one window."""
        return cls.of_conversation_sums((row[:CONVERSATION_DIMENSIONS],
                                         row[CONVERSATION_DIMENSIONS:]) for row in rows)

    @classmethod
    def of_conversation_sums(cls, items) -> "WindowViews":
        """of_conversations from (dimensions, sums) pairs, as job.attribute.Conversations
        holds them: no row tuple is built per conversation."""
        dependencies, exposure, egress, rejects, records = {}, {}, {}, {}, []
        record = records.extend
        for ((_window, client_app, client_addr, server_app, server_addr, resource, port,
              client_port, protocol, action),
             (flows, packets, nbytes, client_flows, client_packets, client_bytes)) in items:
            if not is_unowned(server_app):
                if action == ACCEPT:
                    if not is_unowned(client_app):
                        key = (client_app, server_app, port, protocol)
                        sums = dependencies.get(key)
                        if sums is None:
                            dependencies[key] = [flows, packets, nbytes, {client_addr: None},
                                                 {server_addr: None}]
                        else:
                            sums[0] += flows
                            sums[1] += packets
                            sums[2] += nbytes
                            sums[3][client_addr] = None
                            sums[4][server_addr] = None
                    elif is_internet(client_app):
                        key = (server_app, resource, port, protocol)
                        sums = exposure.get(key)
                        if sums is None:
                            exposure[key] = [flows, packets, nbytes, {client_addr: None}]
                        else:
                            sums[0] += flows
                            sums[1] += packets
                            sums[2] += nbytes
                            sums[3][client_addr] = None
            elif is_internet(server_app) and not is_internet(client_app):
                key = (client_app, port, protocol, action)
                sums = egress.get(key)
                if sums is None:
                    egress[key] = [flows, packets, nbytes, client_bytes, {server_addr: None}]
                else:
                    sums[0] += flows
                    sums[1] += packets
                    sums[2] += nbytes
                    sums[3] += client_bytes
                    sums[4][server_addr] = None
            # The records in the direction logged: from the client, and REJECTed ones from
            # the server (to the client's port, kept for them).
            rejected = action == REJECT
            if client_flows:
                record((client_addr, client_app, server_addr, port, server_app, client_flows,
                        rejected))
                if rejected:
                    _add_reject(rejects, (server_app, port, protocol, client_app, client_addr),
                                client_flows, client_packets, client_bytes)
            if rejected and flows > client_flows:
                record((server_addr, server_app, client_addr, client_port, client_app,
                        flows - client_flows, True))
                _add_reject(rejects, (client_app, client_port, protocol, server_app,
                                      server_addr),
                            flows - client_flows, packets - client_packets,
                            nbytes - client_bytes)
        return cls.of_sets(dependencies, exposure, egress, rejects, records)

    @classmethod
    def of_sets(cls, dependencies, exposure, egress, rejects, records) -> "WindowViews":
        """The views from their Python form (as batches of earlier releases held them too):
        each view's distinct addresses as dict keys (or sets) after its sums, the records
        one flat list, RECORD_COLUMNS after RECORD_COLUMNS."""
        views = cls()
        others = views.others
        for which, (view, at) in enumerate(((dependencies, 3), (dependencies, 4),
                                            (exposure, 3), (egress, 4))):
            pairs = [(row, address_code(address, others))
                     for row, sums in enumerate(view.values()) for address in sums[at]]
            if pairs:
                rows, codes = np.array(pairs, np.int64).T
                views.add_set(which, rows, codes)
        views.dependencies = {key: sums[:3] for key, sums in dependencies.items()}
        views.exposure = {key: sums[:3] for key, sums in exposure.items()}
        views.egress = {key: sums[:4] for key, sums in egress.items()}
        views.rejects = rejects
        width = len(cls.RECORD_COLUMNS)
        src, src_app, dst, port, dst_app, flows, rejected = (records[i::width]
                                                             for i in range(width))
        apps = views.apps
        views.add_records(*(np.array(column, np.int64) for column in (
            [address_code(a, others) for a in src],
            [apps.setdefault(a, len(apps)) for a in src_app],
            [address_code(a, others) for a in dst],
            [-1 if p is None else p for p in port],
            [apps.setdefault(a, len(apps)) for a in dst_app], flows, rejected)))
        return views

    def merge(self, other: "WindowViews") -> None:
        """Adds another batch of the same window (whose containers this one may take over)."""
        if self.is_empty():
            for name in self.__slots__:
                setattr(self, name, getattr(other, name))
            self._rows = {}
            return
        apps = _codes_in(self.apps, other.apps)
        others = _codes_in(self.others, other.others)
        rows = {name: self._merge_rows(name, getattr(other, name))
                for name in ("dependencies", "exposure", "egress")}
        for key, sums in other.rejects.items():
            _add_reject(self.rejects, key, *sums)
        for mine, name, theirs in zip(self.sets, self.SETS, other.sets):
            for chunk in theirs:
                mine.append(rows[name][chunk >> ADDRESS_BITS] << ADDRESS_BITS
                            | _recoded(chunk & ADDRESS_MASK, others))
        if other.records[0]:
            src, src_app, dst, port, dst_app, flows, rejected = (
                np.concatenate(chunks) for chunks in other.records)
            self.add_records(_recoded(src, others), apps[src_app], _recoded(dst, others), port,
                             apps[dst_app], flows, rejected)

    def _merge_rows(self, name: str, theirs: dict) -> np.ndarray:
        """Adds a view's rows; the row in this one of each of `theirs`."""
        mine = getattr(self, name)
        rows = self._rows.get(name)
        if rows is None:
            rows = self._rows[name] = {key: row for row, key in enumerate(mine)}
        found = np.empty(len(theirs), np.int64)
        for i, (key, sums) in enumerate(theirs.items()):
            row = rows.get(key)
            if row is None:
                rows[key] = found[i] = len(mine)
                mine[key] = sums
            else:
                found[i] = row
                kept = mine[key]
                for j, value in enumerate(sums):
                    kept[j] += value
        return found

    def distinct_counts(self) -> list:
        """For each of SETS, the distinct addresses of each row of its view, in row order."""
        counts = []
        for name, chunks in zip(self.SETS, self.sets):
            n = len(getattr(self, name))
            members = np.unique(np.concatenate(chunks)) if chunks else np.zeros(0, np.int64)
            counts.append(np.bincount(members >> ADDRESS_BITS, minlength=n).tolist())
        return counts

    def sources(self, min_targets: int) -> dict:
        """source address -> [flows, rejected flows, destination addresses, destination
        ports, destination apps, source apps], for the sources that reach min_targets distinct
        addresses or ports (a missing port is not a port), in the order of their first record.
        A source is its address, whichever owners it had in the window: split by owner, an
        address that changed owner inside the window would show two smaller scans, or none. It
        reaches no more targets than it has records: only the addresses with enough records
        are grouped."""
        if not self.records[0]:
            return {}
        src, src_app, dst, port, dst_app, flows, rejected = (
            np.concatenate(chunks) for chunks in self.records)
        _, inverse, n_records = np.unique(src, return_inverse=True, return_counts=True)
        at = np.flatnonzero(n_records[inverse.reshape(-1)] >= min_targets)
        if not len(at):
            return {}
        radix = OTHER_ADDRESSES + len(self.others)
        g = grouped([(src[at], radix)])
        hosts, host_pairs = g.distinct(dst[at], radix)
        has_port = port[at] >= 0
        ports, port_pairs = g.distinct(port[at][has_port], 1 << 16, has_port)
        kept = np.flatnonzero((hosts >= min_targets) | (ports >= min_targets))
        if not len(kept):
            return {}
        n_apps = len(self.apps)
        apps, app_pairs = g.distinct(dst_app[at], n_apps)
        _, owner_pairs = g.distinct(src_app[at], n_apps)
        totals = g.sums(flows[at])
        refused = g.sums(flows[at] * rejected[at])
        others, app_names = list(self.others), list(self.apps)
        found = {}
        for k in kept.tolist():
            found[address_text(int(src[at[g.first[k]]]), others)] = [
                totals[k], refused[k],
                [address_text(c, others) for c in _members(host_pairs, k, radix)],
                _members(port_pairs, k, 1 << 16),
                [app_names[c] for c in _members(app_pairs, k, n_apps)],
                [app_names[c] for c in _members(owner_pairs, k, n_apps)]]
        return found


def _members(pairs: np.ndarray, group: int, radix: int) -> list:
    """Group `group`'s codes among Grouped.distinct's sorted pairs."""
    begin, end = np.searchsorted(pairs, (group * radix, (group + 1) * radix))
    return (pairs[begin:end] - group * radix).tolist()


def _codes_in(mine: dict, theirs: dict) -> np.ndarray:
    """Each of `theirs`' values (codes by position) as its code in `mine`, added there if
    new."""
    return np.array([mine.setdefault(value, len(mine)) for value in theirs], np.int64)


def _recoded(codes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Address codes of a batch whose other addresses are at `others` (_codes_in) here."""
    if not len(others):
        return codes
    other = codes >= OTHER_ADDRESSES
    return np.where(other, OTHER_ADDRESSES + others[np.where(other, codes - OTHER_ADDRESSES, 0)],
                    codes)


def _add_reject(rejects: dict, key: tuple, flows: int, packets: int, nbytes: int) -> None:
    sums = rejects.get(key)
    if sums is None:
        rejects[key] = [flows, packets, nbytes]
    else:
        sums[0] += flows
        sums[1] += packets
        sums[2] += nbytes


@dataclass(frozen=True)
class ViewRules:
    """What the views computed at a window's close need of the `security` configuration."""
    scan_report_min_targets: int
    scans: ScanRules
    risk_weights: dict
    risk_scales: dict


@dataclass
class WindowResults:
    """A window's view rows (schemas.security: DEPENDENCY, EXPOSURE, INTERNET_EGRESS,
    REJECT_SOURCE as tuples), and the scans, alert events and risk as JSON lines."""
    dependencies: list
    exposure: list
    egress: list
    reject_sources: list
    scans: list
    events: list
    risk: list


def _edge_order(key) -> tuple:
    """Edges by client and server app, port, then protocol (either may be missing: None,
    first)."""
    return key[:2] + (-1 if key[2] is None else key[2], -1 if key[3] is None else key[3])


def _first(room: int, new: list, order) -> list:
    """The first `room` of `new` by `order`; all of them, as they are, when they fit."""
    return new if len(new) <= room else sorted(new, key=order)[:max(0, room)]


def _between_apps(edge_key) -> bool:
    """Whether a dependency's key (client app, server app, ...) joins two of the estate's apps."""
    return not (is_unowned(edge_key[0]) or is_unowned(edge_key[1]))


def window_results(window_start: int, views: WindowViews, rules: ViewRules) -> WindowResults:
    """The windowed views of docs/security.md from one window's reduced conversations."""
    w = window_start
    clients, servers, internet_clients, destinations = views.distinct_counts()
    # Views restored from a savepoint of a release that took AWS's published ranges for apps
    # may hold such an app's dependencies, exposure and egress: they are none.
    dependencies = [(w,) + key + tuple(s) + both
                    for (key, s), both in zip(views.dependencies.items(), zip(clients, servers))
                    if _between_apps(key)]
    exposure = [(w,) + key + tuple(s) + (n,)
                for (key, s), n in zip(views.exposure.items(), internet_clients)
                if not is_unowned(key[0])]
    egress = [(w,) + key + tuple(s) + (n,)
              for (key, s), n in zip(views.egress.items(), destinations)
              if not is_internet(key[0])]
    reject_sources = [(w,) + key + tuple(s) for key, s in views.rejects.items()]

    scans, events, scan_sources = [], [], {}
    for src_addr, (flows, rejected, hosts, ports, apps, owners) in views.sources(
            rules.scan_report_min_targets).items():
        evidence = scan_evidence(src_addr, owners, len(hosts), len(ports), flows, rejected,
                                 apps, hosts, ports, rules.scans.evidence_samples)
        pattern = classify_scan(len(hosts), len(ports), reject_percent(rejected, flows),
                                rules.scans)
        scans.append(json_line(SCAN, (w,) + evidence + (pattern or "",)))
        if pattern:
            events.append(scan_alert_line(pattern, w, evidence, owners, apps))
            for app in scanned_apps(apps):
                scan_sources.setdefault(app, set()).add(src_addr)

    risk = [json_line(RISK, row + risk_score(dict(zip(RISK_INPUT.names, row)),
                                             rules.risk_weights, rules.risk_scales))
            for row in _risk_inputs(w, views, scan_sources)]
    return WindowResults(dependencies, exposure, egress, reject_sources, scans, events, risk)


def _risk_inputs(window_start: int, views: WindowViews, scan_sources: dict):
    """schemas.security.RISK_INPUT rows: one per owned app with any factor's input in the
    window (a factor may still be 0, e.g. egress with nothing sent)."""
    apps = {}

    def app(name):
        factors = apps.get(name)
        if factors is None:
            factors = apps[name] = {"exposed": {}, "rejected_flows": 0, "egress_bytes": 0,
                                    "dependencies": set(), "dependents": set()}
        return factors

    for (server_app, _resource, port, protocol) in views.exposure:
        if not is_unowned(server_app):
            app(server_app)["exposed"][port_label(port, protocol)] = None   # ordered set
    for (dst_app, _port, _protocol, _src_app, _src_addr), sums in views.rejects.items():
        if not is_unowned(dst_app):
            app(dst_app)["rejected_flows"] += sums[0]
    for (client_app, _port, _protocol, _action), sums in views.egress.items():
        if not is_unowned(client_app):
            app(client_app)["egress_bytes"] += sums[3]
    for client_app, server_app, port, protocol in filter(_between_apps, views.dependencies):
        app(client_app)["dependencies"].add((server_app, port, protocol))
        app(server_app)["dependents"].add(client_app)
    for name in scan_sources:
        app(name)
    for name, f in apps.items():
        exposed = f["exposed"]
        yield (window_start, name, len(exposed), ",".join(exposed) if exposed else None,
               f["rejected_flows"], len(scan_sources.get(name, ())), f["egress_bytes"],
               len(f["dependencies"]), len(f["dependents"]))


# --- events across windows -----------------------------------------------------------------

class SecurityEvents:
    """The views' state across windows, for every key at once: dependency edges
    (new_dependency, dependency_gone), each app's exposed resource ports (exposure_new) and
    REJECT history (the `rejected` rows, reject_spike), the job's first and latest windows, and
    the closed windows waiting for event time to pass them.

    add_window holds a closed window's rows; advance(timestamp, ended) is called at every
    event-time timer: it takes the windows that event time has passed, in order, then checks
    what went silent, exactly as a per-key function would at that key's timers (a key's state
    changes only when one of its windows is taken, and is checked right after). `ended`: the
    input ended and the final watermark fires the remaining timers (timers asked for meanwhile
    may not fire): an edge is then gone if the input went on past its silence and no window of
    it before that is still held. Once such a call has taken every window held, later ones
    change nothing (`settled`): the final watermark fires every timer left, most of them after
    that (the bench's 30 windows: 60 of 90 calls). state() is plain tuples, dicts, str and
    int, without the windows held (kept apart by the caller, who adds them again after a
    restore)."""

    def __init__(self, window_seconds: int, rules, state: tuple = None):
        self.window_seconds = window_seconds
        self.rules = rules
        self.pending = {}   # window start -> its rows, until event time passes it
        # An `ended` advance took every window held, and none came since: advance would find
        # nothing to do (the edges left are silent past the latest window, exposure is not
        # forgotten after the last window).
        self.settled = False
        # What the caps kept out in the last advance (schemas.outputs.COUNTERS names): an input
        # past them shows there. Counts, not state.
        self.counts = Counter()
        # edges: key -> Edge as a tuple; exposed: app -> {"resource port/protocol": (first
        # window, last window)}; history: app -> {window start: REJECTed flows}.
        (self.first, self.latest, edges, self.exposed,
         self.history) = state or (None, None, {}, {}, {})
        # Edges of a release that took AWS's published ranges for apps would go silent, each a
        # dependency_gone: they are no dependencies.
        self.edges = {key: edge for key, edge in edges.items() if _between_apps(key)}
        # No edge's, nor exposed port's, last window is before these (None: not known, as
        # after a start or restore). A timer whose silence horizon is before them looks at
        # none of them, where each timer looked at every edge and exposed port (up to the
        # totals' 100,000 each) for one gone silent; a look at all finds them again. Not state.
        self._edges_floor = self._exposed_floor = None

    def state(self) -> tuple:
        return (self.first, self.latest, self.edges, self.exposed, self.history)

    def window_end_ms(self, window_start: int) -> int:
        return (window_start + self.window_seconds) * 1000

    def add_window(self, window_start: int, dependencies, exposure, reject_sources) -> int:
        """Holds a closed window's rows (schemas.security DEPENDENCY, EXPOSURE, REJECT_SOURCE
        tuples); returns the event time (epoch ms) at which to call advance for it."""
        # Rows of a window held in a savepoint of a release that took AWS's published ranges
        # for apps may name one (window_results leaves them out of new ones).
        self.pending[window_start] = (
            [row for row in dependencies if _between_apps(row[1:5])],
            [row for row in exposure if not is_unowned(row[1])], reject_sources)
        self.settled = False
        self.first = window_start if self.first is None else min(self.first, window_start)
        self.latest = window_start if self.latest is None else max(self.latest, window_start)
        return self.window_end_ms(window_start) - 1

    def advance(self, timestamp: int, ended: bool):
        """(event lines, `rejected` lines, event times (epoch ms) to be called at again);
        `counts` holds what its caps kept out."""
        events, rejected, timers = [], [], set()
        self.counts = Counter()
        for window_start in sorted(w for w in self.pending
                                   if self.window_end_ms(w) - 1 <= timestamp):
            dependencies, exposure, reject_sources = self.pending.pop(window_start)
            # What the timers before this window's have forgotten by now: after the input's
            # end, the deadline timers asked for meanwhile may not fire.
            self._forget_exposure(window_start * 1000 - 1)
            self._dependencies(window_start, dependencies, events, timers)
            self._exposure(window_start, exposure, events, timers)
            self._trim(window_start, events)
            self._rejects(window_start, reject_sources, events, rejected)
        self._silent_edges(timestamp, ended, events)
        if not ended:
            self._forget_exposure(timestamp)
        self.settled = ended and not self.pending
        return events, rejected, timers

    def _edge_deadline(self, edge: Edge) -> int:
        return silence_deadline(edge.last_seen, self.window_seconds,
                                self.rules.dependency_silence_seconds)

    def _dependencies(self, window_start, rows, events, timers):
        warm = warmed_up(window_start, self.first, self.rules.warmup_seconds)
        kept = self._kept_edges([row[1:5] for row in rows if row[1:5] not in self.edges])
        for row in rows:
            key = row[1:5]
            stored = self.edges.get(key)
            if stored is None:
                if key not in kept:
                    continue
                if warm:
                    # new_dependency: the row's fields, first_seen after protocol.
                    events.append(event_line(NEW_DEPENDENCY, window_start,
                                             key + (window_start,) + row[5:]))
                edge = Edge(*key, window_start, window_start, 0, 0)
            else:
                edge = Edge(*stored)
            edge = edge.seen(window_start, row[5], row[7])
            self.edges[key] = tuple(edge)
            timers.add(self._edge_deadline(edge) * 1000 - 1)
        if rows and self._edges_floor is not None:
            self._edges_floor = min(self._edges_floor, window_start)

    def _kept_edges(self, keys) -> set:
        """Of a window's new edges, those a pair's cap keeps (the lowest ports first). An app
        sweeping another's ports (east-west scanning, accepted) made an edge a port: pushing
        out the longest silent for them made a new_dependency and a dependency_gone a port
        past the cap every window of the sweep, and the pair's real edges gone. Past the cap
        an edge is counted, not kept: the sweep's first window reports what fits, its next
        ones nothing, and the known edges stay."""
        cap = self.rules.dependency_max_ports
        by_pair = {}
        for key in keys:
            by_pair.setdefault(key[:2], []).append(key)
        if not by_pair:
            return set()
        held = Counter(key[:2] for key in self.edges if key[:2] in by_pair)
        kept = []
        for pair, new in by_pair.items():
            kept += _first(cap - held[pair], new, _edge_order)
        if len(kept) < len(keys):
            self.counts["dependency_edges_capped"] += len(keys) - len(kept)
        # Many pairs each at its cap (a sweep across many apps) grew the state without a
        # bound: past the total, a new edge is kept out as past a pair's cap.
        within = _first(self.rules.dependency_max_total_edges - len(self.edges), kept,
                        _edge_order)
        if len(within) < len(kept):
            self.counts["dependency_edges_total_capped"] += len(kept) - len(within)
        return set(within)

    def _silent_edges(self, timestamp, ended, events):
        if not ended and self._edges_floor is not None and silence_deadline(
                self._edges_floor, self.window_seconds,
                self.rules.dependency_silence_seconds) * 1000 - 1 > timestamp:
            return   # none silent yet
        held = {}
        if ended:
            for window_start, (dependencies, _, _) in self.pending.items():
                for row in dependencies:
                    held[row[1:5]] = min(held.get(row[1:5], window_start), window_start)
        for key, stored in list(self.edges.items()):
            edge = Edge(*stored)
            deadline = self._edge_deadline(edge)
            if ended:
                silent = (deadline <= self.latest
                          and held.get(key, deadline) >= deadline)
            else:
                silent = deadline * 1000 - 1 <= timestamp
            if silent:
                events.append(event_line(DEPENDENCY_GONE, deadline, edge))
                del self.edges[key]
        self._edges_floor = min((edge[5] for edge in self.edges.values()), default=None)

    def _exposure_deadline_ms(self, last_seen: int) -> int:
        return silence_deadline(last_seen, self.window_seconds,
                                self.rules.exposure_silence_seconds) * 1000

    def _exposure(self, window_start, rows, events, timers):
        by_app = {}
        for row in rows:
            by_app.setdefault(row[1], []).append(row)
        warm = warmed_up(window_start, self.first, self.rules.warmup_seconds)
        # Past an app's cap a new port is counted, not kept: forgetting the longest silent to
        # make room gave an exposure_new a port every window of a scan its resources accept
        # (or of answers rule 3 took for a service on an ephemeral port), and pushed out the
        # app's known ports.
        cap = self.rules.exposure_max_ports
        # Likewise past the total of all apps (an internet scan across many). When the window
        # may pass it, apps in order of name: which ports fit is the input's, not the
        # batches' order.
        room = self.rules.exposure_max_total_ports - sum(map(len, self.exposed.values()))
        for app, app_rows in by_app.items() if len(rows) <= room else sorted(by_app.items()):
            seen = self.exposed.get(app, {})
            known_ports = None   # the app's ports before this window, for an exposure_new
            for row in sorted(app_rows, key=lambda r: (r[2], str(r[3]), str(r[4]))):
                _, _, resource, port, protocol, flows = row[:6]
                label = port_label(port, protocol)
                key = f"{resource} {label}"
                stored = seen.get(key)
                if stored is None:
                    if len(seen) >= cap or room <= 0:
                        self.counts["exposure_ports_capped" if len(seen) >= cap
                                    else "exposure_ports_total_capped"] += 1
                        continue
                    room -= 1
                    if warm:
                        if known_ports is None:
                            known_ports = {k.split(" ", 1)[1] for k, s in seen.items()
                                           if s[0] < window_start}
                        events.append(event_line(EXPOSURE_NEW, window_start, (
                            app, resource, port, protocol, flows, row[8],
                            int(label in known_ports))))
                    stored = (window_start, window_start)
                seen[key] = (stored[0], max(stored[1], window_start))
            if seen:
                self.exposed[app] = seen
        if by_app:
            timers.add(self._exposure_deadline_ms(window_start) - 1)
            if self._exposed_floor is not None:
                self._exposed_floor = min(self._exposed_floor, window_start)

    def _trim(self, window_start, events):
        """A state restored above a total bound (with a lowered setting, or from a release
        without one) forgets its longest silent edges, each reported gone, and exposed ports
        down to the bound, counted as kept out by it. After the window is taken: before, what
        it saw could be the longest silent, gone while its traffic went on, then kept out as
        new, counted twice."""
        excess = len(self.edges) - self.rules.dependency_max_total_edges
        if excess > 0:
            self.counts["dependency_edges_total_capped"] += excess
            for key in heapq.nsmallest(excess, self.edges,
                                       key=lambda k: (self.edges[k][5], _edge_order(k))):
                events.append(event_line(DEPENDENCY_GONE, window_start, self.edges.pop(key)))
        excess = sum(map(len, self.exposed.values())) - self.rules.exposure_max_total_ports
        if excess > 0:
            self.counts["exposure_ports_total_capped"] += excess
            for _, app, key in heapq.nsmallest(excess, (
                    (s[1], app, key) for app, seen in self.exposed.items()
                    for key, s in seen.items())):
                seen = self.exposed[app]
                del seen[key]
                if not seen:
                    del self.exposed[app]

    def _forget_exposure(self, timestamp):
        # _exposure_deadline_ms(last) - 1 <= timestamp, solved for the last window seen once;
        # the exposed ports are looked at only when the earliest last window may be past it.
        horizon = (timestamp + 1) // 1000 - silence_deadline(
            0, self.window_seconds, self.rules.exposure_silence_seconds)
        if self._exposed_floor is not None and self._exposed_floor > horizon:
            return
        floor = None
        for app, seen in list(self.exposed.items()):
            for key in [k for k, s in seen.items() if s[1] <= horizon]:
                del seen[key]
            if not seen:
                del self.exposed[app]
            else:
                last = min(s[1] for s in seen.values())
                floor = last if floor is None else min(floor, last)
        self._exposed_floor = floor

    def _rejects(self, window_start, rows, events, rejected):
        by_app = {}
        for row in rows:
            by_app.setdefault(row[1], []).append(RejectSource(*row[2:]))
        rules = self.rules
        for app, sources in by_app.items():
            history = self.history.setdefault(app, {})
            flows = sum(s.flows for s in sources)
            spike = False
            if not is_unowned(app):
                baseline_flows, baseline_windows = reject_baseline(
                    history, window_start, self.first, self.window_seconds,
                    rules.reject_baseline_windows)
                spike = is_spike(flows, baseline_flows, baseline_windows,
                                 rules.reject_spike_factor, rules.reject_spike_min_flows)
            rejected.extend(json_line(REJECTED, row) for row in reject_rows(
                window_start, app, sources, rules.reject_top_sources, spike))
            if spike:
                events.append(event_line(REJECT_SPIKE, window_start, (
                    app, flows, baseline_flows, baseline_windows)
                    + spike_evidence(sources, rules.reject_top_sources)))
            history[window_start] = flows
            horizon = window_start - rules.reject_baseline_windows * self.window_seconds
            for old in [w for w in history if w < horizon]:
                del history[old]
