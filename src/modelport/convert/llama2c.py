"""llama2.c training checkpoints (Karpathy's ``train.py`` ``ckpt.pt``) into a Hugging Face
Llama folder.

``train.py`` saves ``{"model": state_dict, "model_args": {...}, "optimizer": ...,
"iteration_num": ..., "best_val_loss": ..., "config": {...}}``. The state dict is Meta's Llama
layout (``tok_embeddings``, ``layers.N.attention.wq`` with the interleaved rotary order,
``output``), prefixed ``_orig_mod.`` when the model was ``torch.compile``d; ``model_args`` plays
params.json's part. So the Meta route converts it, given those params: this module only
recognises the file and reads ``model_args``. Detection opens the zip's ``data.pkl`` and
looks for both keys, without importing torch.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

from modelport.convert.meta_llama import MetaSource, open_meta
from modelport.convert.opened import Opened
from modelport.convert.options import ConvertOptions
from modelport.convert.torch_files import load_pickle_checkpoint
from modelport.errors import CheckpointError, InputError

_NAMES = (".pt", ".pth", ".ckpt")
_ARGS = re.compile(rb"(\x8c\x0a|X\x0a\x00\x00\x00)model_args")
_MODEL = re.compile(rb"(\x8c\x05|X\x05\x00\x00\x00)model")
_PARAMS = ("dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "multiple_of",
           "norm_eps", "max_seq_len")


def llama2c_file(path: Path) -> Path | None:
    """A llama2.c training checkpoint: the file, or the one ``ckpt.pt`` of a folder that
    holds no params.json / config.json."""
    if path.is_dir():
        if (path / "config.json").exists() or (path / "params.json").exists():
            return None
        path = path / "ckpt.pt"
    if not (path.is_file() and path.suffix in _NAMES):
        return None
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl")), None)
            if pkl is None or z.getinfo(pkl).file_size > 1 << 20:
                return None
            data = z.read(pkl)
    except (OSError, zipfile.BadZipFile, KeyError):
        return None
    # the two keys as pickle spells short strings (protocol 4+: 0x8c; torch's protocol 2: X)
    return path if _ARGS.search(data) and _MODEL.search(data) else None


def open_llama2c(src: Path, options: ConvertOptions) -> Opened:
    """Open a llama2.c ``ckpt.pt`` as the Meta layout it holds (see the module docstring)."""
    file = llama2c_file(src)
    if file is None:
        raise InputError("not a llama2.c training checkpoint (model + model_args)", path=src)
    ck = load_pickle_checkpoint(file, options.allow_globals)
    args = ck.obj.get("model_args") if isinstance(ck.obj, dict) else None
    model = ck.obj.get("model") if isinstance(ck.obj, dict) else None
    if not isinstance(args, dict) or not isinstance(model, dict):
        raise CheckpointError("model_args or model is not a dictionary", path=file)
    params: dict[str, Any] = {k: args[k] for k in _PARAMS if args.get(k) is not None}
    for k in ("dim", "n_layers", "n_heads", "vocab_size"):
        if not isinstance(params.get(k), int):
            raise CheckpointError(f"model_args has no integer {k!r}", path=file)
    prefix = "_orig_mod." if model and all(str(n).startswith("_orig_mod.") for n in model) \
        else None
    source = MetaSource(params=params, files=[file], state_dict_key="model",
                        strip_prefix=prefix, label="llama2.c checkpoint",
                        origin="the checkpoint's model_args")
    return open_meta(src, options, source=source)


__all__ = ["llama2c_file", "open_llama2c"]
