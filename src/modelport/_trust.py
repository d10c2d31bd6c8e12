"""No code from a model folder runs: one guard around every transformers call on user files.

transformers asks "Do you wish to run the custom code? [y/N]" on stdin when a folder's
``config.json`` or ``tokenizer_config.json`` has an ``auto_map`` and no class it ships, unless
``trust_remote_code`` is given. Every call modelport makes on a user's folder passes
``trust_remote_code=False`` (``tests/unit/test_trust_calls.py`` scans the source for it); a folder
that needs its own code is then refused by transformers, and :func:`guard` turns that refusal
into a :class:`RemoteCodeError` naming the ``auto_map`` entries. Code runs only where a verb
offers ``--trust-remote-code`` and the user passed it (the report records it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelport._io import jsonio
from modelport.errors import RemoteCodeError

SIDE_FILES = ("config.json", "tokenizer_config.json")
_TRANSFORMERS_SAYS = ("trust_remote_code", "custom code", "contains custom code")


def auto_map_entries(folder: str | Path, names: tuple[str, ...] = SIDE_FILES) -> list[str]:
    """The ``auto_map`` values of the folder's config.json and tokenizer_config.json
    (``AutoConfig -> configuration_x.XConfig``), in file order; malformed ones skipped."""
    out: list[str] = []
    for name in names:
        try:
            obj = jsonio.load(Path(folder) / name)
        except (OSError, ValueError):
            continue
        amap = obj.get("auto_map") if isinstance(obj, dict) else None
        if not isinstance(amap, dict):
            continue
        for key, value in amap.items():
            values = value if isinstance(value, list) else [value]
            out += [f"{key} -> {v}" for v in values if isinstance(v, str) and v]
    return out


@contextmanager
def guard(folder: str | Path, *, hint: str = "") -> Iterator[None]:
    """Around a transformers call made with ``trust_remote_code=False``: its refusal to run
    the folder's code becomes a :class:`RemoteCodeError` that names the ``auto_map``
    entries (``hint``: the verb's own way forward)."""
    try:
        yield
    except (ValueError, OSError, ImportError) as e:
        text = str(e)
        if any(s in text for s in _TRANSFORMERS_SAYS):
            raise RemoteCodeError(auto_map_entries(folder) or ["(none listed)"], path=folder,
                                  hint=hint) from e
        raise


__all__ = ["auto_map_entries", "guard"]
