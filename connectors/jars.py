"""Where the jars the job ships are: the Kinesis connector and the project's adapters
(connectors/jvm), both put in .jars/ by scripts/setup; FLOWDREDGE_JARS overrides the folder.
Pure Python: the operations tools read it without PyFlink."""
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JARS_DIR = os.environ.get("FLOWDREDGE_JARS", os.path.join(ROOT, ".jars"))
ADAPTERS = "flowdredge-adapters.jar"
KINESIS_CONNECTOR = "flink-sql-connector-aws-kinesis-streams"


def _missing(what: str) -> FileNotFoundError:
    return FileNotFoundError(f"{what} missing in {JARS_DIR}: run scripts/setup (or set "
                             f"FLOWDREDGE_JARS)")


def adapter_jars() -> list:
    """file:// URL of the adapters jar (file formats, Kinesis records), for pipeline.jars."""
    path = os.path.join(JARS_DIR, ADAPTERS)
    if not os.path.exists(path):
        raise _missing(f"the project's adapters ({ADAPTERS}) are")
    return ["file://" + os.path.abspath(path)]


def connector_jars() -> list:
    """file:// URLs of every jar there (the Kinesis connector and the adapters)."""
    adapter_jars()
    jars = sorted(glob.glob(os.path.join(JARS_DIR, "*.jar")))
    if not any(os.path.basename(j).startswith(KINESIS_CONNECTOR + "-") for j in jars):
        raise _missing(f"the Kinesis connector ({KINESIS_CONNECTOR}) is")
    return ["file://" + os.path.abspath(j) for j in jars]
