"""Where the tensors are in an unpickled training or framework checkpoint: a flat state dict,
or one under a conventional key (``state_dict``, ``model``, ``module``, ...); everything else is
listed as left out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.convert.pickle_safe import Record, TensorRef
from modelport.errors import CheckpointError, InputError


@dataclass
class Skipped:
    """A name or file that is not carried into the output, and why."""

    name: str
    reason: str


_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network")


def _flatten(obj: Any, prefix: str, out: list[tuple[str, Any]]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = f"{prefix}{k}" if isinstance(k, str) else f"{prefix}{k!r}"
            _flatten(v, key + ".", out) if isinstance(v, dict) else out.append((key, v))
    else:
        out.append((prefix.rstrip("."), obj))


def _count_tensors(obj: Any) -> int:
    if isinstance(obj, TensorRef):
        return 1
    if isinstance(obj, dict):
        return sum(_count_tensors(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_count_tensors(v) for v in obj)
    if isinstance(obj, Record):
        return _count_tensors(obj.args) + _count_tensors(obj.state)
    return 0


def select_state_dict(
    obj: Any, path: Path, key: str | None
) -> tuple[list[tuple[str, Any]], str | None, list[Skipped]]:
    """Find the tensors to convert in an unpickled checkpoint.

    Returns flattened (name, value) pairs, the key path used, and what was left out.
    """
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"checkpoint holds a {type(obj).__name__}, not a dict of tensors", path=path,
            hint="save model.state_dict() rather than the model object",
        )
    skipped: list[Skipped] = []
    chosen = None
    if key is not None:
        node: Any = obj
        for part in key.split("/"):
            if not isinstance(node, dict) or part not in node:
                raise InputError(f"no entry {key!r} in the checkpoint", path=path,
                                 hint=f"top-level keys: {', '.join(map(str, list(obj)[:10]))}")
            node = node[part]
        if not isinstance(node, dict):
            raise InputError(f"entry {key!r} is not a dict of tensors", path=path)
        chosen = key
    else:
        flat: list[tuple[str, Any]] = []
        _flatten(obj, "", flat)
        if flat and all(isinstance(v, TensorRef) for _, v in flat):
            return flat, None, []
        for k in _STATE_DICT_KEYS:
            if isinstance(obj.get(k), dict) and _count_tensors(obj[k]) > 0:
                chosen = k
                break
        if chosen is None:
            node, chosen = obj, None
        else:
            node = obj[chosen]
    if chosen is not None:
        for k, v in obj.items():
            if k != chosen.split("/")[0]:
                n = _count_tensors(v)
                what = f"{n} tensor(s)" if n else type(v).__name__
                skipped.append(Skipped(str(k), f"outside {chosen!r} ({what}); not converted"))
    flat = []
    _flatten(node, "", flat)
    pairs = []
    for name, v in flat:
        if isinstance(v, TensorRef):
            pairs.append((name, v))
        else:
            skipped.append(Skipped(name, f"not a tensor ({type(v).__name__}); not converted"))
    if not pairs:
        raise CheckpointError("no tensors found in the checkpoint", path=path,
                              hint="pass --state-dict-key to choose where the tensors are")
    return pairs, chosen, skipped

