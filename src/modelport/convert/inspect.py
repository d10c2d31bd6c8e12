"""``inspect``: what a model folder or weight file holds, without loading tensor data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from modelport._io import jsonio
from modelport._io.paths import inside, walk_files
from modelport._io.redact import redact
from modelport._io.st_header import ST_DTYPES, read_header
from modelport._io.urls import location
from modelport._types import file_role, model_kind
from modelport.convert.formats import detect, load
from modelport.convert.inspect_records import (
    ConfigInfo,
    IndexInfo,
    InspectReport,
    Problem,
    WeightFile,
)
from modelport.convert.plan import find_aliases
from modelport.convert.side_files import training_state
from modelport.convert.sources import (
    PICKLE_SUFFIXES,
    PT_INDEX,
    ST_INDEX,
    SourceTensor,
    select_state_dict,
    sniff_format,
)
from modelport.convert.torch_files import load_pickle_checkpoint
from modelport.errors import CheckpointError, InputError, ModelportError

_FORMAT_NAMES = {"zip": "zip pickle", "legacy": "legacy pickle", "safetensors": "safetensors"}


def _count(dtypes: dict[str, int], d: str) -> None:
    dtypes[d] = dtypes.get(d, 0) + 1


def _inspect_weight(path: Path, rel: str, names: dict[str, str], problems: list[Problem],
                    allow_globals: tuple[str, ...]) -> WeightFile:
    size = path.stat().st_size
    fmt = sniff_format(path)
    info = WeightFile(path=rel, format=_FORMAT_NAMES.get(fmt, "unreadable"), size=size)
    try:
        if fmt == "safetensors" or path.suffix == ".safetensors":
            h = read_header(path)
            info.format = "safetensors"
            info.has_metadata = h.metadata is not None
            info.metadata_format = (h.metadata or {}).get("format")
            tlist = [(n, ST_DTYPES[e.dtype][1], e.shape, e.nbytes) for n, e in h.tensors.items()]
            if h.metadata is None:
                problems.append(Problem(severity="warning", file=rel, message=(
                    "safetensors header has no metadata; some loaders want {'format': 'pt'} "
                    "(fix: modelport normalize)")))
            elif info.metadata_format not in ("pt", "tf", "flax", "mlx"):
                problems.append(Problem(severity="error", file=rel, message=(
                    f"safetensors metadata has format {info.metadata_format!r}, not 'pt'; "
                    "transformers 4.x refuses it (fix: modelport normalize)")))
        else:
            ck = load_pickle_checkpoint(path, allow_globals)
            info.format = _FORMAT_NAMES[ck.kind]
            pairs, info.state_dict_key, _ = select_state_dict(ck.obj, path, None)
            st = [SourceTensor.from_ref(n, r, 0) for n, r in pairs]
            aliases, _ = find_aliases(st)
            info.aliases = len(aliases)
            tlist = [(t.name, t.dtype, t.shape, t.nbytes) for t in st if t.name not in aliases]
            tlist += [(n, "", (), 0) for n in aliases]
            problems.append(Problem(severity="warning", file=rel, message=(
                "pickled weights: platforms want safetensors "
                f"(fix: modelport convert {path.parent if path.parent.name else '.'} OUT)")))
    except ModelportError as e:
        info.format = "unreadable" if info.format == "unreadable" else info.format
        problems.append(Problem(severity="error", file=rel, message=e.message))
        return info
    for name, dtype, shape, nbytes in tlist:
        if name in names:
            problems.append(Problem(severity="error", file=rel, message=(
                f"tensor {name!r} also in {names[name]}")))
        names[name] = rel
        info.tensors += 1
        if dtype:
            info.parameters += math.prod(shape)
            info.tensor_bytes += nbytes
            _count(info.dtypes, dtype)
    return info


def _inspect_index(root: Path, rel: str, names: dict[str, str], problems: list[Problem]
                   ) -> IndexInfo:
    info = IndexInfo(path=rel, files=[], tensors=0, total_size=None, consistent=False)
    try:
        obj = jsonio.load_index(root / rel)
        wm = obj["weight_map"]
    except (OSError, ValueError) as e:
        problems.append(Problem(severity="error", file=rel, message=f"unreadable index: {e}"))
        return info
    meta = obj.get("metadata")
    ts = meta.get("total_size") if isinstance(meta, dict) else None
    info.total_size = ts if isinstance(ts, int) else None
    info.tensors = len(wm)
    info.files = sorted(set(map(str, wm.values())))
    ok = True
    for f in info.files:
        try:
            inside(root, f, what="index entry", source=root / rel)
        except CheckpointError as e:
            problems.append(Problem(severity="error", file=rel, message=e.message))
            ok = False
            continue
        if not (root / f).is_file():
            problems.append(Problem(severity="error", file=rel, message=f"shard {f!r} is missing"))
            ok = False
    missing = [n for n, f in wm.items() if names.get(n) != f and (root / str(f)).is_file()]
    if missing:
        problems.append(Problem(severity="error", file=rel, message=(
            f"{len(missing)} tensor(s) are not where the index says (e.g. {missing[0]!r})")))
        ok = False
    listed_files = set(info.files)
    unlisted = [n for n, f in names.items() if f in listed_files and n not in wm]
    if unlisted:
        problems.append(Problem(severity="error", file=rel, message=(
            f"{len(unlisted)} tensor(s) of the shards are not in the index "
            f"(e.g. {unlisted[0]!r})")))
        ok = False
    info.consistent = ok
    return info


def _config(root: Path, problems: list[Problem]) -> ConfigInfo | None:
    p = root / "config.json"
    if not p.is_file():
        problems.append(Problem(severity="warning", file=None, message="no config.json"))
        return None
    try:
        cfg: Any = jsonio.load(p)
        if not isinstance(cfg, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        problems.append(Problem(severity="error", file="config.json", message=f"unreadable: {e}"))
        return None
    def typed(key: str, kind: type, what: str) -> Any:
        v = cfg.get(key)
        if v is None or isinstance(v, kind):
            return v
        problems.append(Problem(severity="error", file="config.json",
                                message=f"{key} is {json.dumps(v)[:40]}, not {what}"))
        return None

    q = typed("quantization_config", dict, "an object")
    archs = typed("architectures", list, "a list of class names") or []
    method = q.get("quant_method") if q else None
    info = ConfigInfo(
        model_type=typed("model_type", str, "a string"),
        architectures=[a for a in archs if isinstance(a, str)],
        torch_dtype=typed("torch_dtype", str, "a dtype name") or typed("dtype", str,
                                                                         "a dtype name"),
        quantization=method if isinstance(method, str) else None,
        remote_code="auto_map" in cfg,
        tie_word_embeddings=typed("tie_word_embeddings", bool, "true or false"),
    )
    if not info.model_type:
        problems.append(Problem(severity="error", file="config.json", message="no model_type"))
    if not info.architectures:
        problems.append(Problem(severity="warning", file="config.json",
                                message="no architectures"))
    if info.remote_code:
        problems.append(Problem(severity="warning", file="config.json", message=(
            "auto_map: the model needs trust_remote_code")))
    return info


def inspect(path: str | Path, *, allow_globals: tuple[str, ...] = (),
            store: dict[str, Any] | None = None) -> InspectReport:
    """Describe a model folder or a weight file, reading headers and pickles but no data.
    ``s3://bucket/prefix`` is read with ranged GETs of the headers only (``store``:
    ``endpoint_url``, ``region``, ``profile``).

    Raises:
        InputError: ``path`` does not exist. Broken files are reported in ``problems``.
    """
    path = location(path)
    if isinstance(path, str):
        from modelport.convert.remote import RemoteMirror

        with RemoteMirror(path, **(store or {})) as m:
            m.fetch_whole()  # a computed format's inspector reads whole files
            rep = m.as_url(inspect(m.root, allow_globals=allow_globals))
        rep.path = redact(path)
        rep.remote_bytes_fetched = m.fetched
        return rep
    if not path.exists():
        raise InputError("does not exist", path=path, hint="check the path")
    jsonio.require_valid(path)
    problems: list[Problem] = []
    names: dict[str, str] = {}  # tensor name -> file, for safetensors
    pt_names: dict[str, str] = {}  # the same for pickled weights (a folder may hold both)
    weights: list[WeightFile] = []
    indexes: list[IndexInfo] = []
    config = None
    tok: list[str] = []
    other: list[str] = []
    fmt, root = detect(path)  # the registry says what the path is and who lists it
    if fmt.inspector is not None:
        kind: Literal["folder", "file"] = "file" if path.is_file() else "folder"
        entry, read = load(fmt.inspector)(fmt, path, root, problems, allow_globals)
        weights.append(entry)
        rels = [r for r in walk_files(path) if not read(r)] if path.is_dir() else []
        tok = [r for r in rels if file_role(r) == "tokenizer"]
        other = [r for r in rels if file_role(r) != "tokenizer"]
        config = _config(path, problems) if (path / "config.json").is_file() else None
    elif path.is_file():
        weights.append(_inspect_weight(path, path.name, names, problems, allow_globals))
        kind = "file"
    else:
        kind = "folder"
        rels = walk_files(path)
        if not rels:
            problems.append(Problem(severity="error", file=None, message="the folder is empty"))
        for rel in rels:
            p = path / rel
            if rel in (ST_INDEX, PT_INDEX):
                continue
            try:
                inside(path, rel, what="file", source=path)
            except CheckpointError as e:
                problems.append(Problem(severity="error", file=rel, message=e.message))
                continue
            if p.suffix == ".safetensors" or (
                "/" not in rel and p.suffix in PICKLE_SUFFIXES and not training_state(rel)
            ):
                seen = names if p.suffix == ".safetensors" else pt_names
                weights.append(_inspect_weight(p, rel, seen, problems, allow_globals))
            elif file_role(rel) == "tokenizer":
                tok.append(rel)
            else:
                other.append(rel)
        for rel, seen in ((ST_INDEX, names), (PT_INDEX, pt_names)):
            if (path / rel).is_file():
                indexes.append(_inspect_index(path, rel, seen, problems))
        if rels and fmt.opener is not None:  # its files listed as they are (Meta's layout)
            problems.append(Problem(severity="warning", file=None, message=(
                f"{fmt.label}: modelport convert writes config.json and the Hugging Face "
                "tensor names")))
        elif rels:
            config = _config(path, problems)
        if not weights and rels:
            problems.append(Problem(severity="error", file=None, message="no weight files"))
        fmts = {w.format for w in weights}
        if "safetensors" in fmts and fmts & {"zip pickle", "legacy pickle"}:
            problems.append(Problem(severity="warning", file=None, message=(
                "both safetensors and pickled weights: platforms read the safetensors")))
        kind_of_model = model_kind(config.model_type if config is not None else None)
        if config is not None and kind_of_model == "general" and "tokenizer.json" not in tok:
            problems.append(Problem(severity="warning", file=None, message=(
                "no tokenizer.json (fast tokenizer)")))
        if kind_of_model == "timeseries" and "tsfm_config.json" not in rels:
            problems.append(Problem(severity="warning", file=None, message=(
                "no tsfm_config.json (the TinyTimeMixer serving config; "
                "modelport tsfm-config writes it)")))
    merged: dict[tuple[str, str], Problem] = {}
    for p in problems:  # the same finding on every shard is one finding
        key = (p.severity, p.message)
        if key in merged:
            first = merged[key]
            n = int(first.file.split()[0]) + 1 if first.file and first.file.endswith(" files") \
                else 2
            merged[key] = Problem(severity=p.severity, file=f"{n} files", message=p.message)
        else:
            merged[key] = p
    problems = list(merged.values())
    dtypes: dict[str, int] = {}
    for w in weights:
        for d, n in w.dtypes.items():
            dtypes[d] = dtypes.get(d, 0) + n
    return InspectReport(
        path=str(path), kind=kind, weight_files=weights, indexes=indexes, config=config,
        tokenizer_files=tok, other_files=other, tensors=sum(w.tensors for w in weights),
        parameters=sum(w.parameters for w in weights),
        weight_bytes=sum(w.tensor_bytes for w in weights), dtypes=dtypes, problems=problems,
    )
