"""4/8-bit GPTQ v1 and 4-bit AWQ GEMM through GPTQModel (``pip install modelport[quantize]``).

``modelport.quantize`` is both this package and the ``quantize`` verb: importing a submodule
rebinds the attribute to the package, so the package itself is callable and forwards to
:func:`modelport.quantize.run.quantize`.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _Verb(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from modelport.quantize.run import quantize

        return quantize(*args, **kwargs)


sys.modules[__name__].__class__ = _Verb
