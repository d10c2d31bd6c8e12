"""Break each promised behaviour once and show that its tests fail (`make mutants`).

Each mutant replaces one exact piece of source text, runs the tests named for that behaviour,
and restores the file, whatever happens. A mutant whose tests still pass is a test that cannot
fail: the script lists it and exits 1. Results go to docs/mutants.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "modelport"

# (what breaks, file, exact old text, new text, tests that must fail)
MUTANTS: list[tuple[str, str, str, str, list[str]]] = [
    ("the pickle allow-list lets every global through", "convert/pickle_safe.py",
     "        if key in self.extra_allowed or key in INERT_BY_DEFAULT:",
     "        if True:",
     ["tests/hostile/test_pickle_payloads.py::test_every_offending_global_is_named"]),
    ("convert's re-read compares nothing", "convert/writer.py",
     "                if not _equal(got[pos: pos + n], part):",
     "                if False:",
     ["tests/functional/test_convert_atomic.py::test_a_byte_lost_on_disk_fails_the_proof",
      "tests/functional/test_convert_atomic.py::"
      "test_a_rerun_keeps_a_shard_only_when_every_byte_is_its_sources"]),
    ("a computed tensor is not read back against its fingerprint", "convert/writer.py",
     "    if verify and _refingerprint_differs(path, w):",
     "    if False:",
     ["tests/functional/test_convert_atomic.py::test_a_byte_lost_on_disk_fails_the_proof"]),
    ("a shard is proven before the next is written: no overlap", "convert/writer.py",
     "    ahead = ThreadPoolExecutor(1) if len(shards) > 1 and before_shard is None \\\n",
     "    ahead = None if len(shards) > 1 and before_shard is None \\\n",
     ["tests/functional/test_convert_pipelined.py::"
      "test_a_shards_proof_runs_while_the_next_shard_is_written"]),
    ("a proven shard is not given back to the page cache", "convert/writer.py",
     "            drop_cached(path)  # writes",
     "            pass  # writes",
     ["tests/functional/test_convert_page_cache.py::"
      "test_every_shard_but_the_last_leaves_the_page_cache_once_proven"]),
    ("giving a shard's pages back leaves them cached", "_io/pages.py",
     "        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)",
     "        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_NORMAL)",
     ["tests/functional/test_convert_page_cache.py::"
      "test_every_shard_but_the_last_leaves_the_page_cache_once_proven"]),
    ("a failed proof leaves the next shard's writer running", "convert/writer.py",
     "                except BaseException:\n                    w.abort()\n",
     "                except BaseException:\n",
     ["tests/functional/test_convert_pipelined.py::"
      "test_a_failed_proof_while_the_next_shard_is_written_stops_both"]),
    ("the direct writer keeps what the disk gave back unread", "_io/direct.py",
     "            if not same(back[at: start], mine[at: start]):",
     "            if False:",
     ["tests/functional/test_convert_direct.py::test_a_byte_the_disk_loses_fails_the_proof"]),
    ("the direct writer does not compare copied bytes with their source", "_io/direct.py",
     "            if not same(back[start: start + length], np.frombuffer(source, dtype=np.uint8)):",
     "            if False:",
     ["tests/functional/test_convert_direct.py::"
      "test_a_copied_byte_that_is_not_its_sources_fails_the_proof"]),
    ("secrets are printed", "_io/redact.py",
     "    text = _USERINFO.sub(r\"\\1***@\", text)",
     "    return text",
     ["tests/hostile/test_store_trust.py::test_redact"]),
    ("a loader runs the folder's code", "convert/architectures.py",
     "AutoConfig.from_pretrained(folder, trust_remote_code=False)",
     "AutoConfig.from_pretrained(folder, trust_remote_code=True)",
     ["tests/unit/test_trust_calls.py::test_no_loader_says_true"]),
    ("bundles follow links", "_io/paths.py",
     "def refuse_links(root: Path) -> None:\n",
     "def refuse_links(root: Path) -> None:\n    return\n",
     ["tests/hostile/test_store_trust.py::test_links_in_bundles_are_refused"]),
    ("quantize keeps any error", "quantize/verify.py",
     "    if mean > w_bound:", "    if False:",
     ["tests/quantize/test_quantize.py::test_an_error_past_the_bound_is_refused"]),
    ("a bug exits 1, not 70", "cli/_errors.py",
     "            sys.exit(EXIT_INTERNAL)", "            sys.exit(1)",
     ["tests/cli/test_exit_codes.py::test_a_bug_is_exit_70_in_one_line_and_debug_shows_the_traceback"]),
    ("Ctrl-C is not caught", "cli/_errors.py",
     "        except KeyboardInterrupt:", "        except ZeroDivisionError:",
     ["tests/cli/test_exit_codes.py::test_ctrl_c_mid_write_is_exit_130_and_keeps_nothing"]),
    ("Meta's rotary rows are not permuted", "convert/meta_llama.py",
     "    out.reshape(n_heads, 2, half, cols)[...] = w.reshape(n_heads, half, 2, cols)",
     "    out[...] = w  # broken:",
     ["tests/convert_meta/test_meta.py::test_meta_layout_round_trip"]),
    ("a changed file keeps its cached digest", "_io/hashcache.py",
     "entry.get(\"stat\") == _key(path) and", "True and",
     ["tests/package/test_hash_cache.py"]),
    ("hidden files are copied", "_io/paths.py",
     "            if fn.startswith(\".\"):", "            if fn.startswith(\"\\0\"):",
     ["tests/functional/test_convert_edge.py::test_hidden_files_and_folders_are_left_out"]),
    ("the journal is not rolled back", "_io/st_inplace.py",
     "                pwrite_all(fd, old, 0)", "                pass",
     ["tests/functional/test_normalize.py::test_a_crash_mid_header_is_rolled_back_from_the_journal"]),
    ("T5's sentinel ids counted upwards", "tok/spm_classes.py",
     "Added(f\"<extra_id_{i}>\", len(pieces) - 1 + n_extra - i,",
     "Added(f\"<extra_id_{i}>\", len(pieces) + i,",
     ["tests/convert_tok/test_classes.py::test_trained_class_matches_the_oracle[t5_legacy]"]),
    ("import modelport loads torch", "__init__.py",
     "from typing import TYPE_CHECKING, Any\n",
     "from typing import TYPE_CHECKING, Any\n\nimport torch  # noqa: F401\n",
     ["tests/cli/test_exit_codes.py::test_import_modelport_loads_neither_torch_nor_transformers"]),
    ("a resumed upload keeps a part whose bytes changed", "_io/s3_multipart.py",
     "_md5_of_etag(have[0]) == md5.hexdigest():", "True:",
     ["tests/package/test_multipart.py::test_parts_of_other_bytes_are_sent_again"]),
    ("Llama 3.1's <|python_tag|> misnamed (needs ../shared/real)",
     "tok/tiktoken_.py", "\"<|python_tag|>\"]", "\"<|python_tag_|>\"]",
     ["tests/convert_tok/test_real.py::test_real_case_matches_the_oracle[llama3_meta_tiktoken]"]),
    ("mlflow-log names the model as only MLflow 3 accepts", "package/mlflow_log.py",
     'kw: dict[str, Any] = {"name": "model"} if major >= 3 else {"artifact_path": "model"}',
     'kw: dict[str, Any] = {"name": "model"}',
     ["tests/integration/test_mlflow.py::test_both_mlflow_majors_log_and_load_back"]),
    ("config.json's tokenizer_class is ignored", "tok/classes.py",
     'for conf, where in ((src.tc, "tokenizer_config"), (src.cfg, "config")):',
     'for conf, where in ((src.tc, "tokenizer_config"),):',
     ["tests/convert_tok/test_classes.py::test_trained_class_matches_the_oracle[class_in_config]"]),
]


def run(mutant: tuple[str, str, str, str, list[str]]) -> tuple[bool, float]:
    what, rel, old, new, tests = mutant
    path = SRC / rel
    original = path.read_text()
    if original.count(old) < 1:
        raise SystemExit(f"{what}: the text to break is gone from {rel}; update the mutant")
    try:  # a mutant that does not compile fails every test for the wrong reason
        compile(original.replace(old, new, 1), str(path), "exec")
    except SyntaxError as e:
        raise SystemExit(f"{what}: the broken {rel} does not compile ({e.msg}, line "
                         f"{e.lineno}); fix the mutant's text") from e
    t = time.monotonic()
    try:
        path.write_text(original.replace(old, new, 1))
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            *tests], cwd=ROOT, capture_output=True, text=True, timeout=900)
    finally:
        path.write_text(original)
    return p.returncode != 0, time.monotonic() - t


def main() -> int:
    rows, survived = [], []
    for m in MUTANTS:
        caught, secs = run(m)
        print(f"{'caught  ' if caught else 'SURVIVED'} {m[0]} ({secs:.0f} s)", flush=True)
        rows.append(f"| {m[0]} | `{m[1]}` | {', '.join(f'`{t}`' for t in m[4])} | "
                    f"{'failed (caught)' if caught else '**passed (not caught)**'} |")
        if not caught:
            survived.append(m[0])
    out = ROOT / "docs" / "mutants.md"
    out.write_text("<!-- generated by scripts/mutants.py (make mutants) -->\n"
                   "| broken on purpose | file | tests run | result |\n|---|---|---|---|\n"
                   + "\n".join(rows) + f"\n\n{len(MUTANTS) - len(survived)} of {len(MUTANTS)} "
                   "mutants caught.\n")
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main())
