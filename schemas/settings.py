"""Typed settings: the one loader behind every configuration (the job's YAML, Managed Flink's
application_properties.json, the publisher's YAML). Pure Python, standard library only.

A section is a frozen dataclass whose fields are declared with `setting(...)`. A value becomes
typed the same way whether it comes from YAML (native values) or from application properties
(strings only), by the field's type:

- int: an integer or its ASCII digits, grouped by underscores or not as Python and YAML write
  them (1_000; a float is refused, not truncated: 90.7 is not 90), within
  [minimum, maximum]; the maximum is a Java int's unless wider (numbers reach Java);
- bool: true or false, in any case;
- str: a string (a YAML number is taken as its text), optionally one of `choices` or matching
  `pattern`;
- tuple[str, ...]: a YAML list or one comma-separated string, blanks dropped, no item twice;
- anything else: `parse` turns the value into it (the domain's own parser, e.g. ports).

Each error is one line naming the field: "job.window_seconds: expected an integer, got 'soon'".
"""
import argparse
import dataclasses
import json
import math
import re
import sys
from dataclasses import MISSING, fields

import yaml

MAX_INT = 2**31 - 1
MAX_LONG = 2**63 - 1
STRINGS = tuple[str, ...]
# Characters of a bad value that an error (a message, a dead letter's detail) quotes at most: a
# value can be megabytes (a mapping where a number belongs, an event's field), an error is one
# line.
QUOTED_CHARS = 40


class ConfigError(ValueError):
    """A setting or a settings file that cannot be used; the message names the field."""


def quoted(value, text=repr) -> str:
    """`value` as an error quotes it: `text(value)` (repr, or json.dumps, or str) with what is
    not printable escaped, cut to QUOTED_CHARS characters, then `...` and its length if it
    was longer."""
    try:
        whole = text(value)
    except ValueError:   # an int past Python's 4,300 decimal digits (YAML's 0x and thousands)
        return (f"an integer of {value.bit_length():,} bits" if isinstance(value, int) else
                f"a {type(value).__name__} holding an integer of more than "
                f"{sys.get_int_max_str_digits():,} digits")
    shown = whole[:QUOTED_CHARS]
    if not shown.isprintable():
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in shown)
    if len(whole) > QUOTED_CHARS or len(shown) > QUOTED_CHARS:
        shown = f"{shown[:QUOTED_CHARS]}... ({len(whole):,} characters)"
    return shown


def setting(default=MISSING, *, factory=MISSING, minimum: int = None, maximum: int = MAX_INT,
            choices: tuple = None, pattern: str = None, expected: str = None, parse=None,
            text=None):
    """A field of a settings section. `pattern` (a regular expression every non-empty string,
    or list item, must match fully) goes with `expected`, which says in words what it wants;
    `parse` (value -> typed, ValueError naming the problem) and `text` (typed -> the string of
    an application property) go together for types this module does not know."""
    metadata = {"minimum": minimum, "maximum": maximum, "choices": choices,
                "pattern": re.compile(pattern) if pattern else None, "expected": expected,
                "parse": parse, "text": text}
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# int() also takes other scripts' digits ("١٢", "１２") and blanks, as str.isdigit() and re's \d
# and \s do. Underscores between digits are Python's and YAML's grouping (1_000), which a YAML
# file's unquoted number already had: a command's option and a quoted or JSON value take them too.
_INTEGER = re.compile(r"\s*[-+]?[0-9]+(?:_[0-9]+)*\s*", re.ASCII).fullmatch


class NotAnInteger(ValueError, argparse.ArgumentTypeError):
    """integer()'s error: a ValueError, which argparse would answer with 'invalid integer value'
    and the value whole (5,000 digits in one message); as an ArgumentTypeError, its own line,
    the value cut short."""


def integer(text: str) -> int:
    """An integer written in ASCII digits, grouped by underscores or not (a sign and blanks
    around allowed), for command-line flags; NotAnInteger otherwise ("argument --slots:
    expected an integer, got 'x'")."""
    if not _INTEGER(text):
        raise NotAnInteger(f"expected an integer, got {quoted(text)}")
    try:
        return int(text)
    except ValueError:   # digits past int()'s 4,300: beyond any option's range
        raise NotAnInteger(f"{quoted(text)} is out of range") from None


def _int(where: str, meta, value) -> int:
    # bool is an int in Python, and int(90.7) truncates: both are refused.
    if isinstance(value, (bool, float)) or (isinstance(value, str) and not _INTEGER(value)):
        raise ConfigError(f"{where}: expected an integer, got {quoted(value)}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected an integer, got {quoted(value)}") from None
        # Digits past int()'s 4,300: beyond every range, on the side of their sign.
        number = -math.inf if value.strip().startswith("-") else math.inf
    minimum, maximum = meta.get("minimum"), meta.get("maximum", MAX_INT)
    if minimum is not None and number < minimum:
        wanted = {0: "must not be negative", 1: "must be positive"}.get(
            minimum, f"must be at least {minimum}")
        raise ConfigError(f"{where} {wanted}")
    if number > maximum or number < -maximum - 1:
        if maximum in (MAX_INT, MAX_LONG):
            raise ConfigError(f"{where}: {quoted(value)} is out of range (at most {maximum} either way)")
        raise ConfigError(f"{where} must be at most {maximum}")
    return number


def _bool(where: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"{where}: expected true or false, got {quoted(value)}")


def _str(where: str, meta, value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(f"{where}: expected a string, got {quoted(value)}")
    text = _text(where, "a string", value)
    choices = meta.get("choices")
    if choices and text not in choices:
        wanted = " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)
        raise ConfigError(f"{where} must be {wanted}, got {quoted(text)}")
    _match(where, meta, text)
    return text


def _text(where: str, expected: str, value) -> str:
    try:
        return str(value)
    except ValueError:   # an int past Python's 4,300 decimal digits
        raise ConfigError(f"{where}: expected {expected}, got {quoted(value)}") from None


def _match(where: str, meta, text: str) -> None:
    pattern = meta.get("pattern")
    if pattern and text and not pattern.fullmatch(text):
        raise ConfigError(f"{where}: {quoted(text)} is not {meta['expected']}")


def _strings(where: str, meta, value) -> tuple:
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ConfigError(f"{where}: expected a list or a comma-separated string, got "
                          f"{quoted(value)}")
    result = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ConfigError(f"{where}: expected strings, got {quoted(item)}")
        text = _text(where, "strings", item).strip()
        if not text:
            continue
        _match(where, meta, text)
        if text in result:
            raise ConfigError(f"{where}: {quoted(text)} is listed twice")
        result.append(text)
    return tuple(result)


def coerce(where: str, f: dataclasses.Field, value):
    """`value` (from YAML or an application property) as field `f` wants it."""
    meta = f.metadata
    if meta.get("parse"):
        try:
            return meta["parse"](value)
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: {err}") from None
    if f.type is bool:
        return _bool(where, value)
    if f.type is int:
        return _int(where, meta, value)
    if f.type == STRINGS:
        return _strings(where, meta, value)
    return _str(where, meta, value)


def section(cls, values, where: str):
    """A section dataclass from a mapping; sections nest (a field whose type is a dataclass).
    Absent keys keep their defaults."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {quoted(values)}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)}" + (f" in {where}" if where else "")
                          + f"; known: {sorted(known)}")
    built = {}
    for key, value in values.items():
        f = known[key]
        name = f"{where}.{key}" if where else key
        built[key] = (section(f.type, value, name) if dataclasses.is_dataclass(f.type)
                      else coerce(name, f, value))
    return cls(**built)


def as_text(f: dataclasses.Field, value) -> str:
    """A typed value as an application property (a string) that `coerce` reads back."""
    if f.metadata.get("text"):
        return f.metadata["text"](value)
    if isinstance(value, bool):
        return str(value).lower()
    if f.type == STRINGS:
        return ",".join(value)
    return str(value)


def read(path: str, what: str = "config", is_json: bool = None):
    """The document in a YAML or JSON file (by its extension unless `is_json` says); None when
    it is empty."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:   # ValueError's message named no file
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: "
                          f"{err.object[err.start:err.start + 1]!r})") from None
    if is_json is None:
        is_json = path.endswith(".json")
    try:
        doc = (json.loads(text, object_pairs_hook=_once, parse_int=_json_int) if is_json
               else yaml.load(text, _Loader))
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not valid {'JSON' if is_json else 'YAML'}: "
                          f"{_one_line(err)}") from None
    except RecursionError:   # a traceback before
        raise ConfigError(f"{path}: not valid {'JSON' if is_json else 'YAML'}: nested deeper "
                          f"than its reader goes") from None
    if not is_json and _values_over(doc, MAX_VALUES):
        raise ConfigError(f"{path}: more than {MAX_VALUES:,} values once its aliases (*name) "
                          f"are expanded: no settings file holds that many")
    return doc


def _json_int(digits: str):
    # Past int()'s 4,300 digits a number is taken as its digits, as _Loader takes YAML's: the
    # setting says what it wants.
    try:
        return int(digits)
    except ValueError:
        return digits


# A YAML alias names a list or map written once, so a few lines of aliases of aliases (a
# "billion laughs") hold 9**9 values: an error message showing one, or a check going through
# its items, took minutes and gigabytes.
MAX_VALUES = 1_000_000


def _values_over(doc, limit: int) -> bool:
    """Whether `doc` holds more than `limit` values, a value reached through n aliases counted
    n times; stops counting there."""
    count, pending = 0, [doc]
    while pending:
        value = pending.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, (list, tuple, set)):
            pending.extend(value)
    return False


def _one_line(err: Exception) -> str:
    """A parser's error in one line: YAML's spans several (context, problem, the source)."""
    mark = getattr(err, "problem_mark", None)
    if mark is not None:
        what = ": ".join(filter(None, (getattr(err, "context", None), err.problem)))
        return f"{what} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(err).split())


def _once(pairs) -> dict:
    """A JSON object whose keys are each given once (json keeps the last, silently)."""
    doc = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"{key!r} is given twice")
        doc[key] = value
    return doc


class _Loader(yaml.SafeLoader):
    """YAML as written: a key given twice is an error (PyYAML keeps the last one, silently),
    a time stays its text (PyYAML makes 2026-12-01T10:00:00Z a datetime, and
    2026-12-01 10:00:00 one without its zone), and so does a number with a leading 0."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":   # `<<: *defaults`, overridable
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                twice = key in seen
            except TypeError:   # a list or map as a key: PyYAML's own error says so
                continue
            if twice:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:   # decimal digits past int()'s 4,300: the setting says what it wants
            return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers
            if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
# YAML 1.1's integers less its octal (0 then digits): an account id 012345670123 stays its text,
# where PyYAML made it 1402433619; an integer setting reads "0755" as 755. A decimal's
# underscores are Python's (one between two digits), as _INTEGER's: 1__000 and 1000_ stay text.
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"""^(?:[-+]?0b[0-1_]+
    |[-+]?(?:0|[1-9](?:_?[0-9])*)
    |[-+]?0x[0-9a-fA-F_]+
    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""", re.X), list("-+0123456789"))
