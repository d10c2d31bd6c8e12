"""``modelport serve-check``: serve a bundle with vLLM and compare its greedy tokens with
transformers'."""

from __future__ import annotations

from pathlib import Path

import click

from modelport.cli._base import EXIT_FINDINGS, LOCAL, Output, cli, common, handle_errors


@cli.command("serve-check")
@click.argument("bundle", type=LOCAL)
@click.option("--python", "python", type=LOCAL, default=None,
              help="the python of a venv with vLLM (default: this one when it imports vllm, "
                   "else .venv-serve)")
@click.option("--prompts", "prompts_file", type=LOCAL, default=None,
              help="a text file, one prompt a line (default: three lines of the tokenizer "
                   "proof corpus)")
@click.option("--max-tokens", type=click.IntRange(1, 512), default=16, show_default=True,
              help="greedy tokens generated per prompt")
@common
@handle_errors
def serve_check_cmd(bundle: Path, python: Path | None, prompts_file: Path | None,
                    max_tokens: int, as_json: bool, quiet: bool, debug: bool) -> None:
    """Serve BUNDLE with vLLM (the engine watsonx.ai and OCI run) and compare its greedy tokens
    with transformers'. Exit 0: all agree; 1: the first differing prompt and position; 2: vLLM
    refuses the bundle (its reason). A bundle's manifest records the result."""
    from modelport.errors import InputError
    from modelport.package.serve_check import record, serve_check

    prompts = None
    if prompts_file is not None:
        try:
            prompts = [x for x in prompts_file.read_text(encoding="utf-8").splitlines() if x]
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the prompts ({e})", path=prompts_file) from e
        if not prompts:
            raise InputError("no prompts in the file", path=prompts_file,
                             hint="one prompt a line")
    rep = serve_check(bundle, python=python, prompts=prompts, max_tokens=max_tokens)
    recorded = record(bundle, rep)
    Output(as_json, quiet).result(rep, rep.summary() + (
        "\n  recorded in modelport.manifest.json" if recorded else ""))
    if not rep.ok:
        raise SystemExit(EXIT_FINDINGS)
