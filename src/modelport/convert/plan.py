"""Plan a conversion before writing anything: shards, aliases, overlaps, every name's fate."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelport._io import jsonio
from modelport._io.paths import check_output
from modelport._io.st_header import TORCH_TO_ST
from modelport.convert.formats import check_options, detect, load
from modelport.convert.options import ConvertOptions
from modelport.convert.shards import ShardPlan, shard
from modelport.convert.sources import Reader, SourceSet, SourceTensor, open_source
from modelport.errors import InputError, UnsupportedError

if TYPE_CHECKING:
    from modelport.convert.feeds import Feed
    from modelport.convert.opened import Opened

@dataclass
class ConvertPlan:
    """What convert will write; built without reading tensor data. ``source`` holds the
    Hugging Face reader's files (tensors copied from file regions), ``opened`` a computed
    route's tensors (one of the two)."""

    source: SourceSet | None
    dst: Path
    options: ConvertOptions
    shards: list[ShardPlan]
    aliases: dict[str, str]  # name not written -> name written with the same bytes
    overlapping: list[list[str]]  # share storage bytes without being aliases: written apart
    warnings: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # framework name -> model name
    opened: Opened | None = None

    @property
    def total_bytes(self) -> int:
        return sum(s.nbytes for s in self.shards)

    @property
    def copies(self) -> list[tuple[Path, str]]:
        """The source's other files the output gets as they are: (file, name in the output)."""
        if not self.options.copy_other_files:
            return []
        if self.source is not None:
            root = self.source.root
            return [(root / rel, rel) for rel in self.source.copy_files] if root else []
        assert self.opened is not None
        return [(p, p.name) for p in self.opened.copy_files]

    @property
    def side_files(self) -> list[str]:
        """The other files the output gets: copied, or written from the source's metadata."""
        made = self.opened.side_files if self.opened is not None else []
        return [rel for _, rel in self.copies] + made

    @property
    def skipped(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(entries, files) left out, each as (name, reason)."""
        held = self.source if self.source is not None else self.opened
        assert held is not None
        return ([(x.name, x.reason) for x in held.skipped_entries],
                [(x.name, x.reason) for x in held.skipped_files])

    def feed(self) -> Feed:
        """The one writer's feed for this plan: the source files' reader (regions copied) or
        the computed tensors (see :mod:`modelport.convert.writer`); close it after writing."""
        from modelport.convert.feeds import Computed

        return Reader(self.source.files) if self.source is not None else Computed()

    def close(self) -> None:
        """Release what the computed route holds open (the HF route opens at write time)."""
        if self.opened is not None:
            self.opened.close()

    def regions(self, what: str) -> SourceSet:
        """The file-region source, for work split by byte ranges (``what``: who asks).

        Raises:
            UnsupportedError: a computed route, named.
        """
        if self.source is None:
            self.close()
            raise UnsupportedError(
                f"this format's tensors are computed one at a time (reassembled, permuted or "
                f"dequantized), which {what} does not split",
                path=self.opened.src if self.opened is not None else self.dst,
                hint="convert it to a local folder first: modelport convert SRC DST")
        return self.source


def check_source(src: Path, *, adapter_hint: str | None = None) -> None:
    """What every conversion (and ``prepare``) refuses before reading weights: a missing
    path, a JSON side file that does not parse, a PEFT adapter (merged, not converted;
    ``adapter_hint`` is the verb's way to merge it).

    Raises:
        InputError.
    """
    if not src.exists():
        raise InputError("does not exist", path=src, hint="check the path")
    jsonio.require_valid(src)
    if src.is_dir() and (src / "adapter_config.json").is_file():
        raise InputError("is a PEFT adapter (adapter_config.json), not a model: its weights "
                         "are deltas that no platform loads alone", path=src,
                         hint=adapter_hint or f"use modelport merge BASE {src} --out OUT")


def _tied_embeddings_off(src: SourceSet) -> bool:
    if src.root is None or not (src.root / "config.json").is_file():
        return False
    try:
        cfg = jsonio.load(src.root / "config.json")
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and cfg.get("tie_word_embeddings") is False


def find_aliases(tensors: list[SourceTensor]) -> tuple[dict[str, str], list[list[str]]]:
    """Exact aliases (first name in source order kept) and groups of overlapping views."""
    first: dict[tuple[object, ...], str] = {}
    aliases: dict[str, str] = {}
    by_storage: dict[tuple[int, str], list[SourceTensor]] = defaultdict(list)
    for t in tensors:
        if t.identity in first:
            aliases[t.name] = first[t.identity]
            continue
        first[t.identity] = t.name
        by_storage[(t.file_index, t.storage_key)].append(t)
    overlapping: list[list[str]] = []
    for group in by_storage.values():
        if len(group) < 2:
            continue
        spans = sorted((t.byte_span(), t.name) for t in group if t.nbytes)
        cluster: list[str] = []
        end = -1
        for (b, e), name in spans:
            if b < end:
                cluster.append(name)
            else:
                if len(cluster) > 1:
                    overlapping.append(cluster)
                cluster = [name]
            end = max(end, e)
        if len(cluster) > 1:
            overlapping.append(cluster)
    return aliases, overlapping


def plan_convert(
    src: str | Path, dst: str | Path, options: ConvertOptions | None = None
) -> ConvertPlan:
    """Decide everything a conversion will do, reading headers and pickles but no tensor data.

    Raises:
        InputError: bad SRC/DST combination.
        CheckpointError / UnsafeCheckpointError: broken or hostile input.
        UnsupportedError: a tensor dtype safetensors cannot hold.
    """
    options = options or ConvertOptions()
    src, dst = Path(src), Path(dst)
    check_source(src)
    fmt, _ = detect(src)
    check_options(fmt, options)
    check_output(src, dst, overwrite=options.overwrite)
    if fmt.opener is not None:  # a computed route: its opener says what it will write
        op: Opened = load(fmt.opener)(src, options)
        try:
            op.check_dtypes()
        except BaseException:
            op.close()
            raise
        return ConvertPlan(None, dst, options, shard(op.tensors, options.max_shard_size),
                           op.aliases, [], list(op.warnings), op.renamed, opened=op)
    source = open_source(src, state_dict_key=options.state_dict_key,
                         strip_prefix=options.strip_prefix, allow_globals=options.allow_globals)
    from modelport.convert.framework_names import model_renaming

    # --strip-prefix was applied by open_source; otherwise the frameworks' marks are fitted
    renamed, note = model_renaming([t.name for t in source.tensors],
                                   src if src.is_dir() else src.parent,
                                   fit=options.fit_names and options.strip_prefix is None)
    if renamed:
        source.tensors = [dataclasses.replace(t, name=renamed.get(t.name, t.name))
                          for t in source.tensors]
    if note:
        source.warnings.append(note)
    bad = [f"{t.name} ({t.dtype})" for t in source.tensors if t.dtype not in TORCH_TO_ST]
    if bad:
        raise UnsupportedError(
            f"{len(bad)} tensor(s) have dtypes safetensors cannot store: {', '.join(bad[:5])}",
            path=src, supported=sorted(TORCH_TO_ST),
        )
    aliases, overlapping = find_aliases(source.tensors)
    warnings = list(source.warnings)
    if aliases and (options.aliases == "copy" or _tied_embeddings_off(source)):
        if options.aliases == "dedupe":
            warnings.append("config.json sets tie_word_embeddings false: aliased tensors are "
                            "written once per name")
        aliases = {}
    written = [t for t in source.tensors if t.name not in aliases]
    return ConvertPlan(source, dst, options, shard(written, options.max_shard_size), aliases,
                       overlapping, warnings, renamed)
