"""DeepSpeed ZeRO checkpoints (stages 1, 2 and 3), read without importing DeepSpeed.

A ZeRO checkpoint (``global_stepN/`` under a folder with ``latest``) holds the model states
(``mp_rank_00_model_states.pt``, or one ``zero_pp_rank_R_mp_rank_00_model_states.pt`` per rank
for stage 3) and one optimizer file per data-parallel rank
(``[bf16_]zero_pp_rank_R_mp_rank_00_optim_states.pt``). The fp32 master weights live in the
optimizer files as flat partitions; this module locates every parameter in them the way
DeepSpeed's ``zero_to_fp32.py`` does — stages 1 and 2: each parameter group's partitions
concatenated rank after rank, parameters consecutive with their alignment paddings; stage 3:
every parameter split into ``ceil(numel / world_size)`` elements per rank, padded at the end —
and returns, per tensor, the pieces to copy. Nothing is read until a tensor is assembled.

The pickles carry DeepSpeed objects (the loss scaler, the stage enum, fragment addresses):
they are rebuilt as inert records by the allow-list unpickler, never imported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport.convert.pickle_safe import Record, TensorRef, element_size
from modelport.convert.sources import SourceFile, SourceTensor
from modelport.convert.torch_files import load_pickle_checkpoint
from modelport.errors import CheckpointError, InputError, UnsupportedError

# DeepSpeed classes that ZeRO checkpoints pickle beside the tensors: inert records here
ZERO_GLOBALS = frozenset({
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
    "deepspeed.checkpoint.constants.ZeroStageEnum",
    "deepspeed.runtime.zero.offload_config.OffloadDeviceEnum",
})
_OPTIM = re.compile(r"^(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_(\d+)_optim_states\.pt$")
_MODEL3 = re.compile(r"^zero_pp_rank_(\d+)_mp_rank_(\d+)_model_states\.pt$")
MODEL12 = "mp_rank_00_model_states.pt"


@dataclass
class Piece:
    """``numel`` elements at element ``start`` of a flat fp32 partition (a source tensor)."""

    part: SourceTensor
    start: int
    numel: int


@dataclass
class ZeroTensor:
    """One output tensor: a whole source tensor, or pieces of flat partitions to concatenate."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    whole: SourceTensor | None = None
    pieces: list[Piece] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * element_size(self.dtype)

    def parts(self) -> list[tuple[SourceTensor, int, int]]:
        """(source tensor, first element, elements) of each piece, in order."""
        if self.whole is not None:
            return [(self.whole, 0, math.prod(self.shape))]
        return [(p.part, p.start, p.numel) for p in self.pieces]


@dataclass
class ZeroCheckpoint:
    folder: Path  # global_stepN
    stage: int
    world_size: int
    files: list[SourceFile]
    tensors: list[ZeroTensor]
    aliases: dict[str, str]  # shared parameter -> the parameter it shares
    left_out: list[tuple[str, str]]  # (what, why)
    ds_version: str | None


def zero_folder(src: Path) -> Path | None:
    """The checkpoint folder of ``src``: ``src/<latest>``, or ``src`` itself when it holds
    ``*_optim_states.pt`` and ``*_model_states.pt`` files."""
    if not src.is_dir():
        return None
    latest = src / "latest"
    if latest.is_file():
        try:
            tag = latest.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            tag = ""
        if tag and "/" not in tag and (src / tag).is_dir() and _has_zero_files(src / tag):
            return src / tag
    return src if _has_zero_files(src) else None


def _has_zero_files(d: Path) -> bool:
    names = [p.name for p in d.iterdir()] if d.is_dir() else []
    return any(_OPTIM.match(n) for n in names) and any(
        n == MODEL12 or _MODEL3.match(n) for n in names)


def _natural(p: Path) -> list[Any]:
    return [int(c) if c.isdigit() else c for c in re.split(r"(\d+)", p.name)]


def _int(x: Any) -> int:
    """A plain int, or DeepSpeed's ``ZeroStageEnum(n)`` rebuilt as a record."""
    if isinstance(x, Record) and x.args:
        x = x.args[0]
    if isinstance(x, bool) or not isinstance(x, int):
        raise CheckpointError(f"expected an integer, found {type(x).__name__}")
    return x


def _shape(s: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in s)


def _load(path: Path, allow: frozenset[str]) -> Any:
    return load_pickle_checkpoint(path, allow_globals=ZERO_GLOBALS | allow)


def read_zero(src: Path, allow_globals: tuple[str, ...] = ()) -> ZeroCheckpoint:
    """Locate every tensor of the ZeRO checkpoint under ``src`` (headers and pickles only).

    Raises:
        CheckpointError: a rank's file is missing, or the partitions do not add up.
        UnsupportedError: pipeline or tensor parallel checkpoints (mp_rank > 0).
    """
    folder = zero_folder(src)
    if folder is None:
        raise InputError("not a DeepSpeed ZeRO checkpoint", path=src)
    allow = frozenset(allow_globals)
    optim_paths = sorted((p for p in folder.iterdir() if _OPTIM.match(p.name)), key=_natural)
    if any(_OPTIM.match(p.name).group(2) != "00" for p in optim_paths):  # type: ignore[union-attr]
        raise UnsupportedError("tensor- or pipeline-parallel ZeRO checkpoints (mp_rank > 00)",
                               path=folder, hint="DeepSpeed's ds_to_universal.py handles them")
    files: list[SourceFile] = []
    optim = []
    for p in optim_paths:
        ck = _load(p, allow)
        files.append(SourceFile(p, ck.kind, pickle=ck))
        sd = ck.obj.get("optimizer_state_dict") if isinstance(ck.obj, dict) else None
        if not isinstance(sd, dict) or "zero_stage" not in sd:
            raise CheckpointError("not a ZeRO optimizer state file", path=p)
        optim.append(sd)
    stage = _int(optim[0]["zero_stage"])
    pc = optim[0].get("partition_count")
    world = max(_int(v) for v in pc) if isinstance(pc, list) else _int(pc)
    ranks = sorted(int(_OPTIM.match(p.name).group(1)) for p in optim_paths)  # type: ignore[union-attr]
    if ranks != list(range(world)):
        missing = sorted(set(range(world)) - set(ranks))
        raise CheckpointError(
            f"the checkpoint was written by {world} ranks; the optimizer files of rank(s) "
            f"{', '.join(map(str, missing)) or '?'} are missing ({len(ranks)} found)",
            path=folder, hint="copy the whole global_step folder (every *_optim_states.pt)")
    if stage <= 2:
        mpath = folder / MODEL12
        if not mpath.is_file():
            raise CheckpointError(f"{MODEL12} is missing", path=folder)
        model_paths = [mpath]
    else:
        model_paths = sorted((p for p in folder.iterdir() if _MODEL3.match(p.name)),
                             key=_natural)
        if len(model_paths) != world:
            raise CheckpointError(f"{len(model_paths)} model state files for {world} ranks",
                                  path=folder, hint="copy the whole global_step folder")
    models = []
    for p in model_paths:
        ck = _load(p, allow)
        files.append(SourceFile(p, ck.kind, pickle=ck))
        if not isinstance(ck.obj, dict) or "param_shapes" not in ck.obj:
            raise CheckpointError("not a DeepSpeed model state file", path=p)
        models.append((len(files) - 1, ck.obj))
    m0_index, m0 = models[0]
    n_optim = len(optim)

    def src_of(ref: Any, file_index: int, name: str) -> SourceTensor:
        if not isinstance(ref, TensorRef):
            raise CheckpointError(f"{name} is not a tensor", path=files[file_index].path)
        return SourceTensor.from_ref(name, ref, file_index)

    tensors: list[ZeroTensor] = []
    buffers = set(m0.get("buffer_names") or [])
    module = m0.get("module") or {}
    for name in module:
        if name in buffers:  # zero_to_fp32 keeps buffers from the module, floats as fp32
            st = src_of(module[name], m0_index, name)
            floating = st.dtype in ("float16", "bfloat16", "float32", "float64")
            tensors.append(ZeroTensor(name, "float32" if floating else st.dtype, st.shape,
                                      whole=st))
    frozen = m0.get("frozen_param_shapes") or {}
    for name, shape in frozen.items():
        shape = _shape(shape)
        numel = math.prod(shape)
        if stage <= 2:
            st = src_of(m0["frozen_param_fragments"][name], m0_index, name)
            tensors.append(ZeroTensor(name, st.dtype, shape, whole=st))
        else:
            pieces, left = [], numel
            for fi, mo in models:
                st = src_of(mo["frozen_param_fragments"][name], fi, name)
                k = min(left, math.prod(st.shape))
                if k:
                    pieces.append(Piece(st, 0, k))
                left -= k
            if left:
                raise CheckpointError(f"frozen parameter {name} is short by {left} elements",
                                      path=folder)
            tensors.append(ZeroTensor(name, pieces[0].part.dtype if pieces else "float32",
                                      shape, pieces=pieces))
    groups_key = "single_partition_of_fp32_groups" if stage <= 2 else "fp32_flat_groups"
    flat = [[src_of(t, r, f"{groups_key}[{g}]") for g, t in enumerate(sd[groups_key])]
            for r, sd in enumerate(optim)]
    shapes = m0["param_shapes"]
    if stage <= 2:
        paddings = optim[0].get("param_alignment_paddings")
        tensors += _stage12(flat, shapes, paddings, world, folder)
    else:
        tensors += _stage3(flat, shapes, world, folder)
    aliases = {}
    for k, v in (m0.get("shared_params") or {}).items():
        aliases[str(k)] = str(v)
    written = {t.name for t in tensors}
    tensors = [t for t in tensors if t.name not in aliases or aliases[t.name] not in written]
    left_out = [
        (f"optimizer state ({n_optim} file(s): moments, step, loss scaler)",
         "training state; not converted"),
        ("lr_scheduler, data_sampler, random states", "training state; not converted")]
    return ZeroCheckpoint(folder, stage, world, files, tensors, aliases, left_out,
                          str(m0.get("ds_version")) if m0.get("ds_version") else None)


def _numel(t: SourceTensor) -> int:
    return math.prod(t.shape)


def _slice(parts: list[SourceTensor], start: int, numel: int) -> list[Piece]:
    """Pieces of the virtual concatenation of ``parts`` covering [start, start + numel)."""
    out, base = [], 0
    for p in parts:
        n = _numel(p)
        lo, hi = max(start, base), min(start + numel, base + n)
        if lo < hi:
            out.append(Piece(p, lo - base, hi - lo))
        base += n
    if sum(pc.numel for pc in out) != numel:
        raise CheckpointError(f"the flat partitions end before element {start + numel}")
    return out


def _stage12(flat: list[list[SourceTensor]], shapes: list[Any], paddings: Any, world: int,
             folder: Path) -> list[ZeroTensor]:
    out = []
    for g, group in enumerate(shapes):
        parts = [flat[r][g] for r in range(world)]  # rank after rank
        avail = sum(_numel(p) for p in parts)
        pad = paddings[g] if paddings is not None else None
        if pad is not None and len(pad) != len(group):
            raise CheckpointError(f"group {g}: {len(pad)} alignment paddings for "
                                  f"{len(group)} parameters", path=folder)
        offset = 0
        for j, (name, shape) in enumerate(group.items()):
            shape = _shape(shape)
            n = math.prod(shape)
            out.append(ZeroTensor(str(name), "float32", shape,
                                  pieces=_slice(parts, offset, n) if n else []))
            offset += n + (int(pad[j]) if pad is not None else 0)
        align = 2 * world  # DeepSpeed pads each group to a multiple of 2 x world size
        if align * math.ceil(offset / align) != align * math.ceil(avail / align):
            raise CheckpointError(f"group {g}: the parameters use {offset} of {avail} "
                                  "elements of the flat partitions", path=folder,
                                  hint="the checkpoint does not match its parameter shapes")
    return out


def _stage3(flat: list[list[SourceTensor]], shapes: list[Any], world: int, folder: Path
            ) -> list[ZeroTensor]:
    merged: dict[str, tuple[int, ...]] = {}
    for group in shapes:
        merged.update({str(k): _shape(v) for k, v in group.items()})
    avail = sum(_numel(t) for t in flat[0]) * world
    out, offset = [], 0
    for name, shape in merged.items():
        n = math.prod(shape)
        per = math.ceil(n / world)
        pieces: list[Piece] = []
        left = n
        for r in range(world):  # each rank holds `per` elements; the last ones are padding
            k = min(per, left)
            if k:
                pieces += _slice(flat[r], offset, k)
            left -= k
        out.append(ZeroTensor(name, "float32", shape, pieces=pieces))
        offset += per
    if offset * world != avail:
        raise CheckpointError(f"the parameters use {offset * world} of {avail} elements of "
                              "the flat partitions", path=folder,
                              hint="the checkpoint does not match its parameter shapes")
    return out


def module_weights(ck: ZeroCheckpoint) -> list[ZeroTensor]:
    """The 16-bit weights the engine's module held (stages 1 and 2): every tensor of
    ``module`` in the model states, as saved."""
    if ck.stage == 3:
        raise UnsupportedError("stage-3 module weights are partitioned across the ranks",
                               path=ck.folder, hint="use --weights fp32 (the master weights)")
    fi = next(i for i, f in enumerate(ck.files) if f.path.name == MODEL12)
    pk = ck.files[fi].pickle
    assert pk is not None
    module = pk.obj.get("module") or {}
    out = []
    for name, ref in module.items():
        if isinstance(ref, TensorRef):
            st = SourceTensor.from_ref(str(name), ref, fi)
            out.append(ZeroTensor(str(name), st.dtype, st.shape, whole=st))
    return out


__all__ = ["ZERO_GLOBALS", "Piece", "ZeroCheckpoint", "ZeroTensor", "module_weights",
           "read_zero", "zero_folder"]
