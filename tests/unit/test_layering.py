"""One direction between rooms: a room imports only the rooms below it, never the package
root's API. (``tok``, ``tsfm``, ``cast`` < ``convert`` < ``quantize``, ``package`` < ``pipeline`` <
``cli``, ``spark``;
``quantize`` and ``package`` are side by side and do not import each other: the pipeline
passes quantize the target's rules; ``cli`` and ``spark`` neither.)"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "modelport"
BASE = {"_io", "_types", "errors", "_version", "_quiet", "_verb", "_trust"}
RANK = {"tok": 1, "tsfm": 1, "cast": 1, "convert": 2, "quantize": 3, "package": 3, "pipeline": 4,
        "cli": 5, "spark": 5}


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "modelport":
        return None
    if len(parts) == 1:
        return "API"
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "modelport":
                out += [(node.lineno, f"modelport.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
    return out


def test_rooms_import_only_downwards() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts == ("__init__.py",):
            continue  # the API itself
        here = rel.parts[0].removesuffix(".py")
        for line, mod in _imports(path):
            there = _room(mod)
            if there is None or there == here or there in BASE:
                continue
            if there not in RANK:  # the root API (modelport.__version__, a verb)
                bad.append(f"{rel}:{line} imports the package root ({mod})")
            elif here in BASE or RANK[there] >= RANK.get(here, 0):
                bad.append(f"{rel}:{line}: {here} imports {mod}")
    assert bad == []


def _module_level(path: Path) -> set[str]:
    """modelport modules a file imports when it is imported (not inside functions, not for
    type checking only)."""
    out: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return {m for m in out if m.startswith("modelport.")}


def test_no_import_circle() -> None:
    mods = {".".join(("modelport", *p.relative_to(SRC).with_suffix("").parts))
            .removesuffix(".__init__"): p for p in SRC.rglob("*.py")}
    graph = {m: {d for d in _module_level(p) if d in mods and d != m} for m, p in mods.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d):], m, d] if d in stack else [m, d])
            elif d not in state:
                visit(d, [*stack, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert cycles == []
