"""JSON from files we did not write: every malformed input is a ValueError.

json.loads raises RecursionError on a nesting bomb (``[[[[...``) and UnicodeDecodeError on
bytes that are not UTF-8; callers catch ``(OSError, ValueError)`` and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def loads(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except RecursionError as e:
        raise ValueError("JSON nested too deeply") from e


def load(path: Path) -> Any:
    """Parse a JSON file (OSError when it cannot be read, ValueError when it is not JSON)."""
    return loads(Path(path).read_bytes())


def load_index(path: Path) -> dict[str, Any]:
    """A ``*.index.json`` whose ``weight_map`` is an object (ValueError otherwise)."""
    obj = load(path)
    wm = obj.get("weight_map") if isinstance(obj, dict) else None
    if not isinstance(wm, dict):
        raise ValueError("weight_map is missing or not an object")
    return obj
