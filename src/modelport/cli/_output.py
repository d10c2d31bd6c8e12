"""One sink for CLI output: results to stdout (human or JSON), errors to stderr; every text
passes through the one redaction of secrets."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from modelport._io.redact import redact
from modelport._types import human_bytes  # noqa: F401 - the CLI's name for it


class Output:
    def __init__(self, as_json: bool, quiet: bool) -> None:
        self.as_json = as_json
        self.quiet = quiet

    def result(self, obj: Any, human: str) -> None:
        if self.as_json:
            data = obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj
            click.echo(redact(json.dumps(data, indent=2)))
        elif not self.quiet:
            click.echo(redact(human))

    @property
    def progress(self) -> bool | None:
        return False if (self.quiet or self.as_json) else None


def err(msg: str) -> None:
    click.echo(redact(msg), err=True, file=sys.stderr)
