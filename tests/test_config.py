import json
import os
import re

import pytest
import yaml

from helpers import subprocess_env
from flowdredge.connectors.s3 import flink_uri
from flowdredge.job.config import Config, ConfigError, from_dict, load, to_application_properties

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.unit
def test_the_shortest_retention_covering_the_flows_is_taken():
    assert Config().replace(metadata={"retention_seconds": 360}).metadata.retention_seconds == 360


@pytest.mark.unit
def test_defaults_are_valid():
    cfg = load(None)
    assert cfg.job.window_seconds == 60 and cfg.flow_format.names[0] == "version"


@pytest.mark.unit
def test_yaml_and_application_properties_give_the_same_config(tmp_path):
    (tmp_path / "c.yaml").write_text("job:\n  window_seconds: 300\noutputs:\n  enriched: false\n")
    (tmp_path / "c.json").write_text(json.dumps([
        {"PropertyGroupId": "job", "PropertyMap": {"window_seconds": "300"}},
        {"PropertyGroupId": "outputs", "PropertyMap": {"enriched": "false"}}]))
    assert load(str(tmp_path / "c.yaml")) == load(str(tmp_path / "c.json"))


@pytest.mark.unit
def test_shipped_application_properties_round_trip():
    path = os.path.join(ROOT, "flink-conf", "application_properties.json")
    with open(path) as fh:
        assert json.load(fh) == to_application_properties(Config())
    assert load(path) == Config()


@pytest.mark.unit
@pytest.mark.parametrize("text,message", [
    ("jobs: {}", "unknown config section"),
    ("job: {windows: 5}", "unknown key"),
    ("job: {window_seconds: soon}", "expected an integer"),
    ("job: {window_seconds: 0}", "must be positive"),
    ("outputs: {enriched: maybe}", "expected true or false"),
    ("outputs: {enriched: 5}", "^outputs.enriched: expected true or false, got 5$"),
    ("flows: {format: 'srcaddr dstaddr'}", "flows.format"),
    ("metadata: {retention_seconds: 10}", "retention_seconds must cover"),
    # One second short of the flows' out-of-orderness (300) and a window (60): the boundary.
    ("metadata: {retention_seconds: 359}", "retention_seconds must cover"),
    ("job: [1]", "expected a mapping"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(str(tmp_path / "c.yaml"))


@pytest.mark.unit
@pytest.mark.parametrize("text,message", [
    ("kinesis: {flow_streams: 'a,a'}", "kinesis.flow_streams: 'a' is listed twice"),
    ("kinesis: {flow_streams: 'a b'}", "kinesis.flow_streams: 'a b' is not a stream name or ARN"),
    ("kinesis: {flow_streams: {a: 1}}", "kinesis.flow_streams: expected a list or a comma-"),
    ("kinesis: {metadata_stream: 'a,b'}", "kinesis.metadata_stream: 'a,b' is not a stream name"),
    ("kinesis: {region: eu}", "kinesis.region: 'eu' is not an AWS region"),
    ("kinesis: {reader: fast}", "kinesis.reader must be polling or efo, got 'fast'"),
    ("kinesis: {start_position: NOW}",
     "kinesis.start_position must be one of TRIM_HORIZON, LATEST, AT_TIMESTAMP, got 'NOW'"),
    ("kinesis: {start_timestamp: '2026-12-01T10:00:00Z'}",
     "kinesis.start_timestamp is read only with start_position: AT_TIMESTAMP (it is "
     "TRIM_HORIZON)"),
    ("kinesis: {metadata_start_timestamp: '2026-12-01T10:00:00Z'}",
     "kinesis.metadata_start_timestamp is read only with metadata_start_position: AT_TIMESTAMP "
     "(it is TRIM_HORIZON)"),
    ("kinesis: {metadata_start_position: AT_TIMESTAMP, "
     "metadata_start_timestamp: '2026-12-01T10:00:00'}",
     "kinesis.metadata_start_timestamp: AT_TIMESTAMP needs an ISO 8601 time with a zone, "
     "e.g. 2026-12-01T10:00:00Z, got '2026-12-01T10:00:00'"),
    # Taken, then the job's start failed converting it to UTC for the connector
    # (OverflowError: date value out of range); before 2010, no flow of the job's.
    ("kinesis: {start_position: AT_TIMESTAMP, start_timestamp: '0001-01-01T00:00:00+01:00'}",
     "kinesis.start_timestamp: '0001-01-01T00:00:00+01:00' is outside the years the job reads "
     "flows of (2010-2099)"),
    ("kinesis: {metadata_start_position: AT_TIMESTAMP, "
     "metadata_start_timestamp: '9999-12-31T23:59:59-14:00'}",
     "kinesis.metadata_start_timestamp: '9999-12-31T23:59:59-14:00' is outside the years"),
    ("kinesis: {start_position: AT_TIMESTAMP, start_timestamp: '2009-12-31T23:59:59Z'}",
     "kinesis.start_timestamp: '2009-12-31T23:59:59Z' is outside the years"),
    # Its year is 2010 as written, 2009 in UTC, where the bound is: the line says so.
    ("kinesis: {start_position: AT_TIMESTAMP, start_timestamp: '2010-01-01T00:30:00+01:00'}",
     "kinesis.start_timestamp: '2010-01-01T00:30:00+01:00' is outside the years the job reads "
     "flows of (2010-2099) in UTC: it is 2009-12-31T23:30:00Z"),
    # Taken, then each attribution instance failed as it started, Flink running.
    ("metadata: {ip_ranges: 's3://bucket'}",
     "metadata.ip_ranges: 's3://bucket': expected s3://bucket/key"),
    ("metadata: {ip_ranges: 's3:///ip-ranges.json'}",
     "metadata.ip_ranges: 's3:///ip-ranges.json': expected s3://bucket/key"),
    ("kinesis: {efo_consumer_name: 'bad name!'}",
     "kinesis.efo_consumer_name: 'bad name!' is not a consumer name"),
    ("security: {service_ports: [22, ssh]}", "security.service_ports: not a port: 'ssh'"),
    ("security: {risk_weights: {blast: 3}}", "security.risk_weights: unknown risk factor 'blast'"),
    ("security: {risk_scales: 'dependencies=-1'}",
     "security.risk_scales: dependencies: expected an integer from 0 to 9223372036854775807, "
     "got '-1'"),
    ("security: {risk_weights: 'dependencies=2147483648'}",
     "security.risk_weights: dependencies: expected an integer from 0 to 2147483647"),
    ("security: {risk_weights: 'dependencies=1,dependencies=2'}",
     "security.risk_weights: dependencies is given twice"),
    ("security: {service_ports: '22,443,22'}", "security.service_ports: port 22 is listed twice"),
    ("security: {risk_weights: }",
     "security.risk_weights: expected a mapping or \"factor=n,factor=n\", got None"),
    ("security: {risk_weights: 'dependencies=\u0663'}",
     "security.risk_weights: dependencies: expected an integer from 0 to 2147483647, got"),
    ("security: {risk_scales: 'egress_bytes=9223372036854775808'}",
     "security.risk_scales: egress_bytes: expected an integer from 0 to 9223372036854775807"),
    ("job: {python_workers: threads}", "job.python_workers must be process or loopback"),
    ("job: {parallelism: 40000}", "job.parallelism must be at most 32768"),
    ("job: {max_restarts: -1}", "job.max_restarts must not be negative"),
    ("job: {window_seconds: true}", "job.window_seconds: expected an integer, got True"),
    ("job: {window_seconds: }", "job.window_seconds: expected an integer, got None"),
    ("job: {window_seconds: [60]}", "job.window_seconds: expected an integer, got [60]"),
    ("metadata: {ip_ranges: [a]}", "metadata.ip_ranges: expected a string, got ['a']"),
    # Taken, and the stream got no event: they come from the security views.
    ("outputs: {security: false}\nkinesis: {security_events_stream: events}",
     "kinesis.security_events_stream needs outputs.security: the events come from the "
     "security views, off, so the stream would get none"),
])
def test_each_bad_field_is_one_line_naming_it(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match="^" + re.escape(message)) as err:
        load(str(tmp_path / "c.yaml"))
    assert "\n" not in str(err.value)


LONG = "x" * 5000


@pytest.mark.unit
@pytest.mark.parametrize("doc,message", [
    ({"job": {"window_seconds": LONG}}, "job.window_seconds: expected an integer, got 'xxx"),
    ({"job": {"max_restarts": "9" * 4000}}, "job.max_restarts: '999"),
    ({"outputs": {"enriched": LONG}}, "outputs.enriched: expected true or false, got 'xxx"),
    ({"metadata": {"ip_ranges": [LONG]}}, "metadata.ip_ranges: expected a string, got ['xxx"),
    ({"kinesis": {"reader": LONG}}, "kinesis.reader must be polling or efo, got 'xxx"),
    ({"kinesis": {"region": LONG}}, "kinesis.region: 'xxx"),
    ({"kinesis": {"flow_streams": {LONG: 1}}}, "kinesis.flow_streams: expected a list or a "),
    ({"kinesis": {"flow_streams": [[LONG]]}}, "kinesis.flow_streams: expected strings, got ['"),
    ({"kinesis": {"flow_streams": ["s" * 128] * 2}}, "kinesis.flow_streams: 'sss"),
    ({"job": LONG}, "job: expected a mapping, got 'xxx"),
    ({"kinesis": {"metadata_start_position": "AT_TIMESTAMP", "metadata_start_timestamp": LONG}},
     "kinesis.metadata_start_timestamp: AT_TIMESTAMP needs an ISO 8601 time with a zone, e.g. "
     "2026-12-01T10:00:00Z, got 'xxx"),
    ({"security": {"service_ports": {LONG: 1}}}, "security.service_ports: expected a list of "),
    ({"security": {"service_ports": LONG}}, "security.service_ports: not a port: 'xxx"),
    ({"security": {"risk_weights": [LONG]}}, "security.risk_weights: expected a mapping or "),
    ({"security": {"risk_weights": {LONG: 1}}}, "security.risk_weights: unknown risk factor 'x"),
    ({"security": {"risk_weights": "dependencies=" + LONG}},
     "security.risk_weights: dependencies: expected an integer from 0 to 2147483647, got 'xx"),
])
def test_a_bad_value_is_quoted_cut_short_with_its_length(tmp_path, doc, message):
    """A value of thousands of characters (a mapping where a number belongs, a pasted blob) was
    quoted whole in its one-line error (a review): cut to 40 characters, then its length."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc, width=1 << 20))
    with pytest.raises(ConfigError, match="^" + re.escape(message)) as err:
        load(str(tmp_path / "c.yaml"))
    said = str(err.value)
    assert re.search(r"\.\.\. \([0-9,]+ characters\)", said) and len(said) < 260, said


@pytest.mark.unit
@pytest.mark.parametrize("doc,message", [
    ("job:\n  window_seconds: 0x%s", "job.window_seconds: an integer of 16,000 bits is out of "
                                      "range (at most 2147483647 either way)"),
    ("flows:\n  format: 0x%s", "flows.format: expected a string, got an integer of 16,000 bits"),
    ("kinesis:\n  flow_streams: [0x%s]",
     "kinesis.flow_streams: expected strings, got an integer of 16,000 bits"),
    ("job:\n  window_seconds: [0x%s]", "job.window_seconds: expected an integer, got a list "
                                        "holding an integer of more than 4,300 digits")])
def test_an_integer_too_long_to_write_in_decimal_is_one_line_naming_it(tmp_path, doc, message):
    """YAML reads 0x and thousands of hex digits as an integer, which Python will not write in
    more than 4,300 decimal digits: the error quoting it (or a string field taking it as
    text) was a ValueError traceback (a review)."""
    (tmp_path / "c.yaml").write_text(doc % ("f" * 4000))
    with pytest.raises(ConfigError) as err:
        load(str(tmp_path / "c.yaml"))
    assert str(err.value) == message


NINES = "9" * 5000
NINES_QUOTED = "'" + "9" * 39 + "... (5,002 characters)"


@pytest.mark.unit
@pytest.mark.parametrize("doc,message", [
    (f"security: {{service_ports: [22, {NINES}]}}",
     f"security.service_ports: not a port: {NINES_QUOTED}"),
    (f"security: {{service_ports: '22,{NINES}'}}",
     f"security.service_ports: not a port: {NINES_QUOTED}"),
    (f"security: {{service_ports: [0x{'f' * 4000}]}}",
     "security.service_ports: not a port: an integer of 16,000 bits"),
    (f"security: {{risk_weights: {{dependencies: {NINES}}}}}",
     f"security.risk_weights: dependencies: expected an integer from 0 to 2147483647, got "
     f"{NINES_QUOTED}"),
    (f"security: {{risk_weights: 'dependencies={NINES}'}}",
     f"security.risk_weights: dependencies: expected an integer from 0 to 2147483647, got "
     f"{NINES_QUOTED}"),
    (f"security: {{risk_weights: {{dependencies: 0x{'f' * 4000}}}}}",
     "security.risk_weights: dependencies: expected an integer from 0 to 2147483647, got an "
     "integer of 16,000 bits"),
    (f"job: {{window_seconds: {NINES}}}",
     f"job.window_seconds: {NINES_QUOTED} is out of range (at most 2147483647 either way)"),
    (f"job: {{window_seconds: -{NINES}}}", "job.window_seconds must be positive"),
    (f"job: {{window_seconds: ' -{NINES}'}}", "job.window_seconds must be positive")])
def test_an_integer_of_more_digits_than_int_reads_is_one_line_naming_it(tmp_path, doc, message):
    """A number past int()'s 4,300 decimal digits, in YAML or in a setting's text, or one
    of YAML's 0x that str() will not write, was an error in Python's words ('Exceeds the limit
    (4300 digits) for integer string conversion'), naming the file or the setting but not the
    value (a review)."""
    (tmp_path / "c.yaml").write_text(doc)
    with pytest.raises(ConfigError) as err:
        load(str(tmp_path / "c.yaml"))
    assert str(err.value) == message


@pytest.mark.unit
@pytest.mark.parametrize("doc,message", [
    (f'{{"job": {{"window_seconds": {NINES}}}}}',
     f"job.window_seconds: {NINES_QUOTED} is out of range (at most 2147483647 either way)"),
    (f'{{"security": {{"service_ports": [22, {NINES}]}}}}',
     f"security.service_ports: not a port: {NINES_QUOTED}"),
    (f'{{"security": {{"risk_weights": {{"dependencies": -{NINES}}}}}}}',
     f"security.risk_weights: dependencies: expected an integer from 0 to 2147483647, got "
     f"'-{'9' * 38}... (5,003 characters)")])
def test_an_integer_of_more_digits_than_int_reads_in_a_json_config_is_one_line_naming_it(
        tmp_path, doc, message):
    """A JSON config read such a number as YAML did before: 'not valid JSON: Exceeds the limit
    (4300 digits) for integer string conversion...', in Python's words, naming neither the
    setting nor the value (a review). It is taken as its digits, as in YAML."""
    (tmp_path / "c.json").write_text(doc)
    with pytest.raises(ConfigError) as err:
        load(str(tmp_path / "c.json"))
    assert str(err.value) == message


@pytest.mark.unit
def test_quoted_escapes_what_is_not_printable_and_cuts_at_40_characters():
    from flowdredge.schemas.settings import integer, quoted
    assert quoted("a\nb") == "'a\\nb'" and quoted("a\nb", str) == "a\\nb"
    assert quoted("y" * 40, str) == "y" * 40
    assert quoted("y" * 41, str) == "y" * 40 + "... (41 characters)"
    assert quoted("\0" * 20, str) == "\\x00" * 10 + "... (20 characters)"
    assert quoted({"k": "v"}, json.dumps) == '{"k": "v"}'
    with pytest.raises(ValueError, match=r"^expected an integer, got 'xxx+\.\.\. \(5,002 "
                                         r"characters\)$"):
        integer(LONG)


@pytest.mark.unit
def test_yaml_s_own_types_are_read_as_written(tmp_path):
    # PyYAML reads an unquoted ISO time as a datetime; configuration.md asks for that time.
    (tmp_path / "t.yaml").write_text(
        "kinesis: {start_position: AT_TIMESTAMP, start_timestamp: 2026-12-01T10:00:00Z}\n")
    assert load(str(tmp_path / "t.yaml")).kinesis.start_timestamp == "2026-12-01T10:00:00Z"
    (tmp_path / "p.yaml").write_text("job: {checkpoint_dir: 2026-12-01 10:00:00}\n")
    assert load(str(tmp_path / "p.yaml")).job.checkpoint_dir == "2026-12-01 10:00:00"
    # A leading 0 is no octal (YAML 1.1 made 010 eight).
    (tmp_path / "o.yaml").write_text("job: {window_seconds: 0120}\n")
    assert load(str(tmp_path / "o.yaml")).job.window_seconds == 120
    (tmp_path / "o.yaml").write_text("job: {window_seconds: +0120}\n")
    assert load(str(tmp_path / "o.yaml")).job.window_seconds == 120
    (tmp_path / "d.yaml").write_text(
        "kinesis: {start_position: AT_TIMESTAMP, start_timestamp: 2026-12-01}\n")
    with pytest.raises(ConfigError, match="needs an ISO 8601 time with a zone"):
        load(str(tmp_path / "d.yaml"))
    (tmp_path / "bad.yaml").write_text("job:\n  parallelism: [1\n  x: 2\n")
    with pytest.raises(ConfigError, match="not valid YAML: while parsing a flow sequence: "
                                          "expected ',' or ']', but got ':' at "
                                          "line 3, column 4$") as err:
        load(str(tmp_path / "bad.yaml"))
    assert "\n" not in str(err.value)
    # PyYAML keeps a key's last value; each key once, as in application properties.
    (tmp_path / "twice.yaml").write_text(
        "security:\n  risk_weights: {dependencies: 1, dependencies: 2}\n")
    with pytest.raises(ConfigError, match="'dependencies' is given twice at line 2, column 35$"):
        load(str(tmp_path / "twice.yaml"))
    # A merge key's values may be given again: they override it.
    (tmp_path / "merge.yaml").write_text(
        "job: {<<: {parallelism: 2, window_seconds: 30}, window_seconds: 60}\n")
    assert (load(str(tmp_path / "merge.yaml")).job.parallelism,
            load(str(tmp_path / "merge.yaml")).job.window_seconds) == (2, 60)
    (tmp_path / "twice.json").write_text(
        '[{"PropertyGroupId": "job", "PropertyMap": {"parallelism": "2", "parallelism": "1"}}]')
    with pytest.raises(ConfigError, match="not valid JSON: 'parallelism' is given twice$"):
        load(str(tmp_path / "twice.json"))
    (tmp_path / "groups.json").write_text(
        '[{"PropertyGroupId": "job", "PropertyMap": {"parallelism": "2"}}, '
        '{"PropertyGroupId": "job", "PropertyMap": {}}]')
    with pytest.raises(ConfigError, match="group 'job' is given twice$"):
        load(str(tmp_path / "groups.json"))


@pytest.mark.unit
def test_list_and_map_fields_are_typed_once_from_lists_or_strings(tmp_path):
    (tmp_path / "lists.yaml").write_text(
        "kinesis: {flow_streams: [flows-a, flows-b]}\n"
        "security: {service_ports: [443, 22], risk_weights: {dependencies: 5}}\n")
    (tmp_path / "strings.yaml").write_text(
        "kinesis: {flow_streams: ' flows-a, flows-b,'}\n"
        "security: {service_ports: '22,443', risk_weights: 'dependencies=5'}\n")
    config = load(str(tmp_path / "lists.yaml"))
    assert config == load(str(tmp_path / "strings.yaml"))
    assert config.kinesis.flow_streams == ("flows-a", "flows-b")
    assert config.security.service_ports == frozenset({22, 443})
    # The factors left out keep their defaults.
    assert config.security.risk_weights == {**Config().security.risk_weights, "dependencies": 5}
    assert config.security.risk_weights["exposed_ports"] == 30
    # A scale in bytes a window goes beyond 32 bits (50 GB a minute: 830 MB/s).
    assert Config().replace(security={"risk_scales": {"egress_bytes": 5 * 10**10}}) \
        .security.risk_scales["egress_bytes"] == 5 * 10**10


@pytest.mark.unit
def test_typed_fields_survive_application_properties(tmp_path):
    config = Config().replace(kinesis={"flow_streams": "a,b"},
                              security={"service_ports": [8443, 22],
                                        "risk_weights": {"dependents": 7}})
    groups = to_application_properties(config)
    assert all(isinstance(v, str) for g in groups for v in g["PropertyMap"].values())
    kinesis = next(g for g in groups if g["PropertyGroupId"] == "kinesis")["PropertyMap"]
    assert kinesis["flow_streams"] == "a,b"
    (tmp_path / "p.json").write_text(json.dumps(groups))
    assert load(str(tmp_path / "p.json")) == config


@pytest.mark.unit
def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load(str(tmp_path / "nope.yaml"))


@pytest.mark.unit
def test_every_key_is_documented():
    import dataclasses
    with open(os.path.join(ROOT, "docs", "configuration.md")) as fh:
        doc = fh.read()
    config = Config()
    for section in dataclasses.fields(config):
        assert f"\n{section.name}:" in doc, section.name
        for key in dataclasses.fields(getattr(config, section.name)):
            assert f"  {key.name}:" in doc, f"{section.name}.{key.name}"


@pytest.mark.unit
def test_the_documented_defaults_load_as_the_defaults(tmp_path):
    """The YAML block of docs/configuration.md, copied into a file, is a valid configuration
    equal to the code's defaults (a placeholder or a stale default there fails)."""
    with open(os.path.join(ROOT, "docs", "configuration.md")) as fh:
        block = fh.read().split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "documented.yaml").write_text(block)
    assert load(str(tmp_path / "documented.yaml")) == Config()


@pytest.mark.unit
@pytest.mark.parametrize("value", ["s3://", "://x", "s3 ://b/p", "s3://b/p q", " /tmp/ck"])
def test_checkpoint_dir_must_be_a_path_or_url(tmp_path, value):
    (tmp_path / "c.yaml").write_text(f"job: {{checkpoint_dir: '{value}'}}")
    with pytest.raises(ConfigError, match="job.checkpoint_dir"):
        load(str(tmp_path / "c.yaml"))


@pytest.mark.unit
def test_a_checkpoint_path_may_hold_spaces(tmp_path):
    (tmp_path / "c.yaml").write_text("job: {checkpoint_dir: '/tmp/my checkpoints'}")
    assert load(str(tmp_path / "c.yaml")).job.checkpoint_dir == "/tmp/my checkpoints"


@pytest.mark.unit
def test_a_managed_flink_properties_file_is_a_config(tmp_path):
    """The service's own application_properties.json, with its `io` group (where the Managed
    Flink entry reads and writes) and run options: --config reads the config sections."""
    groups = to_application_properties(Config().replace(job={"window_seconds": 300})) + [
        {"PropertyGroupId": "io", "PropertyMap": {"output": "s3://b/out", "flows": "s3://b/in"}},
        {"PropertyGroupId": "kinesis.analytics.flink.run.options",
         "PropertyMap": {"python": "main.py"}}]
    (tmp_path / "application_properties.json").write_text(json.dumps(groups))
    assert load(str(tmp_path / "application_properties.json")).job.window_seconds == 300


@pytest.mark.unit
@pytest.mark.parametrize("group", [
    {"PropertyGroupId": ["job"], "PropertyMap": {}},
    {"PropertyGroupId": 7, "PropertyMap": {}},
    {"PropertyGroupId": "job", "PropertyMap": ["abc"]},
    {"PropertyGroupId": "job", "PropertyMap": [["window_seconds", "30"]]},
    {"PropertyGroupId": "job", "PropertyMap": "window_seconds=30"},
    {"PropertyGroupId": "job"},
    "job",
    None,
])
def test_an_application_properties_group_of_another_shape_is_refused(tmp_path, group):
    """A list as the group's id ended the command with TypeError's traceback (unhashable);
    one as its map was taken for pairs, or refused with dict()'s error naming no group."""
    (tmp_path / "application_properties.json").write_text(json.dumps([group]))
    with pytest.raises(ConfigError, match=r"^application properties: each group needs "
                                          r"PropertyGroupId \(a string\) and PropertyMap "
                                          r"\(an object\)$"):
        load(str(tmp_path / "application_properties.json"))


@pytest.mark.unit
def test_a_yaml_list_is_not_a_config(tmp_path):
    (tmp_path / "c.yaml").write_text("- job: {window_seconds: 300}\n")
    with pytest.raises(ConfigError, match="c.yaml: a list, not a mapping of sections "
                                          r"\(application properties are read from a file "
                                          r"whose name ends in .json\)"):
        load(str(tmp_path / "c.yaml"))
    (tmp_path / "s.yaml").write_text("just words\n")
    with pytest.raises(ConfigError, match="config must be a mapping of sections"):
        load(str(tmp_path / "s.yaml"))


@pytest.mark.unit
@pytest.mark.parametrize("name,content,message", [
    ("c.yaml", b"job: " + b"[" * 5000 + b"]" * 5000, "not valid YAML: nested deeper than its "
                                                     "reader goes"),
    ("c.yaml", b"job: " + b"{a: " * 3000 + b"1" + b"}" * 3000, "not valid YAML: nested deeper "
                                                                "than its reader goes"),
    ("c.json", b'{"job": ' + b"[" * 100000 + b"]" * 100000 + b"}",
     "not valid JSON: nested deeper than its reader goes"),
    ("c.yaml", b"job: {window_seconds: 60}\n# caf\xe9\n", r"not UTF-8 text \(byte 31: "
                                                           r"b'\\xe9'\)"),
])
def test_a_file_nested_too_deep_or_not_utf8_is_one_line_naming_it(tmp_path, name, content,
                                                                    message):
    """RecursionError's traceback, or UnicodeDecodeError's line naming no file."""
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ConfigError, match="^" + re.escape(str(tmp_path / name)) + ": "
                                          + message + "$"):
        load(str(tmp_path / name))


@pytest.mark.unit
def test_aliases_of_aliases_are_refused_before_their_values_are_read(tmp_path):
    """A "billion laughs": 7 lines of aliases held 9**7 values, which the error message showed
    whole (30 MB, a second; 9**9 took minutes and gigabytes). A merge key's alias still
    reads."""
    levels = ["&a0 [" + ", ".join(["x"] * 9) + "]"]
    levels += [f"&a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 7)]
    (tmp_path / "c.yaml").write_text("job: {window_seconds: [" + ", ".join(levels) + "]}\n")
    with pytest.raises(ConfigError) as err:
        load(str(tmp_path / "c.yaml"))
    assert str(err.value) == (f"{tmp_path / 'c.yaml'}: more than 1,000,000 values once its "
                              f"aliases (*name) are expanded: no settings file holds that many")
    (tmp_path / "m.yaml").write_text("flows: &f {out_of_orderness_seconds: 300}\n"
                                     "metadata: {<<: *f}\n")
    assert load(str(tmp_path / "m.yaml")).metadata.out_of_orderness_seconds == 300


@pytest.mark.unit
def test_checkpoint_dir_becomes_a_url():
    assert flink_uri("s3://bucket/prefix") == "s3://bucket/prefix"
    assert flink_uri("rel/ck") == "file://" + os.path.abspath("rel/ck")
    assert flink_uri("/tmp/ck") == "file:///tmp/ck"


# Not unit: flink_configuration builds a PyFlink Configuration, which starts a JVM.
@pytest.mark.minicluster
@pytest.mark.parametrize("key,fallback,expected", [
    ("", None, None),                              # a cluster keeps its own setting
    ("", "/tmp/out/checkpoints", "file:///tmp/out/checkpoints"),   # a replay: its output
    ("s3://b/p", "/tmp/out/checkpoints", "s3://b/p"),              # the key wins
])
def test_checkpoint_storage_in_the_flink_configuration(key, fallback, expected):
    from flowdredge.job.flink.run import flink_configuration
    conf = flink_configuration(Config().replace(job={"checkpoint_dir": key}), fallback)
    assert conf.get_string("execution.checkpointing.dir", None) == expected
    assert conf.get_string("execution.checkpointing.storage", None) == (
        expected and "filesystem")


@pytest.mark.unit
@pytest.mark.parametrize("heap,error", [(0, None), (256, None), (4096, None),
                                        (255, "at least 256"), (-1, "must not be negative")])
def test_local_heap_is_zero_or_enough_to_start(heap, error):
    if error:
        with pytest.raises(ConfigError, match=f"job.local_heap_mb.*{error}"):
            Config().replace(job={"local_heap_mb": heap})
    else:
        assert Config().replace(job={"local_heap_mb": heap}).job.local_heap_mb == heap


@pytest.mark.unit
def test_the_local_heap_grows_with_the_instances_holding_the_ownership_state():
    from flowdredge.job.config import local_heap_mb
    assert [local_heap_mb(Config().replace(job={"parallelism": p})) for p in (1, 2, 4)] == \
        [640, 1280, 2560]
    assert local_heap_mb(Config().replace(job={"parallelism": 4, "local_heap_mb": 700})) == 700


LOCAL = "-XX:TieredStopAtLevel=1 -XX:+UseParallelGC"


@pytest.mark.unit
@pytest.mark.parametrize("before,heap,archive,connected,launched_with", [
    (None, 0, None, False, f"-Xmx640m {LOCAL}"),       # parallelism 1
    ("-Dx=1", 512, None, False, f"-Xmx512m {LOCAL} -Dx=1"),
    ("-Xmx3g -Dx=1", 512, None, False, f"{LOCAL} -Xmx3g -Dx=1"),  # user's cap
    ("-XX:+UseG1GC", 0, None, False, "-Xmx640m -XX:TieredStopAtLevel=1 -XX:+UseG1GC"),
    (None, 0, "/j/a.jsa", False, f"-Xmx640m {LOCAL} "
     "-XX:SharedArchiveFile=/j/a.jsa -Xlog:cds=off -Xlog:cds+dynamic=off"),
    (None, 1024, "/j/a.jsa", True, None),            # `flink run`: its JVM, not ours
    # PyFlink splits JVM_ARGS at spaces: "a.jsa" was taken as the main class (a review).
    (None, 0, "/my j/a.jsa", False, f"-Xmx640m {LOCAL}"),
])
def test_the_local_jvm_args_are_set_for_the_launch_only(monkeypatch, before, heap, archive,
                                                        connected, launched_with):
    import flowdredge.job.flink.run as run
    seen = []
    monkeypatch.setattr(run, "jvm", lambda: seen.append(os.environ.get("JVM_ARGS")))
    monkeypatch.setattr(run, "class_archive", lambda: archive)
    for name, value in (("JVM_ARGS", before), ("PYFLINK_GATEWAY_PORT", "1" if connected else None)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    run.start_jvm(Config().replace(job={"local_heap_mb": heap}))
    assert seen == [launched_with or before]
    assert os.environ.get("JVM_ARGS") == before


_MAX_HEAP = ("import sys; from flowdredge.job.config import Config; "
             "from flowdredge.job.flink.run import start_jvm; "
             "from pyflink.java_gateway import get_gateway; "
             "start_jvm(Config().replace(job={'local_heap_mb': int(sys.argv[1])})); "
             "print(get_gateway().jvm.java.lang.Runtime.getRuntime().maxMemory() >> 20)")
# The same JVM when a job is built: a part of it that calls the JVM made before start_jvm (a
# file sink's rolling policy, in a trial) starts it without the heap cap and the class
# archive (the demo's job took twice as long).
_MAX_HEAP_OF_A_JOB = (
    "import os, sys; from flowdredge.job.config import Config; "
    "from flowdredge.job.flink.run import files_job; "
    "from pyflink.java_gateway import get_gateway; "
    "folder = sys.argv[2]; [os.makedirs(os.path.join(folder, d)) for d in ('f', 'm')]; "
    "files_job(Config().replace(job={'local_heap_mb': int(sys.argv[1])}), "
    "os.path.join(folder, 'f'), os.path.join(folder, 'm'), os.path.join(folder, 'out')); "
    "print(get_gateway().jvm.java.lang.Runtime.getRuntime().maxMemory() >> 20)")


# A JVM each, in a process of its own: a test session's JVM may have been started already.
@pytest.mark.minicluster
@pytest.mark.parametrize("heap,jvm_args,expected,script", [
    (512, None, range(400, 513), _MAX_HEAP), (512, "-Xmx300m", range(200, 301), _MAX_HEAP),
    (512, None, range(400, 513), _MAX_HEAP_OF_A_JOB)])
def test_the_local_jvm_gets_the_heap_cap(tmp_path, heap, jvm_args, expected, script):
    import subprocess
    import sys
    env = {k: v for k, v in subprocess_env().items()
           if k not in ("JVM_ARGS", "PYFLINK_GATEWAY_PORT")}
    env.update(FLINK_LOG_DIR=str(tmp_path), **({"JVM_ARGS": jvm_args} if jvm_args else {}))
    out = subprocess.run([sys.executable, "-c", script, str(heap), str(tmp_path / "job")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) in expected


# int() and str.isdigit() take other scripts' digits too: Arabic-Indic, fullwidth, Devanagari.
OTHER_DIGITS = ("\u0661\u0662", "\uff11\uff12", "\u0967\u0968")


@pytest.mark.unit
@pytest.mark.parametrize("digits", OTHER_DIGITS)
def test_a_setting_s_digits_are_ascii_only(tmp_path, digits):
    """Before: "١٢" was a window of 12 s, and "١٢٣٤٥٦٧٨٩٠١٢" a publisher's account id."""
    from flowdredge.connectors.publisher import config as publisher_config
    from flowdredge.job import managed
    got = f"expected an integer, got '{digits}'"
    (tmp_path / "c.yaml").write_text(f"job: {{window_seconds: '{digits}'}}\n", encoding="utf-8")
    (tmp_path / "u.yaml").write_text(f"kinesis: {{batch_records: {digits}}}\n", encoding="utf-8")
    groups = to_application_properties(Config())
    groups.append({"PropertyGroupId": "io", "PropertyMap": {
        "flows": "f", "metadata": "m", "output": "o", "follow_seconds": digits}})
    (tmp_path / "p.json").write_text(json.dumps(groups))
    for path, field in (("c.yaml", "job.window_seconds"), ("u.yaml", "kinesis.batch_records")):
        with pytest.raises(ConfigError, match="^" + re.escape(f"{field}: {got}") + "$"):
            load(str(tmp_path / path))
    with pytest.raises(ConfigError, match="^" + re.escape(f"io.follow_seconds: {got}") + "$"):
        managed.load(str(tmp_path / "p.json"))
    publisher = {"accounts": ["123456789012"], "regions": ["us-east-1"],
                 "output": {"path": "p"}}
    with pytest.raises(ConfigError, match="^" + re.escape(f"aws.max_attempts: {got}") + "$"):
        publisher_config.from_dict({**publisher, "aws": {"max_attempts": digits}})
    for doc, field in (({**publisher, "accounts": [digits * 6]}, "accounts[0].id"),
                       ({**publisher, "regions": [f"us-east-{digits}"]}, "regions"),
                       ({**publisher, "accounts": [{"id": "123456789012", "role_arn":
                        f"arn:aws:iam::{digits * 6}:role/r"}]}, "accounts[0].role_arn")):
        with pytest.raises(ConfigError, match="^" + re.escape(f"{field}: '") + ".* is not "):
            publisher_config.from_dict(doc)
    (tmp_path / "r.yaml").write_text(f"kinesis: {{region: 'eu-west-{digits}'}}\n",
                                     encoding="utf-8")
    with pytest.raises(ConfigError, match="kinesis.region: .* is not an AWS region"):
        load(str(tmp_path / "r.yaml"))


@pytest.mark.unit
def test_a_setting_s_blanks_around_its_digits_are_ascii_only(tmp_path):
    """int() takes any Unicode blank around the digits (a no-break space pasted with them), as
    re's \\s does; ASCII blanks, as an application property's string may hold, are taken."""
    from flowdredge.schemas.settings import integer
    (tmp_path / "c.yaml").write_text("job: {window_seconds: ' 300 '}\n")
    assert load(str(tmp_path / "c.yaml")).job.window_seconds == 300 == integer(" 300 ")
    for blank in ("\u00a0", "\u2009", "\u3000"):
        (tmp_path / "c.yaml").write_text(f"job: {{window_seconds: '300{blank}'}}\n",
                                         encoding="utf-8")
        with pytest.raises(ConfigError, match="^" + re.escape(
                f"job.window_seconds: expected an integer, got {'300' + blank!r}") + "$"):
            load(str(tmp_path / "c.yaml"))
        with pytest.raises(ValueError, match="expected an integer"):
            integer(f"{blank}300")


@pytest.mark.parametrize("config, layout", [
    ({"kinesis": {"flow_streams": "flows"}}, "aws"), ({}, "staged")])
def test_managed_checks_no_followed_changelog_as_a_finished_one(tmp_path, config, layout):
    """job.managed.check_metadata checks io.metadata as a changelog read once (flows_layout
    aws): a folder followed (Kinesis flows, flows_layout staged) may hold a .gz still being
    written, which that check refuses as cut short; job.replay.check_followed_folder checks it
    instead. Checked there too, such a job was refused at start (a mutation review)."""
    import gzip
    from flowdredge.job.managed import IoSection, ManagedProperties, check_metadata
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "a.jsonl.gz").write_bytes(gzip.compress(b'{"type":"HEARTBEAT","ts":1}\n' * 99)[:40])
    io = IoSection(flows=str(tmp_path), metadata=str(meta), output="o", flows_layout=layout)
    assert check_metadata(ManagedProperties(from_dict(config), io, "p.json")) == ""


@pytest.mark.unit
def test_a_quoted_list_or_map_reads_integers_grouped_by_underscores(tmp_path):
    """`service_ports: '22,1_000'` and `risk_weights: 'dependencies=1_000'` were refused ('not a
    port: '1_000'') while the YAML list [22, 1_000] and an integer setting's '1_000' were read
    (a review); a grouping neither Python nor YAML writes is refused in each form alike."""
    for ports, weights in (("[22, 1_000]", "{dependencies: 1_000}"),
                           ("'22,1_000'", "'dependencies=1_000'"),
                           ("' 22 , 1_000 '", "' dependencies = 1_000 '")):
        (tmp_path / "c.yaml").write_text(
            f"security: {{service_ports: {ports}, risk_weights: {weights}}}\n")
        config = load(str(tmp_path / "c.yaml"))
        assert config.security.service_ports == frozenset({22, 1000})
        assert config.security.risk_weights["dependencies"] == 1000
    (tmp_path / "p.json").write_text(json.dumps([{"PropertyGroupId": "security", "PropertyMap": {
        "service_ports": "22,1_000", "risk_weights": "dependencies=1_000"}}]))
    assert load(str(tmp_path / "p.json")).security.service_ports == frozenset({22, 1000})
    for bad in ("1__000", "1000_", "_1000"):
        for written in (f"[22, {bad}]", f"'22,{bad}'"):
            (tmp_path / "c.yaml").write_text(f"security: {{service_ports: {written}}}\n")
            with pytest.raises(ConfigError, match=f"^security.service_ports: not a port: "
                                                  f"'{bad}'$"):
                load(str(tmp_path / "c.yaml"))
        (tmp_path / "c.yaml").write_text(f"security: {{risk_weights: 'dependencies={bad}'}}\n")
        with pytest.raises(ConfigError, match=f"^security.risk_weights: dependencies: expected "
                                              f"an integer from 0 to 2147483647, got '{bad}'$"):
            load(str(tmp_path / "c.yaml"))


@pytest.mark.unit
def test_a_quoted_list_or_map_reads_a_signed_integer_as_an_integer_setting_does(tmp_path):
    """`service_ports: '+22'` and `risk_weights: 'dependencies=+5'` were refused ('not a port:
    '+22'') while the YAML list [+22], the mapping {dependencies: +5} and an integer setting's
    '+600' were read (a review). A negative item is refused as out of range in each form."""
    for ports, weights in (("[+22]", "{dependencies: +5}"), ("'+22'", "'dependencies=+5'"),
                           ("' +22 '", "{dependencies: '+5'}")):
        (tmp_path / "c.yaml").write_text(
            f"security: {{service_ports: {ports}, risk_weights: {weights}}}\n"
            f"job: {{window_seconds: '+600'}}\n")
        config = load(str(tmp_path / "c.yaml"))
        assert config.security.service_ports == frozenset({22})
        assert config.security.risk_weights["dependencies"] == 5
        assert config.job.window_seconds == 600
    for written in ("[-22]", "'-22'"):
        (tmp_path / "c.yaml").write_text(f"security: {{service_ports: {written}}}\n")
        with pytest.raises(ConfigError, match="^security.service_ports: not a port: '-22'$"):
            load(str(tmp_path / "c.yaml"))
    (tmp_path / "c.yaml").write_text("security: {risk_weights: 'dependencies=-5'}\n")
    with pytest.raises(ConfigError, match="^security.risk_weights: dependencies: expected an "
                                          "integer from 0 to 2147483647, got '-5'$"):
        load(str(tmp_path / "c.yaml"))


@pytest.mark.unit
def test_an_event_for_kinesis_fits_one_record_at_the_largest_samples_allowed():
    """security.evidence_samples and reject_top_sources had no bound: a scan alert carries up to
    evidence_samples hosts and ports, a reject_spike up to reject_top_sources sources and
    ports, and with kinesis.security_events_stream each event is one Kinesis record, which the
    connector's sink refuses past 1 MiB, failing the job at every restart (a sweep of 30,000
    IPv6 hosts at evidence_samples 30,000 is a 1,380,345-byte alert). With the stream they are bounded
    at start; at the bounds the largest events take less than half a record."""
    from flowdredge.connectors.kinesis.settings import MAX_RECORD_BYTES
    from flowdredge.job.config import KINESIS_EVIDENCE_SAMPLES, KINESIS_REJECT_TOP_SOURCES
    from flowdredge.job.security import (MAX_LONG, RejectSource, event_line, scan_evidence,
                                         spike_evidence)
    from flowdredge.schemas.security import HOST_SWEEP, REJECT_SPIKE, SCAN_ALERTS
    stream = {"kinesis": {"security_events_stream": "events"}}
    for key, most in (("evidence_samples", KINESIS_EVIDENCE_SAMPLES),
                      ("reject_top_sources", KINESIS_REJECT_TOP_SOURCES)):
        assert getattr(from_dict({**stream, "security": {key: most}}).security, key) == most
        with pytest.raises(ConfigError, match="^" + re.escape(
                f"security.{key} must be at most {most:,} with kinesis.security_events_stream, "
                f"got {most + 1:,}: each event is one Kinesis record, at most 1,048,576 bytes, "
                f"and the sink fails the job on a larger one") + "$"):
            from_dict({**stream, "security": {key: most + 1}})
        # Files take rows of any length.
        assert getattr(from_dict({"security": {key: 10 ** 6}}).security, key) == 10 ** 6

    def record(line):   # as connectors.kinesis.flink writes it, with its partition key (a UUID)
        return len(('{"dedup_key":"' + "0" * 32 + '",' + line[1:]).encode()) + 36

    def address(i):   # an IPv6 address of the longest canonical text, 39 characters
        return f"ffff:ffff:ffff:ffff:ffff:ffff:ffff:{0x1000 + i:x}"
    n = KINESIS_EVIDENCE_SAMPLES
    sweep = event_line(SCAN_ALERTS[HOST_SWEEP], MAX_LONG, scan_evidence(
        address(0), ["app"], MAX_LONG, MAX_LONG, MAX_LONG, MAX_LONG, [], [address(i) for i in
        range(1, 2 * n)], list(range(10000, 10000 + 2 * n)), n))
    fields = json.loads(sweep)
    assert [len(fields[k].split(",")) for k in ("hosts_sample", "ports_sample")] == [n, n]
    assert len(address(0)) == len(fields["hosts_sample"].split(",")[-1]) == 39
    n = KINESIS_REJECT_TOP_SOURCES
    spike = event_line(REJECT_SPIKE, MAX_LONG, ("app", MAX_LONG, MAX_LONG, 10) + spike_evidence(
        [RejectSource(10000 + i, 255, "a", address(i), 10 ** 18 + i, 1, 1)
         for i in range(2 * n)], n))
    fields = json.loads(spike)
    assert [len(fields[k].split(",")) for k in ("top_ports", "top_sources")] == [n, n]
    for line in (sweep, spike):
        assert record(line) < MAX_RECORD_BYTES // 2


@pytest.mark.unit
def test_the_owners_an_event_names_fit_one_record_with_the_stream():
    """An event names up to two owners (new_dependency's apps), each up to
    metadata.max_line_bytes characters, a code point past U+FFFF 12 bytes of its JSON: at
    100,000 two such apps made a 2,400,292-byte new_dependency, which the Kinesis sink refuses
    (at every restart) past 1 MiB. With kinesis.security_events_stream the setting is bounded
    at start to what fits: 43,665 characters at the largest samples, and at the defaults."""
    from flowdredge.connectors.kinesis.settings import MAX_RECORD_BYTES
    from flowdredge.job.config import EVENT_RECORD_EXTRA
    from flowdredge.job.security import MAX_LONG, event_line
    from flowdredge.schemas.security import NEW_DEPENDENCY
    stream = {"kinesis": {"security_events_stream": "events"}}
    most = 43_665
    for security in ({}, {"evidence_samples": 10_000, "reject_top_sources": 5_000}):
        assert from_dict({**stream, "security": security,
                          "metadata": {"max_line_bytes": most}}).metadata.max_line_bytes == most
        with pytest.raises(ConfigError, match="^" + re.escape(
                f"metadata.max_line_bytes must be at most {most:,} with "
                f"kinesis.security_events_stream, got {most + 1:,}: an owner (app, resource) "
                f"holds up to that many characters, and up to 12 bytes of an event's JSON "
                f"each; an event names up to two, and is one Kinesis record, at most "
                f"1,048,576 bytes, and the sink fails the job on a larger one") + "$"):
            from_dict({**stream, "security": security,
                       "metadata": {"max_line_bytes": most + 1}})
    assert from_dict({"metadata": {"max_line_bytes": 10 ** 6}}).metadata.max_line_bytes == 10 ** 6
    for chars, fits in ((most, True), (most + 1, False)):
        owner = "\U0001f600" * chars
        line = event_line(NEW_DEPENDENCY, MAX_LONG, (owner, owner, 65535, 255) + (MAX_LONG,) * 6)
        assert (len(line) + EVENT_RECORD_EXTRA <= MAX_RECORD_BYTES) is fits


def test_the_owners_an_aggregate_row_names_fit_one_record_with_the_stream():
    """An aggregate row names two ends' owners (app and region, from a changelog line each of
    up to metadata.max_line_bytes characters): at 10**6, a row on the Kinesis aggregates
    stream could take megabytes, which the sink refuses (at every restart) past 1 MiB. With
    kinesis.aggregates_stream the setting is bounded at start to what fits: 43,677. It was
    87,354, for 6 bytes of JSON a character, but Flink's json format (Jackson) writes a code
    point past U+FFFF as its surrogate pair escaped, 12 bytes: a row of such owners at 87,354
    took 2,096,823 bytes."""
    import json
    from flowdredge.connectors.kinesis.settings import MAX_RECORD_BYTES
    from flowdredge.job.config import aggregate_record_bytes
    from flowdredge.schemas.outputs import AGGREGATE
    stream = {"kinesis": {"aggregates_stream": "aggregates"}}
    most = 43_677
    assert from_dict({**stream, "metadata": {"max_line_bytes": most}}).metadata.max_line_bytes \
        == most
    with pytest.raises(ConfigError, match="^" + re.escape(
            f"metadata.max_line_bytes must be at most {most:,} with kinesis.aggregates_stream, "
            f"got {most + 1:,}: an aggregate row names two owners (app and region, from a "
            f"changelog line each of up to that many characters, up to 12 bytes of the row's "
            f"JSON each), and is one Kinesis record, at most 1,048,576 bytes, and the sink fails "
            f"the job on a larger one") + "$"):
        from_dict({**stream, "metadata": {"max_line_bytes": most + 1}})
    # The bound holds a row at its longest: each end's app and region of code points past
    # U+FFFF (12 bytes each as Flink writes them, "\ud83d\ude00", as json.dumps does), every
    # number at its longest, a dedup_key of 32 characters.
    half = most // 2
    row = {"dedup_key": "0" * 32}
    for f in AGGREGATE.fields:
        row[f.name] = -2 ** 63 if f.kind == "long" else -2 ** 31 if f.kind == "int" else "ACCEPT"
    for end in ("src", "dst"):
        row[f"{end}_app"], row[f"{end}_region"] = "\U0001F600" * half, "\x1b" * (most - half)
    record = json.dumps(row, separators=(",", ":")).encode() + b"0" * 32
    assert len(record) <= aggregate_record_bytes(most) <= MAX_RECORD_BYTES
