"""The commands' progress lines (flowdredge, flowdredge-publisher, bench) through `logging`:
one line per message on stderr, prefixed with the command's name. Libraries' loggers are left
as they are."""
import logging
import re
import sys
import time

# A command's exit status after Ctrl-C, as a shell reports a command that SIGINT ended.
INTERRUPTED = 130
# ... and after SIGTERM, which the commands take as Ctrl-C.
TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, systemd, a container's stop), raised where Ctrl-C's KeyboardInterrupt is,
    so that a command stops the same way and says which it was."""


def stopped_by(interrupt: KeyboardInterrupt) -> str:
    """What a stopping command's line names: "SIGTERM" or "Ctrl-C"."""
    return "SIGTERM" if isinstance(interrupt, Terminated) else "Ctrl-C"


class _Stderr(logging.StreamHandler):
    """Writes to sys.stderr as it is at each line: pytest's capture swaps it."""

    def __init__(self):
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def _not_py4j_interrupt(record: logging.LogRecord) -> bool:
    # py4j logs Ctrl-C during a call into the JVM on the root logger, with a traceback, then
    # raises it: the command says it was interrupted in one line instead.
    return not record.getMessage().startswith("KeyboardInterrupt while sending command")


# Causes that follow from another failure and hide it when named alone: the Kinesis source's
# enumerator refusing the splits a failed task hands back (it forces a global failover, which
# its coordinator reports as a failure of its own), a Python worker's gRPC calls cancelled as
# the worker goes.
_CONSEQUENCES = ("Partial recovery is not supported", "CANCELLED: call already cancelled",
                 "Global failure triggered by OperatorCoordinator")
_CAUSED_BY = "Caused by: "
# What the AWS SDK's errors carry that says nothing to the reader of one line (the Flink log
# keeps it): the Kinesis connector's shaded package, the request's ids and attempts.
_SDK_NOISE = re.compile(r"org\.apache\.flink\.connector\.kinesis\.sink\.shaded\.|"
                        r" \(Service: [^()]*\)| \(SDK Attempt Count: \d+\)")
# What to do about a cause, after it.
_HINTS = (("ResourceNotFoundException: Stream ",
           "a stream the job reads is gone (deleted, or a local Kinesis restarted without it), "
           "its unread records with it: once it exists again, start a new run into another "
           "--output (--resume refuses it: docs/streaming.md)"),)
_PYTHON_TRACEBACK = "Traceback (most recent call last):"


def python_error(trace: str) -> str:
    """The exception a Python traceback in `trace` ends with ("module.Error: message"): the
    first line after the last traceback that is not indented; "" without one."""
    at = trace.rfind(_PYTHON_TRACEBACK)
    if at < 0:
        return ""
    for line in trace[at + len(_PYTHON_TRACEBACK):].splitlines():
        if line.strip() and not line[0].isspace():
            return line.strip()
    return ""


def _named_causes(trace: str) -> tuple:
    """(the trace's `Caused by:` lines that are no consequence of another failure, a Python
    worker's as the exception its traceback ends with; all its `Caused by:` lines; its lines)."""
    lines = [_SDK_NOISE.sub("", line.strip()) for line in trace.splitlines() if line.strip()]
    causes = [line[len(_CAUSED_BY):] for line in lines if line.startswith(_CAUSED_BY)]
    named = [python_error(trace) or line if _PYTHON_TRACEBACK in line else line
             for line in causes if not any(c in line for c in _CONSEQUENCES)]
    return named, causes, lines


def _hinted(line: str) -> str:
    return "; ".join([line, *(hint for cause, hint in _HINTS if cause in line)])


def own_cause(trace: str) -> str:
    """The deepest cause a failure's trace names of its own (not a consequence of another
    failure, nor the restarts running out), the exception it starts with included (a failure
    of the exception history: a sink's FileSystemException has no `Caused by:`), and what to
    do about it when known; "" when it names none."""
    own = _own_cause(trace)
    return _hinted(own) if own else ""


def _own_cause(trace: str) -> str:
    named, _causes, lines = _named_causes(trace)
    top = lines[0] if lines else ""
    if top and not top.startswith(_CAUSED_BY) and not any(c in top for c in _CONSEQUENCES):
        named = [python_error(trace) or top if _PYTHON_TRACEBACK in top else top, *named]
    own = [line for line in named if "Recovery is suppressed by" not in line]
    return own[-1] if own else ""


def failure_line(trace: str, earlier=()) -> str:
    """A failed Flink job's Java trace as one line: its deepest `Caused by:` that is not a
    consequence of another failure (a Python worker's: the exception its traceback ends with),
    after "no restart left" when the restarts ran out. `earlier`: the traces of the job's
    earlier failures, newest first (its REST API's exception history), for a last failure
    that only followed from one of them."""
    return _hinted(_failure_line(trace, earlier))


# The client's exception for a job that ended with no cause given (its mini-cluster gone: a
# review); py4j gives it as the `Caused by:` of the future's ExecutionException.
NO_CAUSE = "JobExecutionException: Job execution failed."


def _failure_line(trace: str, earlier) -> str:
    named, causes, lines = _named_causes(trace)
    if "Recovery is suppressed by" not in trace:
        last = (named or causes or lines or [""])[-1]
        if not causes or last.endswith(NO_CAUSE):   # no cause given
            for before in earlier:
                own = _own_cause(before)
                if own:
                    return f"{last}; the last failure of its own: {own}"
        return last
    if named and "Recovery is suppressed by" not in named[-1]:
        return f"no restart left (job.max_restarts); the last failure: {named[-1]}"
    # The last restart was taken by a Kinesis source's failover after a task's failure: the
    # trace holds no more than that; the failure it followed from is an earlier one's.
    for before in earlier:
        own = _own_cause(before)
        if own:
            return f"no restart left (job.max_restarts); the last failure of its own: {own}"
    return ("no restart left (job.max_restarts); the last failure followed from an earlier one "
            "(a task's failure also fails each Kinesis source once), named in the Flink log")


def setup(logger: str, prefix: str, timestamps: bool = False, dated: bool = False) -> None:
    """INFO and above from `logger` and the loggers below it, as `prefix [HH:MM:SS] message`, or
    with `dated` as `prefix 2026-12-07T02:04:39Z message` (UTC: a daemon's lines are read days
    later, beside AWS's). Each command's main() calls it; a second call (tests run several
    commands in one process) replaces the first."""
    root = logging.getLogger()
    if _not_py4j_interrupt not in root.filters:
        root.addFilter(_not_py4j_interrupt)
    log = logging.getLogger(logger)
    for handler in [h for h in log.handlers if isinstance(h, _Stderr)]:
        log.removeHandler(handler)
    handler = _Stderr()
    if dated:
        formatter = logging.Formatter(f"{prefix} %(asctime)s %(message)s",
                                      datefmt="%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter(
            f"{prefix} %(asctime)s %(message)s" if timestamps else f"{prefix} %(message)s",
            datefmt="%H:%M:%S")
    handler.setFormatter(formatter)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
