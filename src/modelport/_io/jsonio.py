"""JSON from files we did not write: every malformed input is a ValueError.

json.loads raises RecursionError on a nesting bomb (``[[[[...``) and UnicodeDecodeError on
bytes that are not UTF-8; callers catch ``(OSError, ValueError)`` and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelport.errors import InputError

# the JSON side files a model folder may hold: a broken one is refused by every verb
SIDE_FILES = ("config.json", "tokenizer_config.json", "adapter_config.json", "params.json",
              "generation_config.json", "special_tokens_map.json", "preprocessor_config.json")


def loads(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except RecursionError as e:
        raise ValueError("JSON nested too deeply") from e


def load(path: Path) -> Any:
    """Parse a JSON file (OSError when it cannot be read, ValueError when it is not JSON)."""
    return loads(Path(path).read_bytes())


def require_valid(folder: Path, names: tuple[str, ...] = SIDE_FILES) -> None:
    """Refuse a folder whose JSON side files (``SIDE_FILES``, at its top) do not parse,
    naming the file and the line and column.

    Raises:
        InputError: the first such file.
    """
    if not Path(folder).is_dir():
        return
    for name in names:
        p = Path(folder) / name
        if not p.is_file():
            continue
        data = p.read_bytes()
        try:
            loads(data)
        except json.JSONDecodeError as e:
            raise InputError(f"is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                             path=p, hint=f"fix {name} (a JSON linter shows where), or restore "
                             "it from the model's source") from e
        except UnicodeDecodeError as e:
            raise InputError(f"is not UTF-8 text (byte {e.start})", path=p,
                             hint=f"fix {name}, or restore it from the model's source") from e
        except ValueError as e:
            raise InputError(f"is not valid JSON: {e}", path=p,
                             hint=f"fix {name}, or restore it from the model's source") from e


def load_index(path: Path) -> dict[str, Any]:
    """A ``*.index.json`` whose ``weight_map`` is an object (ValueError otherwise)."""
    obj = load(path)
    wm = obj.get("weight_map") if isinstance(obj, dict) else None
    if not isinstance(wm, dict):
        raise ValueError("weight_map is missing or not an object")
    return obj
