"""The ``modelport`` command: flags in, library call, output rendered. No other logic."""

from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from modelport import __version__
from modelport.cli._errors import EXIT_FINDINGS, handle_errors
from modelport.cli._output import Output, human_bytes
from modelport.errors import InputError

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


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--allow-global", "allow_globals", multiple=True, metavar="MODULE.NAME",
              help="accept this pickle global as an inert record (never imported)")
@common
@handle_errors
def inspect(path: Path, allow_globals: tuple[str, ...], as_json: bool, quiet: bool,
            debug: bool) -> None:
    """Describe a model folder or weight file without loading tensor data."""
    from modelport.convert.inspect import inspect as run

    rep = run(path, allow_globals=allow_globals)
    lines = [f"{rep.path} ({rep.kind})"]
    if rep.config:
        c = rep.config
        lines.append(f"  model_type {c.model_type}  architectures {', '.join(c.architectures)}"
                     + (f"  dtype {c.torch_dtype}" if c.torch_dtype else "")
                     + (f"  quantization {c.quantization}" if c.quantization else ""))
    for w in rep.weight_files:
        meta = ""
        if w.format == "safetensors":
            meta = f"  metadata format={w.metadata_format}" if w.has_metadata else "  no metadata"
        extra = f"  aliases {w.aliases}" if w.aliases else ""
        key = f"  under {w.state_dict_key!r}" if w.state_dict_key else ""
        lines.append(f"  {w.path}: {w.format}, {w.tensors} tensors, {w.parameters:,} params, "
                     f"{human_bytes(w.size)}{meta}{extra}{key}")
    for ix in rep.indexes:
        lines.append(f"  {ix.path}: {ix.tensors} tensors in {len(ix.files)} file(s), "
                     f"{'consistent' if ix.consistent else 'INCONSISTENT'}")
    lines.append(f"  total: {rep.tensors} tensors, {rep.parameters:,} parameters, "
                 f"{human_bytes(rep.weight_bytes)}, dtypes "
                 + ", ".join(f"{d}×{n}" for d, n in sorted(rep.dtypes.items())))
    if rep.tokenizer_files:
        lines.append(f"  tokenizer files: {', '.join(rep.tokenizer_files)}")
    for p in rep.problems:
        lines.append(f"  {p.severity}: {p.file + ': ' if p.file else ''}{p.message}")
    Output(as_json, quiet).result(rep, "\n".join(lines))
    if not rep.ok:
        raise SystemExit(EXIT_FINDINGS)


@cli.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--max-shard-size", default="5GB", show_default=True,
              help="largest output shard (5GB, 512MiB, bytes)")
@click.option("--state-dict-key", default=None, help="where the tensors are, e.g. state_dict")
@click.option("--strip-prefix", default=None, help="remove this prefix from names, e.g. model.")
@click.option("--aliases", type=click.Choice(["dedupe", "copy"]), default="dedupe",
              show_default=True, help="tied weights: write once, or once per name")
@click.option("--allow-global", "allow_globals", multiple=True, metavar="MODULE.NAME",
              help="accept this pickle global as an inert record (never imported)")
@click.option("--no-verify", is_flag=True, help="skip re-reading and comparing the output")
@click.option("--overwrite", is_flag=True, help="replace DST if it exists")
@click.option("--dry-run", is_flag=True, help="print the plan; write nothing")
@common
@handle_errors
def convert(src: Path, dst: Path, max_shard_size: str, state_dict_key: str | None,
            strip_prefix: str | None, aliases: str, allow_globals: tuple[str, ...],
            no_verify: bool, overwrite: bool, dry_run: bool, as_json: bool, quiet: bool,
            debug: bool) -> None:
    """Convert pickled (or safetensors) weights in SRC into verified safetensors in DST."""
    from modelport.convert.options import ConvertOptions

    try:
        opts = ConvertOptions(max_shard_bytes=max_shard_size, state_dict_key=state_dict_key,
                              strip_prefix=strip_prefix, aliases=aliases,
                              allow_globals=allow_globals, verify=not no_verify,
                              overwrite=overwrite)
    except ValidationError as e:
        raise InputError("; ".join(x["msg"] for x in e.errors()),
                         hint="see modelport convert --help") from e
    out = Output(as_json, quiet)
    if dry_run:
        from modelport.convert.plan import plan_convert

        plan = plan_convert(src, dst, opts)
        data = {
            "shards": [{"file": s.filename, "tensors": len(s.tensors), "bytes": s.nbytes}
                       for s in plan.shards],
            "aliases": plan.aliases, "overlapping_views": plan.overlapping,
            "copy_files": plan.source.copy_files,
            "skipped_entries": [vars(s) for s in plan.source.skipped_entries],
            "skipped_files": [vars(s) for s in plan.source.skipped_files],
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

    rep = run(src, dst, opts, progress=out.progress)
    rate = rep.total_bytes / rep.seconds if rep.seconds else 0.0
    lines = [
        f"converted {rep.tensors_in} tensors ({rep.parameters:,} parameters, "
        f"{human_bytes(rep.total_bytes)}) from {', '.join(sorted({i.format for i in rep.inputs}))}"
        f" in {rep.seconds:.2f} s ({human_bytes(rate)}/s)"
        + (f", verified in {rep.verify_seconds:.2f} s" if rep.verified else ", NOT verified"),
    ]
    lines += [f"  {o.path}  {human_bytes(o.size)}  sha256 {o.sha256[:16]}…" for o in rep.outputs]
    lines += [f"  alias: {a} -> {b} (written once)" for a, b in rep.aliases.items()]
    lines += [f"  overlapping views written as copies: {', '.join(g)}"
              for g in rep.overlapping_views]
    lines += [f"  skipped {s.name}: {s.reason}" for s in rep.skipped_entries[:20]]
    if len(rep.skipped_entries) > 20:
        lines.append(f"  ... {len(rep.skipped_entries) - 20} more skipped entries (--json)")
    lines += [f"  not copied {s.name}: {s.reason}" for s in rep.skipped_files]
    lines += [f"  warning: {w}" for w in rep.warnings]
    out.result(rep, "\n".join(lines))


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
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
    from modelport.convert.normalize import normalize as run
    from modelport.convert.options import NormalizeOptions

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
    lines = [f"{r.target}: {r.title}", f"specifications: {', '.join(r.specs)}", "checks:"]
    lines += [f"  {c.id} [{c.severity}{', unconfirmed' if c.unconfirmed else ''}] {c.message}"
              for c in r.checks]
    if r.architectures:
        lines.append("architectures:")
        lines += [f"  {a.model_type:14s} quant {','.join(a.quantization) or '-':6s} "
                  f"TP {'yes' if a.tensor_parallel else 'no ':3s} specs {', '.join(a.specs)}"
                  for a in r.architectures]
    if r.families:
        lines.append("families:")
        lines += [f"  {f.name}: {', '.join(f.architectures)} ({f.capability})"
                  + (f" {f.shape}" if f.shape else "") for f in r.families]
    lines.append("sources:")
    lines += [f"  {k}: {v.url} (read {v.retrieved})" for k, v in r.sources.items()]
    Output(as_json, False).result(r, "\n".join(lines))


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--target", "-t", "target_names", multiple=True, default=("watsonx-saas",),
              show_default=True, help="import target (repeat for several; see `modelport targets`)")
@click.option("--spec", default=None, help="software specification, e.g. caikit-1.0")
@common
@handle_errors
def check(folder: Path, target_names: tuple[str, ...], spec: str | None, as_json: bool,
          quiet: bool, debug: bool) -> None:
    """Will FOLDER deploy on the target(s)? Exit 0: no errors, 1: errors, 2: bad input."""
    from modelport.package.check import check as run

    rep = run(folder, list(target_names), spec=spec)
    f = rep.facts
    lines = [f"{rep.path}: {f.model_type} {', '.join(f.architectures)}, "
             f"{f.parameters / 1e9:.2f}B parameters"
             + (f", {f.quant_method} {f.quant_bits}-bit" if f.quant_method else "")]
    for t in rep.targets:
        lines.append(f"\n{t.target}{' (' + t.spec + ')' if t.spec else ''}: "
                     f"{'OK' if t.ok else 'FAIL'} — {t.errors} error(s), {t.warnings} warning(s)")
        for x in sorted(t.findings, key=lambda x: ("error", "warning", "info").index(x.severity)):
            where = f"{x.file}: " if x.file else ""
            lines.append(f"  {x.severity:7s} {x.rule_id}: {where}{x.message}"
                         + (f" ({x.detail})" if x.detail else "")
                         + (" [unconfirmed]" if x.unconfirmed else ""))
            if x.command:
                lines.append(f"          fix: {x.command}")
            elif x.fix:
                lines.append(f"          fix: {x.fix}")
        lines.append(f"  hardware: {t.hardware.recommendation}"
                     + (" [unconfirmed]" if t.hardware.unconfirmed else ""))
    Output(as_json, quiet).result(rep, "\n".join(lines))
    if not rep.ok:
        raise SystemExit(EXIT_FINDINGS)


@cli.command("tokenizer")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="write a copy of FOLDER with tokenizer.json there (default: into FOLDER)")
@click.option("--family", default=None,
              help="override the detected family: llama, t5, gpt2, roberta, qwen2, bert")
@click.option("--corpus", type=click.Path(path_type=Path, exists=True), default=None,
              help="extra parity corpus: text lines, or JSONL with a 'text' field")
@click.option("--check", is_flag=True, help="only run the parity proof on the existing "
              "tokenizer.json")
@click.option("--accept-mismatch", is_flag=True, help="write even below 100% parity")
@click.option("--overwrite", is_flag=True, help="replace an existing tokenizer.json / --out")
@common
@handle_errors
def tokenizer_cmd(folder: Path, out: Path | None, family: str | None, corpus: Path | None,
                  check: bool, accept_mismatch: bool, overwrite: bool, as_json: bool,
                  quiet: bool, debug: bool) -> None:
    """Synthesize tokenizer.json from slow tokenizer files, proven against a reference."""
    from modelport.convert.tokenizer import TokenizerOptions, tokenizer

    rep = tokenizer(folder, out, TokenizerOptions(family=family, corpus=corpus, check=check,
                                                  accept_mismatch=accept_mismatch,
                                                  overwrite=overwrite))
    p = rep.parity
    verb = "checked" if check else ("wrote" if rep.written else "did not write")
    lines = [f"{verb} tokenizer.json for {rep.out or rep.folder}: {rep.reason}",
             f"  parity vs {p.reference}: {p.matched}/{p.examples} ({p.rate:.1%}) ids identical"
             + (f", decode {p.decode_matched}/{p.decode_checked}" if p.decode_checked else ""),
             f"  vocabulary {rep.vocab_size}, post-processor {rep.post_processor}"
             + (f"; transformers AutoTokenizer on the written files: "
                f"{rep.transformers_matched}/{p.examples} identical"
                if rep.transformers_matched is not None else ""),
             f"  special tokens: {', '.join(f'{k}={v}' for k, v in rep.special_tokens.items())}"]
    lines += [f"  note: {n}" for n in rep.notes]
    lines += [f"  mismatch: {m.text[:60]!r}: expected {m.expected[:8]}, got {m.got[:8]}"
              for m in p.first_mismatches]
    Output(as_json, quiet).result(rep, "\n".join(lines))
    if check and p.rate < 1.0:
        raise SystemExit(EXIT_FINDINGS)


@cli.command("tsfm-config")
@click.argument("folder", type=click.Path(path_type=Path))
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
    from modelport.convert.tsfm import TsfmOptions
    from modelport.convert.tsfm import tsfm_config as run

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
    lines = [f"  {f.path}  {human_bytes(f.size)}  {f.role}  sha256 {f.sha256[:16]}…"  # type: ignore[attr-defined]
             for f in m.files]  # type: ignore[attr-defined]
    for t in m.targets:  # type: ignore[attr-defined]
        lines.append(f"  {t.target}: {'OK' if t.ok else 'FAIL'} ({t.errors} errors, "
                     f"{t.warnings} warnings); hardware: {t.hardware['recommendation']}")
    return lines


@cli.command("package")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--target", "-t", "target_names", multiple=True, default=("watsonx-saas",),
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="bundle folder")
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
@click.argument("bundle", type=click.Path(path_type=Path))
@click.argument("url")
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
        f"uploaded {len(rep.uploaded)} object(s), {human_bytes(rep.bytes_sent)} in "
        f"{rep.seconds:.2f} s ({rep.mib_per_s} MiB/s); skipped {len(rep.skipped)} already "
        f"there; aborted {rep.aborted_multipart} unfinished multipart upload(s)"))


@cli.command("verify")
@click.argument("target")
@store_options
@common
@handle_errors
def verify_cmd(target: str, endpoint_url: str | None, region: str | None, profile: str | None,
               concurrency: int, as_json: bool, quiet: bool, debug: bool) -> None:
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
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--target", "-t", "target_names", multiple=True, default=("watsonx-saas",),
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="bundle folder")
@click.option("--upload", "upload_url", default=None, help="s3://bucket/prefix to upload to")
@click.option("--dtype", type=click.Choice(["fp16", "bf16", "fp32"]), default=None)
@click.option("--force", is_flag=True)
@click.option("--overwrite", is_flag=True)
@store_options
@common
@handle_errors
def prepare_cmd(src: Path, target_names: tuple[str, ...], out: Path, upload_url: str | None,
                dtype: str | None, force: bool, overwrite: bool, endpoint_url: str | None,
                region: str | None, profile: str | None, concurrency: int, as_json: bool,
                quiet: bool, debug: bool) -> None:
    """SRC to a verified bundle: convert, tokenizer, tsfm-config, normalize, check, package,
    upload, verify; each step only when needed."""
    from modelport.package.prepare import prepare

    o = Output(as_json, quiet)
    rep = prepare(src, out, target_names, upload_url=upload_url, dtype=dtype, force=force,
                  overwrite=overwrite, progress=o.progress,
                  upload_options=_upload_options(endpoint_url, region, profile,  # type: ignore[arg-type]
                                                 concurrency))
    lines = [f"prepared {rep.out} from {rep.src}"]
    lines += [f"  {s.verb:12s} {s.status:7s} {s.detail}" for s in rep.steps]
    lines += _manifest_lines(rep.manifest)
    if rep.upload:
        lines.append(f"  upload       {len(rep.upload.uploaded)} object(s), "
                     f"{human_bytes(rep.upload.bytes_sent)}, {rep.upload.mib_per_s} MiB/s")
    if rep.verify:
        lines.append(f"  verify       {rep.verify.checked} file(s) re-read from "
                     f"{rep.verify.target}: {'all match' if rep.verify.ok else 'MISMATCH'}")
    o.result(rep, "\n".join(lines))
    if rep.verify and not rep.verify.ok:
        raise SystemExit(EXIT_FINDINGS)


@cli.command("mlflow-log")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--task", type=click.Choice(["llm/v1/chat", "llm/v1/completions",
                                           "llm/v1/embeddings"]),
              default="llm/v1/completions", show_default=True)
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (e.g. databricks)")
@click.option("--registered-model-name", default=None, help="catalog.schema.model")
@common
@handle_errors
def mlflow_log_cmd(folder: Path, task: str, tracking_uri: str | None,
                   registered_model_name: str | None, as_json: bool, quiet: bool,
                   debug: bool) -> None:
    """Databricks: log FOLDER as an MLflow transformers model with its weights and task."""
    from modelport.package.mlflow_log import log_mlflow

    rep = log_mlflow(folder, task, tracking_uri=tracking_uri,  # type: ignore[arg-type]
                     registered_model_name=registered_model_name)
    Output(as_json, quiet).result(rep, f"logged {folder} as {rep.model_uri} (run {rep.run_id},"
                                       f" task {rep.task})")


def main() -> None:
    cli(prog_name="modelport")


if __name__ == "__main__":
    main()
