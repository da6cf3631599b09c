"""The local Kinesis API server (npm kinesis-local, installed by scripts/setup into .tools/): a
real Kinesis API over HTTP on 127.0.0.1, for the streaming demo and the tests."""
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(ROOT, ".tools", "kinesis-local", "node_modules", "kinesis-local")


class LocalKinesisError(RuntimeError):
    pass


def check_installed() -> None:
    """scripts/setup installs kinesis-local only where npm is, and warns otherwise."""
    if not os.path.isfile(os.path.join(SERVER, "main.js")):
        raise LocalKinesisError(f"kinesis-local is not installed in {os.path.dirname(SERVER)}: "
                                f"install Node.js with npm, then run scripts/setup")
    if shutil.which("node") is None:
        raise LocalKinesisError("kinesis-local needs Node.js: no `node` on the PATH")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalKinesis:
    """Started by start(); `endpoint` is its plain-HTTP URL on 127.0.0.1."""
    log_path: str
    process: subprocess.Popen = None
    endpoint: str = ""
    tls_endpoint: str = ""   # the same server over TLS, with kinesis-local's own certificate

    def start(self, timeout_s: float = 30) -> "LocalKinesis":
        check_installed()
        main = os.path.join(SERVER, "main.js")
        plain, tls = free_port(), free_port()
        os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                # A larger young generation halves the server's CPU per megabyte: it
                # handles every byte as a short-lived object (docs/performance.md).
                ["node", "--max-semi-space-size=64", main], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "KINESIS_MOCK_PLAIN_PORT": str(plain),
                     "KINESIS_MOCK_TLS_PORT": str(tls),
                     "KINESIS_MOCK_CERT_PATH": os.path.join(SERVER, "server.json"),
                     # Streams are created at once and shards merged or split at once (a
                     # reshard in a test must not wait for AWS's minutes).
                     "CREATE_STREAM_DURATION": "50ms", "DELETE_STREAM_DURATION": "50ms",
                     "UPDATE_SHARD_COUNT_DURATION": "50ms", "MERGE_SHARDS_DURATION": "50ms",
                     "SPLIT_SHARD_DURATION": "50ms", "LOG_LEVEL": "WARN"})
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise LocalKinesisError(f"kinesis-local exited with {self.process.returncode}; "
                                        f"see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", plain), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise LocalKinesisError(f"kinesis-local did not listen within {timeout_s} s")
                time.sleep(0.2)
        self.endpoint = f"http://127.0.0.1:{plain}"
        self.tls_endpoint = f"https://127.0.0.1:{tls}"
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
