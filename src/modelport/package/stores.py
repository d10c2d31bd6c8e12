"""Stores other than S3, through fsspec: ``file://`` here; ``gs://``, ``abfs://``, ``oci://``
with their fsspec packages (``pip install 'modelport[stores]'``), untested here.

Same contract as the S3 path: each file is streamed through sha256 while it is written, lands
under a temporary name and is renamed into place, files already there with the right size and
sha256 are skipped, and the manifest goes last.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from modelport._io.hashing import CHUNK_BYTES
from modelport._io.paths import open_no_follow
from modelport.errors import MissingDependencyError, RemoteIntegrityError, StorageError
from modelport.package.manifest import MANIFEST, read_manifest

# protocol -> (fsspec implementation package, extra)
KNOWN = {"file": (None, None), "gs": ("gcsfs", "stores"), "gcs": ("gcsfs", "stores"),
         "abfs": ("adlfs", "stores"), "az": ("adlfs", "stores"), "oci": ("ocifs", "stores")}


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, root path) for a URL; a clear error when its package is missing."""
    proto = url.split("://", 1)[0]
    if proto not in KNOWN:
        raise StorageError(f"unsupported store {proto}://", url=url, op="open",
                           hint="supported: s3://, file://, gs://, abfs://, oci://")
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as e:
        raise MissingDependencyError(KNOWN[proto][0] or proto, KNOWN[proto][1] or "stores"
                                     ) from e
    return fs, root.rstrip("/")


def _remote_sha(fs: Any, path: str) -> str:
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def upload_fs(bundle: Path, url: str, files: list[Any], progress: Any) -> tuple[list[str],
                                                                                list[str], int]:
    fs, root = filesystem(url)
    sent, uploaded, skipped = 0, [], []
    try:
        fs.makedirs(root, exist_ok=True)
        for f in files:
            dest = f"{root}/{f.path}"
            if fs.exists(dest) and fs.size(dest) == f.size and _remote_sha(fs, dest) == f.sha256:
                skipped.append(f.path)
                continue
            fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
            partial = f"{dest}.modelport-partial"
            h = hashlib.sha256()
            n = 0
            with open_no_follow(bundle, f.path) as src, fs.open(partial, "wb") as out:
                while chunk := src.read(CHUNK_BYTES):
                    h.update(chunk)
                    out.write(chunk)
                    n += len(chunk)
                    if progress is not None:
                        progress.update(len(chunk))
            if h.hexdigest() != f.sha256 or n != f.size or fs.size(partial) != f.size:
                fs.rm(partial)
                raise RemoteIntegrityError(f"{f.path}: sent {n} bytes with sha256 "
                                           f"{h.hexdigest()[:12]}…, the manifest says {f.size}"
                                           f" / {f.sha256[:12]}…", url=url, op="verify",
                                           hint="the local file changed after packaging")
            fs.mv(partial, dest)
            sent += n
            uploaded.append(f.path)
        with open_no_follow(bundle, MANIFEST) as src, fs.open(f"{root}/{MANIFEST}", "wb") as out:
            out.write(src.read())
    except (StorageError, MissingDependencyError):
        raise
    except OSError as e:
        raise StorageError(f"{type(e).__name__}: {e}", url=url, op="upload") from e
    return uploaded, skipped, sent


def verify_fs(url: str) -> tuple[int, list[str], list[str], list[str]]:
    fs, root = filesystem(url)
    try:
        with fs.open(f"{root}/{MANIFEST}", "rb") as fh:
            m = read_manifest(fh.read(), f"{url}/{MANIFEST}")
        present = {p[len(root) + 1:] for p in fs.find(root)}
    except FileNotFoundError as e:
        raise StorageError("no manifest there", url=url, op="verify",
                           hint="upload the bundle first") from e
    missing, changed = [], []
    for f in m.files:
        if f.path not in present:
            missing.append(f.path)
        elif fs.size(f"{root}/{f.path}") != f.size or _remote_sha(fs, f"{root}/{f.path}"
                                                                   ) != f.sha256:
            changed.append(f.path)
    listed = {f.path for f in m.files} | {MANIFEST}
    return len(m.files), missing, sorted(present - listed), changed


__all__ = ["filesystem", "upload_fs", "verify_fs"]
