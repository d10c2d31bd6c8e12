"""Path checks: nothing modelport reads or writes may leave the folder it was given."""

from __future__ import annotations

import os
from pathlib import Path

from modelport.errors import CheckpointError, InputError, OutputExistsError


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


def check_output(src: Path, dst: Path, *, overwrite: bool = False) -> None:
    """Refuse an output folder that is, contains or lies inside the input, is a file, or
    exists without ``overwrite``: decided before any work starts.

    Raises:
        InputError, OutputExistsError.
    """
    s = src.resolve()
    d = dst.resolve() if dst.exists() else dst.absolute()
    if d == s:
        raise InputError("the output is the input", path=dst,
                         hint="write the output to a new folder; the input is never changed")
    if src.is_dir() and s in d.parents:
        raise InputError("the output is inside the input folder", path=dst,
                         hint="write the output outside the source folder")
    if dst.exists() and d in s.parents:
        raise InputError("the output folder contains the input", path=dst,
                         hint="choose another destination")
    if dst.exists() and not dst.is_dir():
        raise InputError("the output exists and is not a folder", path=dst,
                         hint="name a folder to create")
    if dst.exists() and not overwrite:
        raise OutputExistsError("already exists", path=dst,
                                hint="choose another destination or pass --overwrite")
