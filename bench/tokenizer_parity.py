"""Real tokenizer files against the oracle: the table in the README.

For each case in ../shared/real/tok*: the class modelport used and where it came from, lines
whose ids equal the truth (the authors' tokenizer.json where shipped, else transformers
4.57.6's slow class, or tiktoken), what the report said (identical / known differences /
mismatches), decode parity (both skip_special_tokens settings), and the same for transformers
4.57.6's own fast converter and transformers 5's own conversion of the same slow files.
Needs .venv-tokref (`make setup`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import REAL
from tests.convert_tok.cases import REFUSED, real_cases
from tests.convert_tok.compare import run_case, vocab_check


def main() -> None:
    if not REAL.exists():
        sys.exit(f"{REAL} not found")
    rows = ["| case | class (source) | ids = truth | report: identical + known / mismatched"
            " | decode = slow class | decode = converter / authors' file"
            " | transformers 4 converter | transformers 5 | truth"
            " | vocabulary proof: pieces as text, s; lines = truth, false certificates |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    total = same = false_cert = v_total = v_same = v_false = 0
    for case in real_cases():
        with tempfile.TemporaryDirectory() as tmp:
            r = run_case(case, Path(tmp) / "out", with_transformers5=True)
            v_lines, v_ok, v_bad = vocab_check(case, Path(tmp) / "out")
        v_total, v_same, v_false = v_total + v_lines, v_same + v_ok, v_false + v_bad
        total += r.lines
        same += r.identical
        false_cert += len(r.false_certificates)
        src = r.class_source.replace("tokenizer_config tokenizer_class", "tokenizer_config")
        rows.append(f"| {r.case.split('/')[1]} | {r.tokenizer_class} ({src}) | "
                    f"{r.identical}/{r.lines} | {r.reported_match} + {r.reported_known} / "
                    f"{r.reported_mismatch} | {r.decode[0]}/{r.decode[1]} | "
                    f"{r.decode_fast[0]}/{r.decode_fast[1]} | {r.converter} | "
                    f"{r.transformers5} | {r.truth} | {r.coverage} {v_ok}/{v_lines}, "
                    f"{v_bad} |")
    for name, why in REFUSED.items():
        rows.append(f"| {name.split('/')[1]} | refused ({why}) | - | - | - | - | - | - | - "
                    "| - |")
    rows.append(f"\nall lines: {same}/{total} ids identical to the truth "
                f"({same / total:.2%}); lines reported identical where the truth differs: "
                f"{false_cert}\nvocabulary proof lines: {v_same}/{v_total} ids identical to "
                f"the truth; lines the proof called identical where the truth differs: "
                f"{v_false}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
