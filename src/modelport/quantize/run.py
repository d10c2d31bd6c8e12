"""``quantize``: 4/8-bit GPTQ v1 or 4-bit AWQ GEMM, verified, with a report.

Order of work: refuse what cannot succeed (already quantized, architecture GPTQModel has no
layer map for, format the target does not load, not enough memory, no tokenizer), then
quantize into a temp folder, restore the source's own tokenizer and generation files, tidy
``quantization_config``, re-read and verify every tensor, and rename into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from modelport._io import hashcache, jsonio
from modelport._io.atomic import atomic_dir, write_bytes_atomic
from modelport._io.hashing import sha256_file
from modelport._io.paths import check_output
from modelport._trust import guard
from modelport._types import MANIFEST, FileRecord, Record, file_role
from modelport._version import __version__
from modelport.errors import (
    CheckpointError,
    InputError,
    InsufficientMemoryError,
    RemoteCodeError,
    UnsupportedError,
)
from modelport.quantize import calibration, engine, names
from modelport.quantize.formats import Layout
from modelport.quantize.options import QuantizeOptions
from modelport.quantize.target import TargetCheck
from modelport.quantize.verify import LayerResult, check_bounds, verify

REPORT = ".modelport/quantize.json"
LOGIT_CHECK_MAX_PARAMS = 3_000_000_000
# meta keys of GPTQModel that describe this machine or run, not the checkpoint
_VOLATILE_META = ("offload_to_disk_path", "offload_to_disk", "telemetry", "gc_mode",
                  "dense_vram_strategy_devices", "moe_vram_strategy_devices", "pack_impl",
                  "auto_forward_data_parallel", "wait_for_submodule_finalizers")


class QuantizeReport(Record):
    """What ``quantize`` did; also written to ``DST/.modelport/quantize.json``."""

    src: str
    dst: str
    method: str
    bits: int
    group_size: int
    sym: bool
    desc_act: bool
    checkpoint_format: str = Field(description="'gptq' (v1) or the AWQ version 'gemm'")
    model_type: str
    parameters: int
    bytes_in: int
    bytes_out: int
    calibration: calibration.Calibration
    device: str
    trust_remote_code: bool = Field(False, description="the folder's own code was run "
                                    "(--trust-remote-code)")
    seconds: float
    quantize_seconds: float
    verify_seconds: float
    peak_rss_bytes: int
    peak_gpu_bytes: int | None
    estimated_memory_bytes: int
    layers: list[LayerResult]
    mean_weight_error: float
    max_weight_error: float
    logit_error: float | None = Field(None, description="relative error of the dequantized "
                                      "model's logits on held-out text, float32")
    kept_tensors: int
    quantization_config: dict[str, Any]
    outputs: list[FileRecord]
    target: str | None = None
    target_errors: int | None = None
    target_warnings: int | None = None
    gptqmodel: str
    modelport: str = __version__


def _config(src: Path) -> dict[str, Any]:
    try:
        cfg = jsonio.load(src / "config.json")
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read config.json: {e}", path=src / "config.json",
                         hint="quantize takes a Hugging Face model folder") from e
    if not isinstance(cfg, dict):
        raise InputError("config.json is not an object", path=src / "config.json")
    return cfg


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def estimate_memory(parameters: int, cfg: dict[str, Any], opt: QuantizeOptions,
                    device: str) -> int:
    """Peak host memory, in bytes, of a GPTQModel run (conservative).

    The fp16 model (GPTQModel keeps it in host memory and moves one layer at a time to the
    device), the captured activations of every calibration window at two layer boundaries,
    and on CPU the float32 Hessian and weight copies of the largest layer. AWQ on a GPU held
    about 18 more bytes of host memory per parameter (measured on an H100: 3.7 GB peak RSS for
    0.3B parameters, 20 GB for 1.1B).
    """
    hidden = int(cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model") or 4096)
    inter = int(cfg.get("intermediate_size") or 4 * hidden)
    act = opt.samples * opt.seqlen * hidden * 2 * 2
    cuda = device.startswith("cuda")
    work = 0 if cuda else (inter * inter * 4 + 3 * hidden * inter * 4)
    awq = parameters * 18 if cuda and opt.method == "awq" else 0
    return int(parameters * 2 + act + work + awq + 1.5 * 2**30)  # + interpreter, libraries


def quantize(src: str | Path, dst: str | Path, options: QuantizeOptions | None = None, *,
             progress: bool | None = None, target_check: TargetCheck | None = None,
             **kwargs: Any) -> QuantizeReport:
    """Quantize a model folder to GPTQ v1 or AWQ GEMM and verify the result.

    Args:
        src: a Hugging Face model folder (safetensors or pickled weights, a tokenizer).
        dst: the output folder (created; must not exist unless ``overwrite``).
        options: a :class:`QuantizeOptions`; keyword arguments build one when omitted.
        progress: a progress bar, one step per decoder layer (None: on a terminal or in a
            notebook).

    Returns:
        A :class:`QuantizeReport` with per-layer errors, time and peak memory.

    Raises:
        MissingDependencyError: GPTQModel is not installed (``pip install modelport[quantize]``).
        UnsupportedError: already quantized, an architecture GPTQModel cannot quantize, or a
            format the target does not load.
        InsufficientMemoryError, InputError, VerificationError: nothing is left at ``dst``.

    Example:
        >>> modelport.quantize("llama/", "llama-gptq/", method="gptq", target="watsonx-saas")
    """
    opt = options if options is not None else QuantizeOptions(**kwargs)
    if options is not None and kwargs:
        opt = options.model_copy(update=kwargs)
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise InputError("is not a folder", path=src, hint="quantize takes a model folder")
    jsonio.require_valid(src)
    check_output(src, dst, overwrite=opt.overwrite)
    cfg = _config(src)
    model_type = str(cfg.get("model_type") or "")
    q = cfg.get("quantization_config")
    if q:
        method = q.get("quant_method", "?") if isinstance(q, dict) else "?"
        raise UnsupportedError(f"the model is already quantized ({method})", path=src,
                               hint="quantize the original, unquantized checkpoint")
    layout = Layout(opt.method, opt.bits, opt.group_size)
    planned = _planned_config(opt)
    if opt.target:
        if target_check is None:
            raise InputError(f"target {opt.target!r} needs its rules passed as target_check",
                             hint="call modelport.quantize, which attaches them")
        _preflight(target_check, model_type, planned, src)
    if model_type in names.SPLIT_BY_GPTQMODEL:
        raise UnsupportedError(
            f"GPTQModel splits the fused {names.SPLIT_BY_GPTQMODEL[model_type]} projection; "
            "the runtimes expect the fused tensor", path=src / "config.json",
            hint="no quantized format of this architecture can be produced here")
    if model_type not in engine.supported_model_types():
        raise UnsupportedError(f"GPTQModel cannot quantize model_type {model_type!r}",
                               path=src / "config.json",
                               hint="see GPTQModel's supported models; llama, mistral, "
                               "mixtral, qwen2, gemma, phi3, granite and gpt_bigcode are")
    from modelport.convert.inspect import inspect

    rep = inspect(src)
    broken = [p for p in rep.problems if p.severity == "error"]
    if broken or not rep.weight_files:
        first = broken[0] if broken else None
        raise CheckpointError(first.message if first else "no weight files",
                              path=src / first.file if first and first.file else src,
                              hint="modelport inspect shows every problem; quantize takes a "
                              "model folder that loads")
    device = engine.device_for(opt)
    need = estimate_memory(rep.parameters, cfg, opt, device)
    available = _available_memory()
    if opt.memory_check and need > available:
        raise InsufficientMemoryError(need, available, path=src)
    tok = _tokenizer(src, opt.trust_remote_code)
    calib, calib_rec = calibration.samples(tok, opt.calibration, n=opt.samples,
                                           seqlen=opt.seqlen)
    with tempfile.TemporaryDirectory(prefix=f".{dst.name}.modelport-work-",
                                     dir=dst.absolute().parent) as work_s:
        work = Path(work_s)
        source = _safetensors_source(src, rep, work)
        _check_groups(source, opt)
        with atomic_dir(dst, overwrite=opt.overwrite) as tmp:
            layers = int(cfg.get("num_hidden_layers") or cfg.get("n_layer")
                         or cfg.get("num_layers") or 0)
            run = engine.run(source, tmp, work, calib, opt, layers=layers, progress=progress)
            names.restore(tmp, model_type)
            _restore_files(src, tmp, rep)
            qcfg = _tidy_config(cfg, tmp, run["gptqmodel"])
            v0 = time.perf_counter()
            check_logits = opt.verify_logits if opt.verify_logits is not None else (
                rep.parameters <= LOGIT_CHECK_MAX_PARAMS)
            held_out = _held_out(tok) if check_logits else None
            with engine.quiet():  # transformers' loading bars and warnings
                ver = verify(source, tmp, layout, logits_of=held_out,
                             tied_head=bool(cfg.get("tie_word_embeddings", True)),
                             trust_remote_code=opt.trust_remote_code)
            check_bounds(ver, opt.bits, max_weight_error=opt.max_weight_error,
                         max_logit_error=opt.max_logit_error, path=src)
            verify_s = time.perf_counter() - v0
            _merge_log(ver.layers, run["layers"])
            outputs = _records(tmp)
            report = QuantizeReport(
                src=str(src), dst=str(dst), method=opt.method, bits=opt.bits,
                group_size=opt.group_size, sym=opt.symmetric, desc_act=opt.desc_act,
                checkpoint_format=str(qcfg.get("checkpoint_format") or qcfg.get("version")),
                model_type=model_type, parameters=rep.parameters, bytes_in=rep.weight_bytes,
                bytes_out=sum(o.size for o in outputs if o.role == "weights"),
                calibration=calib_rec, device=run["device"],
                trust_remote_code=opt.trust_remote_code,
                seconds=0.0, quantize_seconds=run["seconds"], verify_seconds=round(verify_s, 3),
                peak_rss_bytes=run["peak_rss_bytes"], peak_gpu_bytes=run["peak_gpu_bytes"],
                estimated_memory_bytes=need, layers=ver.layers,
                mean_weight_error=round(sum(x.weight_error for x in ver.layers)
                                        / max(1, len(ver.layers)), 6),
                max_weight_error=max((x.weight_error for x in ver.layers), default=0.0),
                logit_error=ver.logit_error, kept_tensors=ver.kept_tensors,
                quantization_config=qcfg, outputs=outputs, gptqmodel=run["gptqmodel"])
            hashcache.record(tmp, {o.path: o.sha256 for o in outputs})
    if target_check is not None:
        errors, warnings = target_check.check(dst)
        report.target, report.target_errors, report.target_warnings = (
            target_check.name, errors, warnings)
    report.seconds = round(time.perf_counter() - t0, 3)
    (dst / REPORT).parent.mkdir(exist_ok=True)
    write_bytes_atomic(dst / REPORT, (report.model_dump_json(indent=2) + "\n").encode())
    return report


def _check_groups(source: Path, opt: QuantizeOptions) -> None:
    """Every quantized layer's input must split into whole groups: GPTQModel accepts a ragged
    last group for GPTQ, but vLLM and TGI refuse such checkpoints."""
    if opt.group_size == -1:
        return
    from modelport._io.st_header import read_header
    from modelport.quantize.verify import weight_files

    ins: dict[int, str] = {}
    for f in weight_files(source):
        for name, t in read_header(f).tensors.items():
            if (len(t.shape) == 2 and name.endswith(".weight") and ".layers." in f".{name}"
                    and "norm" not in name and "embed" not in name):
                ins.setdefault(t.shape[1], name)
    bad = {n: name for n, name in ins.items() if n % opt.group_size}
    if bad:
        n, name = next(iter(bad.items()))
        fits = next((g for g in (128, 64, 32) if all(i % g == 0 for i in ins)), -1)
        raise UnsupportedError(
            f"{name} has {n} inputs, not a multiple of group size {opt.group_size}; vLLM and "
            "TGI refuse ragged groups", path=source, hint=f"use --group-size {fits}")


def _planned_config(opt: QuantizeOptions) -> dict[str, Any]:
    if opt.method == "gptq":
        return {"quant_method": "gptq", "bits": opt.bits, "group_size": opt.group_size,
                "sym": opt.symmetric, "desc_act": opt.desc_act, "checkpoint_format": "gptq"}
    return {"quant_method": "awq", "bits": opt.bits, "group_size": opt.group_size,
            "zero_point": not opt.symmetric, "version": "gemm"}


def _preflight(target: TargetCheck, model_type: str, planned: dict[str, Any], src: Path
               ) -> None:
    """Refuse before any work what ``target`` would reject for this method/architecture."""
    errors = target.preflight(model_type, planned)
    if errors:
        raise UnsupportedError(f"{target.name} does not load this: {'; '.join(errors)}",
                               path=src, hint="pick the method, bits and group size the "
                               "target lists (modelport targets show TARGET)")


_TRUST_HINT = ("quantize a model whose class transformers ships, or pass --trust-remote-code "
               "if you have read the folder's code (recorded in the report)")


def _tokenizer(src: Path, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    try:
        with guard(src, hint=_TRUST_HINT):
            return AutoTokenizer.from_pretrained(str(src), trust_remote_code=trust_remote_code)
    except RemoteCodeError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise InputError(f"cannot load the tokenizer for calibration: {e}", path=src,
                         hint="run modelport tokenizer on the folder first") from e


def _safetensors_source(src: Path, rep: Any, work: Path) -> Path:
    """GPTQModel reads the folder with transformers: give it verified safetensors."""
    if all(w.format == "safetensors" for w in rep.weight_files) and rep.weight_files:
        return src
    from modelport.convert.checkpoint import convert

    convert(src, work / "source", progress=False)
    return work / "source"


def _restore_files(src: Path, out: Path, rep: Any) -> None:
    """Carry the source's tokenizer, generation and other files over byte for byte:
    GPTQModel re-saves the tokenizer and 'fixes' generation_config.json. A bundle's manifest
    is not carried: package the quantized folder to get one that matches."""
    for rel in [*rep.tokenizer_files, *rep.other_files]:
        if rel in ("config.json", MANIFEST) or rel.startswith(".modelport/"):
            continue  # a bundle's manifest describes the unquantized files
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, out / rel)
    gen = out / "generation_config.json"
    if gen.exists() and not (src / "generation_config.json").exists():
        gen.unlink()


def _tidy_config(source_config: dict[str, Any], out: Path, gptqmodel_version: str
                 ) -> dict[str, Any]:
    """config.json = the source's own config + ``quantization_config`` + float16.

    GPTQModel re-saves the config through transformers 5, which rewrites it in its own
    dialect (``rope_parameters`` for ``rope_theta``/``rope_scaling``, ``dtype`` for
    ``torch_dtype``) and adds keys such as a guessed ``pad_token_id``; runtimes on
    transformers 4 read the original keys, so only the quantization is taken from its file,
    without the keys that describe this machine or run.
    """
    q = json.loads((out / "config.json").read_text())["quantization_config"]
    meta = q.get("meta") or {}
    for k in _VOLATILE_META:
        meta.pop(k, None)
    meta["quantizer"] = [f"gptqmodel:{gptqmodel_version}", f"modelport:{__version__}"]
    q["meta"] = meta
    cfg = dict(source_config)
    if "dtype" in cfg:
        cfg["dtype"] = "float16"
    if "torch_dtype" in cfg or "dtype" not in cfg:
        cfg["torch_dtype"] = "float16"
    cfg["quantization_config"] = q
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    legacy = out / "quantize_config.json"  # AutoGPTQ's file, TGI's fallback: keep it equal
    if legacy.exists():
        legacy.write_text(json.dumps(q, indent=2, sort_keys=True) + "\n")
    return q


def _held_out(tok: Any) -> list[list[int]]:
    """Token windows of the built-in documents that calibration never sees."""
    ids = [tok(t)["input_ids"][:256] for t in calibration.builtin_texts("heldout")]
    return [i for i in ids if len(i) >= calibration.MIN_TOKENS]


def _merge_log(layers: list[LayerResult], log: list[dict[str, str]]) -> None:
    """Attach GPTQModel's per-layer loss and time (quant_log.csv) to our layer results."""
    by_name = {f"layers.{r.get('layer')}.{r.get('module')}": r for r in log}
    for x in layers:
        key = next((k for k in by_name if x.name.endswith(k)), None)
        if key is not None:
            r = by_name[key]
            x.loss, x.seconds = _number(r.get("loss")), _number(r.get("time"))


def _number(text: str | None) -> float | None:
    """A number of GPTQModel's log, which also holds words ('not applicable')."""
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _records(folder: Path) -> list[FileRecord]:
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and ".modelport" not in p.relative_to(folder).parts:
            rel = p.relative_to(folder).as_posix()
            out.append(FileRecord(path=rel, role=file_role(rel), size=p.stat().st_size,
                                  sha256=sha256_file(p)))
    return out
