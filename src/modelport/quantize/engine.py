"""The one place that drives GPTQModel (the optional extra ``modelport[quantize]``).

GPTQModel prints banners, tables and per-layer progress bars on stdout and writes ``logs/``
in the working directory: here its stdout goes to stderr (so ``--json`` stays clean) or to a
log file, and its log folder and disk offload go into our temp folder.
"""

from __future__ import annotations

import contextlib
import csv
import os
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelport.errors import MissingDependencyError, ModelportError
from modelport.quantize.options import QuantizeOptions


class QuantizeFailed(ModelportError):
    """GPTQModel raised; the message carries its last words."""

    exit_code = 2


def import_gptqmodel() -> Any:
    """Import GPTQModel or say how to install it."""
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(min(os.cpu_count() or 1, 8)))
    if sys.modules.get("gptqmodel") is not None:
        return sys.modules["gptqmodel"]
    try:
        with open(os.devnull, "wb") as null, _stdout_to(null.fileno()):  # its banner
            import gptqmodel
    except ImportError as e:
        raise MissingDependencyError("gptqmodel", "quantize") from e
    return gptqmodel


def supported_model_types() -> set[str]:
    """The ``model_type`` values GPTQModel has a layer map for."""
    import_gptqmodel()
    from gptqmodel.models.auto import MODEL_MAP

    return set(MODEL_MAP)


@contextlib.contextmanager
def _stdout_to(target: int) -> Iterator[None]:
    """Point file descriptor 1 (and sys.stdout) at ``target`` for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(target, 1)
        with contextlib.redirect_stdout(sys.stderr if target == 2 else sys.stdout):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _device(opt: QuantizeOptions) -> str:
    import torch

    if opt.device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    return opt.device


def run(src: Path, out: Path, work: Path, calib: list[dict[str, list[int]]],
        opt: QuantizeOptions, *, verbose: bool) -> dict[str, Any]:
    """Quantize the safetensors folder ``src`` into ``out`` with GPTQModel.

    Returns timings, peak memory and the per-layer log GPTQModel wrote (quant_log.csv).
    """
    import_gptqmodel()
    import torch
    from gptqmodel import GPTQModel, QuantizeConfig
    from gptqmodel.looper import loop_processor
    from gptqmodel.quantization import FORMAT, METHOD
    from gptqmodel.utils.backend import BACKEND

    loop_processor._PROJECT_LOG_DIR = work / "logs"  # it writes logs/ into the cwd otherwise
    common: dict[str, Any] = {"bits": opt.bits, "group_size": opt.group_size,
                              "sym": opt.symmetric, "offload_to_disk_path": str(work / "offload")}
    kw: dict[str, Any] = {}
    if opt.method == "gptq":
        qc = QuantizeConfig(**common, desc_act=opt.desc_act, damp_percent=opt.damp_percent,
                            format=FORMAT.GPTQ)
    else:
        qc = QuantizeConfig(**common, method=METHOD.AWQ, format=FORMAT.GEMM)
        kw["backend"] = BACKEND.AWQ_TORCH  # the packer that needs no CUDA kernel
    device = _device(opt)
    log_path = work / "gptqmodel.log"
    t0 = time.perf_counter()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    with open(log_path, "wb") as log, _stdout_to(2 if verbose else log.fileno()):
        try:
            model = GPTQModel.load(str(src), qc, dtype=torch.float16, device=device)
            t_load = time.perf_counter() - t0
            model.quantize(calib, batch_size=1, **kw)
            t_quant = time.perf_counter() - t0 - t_load
            model.save(str(out))
        except (RuntimeError, ValueError, TypeError, KeyError, AssertionError,
                NotImplementedError, IndexError) as e:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise QuantizeFailed(f"GPTQModel failed: {type(e).__name__}: {e}",
                                 path=src, hint=" | ".join(tail)[:300]) from e
        finally:
            with contextlib.suppress(NameError):
                del model
    layers = []
    log_csv = out / "quant_log.csv"
    if log_csv.exists():
        with log_csv.open(newline="") as f:
            layers = list(csv.DictReader(f))
        log_csv.unlink()  # its content goes into our report
    return {
        "device": device,
        "load_seconds": round(t_load, 3), "quantize_seconds": round(t_quant, 3),
        "seconds": round(time.perf_counter() - t0, 3),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_gpu_bytes": torch.cuda.max_memory_allocated(device)
        if device.startswith("cuda") else None,
        "layers": layers,
        "gptqmodel": _version(),
    }


def _version() -> str:
    from importlib.metadata import version

    return version("gptqmodel")
