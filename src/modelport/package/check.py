"""``check``: will this folder deploy on a target? Headers and configs only; never modifies.

One engine evaluates every rules file (:mod:`modelport.package.rules`); each ``kind`` of check
is one function of :mod:`modelport.package.check_kinds`; the records are in ``check_records``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from modelport._io import jsonio
from modelport._io.redact import redact
from modelport._io.st_header import read_header
from modelport._io.urls import location
from modelport._types import model_kind
from modelport.convert.inspect import InspectReport, inspect
from modelport.errors import CheckpointError, InputError
from modelport.package.check_kinds import CHECKS, _Ctx, quant_problems
from modelport.package.check_records import (
    CheckReport,
    Facts,
    Finding,
    HardwareAdvice,
    TargetReport,
)
from modelport.package.hardware import advise
from modelport.package.rules import (
    Check,
    TargetRules,
    load_target,
    resolve_target,
    target_names,
)


def _facts(root: Path, rep: InspectReport, config: dict[str, Any] | None) -> Facts:
    q = config.get("quantization_config") if config else None
    qm = q.get("quant_method") if isinstance(q, dict) else None
    bits = (q.get("bits") or q.get("w_bit")) if isinstance(q, dict) else None
    params = rep.parameters
    if qm and isinstance(bits, int) and bits in (2, 3, 4, 8):
        params = 0  # count packed weights as what they unpack to, skip scales/zeros/g_idx
        for w in rep.weight_files:
            if w.format != "safetensors":
                continue
            try:
                h = read_header(root / w.path)
            except CheckpointError:
                continue
            for name, t in h.tensors.items():
                leaf = name.rsplit(".", 1)[-1]
                if leaf == "qweight":
                    params += t.numel * (32 // bits)
                elif leaf not in ("qzeros", "scales", "g_idx"):
                    params += t.numel
    mt = config.get("model_type") if config else None
    return Facts(
        model_type=mt if isinstance(mt, str) else None,
        architectures=rep.config.architectures if rep.config else [],
        model_kind=model_kind(mt if isinstance(mt, str) else None),
        quant_method=qm if isinstance(qm, str) else None,
        quant_bits=bits if isinstance(bits, int) else None,
        parameters=params, tensors=rep.tensors, weight_bytes=rep.weight_bytes,
        dtypes=rep.dtypes,
        weight_formats=sorted({w.format for w in rep.weight_files}),
    )


def _choose_spec(rules: TargetRules, facts: Facts, spec: str | None) -> str | None:
    if spec is not None:
        if rules.spec_id(spec) not in rules.specs:
            names = [rules.spec_names.get(s, s) for s in rules.specs]
            raise InputError(f"target {rules.target} has no specification {spec!r}",
                             hint=f"specifications: {', '.join(names)}")
        return rules.spec_id(spec)
    arch = rules.arch(facts.model_type)
    if arch is None or not arch.specs:
        return rules.specs[0] if len(rules.specs) == 1 else None
    preferred = [s for s in ("caikit-1.1", "tsfm-runtime-1.0") if s in arch.specs]
    return (preferred or arch.specs)[0]


def _applies(c: Check, facts: Facts, spec: str | None) -> bool:
    w = c.applies_when
    if w.model_kind and w.model_kind != facts.model_kind:
        return False
    if w.model_type and facts.model_type not in w.model_type:
        return False
    if w.quantized is not None and w.quantized != (facts.quant_method is not None):
        return False
    return not (w.spec and spec not in w.spec)


def fix_command(template: str, root: str | Path) -> str:
    """The rule's command for ``root``. Only ``convert`` and ``prepare`` read a bucket: for
    ``s3://…`` the local-only verbs (tokenizer, normalize, tsfm-config) become ``prepare``,
    which runs them on a local copy."""
    where = str(root)
    if "://" in where and not template.startswith(("modelport convert", "modelport prepare")):
        template = "modelport prepare {dir} --out {name}-bundle"
    return template.format(dir=where, name=where.rstrip("/").rsplit("/", 1)[-1])


def check(path: str | Path, targets: list[str] | tuple[str, ...] = ("watsonx-saas",), *,
          spec: str | None = None, store: dict[str, Any] | None = None) -> CheckReport:
    """Evaluate a folder against each target's rules; reads headers and configs only.

    Args:
        path: the model folder, or ``s3://bucket/prefix`` (``store``: ``endpoint_url``,
            ``region``, ``profile``).
        targets: target names (see :func:`modelport.package.rules.target_names`).
        spec: a software specification of the target (e.g. ``caikit-1.0``); chosen from the
            architecture when omitted.

    Returns:
        A :class:`CheckReport`; ``ok`` is False when any target has an error. Never raises
        for findings, only for bad input (:class:`InputError`).
    """
    path = location(path)
    if isinstance(path, str):  # headers and small files: ranged reads
        from modelport.convert.remote import RemoteMirror

        with RemoteMirror(path, **(store or {})) as m:
            rep = m.as_url(check(m.root, targets, spec=spec))
        rep.path = redact(path)
        for t in rep.targets:
            for f in t.findings:
                if f.command:  # re-said about the URL: a verb that reads a bucket
                    f.command = fix_command(f.command.replace(rep.path, "{dir}"), rep.path)
        return rep
    t0 = time.perf_counter()
    root = path
    if not root.is_dir():
        raise InputError("is not a folder", path=root, hint="check takes a model folder")
    targets = [resolve_target(t) for t in targets]
    for t in targets:
        if t not in target_names():
            raise InputError(f"unknown target {t!r}", hint=f"targets: {', '.join(target_names())}")
    rep = inspect(root)
    config = rep.config and _read_config(root)
    facts = _facts(root, rep, config)
    reports = []
    for name in targets:
        rules = load_target(name)
        chosen = _choose_spec(rules, facts, spec if len(targets) == 1
                              or rules.spec_id(spec) in rules.specs else None)
        ctx = _Ctx(root, rep, config, facts, rules, chosen)
        findings = [Finding(rule_id=f"{rules.target}.inspect", severity="error", file=p.file,
                            message=p.message, sources=["modelport inspect"])
                    for p in rep.problems if p.severity == "error"]
        for c in rules.checks:
            if not _applies(c, facts, chosen):
                continue
            for file, detail in CHECKS[c.kind](c, ctx):
                sev = getattr(detail, "severity", c.severity)  # check_kinds.graded
                findings.append(Finding(
                    rule_id=c.id, severity=sev, file=file,
                    message=c.message, detail=str(detail), fix=c.fix,
                    command=fix_command(c.autofix, root) if c.autofix else None,
                    # documented when one of its sources is a platform page
                    unconfirmed=c.unconfirmed or all(
                        rules.sources[s].unconfirmed for s in c.sources),
                    sources=[rules.sources[s].url for s in c.sources]))
        reports.append(TargetReport(
            target=rules.target, title=rules.title, spec=chosen,
            spec_name=rules.spec_names.get(chosen, chosen) if chosen else None,
            findings=findings,
            hardware=advise(rules, facts),
            errors=sum(f.severity == "error" for f in findings),
            warnings=sum(f.severity == "warning" for f in findings)))
    return CheckReport(path=str(root), facts=facts, targets=reports,
                       ok=all(r.ok for r in reports), seconds=round(time.perf_counter() - t0, 3))


def _read_config(root: Path) -> dict[str, Any] | None:
    try:
        cfg = jsonio.load(root / "config.json")
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


__all__ = ["CheckReport", "Facts", "Finding", "HardwareAdvice", "TargetReport", "check",
           "quant_problems"]
