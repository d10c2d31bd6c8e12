"""The CLI's contract as the README states it, in real processes: exit 70 for a bug (one line,
the traceback only with --debug or MODELPORT_DEBUG=1), exit 130 for Ctrl-C mid-write with no
partial output kept, --quiet prints nothing but errors, progress bars on a terminal only, and
`import modelport` loads neither torch nor transformers."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import torch

from tests.conftest import save_bin, st_folder

ROOT = Path(__file__).resolve().parents[2]
BUG = ("import importlib, sys\n"
       "m = importlib.import_module('modelport.convert.inspect')\n"
       "def boom(*a, **k):\n"
       "    raise RuntimeError('a bug planted by the test')\n"
       "m.inspect = boom\n"
       "from modelport.cli.main import cli\n"
       "cli(sys.argv[1:], prog_name='modelport')\n")


def _cli(args: list[str], env: dict[str, str] | None = None, code: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k != "MODELPORT_DEBUG"} | (env or {})
    head = ["-c", code] if code else ["-m", "modelport.cli.main"]
    return subprocess.run([sys.executable, *head, *args], capture_output=True, text=True,
                          env=e, cwd=ROOT, timeout=300)


def test_a_bug_is_exit_70_in_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    d = st_folder(tmp_path / "m")
    r = _cli(["inspect", str(d)], code=BUG)
    assert r.returncode == 70, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == ["modelport: internal error: RuntimeError: a bug planted by the test",
                     "  hint: rerun with --debug and report it"], r.stderr
    for args, env in ((["inspect", str(d), "--debug"], None),
                      (["inspect", str(d)], {"MODELPORT_DEBUG": "1"})):
        r = _cli(args, env=env, code=BUG)
        assert r.returncode == 70
        assert "Traceback (most recent call last)" in r.stderr and "in boom" in r.stderr
    r = _cli(["inspect", str(d)])  # the same folder without the planted bug
    assert r.returncode == 0, r.stderr


def test_quiet_prints_nothing_but_errors(tmp_path: Path) -> None:
    d = st_folder(tmp_path / "m")
    r = _cli(["inspect", str(d)])
    assert r.returncode == 0 and "model.safetensors" in r.stdout
    r = _cli(["inspect", str(d), "--quiet"])
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = _cli(["convert", str(d), str(tmp_path / "out"), "-q"])
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert (tmp_path / "out" / "model.safetensors").is_file()
    r = _cli(["convert", str(d), str(tmp_path / "out"), "--quiet"])  # DST exists
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("modelport: error: ") and "--overwrite" in r.stderr


def _on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; its exit code and what the terminal got."""
    main, sub = pty.openpty()
    fcntl.ioctl(sub, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 columns
    p = subprocess.Popen([sys.executable, "-m", "modelport.cli.main", *args], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=sub, stdin=subprocess.DEVNULL)
    os.close(sub)
    got = b""
    while True:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            got += chunk
        elif p.poll() is not None:
            break
    os.close(main)
    return p.wait(timeout=300), got.decode(errors="replace")


def test_progress_bars_on_a_terminal_never_with_quiet_or_json(tmp_path: Path) -> None:
    src = tmp_path / "bin"
    save_bin({f"w{i}": torch.randn(64, 64) for i in range(4)}, src, shards=2)
    (src / "config.json").write_text(json.dumps({"model_type": "llama"}))
    rc, shown = _on_a_terminal(["convert", str(src), str(tmp_path / "a")])
    assert rc == 0 and "convert:" in shown and "B/s]" in shown, shown  # a tqdm bar
    for flag in ("--quiet", "--json"):
        rc, shown = _on_a_terminal(["convert", str(src), str(tmp_path / flag), flag])
        assert rc == 0 and shown == "", (flag, shown)


def test_ctrl_c_mid_write_is_exit_130_and_keeps_nothing(tmp_path: Path) -> None:
    """SIGINT sent once the temp folder holds a shard being written (not on a timer): exit
    130, the one line, no DST, no temp folder left; the input is untouched."""
    src = tmp_path / "bin"
    g = torch.Generator().manual_seed(0)
    save_bin({f"w{i}": torch.randn(1024, 1024, 8, generator=g) for i in range(12)}, src,
             shards=6)
    (src / "config.json").write_text(json.dumps({"model_type": "llama"}))
    before = sorted((p.name, p.stat().st_size) for p in src.iterdir())
    dst = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "modelport.cli.main", "convert", str(src),
                          str(dst), "--no-verify"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    landed = False
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        if [f for t in tmp_path.glob(".out.modelport-tmp-*") for f in t.iterdir()
                if f.suffix == ".safetensors" or f.name.startswith(".")]:
            p.send_signal(signal.SIGINT)
            landed = True
            break
        time.sleep(0.002)
    out, err = p.communicate(timeout=120)
    assert landed, "the conversion finished before a shard was written"
    assert p.returncode == 130, err
    assert out == ""  # no report of a conversion that did not happen
    assert err.strip().splitlines()[-1] == "modelport: interrupted; no partial output was kept"
    assert not dst.exists()
    assert not [x for x in tmp_path.iterdir() if ".modelport-tmp-" in x.name]
    assert sorted((x.name, x.stat().st_size) for x in src.iterdir()) == before


def test_import_modelport_loads_neither_torch_nor_transformers() -> None:
    code = ("import sys, json, modelport\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'tokenizers',"
            " 'safetensors.torch') if m in sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


def test_a_contiguous_conversion_never_imports_torch(tmp_path: Path) -> None:
    """README: 'a conversion of contiguous tensors never imports torch at all' — safetensors
    without the format metadata, re-sharded and verified."""
    import numpy as np
    from safetensors.numpy import save_file

    d = tmp_path / "st"
    d.mkdir()
    save_file({"model.embed_tokens.weight": np.ones((64, 16), np.float32),
               "lm_head.weight": np.zeros((64, 16), np.float16)}, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps({"model_type": "llama",
                                               "architectures": ["LlamaForCausalLM"]}))
    code = ("import sys, json, modelport\n"
            "rep = modelport.convert(sys.argv[1], sys.argv[2], progress=False,"
            " max_shard_size='2KB')\n"
            "print(json.dumps([len(rep.outputs), 'torch' in sys.modules]))")
    r = subprocess.run([sys.executable, "-c", code, str(d), str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    outputs, torch_loaded = json.loads(r.stdout)
    assert outputs >= 3 and torch_loaded is False
