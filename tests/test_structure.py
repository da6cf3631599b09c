"""Each top-level folder is one layer, and a module imports only from its own layer and the
layers below it (LAYERS, bottom to top), with no cycle between modules; PyFlink's private API is
reached from one module; the pure-Python core must not import pyflink (tested without a JVM);
side outputs reach their sinks without a Python step. Operators' names and uids:
tests/test_savepoint.py and tests/test_kinesis_savepoint.py."""
import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The PyFlink adapters (with what is under them): every other module of the layers is the
# pure-Python core, tested without a JVM, and must not import pyflink.
FLINK_ADAPTERS = ("job.flink", "schemas.flink", "connectors.files", "connectors.io",
                  "connectors.streams", "connectors.kinesis.flink")

# Modules by their folder in the checkout: flowdredge.job.parse is job.parse here (the layers
# install inside the flowdredge package: flowdredge/__init__.py).
LAYER_FOLDERS = ("schemas", "job", "connectors", "explore", "synthetic", "operate")

# The layers, bottom to top, one per top-level folder: a module may import modules of its own
# layer and of those below, never above (an import inside a function counts too). Only bench/
# and tests/ share a layer: they use everything and nothing uses them.
LAYERS = [
    ("schemas",),       # record schemas and the settings loader
    ("connectors",),    # sources and sinks, their settings, the PyFlink plumbing, s3:// URLs
    ("job",),           # the stream job: pure-Python core, job/flink/ adapters, entry points
    ("explore",),       # query, report, summary: outputs only
    ("synthetic",),     # the synthetic estate, its writers and the demos
    ("operate",),       # cluster, application zip, deploy
    ("flowdredge",),    # the command
    ("bench", "tests"),
]
PACKAGES = ("schemas", "job", "connectors", "explore", "synthetic", "operate", "flowdredge",
            "bench")
# The one module that may use PyFlink's private API (the gateway, `_j_` Java objects).
PRIVATE_API_MODULE = "connectors.streams"


def _layer(module: str):
    """The index in LAYERS of the module's folder; None outside the project."""
    folder = module.split(".")[0]
    return next((index for index, folders in enumerate(LAYERS) if folder in folders), None)


def _sources(folders):
    for folder in folders:
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, folder)):
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    with open(path, encoding="utf-8") as fh:
                        yield module.removesuffix(".__init__"), ast.parse(fh.read(), path)


def _folder_name(name: str) -> str:
    """`name` as _sources names modules: flowdredge.job.parse -> job.parse."""
    parts = name.split(".")
    return ".".join(parts[1:]) if parts[0] == "flowdredge" and parts[1:2] and \
        parts[1] in LAYER_FOLDERS else name


def _is_module(name: str) -> bool:
    base = os.path.join(ROOT, *name.split("."))
    return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__init__.py"))


def _imports(tree):
    """Every module named by an import statement, those inside functions too (`from a import
    b` names a.b when b is a module)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (_folder_name(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                name = _folder_name(f"{node.module}.{alias.name}")
                yield name if _is_module(name) else _folder_name(node.module)


@pytest.mark.unit
def test_imports_only_go_down_and_make_no_cycle():
    graph, upward = {}, []
    for module, tree in _sources(PACKAGES):
        here = _layer(module)
        assert here is not None, f"{module} is in no layer (tests/test_structure.py, LAYERS)"
        for name in _imports(tree):
            there = _layer(name)
            if there is None:
                continue   # standard library or third party
            graph.setdefault(module, set()).add(name)
            if there > here:
                upward.append(f"{module} imports {name}")
    assert not upward, upward
    # Between the project's modules, including imports inside functions.
    state = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", " -> ".join(path + [module])
        state[module] = "open"
        for name in graph.get(module, ()):
            visit(name, path + [module])
        state[module] = "done"

    for module in list(graph):
        visit(module, [])


@pytest.mark.unit
def test_private_flink_api_is_reached_from_one_module():
    """PyFlink's `_j_` attributes and its gateway change between releases unannounced."""
    users = set()
    for module, tree in _sources(PACKAGES + ("tests",)):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_j_"):
                users.add(module)
        if any(name and name.startswith("pyflink.java_gateway") for name in _imports(tree)):
            users.add(module)
    assert users == {PRIVATE_API_MODULE}


@pytest.mark.unit
def test_core_does_not_import_pyflink():
    core = [m for m, _ in _sources(LAYER_FOLDERS)
            if not any(m == a or m.startswith(a + ".") for a in FLINK_ADAPTERS)]
    assert "connectors.publisher.derive" in core and "job.flink.run" not in core
    code = ("import sys\n" + "".join(f"import flowdredge.{m}\n" for m in core)
            + "bad = [m for m in sys.modules if m.startswith('pyflink')]\n"
            + "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.minicluster
def test_side_outputs_go_to_their_sinks_without_a_python_step(tmp_path):
    """PyFlink's get_side_output would put an identity map in Python behind every side output
    (connectors.streams.side_output), the security views' too."""
    from flowdredge.job.config import Config
    from flowdredge.connectors.streams import transformations
    env = _empty_files_job(tmp_path, Config())
    python_steps, side_outputs_read = [], []
    for t in transformations(env):
        python = _is_python(t)
        if python:
            python_steps.append(t.getName())
        inputs = list(t.getInputs())
        while inputs:
            i = inputs.pop()
            kind = i.getClass().getSimpleName()
            if kind == "UnionTransformation":
                inputs.extend(i.getInputs())
            elif kind == "SideOutputTransformation":
                side_outputs_read.append((t.getName(), python))
    assert {"parse flow records", "parse metadata events", "attribute flows"} <= set(python_steps)
    assert not [name for name, python in side_outputs_read if python]
    # Dead letters (2), counts (4: the security events' too), data quality, late, enriched:
    # straight to their sinks.
    core = [name for name, _ in side_outputs_read if name.endswith(" files")
            and name.split()[0] in ("counts", "dead_letter", "data_quality", "late", "enriched")]
    assert sorted(core) == sorted(["counts files"] * 4 + ["dead_letter files"] * 2
                                  + ["data_quality files", "late files", "enriched files"])


def _empty_files_job(tmp_path, config):
    from flowdredge.job.flink.run import files_job
    (tmp_path / "f.txt").write_text("")
    (tmp_path / "m.jsonl").write_text("")
    return files_job(config, str(tmp_path / "f.txt"), str(tmp_path / "m.jsonl"),
                     str(tmp_path / "out"))


def _is_python(transformation) -> bool:
    kind = transformation.getClass().getSimpleName()
    if "Python" in kind:
        return True
    if kind != "OneInputTransformation":
        return False
    operator = transformation.getOperatorFactory().getStreamOperatorClass(
        transformation.getClass().getClassLoader())
    return "python" in operator.getName().lower()


@pytest.mark.unit
def test_the_distribution_installs_one_top_level_name_and_every_package():
    """pyproject.toml lists the packages by hand (the layers map to folders beside
    flowdredge/): a new subpackage left out would be missing from a wheel but not from a
    checkout."""
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        setuptools = tomllib.load(fh)["tool"]["setuptools"]
    listed, folders = set(setuptools["packages"]), setuptools["package-dir"]
    assert {name.split(".")[0] for name in listed} == {"flowdredge"}
    assert folders == {f"flowdredge.{layer}": layer for layer in LAYER_FOLDERS}
    found = {"flowdredge"}
    for layer in LAYER_FOLDERS:
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, layer)):
            if "__init__.py" in files:
                found.add("flowdredge." + os.path.relpath(dirpath, ROOT).replace(os.sep, "."))
    assert listed == found


@pytest.mark.unit
@pytest.mark.parametrize("seconds,interval", [
    (60, "INTERVAL '0 00:01:00' DAY TO SECOND"), (300, "INTERVAL '0 00:05:00' DAY TO SECOND"),
    (3661, "INTERVAL '0 01:01:01' DAY TO SECOND"), (90061, "INTERVAL '1 01:01:01' DAY TO SECOND"),
    (8639999, "INTERVAL '99 23:59:59' DAY TO SECOND"),
    (8640000, "INTERVAL '100 00:00:00' DAY(3) TO SECOND"),
    (2**31 - 1, "INTERVAL '24855 03:14:07' DAY(5) TO SECOND")])
def test_sql_intervals_name_the_window_length(seconds, interval):
    from flowdredge.connectors.streams import sql_interval
    assert sql_interval(seconds) == interval
