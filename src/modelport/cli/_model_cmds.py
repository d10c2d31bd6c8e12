"""Commands on model folders: inspect, convert, normalize, tokenizer, tsfm-config."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from modelport.cli._base import (
    EXIT_FINDINGS,
    LOCAL,
    LOCATION,
    Output,
    cli,
    common,
    endpoint_option,
    handle_errors,
    human_bytes,
    store_of,
)
from modelport.convert.formats import options_help
from modelport.errors import InputError


@cli.command()
@click.argument("path", type=LOCATION)
@click.option("--allow-global", "allow_globals", multiple=True, metavar="MODULE.NAME",
              help="accept this pickle global as an inert record (never imported)")
@endpoint_option
@common
@handle_errors
def inspect(path: str | Path, allow_globals: tuple[str, ...], endpoint_url: str | None,
            as_json: bool, quiet: bool, debug: bool) -> None:
    """Describe a model folder, weight file or s3://bucket/prefix without loading tensor
    data (a bucket: ranged reads of the headers)."""
    from modelport.convert.inspect import inspect as run

    rep = run(path, allow_globals=allow_globals, store=store_of(endpoint_url))
    Output(as_json, quiet).result(rep, rep.summary())
    if not rep.ok:
        raise SystemExit(EXIT_FINDINGS)


@cli.command(epilog=options_help())
@click.argument("src", type=LOCATION)
@click.argument("dst", type=LOCATION)
@click.option("--max-shard-size", default="5GB", show_default=True,
              help="largest output shard (5GB, 512MiB, bytes)")
@click.option("--state-dict-key", default=None, help="where the tensors are, e.g. state_dict")
@click.option("--strip-prefix", default=None, help="remove this prefix from names, e.g. model.")
@click.option("--aliases", type=click.Choice(["dedupe", "copy"]), default="dedupe",
              show_default=True, help="tied weights: write once, or once per name")
@click.option("--allow-global", "allow_globals", multiple=True, metavar="MODULE.NAME",
              help="accept this pickle global as an inert record (never imported)")
@click.option("--weights", "zero_weights", type=click.Choice(["fp32", "module"]),
              default="fp32", show_default=True,
              help="DeepSpeed ZeRO: fp32 master weights, or the module's 16-bit weights")
@click.option("--rope-scaling-factor", type=float, default=None,
              help="Meta's original Llama 3.1+ layout whose params.json sets use_scaled_rope "
              "without a factor: 8 (Llama 3.1, 3.3) or 32 (Llama 3.2)")
@click.option("--no-verify", is_flag=True, help="skip re-reading and comparing the output")
@click.option("--overwrite", is_flag=True, help="replace DST if it exists")
@click.option("--dry-run", is_flag=True, help="print the plan; write nothing")
@endpoint_option
@common
@handle_errors
def convert(src: str | Path, dst: str | Path, max_shard_size: str, state_dict_key: str | None,
            strip_prefix: str | None, aliases: str, allow_globals: tuple[str, ...],
            zero_weights: str, rope_scaling_factor: float | None, no_verify: bool,
            overwrite: bool, dry_run: bool, endpoint_url: str | None, as_json: bool,
            quiet: bool, debug: bool) -> None:
    """Convert pickled (or safetensors) weights in SRC into verified safetensors in DST.
    SRC may be s3://bucket/prefix: Hugging Face weights by ranged reads (about one shard of
    local scratch space), another format downloaded whole first."""
    from modelport.convert.options import ConvertOptions

    try:
        opts = ConvertOptions(max_shard_size=max_shard_size, state_dict_key=state_dict_key,
                              strip_prefix=strip_prefix, aliases=aliases,
                              allow_globals=allow_globals, verify=not no_verify,
                              overwrite=overwrite, zero_weights=zero_weights,
                              rope_scaling_factor=rope_scaling_factor)
    except ValidationError as e:
        raise InputError("; ".join(x["msg"] for x in e.errors()),
                         hint="see modelport convert --help") from e
    out = Output(as_json, quiet)
    if dry_run:
        from modelport.convert.plan import plan_convert

        if isinstance(src, str) or isinstance(dst, str):
            raise InputError("--dry-run plans local folders only", hint="drop --dry-run, or "
                             "run modelport inspect on the URL")
        plan = plan_convert(src, dst, opts)
        plan.close()  # nothing is read past the headers
        entries, files = plan.skipped
        data = {
            "shards": [{"file": s.filename, "tensors": len(s.tensors), "bytes": s.nbytes}
                       for s in plan.shards],
            "aliases": plan.aliases, "overlapping_views": plan.overlapping,
            "copy_files": plan.side_files,
            "skipped_entries": [{"name": n, "reason": r} for n, r in entries],
            "skipped_files": [{"name": n, "reason": r} for n, r in files],
            "warnings": plan.warnings,
        }
        human = "\n".join([f"plan: {len(plan.shards)} shard(s), {human_bytes(plan.total_bytes)}"]
                          + [f"  {s.filename}: {len(s.tensors)} tensors, {human_bytes(s.nbytes)}"
                             for s in plan.shards]
                          + [f"  alias: {a} -> {b}" for a, b in plan.aliases.items()]
                          + [f"  warning: {w}" for w in plan.warnings])
        out.result(data, human)
        return
    from modelport.convert.checkpoint import convert as run

    rep = run(src, dst, opts, progress=out.progress, store=store_of(endpoint_url))
    out.result(rep, rep.summary())


@cli.command()
@click.argument("folder", type=LOCAL)
@click.option("--out", "out", type=LOCAL, default=None,
              help="write the normalized folder here (default mode)")
@click.option("--in-place", is_flag=True, help="change FOLDER itself, each file atomically")
@click.option("--dtype", type=click.Choice(["fp16", "bf16", "fp32"]), default=None,
              help="cast floating tensors (never integer, bool, fp8 or quantization tensors)")
@click.option("--on-overflow", type=click.Choice(["error", "clamp"]), default="error",
              show_default=True, help="values beyond the target range")
@click.option("--link", is_flag=True, help="hard-link unchanged files into --out")
@click.option("--no-insert-range", is_flag=True,
              help="in place, never grow headers with fallocate INSERT_RANGE")
@click.option("--no-verify", is_flag=True, help="skip data hashes and re-reads")
@click.option("--overwrite", is_flag=True, help="replace --out if it exists")
@click.option("--dry-run", is_flag=True, help="list what would change; write nothing")
@common
@handle_errors
def normalize(folder: Path, out: Path | None, in_place: bool, dtype: str | None,
              on_overflow: str, link: bool, no_insert_range: bool, no_verify: bool,
              overwrite: bool, dry_run: bool, as_json: bool, quiet: bool, debug: bool) -> None:
    """Give safetensors headers format=pt, cast dtypes, fix config.json and the index."""
    from modelport.cast.normalize import normalize as run
    from modelport.cast.options import NormalizeOptions

    opts = NormalizeOptions(dtype=dtype, on_overflow=on_overflow, in_place=in_place,
                            link=link, dry_run=dry_run, verify=not no_verify,
                            insert_range=not no_insert_range, overwrite=overwrite)
    rep = run(folder, out, opts)
    verb = "would change" if rep.dry_run else "changed"
    lines = [f"{rep.dir}: nothing to change" if not rep.changed else
             f"{rep.dir}: {verb} (in {rep.seconds:.2f} s)"]
    for r in rep.files:
        line = f"  {r.path}: {r.action}"
        if r.action != "unchanged" and r.metadata_before != r.metadata_after:
            line += f", metadata {r.metadata_before} -> {r.metadata_after}"
        if r.data_sha256_before:
            same = "unchanged" if r.data_sha256_before == r.data_sha256_after else "changed"
            line += f", data sha256 {r.data_sha256_before[:12]}… {same}"
        lines.append(line)
        for c in r.casts:
            if c.overflow or c.to_zero:
                lines.append(f"    {c.name}: {c.from_dtype}->{c.to_dtype} max|x| "
                             f"{c.max_abs:.4g}, {c.overflow} overflow"
                             f"{' (clamped)' if c.clamped and c.overflow else ''}, "
                             f"{c.to_zero} became zero")
        if r.casts:
            lines.append(f"    cast {len(r.casts)} tensor(s) to {r.casts[0].to_dtype}")
    lines += [f"  config.json {k}: {a!r} -> {b!r}" for k, (a, b) in rep.config_changes.items()]
    if rep.index != "none":
        lines.append(f"  index: {rep.index}")
    lines += [f"  recovered: {x}" for x in rep.recovered]
    Output(as_json, quiet).result(rep, "\n".join(lines))



@cli.command("tokenizer")
@click.argument("folder", type=LOCAL)
@click.option("--out", type=LOCAL, default=None,
              help="write a copy of FOLDER with tokenizer.json there (default: into FOLDER)")
@click.option("--family", default=None,
              help="the tokenizer class the model was trained with, when the files do not "
              "say it: llama, mistral, gemma, t5, albert, xlnet, deberta-v2, xlm-roberta, "
              "camembert, mbart, mbart50, nllb, roberta, bart, gpt2, codegen, qwen2, whisper, "
              "openai-gpt, bert, llama3, llama3.1, tekken (or a class name)")
@click.option("--accept-guess", is_flag=True, help="when the files do not state the class, "
              "take the first candidate (recorded in the report; never certified)")
@click.option("--corpus", type=click.Path(path_type=Path, exists=True), default=None,
              help="extra parity corpus: text lines, or JSONL with a 'text' field")
@click.option("--check", is_flag=True, help="only run the parity proof on the existing "
              "tokenizer.json")
@click.option("--accept-mismatch", is_flag=True, help="write even when lines differ from the "
              "class's reference")
@click.option("--overwrite", is_flag=True, help="replace an existing tokenizer.json / --out")
@common
@handle_errors
def tokenizer_cmd(folder: Path, out: Path | None, family: str | None, accept_guess: bool,
                  corpus: Path | None, check: bool, accept_mismatch: bool, overwrite: bool,
                  as_json: bool, quiet: bool, debug: bool) -> None:
    """Write tokenizer.json from slow tokenizer files, proven against the tokenizer class."""
    from modelport.tok.verb import TokenizerOptions, tokenizer

    rep = tokenizer(folder, out, TokenizerOptions(
        family=family, accept_guess=accept_guess, corpus=corpus, check=check,
        accept_mismatch=accept_mismatch, overwrite=overwrite))
    Output(as_json, quiet).result(rep, rep.summary())
    if check and rep.parity.mismatched:
        raise SystemExit(EXIT_FINDINGS)


@cli.command("merge")
@click.argument("base", type=LOCAL)
@click.argument("adapter", type=LOCAL)
@click.option("--out", type=LOCAL, required=True,
              help="folder for the merged full weights")
@click.option("--max-shard-size", default="5GB", show_default=True)
@click.option("--no-verify", is_flag=True, help="skip re-reading the written tensors")
@click.option("--overwrite", is_flag=True)
@common
@handle_errors
def merge_cmd(base: Path, adapter: Path, out: Path, max_shard_size: str, no_verify: bool,
              overwrite: bool, as_json: bool, quiet: bool, debug: bool) -> None:
    """Merge a PEFT LoRA ADAPTER into BASE: full safetensors weights, tensor by tensor."""
    from modelport.convert.lora import merge
    from modelport.convert.options import parse_size

    rep = merge(base, adapter, out, overwrite=overwrite, verify=not no_verify,
                max_shard_size=parse_size(max_shard_size))
    lines = [f"merged {rep.adapter} into {rep.base} -> {rep.out} ({rep.seconds:.1f} s)",
             f"  LoRA r={rep.r} alpha={rep.lora_alpha:g} scaling={rep.scaling:g}"
             + (" rsLoRA" if rep.use_rslora else "")
             + (" fan_in_fan_out" if rep.fan_in_fan_out else ""),
             f"  {len(rep.merged)} tensor(s) merged, {len(rep.replaced)} replaced by the "
             f"adapter's copy ({', '.join(rep.replaced) or 'none'}), {rep.tensors} in all"
             + (", every one re-read and compared" if rep.verified else "")]
    Output(as_json, quiet).result(rep, "\n".join(lines))


@cli.command("tsfm-config")
@click.argument("folder", type=LOCAL)
@click.option("--check", "check_only", is_flag=True, help="validate the existing file only")
@click.option("--min-context", type=int, default=None, help="minimum_context_length")
@click.option("--max-context", type=int, default=None, help="maximum_context_length")
@click.option("--max-prediction", type=int, default=None, help="maximum_prediction_length")
@click.option("--batch-size", type=int, default=16, show_default=True,
              help="inference_batch_size")
@click.option("--multivariate/--no-multivariate", default=True, show_default=True)
@click.option("--missing-values/--no-missing-values", default=False, show_default=True)
@click.option("--exogenous/--no-exogenous", default=False, show_default=True)
@click.option("--finetuned/--not-finetuned", default=None,
              help="default: true only when preprocessor_config.json is present")
@click.option("--overwrite", is_flag=True, help="replace an existing tsfm_config.json")
@common
@handle_errors
def tsfm_config(folder: Path, check_only: bool, min_context: int | None,
                max_context: int | None, max_prediction: int | None, batch_size: int,
                multivariate: bool, missing_values: bool, exogenous: bool,
                finetuned: bool | None, overwrite: bool, as_json: bool, quiet: bool,
                debug: bool) -> None:
    """Write (or --check) tsfm_config.json for a TinyTimeMixer model folder."""
    from modelport.tsfm import TsfmOptions
    from modelport.tsfm import tsfm_config as run

    try:
        opts = TsfmOptions(minimum_context_length=min_context,
                           maximum_context_length=max_context,
                           maximum_prediction_length=max_prediction,
                           inference_batch_size=batch_size, multivariate_support=multivariate,
                           missing_value_support=missing_values, exogenous_support=exogenous,
                           is_finetuned=finetuned, overwrite=overwrite)
    except ValidationError as e:
        raise InputError("; ".join(x["msg"] for x in e.errors())) from e
    rep = run(folder, opts, check_only=check_only)
    head = f"wrote {rep.path}" if rep.written else f"checked {rep.path}"
    lines = [head + (": OK" if rep.ok else f": {len(rep.findings)} finding(s)")]
    if rep.written:
        lines += [f"  {k}: {v}" for k, v in rep.config.items()]
    lines += [f"  {f.severity}: {f.key}: {f.message}" for f in rep.findings]
    Output(as_json, quiet).result(rep, "\n".join(lines))
    if not rep.ok:
        raise SystemExit(EXIT_FINDINGS)


