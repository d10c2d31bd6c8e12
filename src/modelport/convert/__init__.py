"""Checkpoint conversion, tokenizers, tsfm config, normalization.

``modelport.convert`` is both this package and the ``convert`` verb: importing a submodule
(``modelport.convert.sources``) rebinds the attribute to the package, so the package itself is
callable and forwards to :func:`modelport.convert.checkpoint.convert`.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _Verb(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from modelport.convert.checkpoint import convert

        return convert(*args, **kwargs)


sys.modules[__name__].__class__ = _Verb
