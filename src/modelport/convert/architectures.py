"""Which model class a folder's weights belong to, when config.json does not say.

``config.save_pretrained()`` on a config built in code writes no ``architectures``; every target
needs it. The class is certain when exactly one of the classes transformers maps the config's
``model_type`` to (causal LM, seq2seq LM, masked LM, base model) has exactly the tensors the
weights hold, counting the ones it ties (an omitted ``lm_head.weight``). Each candidate is
built on the meta device from config.json: nothing is allocated, nothing is guessed.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from modelport._io import jsonio
from modelport._io.st_header import read_header
from modelport._trust import guard
from modelport._types import Record
from modelport.errors import InputError

_NO_CODE_HINT = "add \"architectures\" naming a class transformers ships to config.json"
MAPPINGS = ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
            "MODEL_FOR_MASKED_LM_MAPPING_NAMES", "MODEL_MAPPING_NAMES")


class ArchitectureInference(Record):
    model_type: str
    candidates: list[str]
    fits: list[str]
    evidence: str

    @property
    def certain(self) -> str | None:
        return self.fits[0] if len(self.fits) == 1 else None


def _tensor_names(folder: Path) -> set[str]:
    names: set[str] = set()
    for p in sorted(folder.glob("*.safetensors")):
        names |= set(read_header(p).tensors)
    return names


def _expected(cls: Any, config: Any) -> tuple[set[str], set[str]]:
    import torch

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(config)
    tied = getattr(model, "_tied_weights_keys", None) or {}
    tied_names = set(tied) if config.tie_word_embeddings or not isinstance(tied, dict) else set()
    return set(model.state_dict()), tied_names


def candidates(model_type: str) -> list[str]:
    """The classes transformers maps ``model_type`` to: causal LM, seq2seq LM, masked LM, base."""
    from transformers.models.auto import modeling_auto

    out: list[str] = []
    for name in MAPPINGS:
        cls = getattr(modeling_auto, name, {}).get(model_type)
        if isinstance(cls, str) and cls not in out:
            out.append(cls)
    return out


def load_config(folder: Path) -> Any:
    """transformers' config of the folder, its warnings kept quiet; never the folder's own
    code (a config that needs it raises :class:`RemoteCodeError`)."""
    import transformers

    try:
        with warnings.catch_warnings(), guard(folder, hint=_NO_CODE_HINT):
            warnings.simplefilter("ignore")
            return transformers.AutoConfig.from_pretrained(folder, trust_remote_code=False)
    except InputError:
        raise
    except (TypeError, KeyError, AttributeError, ValueError) as e:  # a malformed value
        first = (str(e).splitlines() or [""])[0][:200]
        raise InputError(f"transformers cannot read it ({type(e).__name__}: {first})",
                         path=Path(folder) / "config.json",
                         hint="fix the value it names (compare with the model's source)") from e


def built(classes: list[str], config: Any) -> list[tuple[str, set[str], set[str]]]:
    """(class, its tensor names, the tied ones) for each class ``config`` can build."""
    import transformers

    out = []
    for c in classes:
        cls = getattr(transformers, c, None)
        if cls is None:
            continue
        try:
            expected, tied = _expected(cls, config)
        except Exception:  # a class that cannot be built from this config does not fit  # noqa: S112
            continue
        out.append((c, expected, tied))
    return out


def infer_architecture(folder: str | Path) -> ArchitectureInference:
    """The classes whose tensors the folder's safetensors weights are, for its model_type."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    try:
        raw = jsonio.load(cfg_path)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read config.json ({e})", path=cfg_path) from e
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if not model_type or not isinstance(model_type, str):
        raise InputError("config.json has no model_type (a string)", path=cfg_path)
    from modelport.convert import arch_names

    classes = arch_names.candidates(model_type) or candidates(model_type)
    names = _tensor_names(folder)
    if not names:
        return ArchitectureInference(model_type=model_type, candidates=classes, fits=[],
                                     evidence="no safetensors weights to compare")
    models = arch_names.expected(raw, classes)
    how = "from modelport's name table"
    if models is None:
        models, how = built(classes, load_config(folder)), "built with transformers"
    fits = [c for c, expected, tied in models if names <= expected and expected - names <= tied]
    return ArchitectureInference(
        model_type=model_type, candidates=classes, fits=fits,
        evidence=f"{len(names)} tensors compared with {len(classes)} classes of "
                 f"model_type {model_type} for config.json, {how}")
