"""The application zip for Amazon Managed Service for Apache Flink (pure Python, no pyflink).

    scripts/managed-flink package [--output dist/flowdredge-managed-flink.zip]

Layout of the zip (the service unpacks it and runs main.py; docs/managed-flink.md):

    main.py                         the `python` run option (job/flink/zip_main.py)
    python/flowdredge/job, ...      the job's modules: those the entry point imports, followed
                                    through every import, not the whole repository (in the
                                    package's installed layout: flowdredge/__init__.py)
    vendor/                         third-party packages the job imports that the service's
                                    Python does not have (it has apache-flink and everything
                                    apache-flink requires)
    lib/flowdredge-connectors.jar   the `jarfile` run option: the Kinesis connector and the
                                    project's adapters in one jar, as scripts/setup builds it
                                    (the maven-shade-plugin in connectors/jvm/pom.xml)
    BUILD-INFO.json                 what went in, and what is missing

The service runs Python 3.12 (Flink 2.2) on x86_64 Linux, so requirement markers are evaluated
for 3.12 and vendor/ is what pip installs from the wheels for that platform and Python
(`pip install --target --platform manylinux2014_x86_64 --python-version 3.12 --implementation cp
--only-binary=:all: --no-deps`), at the versions installed here: a package with compiled
extensions carries the service's build of them, not this machine's.
"""
import argparse
import ast
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field

from packaging.markers import default_environment
from packaging.requirements import Requirement

from flowdredge.connectors.jars import CONNECTORS, JARS_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_PACKAGE = "flowdredge"
ENTRY_MODULE = "flowdredge.job.flink.managed"
ZIP_MAIN = os.path.join("job", "flink", "zip_main.py")
JAR_NAME = "lib/flowdredge-connectors.jar"
# What the service's Python has installed: PyFlink and its requirements.
SERVICE_DISTRIBUTION = "apache-flink"
SERVICE_PYTHON = "3.12"
SERVICE_PLATFORM = "manylinux2014_x86_64"
SERVICE_IMPLEMENTATION = "cp"
DEFAULT_OUTPUT = os.path.join(ROOT, "dist", "flowdredge-managed-flink.zip")
# Fixed entry times: the same inputs give the same zip, byte for byte.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
DEFAULT_JAR = os.path.join(JARS_DIR, CONNECTORS)
# What the merged jar must hold: the project's adapters, and the Kinesis connector.
ADAPTER_CLASSES = "io/flowdredge/"
KINESIS_CLASSES = "org/apache/flink/connector/kinesis/"


class PackageError(RuntimeError):
    pass


@dataclass
class BuildResult:
    path: str
    modules: list
    vendored: list
    wheels: list        # the wheel files pip installed into vendor/
    extensions: list    # compiled extension files in vendor/ (built for the service's Python)
    jar: str            # the jar shipped as the jarfile (its file name), or None
    warnings: list = field(default_factory=list)

    def info(self) -> dict:
        return {"modules": self.modules, "vendored": self.vendored,
                "vendor_target": {"python": SERVICE_PYTHON, "platform": SERVICE_PLATFORM,
                                  "implementation": SERVICE_IMPLEMENTATION},
                "wheels": self.wheels, "extensions": self.extensions, "jar_source": self.jar,
                "jarfile": JAR_NAME if self.jar else None, "warnings": self.warnings}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _module_file(root: str, module: str):
    """The file of a flowdredge module in the checkout at `root`: in flowdredge/, or for its
    layers in the folders beside it (flowdredge/__init__.py)."""
    parts = module.split(".")
    bases = [os.path.join(root, *parts)] + ([os.path.join(root, *parts[1:])] if parts[1:] else [])
    for base in bases:
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate
    return None


def _zip_path(module: str, path: str) -> str:
    """Where `module` (at `path`) goes in the zip: the package's installed layout."""
    if path.endswith("__init__.py"):
        return "/".join(["python", *module.split("."), "__init__.py"])
    return "/".join(["python", *module.split(".")]) + ".py"


def code_closure(root: str = ROOT, entry: str = ENTRY_MODULE):
    """(project modules, third-party top-level names) reachable from `entry` through every
    import statement, including those inside functions (imported only when needed)."""
    modules, third_party, todo = set(), set(), [entry]
    while todo:
        module = todo.pop()
        if module in modules:
            continue
        path = _module_file(root, module)
        if path is None:
            raise PackageError(f"{module} is imported but not found under {root}")
        modules.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))   # parent packages
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                # `from flowdredge.job import config` names a module; `from flowdredge.job.x
                # import f` a function.
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names
                                         if _module_file(root, f"{node.module}.{alias.name}")]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == PROJECT_PACKAGE:
                    todo.append(name)
                elif top not in sys.stdlib_module_names:
                    third_party.add(top)
    return sorted(modules), sorted(third_party)


def _requirements(dist: str, env: dict):
    for line in md.requires(dist) or ():
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
            yield normalize(req.name)


def requirement_closure(dists, env: dict, stop=frozenset()) -> set:
    """The distributions `dists` need, themselves included, not descending into `stop`."""
    seen, todo = set(), [normalize(d) for d in dists]
    while todo:
        dist = todo.pop()
        if dist in seen or dist in stop:
            continue
        seen.add(dist)
        try:
            todo.extend(_requirements(dist, env))
        except md.PackageNotFoundError:
            raise PackageError(f"{dist} is required but not installed in {sys.prefix}; "
                               f"run scripts/setup") from None
    return seen


def service_environment() -> dict:
    env = default_environment()
    env.update(python_version=SERVICE_PYTHON, python_full_version=SERVICE_PYTHON + ".0",
               sys_platform="linux", platform_system="Linux", os_name="posix")
    return env


def vendored_distributions(third_party) -> list:
    """The installed distributions to vendor (pip installs their wheels for the service into
    vendor/): those providing `third_party` modules and their requirements, minus what the
    service's Python already has."""
    env = service_environment()
    provided = requirement_closure([SERVICE_DISTRIBUTION], env)
    owners = md.packages_distributions()
    needed = set()
    for top in third_party:
        if top not in owners:
            raise PackageError(f"the job imports {top!r}, which no installed distribution "
                               f"provides; run scripts/setup")
        needed.update(normalize(d) for d in owners[top])
    return sorted(requirement_closure(needed - provided, env, stop=frozenset(provided)))


def _add(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, _ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def _add_file(zf: zipfile.ZipFile, arcname: str, path: str) -> None:
    with open(path, "rb") as fh:
        _add(zf, arcname, fh.read())


def pins(dists) -> list:
    """`name==version` for each distribution, at the version installed here (the one the tests
    ran with)."""
    try:
        return [f"{d}=={md.version(d)}" for d in dists]
    except md.PackageNotFoundError as err:
        raise PackageError(f"{err.name} is required but not installed in {sys.prefix}; "
                           f"run scripts/setup") from None


def pip_command(target: str, requirements, report: str = None) -> list:
    """pip installing exactly `requirements` from wheels built for the service's platform and
    Python into `target` (no dependencies: the list is already the closure; no bytecode)."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-compile", "--no-deps", "--only-binary=:all:",
               "--platform", SERVICE_PLATFORM, "--python-version", SERVICE_PYTHON,
               "--implementation", SERVICE_IMPLEMENTATION, "--target", target]
    if report:
        command += ["--report", report]
    return command + list(requirements)


_NO_WHEEL = re.compile(r"No matching distribution found for (\S+)")


def install_wheels(requirements, target: str) -> list:
    """Installs `requirements` (pins) into `target` with pip; the wheel file names used."""
    with tempfile.TemporaryDirectory(prefix="flowdredge-pip-") as work:
        report = os.path.join(work, "report.json")
        command = pip_command(target, requirements, report)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise PackageError(f"pip could not vendor the job's packages: "
                               f"{_pip_failure(result)}; command: {' '.join(command)}")
        with open(report, encoding="utf-8") as fh:
            installed = json.load(fh).get("install", [])
    return sorted(item["download_info"]["url"].rsplit("/", 1)[-1] for item in installed)


def _pip_failure(result) -> str:
    """One line saying why pip failed."""
    err = result.stderr
    if "Retrying" in err or "NewConnectionError" in err or "ProxyError" in err:
        return "the package index could not be reached"
    missing = _NO_WHEEL.search(err)
    if missing:
        return (f"no wheel of {missing.group(1)} for Python {SERVICE_PYTHON} "
                f"({SERVICE_IMPLEMENTATION}) on {SERVICE_PLATFORM}")
    errors = [line.strip() for line in err.splitlines() if line.startswith("ERROR")]
    return errors[-1] if errors else f"exit status {result.returncode}"


def _vendor_tree(zf: zipfile.ZipFile, target: str, extensions: list) -> None:
    """Adds pip's --target tree under vendor/, sorted; not the console scripts pip puts in
    bin/."""
    files = []
    for folder, dirs, names in os.walk(target):
        dirs[:] = [d for d in dirs if d != "__pycache__"
                   and not (folder == target and d == "bin")]
        files.extend(os.path.relpath(os.path.join(folder, n), target).replace(os.sep, "/")
                     for n in names if not n.endswith(".pyc"))
    for rel in sorted(files):
        if rel.endswith((".so", ".pyd")):
            extensions.append("vendor/" + rel)
        _add_file(zf, "vendor/" + rel, os.path.join(target, rel))


def connector_jar(path: str):
    """(`path` if it is there, else None; warnings): the jar scripts/setup merged from the
    Kinesis connector and the project's adapters, said when it or either part is missing."""
    if not os.path.isfile(path):
        return None, [f"{path} is missing: run scripts/setup (it builds the jar of the Kinesis "
                      f"connector and the project's adapters). Without it no job runs (every "
                      f"one uses the adapters): create and update refuse the zip"]
    with zipfile.ZipFile(path) as jar:
        names = jar.namelist()
    warnings = []
    if not any(n.startswith(ADAPTER_CLASSES) for n in names):
        warnings.append(f"{path} has no adapters ({ADAPTER_CLASSES}): without them no job runs "
                        f"(every one uses them): create and update refuse the zip")
    if not any(n.startswith(KINESIS_CLASSES) for n in names):
        warnings.append(f"{path} has no Kinesis connector ({KINESIS_CLASSES}): the zip runs the "
                        f"file sources and sinks only (create and update refuse it for "
                        f"kinesis.flow_streams); see connectors/jvm/pom.xml")
    return path, warnings


def build(output: str = DEFAULT_OUTPUT, root: str = ROOT, jar: str = DEFAULT_JAR) -> BuildResult:
    """The zip at `output`: the job's code from `root`, `jar` as the jarfile."""
    modules, third_party = code_closure(root)
    vendored = vendored_distributions(third_party)
    jar, warnings = connector_jar(jar)
    result = BuildResult(output, modules, vendored, [], [],
                         os.path.basename(jar) if jar else None, warnings)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tmp = output + ".partial"
    with tempfile.TemporaryDirectory(prefix="flowdredge-vendor-") as work:
        target = os.path.join(work, "vendor")
        if vendored:
            result.wheels = install_wheels(pins(vendored), target)
        with zipfile.ZipFile(tmp, "w") as zf:
            _add_file(zf, "main.py", os.path.join(root, ZIP_MAIN))
            for module in modules:
                path = _module_file(root, module)
                _add_file(zf, _zip_path(module, path), path)
            if vendored:
                _vendor_tree(zf, target, result.extensions)
            if jar:
                _add_file(zf, JAR_NAME, jar)
            _add(zf, "BUILD-INFO.json", json.dumps(result.info(), indent=2).encode("utf-8"))
    os.replace(tmp, output)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/managed-flink package",
                                description="Builds the application zip for Amazon Managed "
                                            "Service for Apache Flink.")
    p.add_argument("--output", default=DEFAULT_OUTPUT)
    p.add_argument("--jar", default=DEFAULT_JAR,
                   help="the jar of the Kinesis connector and the adapters (default: the one "
                        "scripts/setup builds, %(default)s)")
    p.add_argument("--require-connector", action="store_true",
                   help="fail when that jar, the Kinesis connector or the adapters are missing")
    args = p.parse_args(argv)
    if args.require_connector:
        # Before the zip is written: create and update would deploy it (dist/ by default).
        _jar, missing = connector_jar(args.jar)
        for warning in missing:
            print(f"flowdredge: error: {warning}", file=sys.stderr)
        if missing:
            if os.path.exists(args.output):   # an earlier build there would be deployed
                os.remove(args.output)
                print(f"flowdredge: error: removed the earlier {args.output}", file=sys.stderr)
            return 1
    try:
        result = build(args.output, jar=args.jar)
    except PackageError as err:
        print(f"flowdredge: error: {err}", file=sys.stderr)
        return 2
    size = os.path.getsize(result.path)
    print(f"{result.path} ({size / 1e6:.1f} MB): {len(result.modules)} job modules, "
          f"vendored {', '.join(result.vendored) or 'nothing'} (wheels for Python "
          f"{SERVICE_PYTHON} on {SERVICE_PLATFORM}), "
          f"{JAR_NAME + ' from ' + result.jar if result.jar else 'no jar'}")
    for warning in result.warnings:
        print(f"flowdredge: warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
