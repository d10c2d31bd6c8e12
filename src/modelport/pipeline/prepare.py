"""``prepare``: the whole pipeline, from what a user has to a verified bundle in storage.

inspect → convert → normalize → tokenizer / tsfm-config → quantize (when asked) → check →
package → upload → verify.
Each step runs only when there is something to do and says so. SRC is never modified: work
happens in a hidden folder beside OUT, removed at the end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from modelport._io import jsonio
from modelport._io.atomic import write_bytes_atomic
from modelport._io.paths import check_output
from modelport._io.redact import redact
from modelport._io.urls import local_path, location
from modelport._types import Record, human_bytes
from modelport.cast.normalize import normalize
from modelport.convert.architectures import infer_architecture
from modelport.convert.checkpoint import convert
from modelport.convert.formats import detect
from modelport.convert.inspect import inspect
from modelport.convert.lora import merge
from modelport.convert.plan import check_source
from modelport.errors import InputError, RemoteCodeError, ServeMismatchError, TargetCheckFailed
from modelport.package.bundle import package
from modelport.package.manifest import Manifest, Step, load_manifest
from modelport.package.serve_check import ServeCheckReport
from modelport.package.upload import UploadOptions, UploadReport, VerifyReport, upload, verify
from modelport.tok.verb import SPM_FILES, tokenizer
from modelport.tsfm import TSFM_FILE, tsfm_config


class PrepareReport(Record):
    src: str
    out: str
    steps: list[Step]
    manifest: Manifest
    upload: UploadReport | None = None
    verify: VerifyReport | None = None
    serve: ServeCheckReport | None = None

    def summary(self) -> str:
        """What ``modelport prepare`` prints."""
        lines = [f"prepared {self.out} from {self.src}"]
        lines += [f"  {s.verb:12s} {s.status:7s} {s.detail}" for s in self.steps]
        lines += self.manifest.lines()
        if self.serve:
            s = self.serve
            lines.append(f"  serve-check  vLLM {s.vllm_version}: {s.tokens_compared} greedy "
                         f"token(s) of {len(s.prompts)} prompt(s) "
                         f"{'equal to' if s.ok else 'DIFFER from'} transformers' ({s.dtype})")
        if self.upload:
            lines.append(f"  upload       {len(self.upload.uploaded)} object(s), "
                         f"{human_bytes(self.upload.bytes_sent)}, "
                         f"{self.upload.mib_per_s} MiB/s")
        if self.verify:
            lines.append(f"  verify       {self.verify.checked} file(s) re-read from "
                         f"{self.verify.target}: "
                         f"{'all match' if self.verify.ok else 'MISMATCH'}")
        return "\n".join(lines)


def prepare(src: str | Path, out: str | Path, targets: list[str] | tuple[str, ...] = (
            "watsonx-saas",), *, upload_url: str | None = None,
            upload_options: UploadOptions | None = None, dtype: str | None = None,
            force: bool = False, overwrite: bool = False, progress: bool | None = None,
            quantize: str | None = None, tokenizer_family: str | None = None,
            accept_tokenizer_guess: bool = False, adapter: str | Path | None = None,
            store: dict[str, Any] | None = None, serve_check: bool = False,
            serve_python: str | Path | None = None) -> PrepareReport:
    """Run every step a folder needs for the targets; optionally upload and verify remotely.

    ``quantize`` ("gptq" or "awq") adds a verified 4-bit quantization with the defaults of
    :func:`modelport.quantize.run.quantize`, refused up front when the first target does not
    load that method for the architecture. ``tokenizer_family`` / ``accept_tokenizer_guess``
    are the tokenizer step's ``family`` / ``accept_guess`` (the manifest records the class).
    ``adapter`` (a PEFT LoRA folder) is merged into SRC's weights first (``modelport merge``).
    SRC may be ``s3://bucket/prefix`` (``store``: ``endpoint_url``, ``region``, ``profile``):
    its weights are converted from the bucket with ranged reads into the work folder first.
    ``serve_check`` serves the bundle with vLLM (``serve_python``: its interpreter) and
    compares its greedy tokens with transformers' before any upload; the manifest records it,
    and a difference raises :class:`ServeMismatchError` (the bundle kept, not uploaded).
    """
    loc = location(src, what="SRC")
    label = redact(str(loc))
    remote = isinstance(loc, str)
    out = local_path(out, what="--out")
    if upload_url is not None:
        location(upload_url, what="--upload")
    src = loc if isinstance(loc, Path) else out.parent / f".{out.name}.modelport-work" / "fetched"
    if not remote:
        check_source(src, adapter_hint=f"modelport prepare BASE --adapter {src} --out {out}")
    if remote and out.exists() and not overwrite:
        raise InputError("exists", path=out, hint="choose a new folder, or --overwrite")
    if not remote:
        check_output(src, out, overwrite=overwrite)
    work = out.parent / f".{out.name}.modelport-work"
    shutil.rmtree(work, ignore_errors=True)
    steps: list[Step] = []

    def step(verb: str, done: bool, detail: str) -> None:
        steps.append(Step(verb=verb, status="done" if done else "skipped", detail=detail))

    try:
        if remote:
            fetched = convert(loc, src, progress=progress, store=store)
            how = "ranged reads" if fetched.remote_read == "ranges" else \
                "its files downloaded whole (a computed format)"
            step("fetch", True, f"{fetched.tensors_written} tensors converted from {label} "
                 f"with {how} ({fetched.remote_bytes_fetched:,} bytes in "
                 f"{fetched.remote_requests} requests), verified")
        info = inspect(src)
        step("inspect", True, f"{info.tensors} tensors, {info.parameters:,} parameters, "
             f"{', '.join(sorted({w.format for w in info.weight_files}))}")
        fmt, _ = detect(src)  # the one registry says what SRC is
        pickled = fmt.name != "hf" or (bool(info.weight_files) and all(
            w.format in ("zip pickle", "legacy pickle") for w in info.weight_files))
        stage = work / "converted"
        if pickled:
            rep = convert(src, stage, progress=progress)
            step("convert", True, f"{rep.tensors_written} tensors into "
                 f"{sum(o.role == 'weights' for o in rep.outputs)} safetensors file(s), verified")
        else:
            step("convert", False, "weights are safetensors already")
        base = stage if pickled else src
        if adapter is not None:
            merged = work / "merged"
            m = merge(base, adapter, merged)
            step("merge", True, f"LoRA r={m.r} alpha={m.lora_alpha:g} from {adapter}: "
                 f"{len(m.merged)} tensor(s) merged, {len(m.replaced)} replaced, verified")
            base = merged
        norm = work / "normalized"
        nrep = normalize(base, norm, link=True, dtype=dtype)  # type: ignore[arg-type]
        fixed = [f"{f.path}: {f.action}" for f in nrep.files if f.action != "unchanged"]
        step("normalize", nrep.changed, "; ".join(fixed) or "headers, dtypes and index right")
        repaired = _repair_architectures(src, norm)
        if repaired:
            step("config", True, repaired)
        cfg_type = info.config.model_type if info.config else None
        if cfg_type == "tinytimemixer":
            if (norm / TSFM_FILE).is_file():
                step("tsfm-config", False, f"{TSFM_FILE} present")
            else:
                tsfm_config(norm)
                step("tsfm-config", True, f"wrote {TSFM_FILE}")
        elif (norm / "tokenizer.json").is_file():
            step("tokenizer", False, "tokenizer.json present")
        elif any((norm / f).is_file() for f in (*SPM_FILES, "vocab.json", "vocab.txt")):
            t = tokenizer(norm, family=tokenizer_family, accept_guess=accept_tokenizer_guess)
            p = t.parity
            step("tokenizer", True, f"wrote tokenizer.json: {t.tokenizer_class} from "
                 f"{t.class_source}{' (GUESSED, not certified)' if t.guessed else ''}; "
                 f"{p.matched}/{p.examples} lines identical, {p.known_differences} known "
                 "difference(s)" + (f"; vocabulary proof {t.coverage.matched}/"
                                    f"{t.coverage.lines} lines over "
                                    f"{t.coverage.fraction:.1%} of the pieces"
                                    if t.coverage else ""))
        else:
            step("tokenizer", False, "no tokenizer files")
        if quantize:
            from modelport.pipeline.quantize import quantize as run_quantize

            q = run_quantize(norm, work / "quantized", method=quantize, target=targets[0],
                             progress=progress)
            step("quantize", True, f"{q.method} {q.bits}-bit g{q.group_size} "
                 f"({q.checkpoint_format}): {len(q.layers)} layers, weight error "
                 f"{q.mean_weight_error:.3f}, logit error {q.logit_error}, "
                 f"{q.quantize_seconds:.1f} s")
            norm = work / "quantized"
        try:
            manifest = package(norm, out, targets, force=force, overwrite=overwrite,
                               steps=steps, source=label,
                               options={"targets": list(targets), "dtype": dtype,
                                        "quantize": quantize,
                                        "tokenizer_family": tokenizer_family,
                                        "adapter": str(adapter) if adapter else None,
                                        "accept_tokenizer_guess": accept_tokenizer_guess})
        except TargetCheckFailed as e:  # say it of the user's folder, not the work copy
            e.path = label
            raise
        steps = manifest.provenance.steps
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = PrepareReport(src=label, out=str(out), steps=steps, manifest=manifest)
    if serve_check:
        from modelport.package.serve_check import record
        from modelport.package.serve_check import serve_check as run_serve_check

        report.serve = run_serve_check(out, python=serve_python)
        record(out, report.serve)
        report.manifest = load_manifest(out)
        if not report.serve.ok:
            raise ServeMismatchError(report.serve.summary().split("\n", 1)[-1].strip(),
                                     path=out, hint="the bundle is kept and was not uploaded;"
                                     " modelport serve-check BUNDLE --json gives the details")
    if upload_url:
        # one store's options serve both ends: the source's, unless upload_options says
        o = upload_options or UploadOptions(**{k: v for k, v in (store or {}).items()
                                               if v is not None})
        report.upload = upload(out, upload_url, o, progress=progress)
        report.verify = verify(upload_url, o)
    return report


def _repair_architectures(src: Path, folder: Path) -> str | None:
    """Write ``architectures`` into the work copy's config.json when the weights determine
    the class; refuse, naming the candidates, when they do not. None: nothing to repair."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    cfg = jsonio.load(path)
    if not isinstance(cfg, dict) or cfg.get("architectures") or not cfg.get("model_type") \
            or cfg.get("model_type") == "tinytimemixer":
        return None
    try:
        inf = infer_architecture(folder)
    except RemoteCodeError as e:  # say it of the user's folder, not the work copy
        e.path = str(src / "config.json")
        raise
    if inf.certain is None:
        which = (f"fit {len(inf.fits)} classes: {', '.join(inf.fits)}" if inf.fits else
                 f"fit none of the classes of model_type {inf.model_type}: "
                 f"{', '.join(inf.candidates) or 'none known'}")
        raise InputError(f"config.json has no architectures and the weights {which}",
                         path=src / "config.json",
                         hint="add \"architectures\": [\"<the class the model was trained as>\"]"
                              " to config.json")
    cfg["architectures"] = [inf.certain]
    # a new file: the work copy's config.json may be a hard link to the user's
    write_bytes_atomic(path, (json.dumps(cfg, indent=2) + "\n").encode())
    return (f"config.json architectures = [{inf.certain}]: the only class of model_type "
            f"{inf.model_type} whose tensors are these weights ({inf.evidence}); the source "
            "had none")


__all__ = ["PrepareReport", "prepare"]
