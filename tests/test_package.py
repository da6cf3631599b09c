"""Amazon Managed Service for Apache Flink: the application zip, its entry point's runtime
properties, and the kinesisanalyticsv2 deployment.

The end-to-end test runs the unpacked zip with a Python that sees only what the service's
Python has (PyFlink and its requirements): the repository is not importable, and every other
installed package is hidden unless the zip carries it.
"""
import datetime
import hashlib
import importlib.metadata as md
import json
import os
import re
import site
import subprocess
import sys
import zipfile

import boto3
import pytest
from botocore.stub import ANY, Stubber

import reference
from helpers import job_aggregates, moto_server, subprocess_env, wrapper_calls
from flowdredge.connectors.jars import ADAPTERS, CONNECTORS, JARS_DIR
from flowdredge.job import managed
from flowdredge.job.config import Config, ConfigError, to_application_properties
from flowdredge.job.replay import stage_flows, stage_metadata
from flowdredge.operate import deploy, package
from flowdredge.synthetic.estate import Scenario, generate

BIN = os.path.join(os.path.dirname(sys.executable), "flowdredge")


@pytest.mark.unit
def test_the_jars_urls_name_their_files_whatever_the_folder_is_named(tmp_path, monkeypatch):
    """pipeline.jars is read as URLs: written as "file://" and the path, a folder named with a
    space failed every job (URISyntaxException), and one with %41 in its name named a folder
    A (a review)."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname
    from flowdredge.connectors import jars
    folder = tmp_path / "my jars%41"
    folder.mkdir()
    (folder / ADAPTERS).write_bytes(b"")
    monkeypatch.setattr(jars, "JARS_DIR", str(folder))
    [url] = jars.adapter_jars()
    assert urlparse(url).scheme == "file" and " " not in url
    assert url2pathname(urlparse(url).path) == str(folder / ADAPTERS)


def properties_file(path, config: Config, io: dict, extra_groups=()):
    groups = to_application_properties(config) + [
        {"PropertyGroupId": "io", "PropertyMap": io}, *extra_groups]
    path.write_text(json.dumps(groups))
    return str(path)


def write_jar(path, entries: dict):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return str(path)


# --- runtime properties ---------------------------------------------------------------------

@pytest.mark.unit
def test_runtime_properties_give_the_config_and_io_and_ignore_the_run_options(tmp_path):
    run_options = {"PropertyGroupId": managed.RUN_OPTIONS_GROUP,
                   "PropertyMap": {"python": "main.py", "jarfile": package.JAR_NAME}}
    path = properties_file(tmp_path / "p.json", Config().replace(job={"parallelism": 3}),
                           {"flows": "s3://b/flows/", "metadata": "s3://b/meta/",
                            "output": "s3://b/out/", "follow_seconds": "30",
                            "flows_layout": "staged"}, [run_options])
    props = managed.load(path)
    assert props.config.job.parallelism == 3
    assert props.io == managed.IoSection("s3://b/flows/", "s3://b/meta/", "s3://b/out/", 30,
                                         "staged")


FLOWS_METADATA = {"flows": "f", "metadata": "m"}


@pytest.mark.unit
@pytest.mark.parametrize("io_values,message", [
    (None, "property group 'io' is missing"),
    (FLOWS_METADATA, "io.output is required"),
    ({**FLOWS_METADATA, "output": "o", "folow_seconds": "5"}, "unknown key(s)"),
    ({**FLOWS_METADATA, "output": "o", "follow_seconds": "soon"}, "expected an integer"),
    ({**FLOWS_METADATA, "output": "o", "follow_seconds": "-1"}, "must not be negative"),
])
def test_bad_io_properties_are_clear_errors(tmp_path, io_values, message):
    groups = to_application_properties(Config())
    if io_values is not None:
        groups.append({"PropertyGroupId": "io", "PropertyMap": io_values})
    (tmp_path / "p.json").write_text(json.dumps(groups))
    with pytest.raises(ConfigError, match=re.escape(message)):
        managed.load(str(tmp_path / "p.json"))


@pytest.mark.unit
def test_an_unknown_property_group_names_every_known_one(tmp_path):
    """io and the service's run options were missing from the list (a review)."""
    groups = to_application_properties(Config()) + [
        {"PropertyGroupId": "io", "PropertyMap": {"flows": "f", "metadata": "m", "output": "o"}},
        {"PropertyGroupId": "iox", "PropertyMap": {"output": "o"}}]
    (tmp_path / "p.json").write_text(json.dumps(groups))
    with pytest.raises(ConfigError, match=re.escape(
            "unknown property group(s) ['iox']; known: ['flows', 'io', 'job', 'kinesis', "
            "'kinesis.analytics.flink.run.options', 'metadata', 'outputs', 'security']")):
        managed.load(str(tmp_path / "p.json"))


@pytest.mark.unit
def test_job_config_errors_come_through(tmp_path):
    groups = [{"PropertyGroupId": "job", "PropertyMap": {"window_seconds": "0"}},
              {"PropertyGroupId": "io", "PropertyMap": {"flows": "f", "metadata": "m",
                                                        "output": "o"}}]
    (tmp_path / "p.json").write_text(json.dumps(groups))
    with pytest.raises(ConfigError, match="job.window_seconds must be positive"):
        managed.load(str(tmp_path / "p.json"))


@pytest.mark.unit
def test_the_service_file_wins_over_a_local_one(tmp_path, monkeypatch):
    service = tmp_path / "etc-flink-application_properties.json"
    monkeypatch.setattr(managed, "SERVICE_PROPERTIES", str(service))
    assert managed.properties_path("local.json") == "local.json"
    with pytest.raises(ConfigError, match="no runtime properties"):
        managed.properties_path(None)
    service.write_text("[]")
    assert managed.properties_path("local.json") == str(service)


@pytest.mark.unit
def test_the_entry_point_checks_a_local_changelog_and_says_why_not_an_s3_one(
        tmp_path, monkeypatch, capsys):
    """io.metadata was not checked as `scripts/cluster submit` checks a local --metadata: a FIFO
    in its folder kept the job's changelog reader (ChangelogFiles) waiting for ever, a .gz cut
    short failed the job after its restarts (a review). A local one is refused in one line
    naming it; an s3:// one, not read at start, is said to be unchecked."""
    import gzip
    from flowdredge.job.flink import managed as entry, run
    built = []
    monkeypatch.setattr(run, "deployed_job", lambda *args, **kw: built.append(args) or
                        type("Env", (), {"execute": lambda self, name: None})())
    meta = tmp_path / "meta"
    meta.mkdir()
    os.mkfifo(meta / "b.fifo")
    io = {"flows": str(tmp_path / "flows"), "metadata": str(meta), "output": "o"}
    path = properties_file(tmp_path / "p.json", Config(), io)
    assert entry.main([], argv=["--properties", path]) == 2
    assert capsys.readouterr().err == (
        f"flowdredge: error: io.metadata: {meta / 'b.fifo'}: not a regular file (a FIFO, "
        f"socket or device): Flink's reader would wait on it for a writer or fail; remove it "
        f"from the folder (a FIFO can be named itself)\n")
    (meta / "b.fifo").unlink()
    (meta / "a.jsonl.gz").write_bytes(gzip.compress(b'{"type":"HEARTBEAT","ts":1}\n' * 99)[:40])
    assert entry.main([], argv=["--properties", path]) == 2
    assert capsys.readouterr().err.startswith(
        f"flowdredge: error: io.metadata: {meta / 'a.jsonl.gz'}: cannot read")
    assert not built
    (meta / "a.jsonl.gz").unlink()
    for metadata, said in ((str(meta), ""), ("s3://b/changelog/", (
            "flowdredge: note: io.metadata s3://b/changelog/ is not checked at start: that "
            "would download every changelog file before the job starts; a file its reader "
            "fails on (a .gz cut short or not gzip, gzip under another name) fails the job "
            "after its restarts\n"))):
        path = properties_file(tmp_path / "p.json", Config(), {**io, "metadata": metadata})
        assert entry.main([], argv=["--properties", path]) == 0
        assert capsys.readouterr().err == said
    assert len(built) == 2


def _ip_ranges_starts(tmp_path, monkeypatch):
    """(starts, built): starts(ranges) is what the zip's main.py and job.submit (what `scripts/
    cluster submit`'s flink run runs) return with that metadata.ip_ranges, `built` the jobs they
    built (none runs)."""
    from flowdredge.job import submit
    from flowdredge.job.flink import managed as entry, run
    built = []
    monkeypatch.setattr(run, "deployed_job", lambda *args, **kw: built.append(args) or
                        type("Env", (), {"execute": lambda self, name: None})())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meta.jsonl").write_text('{"type":"HEARTBEAT","ts":1}\n')
    io = {"flows": str(tmp_path / "flows"), "metadata": str(tmp_path / "meta.jsonl"),
          "output": "o"}

    def starts(ranges):
        path = properties_file(tmp_path / "p.json",
                               Config().replace(metadata={"ip_ranges": ranges}), io)
        return (entry.main([], argv=["--properties", path]),
                submit.main(["--config", path, "--output", "o"]))
    return starts, built


IP_RANGES = os.path.join(os.path.dirname(__file__), "data", "ip-ranges.json")


@pytest.mark.unit
def test_every_entry_point_reads_a_local_ip_ranges_before_flink_starts(
        tmp_path, monkeypatch, capsys):
    """A local metadata.ip_ranges was read at start by `flowdredge` only: the zip's main.py and
    job.submit (what `scripts/cluster submit`'s flink run runs) built the job, and each
    attribution instance failed as it started, Flink running. Both refuse it in one line now;
    a relative path is read from the working directory, as the job's Python workers read it."""
    import shutil
    starts, built = _ip_ranges_starts(tmp_path, monkeypatch)
    (tmp_path / "bad.json").write_text('{"syncToken": "1"}')
    # Not UTF-8: UnicodeDecodeError's traceback stopped the start.
    (tmp_path / "latin.json").write_bytes(b'{"prefixes": [], "syncToken": "\xe9"}')
    (tmp_path / "ranges").mkdir()
    shutil.copy(IP_RANGES, tmp_path / "ranges")
    for ranges, said in (
            ("missing.json", "cannot read missing.json: No such file or directory"),
            ("bad.json", "not an ip-ranges.json document (no 'prefixes')"),
            ("latin.json", "latin.json: not JSON: 'utf-8' codec can't decode byte 0xe9 in "
                           "position 31: invalid continuation byte")):
        assert starts(ranges) == (2, 2)
        assert capsys.readouterr().err == f"flowdredge: error: metadata.ip_ranges: {said}\n" * 2
    assert not built
    assert starts("ranges/ip-ranges.json") == (0, 0)
    assert len(built) == 2


@pytest.mark.aws
def test_every_entry_point_reads_an_s3_ip_ranges_before_flink_starts(
        tmp_path, monkeypatch, capsys):
    """An s3:// metadata.ip_ranges was not read at start (only its form checked): a missing
    object or one that is no ip-ranges document was found by each attribution instance as it
    started, Flink running, its restarts spent. Every entry point reads it now, with boto3 as
    the job's workers read it, and refuses it in one line."""
    starts, built = _ip_ranges_starts(tmp_path, monkeypatch)
    with moto_server(tmp_path) as url:
        # The entry points find moto through boto3's setting, as the job's processes would.
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="ranges")
        s3.upload_file(IP_RANGES, "ranges", "aws/ip-ranges.json")
        s3.put_object(Bucket="ranges", Key="cut.json", Body=b'{"prefixes": [')
        s3.put_object(Bucket="ranges", Key="other.json", Body=b'{"syncToken": "1"}')
        for ranges, said in (
                ("s3://ranges/aws/missing.json", "cannot read s3://ranges/aws/missing.json: An "
                 "error occurred (NoSuchKey) when calling the GetObject operation: The "
                 "specified key does not exist."),
                ("s3://no-such-bucket/ip-ranges.json", "cannot read s3://no-such-bucket/"
                 "ip-ranges.json: An error occurred (NoSuchBucket) when calling the GetObject "
                 "operation: The specified bucket does not exist"),
                ("s3://ranges/cut.json", "s3://ranges/cut.json: not JSON: Expecting value: "
                 "line 1 column 15 (char 14)"),
                ("s3://ranges/other.json", "not an ip-ranges.json document (no 'prefixes')")):
            assert starts(ranges) == (2, 2), ranges
            assert capsys.readouterr().err == \
                f"flowdredge: error: metadata.ip_ranges: {said}\n" * 2
        assert not built
        assert starts("s3://ranges/aws/ip-ranges.json") == (0, 0)
    assert len(built) == 2


@pytest.mark.unit
def test_the_streaming_job_s_entry_points_check_a_local_metadata_snapshot(
        tmp_path, monkeypatch, capsys):
    """`flowdredge run` refused a kinesis.metadata_snapshot that is not there (or that its reader
    would fail on) before Flink started; the zip's main.py and job.submit (`scripts/cluster
    submit` of the streaming job) built the job, whose file source then failed. A job reading
    files does not read the snapshot: not checked there."""
    from flowdredge.job import submit
    from flowdredge.job.flink import managed as entry, run
    built = []
    monkeypatch.setattr(run, "deployed_job", lambda *args, **kw: built.append(args) or
                        type("Env", (), {"execute": lambda self, name: None})())
    (tmp_path / "meta.jsonl").write_text('{"type":"HEARTBEAT","ts":1}\n')
    snapshot = tmp_path / "snapshot.jsonl"
    config = Config().replace(kinesis={"flow_streams": "flows", "metadata_stream": "meta",
                                       "metadata_snapshot": str(snapshot)})
    path = properties_file(tmp_path / "p.json", config, {"output": "o"})
    assert entry.main([], argv=["--properties", path]) == 2
    assert submit.main(["--config", path, "--output", "o"]) == 2
    assert capsys.readouterr().err == (
        f"flowdredge: error: kinesis.metadata_snapshot: {snapshot} does not exist\n" * 2)
    assert not built
    assert submit.main(["--config", path, "--output", "o", "--flows", str(tmp_path),
                        "--metadata", str(tmp_path / "meta.jsonl")]) == 0
    snapshot.write_text('{"type":"HEARTBEAT","ts":1}\n')
    assert entry.main([], argv=["--properties", path]) == 0
    assert submit.main(["--config", path, "--output", "o"]) == 0
    assert len(built) == 3


@pytest.mark.unit
def test_job_submit_says_a_lone_metadata_misses_its_flows_before_reading_the_snapshot(
        tmp_path, capsys):
    """`--metadata` without `--flows` is a files job missing its flows; since 3a1c9f8 job.submit
    took it for the streaming job and checked its kinesis.metadata_snapshot first, saying the
    snapshot does not exist, not what was wrong with its arguments."""
    from flowdredge.job import submit
    (tmp_path / "c.yaml").write_text(
        f"kinesis: {{metadata_snapshot: {tmp_path / 'snapshot.jsonl'}}}\n")
    assert submit.main(["--config", str(tmp_path / "c.yaml"), "--output", "o",
                        "--metadata", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "flowdredge: error: --flows and --metadata go together\n"


# --- the zip ----------------------------------------------------------------------------------

@pytest.mark.unit
def test_the_zip_carries_what_the_entry_point_imports_and_nothing_for_the_cli():
    modules, third_party = package.code_closure()
    assert {f"flowdredge.{m}" for m in (
        "job.flink.managed", "job.managed", "job.flink.pipeline", "job.flink.operators",
        "connectors.files", "job.config", "schemas.outputs", "job")} | {"flowdredge"} \
        <= set(modules)
    # Query, report and publisher are tools around the job, not the job.
    assert not {f"flowdredge.{m}" for m in (
        "explore.query", "explore.report", "cli", "connectors.publisher", "synthetic.estate",
        "operate.package")} & set(modules)
    assert {"pyflink", "yaml", "boto3"} <= set(third_party)
    assert "duckdb" not in third_party


@pytest.mark.unit
def test_vendored_packages_are_those_the_service_python_lacks():
    # PyYAML comes with apache-flink (through apache-beam); boto3 (ip_ranges from s3://) does not.
    assert package.vendored_distributions(["yaml", "pyflink"]) == []
    vendored = package.vendored_distributions(["boto3"])
    assert {"boto3", "botocore", "s3transfer", "jmespath"} <= set(vendored)
    provided = package.requirement_closure(["apache-flink"], package.service_environment())
    assert {"pyyaml", "apache-beam", "urllib3", "python-dateutil"} <= provided
    assert not provided & set(vendored)
    with pytest.raises(package.PackageError, match="no installed distribution provides"):
        package.vendored_distributions(["no_such_module_anywhere"])


def providers(jar: zipfile.ZipFile, name: str) -> list:
    """The classes a META-INF/services file registers, as java.util.ServiceLoader reads it."""
    lines = (line.split("#")[0].strip() for line in jar.read(name).decode("utf-8").splitlines())
    return [line for line in lines if line]


@pytest.mark.unit
def test_the_merged_jar_has_the_adapters_the_connector_and_its_registrations():
    # scripts/setup's jar (the maven-shade-plugin, connectors/jvm/pom.xml).
    with zipfile.ZipFile(os.path.join(JARS_DIR, CONNECTORS)) as merged, \
            zipfile.ZipFile(os.path.join(JARS_DIR, ADAPTERS)) as adapters:
        names = set(merged.namelist())
        classes = [n for n in adapters.namelist() if n.endswith(".class")]
        assert classes and all(merged.read(n) == adapters.read(n) for n in classes)
        services = [n for n in names if n.startswith("META-INF/services/") and n[-1] != "/"]
        assert providers(merged, "META-INF/services/org.apache.flink.table.factories.Factory") \
            == ["org.apache.flink.connector.kinesis.table.KinesisDynamicTableFactory"]
        # Every registration names a class the jar has (the AWS SDK finds its HTTP clients so).
        registered = [p for n in services for p in providers(merged, n)]
        assert len(registered) >= 5
        assert all(p.replace(".", "/") + ".class" in names for p in registered)
        assert not [n for n in names if re.match(r"META-INF/[^/]+\.(SF|DSA|RSA|EC)$", n)]
    assert package.connector_jar(os.path.join(JARS_DIR, CONNECTORS))[1] == []


@pytest.mark.unit
def test_a_missing_jar_or_part_is_said_and_the_jar_goes_in_as_built(tmp_path):
    jar, (missing,) = package.connector_jar(str(tmp_path / "none.jar"))
    assert jar is None and "none.jar is missing: run scripts/setup" in missing
    adapters_only = write_jar(tmp_path / "adapters.jar",
                              {"io/flowdredge/files/RawBytes.class": "r"})
    assert [w.split(": ")[0] for w in package.connector_jar(adapters_only)[1]] \
        == [f"{adapters_only} has no Kinesis connector (org/apache/flink/connector/kinesis/)"]

    both = write_jar(tmp_path / "both.jar", {
        "org/apache/flink/connector/kinesis/source/KinesisStreamsSource.class": "k",
        "io/flowdredge/files/RawBytes.class": "r"})
    result = package.build(str(tmp_path / "app.zip"), jar=both)
    assert result.warnings == [] and result.jar == "both.jar"
    with zipfile.ZipFile(result.path) as zf, open(both, "rb") as fh:
        assert json.loads(zf.read("BUILD-INFO.json"))["jarfile"] == package.JAR_NAME
        assert zf.read(package.JAR_NAME) == fh.read()
    assert deploy.jarfile_in(result.path) == package.JAR_NAME

    # The command says so, and fails when asked to insist, writing no zip: create and update
    # would deploy it.
    assert package.main(["--output", str(tmp_path / "b.zip"), "--jar", adapters_only,
                         "--require-connector"]) == 1
    assert not (tmp_path / "b.zip").exists()
    (tmp_path / "b.zip").write_bytes(b"an earlier build")
    assert package.main(["--output", str(tmp_path / "b.zip"), "--jar", adapters_only,
                         "--require-connector"]) == 1
    assert not (tmp_path / "b.zip").exists()


@pytest.mark.unit
def test_the_zip_layout_is_what_the_service_runs(tmp_path):
    no_jar = str(tmp_path / "no.jar")
    result = package.build(str(tmp_path / "app.zip"), jar=no_jar)
    with zipfile.ZipFile(result.path) as zf:
        names = set(zf.namelist())
        info = json.loads(zf.read("BUILD-INFO.json"))
    assert {"main.py", "python/flowdredge/__init__.py", "python/flowdredge/job/flink/managed.py",
            "python/flowdredge/job/__init__.py", "python/flowdredge/schemas/__init__.py",
            "vendor/boto3/__init__.py"} <= names
    assert not [n for n in names if n.endswith(".pyc") or n.startswith("vendor/bin/")]
    # vendor/ is pip's install of the service's wheels, at the versions installed here.
    assert info["vendor_target"] == {"python": "3.12", "platform": "manylinux2014_x86_64",
                                     "implementation": "cp"}
    assert [w.split("-")[:2] for w in info["wheels"]] == sorted(
        [d, md.version(d)] for d in result.vendored)
    assert all(service_wheel(w) for w in info["wheels"])
    assert info["extensions"] == sorted(n for n in names if n.endswith(".so"))
    assert info["jarfile"] is None and info["jar_source"] is None
    assert len(info["warnings"]) == 1 and "no.jar is missing" in info["warnings"][0]
    again = package.build(str(tmp_path / "again.zip"), jar=no_jar)
    assert (tmp_path / "app.zip").read_bytes() == (tmp_path / "again.zip").read_bytes()
    assert again.modules == result.modules


SERVICE_TAGS = re.compile(r"-(py3-none-any|cp312-(cp312|abi3)-\S*manylinux\S*x86_64)\.whl$")


def service_wheel(name: str) -> bool:
    return bool(SERVICE_TAGS.search(name))


@pytest.mark.unit
def test_pip_installs_the_installed_versions_from_wheels_for_the_service():
    pins = package.pins(["botocore", "pyyaml"])
    assert pins == [f"botocore=={md.version('botocore')}", f"pyyaml=={md.version('pyyaml')}"]
    command = package.pip_command("/t/vendor", pins)
    assert command[:4] == [sys.executable, "-m", "pip", "install"] and command[-2:] == pins
    flags = " ".join(command[4:-2])
    for flag in ("--no-deps", "--only-binary=:all:", "--no-compile",
                 "--platform manylinux2014_x86_64", "--python-version 3.12",
                 "--implementation cp", "--target /t/vendor"):
        assert flag in flags


@pytest.mark.unit
def test_a_vendored_package_with_a_compiled_extension_carries_the_services_build(
        tmp_path, monkeypatch):
    # Nothing the job vendors today has one: PyYAML (a C extension; the service has its own)
    # stands in for such a dependency.
    monkeypatch.setattr(package, "vendored_distributions", lambda third_party: ["pyyaml"])
    result = package.build(str(tmp_path / "app.zip"), jar=str(tmp_path / "no.jar"))
    with zipfile.ZipFile(result.path) as zf:
        names = set(zf.namelist())
        info = json.loads(zf.read("BUILD-INFO.json"))
    built_here = [n for n in names if n.endswith(".so") and "cpython-311" in n]
    assert "vendor/yaml/_yaml.cpython-312-x86_64-linux-gnu.so" in names and not built_here
    assert info["extensions"] == ["vendor/yaml/_yaml.cpython-312-x86_64-linux-gnu.so"]
    assert [w.split("-")[:2] for w in info["wheels"]] == [["pyyaml", md.version("pyyaml")]]
    assert service_wheel(info["wheels"][0]) and "-cp312-" in info["wheels"][0]


@pytest.mark.unit
def test_a_package_without_a_wheel_for_the_service_is_a_clear_error(tmp_path):
    with pytest.raises(package.PackageError) as err:
        package.install_wheels(["jmespath==999.0"], str(tmp_path / "vendor"))
    message = str(err.value)
    assert "\n" not in message
    assert "no wheel of jmespath==999.0 for Python 3.12 (cp) on manylinux2014_x86_64" in message
    assert "pip install" in message and "--platform manylinux2014_x86_64" in message


# --- the unpacked zip on the mini-cluster -----------------------------------------------------

SITE_CUSTOMIZE = '''\
"""Makes this interpreter look like the service's Python: only the application zip provides
modules that neither the standard library nor apache-flink's requirements provide."""
import importlib.machinery
import sys

BLOCKED = {blocked!r}
INSTALLED = {installed!r}


class ServiceImage:
    def find_spec(self, name, path=None, target=None):
        if "." in name or name not in BLOCKED:
            return None
        # The zip's folders: where main.py put them, or PyFlink's copies on a worker's path.
        shipped = [p for p in sys.path if p not in INSTALLED]
        spec = importlib.machinery.PathFinder.find_spec(name, shipped)
        if spec is None:
            raise ModuleNotFoundError(f"{{name}} is not in the service's Python nor in the zip",
                                      name=name)
        return spec


sys.meta_path.insert(0, ServiceImage())
'''


def service_like_python(folder) -> str:
    """A venv that sees this venv's site-packages through a path entry (so its .pth files, the
    editable install of the repository among them, do not run) and hides every installed
    package outside apache-flink's requirements."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = os.path.join(str(folder), "bin", "python")
    target = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    ours = site.getsitepackages()[0]
    with open(os.path.join(target, "flowdredge-test-site.pth"), "w") as fh:
        fh.write(ours + "\n")
    provided = package.requirement_closure([package.SERVICE_DISTRIBUTION],
                                           package.service_environment())
    blocked = {package.PROJECT_PACKAGE}
    for top, dists in md.packages_distributions().items():
        if not {package.normalize(d) for d in dists} & provided:
            blocked.add(top)
    with open(os.path.join(target, "sitecustomize.py"), "w") as fh:
        fh.write(SITE_CUSTOMIZE.format(blocked=sorted(blocked), installed=[target, ours]))
    return python


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """A `flowdredge replay` at parallelism 2; the same inputs, staged, feed the zip's runs
    (the default layout)."""
    folder = tmp_path_factory.mktemp("managed")
    out = generate(Scenario(minutes=3, flows_per_minute=200, seed=11), str(folder / "inputs"))
    flows = str(folder / "inputs" / "flows")
    result = subprocess.run([BIN, "replay", "--flows", flows, "--metadata", out.metadata_file,
                             "--output", str(folder / "replay"), "--parallelism", "2"],
                            capture_output=True, text=True, timeout=600, env=subprocess_env())
    assert result.returncode == 0, result.stderr[-3000:]
    aggregates = job_aggregates(str(folder / "replay"))
    assert aggregates == reference.aggregates([flows], [out.metadata_file])
    assert not (folder / "replay" / "staging").exists()   # the replay leaves its outputs only
    staging = folder / "replay" / "staging"
    stage_flows([flows], str(staging / "flow-records.txt"), Config().flows.chunk_lines)
    stage_metadata([out.metadata_file], str(staging / "metadata.jsonl"))
    return folder, aggregates


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unpacked")
    # The adapters only: the Kinesis connector (12 MB) is not what these tests are about
    # (tests/test_kinesis_managed.py ships the merged jar).
    zip_path = package.build(str(folder / "flowdredge.zip"),
                             jar=os.path.join(JARS_DIR, ADAPTERS)).path
    app = folder / "app"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(app)
    python = service_like_python(folder / "venv")
    return app, python


def run_unpacked(app, python, properties, tmp_path):
    env = {k: v for k, v in subprocess_env().items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(app)
    return subprocess.run([python, "main.py", "--properties", properties], cwd=str(app),
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.minicluster
def test_the_unpacked_zip_runs_the_job_with_the_replay_results(replayed, unpacked, tmp_path):
    """At parallelism 2, where broadcast state has two copies to agree: the job's own
    parallelism 1 and 2 runs are tests/test_pipeline.py's; this one is about what the zip
    holds and how the service starts it."""
    folder, replay_aggregates = replayed
    app, python = unpacked
    staging = folder / "replay" / "staging"
    props = properties_file(tmp_path / "application_properties.json",
                            Config().replace(job={"parallelism": 2}),
                            {"flows": str(staging / "flow-records.txt"),
                             "flows_layout": "staged",
                             "metadata": str(staging / "metadata.jsonl"),
                             "output": str(tmp_path / "out")})
    result = run_unpacked(app, python, props, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert replay_aggregates and job_aggregates(str(tmp_path / "out")) == replay_aggregates


@pytest.mark.unit
def test_the_service_like_python_takes_the_job_and_boto3_from_the_zip_only(unpacked, tmp_path):
    app, python = unpacked
    probe = ("import flowdredge.job.flink.managed, flowdredge.job.config, boto3, yaml\n"
             "print(flowdredge.job.flink.managed.__file__, boto3.__file__, yaml.__file__)\n"
             "import duckdb\n")
    env = {**subprocess_env(), "PYTHONPATH": str(app / "python") + os.pathsep + str(app / "vendor")}
    result = subprocess.run([python, "-c", probe], capture_output=True, text=True, env=env,
                            cwd=str(tmp_path))
    managed_file, boto3_file, yaml_file = result.stdout.split()
    assert managed_file.startswith(str(app)) and boto3_file.startswith(str(app))
    assert not yaml_file.startswith(str(app))         # the service's own PyYAML
    assert "duckdb is not in the service's Python" in result.stderr


@pytest.mark.unit
def test_the_entry_point_says_what_is_wrong_with_the_properties(unpacked, tmp_path):
    app, python = unpacked
    (tmp_path / "p.json").write_text(json.dumps(to_application_properties(Config())))
    result = run_unpacked(app, python, str(tmp_path / "p.json"), tmp_path)
    assert result.returncode == 2 and "property group 'io' is missing" in result.stderr


# --- deployment -------------------------------------------------------------------------------

IO = {"flows": "s3://flows-bucket/staged/", "metadata": "s3://flows-bucket/metadata/",
      "output": "s3://out-bucket/flowdredge/", "follow_seconds": "60", "flows_layout": "staged"}
ROLE = "arn:aws:iam::123456789012:role/flowdredge-managed-flink"
ADAPTER_CLASS = {"io/flowdredge/files/RawBytes.class": "r"}
KINESIS_CLASS = {"org/apache/flink/connector/kinesis/source/KinesisStreamsSource.class": "k"}
STAND_IN_JAR = {**ADAPTER_CLASS, **KINESIS_CLASS}
RUN_OPTIONS = {"python": "main.py", "jarfile": package.JAR_NAME}


@pytest.fixture(scope="module")
def app_zip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deploy")
    # A stand-in for the merged jar (scripts/setup's, tens of MB): what deploy looks for in it.
    return package.build(str(folder / "app.zip"),
                         jar=write_jar(folder / "connectors.jar", STAND_IN_JAR)).path


@pytest.mark.unit
def test_property_groups_are_validated_before_anything_is_sent(tmp_path):
    props = properties_file(tmp_path / "p.json", Config(), {"flows": "x"})
    with pytest.raises(ConfigError, match="io.metadata is required"):
        deploy.property_groups(deploy.read_properties(props), {"flows": "x"}, None)
    job = {"PropertyGroupId": "job", "PropertyMap": {"parallelism": "2"}}
    with pytest.raises(deploy.DeployError, match="property group job given more than once"):
        deploy.property_groups([job, job], IO, None)
    groups = deploy.property_groups(deploy.read_properties(deploy.DEFAULT_PROPERTIES), IO,
                                    package.JAR_NAME)
    by_id = {g["PropertyGroupId"]: g["PropertyMap"] for g in groups}
    assert by_id[managed.RUN_OPTIONS_GROUP] == {"python": "main.py", "jarfile": package.JAR_NAME}
    assert by_id["io"] == IO and by_id["job"]["window_seconds"] == "60"
    # A YAML config, as flowdredge takes: its values and defaults as the service's strings;
    # JSON numbers and booleans as strings too (the service takes nothing else).
    (tmp_path / "c.yaml").write_text("job: {parallelism: 2}\noutputs: {enriched: false}\n")
    by_id = {g["PropertyGroupId"]: g["PropertyMap"] for g in deploy.property_groups(
        deploy.read_properties(str(tmp_path / "c.yaml")), IO, None)}
    assert (by_id["job"]["parallelism"], by_id["job"]["window_seconds"],
            by_id["outputs"]["enriched"]) == ("2", "60", "false")
    (tmp_path / "n.json").write_text(
        '[{"PropertyGroupId": "job", "PropertyMap": {"parallelism": 2}}, '
        '{"PropertyGroupId": "outputs", "PropertyMap": {"enriched": false}}]')
    by_id = {g["PropertyGroupId"]: g["PropertyMap"] for g in deploy.property_groups(
        deploy.read_properties(str(tmp_path / "n.json")), IO, None)}
    assert (by_id["job"]["parallelism"], by_id["outputs"]["enriched"]) == ("2", "false")
    for text, message in (("job: [1", "not JSON"), ('{"job": {}}', "a list of property groups"),
                          # A group without its id or map was a KeyError (a review).
                          ('[{"PropertyMap": {"a": "b"}}]', "a list of property groups"),
                          ('[{"PropertyGroupId": "io"}]', "a list of property groups"),
                          ('[{"PropertyGroupId": "io", "PropertyMap": ["flows"]}]',
                           "a list of property groups"),
                          ('[{"PropertyGroupId": "job", "PropertyMap": {"checkpoint_dir": null}}]',
                           "job.checkpoint_dir: expected a string, number or boolean, got None"),
                          # Cut to 40 characters, then its length (a review: quoted whole).
                          ('[{"PropertyGroupId": "job", "PropertyMap": {"checkpoint_dir": ["'
                           + "x" * 5000 + '"]}}]', r"job.checkpoint_dir: expected a string, "
                           r"number or boolean, got \['x{38}\.\.\. \(5,004 characters\)$")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(deploy.DeployError, match=message):
            deploy.property_groups(deploy.read_properties(str(tmp_path / "bad.json")), IO, None)
    # The service's limits, which botocore does not check: refused before the upload.
    streams = ",".join(f"flows-{i:04d}" for i in range(300))
    with pytest.raises(deploy.DeployError, match="kinesis.flow_streams: its value has 3,299 "
                                                 "characters; Managed Flink takes at most 2,048"):
        deploy.property_groups([{"PropertyGroupId": "kinesis",
                                 "PropertyMap": {"flow_streams": streams}}], IO, None)
    # The error named the temporary file the groups were checked in (a review).
    with pytest.raises(ConfigError) as err:
        deploy.property_groups([{"PropertyGroupId": "jobs", "PropertyMap": {"a": "b"}}], IO, None)
    assert str(err.value).startswith("unknown property group(s) ['jobs']; known: ")


@pytest.mark.unit
def test_no_region_is_one_line_and_package_takes_the_options_before_it(monkeypatch, capsys):
    """A traceback each (NoRegionError; KeyError 'package'), a review."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    assert deploy.main(["status", "--name", "app"]) == 2
    assert capsys.readouterr().err == "flowdredge: error: You must specify a region.\n"
    with pytest.raises(SystemExit) as done:
        deploy.main(["--region", "eu-west-1", "package", "--help"])
    assert done.value.code == 0 and "--require-connector" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        deploy.main(["status", "--name", "app", "--bogus"])
    assert done.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.fixture
def moto_url(tmp_path):
    with moto_server(tmp_path) as url:
        yield url


@pytest.mark.aws
def test_create_uploads_the_zip_and_creates_the_application_over_http(moto_url, app_zip,
                                                                      capsys):
    s3 = boto3.client("s3", endpoint_url=moto_url)
    s3.create_bucket(Bucket="code-bucket")
    s3.put_bucket_versioning(Bucket="code-bucket",
                             VersioningConfiguration={"Status": "Enabled"})
    assert deploy.main(["--endpoint-url", moto_url, "create", "--name", "flowdredge",
                        "--role", ROLE, "--bucket", "code-bucket", "--zip", app_zip,
                        "--io", ",".join(f"{k}={v}" for k, v in IO.items())]) == 0
    capsys.readouterr()

    key = deploy.code_key(app_zip)
    assert key.startswith(deploy.KEY_PREFIX) and key.endswith(".zip")
    uploaded = s3.get_object(Bucket="code-bucket", Key=key)
    with open(app_zip, "rb") as fh:
        assert uploaded["Body"].read() == fh.read()
    kda = boto3.client("kinesisanalyticsv2", endpoint_url=moto_url)
    detail = kda.describe_application(ApplicationName="flowdredge")["ApplicationDetail"]
    assert detail["RuntimeEnvironment"] == "FLINK-2_2"
    assert detail["ServiceExecutionRole"] == ROLE
    config = detail["ApplicationConfigurationDescription"]
    code = config["ApplicationCodeConfigurationDescription"]
    assert code["CodeContentType"] == "ZIPFILE"
    location = code["CodeContentDescription"]["S3ApplicationCodeLocationDescription"]
    assert location["BucketARN"] == "arn:aws:s3:::code-bucket"
    assert location["FileKey"] == key
    assert location["ObjectVersion"] == uploaded["VersionId"]
    groups = {g["PropertyGroupId"]: g["PropertyMap"] for g in
              config["EnvironmentPropertyDescriptions"]["PropertyGroupDescriptions"]}
    assert groups["io"] == IO
    assert groups[managed.RUN_OPTIONS_GROUP] == RUN_OPTIONS
    assert config["ApplicationSnapshotConfigurationDescription"] == {"SnapshotsEnabled": True}

    # Properties the job would refuse are refused before anything is uploaded.
    assert deploy.main(["--endpoint-url", moto_url, "create", "--name", "other", "--role", ROLE,
                        "--bucket", "code-bucket", "--key", "other.zip", "--zip", app_zip,
                        "--io", "flows=s3://b/f"]) == 2
    assert "io.metadata is required" in capsys.readouterr().err
    assert s3.list_objects_v2(Bucket="code-bucket", Prefix="other")["KeyCount"] == 0

    # An application of that name exists: refused before the upload (which could replace the
    # code it runs).
    versions = len(s3.list_object_versions(Bucket="code-bucket")["Versions"])
    assert deploy.main(["--endpoint-url", moto_url, "create", "--name", "flowdredge",
                        "--role", ROLE, "--bucket", "code-bucket", "--zip", app_zip,
                        "--io", ",".join(f"{k}={v}" for k, v in IO.items())]) == 2
    assert "application flowdredge exists" in capsys.readouterr().err
    assert len(s3.list_object_versions(Bucket="code-bucket")["Versions"]) == versions
    # The same zip again: no new object version (an update would not restart for nothing).
    assert deploy.upload(s3, app_zip, "code-bucket", key) == uploaded["VersionId"]
    assert len(s3.list_object_versions(Bucket="code-bucket")["Versions"]) == versions

    # A key of one's own in an unversioned bucket: the service would not load a new release.
    s3.create_bucket(Bucket="plain-bucket")
    assert deploy.main(["--endpoint-url", moto_url, "create", "--name", "third", "--role", ROLE,
                        "--bucket", "plain-bucket", "--key", "app.zip", "--zip", app_zip,
                        "--io", ",".join(f"{k}={v}" for k, v in IO.items())]) == 2
    assert "bucket plain-bucket is not versioned" in capsys.readouterr().err
    assert s3.list_objects_v2(Bucket="plain-bucket")["KeyCount"] == 0


def stubbed_clients():
    kda = boto3.client("kinesisanalyticsv2", region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x")
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="x")
    return kda, s3, Stubber(kda), Stubber(s3)


def described(version_id, groups=({"PropertyGroupId": "io", "PropertyMap": IO},)):
    return {"ApplicationDetail": {
        "ApplicationARN": "arn:aws:kinesisanalytics:us-east-1:123456789012:application/flowdredge",
        "ApplicationName": "flowdredge", "RuntimeEnvironment": "FLINK-2_2",
        "ApplicationStatus": "RUNNING", "ApplicationVersionId": version_id,
        "ApplicationConfigurationDescription": {"EnvironmentPropertyDescriptions": {
            "PropertyGroupDescriptions": list(groups)}}}}


class Args:
    def __init__(self, **values):
        self.__dict__.update(values)


@pytest.mark.unit
def test_update_uploads_and_restores_from_the_snapshot_the_service_takes(app_zip, tmp_path):
    # moto 5.2 implements only create/describe/list for kinesisanalyticsv2: the other calls are
    # checked at the client edge with botocore's Stubber (the request shapes are validated
    # against the service model, and the request must equal the one written out here).
    kda, s3, kda_stub, s3_stub = stubbed_clients()
    kda_stub.add_response("describe_application", described(7), {"ApplicationName": "flowdredge"})
    with open(app_zip, "rb") as fh:
        body = fh.read()
    s3_stub.add_response("get_bucket_versioning", {"Status": "Enabled"},
                         {"Bucket": "code-bucket"})
    s3_stub.add_client_error("head_object", "404", http_status_code=404,
                             expected_params={"Bucket": "code-bucket", "Key": "k.zip"})
    s3_stub.add_response("put_object", {"VersionId": "v2"},
                         {"Bucket": "code-bucket", "Key": "k.zip", "Body": body,
                          "Metadata": {"sha256": hashlib.sha256(body).hexdigest()}})
    properties = tmp_path / "p.json"
    properties.write_text(json.dumps([
        {"PropertyGroupId": "job", "PropertyMap": {"parallelism": "3", "checkpoint_dir": ""}},
        {"PropertyGroupId": "outputs", "PropertyMap": {"security": "false"}}]))
    expected = {
        "ApplicationName": "flowdredge",
        "CurrentApplicationVersionId": 7,
        "ApplicationConfigurationUpdate": {
            "ApplicationCodeConfigurationUpdate": {
                "CodeContentTypeUpdate": "ZIPFILE",
                "CodeContentUpdate": {"S3ContentLocationUpdate": {
                    "BucketARNUpdate": "arn:aws:s3:::code-bucket", "FileKeyUpdate": "k.zip",
                    "ObjectVersionUpdate": "v2"}}},
            # The empty checkpoint_dir is left out (the API refuses empty values); the io group
            # is the application's own, as describe_application returned it.
            "EnvironmentPropertyUpdates": {"PropertyGroups": [
                {"PropertyGroupId": "job", "PropertyMap": {"parallelism": "3"}},
                {"PropertyGroupId": "outputs", "PropertyMap": {"security": "false"}},
                {"PropertyGroupId": "io", "PropertyMap": IO},
                {"PropertyGroupId": "kinesis.analytics.flink.run.options",
                 "PropertyMap": RUN_OPTIONS}]},
            "FlinkApplicationConfigurationUpdate": {"ParallelismConfigurationUpdate": {
                "ConfigurationTypeUpdate": "CUSTOM", "ParallelismUpdate": 3,
                "AutoScalingEnabledUpdate": False}}},
        "RunConfigurationUpdate": {"ApplicationRestoreConfiguration": {
            "ApplicationRestoreType": "RESTORE_FROM_LATEST_SNAPSHOT"},
            # Sent false too: left out, the service resets it to false anyway.
            "FlinkRunConfiguration": {"AllowNonRestoredState": False}}}
    kda_stub.add_response("update_application", {"ApplicationDetail": described(8)[
        "ApplicationDetail"]}, expected)
    with kda_stub, s3_stub:
        deploy.update(kda, s3, Args(name="flowdredge", io=None, zip=app_zip,
                                    properties=str(properties), bucket="code-bucket",
                                    key="k.zip", restore="latest",
                                    allow_non_restored_state=False))
        kda_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()


@pytest.mark.unit
def test_a_deployer_without_list_bucket_uploads_and_a_partial_io_is_merged(app_zip):
    """S3 answers HeadObject of a key not there yet with 403 to a caller without
    s3:ListBucket: the zip is uploaded, not the deploy stopped. `--io output=...` replaces
    that key of the application's io group, not the whole group."""
    kda, s3, kda_stub, s3_stub = stubbed_clients()
    kda_stub.add_response("describe_application", described(2), {"ApplicationName": "f"})
    key = deploy.code_key(app_zip)
    s3_stub.add_client_error("head_object", "403", http_status_code=403,
                             expected_params={"Bucket": "b", "Key": key})
    s3_stub.add_response("put_object", {}, {"Bucket": "b", "Key": key, "Body": ANY,
                                            "Metadata": ANY})
    kda_stub.add_response("update_application", {"ApplicationDetail": described(3)[
        "ApplicationDetail"]}, {
        "ApplicationName": "f", "CurrentApplicationVersionId": 2,
        "ApplicationConfigurationUpdate": {
            "ApplicationCodeConfigurationUpdate": {
                "CodeContentTypeUpdate": "ZIPFILE",
                "CodeContentUpdate": {"S3ContentLocationUpdate": {
                    "BucketARNUpdate": "arn:aws:s3:::b", "FileKeyUpdate": key}}},
            "EnvironmentPropertyUpdates": {"PropertyGroups": [
                {"PropertyGroupId": "io",
                 "PropertyMap": {**IO, "output": "s3://elsewhere/out/"}},
                {"PropertyGroupId": managed.RUN_OPTIONS_GROUP,
                 "PropertyMap": RUN_OPTIONS}]},
            "FlinkApplicationConfigurationUpdate": {"ParallelismConfigurationUpdate": {
                "ConfigurationTypeUpdate": "CUSTOM", "ParallelismUpdate": 1,
                "AutoScalingEnabledUpdate": False}}},
        "RunConfigurationUpdate": {
            "ApplicationRestoreConfiguration": {
                "ApplicationRestoreType": "RESTORE_FROM_LATEST_SNAPSHOT"},
            "FlinkRunConfiguration": {"AllowNonRestoredState": False}}})
    with kda_stub, s3_stub:
        deploy.update(kda, s3, deploy.parser().parse_args([
            "update", "--name", "f", "--bucket", "b", "--zip", app_zip,
            "--io", "output=s3://elsewhere/out/"]))
        kda_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()


@pytest.mark.unit
def test_update_without_properties_keeps_the_application_s_own(app_zip):
    """Without --properties the job's groups stay as the application has them (the
    repository's defaults would reset parallelism, restarts, streams); a key naming the zip
    needs no versioned bucket; an upgrade dropping an output's state says so."""
    kda, s3, kda_stub, s3_stub = stubbed_clients()
    own = [{"PropertyGroupId": "job", "PropertyMap": {"parallelism": "4", "max_restarts": "3"}},
           {"PropertyGroupId": "io", "PropertyMap": IO},
           {"PropertyGroupId": managed.RUN_OPTIONS_GROUP, "PropertyMap": RUN_OPTIONS}]
    kda_stub.add_response("describe_application", described(5, own), {"ApplicationName": "f"})
    key = deploy.code_key(app_zip)
    with open(app_zip, "rb") as fh:   # uploaded before: not again
        digest = hashlib.sha256(fh.read()).hexdigest()
    s3_stub.add_response("head_object", {"VersionId": "v1", "Metadata": {"sha256": digest}},
                         {"Bucket": "b", "Key": key})
    kda_stub.add_response("update_application", {"ApplicationDetail": described(6)[
        "ApplicationDetail"]}, {
        "ApplicationName": "f", "CurrentApplicationVersionId": 5,
        "ApplicationConfigurationUpdate": {
            "ApplicationCodeConfigurationUpdate": {
                "CodeContentTypeUpdate": "ZIPFILE",
                "CodeContentUpdate": {"S3ContentLocationUpdate": {
                    "BucketARNUpdate": "arn:aws:s3:::b", "FileKeyUpdate": key,
                    "ObjectVersionUpdate": "v1"}}},
            "EnvironmentPropertyUpdates": {"PropertyGroups": own},
            "FlinkApplicationConfigurationUpdate": {"ParallelismConfigurationUpdate": {
                "ConfigurationTypeUpdate": "CUSTOM", "ParallelismUpdate": 4,
                "AutoScalingEnabledUpdate": False}}},
        "RunConfigurationUpdate": {
            "ApplicationRestoreConfiguration": {
                "ApplicationRestoreType": "RESTORE_FROM_LATEST_SNAPSHOT"},
            "FlinkRunConfiguration": {"AllowNonRestoredState": True}}})
    with kda_stub, s3_stub:
        deploy.update(kda, s3, deploy.parser().parse_args([
            "update", "--name", "f", "--bucket", "b", "--zip", app_zip,
            "--allow-non-restored-state"]))
        kda_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()


@pytest.mark.unit
def test_rollback_start_stop_and_snapshot_requests():
    kda, _, stub, _ = stubbed_clients()
    stub.add_response("describe_application", described(8), {"ApplicationName": "flowdredge"})
    stub.add_response("rollback_application", {"ApplicationDetail": described(9)[
        "ApplicationDetail"]}, {"ApplicationName": "flowdredge", "CurrentApplicationVersionId": 8})
    stub.add_response("start_application", {}, {
        "ApplicationName": "flowdredge", "RunConfiguration": {
            "ApplicationRestoreConfiguration": {
                "ApplicationRestoreType": "RESTORE_FROM_CUSTOM_SNAPSHOT",
                "SnapshotName": "before-2.0"},
            "FlinkRunConfiguration": {"AllowNonRestoredState": True}}})
    stub.add_response("stop_application", {}, {"ApplicationName": "flowdredge", "Force": False})
    stub.add_response("create_application_snapshot", {},
                      {"ApplicationName": "flowdredge", "SnapshotName": "before-2.0"})
    with stub:
        deploy.rollback(kda, Args(name="flowdredge"))
        deploy.start(kda, Args(name="flowdredge", restore="before-2.0",
                               allow_non_restored_state=True))
        deploy.stop(kda, Args(name="flowdredge", force=False))
        deploy.snapshot(kda, Args(name="flowdredge", snapshot="before-2.0"))
        stub.assert_no_pending_responses()


@pytest.mark.unit
def test_update_without_io_needs_an_application_that_has_it(app_zip):
    kda, s3, stub, _ = stubbed_clients()
    stub.add_response("describe_application", described(3, groups=()), {"ApplicationName": "x"})
    with stub, pytest.raises(deploy.DeployError, match="pass --io"):
        deploy.update(kda, s3, Args(name="x", io=None, zip=app_zip, bucket="b", key="k",
                                    properties=deploy.DEFAULT_PROPERTIES, restore="latest",
                                    allow_non_restored_state=False))


@pytest.mark.unit
def test_the_common_options_go_before_or_after_the_command():
    parse = deploy.parser().parse_args
    for argv in (["--region", "eu-west-1", "status", "--name", "x"],
                 ["status", "--name", "x", "--region", "eu-west-1"]):
        args = parse(argv + ["--endpoint-url", "http://127.0.0.1:5000"])
        assert (args.region, args.endpoint_url) == ("eu-west-1", "http://127.0.0.1:5000")
    assert parse(["status", "--name", "x"]).region is None


@pytest.mark.unit
def test_an_io_group_in_properties_is_deployed_by_create_and_update(app_zip, tmp_path, capsys):
    """The io group of a --properties file (as main.py --properties takes it) was dropped: by
    create for --io, by update for the application's own (a review). It is deployed, --io's
    keys over it; update's replaces the application's, as the file's other groups do."""
    file_io = {**IO, "output": "s3://file-out/flowdredge/"}
    properties = tmp_path / "p.json"
    properties.write_text(json.dumps([
        {"PropertyGroupId": "job", "PropertyMap": {"parallelism": "2"}},
        {"PropertyGroupId": "io", "PropertyMap": file_io}]))
    key = deploy.code_key(app_zip)

    def expected_groups(io_values):
        return [{"PropertyGroupId": "job", "PropertyMap": {"parallelism": "2"}},
                {"PropertyGroupId": "io", "PropertyMap": io_values},
                {"PropertyGroupId": managed.RUN_OPTIONS_GROUP,
                 "PropertyMap": RUN_OPTIONS}]

    kda, s3, kda_stub, s3_stub = stubbed_clients()
    kda_stub.add_response("list_applications", {"ApplicationSummaries": []}, {})
    s3_stub.add_client_error("head_object", "404", http_status_code=404,
                             expected_params={"Bucket": "b", "Key": key})
    s3_stub.add_response("put_object", {}, {"Bucket": "b", "Key": key, "Body": ANY,
                                            "Metadata": ANY})
    kda_stub.add_response("create_application", {"ApplicationDetail": described(1)[
        "ApplicationDetail"]}, deploy.create_request("f", ROLE, "b", key, None,
                                                     expected_groups(file_io)))
    with kda_stub, s3_stub:   # no --io: the file's
        deploy.create(kda, s3, deploy.parser().parse_args([
            "create", "--name", "f", "--role", ROLE, "--bucket", "b", "--zip", app_zip,
            "--properties", str(properties)]))
        kda_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()

    kda, s3, kda_stub, s3_stub = stubbed_clients()
    kda_stub.add_response("describe_application", described(4), {"ApplicationName": "f"})
    with open(app_zip, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    s3_stub.add_response("head_object", {"Metadata": {"sha256": digest}},
                         {"Bucket": "b", "Key": key})
    kda_stub.add_response("update_application", {"ApplicationDetail": described(5)[
        "ApplicationDetail"]}, deploy.update_request(
        "f", 4, "b", key, None, expected_groups({**file_io, "follow_seconds": "30"})))
    with kda_stub, s3_stub:   # the application's io is IO, its output elsewhere
        deploy.update(kda, s3, deploy.parser().parse_args([
            "update", "--name", "f", "--bucket", "b", "--zip", app_zip,
            "--properties", str(properties), "--io", "follow_seconds=30"]))
        kda_stub.assert_no_pending_responses()
        s3_stub.assert_no_pending_responses()

    # No io group anywhere: one line naming --io, before anything is sent.
    properties.write_text(json.dumps([{"PropertyGroupId": "job", "PropertyMap": {}}]))
    assert deploy.main(["create", "--region", "us-east-1", "--name", "f", "--role", ROLE,
                        "--bucket", "b", "--zip", app_zip, "--properties",
                        str(properties)]) == 2
    assert capsys.readouterr().err == ("flowdredge: error: no 'io' property group: pass --io, "
                                       "or give one in --properties\n")


@pytest.mark.unit
def test_status_lists_every_snapshot_newest_first():
    """status asked for one page of 10 and printed them in the service's order (a review)."""
    kda, _, stub, _ = stubbed_clients()
    stub.add_response("describe_application", described(9), {"ApplicationName": "f"})

    def snapshot(day):
        return {"SnapshotName": f"s{day}", "SnapshotStatus": "READY", "ApplicationVersionId": 9,
                "SnapshotCreationTimestamp": datetime.datetime(2026, 11, day,
                                                               tzinfo=datetime.timezone.utc)}
    stub.add_response("list_application_snapshots",
                      {"SnapshotSummaries": [snapshot(d) for d in range(1, 13)],
                       "NextToken": "more"},
                      {"ApplicationName": "f", "Limit": 50})
    stub.add_response("list_application_snapshots",
                      {"SnapshotSummaries": [snapshot(14), snapshot(13)]},
                      {"ApplicationName": "f", "Limit": 50,
                       "NextToken": "more"})
    with stub:
        result = deploy.status(kda, Args(name="f"))
        stub.assert_no_pending_responses()
    assert [s["SnapshotName"] for s in result["Snapshots"]] == [f"s{d}" for d in range(14, 0, -1)]
    assert result["Snapshots"][0] == {
        "SnapshotName": "s14", "SnapshotStatus": "READY", "ApplicationVersionId": 9,
        "SnapshotCreationTimestamp": datetime.datetime(2026, 11, 14,
                                                       tzinfo=datetime.timezone.utc)}


@pytest.mark.unit
def test_the_wrapper_runs_the_full_setup_for_package_only_and_not_for_help(tmp_path):
    """`scripts/managed-flink package --help` ran the full setup (minutes) before printing
    (a review), and a package after --region ran the virtualenv's alone."""
    python = "python -m flowdredge.operate.deploy"
    for args, setup in ((["package", "--help"], "setup --python"),
                        (["--region", "eu-west-1", "package", "-h"], "setup --python"),
                        (["status", "--name", "x", "--help"], "setup --python"),
                        (["package"], "setup"),
                        (["--region", "eu-west-1", "package"], "setup"),
                        (["status", "--name", "package"], "setup --python")):
        assert wrapper_calls(tmp_path, "managed-flink", args) == [setup,
                                                                  f"{python} {' '.join(args)}"]


def zip_with_jar(path, entries):
    """An application zip as deploy reads it: BUILD-INFO.json, and a jar of `entries` (None:
    no jar, as package builds it when scripts/setup has built none)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("BUILD-INFO.json", json.dumps(
            {"jarfile": package.JAR_NAME if entries is not None else None}))
        if entries is not None:
            zf.write(write_jar(f"{path}.jar", entries), package.JAR_NAME)
    return str(path)


@pytest.mark.unit
def test_a_zip_without_the_classes_its_job_uses_is_refused_before_the_upload(tmp_path, capsys):
    """create and update deployed a zip without the connector jar (package only warns), and
    the job failed in the service, late (a review). Every job uses the adapters (a file job's
    sources too), the streaming one the Kinesis connector."""
    none = zip_with_jar(tmp_path / "none.zip", None)
    adapters = zip_with_jar(tmp_path / "adapters.zip", ADAPTER_CLASS)
    kinesis = zip_with_jar(tmp_path / "kinesis.zip", KINESIS_CLASS)
    # One line, before the service is asked anything (no credentials here) or the zip sent.
    assert deploy.main(["create", "--region", "us-east-1", "--name", "f", "--role", ROLE,
                        "--bucket", "b", "--zip", none,
                        "--io", ",".join(f"{k}={v}" for k, v in IO.items())]) == 2
    assert capsys.readouterr().err == (
        f"flowdredge: error: {none} has no connector jar (lib/flowdredge-connectors.jar), whose "
        f"adapters every job uses: run scripts/setup (it builds the jar), then "
        f"scripts/managed-flink package --require-connector\n")
    # update: the application's own kinesis group makes it the streaming job.
    kda, s3, kda_stub, s3_stub = stubbed_clients()
    kda_stub.add_response("describe_application", described(2, [
        {"PropertyGroupId": "kinesis", "PropertyMap": {"flow_streams": "vpc-flow-logs"}},
        {"PropertyGroupId": "io", "PropertyMap": {"output": "s3://out-bucket/flowdredge/"}}]),
        {"ApplicationName": "f"})
    with kda_stub, s3_stub, pytest.raises(deploy.DeployError, match="no Kinesis connector"):
        deploy.update(kda, s3, deploy.parser().parse_args([
            "update", "--name", "f", "--bucket", "b", "--zip", adapters]))
    # What each job uses, missing.
    files_job = deploy.property_groups([], IO, package.JAR_NAME)
    streaming = deploy.property_groups(
        [{"PropertyGroupId": "kinesis", "PropertyMap": {"flow_streams": "vpc-flow-logs"}}],
        {"output": "s3://out-bucket/flowdredge/"}, package.JAR_NAME)
    deploy.check_jar(adapters, files_job)   # a file job needs no Kinesis connector
    for zip_path, groups, message in (
            (none, files_job, r"has no connector jar \(lib/flowdredge-connectors.jar\), whose "
                              "adapters every job uses"),
            (kinesis, files_job, r"has no adapters \(io/flowdredge/\), which every job uses"),
            (adapters, streaming, "kinesis.flow_streams is set and lib/flowdredge-connectors.jar "
                                  "in .* has no Kinesis connector")):
        with pytest.raises(deploy.DeployError, match=message):
            deploy.check_jar(zip_path, groups)

