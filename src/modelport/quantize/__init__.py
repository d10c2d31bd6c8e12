"""4/8-bit GPTQ v1 and 4-bit AWQ GEMM through GPTQModel (``pip install modelport[quantize]``).

``modelport.quantize`` is both this package and the ``quantize`` verb (see ``modelport._verb``):
calling it forwards to :func:`modelport.pipeline.quantize.quantize` (the verb with the
target's rules attached).
"""

from modelport._verb import make_callable

make_callable(__name__, "modelport.pipeline.quantize:quantize")
