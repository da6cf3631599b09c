"""Schemas of the security and dependency views (job.security, job.flink.security).

Windowed outputs are one row per window and key; events share the folder `security_events` and
start with `event` (the schema name) and `time` (epoch seconds, event time). Lists are carried
as comma-separated strings. docs/security.md describes every field and rule.
"""
from flowdredge.schemas.fields import BYTES, INT, LONG, STRING, Field, Schema

# Owner apps that are not apps: an end without an owner (job.attribute).
INTERNET = "internet"
UNATTRIBUTED = "unattributed"
UNOWNED_APPS = (INTERNET, UNATTRIBUTED)
# Owners of AWS's published ranges (metadata.ip_ranges): aws:<service>:<region>.
AWS_SERVICE_PREFIX = "aws:"


def is_internet(app: str) -> bool:
    """Whether the security views take an end for the internet: `internet`, or one of AWS's
    published ranges, which name public addresses of any AWS customer (EC2's hold the
    scanners hosted there) and AWS's public endpoints (S3's for egress)."""
    return app == INTERNET or app.startswith(AWS_SERVICE_PREFIX)


def is_reserved_app(app: str) -> bool:
    """Whether a changelog's app name is one the job gives ends itself: an owner so named would
    be taken for the internet or for no owner (job.ownership refuses it)."""
    return app in UNOWNED_APPS or app.startswith(AWS_SERVICE_PREFIX)


def is_unowned(app: str) -> bool:
    """Whether an end is no app of the estate's: the internet (is_internet) or unattributed."""
    return app == UNATTRIBUTED or is_internet(app)


# Output folder names.
DEPENDENCIES = "dependencies"
REJECTED_OUTPUT = "rejected"
EXPOSURE_OUTPUT = "exposure"
EGRESS_OUTPUT = "internet_egress"
SCANS = "scans"
RISK_OUTPUT = "risk"
EVENTS = "security_events"
OUTPUTS = (DEPENDENCIES, REJECTED_OUTPUT, EXPOSURE_OUTPUT, EGRESS_OUTPUT, SCANS, RISK_OUTPUT,
           EVENTS)

_WINDOW = Field("window_start", LONG, "window start, epoch seconds")

# One batch's conversations reduced for the views (attribution -> the window's close).
SECURITY_BATCH = Schema("security_batch", (
    Field("win_start", LONG, "window start, epoch seconds"),
    Field("payload", BYTES, "job.codec-encoded job.security.WindowViews"),
))
_VOLUME = (Field("flows", LONG, "flow log lines"), Field("packets", LONG), Field("bytes", LONG))


def _event(name, fields):
    return Schema(name, (Field("event", STRING, f"always {name}"),
                         Field("time", LONG, "epoch seconds, event time")) + fields)


DEPENDENCY = Schema("dependency", (
    _WINDOW,
    Field("client_app", STRING), Field("server_app", STRING),
    Field("port", INT, "service port (the server's)"), Field("protocol", INT),
) + _VOLUME + (
    Field("clients", LONG, "distinct client addresses"),
    Field("servers", LONG, "distinct server addresses"),
))

NEW_DEPENDENCY = _event("new_dependency", DEPENDENCY.fields[1:5] + (
    Field("first_seen", LONG, "start of the first window with the edge, epoch seconds"),
) + DEPENDENCY.fields[5:])

DEPENDENCY_GONE = _event("dependency_gone", DEPENDENCY.fields[1:5] + (
    Field("first_seen", LONG, "epoch seconds"),
    Field("last_seen", LONG, "start of the last window with the edge, epoch seconds"),
    Field("flows", LONG, "flows over the edge's life"), Field("bytes", LONG),
))

EXPOSURE = Schema("exposure", (
    _WINDOW, Field("app", STRING), Field("resource", STRING, "resource_id of the server end"),
    Field("port", INT), Field("protocol", INT),
) + _VOLUME + (Field("internet_clients", LONG, "distinct internet client addresses"),))

EXPOSURE_NEW = _event("exposure_new", EXPOSURE.fields[1:5] + (
    Field("flows", LONG), Field("internet_clients", LONG),
    Field("app_port_known", INT, "1 when another resource of the app accepted internet traffic "
                                 "on this port in an earlier window"),
))

INTERNET_EGRESS = Schema("internet_egress", (
    _WINDOW, Field("app", STRING, "client app (or unattributed)"), Field("port", INT),
    Field("protocol", INT), Field("action", STRING),
) + _VOLUME + (
    Field("bytes_sent", LONG, "bytes of the records from the client to the internet"),
    Field("destinations", LONG, "distinct internet addresses"),
))

# REJECTed flows per window, destination and source address (job.security.window_results ->
# SecurityEvents).
REJECT_SOURCE = Schema("reject_source", (
    _WINDOW, Field("app", STRING, "destination app"), Field("port", INT), Field("protocol", INT),
    Field("src_app", STRING), Field("src_addr", STRING)) + _VOLUME)

SOURCE_CLASSES = ("same_app", "other_app", INTERNET, UNATTRIBUTED)

REJECTED = Schema("rejected", (
    _WINDOW, Field("app", STRING, "destination app"), Field("port", INT), Field("protocol", INT),
    Field("source_class", STRING, " / ".join(SOURCE_CLASSES)),
) + _VOLUME + (
    Field("sources", LONG, "distinct source addresses"),
    Field("source_apps", STRING, "the source apps, comma-separated"),
    Field("top_sources", STRING, "addr=flows, most flows first, comma-separated"),
    Field("app_rejected_flows", LONG, "REJECTed flows to the app in the window, all ports"),
    Field("spike", INT, "1 when the app's REJECTs spiked in the window (see reject_spike)"),
))

REJECT_SPIKE = _event("reject_spike", (
    Field("app", STRING), Field("rejected_flows", LONG, "in the window, all ports"),
    Field("baseline_flows", LONG, "REJECTed flows over the baseline windows"),
    Field("baseline_windows", INT, "windows in the baseline (missing windows count as 0)"),
    Field("top_ports", STRING, "port/protocol=flows, most flows first"),
    Field("top_sources", STRING, "addr=flows, most flows first"),
))

PORT_SCAN = "port_scan"
HOST_SWEEP = "host_sweep"

_SCAN_EVIDENCE = (
    Field("src_addr", STRING),
    Field("src_app", STRING, "the address's owner; its owners, comma-separated, when it changed "
                             "owner inside the window"),
    Field("hosts", LONG, "distinct destination addresses"),
    Field("ports", LONG, "distinct destination ports"),
    Field("flows", LONG), Field("rejected_flows", LONG),
    Field("reject_percent", INT, "rejected_flows * 100 // flows"),
    Field("target_apps", STRING, "destination apps, comma-separated"),
    Field("min_port", INT), Field("max_port", INT),
    Field("hosts_sample", STRING, "the first security.evidence_samples hosts, sorted"),
    Field("ports_sample", STRING, "the first security.evidence_samples ports, ascending"),
)

SCAN = Schema("scan", (_WINDOW,) + _SCAN_EVIDENCE + (
    Field("pattern", STRING, f"{PORT_SCAN}, {HOST_SWEEP} or empty"),))
SCAN_ALERTS = {name: _event(name, _SCAN_EVIDENCE) for name in (PORT_SCAN, HOST_SWEEP)}
# An alert whose src_app or target_apps passed its bound (job.security.ALERT_APPS_BYTES) lists
# the apps that fit and counts the others in these, after the evidence; an alert within the
# bounds has neither (its line is as it was before the bound).
_LEFT_OUT = (
    Field("src_apps_left_out", LONG, "owners past the bound, not in src_app"),
    Field("target_apps_left_out", LONG, "destination apps past the bound, not in target_apps"),
)
SCAN_ALERTS_CUT = {name: _event(name, _SCAN_EVIDENCE + _LEFT_OUT)
                   for name in (PORT_SCAN, HOST_SWEEP)}

RISK_FACTORS = ("exposed_ports", "rejected_flows", "scan_sources", "egress_bytes",
                "dependencies", "dependents")

RISK_INPUT = Schema("risk_input", (
    _WINDOW, Field("app", STRING),
    Field("exposed_ports", LONG, "distinct port/protocol accepting internet traffic"),
    Field("exposed_port_list", STRING, "port/protocol, comma-separated"),
    Field("rejected_flows", LONG, "REJECTed flows to the app"),
    Field("scan_sources", LONG, "distinct port_scan/host_sweep sources that reached the app"),
    Field("egress_bytes", LONG, "bytes the app sent as a client to internet servers"),
    Field("dependencies", LONG, "distinct server app, port, protocol the app called"),
    Field("dependents", LONG, "distinct client apps that called the app"),
))

RISK = Schema("risk", RISK_INPUT.fields + (
    Field("score", INT, "0 to 100: the weighted factors (security.risk_weights)"),
    Field("score_parts", STRING, "factor=points, most points first, comma-separated"),
))

EVENT_SCHEMAS = (NEW_DEPENDENCY, DEPENDENCY_GONE, EXPOSURE_NEW, REJECT_SPIKE) + tuple(
    SCAN_ALERTS.values()) + tuple(SCAN_ALERTS_CUT.values())
