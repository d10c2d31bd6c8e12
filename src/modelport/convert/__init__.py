"""Checkpoint conversion, tokenizers, tsfm config, normalization.

``modelport.convert`` is both this package and the ``convert`` verb (see ``modelport._verb``):
calling it forwards to :func:`modelport.convert.checkpoint.convert`.
"""

from modelport._verb import make_callable

make_callable(__name__, "modelport.convert.checkpoint:convert")
