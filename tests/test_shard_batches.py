"""A shard's Kinesis records reach the parse together (connectors/jvm ShardBatches): every
record once, in its shard's order, batches of one shard each, cut at the record and byte limits
and at the end of the input."""
import json

import pytest
from pyflink.common import Row, Types

from flowdredge.connectors.jars import adapter_jars
from flowdredge.connectors.kinesis.flink import RAW_RECORD_TYPE, shard_batches
from flowdredge.connectors.kinesis.settings import KinesisSection
from flowdredge.connectors.streams import add_jars
from flowdredge.job.config import Config
from flowdredge.job.flink.run import make_env

pytestmark = pytest.mark.minicluster

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/flows"


def test_records_are_batched_per_shard_within_the_limits():
    # Shard 0's records are small (3 a batch: the record limit); shard 1's 130 bytes each (2 a
    # batch: the byte limit, 250). Interleaved, as a reader of both shards emits them.
    records = [Row(f"{shard}-{i}".encode().ljust(130 if shard else 3, b"."), STREAM,
                   f"shardId-{shard}", str(i))
               for i in range(10) for shard in (0, 1)]
    env = make_env(Config())
    env.set_parallelism(1)
    add_jars(env, adapter_jars())
    batches = shard_batches(env.from_collection(records, type_info=RAW_RECORD_TYPE),
                            KinesisSection(batch_records=3, batch_bytes=250,
                                           batch_wait_ms=600_000))
    # As text: what the parse step gets, without a Python function of this module (the
    # workers could not import it by name).
    seen = batches.map(lambda b: json.dumps([b[0], b[1], [[r[0].decode()[:4].rstrip("."),
                                                             r[1], r[2]] for r in b[2]]]),
                       output_type=Types.STRING())
    with seen.execute_and_collect() as results:
        got = [json.loads(line) for line in results]
    by_shard = {}
    for stream, shard, batch in got:
        assert stream == STREAM
        by_shard.setdefault(shard, []).append([sequence for _, sequence, _ in batch])
        # No timestamps here: the records' arrival is None (Kinesis sets it: the e2e tests).
        assert all(data == f"{shard[-1]}-{sequence}" and arrival is None
                   for data, sequence, arrival in batch)
    numbers = [str(i) for i in range(10)]
    assert by_shard["shardId-0"] == [numbers[0:3], numbers[3:6], numbers[6:9], numbers[9:]]
    assert by_shard["shardId-1"] == [numbers[i:i + 2] for i in range(0, 10, 2)]
