"""The one place that drives GPTQModel (the optional extra ``modelport[quantize]``).

GPTQModel prints banners, tables and progress bars on stdout and writes ``logs/`` in the
working directory: here its output goes to a log file in our temp folder (its last lines are
quoted when it fails), its log folder and disk offload go there too, and progress is our own
bar (``tqdm.auto``: terminal or notebook), one step per decoder layer, fed by GPTQModel's
layer-complete callback.
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
from typing import Any, TextIO

from modelport.errors import MissingDependencyError, QuantizeFailed
from modelport.quantize.options import QuantizeOptions


def import_gptqmodel() -> Any:
    """Import GPTQModel or say how to install it."""
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(min(os.cpu_count() or 1, 8)))
    if sys.modules.get("gptqmodel") is not None:
        return sys.modules["gptqmodel"]
    try:
        with quiet():  # its banner, torch's warnings about its enums
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
def quiet(target: int | None = None) -> Iterator[TextIO]:
    """Send file descriptors 1 and 2 (C++ warnings, GPTQModel's prints, third-party bars) to
    ``target`` (default: /dev/null); yields a stream on the original stderr for our bar."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = open(os.devnull, "wb") if target is None else None  # noqa: SIM115
    fd = null.fileno() if null is not None else target
    err = open(saved[1], "w", closefd=False)  # noqa: SIM115
    sink = open(fd, "w", closefd=False)  # type: ignore[arg-type]  # noqa: SIM115
    try:
        os.dup2(fd, 1)  # type: ignore[arg-type]
        os.dup2(fd, 2)  # type: ignore[arg-type]
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield err
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        err.flush()
        sink.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in saved:
            os.close(f)
        if null is not None:
            null.close()


def device_for(opt: QuantizeOptions) -> str:
    """The torch device a run uses: ``auto`` is the first GPU when there is one."""
    import torch

    if opt.device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    return opt.device


class _LayerBar:
    """GPTQModel's layer callback (``layer_complete``) driving a progress bar."""

    def __init__(self, layers: int, enabled: bool | None, method: str, file: TextIO) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=layers, unit="layer", desc=f"quantize {method}", file=file,
                        disable=None if enabled is None else not enabled, leave=False)
        self.done: set[int] = set()

    def layer_complete(self, *, layer_idx: int, submodule_finalized: bool) -> None:
        if layer_idx not in self.done:
            self.done.add(layer_idx)
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run(src: Path, out: Path, work: Path, calib: list[dict[str, list[int]]],
        opt: QuantizeOptions, *, layers: int, progress: bool | None) -> dict[str, Any]:
    """Quantize the safetensors folder ``src`` into ``out`` with GPTQModel; ``layers`` (the
    decoder layer count) sizes the progress bar.

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
    device = device_for(opt)
    log_path = work / "gptqmodel.log"
    t0 = time.perf_counter()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    with open(log_path, "wb") as log, quiet(log.fileno()) as err:
        bar = _LayerBar(layers, progress, opt.method, err)
        try:
            model = GPTQModel.load(str(src), qc, trust_remote_code=opt.trust_remote_code,
                                   dtype=torch.float16, device=device)
            t_load = time.perf_counter() - t0
            model.layer_callback = bar
            model.quantize(calib, batch_size=1, **kw)
            t_quant = time.perf_counter() - t0 - t_load
            model.save(str(out))
        except (RuntimeError, ValueError, TypeError, KeyError, AssertionError,
                NotImplementedError, IndexError) as e:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise QuantizeFailed(f"GPTQModel failed: {type(e).__name__}: {e}",
                                 path=src, hint=" | ".join(tail)[:300]) from e
        finally:
            bar.close()
            with contextlib.suppress(NameError):
                del model
    rows: list[dict[str, str]] = []
    log_csv = out / "quant_log.csv"
    if log_csv.exists():
        with log_csv.open(newline="") as f:
            rows = list(csv.DictReader(f))
        log_csv.unlink()  # its content goes into our report
    return {
        "device": device,
        "load_seconds": round(t_load, 3), "quantize_seconds": round(t_quant, 3),
        "seconds": round(time.perf_counter() - t0, 3),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_gpu_bytes": torch.cuda.max_memory_allocated(device)
        if device.startswith("cuda") else None,
        "layers": rows,
        "gptqmodel": _version(),
    }


def _version() -> str:
    from importlib.metadata import version

    return version("gptqmodel")
