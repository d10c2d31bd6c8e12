"""Every error modelport raises.

Each class says when it is raised, carries typed fields and a ``hint`` (what to do next).
``str(err)`` is the message followed by the hint, so the CLI can print it in one or two lines.
Message, path and hint pass through :func:`modelport._io.redact.redact`: no error carries a
credential.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from modelport._io.redact import redact


def _short_list(items: Iterable[str], limit: int = 10) -> str:
    """Join items, showing the first ``limit`` and then a count."""
    items = list(items)
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f", ... ({len(items) - limit} more)"
    return shown


class ModelportError(Exception):
    """Base class of every error modelport raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str = "") -> None:
        self.message = redact(message)
        self.path = redact(str(path)) if path is not None else None
        self.hint = redact(hint)
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        text = f"{where}{self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class InputError(ModelportError, ValueError):
    """Raised for a bad path, a bad option or a bad combination of them."""

    exit_code = 2


class MissingDependencyError(ModelportError, ImportError):
    """Raised when an optional extra is needed but not installed; names the extra."""

    exit_code = 2

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"this step needs the optional package {package!r}",
            hint=f"pip install 'modelport[{extra}]'",
        )


class CheckpointError(ModelportError):
    """Raised when a weight file is corrupt, truncated or inconsistent.

    ``member`` names the part of the file (zip member, tensor, index entry) where it broke.
    """

    exit_code = 2

    def __init__(
        self, message: str, *, path: str | Path | None = None, member: str | None = None,
        hint: str = "",
    ) -> None:
        self.member = member
        if member:
            message = f"{message} (at {member})"
        super().__init__(message, path=path, hint=hint)


class UnsafeCheckpointError(CheckpointError):
    """Raised when a pickle would import globals outside the allow-list.

    Nothing from the file was executed: the globals were recognised by name only.
    """

    exit_code = 3

    def __init__(self, globals_: Sequence[str], *, path: str | Path | None = None) -> None:
        self.globals = sorted(set(globals_))
        super().__init__(
            f"refused: the pickle would import {len(self.globals)} global(s) outside the "
            f"allow-list: {_short_list(self.globals)}; nothing was executed",
            path=path,
            hint="if these are inert data classes you trust, pass --allow-global MODULE.NAME "
            "for each (they are rebuilt as plain records, never imported)",
        )


class UnsupportedError(ModelportError):
    """Raised for input that is valid but that modelport does not handle (yet)."""

    exit_code = 2

    def __init__(
        self, what: str, *, supported: Sequence[str] = (), path: str | Path | None = None,
        hint: str = "",
    ) -> None:
        self.what = what
        self.supported = list(supported)
        if supported and not hint:
            hint = f"supported: {_short_list(self.supported)}"
        super().__init__(what, path=path, hint=hint)


class RemoteCodeError(InputError):
    """Raised when a model folder needs its own Python code (``auto_map``) for a step and
    running it was not asked for; ``entries`` are the ``auto_map`` values. Nothing ran."""

    def __init__(self, entries: Sequence[str], *, path: str | Path | None = None,
                 hint: str = "") -> None:
        self.entries = list(entries)
        super().__init__(
            f"the model needs its own code (auto_map: {_short_list(self.entries, 4)}); "
            "modelport does not run a model folder's code, nothing was run", path=path,
            hint=hint or "use a model whose class transformers ships, or add "
            "\"architectures\" naming such a class to config.json")


class VerificationError(ModelportError):
    """Raised when a written output differs from its source; the output is removed."""

    exit_code = 4


class OutputExistsError(InputError, FileExistsError):
    """Raised when the destination exists and overwriting was not asked for."""


class StorageError(ModelportError):
    """Raised when an object store refuses or fails an operation (``url``, ``op``)."""

    exit_code = 6

    def __init__(self, message: str, *, url: str, op: str, hint: str = "") -> None:
        self.url = redact(url)
        self.op = op
        super().__init__(f"{op} {self.url}: {message}", hint=hint)


class RemoteIntegrityError(StorageError):
    """Raised when what arrived in the store differs from the bundle (size or sha256)."""


class TargetCheckFailed(ModelportError):
    """Raised by ``package`` when ``check`` finds errors (carries the report in ``report``)."""

    exit_code = 1

    def __init__(self, message: str, report: object, *, path: str | None = None) -> None:
        self.report = report
        super().__init__(message, path=path,
                         hint="fix the findings (modelport check shows the commands) or pass "
                         "--force, which is recorded in the manifest")


class OutputWriteError(ModelportError, OSError):
    """Raised when an output cannot be written (disk full, file too large, permissions);
    nothing partial is left behind."""

    exit_code = 2


class InsufficientMemoryError(ModelportError):
    """Raised before quantizing when the estimated memory (``needed`` bytes) is not
    ``available``."""

    exit_code = 2

    def __init__(self, needed: int, available: int, *, path: str | Path | None = None) -> None:
        self.needed, self.available = needed, available
        super().__init__(f"needs about {needed / 2**30:.1f} GiB of memory, "
                         f"{available / 2**30:.1f} GiB is available", path=path,
                         hint="use a machine with more memory or a GPU, lower --samples/"
                         "--seqlen, or pass --no-memory-check to try anyway")


class QuantizeFailed(ModelportError):
    """Raised when the quantizer (GPTQModel) fails; the hint quotes its last log lines."""

    exit_code = 2


class TokenizerParityError(ModelportError):
    """Raised when the written tokenizer.json would disagree with the tokenizer class."""

    exit_code = 4


class AmbiguousTokenizerError(InputError):
    """Raised when the files do not state the tokenizer class; names the candidates."""

    exit_code = 1


class ServeRefusedError(ModelportError):
    """Raised when vLLM does not load a bundle (``serve-check``); vLLM's reason is the
    message."""

    exit_code = 2


class ServeMismatchError(ModelportError):
    """Raised by ``prepare --serve-check`` when vLLM's greedy tokens differ from
    transformers': the bundle is kept and not uploaded."""

    exit_code = 1
