"""``modelport s3-server``: the embedded S3 server (SeaweedFS) the demo and tests use, for
trying uploads and ``s3://`` sources on one machine."""

from __future__ import annotations

import json
import signal
import tempfile
import threading
from pathlib import Path

import click

from modelport.cli._base import LOCAL, cli, handle_errors


@cli.command("s3-server")
@click.option("--dir", "data_dir", type=LOCAL, default=None,
              help="where the server keeps its data (default: a new temporary folder)")
@click.option("--bucket", default="models", show_default=True, help="the bucket it creates")
@click.option("--json", "as_json", is_flag=True, help="print the endpoint and keys as JSON")
@click.option("--debug", is_flag=True, help="show tracebacks")
@handle_errors
def s3_server(data_dir: Path | None, bucket: str, as_json: bool, debug: bool) -> None:
    """Start a local S3 server on free loopback ports and print what to export; Ctrl-C (or
    SIGTERM) stops it. Its keys are fixed throwaway keys for this loopback server only."""
    from modelport.package.localstore import LocalS3

    where = data_dir or Path(tempfile.mkdtemp(prefix="modelport-s3-"))
    server = LocalS3(where, bucket=bucket).start()
    env = {**server.env(), "AWS_ENDPOINT_URL": server.endpoint}
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if as_json:
            click.echo(json.dumps({"endpoint": server.endpoint, "bucket": bucket,
                                   "dir": str(where), "env": env}))
        else:
            click.echo(f"S3 server on {server.endpoint}, bucket {bucket}, data in {where}; "
                       "Ctrl-C stops it. In another shell:")
            click.echo("\n".join(f"export {k}={v}" for k, v in env.items()))
        while not stop.wait(0.5):
            if server.proc is not None and server.proc.poll() is not None:
                raise click.ClickException(f"the server stopped; see {where / 'weed.log'}")
    finally:
        server.stop()
