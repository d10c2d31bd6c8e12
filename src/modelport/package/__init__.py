"""Target rules, check, manifest, bundle, upload and prepare.

``modelport.package`` is both this package and the ``package`` verb (see
``modelport.convert``'s docstring): calling it forwards to
:func:`modelport.package.bundle.package`.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _Verb(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from modelport.package.bundle import package

        return package(*args, **kwargs)


sys.modules[__name__].__class__ = _Verb
