"""The tokenizer verb's summary: what ``modelport tokenizer`` prints and ``print(report)``
shows."""

from __future__ import annotations

from typing import Any


def summary(rep: Any) -> str:
    """The human summary of a :class:`~modelport.tok.run.TokenizerReport`."""
    p = rep.parity
    verb = "checked" if rep.checked else ("wrote" if rep.written else "did not write")
    cov = rep.coverage
    if p.matched == p.examples and rep.certified and cov is not None and \
            cov.matched == cov.lines:
        verdict = f"{p.matched}/{p.examples} lines identical (100%)"
    else:
        verdict = (f"{p.matched}/{p.examples} lines identical, {p.known_differences} known "
                   f"difference(s), {p.mismatched} mismatch(es)")
    if rep.guessed:
        verdict += f" - against a GUESSED class (candidates {', '.join(rep.candidates)})"
    lines = [f"{verb} tokenizer.json for {rep.out or rep.folder}",
             f"  class {rep.tokenizer_class} ({rep.kind}), from {rep.class_source}",
             f"  parity vs {p.reference}: {verdict}"
             + (f"; decode {p.decode_matched}/{p.decode_checked}" if p.decode_checked else ""),
             *([f"  vocabulary proof: {cov.pieces_as_text} of {cov.vocab_size} pieces run as "
                f"text ({cov.fraction:.1%}; {cov.not_text} are not text on their own), "
                f"{cov.matched}/{cov.lines} lines identical, {cov.known_differences} known "
                f"difference(s), {cov.mismatched} mismatch(es), {cov.seconds:g} s"]
               if cov is not None else []),
             f"  template {rep.post_processor}; vocabulary {rep.vocab_size}"
             + (f"; transformers AutoTokenizer on the written files: "
                f"{rep.transformers_matched}/{p.examples} identical"
                if rep.transformers_matched is not None else ""),
             f"  special tokens: {', '.join(f'{k}={v}' for k, v in rep.special_tokens.items())}"]
    if rep.flags_applied:
        lines.append("  flags applied: " + ", ".join(f"{k}={v}" for k, v in
                                                      rep.flags_applied.items()))
    if rep.flags_carried:
        lines.append("  decode flags kept in tokenizer_config.json: " + ", ".join(
            f"{k}={v}" for k, v in rep.flags_carried.items()))
    if rep.flags_ignored:
        lines.append("  flags present, not used by this class: " + ", ".join(
            f"{k}={v}" for k, v in rep.flags_ignored.items()))
    lines += [f"  note: {n}" for n in rep.notes]
    lines += [f"  known difference: {m.text[:60]!r}: class {m.expected[:8]}, tokenizer.json "
              f"{m.got[:8]}" for m in p.first_known]
    lines += [f"  mismatch: {m.text[:60]!r}: expected {m.expected[:8]}, got {m.got[:8]}"
              for m in p.first_mismatches]
    return "\n".join(lines)


__all__ = ["summary"]
