"""Keep a command's stderr to modelport's own lines: third-party logging and warnings off.

Used by the CLI (unless ``--debug`` or ``MODELPORT_DEBUG``) and the demo; the library leaves
the caller's logging alone.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings


def quiet_third_party() -> None:
    """Third-party log records below ERROR and third-party warnings are not shown."""
    # modelport itself does not log; libraries do on import and load (torchao's "Failed to
    # load ..._C_*.so", torch's pytree deprecation, tokenicer's logging.basicConfig(INFO)):
    # records below ERROR are switched off for every logger at once
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"modelport(\.|$)")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    # the variables above are read on import: a library already imported (the CLI run inside
    # a notebook or a test) is switched at run time instead
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
        sys.modules["transformers"].utils.logging.set_verbosity_error()
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
