"""The ``modelport`` command: flags in, library call, output rendered. No other logic."""

from __future__ import annotations

from modelport.cli import (  # noqa: F401 - they register
    _model_cmds,
    _package_cmds,
    _quant_cmds,
    _serve_cmds,
    _store_cmds,
)
from modelport.cli._base import cli


def main() -> None:
    cli(prog_name="modelport")


if __name__ == "__main__":
    main()
