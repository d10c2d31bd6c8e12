"""Path checks: nothing modelport reads or writes may leave the folder it was given."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from modelport._io.urls import refuse_folded
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
    refuse_folded(dst, what="output")
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


_LINK_HINT = ("a bundle holds only regular files: re-create it with modelport package "
              "(which copies what links point to)")


def links_under(root: Path) -> list[str]:
    """Every symbolic link under ``root``, hidden entries included, as relative paths."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                found.append(os.path.relpath(p, root))
    return sorted(found)


def refuse_links(root: Path) -> None:
    """Refuse a bundle that holds a symbolic link anywhere, naming the links.

    Raises:
        InputError: one or more links.
    """
    found = links_under(root)
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise InputError(f"the bundle holds symbolic link(s): {shown}; nothing was read "
                         "through them", path=root, hint=_LINK_HINT)


def open_no_follow(root: Path, rel: str) -> BinaryIO:
    """Open ``root/rel`` for reading without following a link anywhere below ``root``: each
    folder and the file itself are opened with ``O_NOFOLLOW`` relative to the one before, so a
    link swapped in after a check is refused too.

    Raises:
        InputError: ``rel`` leaves ``root``, or a part of it is a link or not a regular file.
    """
    parts = Path(rel).parts
    if not parts or os.path.isabs(rel) or ".." in parts:
        raise InputError(f"{rel!r} is not a path inside the bundle", path=root, hint=_LINK_HINT)
    nofollow = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, nofollow | os.O_DIRECTORY, dir_fd=fd)
            except OSError as e:
                raise _not_regular(root, rel, e) from e
            os.close(fd)
            fd = nxt
        try:
            ffd = os.open(parts[-1], nofollow, dir_fd=fd)
        except OSError as e:
            raise _not_regular(root, rel, e) from e
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(ffd).st_mode):
        os.close(ffd)
        raise InputError(f"{rel} is not a regular file", path=root, hint=_LINK_HINT)
    return os.fdopen(ffd, "rb")


def _not_regular(root: Path, rel: str, e: OSError) -> Exception:
    if e.errno in (errno.ELOOP, errno.ENOTDIR):
        return InputError(f"{rel} is a symbolic link (or passes through one); nothing was read "
                          "through it", path=root, hint=_LINK_HINT)
    return e


def walk_files(root: Path) -> list[str]:
    """Every file under ``root`` (relative, sorted), hidden files and folders left out and no
    link followed."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            out.append(os.path.relpath(os.path.join(dirpath, fn), root))
    return out
