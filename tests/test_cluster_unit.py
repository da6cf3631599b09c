"""operate.cluster without a cluster: its conf, the shipped code, feeding watched folders."""
import json
import os
import zipfile

import pytest

from flowdredge.operate.cluster import Cluster, feed, flink_home, ship_code
from flowdredge.synthetic.estate import Scenario, generate

pytestmark = pytest.mark.unit


def test_conf_keeps_the_cluster_in_its_folder(tmp_path):
    cluster = Cluster(folder=str(tmp_path / "c"), rest_port=18123, rpc_port=16999, slots=3)
    cluster.write_conf()
    conf = {}
    for line in (tmp_path / "c" / "conf" / "config.yaml").read_text().splitlines():
        key, value = line.split(": ", 1)
        conf[key] = json.loads(value)
    assert conf["rest.port"] == 18123 and conf["jobmanager.rpc.port"] == 16999
    assert conf["taskmanager.numberOfTaskSlots"] == 3
    assert conf["env.pid.dir"] == str(tmp_path / "c" / "pid")
    assert conf["env.log.dir"] == str(tmp_path / "c" / "log")
    assert "--add-opens=java.base/java.util=ALL-UNNAMED" in conf["env.java.opts.all"]
    assert (tmp_path / "c" / "conf" / "log4j.properties").is_file()
    assert os.path.isfile(os.path.join(flink_home(), "bin", "flink"))


def test_shipped_code_holds_the_packages_and_no_caches(tmp_path):
    names = zipfile.ZipFile(ship_code(str(tmp_path / "code.zip"))).namelist()
    for module in ("__init__.py", "job/submit.py", "job/flink/pipeline.py", "connectors/files.py",
                   "schemas/outputs.py"):
        assert f"flowdredge/{module}" in names
    assert all(n.endswith(".py") and "__pycache__" not in n for n in names)


def test_feed_writes_one_visible_file_per_folder(tmp_path):
    out = generate(Scenario(minutes=2, flows_per_minute=50, seed=3), str(tmp_path / "in"))
    records, events = feed([str(tmp_path / "in" / "flows")], [out.metadata_file],
                           str(tmp_path / "w" / "f"), str(tmp_path / "w" / "m"), "part-1",
                           chunk_lines=10)
    assert os.listdir(tmp_path / "w" / "f") == ["part-1"]
    assert os.listdir(tmp_path / "w" / "m") == ["part-1"]
    assert records == len((tmp_path / "w" / "f" / "part-1").read_text().splitlines())
    with open(out.metadata_file) as fh:
        assert events == sum(1 for line in fh if line.strip())


class _RecordingCluster(Cluster):
    """Records the `flink` CLI arguments instead of running them."""

    def flink(self, *args):
        self.args = args
        return "Job has been submitted with JobID " + "0" * 32


@pytest.mark.parametrize("layout", ["staged", "aws"])
def test_submit_passes_the_flow_layout(tmp_path, monkeypatch, layout):
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))
    flows = "s3://bucket/AWSLogs/" if layout == "aws" else str(tmp_path / "flows")
    cluster.submit("c.yaml", flows, str(tmp_path / "meta"), str(tmp_path / "out"),
                   flows_layout=layout)
    args = list(cluster.args)
    assert args[args.index("--flows") + 1] == flows
    if layout == "aws":
        assert args[args.index("--flows-layout") + 1] == "aws"
        assert args[args.index("--follow-seconds") + 1] == "0"
    else:
        assert args[args.index("--flows-layout") + 1] == "staged" and os.path.isdir(flows)
    # Without a layout: AWS's own files, the production default.
    cluster.submit("c.yaml", flows, str(tmp_path / "meta"), str(tmp_path / "out"))
    assert cluster.args[cluster.args.index("--flows-layout") + 1] == "aws"


def test_submit_drops_unclaimed_state_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr("flowdredge.operate.cluster.ship_code", lambda path: path)
    cluster = _RecordingCluster(folder=str(tmp_path / "cluster"))
    where = ("c.yaml", str(tmp_path / "flows"), str(tmp_path / "meta"), str(tmp_path / "out"))
    cluster.submit(*where, savepoint="file:///sp/1")
    assert "--allowNonRestoredState" not in cluster.args
    cluster.submit(*where, savepoint="file:///sp/1", allow_non_restored_state=True)
    args = list(cluster.args)
    assert args[args.index("--fromSavepoint") + 1] == "file:///sp/1"
    assert "--allowNonRestoredState" in args[:args.index("--pyModule")]   # flink run's own
    with pytest.raises(ValueError, match="needs a savepoint"):
        cluster.submit(*where, allow_non_restored_state=True)
