"""``quantize`` with a deployment target: the quantize room's verb, given the target's rules
from the package room."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelport.quantize.options import QuantizeOptions
from modelport.quantize.run import QuantizeReport
from modelport.quantize.run import quantize as run_quantize


def quantize(src: str | Path, dst: str | Path, options: QuantizeOptions | None = None, *,
             progress: bool | None = None, **kwargs: Any) -> QuantizeReport:
    """:func:`modelport.quantize.run.quantize`, with ``options.target``'s rules attached."""
    opt = options if options is not None else QuantizeOptions(**kwargs)
    if options is not None and kwargs:
        opt = options.model_copy(update=kwargs)
    target_check = None
    if opt.target:
        from modelport.package.target_check import RulesCheck

        target_check = RulesCheck(opt.target)
    return run_quantize(src, dst, opt, progress=progress, target_check=target_check)
