"""The click group and the options every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from modelport._io.urls import local_path, location
from modelport._version import __version__
from modelport.cli._errors import EXIT_FINDINGS, handle_errors
from modelport.cli._output import Output, human_bytes
from modelport.errors import InputError

_common = [
    click.option("--json", "as_json", is_flag=True, help="print the report as JSON"),
    click.option("--quiet", "-q", is_flag=True, help="print nothing but errors"),
    click.option("--debug", is_flag=True, help="show tracebacks"),
]


class Refused:
    """A SRC/DST the parser refused; :func:`handle_errors` raises ``error`` when the command
    runs, so the refusal prints in one or two lines like every other error."""

    def __init__(self, error: InputError) -> None:
        self.refused_error = error


class _Where(click.ParamType):
    """A SRC or DST through the one parser (:func:`modelport._io.urls.location`): a store URL
    stays a ``str``, a local path becomes a ``Path``; ``local`` refuses store URLs."""

    name = "path"

    def __init__(self, local: bool) -> None:
        self.local = local

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        if isinstance(value, (Path, Refused)):
            return value
        what = (param.name or "path").upper() if param is not None else "path"
        try:
            return local_path(value, what=what) if self.local else location(value, what=what)
        except InputError as e:
            return Refused(e)


LOCATION = _Where(local=False)  # SRC or DST: a local path or a store URL
LOCAL = _Where(local=True)  # a folder this verb reads or writes on the local disk


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


__all__ = ["EXIT_FINDINGS", "LOCAL", "LOCATION", "Output", "Refused", "cli", "common",
           "endpoint_option", "handle_errors", "human_bytes", "store_of"]
