"""Remember sha256 digests computed by earlier steps, so later steps need not re-read files.

The cache lives in ``<folder>/.modelport/hashes.json`` (hidden: never bundled or uploaded).
An entry is trusted only while the file's size, mtime and inode are unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelport._io import jsonio
from modelport._io.atomic import write_bytes_atomic
from modelport._io.hashing import sha256_file

CACHE = Path(".modelport") / "hashes.json"


def _key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def load(folder: Path) -> dict[str, dict[str, object]]:
    try:
        data = jsonio.load(folder / CACHE)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def record(folder: Path, digests: dict[str, str]) -> None:
    """Store ``{relative path: sha256}`` for files that exist now under ``folder``.

    The caller vouches that each digest belongs to the file as it is now."""
    data = load(folder)
    for rel, sha in digests.items():
        p = folder / rel
        if p.is_file():
            data[rel] = {"sha256": sha, "stat": _key(p)}
    (folder / CACHE).parent.mkdir(exist_ok=True)
    write_bytes_atomic(folder / CACHE, json.dumps(data, sort_keys=True).encode())


def cached(folder: Path, rel: str, cache: dict[str, dict[str, object]] | None = None
           ) -> str | None:
    """The cached sha256 of a file, if the file is unchanged since it was recorded."""
    entry = (cache if cache is not None else load(folder)).get(rel)
    path = folder / rel
    if entry and path.is_file() and entry.get("stat") == _key(path) and isinstance(
            entry.get("sha256"), str):
        return str(entry["sha256"])
    return None


def sha256(folder: Path, rel: str, cache: dict[str, dict[str, object]] | None = None
           ) -> tuple[str, bool]:
    """The file's sha256 and whether it came from the cache."""
    hit = cached(folder, rel, cache)
    return (hit, True) if hit else (sha256_file(folder / rel), False)


__all__ = ["cached", "load", "record", "sha256"]
