"""What a location is, decided once: a local path or a store URL; and secrets kept out of text.

Every verb and the CLI parse a SRC or DST through :func:`location`, so ``s3://``, ``file://``
and the other fsspec URLs always mean a store and never a local folder whose name happens to
contain ``://``; a path that only looks like a URL once ``Path`` folded its ``//`` (``s3:/x``)
is refused instead of being created on disk; Databricks' ``dbfs:/…`` is the cluster path it
names. Credentials inside a URL are refused; texts that
quote one go through :func:`modelport._io.redact.redact`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from modelport._io.redact import redact
from modelport.errors import InputError

# the stores modelport reads or writes: s3 with boto3, the rest through fsspec
STORE_SCHEMES = ("s3", "file", "gs", "gcs", "abfs", "az", "oci")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_FOLDED = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/(?!/)")


def refuse_folded(path: str | Path, *, what: str = "path") -> None:
    """Refuse ``s3:/bucket`` (a URL whose ``//`` was folded by ``Path``): never a folder."""
    s = str(path)
    m = _FOLDED.match(s)
    if m and len(m.group(1)) > 1:  # 'C:/x' on Windows is a drive, not a scheme
        raise InputError(f"{what} {redact(s)!r} looks like a {m.group(1)}:// URL with one slash",
                         hint=f"write {m.group(1)}://… for a store, or ./{redact(s)} for a "
                         "local folder of that name")


def location(value: str | os.PathLike[str], *, what: str = "path",
             stores: tuple[str, ...] = STORE_SCHEMES) -> str | Path:
    """A store URL (returned as a ``str``) or a local path (a ``Path``).

    Raises:
        InputError: an unknown scheme, a scheme this verb does not take (``stores``),
            credentials inside the URL, or a folded URL (``s3:/x``).
    """
    if isinstance(value, Path):
        refuse_folded(value, what=what)
        return value
    s = os.fspath(value)
    if s.startswith("dbfs:/") and not s.startswith("dbfs://"):
        return dbfs_path(s)
    m = _URL.match(s)
    if m is None:
        refuse_folded(s, what=what)
        return Path(s)
    scheme = m.group(1).lower()
    shown = redact(s)
    if scheme not in STORE_SCHEMES:
        raise InputError(f"{what} {shown!r}: unknown store {scheme}://",
                         hint=f"use one of {', '.join(x + '://' for x in STORE_SCHEMES)}")
    if scheme not in stores:
        msg = (f"{what} {shown!r}: takes {', '.join(x + '://' for x in stores)} URLs, not "
               f"{scheme}://" if stores else f"{what} {shown!r}: must be a local folder, not a "
               "store URL")
        raise InputError(msg, hint="write to a local folder, then run modelport upload "
                         "BUNDLE URL" if not stores or scheme != "s3" else "")
    if has_userinfo(s):
        raise InputError(f"{what} {shown!r}: credentials inside a URL are refused (they end "
                         "up in shell history, logs and reports)",
                         hint="set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    return s


def dbfs_path(s: str) -> Path:
    """Databricks' spelling of a cluster path: ``dbfs:/Volumes/c/s/v/x`` is the volume's FUSE
    mount ``/Volumes/c/s/v/x``; another ``dbfs:/x`` is ``/dbfs/x``."""
    rest = s[len("dbfs:/"):]
    return Path("/" + rest) if rest.startswith("Volumes/") else Path("/dbfs") / rest


def local_path(value: str | os.PathLike[str], *, what: str = "output") -> Path:
    """A local folder: store URLs and folded URLs are refused with a hint."""
    loc = location(value, what=what, stores=())
    assert isinstance(loc, Path)
    return loc


def has_userinfo(url: str) -> bool:
    """``scheme://user:secret@…`` (the secret may hold '/'): credentials inside a URL."""
    rest = url.split("://", 1)[-1]
    if "@" not in rest:
        return False
    before = rest.split("@", 1)[0]
    return ":" in before or "/" not in before


def endpoint(url: str | None) -> str | None:
    """An S3 endpoint URL; credentials inside it are refused."""
    if url and has_userinfo(url):
        raise InputError(f"endpoint {redact(url)!r}: credentials inside a URL are refused",
                         hint="set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    return url


__all__ = ["STORE_SCHEMES", "endpoint", "has_userinfo", "local_path", "location",
           "refuse_folded"]
