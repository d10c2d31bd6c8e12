"""The click group and the options every command shares."""

from __future__ import annotations

from pathlib import Path

import click

from modelport._version import __version__
from modelport.cli._errors import EXIT_FINDINGS, handle_errors
from modelport.cli._output import Output, human_bytes

_common = [
    click.option("--json", "as_json", is_flag=True, help="print the report as JSON"),
    click.option("--quiet", "-q", is_flag=True, help="print nothing but errors"),
    click.option("--debug", is_flag=True, help="show tracebacks"),
]


def source_path(value: str) -> str | Path:
    """A local path, or a URL (``s3://``, ``gs://``, ...) kept as it is (``Path`` would fold
    its ``//``)."""
    return value if "://" in value else Path(value)


endpoint_option = click.option(
    "--endpoint-url", default=None,
    help="S3 endpoint for s3:// sources (IBM COS, OCI, MinIO, ...); or AWS_ENDPOINT_URL")


def store_of(endpoint_url: str | None) -> dict[str, str | None]:
    return {"endpoint_url": endpoint_url}


def common(fn):  # type: ignore[no-untyped-def]
    for opt in reversed(_common):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelport")
def cli() -> None:
    """Turn model checkpoints into folders that watsonx.ai, Databricks and OCI accept."""


__all__ = ["EXIT_FINDINGS", "Output", "cli", "common", "endpoint_option", "handle_errors",
           "human_bytes", "source_path", "store_of"]
