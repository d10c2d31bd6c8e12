"""Target rules, check, data check, manifest, bundle and upload.

``modelport.package`` is both this package and the ``package`` verb (see ``modelport._verb``):
calling it forwards to :func:`modelport.package.bundle.package`.
"""

from modelport._verb import make_callable

make_callable(__name__, "modelport.package.bundle:package")
