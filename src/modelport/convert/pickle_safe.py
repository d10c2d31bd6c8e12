"""The only place that unpickles. Nothing in a pickle is ever imported or executed.

``find_class`` maps every global a checkpoint may name to a stand-in of our own: torch's
rebuild functions become functions that return :class:`TensorRef` records (dtype, shape,
stride, storage key), storage classes become dtype markers, and plain containers stay plain.
A global outside the allow-list is *recorded* and replaced by an inert class so the scan can
continue and name every offender; the load then fails with :class:`UnsafeCheckpointError`.
Globals a user allows explicitly are rebuilt as :class:`Record` objects, never imported.

Tensor data is never read here: :mod:`modelport.convert.torch_files` locates the storages
(zip member offset, or offset in a legacy file) and :mod:`modelport.convert.sources` maps
them lazily.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.errors import CheckpointError, UnsafeCheckpointError, UnsupportedError

# torch storage class name -> torch dtype name (element size from _ELEM_SIZE)
_STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
_ELEM_SIZE = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
    "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "uint16": 2, "uint32": 4, "uint64": 8,
    "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e4m3fnuz": 1, "float8_e5m2fnuz": 1,
    "complex64": 8, "complex128": 16,
}
_UNSUPPORTED_TORCH = {
    "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_sparse_csr_tensor",
    "torch._utils._rebuild_qtensor", "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_wrapper_subclass", "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_device_tensor_from_numpy", "torch._utils._rebuild_xla_tensor",
    "torch._utils._rebuild_mtia_tensor", "torch._utils._rebuild_device_tensor_from_cpu_tensor",
}


def element_size(dtype: str) -> int:
    return _ELEM_SIZE[dtype]


@dataclass(frozen=True)
class DtypeMarker:
    """Stands for a ``torch.<dtype>`` global."""

    name: str


@dataclass(frozen=True)
class StorageType:
    """Stands for a ``torch.<X>Storage`` class; dtype None means UntypedStorage (bytes)."""

    dtype: str | None


@dataclass(frozen=True)
class StorageRef:
    """A storage named by a checkpoint: where its bytes are is resolved by the reader."""

    key: str
    dtype: str | None  # None until a tensor gives it one (untyped storages)
    numel: int  # elements of ``dtype``, or bytes for untyped storages
    location: str
    view_offset: int = 0  # legacy storage views: element offset into the root storage


@dataclass(frozen=True)
class TensorRef:
    """A tensor as the checkpoint describes it; no data is read."""

    storage: StorageRef
    dtype: str
    offset: int  # in elements
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * _ELEM_SIZE[self.dtype]

    def extent(self) -> int:
        """Number of elements from ``offset`` this tensor reaches into its storage."""
        if self.numel == 0:
            return 0
        return 1 + sum((s - 1) * st for s, st in zip(self.shape, self.stride, strict=True))

    def is_contiguous(self) -> bool:
        expected, acc = [], 1
        for s in reversed(self.shape):
            expected.append(acc)
            acc *= s
        return all(
            s == 1 or st == e
            for s, st, e in zip(self.shape, self.stride, reversed(expected), strict=True)
        )


class Record:
    """An object of an explicitly allowed global, rebuilt as inert data (never imported).

    ``global_name`` is the ``module.name`` the pickle asked for; ``args``, ``state`` and
    ``items`` hold what the pickle passed to it.
    """

    global_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Record:
        self = object.__new__(cls)
        self.args = args
        self.state = None
        self.items: list[Any] = []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, x: Any) -> None:
        self.items.append(x)

    def extend(self, xs: Iterable[Any]) -> None:
        self.items.extend(xs)

    def __setitem__(self, k: Any, v: Any) -> None:
        self.items.append((k, v))

    def __repr__(self) -> str:
        return f"Record({self.global_name})"


class _Inert:
    """Base of the classes that stand in for refused globals: accepts anything, does nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, k: Any, v: Any) -> None:
        pass

    def append(self, x: Any) -> None:
        pass

    def extend(self, xs: Any) -> None:
        pass


def _as_int_tuple(x: Any, what: str) -> tuple[int, ...]:
    if isinstance(x, int) and not isinstance(x, bool):
        return (x,)
    if not isinstance(x, tuple | list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in x
    ):
        raise CheckpointError(f"malformed tensor record: {what} is {type(x).__name__}")
    return tuple(x)


def _rebuild_tensor(
    storage: Any, offset: Any, size: Any, stride: Any, *rest: Any, dtype: str | None = None
) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise CheckpointError("malformed tensor record: storage is not a storage reference")
    if not isinstance(offset, int) or offset < 0:
        raise CheckpointError("malformed tensor record: bad storage offset")
    shape, strides = _as_int_tuple(size, "size"), _as_int_tuple(stride, "stride")
    if len(shape) != len(strides) or any(s < 0 for s in shape) or any(s < 0 for s in strides):
        raise CheckpointError(f"malformed tensor record: size {shape} / stride {strides}")
    dtype = dtype or storage.dtype
    if dtype is None:
        raise CheckpointError("malformed tensor record: untyped storage without a dtype")
    if dtype not in _ELEM_SIZE:
        raise UnsupportedError(f"tensor dtype {dtype} is not supported")
    ref = TensorRef(storage, dtype, offset + storage.view_offset, shape, strides)
    esize = _ELEM_SIZE[dtype]
    storage_bytes = storage.numel * (1 if storage.dtype is None else _ELEM_SIZE[storage.dtype])
    if (ref.offset + ref.extent()) * esize > storage_bytes + storage.view_offset * esize:
        raise CheckpointError(
            f"tensor of shape {shape} at offset {offset} needs more than the "
            f"{storage_bytes} bytes of storage {storage.key!r}"
        )
    return ref


def _rebuild_tensor_v2(storage, offset, size, stride, *rest):  # type: ignore[no-untyped-def]
    return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(storage, offset, size, stride, req, hooks, dtype, *rest):  # type: ignore[no-untyped-def]
    if not isinstance(dtype, DtypeMarker):
        raise CheckpointError("malformed tensor record: dtype is not a torch dtype")
    return _rebuild_tensor(storage, offset, size, stride, dtype=dtype.name)


def _rebuild_parameter(data, *rest):  # type: ignore[no-untyped-def]
    return data


def _rebuild_from_type_v2(func, new_type, args, state):  # type: ignore[no-untyped-def]
    if not callable(func) or not isinstance(args, tuple):
        raise CheckpointError("malformed tensor record in _rebuild_from_type_v2")
    return func(*args)


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # protocol-2 pickles encode bytes as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("malformed bytes record (_codecs.encode)")
    return text.encode("latin1")


class _TypeMarker:
    """Stands for torch.Tensor / torch.nn.Parameter passed as a type argument."""


_ALLOWED: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict,
    "torch._utils._rebuild_tensor": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.nn.parameter.Parameter": _TypeMarker,
    "torch.Tensor": _TypeMarker,
    "torch._tensor.Tensor": _TypeMarker,
    "torch.Size": tuple,
    "torch.storage.UntypedStorage": StorageType(None),
    "_codecs.encode": _codecs_encode,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.bytearray": bytearray,
    "builtins.complex": complex,
    "builtins.slice": slice,
}
for _name, _dt in _STORAGE_DTYPES.items():
    _ALLOWED[f"torch.{_name}"] = StorageType(_dt)
for _dt in _ELEM_SIZE:
    _ALLOWED[f"torch.{_dt}"] = DtypeMarker(_dt)
_ALLOWED["torch.device"] = lambda *a: "device(" + ",".join(map(str, a)) + ")"


# Data classes real training checkpoints carry beside the weights (hyper-parameters, numpy
# scalars in metrics). They are accepted by default as inert Records: never imported, never
# called, their arguments kept as plain data. Nothing else is, unless named with
# --allow-global (which also only makes a Record).
INERT_BY_DEFAULT = frozenset({
    "argparse.Namespace",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
    # numpy arrays (a training run's RNG state) and byte buffers (Transformer Engine's
    # extra state in Megatron checkpoints): data, kept as inert Records
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.ndarray", "_io.BytesIO",
    "pathlib.PosixPath", "pathlib.WindowsPath",
})


class _SafeUnpickler(pickle.Unpickler):
    def __init__(
        self, f: io.BufferedIOBase, extra_allowed: frozenset[str],
        persistent: Callable[[Any], Any],
    ) -> None:
        super().__init__(f)
        self.extra_allowed = extra_allowed
        self.refused: list[str] = []
        self.unsupported: list[str] = []
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        # name what pickle itself would import: protocol-2 files spell Python 3 names the
        # Python 2 way (subprocess.Popen is written as commands.Popen, builtins as __builtin__)
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        key = f"{module}.{name}"
        if key in _ALLOWED:
            return _ALLOWED[key]
        if key in self.extra_allowed or key in INERT_BY_DEFAULT:
            return type("Record", (Record,), {"global_name": key})
        if key in _UNSUPPORTED_TORCH:
            self.unsupported.append(key)
        else:
            self.refused.append(key)
        return type("Refused", (_Inert,), {"global_name": key})

    def persistent_load(self, pid: Any) -> Any:
        return self._persistent(pid)


class _Capped(io.RawIOBase):
    """Reads that never ask for more than the file still holds (pickletools would allocate
    the declared length of a BINBYTES/LONG4 before finding the file too short)."""

    def __init__(self, f: Any) -> None:
        self._f = f
        pos = f.tell()
        self._left = f.seek(0, 2) - pos
        f.seek(pos)

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def tell(self) -> int:
        return int(self._f.tell())

    def readline(self, size: int | None = -1) -> bytes:
        line = self._f.readline(self._left)
        self._left -= len(line)
        return line


MAX_MEMO_INDEX = 1 << 22  # a state dict pickle memoizes ~10 objects per tensor


def _prescan(f: Any, path: Path, member: str | None) -> None:
    """Walk the opcodes once before unpickling, to refuse what would exhaust memory or time:
    memo indexes far beyond any real checkpoint (``LONG_BINPUT 2**31`` makes the unpickler
    allocate a 16 GB memo) and lengths that run past the data."""
    import pickletools

    try:
        for op, arg, _ in pickletools.genops(_Capped(f)):
            if op.name in ("LONG_BINPUT", "LONG_BINGET", "PUT", "GET") and \
                    isinstance(arg, int) and arg > MAX_MEMO_INDEX:
                raise CheckpointError(f"pickle memo index {arg} (limit {MAX_MEMO_INDEX}): a "
                                      "memory bomb", path=path, member=member,
                                      hint="the file is damaged or hostile")
    except CheckpointError:
        raise
    except Exception as e:  # pickletools raises ValueError and friends on malformed data
        raise CheckpointError(f"not a readable pickle ({type(e).__name__}: {e})", path=path,
                              member=member,
                              hint="the file is corrupt or truncated; re-export or "
                              "re-download it") from e


def _unpickle(
    f: io.BufferedIOBase, path: Path, extra_allowed: frozenset[str],
    persistent: Callable[[Any], Any], member: str | None = None,
) -> Any:
    start = f.tell()
    _prescan(f, path, member)
    f.seek(start)
    up = _SafeUnpickler(f, extra_allowed, persistent)
    try:
        obj = up.load()
    except (CheckpointError, UnsupportedError) as e:
        if up.refused:
            raise UnsafeCheckpointError(up.refused, path=path) from e
        if e.path is None:
            e.path = str(path)
        raise
    except Exception as e:  # any malformed pickle: the C unpickler raises many types
        if up.refused:
            raise UnsafeCheckpointError(up.refused, path=path) from e
        raise CheckpointError(
            f"not a readable pickle ({type(e).__name__}: {e})", path=path, member=member,
            hint="the file is corrupt or truncated; re-export or re-download it",
        ) from e
    if up.refused:
        raise UnsafeCheckpointError(up.refused, path=path)
    if up.unsupported:
        raise UnsupportedError(
            f"tensor kinds modelport cannot convert: {', '.join(sorted(set(up.unsupported)))}",
            path=path, hint="save dense tensors (tensor.to_dense()) and convert again",
        )
    return obj
