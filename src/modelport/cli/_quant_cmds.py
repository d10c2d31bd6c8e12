"""The quantize command."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from modelport.cli._base import LOCAL, Output, cli, common, handle_errors, human_bytes
from modelport.errors import InputError


@cli.command()
@click.argument("src", type=LOCAL)
@click.option("--out", "dst", type=LOCAL, required=True,
              help="the quantized folder to write")
@click.option("--method", type=click.Choice(["gptq", "awq"]), default="gptq", show_default=True)
@click.option("--bits", type=int, default=4, show_default=True, help="4 or 8 (GPTQ), 4 (AWQ)")
@click.option("--group-size", type=int, default=128, show_default=True,
              help="-1 or 32..1024, a power of two")
@click.option("--desc-act", is_flag=True, help="GPTQ act-order (slower kernels)")
@click.option("--asym", is_flag=True, default=None,
              help="asymmetric GPTQ (vLLM refuses it; AWQ is always zero-point)")
@click.option("--calibration", default="builtin", show_default=True,
              help="'builtin' or a text / JSONL file ('text' field)")
@click.option("--samples", type=int, default=128, show_default=True,
              help="calibration windows at most")
@click.option("--seqlen", type=int, default=512, show_default=True,
              help="tokens per calibration window at most")
@click.option("--target", default=None, help="refuse formats this target does not load, "
              "then check the output for it")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N")
@click.option("--no-logit-check", is_flag=True,
              help="skip comparing the dequantized model's logits with the original")
@click.option("--no-memory-check", is_flag=True, help="do not refuse on the memory estimate")
@click.option("--max-weight-error", type=float, default=None,
              help="refuse when the mean relative weight error passes this "
              "(default 0.3 at 4 bits, 0.05 at 8)")
@click.option("--max-logit-error", type=float, default=None,
              help="refuse when the relative logit error passes this (default 1.0)")
@click.option("--trust-remote-code", is_flag=True, help="run the model folder's own Python "
              "code (auto_map) to load it; only for code you have read (recorded)")
@click.option("--overwrite", is_flag=True, help="replace --out if it exists")
@common
@handle_errors
def quantize(src: Path, dst: Path, method: str, bits: int, group_size: int, desc_act: bool,
             asym: bool | None, calibration: str, samples: int, seqlen: int,
             target: str | None, device: str, no_logit_check: bool, no_memory_check: bool,
             max_weight_error: float | None, max_logit_error: float | None,
             trust_remote_code: bool, overwrite: bool, as_json: bool, quiet: bool,
             debug: bool) -> None:
    """Quantize SRC to 4-bit GPTQ (v1) or AWQ (GEMM), verified, for TGI / vLLM runtimes."""
    from modelport.quantize.options import QuantizeOptions

    try:
        opts = QuantizeOptions(
            method=method, bits=bits, group_size=group_size, desc_act=desc_act,  # type: ignore[arg-type]
            sym=None if not asym else False, calibration=calibration, samples=samples,
            seqlen=seqlen, target=target, device=device,
            verify_logits=False if no_logit_check else None,
            memory_check=not no_memory_check, overwrite=overwrite,
            max_weight_error=max_weight_error, max_logit_error=max_logit_error,
            trust_remote_code=trust_remote_code)
    except ValidationError as e:
        raise InputError("; ".join(x["msg"] for x in e.errors()),
                         hint="see modelport quantize --help") from e
    out = Output(as_json, quiet)
    from modelport.pipeline.quantize import quantize as run

    rep = run(src, dst, opts, progress=out.progress)
    c = rep.calibration
    lines = [
        f"quantized {rep.model_type} ({rep.parameters:,} parameters) to {rep.method} "
        f"{rep.bits}-bit g{rep.group_size} {'sym' if rep.sym else 'asym'} "
        f"({rep.checkpoint_format}) on {rep.device} in {rep.quantize_seconds:.1f} s, "
        f"peak RSS {human_bytes(rep.peak_rss_bytes)}"
        + (f", peak GPU {human_bytes(rep.peak_gpu_bytes)}" if rep.peak_gpu_bytes else ""),
        f"  calibration: {c.samples} windows, {c.tokens} tokens from {c.source}",
        f"  weights {human_bytes(rep.bytes_in)} -> {human_bytes(rep.bytes_out)}; "
        f"{len(rep.layers)} layers verified against the spec, weight error mean "
        f"{rep.mean_weight_error:.4f} max {rep.max_weight_error:.4f}"
        + (f", logit error {rep.logit_error:.4f}" if rep.logit_error is not None else ""),
    ]
    if rep.target:
        lines.append(f"  check {rep.target}: {rep.target_errors} error(s), "
                     f"{rep.target_warnings} warning(s)")
    lines.append(f"  report: {rep.dst}/.modelport/quantize.json")
    out.result(rep, "\n".join(lines))
