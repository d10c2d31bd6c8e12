"""The click group and the options every command shares."""

from __future__ import annotations

import click

from modelport._version import __version__
from modelport.cli._errors import EXIT_FINDINGS, handle_errors
from modelport.cli._output import Output, human_bytes

_common = [
    click.option("--json", "as_json", is_flag=True, help="print the report as JSON"),
    click.option("--quiet", "-q", is_flag=True, help="print nothing but errors"),
    click.option("--debug", is_flag=True, help="show tracebacks"),
]


def common(fn):  # type: ignore[no-untyped-def]
    for opt in reversed(_common):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelport")
def cli() -> None:
    """Turn model checkpoints into folders that watsonx.ai, Databricks and OCI accept."""


__all__ = ["EXIT_FINDINGS", "Output", "cli", "common", "handle_errors", "human_bytes"]
