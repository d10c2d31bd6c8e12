"""Build model folders for the rules tests: headers only, data as sparse holes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelport._io.st_header import ST_DTYPES, build_header


def write_st(path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]],
             metadata: dict[str, str] | None = None) -> None:
    """A valid safetensors file whose data region is a hole: any size, no disk used."""
    entries = []
    for name, (dtype, shape) in tensors.items():
        n = ST_DTYPES[dtype][0]
        for d in shape:
            n *= d
        entries.append((name, dtype, shape, n))
    header, _ = build_header(entries, metadata if metadata is not None else {"format": "pt"})
    if metadata is None and header:
        pass
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + sum(e[3] for e in entries))


def make_folder(root: Path, kind: str = "general", model_type: str = "llama",
                architectures: list[str] | None = None, params: int = 1000,
                dtype: str = "F16", config: dict[str, Any] | None = None) -> Path:
    """A folder that passes every rule of the targets for its kind."""
    root.mkdir(parents=True, exist_ok=True)
    if kind == "timeseries":
        model_type, architectures = "tinytimemixer", ["TinyTimeMixerForPrediction"]
        (root / "tsfm_config.json").write_text("{}")
    cfg: dict[str, Any] = {"model_type": model_type,
                           "architectures": architectures or ["LlamaForCausalLM"],
                           "torch_dtype": "float16"}
    if kind == "quantized":
        cfg["quantization_config"] = {"quant_method": "gptq", "bits": 4, "group_size": 128}
        write_st(root / "model.safetensors", {
            "layers.0.q.qweight": ("I32", (params // 8 // 8, 8)),
            "layers.0.q.qzeros": ("I32", (1, 1)), "layers.0.q.scales": ("F16", (1, 8)),
            "layers.0.q.g_idx": ("I32", (8,)), "embed.weight": ("F16", (10, 10))})
    else:
        rows = max(1, params // 1000)
        write_st(root / "model.safetensors", {"embed.weight": (dtype, (rows, 1000))})
    cfg.update(config or {})
    (root / "config.json").write_text(json.dumps(cfg))
    if kind != "timeseries":
        (root / "tokenizer.json").write_text("{}")
        (root / "tokenizer_config.json").write_text(json.dumps(
            {"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}))
    return root
