"""Managed Flink reading a bucket of flow logs as AWS writes them (io.flows_layout aws, io.flows
an s3:// prefix): the unpacked application zip, in a Python with only what the service's Python
has, against moto's S3, gives the rows of the independent computation; a bad object is one dead
letter."""
import gzip
import os

import pytest

import reference
from helpers import job_aggregates, moto_server, read_records
from flowdredge.job.config import Config
from flowdredge.job.replay import stage_metadata
from flowdredge.synthetic.estate import Scenario, generate
from test_package import properties_file, run_unpacked, unpacked  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.minicluster, pytest.mark.aws]


def test_the_unpacked_zip_reads_aws_format_flow_logs_from_s3(unpacked, tmp_path,  # noqa: F811
                                                            monkeypatch):
    import boto3
    app, python = unpacked
    out = generate(Scenario(minutes=3, flows_per_minute=200, seed=17), str(tmp_path / "in"))
    flows = tmp_path / "in" / "flows"
    metadata = str(tmp_path / "metadata.jsonl")
    stage_metadata([out.metadata_file], metadata)
    cut = gzip.compress(b"version account-id interface-id srcaddr dstaddr srcport dstport "
                        b"protocol packets bytes start end action log-status\n" * 50)
    with moto_server(tmp_path) as url:
        s3 = boto3.client("s3", endpoint_url=url)
        s3.create_bucket(Bucket="flows")
        for root, _dirs, names in os.walk(flows):
            for name in names:
                path = os.path.join(root, name)
                s3.upload_file(path, "flows", "logs/" + os.path.relpath(path, flows))
        bad_key = "logs/x/123456789012_vpcflowlogs_us-east-1_fl-1_20260101T0001Z_cut.log.gz"
        s3.put_object(Bucket="flows", Key=bad_key, Body=cut[:-9])
        # The job's processes (client, JVM, Python workers) find moto through boto3's setting.
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        props = properties_file(tmp_path / "application_properties.json",
                                Config().replace(job={"parallelism": 2}),
                                {"flows": "s3://flows/logs/", "flows_layout": "aws",
                                 "metadata": metadata, "output": str(tmp_path / "out")})
        result = run_unpacked(app, python, props, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert job_aggregates(str(tmp_path / "out")) == \
        reference.aggregates([str(flows)], [out.metadata_file])
    dead = [d for d in read_records(str(tmp_path / "out"), "dead_letter")]
    assert [(d["reason"], d["source"]) for d in dead] == [("bad_gzip", f"s3://flows/{bad_key}")]
