"""The job's SQL is planned on whichever thread py4j serves the call on (connectors/jvm
Planning, connectors.streams.attach_insert)."""
import json
import threading
import time

import pytest
from pyflink.table import StreamTableEnvironment

from flowdredge.connectors.jars import adapter_jars
from flowdredge.connectors.streams import add_jars, attach_insert, jvm
from flowdredge.job.config import Config
from flowdredge.job.flink.run import make_env

pytestmark = pytest.mark.minicluster


def test_an_insert_planned_over_a_new_gateway_connection_is_planned():
    """py4j serves a call on a thread of its own over a new connection when every one it has
    is in use (another Python thread's call, a garbage collector's release of a Java object).
    Calcite's metadata provider is set per thread, by the planner on the thread that built it:
    attach_as_datastream on a new one failed with 'NullPointerException:
    metadataHandlerProvider' (FLINK-36298; a harness run's SQL baseline met it once)."""
    env = make_env(Config())
    add_jars(env, adapter_jars())
    t_env = StreamTableEnvironment.create(env)
    t_env.execute_sql("CREATE TEMPORARY TABLE numbers (a BIGINT, b STRING) "
                      "WITH ('connector' = 'datagen', 'number-of-rows' = '10')")
    t_env.execute_sql("CREATE TEMPORARY TABLE counts (b STRING, n BIGINT) "
                      "WITH ('connector' = 'blackhole')")
    rows = t_env.sql_query("SELECT b, COUNT(*) FROM numbers WHERE a > 1 GROUP BY b")
    # The gateway's idle connections (a few) each held by a call of another thread: the next
    # call here opens a new one.
    holders = [threading.Thread(target=jvm().java.lang.Thread.sleep, args=(3000,))
               for _ in range(16)]
    for holder in holders:
        holder.start()
    time.sleep(1)
    attach_insert(t_env, "counts", rows, "planning-test")
    plan = json.loads(env.get_execution_plan())
    assert "counts" in [node["type"].split("[")[0] for node in plan["nodes"]]
    for holder in holders:
        holder.join()


def test_a_window_of_100_days_or_more_is_planned():
    """job.window_seconds takes up to 2**31 - 1, and the aggregates' TUMBLE was given it as DAY
    TO SECOND, whose DAY field holds 2 digits: from 100 days (8,640,000 s) on the job failed
    as it was built ('Interval field value 100 exceeds precision of DAY(2) field'), after the
    config had been taken."""
    from flowdredge.connectors.streams import sql_interval
    t_env = StreamTableEnvironment.create(make_env(Config()))
    t_env.execute_sql("CREATE TEMPORARY TABLE events (t TIMESTAMP(3), "
                      "WATERMARK FOR t AS t) WITH ('connector' = 'datagen')")
    for seconds in (8639999, 8640000, 2**31 - 1):
        t_env.sql_query(f"""
            SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(t),
                {sql_interval(seconds)})) GROUP BY window_start, window_end""").explain()
