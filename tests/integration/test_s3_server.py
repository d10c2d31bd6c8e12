"""``modelport s3-server`` as a user runs it: a real server process, its printed endpoint and
keys work for an upload, and SIGINT stops it (the port closes, the process exits 0)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import modelport
from tests.conftest import st_folder

pytestmark = pytest.mark.s3
MODELPORT = str(Path(sys.executable).parent / "modelport")


def test_s3_server_prints_what_to_export_and_stops_on_sigint(tmp_path: Path) -> None:

    p = subprocess.Popen([MODELPORT, "s3-server", "--dir", str(tmp_path / "data"), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()  # type: ignore[union-attr]
        info = json.loads(line)
        env = info["env"]
        assert info["bucket"] == "models" and env["AWS_ENDPOINT_URL"] == info["endpoint"]
        modelport.package(st_folder(tmp_path / "m"), tmp_path / "b", force=True)
        # the exports are all a boto3 user needs: no --endpoint-url
        r = subprocess.run([MODELPORT, "upload", str(tmp_path / "b"), "s3://models/try"],
                           env={**os.environ, **env}, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        r = subprocess.run([MODELPORT, "verify", "s3://models/try"], env={**os.environ, **env},
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "all match" in r.stdout, r.stdout + r.stderr
        port = int(info["endpoint"].rsplit(":", 1)[1])
        p.send_signal(signal.SIGINT)
        assert p.wait(60) == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_port_taken_before_the_server_binds_it_gets_a_new_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process (a parallel test) takes a chosen port before weed binds it: the
    server starts on a new set instead of failing."""
    from modelport.package import localstore

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        sets: list[dict[str, int]] = []
        new = localstore.LocalS3._new_ports

        def first_has_the_taken_port() -> dict[str, int]:
            ports = new()
            if not sets:
                ports["s3.port"] = taken
            sets.append(ports)
            return ports

        monkeypatch.setattr(localstore.LocalS3, "_new_ports",
                            staticmethod(first_has_the_taken_port))
        with localstore.LocalS3(tmp_path / "s3") as s3:
            assert len(sets) == 2 and s3.ports["s3.port"] != taken
            assert s3._bucket_ready()
