"""Stream plumbing that PyFlink's Python API does in extra Python operators, done in Java; and
the one module that reaches past PyFlink's public API (the gateway, the `_j_` Java objects
behind its wrappers): those are private and change between PyFlink releases, so an upgrade
breaks one file (tests/test_structure.py keeps it so). Connectors call jvm() and the
java_* functions below for the Java classes PyFlink does not wrap; the job's Flink adapters
(job.flink, a layer above) use the rest.


Event time: PyFlink's assign_timestamps_and_watermarks with a Python TimestampAssigner adds its own Python
operator at the default parallelism (which reorders a parallelism-1 stream such as the
changelog) and gives it no uid. Our parse operators compute the timestamp anyway, so the Java
steps that PyFlink uses internally are applied here directly, with names, uids and parallelism.
Keys: likewise, the parse operator emits each group's key. Side outputs: PyFlink's
get_side_output appends an identity map in Python, so every record would be decoded in a Python
worker and encoded back; the typed Java side output is read as it is. SQL uids: see
stable_sql_uids.
"""
import itertools
import re

from pyflink.common import Types
from pyflink.common.watermark_strategy import WatermarkStrategy
from pyflink.datastream import DataStream, KeyedStream, OutputTag
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import to_jarray


def jvm():
    """The JVM's package tree (the client's gateway, started on first use)."""
    return get_gateway().jvm


# In the adapters jar (connectors/jvm), which every jar the job ships holds.
_GATEWAY_CLASS_LOADER = "io.flowdredge.client.GatewayClassLoader"


def add_jars(env, jars) -> None:
    """env.add_jars (the jars go with the job: pipeline.jars), and the client's gateway made to
    find their classes whichever of its threads serves a call (GatewayClassLoader, in the
    adapters jar). PyFlink's add_jars gives them to one of those threads: a call py4j sent over
    another connection failed with `Could not found the Java class`. One loader holds every
    jar added in the process, a later call's added to it: py4j keeps the classes it found by
    name, and the classes of two loaders do not mix."""
    gateway = get_gateway()
    java = gateway.jvm.java
    # The gateway's loader: ours after a first call, else this thread's (before PyFlink's
    # add_jars changes it).
    loader = gateway.jvm.org.apache.flink.api.python.shaded.py4j.reflection.ReflectionUtil \
        .getClassLoader()
    env.add_jars(*jars)
    urls = [java.net.URL(url) for url in jars]
    if loader.getClass().getName() == _GATEWAY_CLASS_LOADER + "$Jars":
        known = {url.toString() for url in loader.getURLs()}
        for url in urls:
            if url.toString() not in known:
                loader.addURL(url)
        return
    url_array = to_jarray(java.net.URL, urls)
    install = java.net.URLClassLoader(url_array, loader).loadClass(_GATEWAY_CLASS_LOADER) \
        .getMethod("install", to_jarray(java.lang.Class, [
            url_array.getClass(), java.lang.Class.forName("java.lang.ClassLoader")]))
    install.invoke(None, to_jarray(java.lang.Object, [url_array, loader]))


def java_configuration(conf):
    """The Java Configuration behind a pyflink.common.Configuration."""
    return conf._j_configuration


def transformations(env):
    """The Java transformations added to `env` (a StreamExecutionEnvironment) so far."""
    return env._j_stream_execution_environment.getTransformations()


def with_event_time(pairs: DataStream, strategy: WatermarkStrategy, record_type, name: str,
                    uid: str, parallelism: int = None) -> DataStream:
    """`pairs` holds Tuple(record, epoch ms); returns the records with timestamps and
    watermarks from `strategy` (which must not carry a Python timestamp assigner)."""
    events = jvm().org.apache.flink.streaming.api.functions.python.eventtime
    stamped = pairs._j_data_stream.assignTimestampsAndWatermarks(
        strategy._j_watermark_strategy.withTimestampAssigner(events.CustomTimestampAssigner()))
    stamped.name(f"{name}: watermarks").uid(f"{uid}-watermarks")
    records = stamped.map(events.RemoveTimestampMapFunction(),
                          record_type.get_java_type_info())
    records.name(name).uid(uid)
    if parallelism is not None:
        stamped.setParallelism(parallelism)
        records.setParallelism(parallelism)
    return DataStream(records)


def with_java_timestamps(strategy: WatermarkStrategy, assigner) -> WatermarkStrategy:
    """`strategy` taking record timestamps from `assigner`, a Java TimestampAssigner (PyFlink
    takes only Python ones, which run in a Python operator)."""
    return WatermarkStrategy(strategy._j_watermark_strategy.withTimestampAssigner(assigner))


def java_operator(stream: DataStream, name: str, type_info, operator) -> DataStream:
    """`stream` through `operator`, a Java OneInputStreamOperator producing `type_info` (a Java
    TypeInformation), named `name`."""
    return DataStream(stream._j_data_stream.transform(name, type_info, operator))


def java_stream(build, *streams_and_args) -> DataStream:
    """The DataStream `build`, a Java static method, makes of the Java streams behind the
    DataStreams among `streams_and_args` (other arguments pass as they are)."""
    return DataStream(build(*(item._j_data_stream if isinstance(item, DataStream) else item
                              for item in streams_and_args)))


def keyed_by_first_field(stream: DataStream, key_type, value_type) -> KeyedStream:
    """`stream` holds Row(key, value); returns it keyed by `key`, as PyFlink's key_by does but
    without the extra Python operator (and its missing uid) that key_by adds to compute keys:
    our parse operator emits the key with the record."""
    j_keyed = stream._j_data_stream.keyBy(jvm().KeyByKeySelector(),
                                          Types.ROW([key_type]).get_java_type_info())
    return KeyedStream(j_keyed, value_type, stream)


def side_output(stream: DataStream, tag: OutputTag) -> DataStream:
    """The records `stream`'s operator emits under `tag`, typed as the tag declares, without
    the Python identity map of DataStream.get_side_output. It holds no state: no uid."""
    return DataStream(stream._j_data_stream.getSideOutput(tag.get_java_output_tag()))


def attach_insert(t_env, sink_table: str, rows, uid_prefix: str) -> None:
    """Inserts `rows` (a Table) into `sink_table` as part of the DataStream job (not a job of
    its own), with stable uids (stable_sql_uids) named after `uid_prefix`."""
    statements = t_env.create_statement_set()
    statements.add_insert(sink_table, rows)
    added = t_env._j_tenv.execEnv().getTransformations()
    first = added.size()
    # Planned on a gateway thread whose Calcite metadata provider is set (connectors/jvm's
    # Planning): on another connection the plan failed now and then.
    jvm().io.flowdredge.client.Planning.attachAsDataStream(t_env._j_tenv,
                                                            statements._j_statement_set)
    for index in range(first, added.size()):
        stable_sql_uids(added.get(index), uid_prefix)


def windowed_uid(uid: str, window_seconds: int) -> str:
    """The uid of an operator whose state is per window of `window_seconds`: a resume with
    another job.window_seconds then finds no operator for the old windows' state and is
    refused (or, with --allow-non-restored-state, drops it) instead of mixing window sizes
    in one output. The default minute keeps the uid every earlier savepoint holds."""
    return uid if window_seconds == 60 else f"{uid}-{window_seconds}s"


def sql_interval(seconds: int) -> str:
    """A Flink SQL interval of `seconds`: `INTERVAL '300' SECOND` exceeds SECOND's default
    precision (2 digits), and a wider one is refused; DAY TO SECOND takes up to 99 days, the
    DAY field's default precision, and DAY(n) TO SECOND n digits of days (up to 6, where a
    job.window_seconds of 2**31 - 1 takes 5)."""
    days, rest = divmod(seconds, 86400)
    day = "DAY" if days < 100 else f"DAY({len(str(days))})"
    return (f"INTERVAL '{days} {rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}' "
            f"{day} TO SECOND")


def sql_string(text: str) -> str:
    """`text` as a Flink SQL string literal, its quotes doubled: an output folder named it's
    ended the literal, and the job's SQL failed to parse."""
    return "'" + text.replace("'", "''") + "'"


_PLANNER_UID = re.compile(r"\d+_(.+)")


def stable_sql_uids(transformation, prefix: str) -> None:
    """Renames the planner's uids of `transformation` (a Java Transformation) and the SQL
    operators upstream of it `<prefix>-<k>_<operator>`, k counting from here upstream.

    With table.exec.uid.generation ALWAYS the planner names them `<id>_<operator>`, numbered
    across everything the process translates: translating one more output first would
    renumber the rest and orphan their window state in a savepoint. The new names depend only
    on the SQL behind `transformation`. Operators of the DataStream part, which name their own
    uids, end the walk."""
    numbers = itertools.count(1)
    seen = set()

    def rename(node):
        match = _PLANNER_UID.fullmatch(node.getUid() or "")
        if not match or node.getId() in seen:
            return
        seen.add(node.getId())
        node.setUid(f"{prefix}-{next(numbers)}_{match.group(1)}")
        for upstream in node.getInputs():
            rename(upstream)

    rename(transformation)
