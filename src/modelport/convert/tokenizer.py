"""``tokenizer``: the verb's entry point (the work is in ``modelport.convert.tok``)."""

from modelport.convert.tok.run import (
    Mismatch,
    ParityResult,
    TokenizerOptions,
    TokenizerReport,
    tokenizer,
)
from modelport.convert.tok.source import SPM_FILES
from modelport.errors import AmbiguousTokenizerError, TokenizerParityError

__all__ = ["SPM_FILES", "AmbiguousTokenizerError", "Mismatch", "ParityResult",
           "TokenizerOptions", "TokenizerParityError", "TokenizerReport", "tokenizer"]
