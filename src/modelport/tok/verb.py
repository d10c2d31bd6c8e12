"""``tokenizer``: the verb's entry point (the work is in ``run`` and the builders)."""

from modelport.errors import AmbiguousTokenizerError, TokenizerParityError
from modelport.tok.run import (
    Mismatch,
    ParityResult,
    TokenizerOptions,
    TokenizerReport,
    tokenizer,
)
from modelport.tok.source import SPM_FILES

__all__ = ["SPM_FILES", "AmbiguousTokenizerError", "Mismatch", "ParityResult",
           "TokenizerOptions", "TokenizerParityError", "TokenizerReport", "tokenizer"]
