"""Subpackages that are also verbs (``modelport.convert``, ``.package``, ``.quantize``).

Importing a submodule (``modelport.convert.sources``) rebinds the parent's attribute to the
package, so the package itself must be callable and forward to the verb's function.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def make_callable(package: str, target: str) -> None:
    """Make the module ``package`` callable as ``target`` ("module:function")."""
    module, func = target.split(":")

    class _Verb(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(module), func)(*args, **kwargs)

    sys.modules[package].__class__ = _Verb
