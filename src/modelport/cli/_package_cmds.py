"""Commands for targets and delivery: targets, check, package, upload, verify, prepare,
mlflow-log."""

from __future__ import annotations

from pathlib import Path

import click

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
from modelport.errors import InputError


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="print as JSON")
@click.pass_context
def targets(ctx: click.Context, as_json: bool) -> None:
    """List the import targets modelport knows (one rules file each)."""
    if ctx.invoked_subcommand is not None:
        return
    from modelport.package.rules import load_target, target_names

    rows = [load_target(t) for t in target_names()]
    Output(as_json, False).result(
        [{"target": r.target, "title": r.title, "specs": r.specs, "checks": len(r.checks)}
         for r in rows],
        "\n".join(f"{r.target:40s} {r.title} ({len(r.checks)} checks; specs: "
                  f"{', '.join(r.specs)})" for r in rows))


@targets.command("show")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="print the whole rules file as JSON")
@handle_errors
def targets_show(target: str, as_json: bool) -> None:
    """Print a target's rules, architectures, families and hardware table."""
    from modelport.package.rules import load_target

    r = load_target(target)
    specs = [s + (f" ({r.spec_names[s]})" if s in r.spec_names else "") for s in r.specs]
    lines = [f"{r.target}: {r.title}", f"specifications: {', '.join(specs)}", "checks:"]
    lines += [f"  {c.id} [{c.severity}{', unconfirmed' if c.unconfirmed else ''}] {c.message}"
              for c in r.checks]
    if r.architectures:
        lines.append("architectures:")
        lines += [f"  {a.model_type:14s} quant {','.join(a.quantization) or '-':6s} "
                  f"TP {'yes' if a.tensor_parallel else 'no ':3s} specs {', '.join(a.specs)}"
                  for a in r.architectures]
    if r.quant_formats:
        lines.append("quantization formats the runtime loads:")
        lines += [f"  {q.method}: bits {q.bits}, group sizes {q.group_sizes}, formats "
                  f"{q.formats}" + (f", sym {q.sym}" if q.sym is not None else "")
                  + (f", zero_point {q.zero_point}" if q.zero_point is not None else "")
                  for q in r.quant_formats]
    if r.families:
        lines.append("families:")
        lines += [f"  {f.name}: {', '.join(f.architectures)} ({f.capability})"
                  + "".join(f" {x.params_b:g}B: {x.shape}" for x in f.shapes)
                  for f in r.families]
    hw = r.hardware
    if hw.tiers:
        lines.append("hardware: " + ", ".join(f"{t.name} ≤ {t.max_params_b:g}B" for t in hw.tiers)
                     + f" at {hw.bytes_per_param:g} bytes a parameter"
                     + (f"; no tensor parallelism: {hw.no_tensor_parallel_tier} only"
                        if hw.no_tensor_parallel_tier else ""))
    if hw.units:
        lines.append("unit shapes (limit name, units to request, AI units):")
        lines += [f"  {u.name:12s} {u.limit} {u.units} {u.ai_units:g}" for u in hw.units]
    if hw.timeseries_concurrency:
        lines.append("time series, concurrent users per size (univariate length / "
                     "multivariate series x targets: " + ", ".join(hw.timeseries_sizes) + "):")
        lines += [f"  {row['univariate']} / {row['multivariate']}: "
                  + ", ".join(str(row[s]) for s in hw.timeseries_sizes)
                  for row in hw.timeseries_concurrency]
    lines.append("sources:")
    lines += [f"  {k}: {v.url} (read {v.retrieved})" for k, v in r.sources.items()]
    Output(as_json, False).result(r, "\n".join(lines))


@cli.command()
@click.argument("folder", type=LOCATION)
@click.option("--target", "-t", "target_names", multiple=True, default=("watsonx-saas",),
              show_default=True, help="import target (repeat for several; see `modelport targets`)")
@click.option("--spec", default=None, help="software specification, as the platform names it "
              "(watsonx-cfm-caikit-1.1) or short (caikit-1.1)")
@endpoint_option
@common
@handle_errors
def check(folder: str | Path, target_names: tuple[str, ...], spec: str | None,
          endpoint_url: str | None, as_json: bool, quiet: bool, debug: bool) -> None:
    """Will FOLDER (or s3://bucket/prefix) deploy on the target(s)? Exit 0: no errors,
    1: errors, 2: bad input."""
    from modelport.package.check import check as run

    rep = run(folder, list(target_names), spec=spec,
              store=store_of(endpoint_url))
    f = rep.facts
    lines = [f"{rep.path}: {f.model_type} {', '.join(f.architectures)}, "
             f"{f.parameters:,} parameters ({f.parameters / 1e9:.2f}B)"
             + (f", {f.quant_method} {f.quant_bits}-bit" if f.quant_method else "")]
    for t in rep.targets:
        spec = t.spec_name or t.spec
        lines.append(f"\n{t.target}{' (' + spec + ')' if spec else ''}: "
                     f"{'OK' if t.ok else 'FAIL'} — {t.errors} error(s), {t.warnings} warning(s)")
        for x in sorted(t.findings, key=lambda x: ("error", "warning", "info").index(x.severity)):
            where = f"{x.file}: " if x.file else ""
            lines.append(f"  {x.severity:7s} {x.rule_id}: {where}{x.message}"
                         + (f" ({x.detail})" if x.detail else "")
                         + (" [unconfirmed: not in the platform documentation]"
                            if x.unconfirmed else ""))
            if x.command:
                lines.append(f"          fix: {x.command}")
            elif x.fix:
                lines.append(f"          fix: {x.fix}")
        lines.append(f"  hardware: {t.hardware.recommendation}"
                     + (" [unconfirmed: not in the platform documentation]"
                        if t.hardware.unconfirmed else ""))
        lines += [f"    {n}" for n in t.hardware.notes]
    Output(as_json, quiet).result(rep, "\n".join(lines))
    if not rep.ok:
        raise SystemExit(EXIT_FINDINGS)



_store_options = [
    click.option("--endpoint-url", default=None, help="S3 endpoint (IBM COS, OCI, MinIO, ...)"),
    click.option("--region", default=None, help="S3 region"),
    click.option("--profile", default=None, help="profile in ~/.aws/credentials"),
    click.option("--concurrency", default=8, show_default=True, help="parts in flight"),
]


def store_options(fn):  # type: ignore[no-untyped-def]
    for opt in reversed(_store_options):
        fn = opt(fn)
    return fn


def _upload_options(endpoint_url: str | None, region: str | None, profile: str | None,
                    concurrency: int) -> object:
    from modelport.package.upload import UploadOptions

    return UploadOptions(endpoint_url=endpoint_url, region=region, profile=profile,
                         concurrency=concurrency)


def _manifest_lines(m: object) -> list[str]:
    return m.lines()  # type: ignore[attr-defined,no-any-return]


@cli.command("package")
@click.argument("folder", type=LOCAL)
@click.option("--target", "-t", "target_names", multiple=True, default=("watsonx-saas",),
              show_default=True)
@click.option("--out", type=LOCAL, required=True, help="bundle folder")
@click.option("--force", is_flag=True, help="package despite check errors (recorded)")
@click.option("--copy", is_flag=True, help="copy files instead of hard-linking them")
@click.option("--overwrite", is_flag=True)
@common
@handle_errors
def package_cmd(folder: Path, target_names: tuple[str, ...], out: Path, force: bool, copy: bool,
                overwrite: bool, as_json: bool, quiet: bool, debug: bool) -> None:
    """Check FOLDER for the targets and write a bundle with modelport.manifest.json."""
    from modelport.package.bundle import package

    m = package(folder, out, target_names, force=force, link=not copy, overwrite=overwrite)
    head = f"bundle {out}: {len(m.files)} files, {m.model.parameters:,} parameters"
    Output(as_json, quiet).result(m, "\n".join([head, *_manifest_lines(m)]))


@cli.command("upload")
@click.argument("bundle", type=LOCAL)
@click.argument("url", type=LOCATION)
@store_options
@common
@handle_errors
def upload_cmd(bundle: Path, url: str, endpoint_url: str | None, region: str | None,
               profile: str | None, concurrency: int, as_json: bool, quiet: bool,
               debug: bool) -> None:
    """Upload BUNDLE to s3://bucket/prefix: resumable, each object verified, manifest last."""
    from modelport.package.upload import upload

    rep = upload(bundle, url, _upload_options(endpoint_url, region, profile, concurrency),
                 progress=Output(as_json, quiet).progress)
    Output(as_json, quiet).result(rep, (
        f"uploaded {sum(o.status == 'uploaded' for o in rep.uploaded)} file(s), "
        f"{human_bytes(rep.bytes_sent)} in {rep.seconds:.2f} s ({rep.mib_per_s} MiB/s), the "
        f"manifest last; skipped {len(rep.skipped)} already there; aborted "
        f"{rep.aborted_multipart} unfinished multipart upload(s)"))


@cli.command("verify")
@click.argument("target", type=LOCATION)
@store_options
@common
@handle_errors
def verify_cmd(target: str | Path, endpoint_url: str | None, region: str | None,
               profile: str | None, concurrency: int, as_json: bool, quiet: bool,
               debug: bool) -> None:
    """Re-read a local bundle or s3:// bundle; every file against the manifest."""
    from modelport.package.upload import verify

    rep = verify(target, _upload_options(endpoint_url, region, profile, concurrency))
    lines = [f"{rep.target}: {rep.checked} file(s) checked, "
             + ("all match the manifest" if rep.ok else "MISMATCH")]
    lines += [f"  missing: {x}" for x in rep.missing]
    lines += [f"  changed: {x}" for x in rep.changed]
    lines += [f"  extra: {x}" for x in rep.extra]
    Output(as_json, quiet).result(rep, "\n".join(lines))
    if not rep.ok:
        raise SystemExit(EXIT_FINDINGS)


@cli.command("prepare")
@click.argument("src", type=LOCATION)
@click.option("--target", "-t", "target_names", multiple=True, default=("watsonx-saas",),
              show_default=True)
@click.option("--out", type=LOCAL, required=True, help="bundle folder")
@click.option("--upload", "upload_url", type=LOCATION, default=None,
              help="s3://bucket/prefix (or file://, gs://, ...) to upload to")
@click.option("--dtype", type=click.Choice(["fp16", "bf16", "fp32"]), default=None)
@click.option("--quantize", type=click.Choice(["gptq", "awq"]), default=None,
              help="add a verified 4-bit quantization (needs modelport[quantize])")
@click.option("--adapter", type=LOCAL, default=None,
              help="a PEFT LoRA adapter folder to merge into SRC first")
@click.option("--tokenizer-family", default=None, help="the tokenizer class, when the slow "
              "tokenizer files do not state it (see `modelport tokenizer --help`)")
@click.option("--accept-tokenizer-guess", is_flag=True, help="take the first candidate class "
              "(recorded in the manifest)")
@click.option("--serve-check", is_flag=True, help="serve the bundle with vLLM before any "
              "upload and compare its greedy tokens with transformers' (modelport serve-check)")
@click.option("--serve-python", type=LOCAL, default=None,
              help="the python of a venv with vLLM, for --serve-check")
@click.option("--force", is_flag=True)
@click.option("--overwrite", is_flag=True)
@store_options
@common
@handle_errors
def prepare_cmd(src: str | Path, target_names: tuple[str, ...], out: Path, upload_url: str | None,
                dtype: str | None, quantize: str | None, adapter: Path | None,
                tokenizer_family: str | None,
                accept_tokenizer_guess: bool, serve_check: bool, serve_python: Path | None,
                force: bool, overwrite: bool,
                endpoint_url: str | None,
                region: str | None, profile: str | None, concurrency: int, as_json: bool,
                quiet: bool, debug: bool) -> None:
    """SRC (a folder, a file or s3://bucket/prefix) to a verified bundle: convert, normalize,
    tokenizer, tsfm-config, quantize (when asked), check, package, upload, verify; each step
    only when needed. --endpoint-url, --region and --profile serve both s3:// ends."""
    from modelport.pipeline.prepare import prepare

    o = Output(as_json, quiet)
    rep = prepare(src, out, target_names, upload_url=upload_url, dtype=dtype,
                  force=force, store={"endpoint_url": endpoint_url, "region": region,
                                      "profile": profile},
                  overwrite=overwrite, progress=o.progress, quantize=quantize,
                  tokenizer_family=tokenizer_family,
                  accept_tokenizer_guess=accept_tokenizer_guess, adapter=adapter,
                  serve_check=serve_check, serve_python=serve_python,
                  upload_options=_upload_options(endpoint_url, region, profile,  # type: ignore[arg-type]
                                                 concurrency))
    o.result(rep, rep.summary())
    if rep.verify and not rep.verify.ok:
        raise SystemExit(EXIT_FINDINGS)


@cli.command("check-data")
@click.argument("src")
@click.option("--target", "-t", default="databricks", show_default=True,
              help="whose fine-tuning rules (Databricks foundation model fine-tuning)")
@click.option("--model", "model", type=LOCAL, default=None,
              help="model folder with tokenizer.json (exact token counts) and config.json")
@click.option("--context-length", type=int, default=None,
              help="tokens in one context (default: the model's, else 131072)")
@click.option("--endpoint-url", default=None, help="S3-compatible endpoint for s3:// sources")
@click.option("--base-model", default=None, metavar="HF_ID",
              help="the model to fine-tune, held to the page's supported and retired models "
              "(default: --model's _name_or_path)")
@click.option("--task", type=click.Choice(["auto", "chat", "instruction", "pretraining"]),
              default="auto", show_default=True,
              help="pretraining: a folder of text files for continued pre-training")
@common
@handle_errors
def check_data_cmd(src: str, target: str, model: Path | None, context_length: int | None,
                   endpoint_url: str | None, base_model: str | None, task: str, as_json: bool,
                   quiet: bool, debug: bool) -> None:
    """Check fine-tuning data: chat or instruction JSONL (FILE, a folder of .jsonl,
    s3://bucket/prefix, dbfs:/Volumes/...), or text files for continued pre-training."""
    from modelport.package.data_check import check_data

    rep = check_data(src, target, model=model, endpoint_url=endpoint_url,
                     context_length=context_length, base_model=base_model,
                     task=task)  # type: ignore[arg-type]
    tokens = (f"{rep.tokens:,} tokens" if rep.tokens is not None
              else f"~{rep.tokens_estimated:,} tokens (estimated; --model counts them)")
    lines = [f"{'OK' if rep.ok else 'FAIL'}: {rep.format} data, {rep.examples:,} valid of "
             f"{rep.lines:,} lines, {human_bytes(rep.bytes)}, {tokens}, context "
             f"{rep.context_length:,} ({rep.seconds:.1f} s)"]
    for f in rep.findings:
        lines.append(f"  {f.severity:7s} {f.kind}: {f.message} ({f.count}x; "
                     f"{', '.join(f.lines)}{', ...' if f.count > len(f.lines) else ''})")
    Output(as_json, quiet).result(rep, "\n".join(lines))
    if not rep.ok:
        raise SystemExit(EXIT_FINDINGS)


@cli.command("mlflow-log")
@click.argument("folder", type=LOCAL)
@click.option("--task", type=click.Choice(["llm/v1/chat", "llm/v1/completions",
                                           "llm/v1/embeddings"]),
              default="llm/v1/completions", show_default=True)
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (e.g. databricks)")
@click.option("--registered-model-name", default=None, help="catalog.schema.model")
@click.option("--trust-remote-code", is_flag=True, help="run the model folder's own Python "
              "code (auto_map) to load it; only for code you have read (recorded)")
@click.option("--metadata", "metadata", multiple=True, metavar="KEY=VALUE",
              help="a key of the logged model's metadata (repeatable; embedding models on "
              "Databricks need model_type, e.g. model_type=gte-large)")
@common
@handle_errors
def mlflow_log_cmd(folder: Path, task: str, tracking_uri: str | None,
                   registered_model_name: str | None, trust_remote_code: bool,
                   metadata: tuple[str, ...], as_json: bool, quiet: bool, debug: bool) -> None:
    """Databricks: log FOLDER as an MLflow transformers model with its weights and task
    (MLflow 2.11+ or 3.x)."""
    from modelport.package.mlflow_log import log_mlflow

    meta = {}
    for kv in metadata:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise InputError(f"--metadata {kv!r} is not KEY=VALUE", hint="e.g. --metadata "
                             "model_type=gte-large")
        meta[key] = value
    rep = log_mlflow(folder, task, tracking_uri=tracking_uri,  # type: ignore[arg-type]
                     registered_model_name=registered_model_name, metadata=meta or None,
                     trust_remote_code=trust_remote_code)
    Output(as_json, quiet).result(rep, f"logged {folder} as {rep.model_uri} (run {rep.run_id},"
                                       f" task {rep.task}, {rep.dtype}, MLflow "
                                       f"{rep.mlflow_version})")


