"""Hardware advice per target, from the [hardware] table of its rules file: watsonx's tiers
(quantized models sized at two bytes a parameter), OCI's dedicated AI cluster unit shapes (the
family's listed shape, else the cheapest of the page's 19 that holds the weights) and the
time-series concurrency table."""

from __future__ import annotations

import math

from modelport.package.check_records import Facts, HardwareAdvice
from modelport.package.rules import Family, TargetRules


def families_of(rules: TargetRules, facts: Facts) -> list[Family]:
    """The target's listed families the model belongs to: by its first architecture, else by
    its model_type (one decision for the family checks and the hardware advice)."""
    arch0 = facts.architectures[0] if facts.architectures else None
    return [f for f in rules.families if arch0 in f.architectures] or [
        f for f in rules.families if facts.model_type in f.model_types]


def _oci(rules: TargetRules, facts: Facts) -> HardwareAdvice:
    hw = rules.hardware
    pb = facts.parameters / 1e9
    by_name = {u.name: u for u in hw.units}
    fam = next(iter(families_of(rules, facts)), None)
    per_param = facts.weight_bytes / max(facts.parameters, 1)
    listed = next((x for x in (fam.shapes if fam else [])
                   if abs(pb - x.params_b) <= 0.1 * x.params_b and (
                       x.bytes_per_param is None
                       or abs(per_param - x.bytes_per_param) <= 0.35 * x.bytes_per_param)),
                  None)
    if fam is not None and listed is not None:
        u = by_name[listed.shape]
        return HardwareAdvice(
            fits=True, tier=u.name, gpus=u.units, notes=list(hw.notes),
            recommendation=f"{u.name}: the shape the page lists for the {listed.params_b:g}B "
            f"{fam.name} model; request {u.units} of limit {u.limit} ({u.ai_units:g} AI "
            "units)")
    need = facts.weight_bytes / 1e9 * (1 + hw.overhead)
    fitting = sorted((u for u in hw.units if u.units * u.gpu_gb >= need),
                     key=lambda u: (u.ai_units, u.units))
    notes = [*hw.notes, f"not in the platform documentation: {facts.weight_bytes / 1e9:.1f} GB "
             f"of weights + {hw.overhead:.0%} against each shape's GPU memory"]
    if not fitting:
        return HardwareAdvice(fits=False, notes=notes, unconfirmed=True,
                              recommendation=f"{facts.weight_bytes / 1e9:.1f} GB of weights: no "
                              "unit shape of the page holds them")
    u = fitting[0]
    return HardwareAdvice(
        fits=True, tier=u.name, gpus=u.units, gpu_memory_gb=round(need, 1), notes=notes,
        unconfirmed=True, recommendation=f"{u.name} (the cheapest shape holding {need:.1f} GB); "
        f"request {u.units} of limit {u.limit} ({u.ai_units:g} AI units)")


def advise(rules: TargetRules, facts: Facts) -> HardwareAdvice:
    """Recommended hardware for ``facts`` on a target (see the [hardware] table of its file)."""
    hw = rules.hardware
    pb = facts.parameters / 1e9
    notes = list(hw.notes)
    if hw.kind == "databricks":
        return HardwareAdvice(fits=True, recommendation="provisioned throughput sizes itself "
                              "from the model family", notes=notes, unconfirmed=hw.unconfirmed)
    if hw.kind == "oci" and hw.units:
        return _oci(rules, facts)
    if facts.model_kind == "timeseries":
        rows = [f"univariate {r['univariate']} / multivariate {r['multivariate']}: " + ", ".join(
            f"{s} {r[s]} users" for s in hw.timeseries_sizes) for r in hw.timeseries_concurrency]
        return HardwareAdvice(fits=True, recommendation="time series: pick S, M, L or XL by "
                              "concurrent users (payload: users per size)",
                              notes=[*notes, *rows],
                              unconfirmed=hw.unconfirmed)
    bits = facts.quant_bits if facts.quant_method else None
    if hw.kind == "watsonx" and bits is not None:
        # the pages size double-byte models; their certified Mixtral-8x7B GPTQ (46.7B, no
        # tensor parallelism) runs on Small, which only its memory at two bytes a parameter
        # explains: the tier and tensor-parallel rules apply to that size
        size_b = pb * bits / 8 / hw.bytes_per_param
        factor = hw.bit_factor.get(str(bits), 1.0)
        mem = pb * hw.bytes_per_param * factor * (1 + hw.overhead)
        notes += [f"{bits}-bit: {pb:.2f}B parameters sized as {size_b:.2f}B at "
                  f"{hw.bytes_per_param:g} bytes a parameter (the pages give the sizes of "
                  "double-byte models; this reading of them is not in the platform "
                  "documentation)",
                  f"not in the platform documentation: a custom hardware specification "
                  f"estimate of {max(1, math.ceil(mem / hw.gpu_gb))}× {hw.gpu_gb:.0f} GB GPU "
                  f"({pb:.2f}B × {hw.bytes_per_param:g} GB × {factor:g} + {hw.overhead:.0%} = "
                  f"{mem:.1f} GB)"]
    else:  # double-byte weights (quantized ones are only sized on watsonx)
        size_b = pb
    tiers = hw.tiers
    arch = rules.arch(facts.model_type)
    if arch is not None and not arch.tensor_parallel and hw.no_tensor_parallel_tier:
        tiers = [t for t in tiers if t.name == hw.no_tensor_parallel_tier]
        notes.append(f"{arch.model_type} has no tensor parallelism: only "
                     f"{hw.no_tensor_parallel_tier}")
    tier = next((t for t in tiers if size_b <= t.max_params_b), None)
    caution = None
    limit = hw.no_tensor_parallel_examples_b
    if tier is None and arch is not None and not arch.tensor_parallel and limit and \
            size_b <= limit:
        tier = tiers[0]
        caution = (f"{size_b:.2f}B is past {tier.name}'s {tier.max_params_b:g}B guideline, the "
                   f"only configuration without tensor parallelism; the page's own examples "
                   f"run models up to {limit:g}B there ({', '.join(arch.examples)}): test the "
                   "deployment")
    if tier is None:
        top = tiers[-1] if tiers else None
        return HardwareAdvice(fits=False, notes=notes,
                              unconfirmed=hw.unconfirmed or bits is not None,
                              recommendation=f"{pb:.2f}B parameters"
                              f"{f' (sized {size_b:.2f}B for {bits}-bit)' if bits else ''} "
                              f"exceed the largest usable size ({top.name if top else '-'}, "
                              f"{top.max_params_b if top else 0:g}B)")
    sized = f", sized {size_b:.2f}B for {bits}-bit" if bits else ""
    return HardwareAdvice(fits=True, tier=tier.name, notes=notes, caution=caution,
                          unconfirmed=hw.unconfirmed or bits is not None or caution is not None,
                          recommendation=f"{tier.name} ({pb:.2f}B parameters{sized}"
                          + (f", past its {tier.max_params_b:g}B guideline)" if caution else
                             f" ≤ {tier.max_params_b:g}B)"))
