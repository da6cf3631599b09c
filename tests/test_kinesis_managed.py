"""The Managed Flink application zip, unpacked and run by a Python like the service's, as the
streaming job: `kinesis.flow_streams` in the runtime properties, the zip's merged connector jar,
flow logs and the changelog from the local Kinesis (kinesis-local); its aggregates equal the
reference. One code path with `flowdredge run` and the cluster (job.flink.run.kinesis_job)."""
import os
import signal
import subprocess
import zipfile

import pytest

from flowdredge.connectors.kinesis import client as kinesis_client
from flowdredge.connectors.kinesis.local import LocalKinesis
from helpers import subprocess_env
from flowdredge.operate import package
from streaming import (ACCOUNT_A, ACCOUNT_B, Estate, Writer, closed_aggregates,
                       expected_aggregates, parsed_records, scenario, streaming_config, wait_for)
from test_package import properties_file, service_like_python

pytestmark = pytest.mark.kinesis


def test_the_unpacked_zip_runs_the_streaming_job(tmp_path):
    zip_path = package.build(str(tmp_path / "flowdredge.zip")).path
    app = tmp_path / "app"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(app)
        assert package.JAR_NAME in zf.namelist()
    python = service_like_python(tmp_path / "venv")
    estate = Estate(str(tmp_path / "estate"), scenario(minutes=10, flows_per_minute=150))
    output = str(tmp_path / "out")
    with LocalKinesis(str(tmp_path / "kinesis-local.log")) as server:
        config = streaming_config(
            server.endpoint, 2,
            kinesis={"flow_streams": "managed-flows", "metadata_stream": "managed-meta",
                     "metadata_snapshot": estate.snapshot})
        kinesis = kinesis_client.client(config.kinesis)
        kinesis_client.create_stream(kinesis, "managed-flows", 2)
        kinesis_client.create_stream(kinesis, "managed-meta", 1)
        props = properties_file(tmp_path / "application_properties.json", config,
                                {"output": output})
        env = {k: v for k, v in subprocess_env().items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(app)
        log = open(tmp_path / "main.log", "w")
        job = subprocess.Popen([python, "main.py", "--properties", props], cwd=str(app),
                               stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
        try:
            writer = Writer(kinesis, estate, {ACCOUNT_A: "managed-flows",
                                              ACCOUNT_B: "managed-flows"}, "managed-meta")
            writer.deliver(estate.deliveries)

            def alive(check):
                def poll():
                    assert job.poll() is None, \
                        f"main.py exited with {job.returncode}: {_tail(tmp_path / 'main.log')}"
                    return check()
                return poll
            wait_for("every record parsed",
                     alive(lambda: parsed_records(output) == writer.records_written))
            first_open = writer.finish("managed-flows")
            expected = expected_aggregates(estate)
            wait_for("the estate's windows",
                     alive(lambda: closed_aggregates(output, first_open) == expected),
                     keep_alive=writer.flush)
        finally:
            os.killpg(job.pid, signal.SIGTERM)
            try:
                job.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()
            log.close()


def _tail(path) -> str:
    with open(path) as fh:
        return fh.read()[-3000:]
