"""Where changelog events go: a JSON Lines file, or the metadata Kinesis stream; and snapshots.

Both sinks write a batch completely or raise SinkError; the publisher keeps its state only once
a batch is written, so a failed batch is computed and sent again by the next poll (a change may
then arrive twice, which the changelog tolerates, and is never lost).
"""
import fcntl
import hashlib
import json
import os
import time

from botocore.exceptions import BotoCoreError, ClientError

from flowdredge.connectors import s3
from flowdredge.connectors.publisher.config import OutputSection
from flowdredge.schemas.metadata import HEARTBEAT

KINESIS_MAX_RECORDS = 500
KINESIS_MAX_BYTES = 5 * 1024 * 1024
# A changelog record holds many events, one per line, up to this size (Kinesis's largest record,
# partition key included). A shard takes 1,000 records or 1 MiB a second, and the job parses a
# record in one call (in columns from 1,024 lines, job.changelog_columns): a snapshot of 1M IPs
# is then about 200 records, not a million.
KINESIS_RECORD_BYTES = 1024 * 1024


class SinkError(RuntimeError):
    pass


def encode(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"))


def make_folder(path: str, what: str) -> str:
    """The folder of file `path`, made if it is not there; SinkError saying `what` if it cannot."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise SinkError(f"{what}: cannot make its folder ({err.strerror or err})") from None
    return folder


class FileSink:
    """Appends JSON Lines to a file, flushed to disk after each batch."""

    def __init__(self, path: str):
        self.path = path
        make_folder(path, f"output.path {path}")

    def check(self) -> str:
        """Raises SinkError if the file cannot be appended to: said at start, not after the first
        poll's reads (minutes at hundreds of accounts). A last line left without its end (a
        publisher killed while it wrote; its poll's changes are sent again) is cut off, or the
        next batch's first event would join it into a line the job cannot read; that is said."""
        try:
            with open(self.path, "ab") as fh:
                # Under the lock writes take: a batch another publisher is appending (a rolling
                # deploy on a shared volume) is whole before the end is looked at (a review).
                fcntl.flock(fh, fcntl.LOCK_EX)
                size = os.fstat(fh.fileno()).st_size
                if not size:
                    return ""
                with open(self.path, "rb") as tail:
                    end = complete_lines_end(tail, size)
                if end == size:
                    return ""
                try:
                    fh.truncate(end)
                except OSError as err:   # an append-only file (chattr +a)
                    return (f"{self.path}: its last line has no end (a write cut short), and "
                            f"cannot be cut off ({err.strerror}): the next batch's first event "
                            f"joins it into a line the job cannot read")
                return (f"{self.path}: cut off its last {size - end} byte(s), a line left "
                        f"without its end by a write cut short (its changes are sent again)")
        except OSError as err:
            raise SinkError(f"cannot append to {self.path}: {err.strerror}") from None

    def write(self, events: list) -> None:
        """A batch whole or not at all: a failed append (a full disk) is cut back to where it
        began, or its half line would join the next batch's first event into a bad line."""
        if not events:
            return
        size = None
        try:
            with open(self.path, "ab") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                size = os.fstat(fh.fileno()).st_size
                fh.write("".join(encode(e) + "\n" for e in events).encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as err:
            if size is not None:
                try:
                    os.truncate(self.path, size)
                except OSError:
                    pass   # the next write finds the same trouble and says so
            raise SinkError(f"cannot append to {self.path}: {err.strerror}") from None


def complete_lines_end(fh, size: int) -> int:
    """Where the last complete line of the first `size` bytes of file `fh` ends (just after its
    newline), or 0: read back from `size`, a block at a time."""
    end = size
    while end > 0:
        start = max(0, end - 65536)
        fh.seek(start)
        at = fh.read(end - start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


class KinesisSink:
    """Events as JSON lines, as many to a record as `record_bytes` holds, in order; PutRecords in
    batches (500 records, 5 MB). The client's botocore retries a call that fails (throttled,
    5xx, connection); records a call took but reported as failed (partial success, which
    botocore does not retry) are sent again here, with exponential backoff, up to
    `max_attempts` times. HEARTBEATs go in a record and a call of their own once every change
    before them is in the stream, so none can overtake a change it covers."""

    def __init__(self, client, stream: str, partition_key: str,
                 max_attempts: int = OutputSection.max_attempts,
                 base_delay_s: float = 0.2, sleep=time.sleep,
                 record_bytes: int = KINESIS_RECORD_BYTES):
        self.client = client
        self.stream = ({"StreamARN": stream} if stream.startswith("arn:")
                       else {"StreamName": stream})
        self.partition_key = partition_key
        self.record_bytes = record_bytes
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.sleep = sleep

    def check(self) -> str:
        """Raises SinkError if the stream is not there or cannot be reached: said at start, not
        after the first poll's reads. Without kinesis:DescribeStreamSummary it cannot tell, and
        says so (the first write will)."""
        name = _stream_name(self.stream)
        try:
            self.client.describe_stream_summary(**self.stream)
        except ClientError as err:
            error = err.response.get("Error", {})
            if error.get("Code") == "ResourceNotFoundException":
                raise SinkError(f"output stream {name}: {error.get('Code')}: "
                                f"{error.get('Message', '')}") from None
            # Not allowed to look, or a passing failure that a write at each poll outlasts.
            return _unchecked(f"output stream {name}", _error_text(err))
        except BotoCoreError as err:
            return _unchecked(f"output stream {name}", err)
        return ""

    def write(self, events: list) -> None:
        pending = []
        for event in events:
            if event["type"] == HEARTBEAT:
                self._put_all(pending)
                self._put_all([event])
                pending = []
            else:
                pending.append(event)
        self._put_all(pending)

    def _put_all(self, events: list) -> None:
        self.put_lines([encode(event).encode("utf-8") for event in events])

    def put_lines(self, lines: list) -> None:
        """Lines (bytes), in order, as many to a record as `record_bytes` holds."""
        room = self.record_bytes - len(self.partition_key.encode("utf-8"))
        records, record, size = [], [], -1
        for line in lines:
            if record and size + 1 + len(line) > room:
                records.append(b"\n".join(record))
                record, size = [], -1
            record.append(line)
            size += 1 + len(line)
        if record:
            records.append(b"\n".join(record))
        self.put([{"Data": data, "PartitionKey": self.partition_key} for data in records])

    def put(self, records: list) -> None:
        """Any records ({"Data": bytes, "PartitionKey": str}), in order, in as few calls as the
        limits allow."""
        batch, size = [], 0
        for record in records:
            record_size = len(record["Data"]) + len(record["PartitionKey"])
            if batch and (len(batch) == KINESIS_MAX_RECORDS or size + record_size > KINESIS_MAX_BYTES):
                self._put(batch)
                batch, size = [], 0
            batch.append(record)
            size += record_size
        if batch:
            self._put(batch)

    def _put(self, records: list) -> None:
        for attempt in range(self.max_attempts):
            if attempt:
                self.sleep(self.base_delay_s * 2 ** (attempt - 1))
            try:
                answer = self.client.put_records(Records=records, **self.stream)
            except ClientError as err:   # after botocore's own retries
                error = err.response.get("Error", {})
                raise SinkError(f"Kinesis PutRecords failed: {error.get('Code')}: "
                                f"{error.get('Message', '')}") from None
            except BotoCoreError as err:
                raise SinkError(f"Kinesis PutRecords failed: {type(err).__name__}: {err}") from None
            if not answer.get("FailedRecordCount"):
                return
            results = answer.get("Records") or []
            # Failed records keep their order; succeeded ones are not sent again. Out of order,
            # that changes no owner: the job orders an address's events by ts (by type at equal
            # ts), and a batch never holds two changes of one type and ts for an address, nor
            # for an address in a VPC (the VPC_UNASSIGNs that undo a failed write's VPC events
            # are several of one VPC and address, each at its own ts): docs/metadata.md. An
            # answer that counts failures but names none: all of them again.
            failed = [(record, result) for record, result in zip(records, results)
                      if result.get("ErrorCode")] or [(record, {}) for record in records]
            records = [record for record, _result in failed]
        raise SinkError(f"Kinesis PutRecords failed after {self.max_attempts} attempt(s): "
                        f"{len(records)} record(s) failed, e.g. "
                        f"{failed[0][1].get('ErrorCode') or 'no error code given'}")


def _unchecked(what: str, why) -> str:
    return f"cannot check {what} ({why}): its first write will tell"


def _error_text(err: ClientError) -> str:
    error = err.response.get("Error", {})
    return f"{error.get('Code')}: {error.get('Message', '')}".rstrip(": ")


def _stream_name(stream: dict) -> str:
    return stream.get("StreamARN") or stream["StreamName"]


def _bucket_key(target: str) -> tuple:
    try:
        return s3.split(target)
    except ValueError as err:
        raise SinkError(f"snapshot target {err}") from None


def check_snapshot_target(target: str, s3_client_factory=None) -> str:
    """Raises SinkError if a snapshot cannot be written to `target` (a file's folder, or an S3
    bucket), before the reads it is written after; a bucket it may not look at is said, not
    refused (s3:PutObject without s3:ListBucket answers 403)."""
    if s3.is_s3(target):
        bucket, _key = _bucket_key(target)
        try:
            s3_client_factory().head_bucket(Bucket=bucket)
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchBucket",
                                                                        "NotFound"):
                raise SinkError(f"snapshot target {target}: no such bucket") from None
            # 403 without s3:ListBucket, or a passing failure.
            return _unchecked(f"snapshot target {target}", _error_text(err))
        except BotoCoreError as err:
            return _unchecked(f"snapshot target {target}", err)
        return ""
    folder = make_folder(target, f"snapshot target {target}")
    if os.path.isdir(target):
        raise SinkError(f"snapshot target {target} is a folder")
    if not os.access(folder, os.W_OK):
        raise SinkError(f"snapshot target {target}: its folder is not writable")
    return ""


def clocks_path(snapshot: str) -> str:
    """Where the rest of the publisher's state (diff.state_clocks) goes beside a snapshot, which
    stays a file of ASSIGN events as the job reads it (kinesis.metadata_snapshot): `_<name>.state
    .json`, a name the job's file source leaves out of a snapshot folder (as Flink's does)."""
    folder, name = snapshot.rsplit("/", 1) if "/" in snapshot else ("", snapshot)
    return f"{folder}/_{name}.state.json" if folder else f"_{name}.state.json"


def snapshot_digest(body: bytes) -> str:
    """What ties a snapshot's clocks to it: they are written apart, and a stop between the two
    writes leaves the other one of another snapshot."""
    return hashlib.sha256(body).hexdigest()


def write_snapshot(events: list, target: str, s3_client_factory=None, clocks: dict = None) -> None:
    """All current owners (ASSIGN events) to a file (replaced atomically) or s3://bucket/key,
    and `clocks` (diff.state_clocks), if given, beside it (clocks_path)."""
    body = "".join(encode(e) + "\n" for e in events)
    if clocks is not None:
        _write_whole(json.dumps({**clocks, "snapshot_sha256": snapshot_digest(body.encode())}),
                     clocks_path(target), s3_client_factory)
    _write_whole(body, target, s3_client_factory)


def _write_whole(body: str, target: str, s3_client_factory) -> None:
    if s3.is_s3(target):
        bucket, key = _bucket_key(target)
        try:
            s3_client_factory().put_object(Bucket=bucket, Key=key, Body=body.encode("utf-8"),
                                           ContentType="application/x-ndjson")
        except (ClientError, BotoCoreError) as err:
            raise SinkError(f"cannot write snapshot {target}: {err}") from None
        return
    partial = target + ".partial"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with open(partial, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, target)
    except OSError as err:
        raise SinkError(f"cannot write snapshot {target}: {err.strerror}") from None
