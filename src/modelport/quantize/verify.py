"""Re-read a quantized folder and compare it with its source, tensor by tensor.

- every safetensors file says ``format: pt``;
- every quantized layer has exactly the tensors, dtypes and shapes of the format spec
  (:mod:`modelport.quantize.formats`) for the source weight's shape;
- every other source tensor is there, equal after the cast to the output dtype;
- each layer's dequantized weight is compared with the source weight (relative Frobenius
  error; for AWQ it includes the per-channel scales AWQ folds into the weights);
- optionally the logits of the dequantized model against the source model.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelport._io import jsonio
from modelport._io.st_header import ST_INDEX, read_header
from modelport._types import Record
from modelport.errors import VerificationError
from modelport.quantize.formats import LEAVES, Layout, dequantize, layout_problems


class LayerResult(Record):
    """One quantized layer."""

    name: str
    shape: list[int]
    weight_error: float
    loss: float | None = None
    seconds: float | None = None


class Verification(Record):
    quantized_layers: int
    kept_tensors: int
    layers: list[LayerResult]
    logit_error: float | None = None


# What a correct quantization stays within, with room. Measured (README, 1.1B llama, 154
# layers): the mean relative weight error of a correct 4-bit g128 decode is 0.130 (GPTQ) and
# 0.172 (AWQ); the misreads this guards against give 0.40 (v2 zero points), 1.24 (AWQ's
# plain order) and 1.44 (the wrong axis). 8 bits is 16 times finer. A relative logit error of
# 1 means the output is as far from the original as the original is from zero. Past a bound
# the output is refused: a wrong scale, zero point or packing, not a lossy but usable model.
MAX_WEIGHT_ERROR = {4: 0.3, 8: 0.05}
MAX_LOGIT_ERROR = 1.0


def check_bounds(result: Verification, bits: int, *, max_weight_error: float | None = None,
                 max_logit_error: float | None = None, path: Path | None = None) -> None:
    """Refuse an output whose measured error passes the bound (exit 4, nothing kept).

    Raises:
        VerificationError: naming the worst layer or the logit error, and the bound.
    """
    w_bound = max_weight_error if max_weight_error is not None else MAX_WEIGHT_ERROR[bits]
    l_bound = max_logit_error if max_logit_error is not None else MAX_LOGIT_ERROR
    errors = [r.weight_error for r in result.layers]
    mean = sum(errors) / len(errors) if errors else 0.0
    if mean > w_bound:
        worst = max(result.layers, key=lambda r: r.weight_error)
        raise VerificationError(
            f"mean relative weight error {mean:.4f} is past the {w_bound} bound of {bits}-bit "
            f"quantization (worst: {worst.name}, {worst.weight_error:.4f})", path=path,
            hint="nothing was kept; check the calibration data, or raise --max-weight-error "
            "if this model is known to quantize so")
    if result.logit_error is not None and result.logit_error > l_bound:
        raise VerificationError(
            f"relative logit error {result.logit_error:.4f} is past the {l_bound} bound",
            path=path, hint="nothing was kept; check the calibration data, or raise "
            "--max-logit-error if this model is known to quantize so")


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a folder, from its index when there is one."""
    index = folder / ST_INDEX
    if index.exists():
        return [folder / n for n in sorted(set(jsonio.load_index(index)["weight_map"].values()))]
    return sorted(folder.glob("*.safetensors"))


@contextlib.contextmanager
def open_tensors(folder: Path) -> Iterator[dict[str, Any]]:
    """``{name: handle}`` over every safetensors file of ``folder`` (lazy, mmap)."""
    from safetensors import safe_open

    with contextlib.ExitStack() as stack:
        names: dict[str, Any] = {}
        for f in weight_files(folder):
            h = stack.enter_context(safe_open(str(f), framework="pt"))
            names.update(dict.fromkeys(h.keys(), h))
        yield names


def verify(src: Path, out: Path, layout: Layout, *, tied_head: bool = False,
           logits_of: list[list[int]] | None = None, trust_remote_code: bool = False
           ) -> Verification:
    """Check ``out`` against ``src``; raise :class:`VerificationError` on any mismatch."""
    import torch

    problems: list[str] = []
    headers = {}
    for f in weight_files(out):
        h = read_header(f)
        if (h.metadata or {}).get("format") != "pt":
            problems.append(f"{f.name}: metadata format is {(h.metadata or {}).get('format')!r}")
        headers.update({n: (t.dtype, t.shape) for n, t in h.tensors.items()})
    groups: dict[str, dict[str, tuple[str, tuple[int, ...]]]] = {}
    for name, spec in headers.items():
        prefix, _, leaf = name.rpartition(".")
        if leaf in LEAVES:
            groups.setdefault(prefix, {})[leaf] = spec
    layers: list[LayerResult] = []
    kept = 0
    with open_tensors(src) as s, open_tensors(out) as o:
        for name, handle in s.items():
            prefix = name.removesuffix(".weight")
            if prefix in groups:
                w = handle.get_tensor(name)
                out_f, in_f = w.shape
                found = groups[prefix]
                bad = layout_problems(layout, prefix, out_f, in_f, found)
                problems += bad
                if bad:
                    continue
                t = {leaf: o[f"{prefix}.{leaf}"].get_tensor(f"{prefix}.{leaf}")
                     for leaf in found}
                deq = dequantize(layout, t)
                ref = w.float()
                err = float((deq - ref).norm() / ref.norm().clamp_min(1e-12))
                layers.append(LayerResult(name=prefix, shape=[out_f, in_f],
                                          weight_error=round(err, 6)))
            elif name not in o:
                if not (tied_head and name == "lm_head.weight"):
                    problems.append(f"{name} is in the source and not in the output")
            else:
                got = o[name].get_tensor(name)
                want = handle.get_tensor(name)
                same = got.shape == want.shape and torch.equal(got, want.to(got.dtype))
                if not same and not _awq_rescaled(name, layout, groups):
                    problems.append(f"{name} differs from the source")
                kept += 1
        missing_src = [p for p in groups if f"{p}.weight" not in s]
        problems += [f"{p} is quantized but has no source weight" for p in missing_src]
    if problems:
        raise VerificationError(f"the quantized output does not match: {problems[0]}"
                                + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""),
                                path=out, hint="this is a bug; the output was not kept")
    result = Verification(quantized_layers=len(layers), kept_tensors=kept, layers=layers)
    if logits_of:
        result.logit_error = logit_error(src, out, layout, logits_of, trust_remote_code)
    return result


_NORM = re.compile(r"(norm|ln_\d+|ln_f|layernorm)[^.]*\.(weight|bias)$", re.IGNORECASE)


def _awq_rescaled(name: str, layout: Layout, groups: dict[str, Any]) -> bool:
    """AWQ folds its activation scales into what precedes the scaled layers: the norms
    (weight and bias) and the bias of a preceding linear layer. The logit check proves the
    result; these tensors are allowed to differ."""
    if layout.method != "awq":
        return False
    prefix, _, leaf = name.rpartition(".")
    return (leaf == "bias" and prefix in groups) or bool(_NORM.search(name))


def dequantized_state_dict(out: Path, layout: Layout) -> dict[str, Any]:
    """Every tensor of a quantized folder, packed layers replaced by float32 weights."""
    sd: dict[str, Any] = {}
    with open_tensors(out) as o:
        prefixes = {n.rpartition(".")[0] for n in o if n.endswith(".qweight")}
        for name, h in o.items():
            prefix, _, leaf = name.rpartition(".")
            if prefix in prefixes and leaf in LEAVES:
                continue
            sd[name] = h.get_tensor(name).float()
        for p in prefixes:
            sd[f"{p}.weight"] = dequantize(layout, {
                leaf: o[f"{p}.{leaf}"].get_tensor(f"{p}.{leaf}")
                for leaf in LEAVES if f"{p}.{leaf}" in o})
    return sd


def logit_error(src: Path, out: Path, layout: Layout, windows: list[list[int]],
                trust_remote_code: bool = False) -> float:
    """Relative error ``|L_q - L| / |L|`` of the dequantized output's logits, float32.

    The dequantized tensors are saved under the output's own names and loaded with
    ``from_pretrained``, so they go through the same name conversions as a real load.
    """
    import tempfile

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    # the folder's own code only with --trust-remote-code (False unless the user passed it)
    ref = AutoModelForCausalLM.from_pretrained(str(src), trust_remote_code=trust_remote_code,
                                               dtype=torch.float32)
    with tempfile.TemporaryDirectory(prefix=".dequantized-", dir=out.parent) as d:
        cfg = json.loads((out / "config.json").read_text())
        cfg.pop("quantization_config", None)
        (Path(d) / "config.json").write_text(json.dumps(cfg))
        sd = {k: v.contiguous() for k, v in dequantized_state_dict(out, layout).items()}
        save_file(sd, str(Path(d) / "model.safetensors"), metadata={"format": "pt"})
        del sd
        q, info = AutoModelForCausalLM.from_pretrained(d, trust_remote_code=trust_remote_code,
                                                       dtype=torch.float32,
                                                       output_loading_info=True)
    bad = [k for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(k)]
    if bad:
        raise VerificationError("the dequantized output does not load: "
                                + "; ".join(f"{k} {list(info[k])[:3]}" for k in bad), path=out,
                                hint="the quantizer wrote tensor names the runtimes do not read")
    num = den = 0.0
    ref.eval()
    q.eval()
    with torch.no_grad():
        for ids in windows:
            x = torch.tensor([ids])
            a, b = ref(x).logits, q(x).logits
            num += float((b - a).pow(2).sum())
            den += float(a.pow(2).sum())
    return round((num / max(den, 1e-30)) ** 0.5, 6)
