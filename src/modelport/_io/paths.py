"""Path checks: nothing modelport reads or writes may leave the folder it was given."""

from __future__ import annotations

import os
from pathlib import Path

from modelport.errors import CheckpointError


def _hf_blobs_dir(root: Path) -> Path | None:
    """The ``blobs`` folder of a Hugging Face cache snapshot (``<repo>/snapshots/<rev>``)."""
    if root.parent.name == "snapshots":
        return root.parent.parent / "blobs"
    return None


def inside(root: Path, rel: str, *, what: str, source: Path) -> Path:
    """Resolve ``rel`` under ``root`` and refuse anything that leaves it.

    Symlinks are followed; they may point inside ``root`` or, for a Hugging Face cache
    snapshot, into that repository's ``blobs`` folder. Nothing else is accepted.

    Raises:
        CheckpointError: ``rel`` is absolute, climbs out with ``..``, or links outside.
    """
    if not rel or os.path.isabs(rel) or "\\" in rel or "\x00" in rel:
        raise CheckpointError(
            f"{what} {rel!r} is not a relative path: it points outside the folder", path=source,
            hint="fix or remove the entry; modelport never reads outside the model folder",
        )
    parts = Path(rel).parts
    if ".." in parts:
        raise CheckpointError(
            f"{what} {rel!r} points outside the folder", path=source,
            hint="fix or remove the entry; modelport never reads outside the model folder",
        )
    target = root / rel
    real_root = root.resolve()
    real = target.resolve()
    allowed = [real_root]
    blobs = _hf_blobs_dir(real_root)
    if blobs is not None:
        allowed.append(blobs.resolve())
    if not any(real == a or a in real.parents for a in allowed):
        raise CheckpointError(
            f"{what} {rel!r} is a link to {real}, outside the folder", path=source,
            hint="copy the real file into the folder; modelport never follows links out of it",
        )
    return target
