"""Keep a command's stderr to modelport's own lines: third-party logging and warnings off.

Used by the CLI (unless ``--debug`` or ``MODELPORT_DEBUG``) and the demo; the library leaves
the caller's logging alone.
"""

from __future__ import annotations

import logging
import os
import warnings

# loggers that print on import or load with the quantize extra installed: torchao's
# "Failed to load ..._C_*.so", torch's pytree Enum deprecation, tokenicer's pad-token fix,
# transformers' and huggingface_hub's advice
THIRD_PARTY = ("torchao", "torch", "transformers", "huggingface_hub", "tokenicer",
               "gptqmodel", "accelerate", "datasets", "urllib3", "botocore", "boto3")


def quiet_third_party() -> None:
    """Third-party log records below ERROR and third-party warnings are not shown."""
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.ERROR)
    # modelport itself does not log; some libraries raise their own levels on import
    # (tokenicer calls logging.basicConfig(level=INFO)), so switch records below ERROR off
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"modelport(\.|$)")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
