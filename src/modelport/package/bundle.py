"""``package``: a checked model folder becomes a bundle with a manifest."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

from modelport._io import hashcache
from modelport._io.atomic import atomic_dir, write_bytes_atomic
from modelport._io.paths import check_output, inside, walk_files
from modelport._types import file_role
from modelport._version import __version__
from modelport.convert.sources import PICKLE_SUFFIXES
from modelport.errors import InputError, TargetCheckFailed
from modelport.package.check import CheckReport, check
from modelport.package.manifest import (
    MANIFEST,
    Manifest,
    ManifestFile,
    ModelInfo,
    Provenance,
    Quantization,
    Step,
    TargetSummary,
)


def _summary(rep: CheckReport) -> list[TargetSummary]:
    return [TargetSummary(target=t.target, spec=t.spec, ok=t.ok, errors=t.errors,
                          warnings=t.warnings,
                          findings=[f.model_dump(mode="json") for f in t.findings],
                          hardware=t.hardware.model_dump(mode="json")) for t in rep.targets]


def package(folder: str | Path, out: str | Path, targets: list[str] | tuple[str, ...] = (
            "watsonx-saas",), *, force: bool = False, link: bool = True, overwrite: bool = False,
            spec: str | None = None, steps: list[Step] | None = None,
            source: str | None = None, options: dict[str, Any] | None = None) -> Manifest:
    """Check ``folder`` for the targets, then write the bundle ``out`` with its manifest.

    Files are hard-linked (``link``, same file system) or copied, never changed; pickles
    beside safetensors weights are left out and listed in ``excluded``. Digests computed by
    earlier steps (``.modelport/hashes.json``) are reused.

    Raises:
        TargetCheckFailed: check found errors and ``force`` is False.
    """
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise InputError("is not a folder", path=folder)
    check_output(folder, out, overwrite=overwrite)
    rep = check(folder, list(targets), spec=spec)
    if not rep.ok and not force:
        bad = [f"{t.target}: {f.file or 'folder'}: {f.message}" + (f" (fix: {f.fix})"
                                                                    if f.fix else "")
               for t in rep.targets for f in t.findings if f.severity == "error"]
        more = f"; and {len(bad) - 3} more (modelport check lists them)" if len(bad) > 3 else ""
        raise TargetCheckFailed(f"check found {len(bad)} error(s): {'; '.join(bad[:3])}{more}",
                                rep, path=str(folder))
    rels = walk_files(folder)
    has_st = any(r.endswith(".safetensors") for r in rels)
    cache = hashcache.load(folder)
    files: list[ManifestFile] = []
    excluded: list[dict[str, str]] = []
    reused = 0
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for rel in rels:
            if rel == MANIFEST:
                continue
            if Path(rel).suffix in PICKLE_SUFFIXES and has_st:
                excluded.append({"path": rel, "reason": "pickle beside safetensors weights"})
                continue
            src = inside(folder, rel, what="file", source=folder)
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if link:
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
            else:
                shutil.copy2(src, dst)
            sha, hit = hashcache.sha256(folder, rel, cache)
            reused += hit
            files.append(ManifestFile(path=rel, role=file_role(rel),  # type: ignore[arg-type]
                                      size=dst.stat().st_size, sha256=sha))
        f = rep.facts
        manifest = Manifest(
            name=out.name, created=dt.datetime.now(dt.timezone.utc).isoformat(
                timespec="seconds"),
            modelport_version=__version__,
            model=ModelInfo(model_type=f.model_type, architectures=f.architectures,
                            parameters=f.parameters,
                            tensors=f.tensors,
                            weight_bytes=f.weight_bytes, dtypes=f.dtypes,
                            quantization=Quantization(method=f.quant_method, bits=f.quant_bits)
                            if f.quant_method else None),
            files=files, excluded=excluded,
            provenance=Provenance(source=source or str(folder), steps=[
                *(steps or []), Step(verb="package", status="done",
                                     detail=f"{len(files)} files, {reused} digests reused")],
                options=options or {}, forced=force and not rep.ok),
            targets=_summary(rep))
        write_bytes_atomic(tmp / MANIFEST, (manifest.model_dump_json(indent=2) + "\n").encode())
    return manifest


__all__ = ["package"]
