"""What the config names outside itself, checked by every entry point before Flink starts
(flowdredge, job.submit under `flink run`, the zip's main.py): a file the running job would
fail on once Flink had started, its restarts spent. Pure Python (no pyflink)."""
import os

from flowdredge.job.config import Config, ConfigError
from flowdredge.job.ipranges import IpRangesError, load as load_ip_ranges
from flowdredge.job.replay import InputError, check_snapshot


def check_at_start(config: Config, streaming: bool = False) -> None:
    """ConfigError for a metadata.ip_ranges (a path, or an s3:// URL read with boto3 as the
    workers read it) that cannot be read or is not an ip-ranges document (each attribution
    instance reads it as it starts), and with `streaming` (the job reads the Kinesis streams) a
    local kinesis.metadata_snapshot (check_metadata_snapshot). Called in the working directory
    the job's workers share, so a relative path is read as they read it."""
    location = config.metadata.ip_ranges
    if location:
        try:
            load_ip_ranges(location)
        except IpRangesError as err:
            raise ConfigError(f"metadata.ip_ranges: {err}") from None
    if streaming:
        check_metadata_snapshot(config)


def check_metadata_snapshot(config: Config) -> None:
    """ConfigError for a local kinesis.metadata_snapshot (a path or file:// URL) that is not
    there or that its reader would fail on (job.replay.check_snapshot)."""
    snapshot = config.kinesis.metadata_snapshot
    local = snapshot[len("file://"):] if snapshot.startswith("file://") else snapshot
    if local and "://" not in local:
        if not os.path.exists(local):
            raise ConfigError(f"kinesis.metadata_snapshot: {snapshot} does not exist")
        try:
            check_snapshot(local)
        except InputError as err:
            raise ConfigError(f"kinesis.metadata_snapshot: {err}") from None
