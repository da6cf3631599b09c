import concurrent.futures
import logging
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def command_logs_end_with_their_test():
    """A command's main() adds its logger's stderr handler (connectors.logs.setup), once a
    process in real use: left in place, one test's printed the next tests' lines of other
    commands too (an order-dependent failure)."""
    yield
    from flowdredge.connectors.logs import _Stderr
    for name in ["", *logging.Logger.manager.loggerDict]:
        log = logging.getLogger(name)
        for handler in [h for h in log.handlers if isinstance(h, _Stderr)]:
            log.removeHandler(handler)


@pytest.fixture(scope="session")
def aws_examples():
    """AWS's documented example flow-log lines, as {format line: [lines]} (shared/data)."""
    path = os.path.join(SHARED, "data", "aws-flow-log-examples.txt")
    blocks, current = {}, None
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.startswith("## format:"):
                current = line.split(":", 1)[1].strip()
                if current.startswith("default"):
                    current = "default"
                blocks[current] = []
            elif line and not line.startswith("#") and current:
                blocks[current].append(line)
    return blocks


@pytest.fixture(scope="session")
def cluster_stops():
    """Stops clusters in the background (the `cluster` fixture); the session's end waits for
    them, and a stop that failed fails there."""
    with concurrent.futures.ThreadPoolExecutor() as pool:
        stops = []
        yield lambda c: stops.append(pool.submit(c.stop))
        for stop in stops:
            stop.result()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, cluster_stops):
    """A local standalone Flink cluster (operate.cluster) of two slots, for a module. Its stop,
    6-13 s of waiting for the daemons to end, runs while the next tests do: the cluster's
    ports and folder are its own. Its REST API's metrics and watermarks are at most a second
    old (not Flink's 10 s): the tests' waits on them end as soon as they hold."""
    from flowdredge.connectors.kinesis.local import free_port
    from flowdredge.operate.cluster import Cluster

    class FreshMetrics(Cluster):
        def write_conf(self) -> None:
            super().write_conf()
            with open(os.path.join(self.conf_dir, "config.yaml"), "a") as fh:
                fh.write("metrics.fetcher.update-interval: 1000\n")

    c = FreshMetrics(folder=str(tmp_path_factory.mktemp("cluster")), rest_port=free_port(),
                     rpc_port=free_port(), slots=2)
    try:
        c.start()
        yield c
    finally:
        cluster_stops(c)


@pytest.fixture(scope="module")
def kinesis_local(tmp_path_factory):
    """The local Kinesis API server (kinesis-local over HTTP on 127.0.0.1), for a module."""
    from flowdredge.connectors.kinesis.local import LocalKinesis
    with LocalKinesis(str(tmp_path_factory.mktemp("kinesis") / "kinesis-local.log")) as server:
        yield server
