"""Outputs that are complete or absent: temp name, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from modelport._io.urls import local_path
from modelport.errors import ModelportError, OutputExistsError, OutputWriteError

TMP_MARK = ".modelport-tmp-"


def fsync_dir(path: Path) -> None:
    fsync_path(path, os.O_DIRECTORY)


def fsync_path(path: Path, flags: int = 0) -> None:
    """fsync a file (or, with ``os.O_DIRECTORY``, a folder) by its path."""
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(parent: Path, prefix: str) -> None:
    """Remove temp files and folders ``<prefix>*.modelport-tmp-PID*`` of dead processes."""
    for p in parent.glob(f"{prefix}{TMP_MARK}*"):
        try:
            pid = int(p.name.rsplit(TMP_MARK, 1)[1].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(dst: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``dst``; on success it becomes ``dst`` in one rename.

    On any exception the temp folder is removed and ``dst`` is left as it was. A killed run
    leaves only a hidden ``.NAME.modelport-tmp-PID-*`` folder, removed by the next run.

    Raises:
        OutputExistsError: ``dst`` exists and ``overwrite`` is False.
    """
    dst = local_path(dst)  # a store URL, or one Path folded to s3:/x, is never a folder
    if dst.exists() and not overwrite:
        raise OutputExistsError("already exists", path=dst,
                                hint="choose another destination or pass --overwrite")
    parent = dst.parent
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale(parent, f".{dst.name}")
    tmp = parent / f".{dst.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        yield tmp
        fsync_dir(tmp)
        if dst.exists() or dst.is_symlink():
            if not overwrite:
                raise OutputExistsError("appeared while writing", path=dst,
                                        hint="choose another destination or pass --overwrite")
            old = parent / f".{dst.name}.modelport-old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(dst, old)
            os.rename(tmp, dst)
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        else:
            os.rename(tmp, dst)
        fsync_dir(parent)
    except ModelportError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputWriteError(f"cannot write output: {e.strerror or e}", path=dst,
                               hint="check free space, quotas and permissions; nothing was "
                               "left behind") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a small file under a temp name, fsync it, rename it into place."""
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputWriteError(f"cannot write: {e.strerror or e}", path=path,
                               hint="check free space, quotas and permissions; the old file "
                               "is unchanged") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
