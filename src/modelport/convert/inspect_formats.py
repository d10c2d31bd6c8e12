"""``inspect`` of the formats that are not a Hugging Face folder: each as one weight entry
with its tensors, parameters and dtypes, read from headers and metadata only, and a warning
saying what ``modelport convert`` makes of it. The registry (:mod:`modelport.convert.formats`)
names each format's inspector; every inspector takes ``(fmt, path, root, problems,
allow_globals)`` and returns the entry and a test of the files it accounts for (paths
relative to ``path``), which ``inspect``'s one walk of the folder then does not list again."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport.convert.inspect_records import Problem, WeightFile
from modelport.errors import CheckpointError, ModelportError

# the entry, and which files under the path it accounts for (a test of a relative path)
Inspected = tuple[WeightFile, Callable[[str], bool]]


def inspect_opened(fmt: Any, path: Path, root: Path, problems: list[Problem],
                   allow_globals: tuple[str, ...]) -> Inspected:
    """Any other computed format as one weight entry: what its opener says convert writes."""
    from modelport.convert.formats import load
    from modelport.convert.options import ConvertOptions

    rel = root.relative_to(path).as_posix() if root.is_relative_to(path) and root != path \
        else "."
    wf = WeightFile(path=rel, format=fmt.label, size=0)
    try:
        op = load(fmt.opener)(path, ConvertOptions(allow_globals=allow_globals))
    except ModelportError as e:
        problems.append(Problem(severity="error", file=rel, message=e.message))
        return wf, lambda r: False
    op.close()
    read = {str(Path(i.path).resolve()) for i in op.inputs}
    wf.size = sum(i.size for i in op.inputs)
    wf.tensors = len(op.tensors)
    wf.tensor_bytes = sum(t.nbytes for t in op.tensors)
    wf.parameters = sum(math.prod(t.shape) for t in op.tensors)
    for t in op.tensors:
        wf.dtypes[t.dtype] = wf.dtypes.get(t.dtype, 0) + 1
    problems.append(Problem(severity="warning", file=rel, message=(
        f"{fmt.label} in {len(op.inputs)} file(s): modelport convert writes safetensors, the "
        f"Hugging Face names and {', '.join(op.side_files) or 'no config.json'}")))
    return wf, lambda r: str((path / r).resolve()) in read


def inspect_dcp(fmt: Any, path: Path, folder: Path, problems: list[Problem],
                allow_globals: tuple[str, ...]) -> Inspected:
    """A distributed checkpoint as one weight entry: its model tensors, from .metadata."""
    from modelport.convert.dcp import read_metadata
    from modelport.convert.dcp_convert import TRAINING_STATE
    from modelport.convert.pickle_safe import element_size

    rel = folder.relative_to(path).as_posix() if folder != path else "."
    ranks = len(list(folder.glob("*.distcp")))
    wf = WeightFile(path=rel, format=f"distributed checkpoint ({ranks} files)",
                    size=sum(p.stat().st_size for p in folder.glob("*.distcp")))

    def read(r: str) -> bool:
        return r.endswith(".distcp")

    try:
        tensors, _ = read_metadata(folder)
    except ModelportError as e:
        problems.append(Problem(severity="error", file=rel, message=e.message))
        return wf, read
    missing = sorted({c.file for t in tensors for c in t.chunks
                      if not (folder / c.file).is_file()})
    if missing:
        problems.append(Problem(severity="error", file=rel, message=f"{len(missing)} file(s) "
                                f"named in .metadata are missing: {', '.join(missing[:3])}"))
    model = [t for t in tensors if t.fqn.split(".", 1)[0] not in TRAINING_STATE]
    wf.tensors = len(model)
    wf.tensor_bytes = sum(t.nbytes for t in model)
    wf.parameters = sum(t.nbytes // element_size(t.dtype) for t in model)
    for t in model:
        wf.dtypes[t.dtype] = wf.dtypes.get(t.dtype, 0) + 1
    problems.append(Problem(severity="warning", file=rel, message=(
        "a training checkpoint (torch.distributed.checkpoint): modelport convert reassembles "
        "it into safetensors")))
    return wf, read


def inspect_zero(fmt: Any, path: Path, folder: Path, problems: list[Problem],
                 allow_globals: tuple[str, ...]) -> Inspected:
    """A DeepSpeed ZeRO checkpoint as one weight entry: the parameters its model states list."""
    from modelport.convert.zero import read_zero

    rel = folder.relative_to(path).as_posix() if folder != path else "."
    files = [p for p in folder.iterdir() if p.name.endswith(("_optim_states.pt",
                                                             "_model_states.pt"))]
    wf = WeightFile(path=rel, format="DeepSpeed ZeRO", size=sum(p.stat().st_size
                                                                for p in files))

    def read(r: str) -> bool:
        return r.endswith(("_states.pt", "latest")) or r.startswith(rel + "/")

    try:
        ck = read_zero(path, allow_globals)
    except ModelportError as e:
        problems.append(Problem(severity="error", file=rel, message=e.message))
        return wf, read
    wf.format = f"DeepSpeed ZeRO-{ck.stage} ({ck.world_size} ranks)"
    wf.tensors = len(ck.tensors)
    wf.parameters = sum(math.prod(t.shape) for t in ck.tensors)
    wf.tensor_bytes = sum(t.nbytes for t in ck.tensors)
    for t in ck.tensors:
        wf.dtypes[t.dtype] = wf.dtypes.get(t.dtype, 0) + 1
    problems.append(Problem(severity="warning", file=rel, message=(
        f"a training checkpoint (DeepSpeed ZeRO stage {ck.stage}, {ck.world_size} ranks): "
        "modelport convert writes its fp32 master weights as safetensors")))
    return wf, read


def inspect_gguf(fmt: Any, path: Path, file: Path, problems: list[Problem],
                 allow_globals: tuple[str, ...]) -> Inspected:
    """A llama.cpp GGUF file: its tensors and their stored types, from the header."""
    rel = file.name
    wf = WeightFile(path=rel, format="GGUF", size=file.stat().st_size)

    def read(r: str) -> bool:
        return r.endswith(".gguf")

    try:
        import gguf  # noqa: F401 - its type tables size the tensors
    except ImportError:
        problems.append(Problem(severity="error", file=rel, message=(
            "reading GGUF needs the optional package gguf: pip install 'modelport[gguf]'")))
        return wf, read
    from modelport.convert.gguf_header import read_gguf_header
    from modelport.convert.gguf_source import KEPT

    try:
        r = read_gguf_header(file)  # the tensors and fields, walking past the vocabulary
    except CheckpointError as e:
        problems.append(Problem(severity="error", file=rel, message=(
            f"not a readable GGUF file ({e.message[:120]})")))
        return wf, read
    arch = r.fields.get("general.architecture")
    wf.format = f"GGUF ({arch})"
    quantized = 0
    for t in r.tensors:
        kind = t.type_name
        wf.dtypes[kind] = wf.dtypes.get(kind, 0) + 1
        wf.parameters += int(math.prod(t.shape))
        wf.tensor_bytes += t.n_bytes
        quantized += kind not in KEPT
    wf.tensors = len(r.tensors)
    what = (f"{quantized} quantized tensor(s) are dequantized to float32, not the original "
            "weights" if quantized else "F32/F16/BF16 tensors are kept as stored")
    problems.append(Problem(severity="warning" if arch == "llama" else "error", file=rel,
                            message=(f"a GGUF file (llama.cpp, architecture {arch}): modelport "
                                     f"convert writes safetensors and config.json; {what}"
                                     if arch == "llama" else
                                     f"a GGUF file of architecture {arch!r}: modelport "
                                     "convert reads the llama architecture only")))
    return wf, read


__all__ = ["Inspected", "inspect_dcp", "inspect_gguf", "inspect_opened", "inspect_zero"]
