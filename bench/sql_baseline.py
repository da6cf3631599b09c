"""The pipeline a Flink user would write instead of flowdredge: pure Flink SQL, all in the JVM.

- flows: the S3 flow-log files through the filesystem connector (`raw` format: one row per line,
  gzip decompressed by file extension), header and NODATA/SKIPDATA lines dropped, fields cut
  out with SPLIT_INDEX (the default v2 format, which synthetic.workload writes);
- owners: the IP-metadata changelog (JSON Lines) as a versioned table (primary key `ip`, event
  time `ts`): every ASSIGN is a new version of its IP, every UNASSIGN a version without owner;
- both ends of every flow joined FOR SYSTEM_TIME AS OF the flow start (event-time temporal
  join, LEFT: no version means no owner); unowned addresses are `unattributed` when private and
  `internet` otherwise, as job.attribute decides;
- TUMBLE windows on flow start, summed per aggregate dimension, written as JSON Lines with the
  columns of the job's `aggregates/` output (schemas.outputs.AGGREGATE).

One difference in semantics, which synthetic.workload avoids: the job orders an UNASSIGN and an
ASSIGN of one IP at the same millisecond by type, the temporal join by arrival.
"""
import argparse
import json
import os
import time

from flowdredge.connectors.s3 import flink_uri
from flowdredge.connectors.streams import sql_string
from flowdredge.job.config import FlowsSection, JobSection, MetadataSection
from flowdredge.schemas.flink import sql_columns
from flowdredge.schemas.flowlog import DEFAULT_FORMAT
from flowdredge.schemas.outputs import AGGREGATE

NUMERIC_FIELDS = {"dstport", "protocol", "packets", "bytes", "start"}
FIELD_INDEX = {name: i for i, name in enumerate(DEFAULT_FORMAT)}


def _field(name: str) -> str:
    text = f"NULLIF(SPLIT_INDEX(line, ' ', {FIELD_INDEX[name]}), '-')"
    return f"CAST({text} AS BIGINT)" if name in NUMERIC_FIELDS else text


def _interval(seconds: int) -> str:
    # `INTERVAL '300' SECOND` exceeds the default precision of SECOND(2).
    hours, minutes, secs = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"INTERVAL '{hours}:{minutes:02d}:{secs:02d}' HOUR TO SECOND"


def _private(ip: str) -> str:
    """job.attribute's non-internet ranges, on the address text."""
    octet = lambda n: f"CAST(SPLIT_INDEX({ip}, '.', {n}) AS INT)"  # noqa: E731
    return (f"({ip} LIKE '10.%' OR {ip} LIKE '192.168.%' OR {ip} LIKE '127.%' "
            f"OR {ip} LIKE '169.254.%' "
            f"OR ({ip} LIKE '172.%' AND {octet(1)} BETWEEN 16 AND 31) "
            f"OR ({ip} LIKE '100.%' AND {octet(1)} BETWEEN 64 AND 127) "
            f"OR LOWER({ip}) LIKE 'fc%' OR LOWER({ip}) LIKE 'fd%' OR LOWER({ip}) LIKE 'fe8%' "
            f"OR LOWER({ip}) LIKE 'fe9%' OR LOWER({ip}) LIKE 'fea%' OR LOWER({ip}) LIKE 'feb%' "
            f"OR {ip} = '::1')")


def _owner(side: str, ip: str):
    app = (f"CASE WHEN {side}.`type` = 'ASSIGN' THEN COALESCE({side}.app, '-') "
           f"WHEN {_private(ip)} THEN 'unattributed' ELSE 'internet' END")
    region = f"CASE WHEN {side}.`type` = 'ASSIGN' THEN COALESCE({side}.region, '-') ELSE '-' END"
    return app, region


def statements(s3_dir: str, changelog: str, output_dir: str,
               window_seconds: int = JobSection.window_seconds,
               flow_out_of_orderness_seconds: int = FlowsSection.out_of_orderness_seconds,
               metadata_out_of_orderness_seconds: int =
               MetadataSection.out_of_orderness_seconds):
    """The SQL script: CREATE statements, then the INSERT (last)."""
    start = ("COALESCE(TRY_CAST(SPLIT_INDEX(line, ' ', "
             f"{FIELD_INDEX['start']}) AS BIGINT), 0)")
    src_app, src_region = _owner("s", "f.src_ip")
    dst_app, dst_region = _owner("d", "f.dst_ip")
    return [
        # The header line has no number in `start`: time 0, dropped by the view below.
        f"""CREATE TEMPORARY TABLE flow_lines (
              line STRING,
              flow_time AS TO_TIMESTAMP_LTZ({start} * 1000, 3),
              WATERMARK FOR flow_time AS flow_time - {_interval(flow_out_of_orderness_seconds)}
            ) WITH ('connector' = 'filesystem', 'path' = {sql_string(flink_uri(s3_dir))},
                    'format' = 'raw')""",
        f"""CREATE TEMPORARY VIEW flows AS SELECT
              {_field('srcaddr')} AS src_ip, {_field('dstaddr')} AS dst_ip,
              {_field('dstport')} AS dst_port, {_field('protocol')} AS protocol,
              {_field('packets')} AS packets, {_field('bytes')} AS nbytes,
              {_field('action')} AS action, flow_time
            FROM flow_lines
            WHERE line NOT LIKE 'version %' AND line NOT LIKE '% NODATA'
              AND line NOT LIKE '% SKIPDATA'""",
        f"""CREATE TEMPORARY TABLE changelog (
              `type` STRING, `ts` BIGINT, `ip` STRING, `app` STRING, `region` STRING,
              change_time AS TO_TIMESTAMP_LTZ(`ts`, 3),
              WATERMARK FOR change_time
                AS change_time - {_interval(metadata_out_of_orderness_seconds)},
              PRIMARY KEY (`ip`) NOT ENFORCED
            ) WITH ('connector' = 'filesystem', 'path' = {sql_string(flink_uri(changelog))},
                    'format' = 'json')""",
        f"""CREATE TEMPORARY VIEW attributed AS SELECT
              {src_app} AS src_app, {src_region} AS src_region,
              {dst_app} AS dst_app, {dst_region} AS dst_region,
              f.dst_port, f.protocol, f.action, f.packets, f.nbytes, f.flow_time
            FROM flows AS f
            LEFT JOIN changelog FOR SYSTEM_TIME AS OF f.flow_time AS s ON s.ip = f.src_ip
            LEFT JOIN changelog FOR SYSTEM_TIME AS OF f.flow_time AS d ON d.ip = f.dst_ip""",
        f"""CREATE TEMPORARY TABLE aggregates_sink ({sql_columns(AGGREGATE)})
            WITH ('connector' = 'filesystem',
                  'path' = {sql_string(flink_uri(os.path.join(output_dir, "aggregates")))},
                  'format' = 'json', 'sink.rolling-policy.file-size' = '128MB')""",
        f"""INSERT INTO aggregates_sink
            SELECT UNIX_TIMESTAMP(CAST(window_start AS STRING)) AS window_start,
                   src_app, src_region, dst_app, dst_region,
                   CAST(dst_port AS INT), CAST(protocol AS INT), action,
                   COUNT(*) AS flows, SUM(COALESCE(packets, 0)) AS packets,
                   SUM(COALESCE(nbytes, 0)) AS `bytes`
            FROM TABLE(TUMBLE(TABLE attributed, DESCRIPTOR(flow_time),
                              {_interval(window_seconds)}))
            GROUP BY window_start, window_end, src_app, src_region, dst_app, dst_region,
                     dst_port, protocol, action""",
    ]



def stage_in_delivery_order(s3_dir: str, staged_path: str) -> int:
    """Concatenates the S3 files in delivery order (job.replay's order) into one gzip file of
    several members, which one reader reads start to end; returns the number of files."""
    from flowdredge.job.replay import delivery_order, expand
    files = sorted((f for f in expand([s3_dir]) if f.endswith(".gz")), key=delivery_order)
    os.makedirs(os.path.dirname(os.path.abspath(staged_path)), exist_ok=True)
    with open(staged_path, "wb") as out:
        for path in files:
            with open(path, "rb") as fh:
                out.write(fh.read())
    return len(files)


def run(s3_dir: str, changelog: str, output_dir: str, parallelism: int, checkpoint_dir: str,
        flow_out_of_orderness_seconds: int = FlowsSection.out_of_orderness_seconds,
        checkpoint_interval_seconds: int = JobSection.checkpoint_interval_seconds,
        on_submitted=None):
    """Runs the pipeline bounded and blocks until it is done; returns Flink's
    JobExecutionResult. Checkpoints as the job does (its default interval), to files."""
    from pyflink.table import EnvironmentSettings, TableEnvironment
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("parallelism.default", str(parallelism))
    conf.set("table.local-time-zone", "UTC")
    conf.set("execution.checkpointing.interval", f"{checkpoint_interval_seconds}s")
    conf.set("execution.checkpointing.dir", f"file://{os.path.abspath(checkpoint_dir)}")
    conf.set("restart-strategy.type", "none")
    conf.set("pipeline.name", "flowdredge sql baseline")
    *creates, insert = statements(s3_dir, changelog, output_dir,
                                  flow_out_of_orderness_seconds=flow_out_of_orderness_seconds)
    for statement in creates:
        t_env.execute_sql(statement)
    result = t_env.execute_sql(insert)
    if on_submitted:
        on_submitted()
    result.wait()
    return result.get_job_client().get_job_execution_result().result()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--s3-dir", required=True, help="folder of S3 flow-log files (.log.gz)")
    p.add_argument("--changelog", required=True, help="IP-metadata changelog (JSON Lines)")
    p.add_argument("--output", required=True)
    p.add_argument("--parallelism", type=int, default=1)
    p.add_argument("--print-sql", action="store_true", help="print the statements and exit")
    args = p.parse_args(argv)
    if args.print_sql:
        print(";\n\n".join(statements(args.s3_dir, args.changelog, args.output)) + ";")
        return 0
    began = time.monotonic()
    result = run(args.s3_dir, args.changelog, args.output, args.parallelism,
                 os.path.join(args.output, "checkpoints"))
    print(json.dumps({"net_runtime_s": result.get_net_runtime() / 1000,
                      "wall_s": round(time.monotonic() - began, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
