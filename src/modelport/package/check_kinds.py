"""The check kinds: one function per ``kind`` of the rules files, and the hardware advice.

Each function reads the folder's facts through ``_Ctx`` and returns the failures of one
check as ``(file, detail)`` pairs; an empty list means the check passed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport._io import jsonio
from modelport._io.st_header import ST_INDEX
from modelport._trust import auto_map_entries
from modelport.convert.inspect import InspectReport
from modelport.package.check_records import Facts
from modelport.package.hardware import advise, families_of
from modelport.package.rules import Check, TargetRules

VISION_TYPES = {"mllama", "llama4", "gemma3", "llava", "qwen2_vl", "qwen2_5_vl", "idefics3",
                "paligemma", "pixtral", "mistral3"}


class _Ctx:
    """Everything a check function may read."""

    def __init__(self, root: Path, rep: InspectReport, config: dict[str, Any] | None,
                 facts: Facts, rules: TargetRules, spec: str | None) -> None:
        self.root, self.rep, self.config, self.facts = root, rep, config, facts
        self.rules, self.spec = rules, spec
        self.files = set(rep.tokenizer_files) | set(rep.other_files) | {
            w.path for w in rep.weight_files} | {i.path for i in rep.indexes}


Result = list[tuple[str | None, str]]  # (file, detail) per failure; empty: the check passed


class Graded(str):
    """A finding's detail that carries its own severity (the check's otherwise); never read
    from the text, so a value quoted from config.json cannot set one."""

    severity: str


def graded(detail: str, severity: str) -> Graded:
    g = Graded(detail)
    g.severity = severity
    return g

def _config_present(c: Check, x: _Ctx) -> Result:
    return [] if x.config is not None else [("config.json", "missing or not a JSON object")]


def _config_keys(c: Check, x: _Ctx) -> Result:
    if x.config is None:
        return []
    missing = [k for k in c.keys if not x.config.get(k)]
    return [("config.json", f"missing: {', '.join(missing)}")] if missing else []


def _file_present(c: Check, x: _Ctx) -> Result:
    wanted = [c.file] if c.file else c.files
    return [] if any(f in x.files for f in wanted) else [(wanted[0], "not in the folder")]


def _arch_supported(c: Check, x: _Ctx) -> Result:
    mt = x.facts.model_type
    if mt is None:
        return []
    arch = x.rules.arch(mt)
    if arch is None:
        if mt in x.rules.vllm_model_types or not x.rules.vllm_model_types:
            return [("config.json", graded(f"model_type {mt!r} is not certified; vLLM supports "
                                           "it, so it may deploy",
                                           c.severity_uncertified or c.severity))]
        return [("config.json", f"model_type {mt!r} is not supported")]
    if x.spec and arch.specs and x.spec not in arch.specs:
        return [("config.json", f"model_type {mt!r} is not available on {x.spec} "
                                f"(available: {', '.join(arch.specs)})")]
    return []


def _quant_allowed(c: Check, x: _Ctx) -> Result:
    arch, q = x.rules.arch(x.facts.model_type), x.facts.quant_method
    if arch is None or q is None or q in arch.quantization:
        return []
    if q in arch.unconfirmed_quantization:
        return [("config.json", graded(f"{q} for {arch.model_type} is listed only by example "
                                       "(unconfirmed)", "warning"))]
    allowed = ", ".join(arch.quantization) or "none"
    return [("config.json", f"{q} is not allowed for {arch.model_type} (allowed: {allowed})")]


def quant_problems(rules: TargetRules, model_type: str | None, q: dict[str, Any], *,
                   errors_only: bool = False) -> list[str]:
    """Why ``rules`` would not load a ``quantization_config`` ``q`` for ``model_type``: the
    certified methods of the architecture (``quant_allowed``), then the format
    (:func:`quant_format_problems`). ``errors_only`` lets unconfirmed methods pass."""
    out: list[str] = []
    method = q.get("quant_method")
    arch = rules.arch(model_type)
    if arch is not None and method not in arch.quantization and (
            not errors_only or method not in arch.unconfirmed_quantization):
        out.append(f"{method} is not certified for {model_type} "
                   f"(certified: {', '.join(arch.quantization) or 'none'})")
    return out + quant_format_problems(rules, q)


def quant_format_problems(rules: TargetRules, q: dict[str, Any]) -> list[str]:
    """The bits, group size, symmetry and checkpoint format of ``q`` against what the
    target's runtime loads (its ``[[quant_formats]]``); absent keys take the runtimes'
    defaults."""
    method = q.get("quant_method")
    fmt = rules.quant_format(method if isinstance(method, str) else None)
    if fmt is None:
        return []
    out = []
    bits, group = q.get("bits", q.get("w_bit")), q.get("group_size", q.get("q_group_size"))
    if bits not in fmt.bits:
        out.append(f"{method} bits {bits} (loads {fmt.bits})")
    if group not in fmt.group_sizes:
        out.append(f"{method} group_size {group} (loads {fmt.group_sizes})")
    if fmt.sym is not None and q.get("sym", True) not in fmt.sym:
        out.append(f"{method} sym={q.get('sym')} (loads sym={fmt.sym})")
    if fmt.zero_point is not None and q.get("zero_point", True) not in fmt.zero_point:
        out.append(f"{method} zero_point={q.get('zero_point')} (loads {fmt.zero_point})")
    form = q.get("checkpoint_format", "gptq") if method == "gptq" else q.get("version", "gemm")
    if isinstance(form, str):
        form = form.lower()
    if form not in fmt.formats:
        out.append(f"{method} format {form!r} (loads {fmt.formats})")
    return out


def _quant_format(c: Check, x: _Ctx) -> Result:
    q = (x.config or {}).get("quantization_config")
    if not isinstance(q, dict):
        return []
    return [("config.json", p) for p in quant_format_problems(x.rules, q)]


def _weights_safetensors(c: Check, x: _Ctx) -> Result:
    fmts = {w.path: w.format for w in x.rep.weight_files}
    st = [p for p, f in fmts.items() if f == "safetensors"]
    pk = [p for p, f in fmts.items() if "pickle" in f]
    if not fmts:
        return [(None, graded("no weight files", "error"))]
    if not st and not pk:
        return [(next(iter(fmts)), graded("no readable weight file", "error"))]
    if not st:
        return [(pk[0], f"{len(pk)} pickled weight file(s), no safetensors")]
    if pk:
        return [(pk[0], graded(f"{len(pk)} pickle(s) beside the safetensors: leave them out "
                               "of the upload", "info"))]
    return []


def _st_metadata(c: Check, x: _Ctx) -> Result:
    out: Result = []
    for w in x.rep.weight_files:
        if w.format != "safetensors":
            continue
        if w.has_metadata is False:
            out.append((w.path, graded("no metadata", c.severity_missing or c.severity)))
        elif w.has_metadata and w.metadata_format != "pt":
            out.append((w.path, f"metadata format {w.metadata_format!r}"))
    return out


def _index_consistent(c: Check, x: _Ctx) -> Result:
    out: Result = [(i.path, "inconsistent") for i in x.rep.indexes
                   if i.path == ST_INDEX and not i.consistent]
    shards = [w for w in x.rep.weight_files
              if w.format == "safetensors" and w.path.startswith("model-")]
    if len(shards) > 1 and not any(i.path == ST_INDEX for i in x.rep.indexes):
        out.append((ST_INDEX, f"missing for {len(shards)} shards"))
    return out


def _chat_template(c: Check, x: _Ctx) -> Result:
    if {"chat_template.jinja", "chat_template.json"} & x.files:
        return []
    p = x.root / "tokenizer_config.json"
    try:
        tc = jsonio.load(p) if p.is_file() else {}
    except (OSError, ValueError):
        tc = {}
    return [] if isinstance(tc, dict) and tc.get("chat_template") else [
        ("tokenizer_config.json", "no chat_template")]


def _remote_code(c: Check, x: _Ctx) -> Result:
    if x.config is not None and "auto_map" in x.config:
        entries = auto_map_entries(x.root, ("config.json",))
        return [("config.json", f"auto_map: {', '.join(entries) or 'present, malformed'}")]
    return []


def _bf16_weights(c: Check, x: _Ctx) -> Result:
    n = x.facts.dtypes.get("bfloat16", 0)
    return [(None, f"{n} bf16 tensor(s)")] if n else []


def _lookup(cfg: dict[str, Any] | None, path: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _config_value(c: Check, x: _Ctx) -> Result:
    assert c.path is not None and c.op is not None
    found, v = _lookup(x.config, c.path)
    op, want = c.op, c.value
    if op == "le":  # a number at most the value (a missing key says nothing)
        ok = not found or (isinstance(v, (int, float)) and not isinstance(v, bool)
                           and v <= want)
    else:
        ok = {
            "eq": found and v == want, "ne": not found or v != want,
            "in": found and v in (want or []), "not_in": not found or v not in (want or []),
            "exists": found, "absent": not found,
        }[op]
    return [] if ok else [("config.json", f"{c.path} = {v!r}")]


def _family_in(c: Check, x: _Ctx) -> Result:
    if x.facts.model_type is None:
        return []
    fams = families_of(x.rules, x.facts)
    if fams:
        return []
    arch = ", ".join(x.facts.architectures) or x.facts.model_type
    return [("config.json", f"{arch} is not a listed family")]


def capability(architecture: str, model_type: str | None) -> str | None:
    """The OCI capability an architecture class serves, from its name."""
    if architecture.endswith(("ForSequenceClassification", "ForTokenClassification")):
        return "RERANK"
    if architecture.endswith("ForConditionalGeneration") and model_type in VISION_TYPES:
        return "IMAGE_TEXT_TO_TEXT"
    if architecture.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")):
        return "TEXT_TO_TEXT"
    if architecture.endswith(("Model", "ForMaskedLM")):
        return "EMBEDDING"
    return None


def _single_capability(c: Check, x: _Ctx) -> Result:
    if not x.facts.architectures:
        return []
    listed = {a: f.capability for f in x.rules.families for a in f.architectures}
    caps = {listed.get(a) or capability(a, x.facts.model_type) for a in x.facts.architectures}
    if len(caps) == 1 and None not in caps:
        return []
    return [("config.json", f"capabilities {sorted(map(str, caps))} from "
                            f"{', '.join(x.facts.architectures)}")]


def _hardware_fit(c: Check, x: _Ctx) -> Result:
    hw = advise(x.rules, x.facts)
    if not hw.fits:
        return [(None, hw.recommendation)]
    return [(None, graded(hw.caution, "warning"))] if hw.caution else []


CHECKS: dict[str, Callable[[Check, _Ctx], Result]] = {
    "config_present": _config_present, "config_keys": _config_keys,
    "file_present": _file_present, "arch_supported": _arch_supported,
    "quant_allowed": _quant_allowed, "weights_safetensors": _weights_safetensors,
    "st_metadata": _st_metadata, "index_consistent": _index_consistent,
    "chat_template": _chat_template, "remote_code": _remote_code,
    "bf16_weights": _bf16_weights, "config_value": _config_value, "family_in": _family_in,
    "single_capability": _single_capability, "hardware_fit": _hardware_fit,
    "quant_format": _quant_format,
}
