"""Where the jars the job ships are: the project's adapters (connectors/jvm) and the same merged
with the Kinesis connector (the maven-shade-plugin), both built into .jars/ by scripts/setup;
FLOWDREDGE_JARS overrides the folder. Pure Python: the operations tools read it without PyFlink."""
import os
import pathlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JARS_DIR = os.environ.get("FLOWDREDGE_JARS", os.path.join(ROOT, ".jars"))
ADAPTERS = "flowdredge-adapters.jar"
CONNECTORS = "flowdredge-connectors.jar"
# Java's class-data archive of the classes a local job loads (scripts/setup records it).
CLASS_ARCHIVE = "flink-classes.jsa"


def _url(name: str, what: str) -> list:
    path = os.path.join(JARS_DIR, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} ({name}) is missing in {JARS_DIR}: run scripts/setup "
                                f"(or set FLOWDREDGE_JARS)")
    return [jar_url(path)]


def jar_url(path: str) -> str:
    """The file:// URL of a jar for pipeline.jars, which Java reads as a URL: a space or a % in
    its path percent-encoded (written as they are, a space failed the job with
    URISyntaxException, and %41 named a folder A)."""
    return pathlib.Path(os.path.abspath(path)).as_uri()


def class_archive():
    """Path of the class-data archive for a local JVM, or None when scripts/setup has not
    recorded one."""
    path = os.path.join(JARS_DIR, CLASS_ARCHIVE)
    return path if os.path.exists(path) else None


def adapter_jars() -> list:
    """file:// URL of the adapters jar (file formats, Kinesis records), for pipeline.jars."""
    return _url(ADAPTERS, "the project's adapters jar")


def connector_jars() -> list:
    """file:// URL of the merged jar (the Kinesis connector and the adapters), for
    pipeline.jars; the Managed Flink zip's jarfile is the same jar."""
    return _url(CONNECTORS, "the jar of the Kinesis connector and the adapters")


def plugins_dir():
    """The plugins folder of a local mini-cluster: PyFlink's own plugins/ (it sets
    FLINK_PLUGINS_DIR to it, whatever it was), unless FLINK_HOME names a Flink of its own."""
    if "FLINK_HOME" in os.environ:
        return os.environ.get("FLINK_PLUGINS_DIR") or os.path.join(os.environ["FLINK_HOME"],
                                                                   "plugins")
    import importlib.util
    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "plugins")


def s3_file_system() -> bool:
    """Whether a local mini-cluster has Flink's S3 file system (a `flink-s3-fs-*` jar in a
    folder of its own under plugins_dir()): apache-flink ships none, so locally `s3://`
    outputs, checkpoints and snapshots need one added."""
    import glob
    plugins = plugins_dir()
    return bool(plugins and glob.glob(os.path.join(plugins, "*", "flink-s3-fs-*.jar")))
