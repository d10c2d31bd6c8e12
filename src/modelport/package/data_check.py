"""``check-data``: Databricks foundation-model fine-tuning data (chat or instruction JSONL).

The rules (``shared/TARGETS.md``, Databricks): one JSON object a line; chat lines are
``{"messages": [{"role", "content"}, ...]}`` with user/assistant alternating, an optional system
message only first (Mistral models reject it), the last message from the assistant; instruction
lines have ``prompt`` and ``response``; one format per dataset; at least one full context
length of tokens, at most 10 billion. Files are streamed line by line (multi-GB files, bounded
memory); findings carry line numbers (the first few of each kind, and a count).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import Field

from modelport._io.urls import location
from modelport._types import Record
from modelport.errors import InputError
from modelport.package import data_rules as R

MAX_TOKENS = 10_000_000_000
DEFAULT_CONTEXT = 131_072  # Llama 3.1/3.2, the models the fine-tuning service trains
EXAMPLES = 5
ROLES = {"system", "user", "assistant"}


class DataFinding(Record):
    kind: str
    severity: Literal["error", "warning", "info"]
    message: str
    count: int
    lines: list[str] = Field(description="file:line of the first occurrences")


class DataReport(Record):
    target: str
    sources: list[str]
    format: Literal["chat", "instruction", "mixed", "empty", "text"]
    lines: int
    examples: int
    bytes: int
    tokens: int | None = Field(None, description="with --model: tokens of every text field")
    tokens_estimated: int = Field(description="bytes / 4 when no tokenizer is given")
    context_length: int
    base_model: R.BaseModel | None = Field(None, description="the page's word on the base "
                                           "model (--base-model, or --model's _name_or_path)")
    findings: list[DataFinding]
    seconds: float

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


class _Findings:
    def __init__(self) -> None:
        self.by_kind: dict[str, DataFinding] = {}

    def add(self, kind: str, severity: Literal["error", "warning", "info"], message: str,
            where: str) -> None:
        f = self.by_kind.get(kind)
        if f is None:
            self.by_kind[kind] = DataFinding(kind=kind, severity=severity, message=message,
                                             count=1, lines=[where])
        else:
            f.count += 1
            if len(f.lines) < EXAMPLES:
                f.lines.append(where)


def _sources(src: str | Path, endpoint_url: str | None) -> Iterator[tuple[str, BinaryIO]]:
    if isinstance(src, str):  # a store URL (location() decided)
        from modelport.package.upload import UploadOptions, _client, parse_s3

        bucket, key = parse_s3(src)
        client = _client(UploadOptions(endpoint_url=endpoint_url))
        keys = [key] if key.endswith((".jsonl", ".json")) else sorted(
            o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=key.rstrip("/") + "/" if key else "")
            for o in page.get("Contents", []) if o["Key"].endswith(".jsonl"))
        for k in keys:
            body = client.get_object(Bucket=bucket, Key=k)["Body"]
            yield f"s3://{bucket}/{k}", body  # botocore's StreamingBody: read in chunks
        return
    if src.is_dir():
        files = sorted(src.rglob("*.jsonl"))
        if not files:
            raise InputError("no .jsonl files", path=src)
    elif src.is_file():
        files = [src]
    else:
        raise InputError("does not exist", path=src)
    for f in files:
        with f.open("rb") as fh:
            yield str(f), fh


def _lines(fh: BinaryIO) -> Iterator[bytes]:
    buf = b""
    while True:
        chunk = fh.read(1 << 20)
        if not chunk:
            break
        buf += chunk
        *whole, buf = buf.split(b"\n")
        yield from (w + b"\n" for w in whole)
    if buf:
        yield buf  # the last line, without its newline


def _text_fields(obj: dict[str, Any], fmt: str) -> list[str]:
    if fmt == "chat":
        return [m["content"] for m in obj["messages"]
                if isinstance(m, dict) and isinstance(m.get("content"), str)]
    return [obj[k] for k in ("prompt", "response") if isinstance(obj.get(k), str)]


def _check_chat(msgs: Any, where: str, fs: _Findings, mistral: bool) -> bool:
    if not isinstance(msgs, list) or not msgs:
        fs.add("chat.messages", "error", "'messages' must be a non-empty list", where)
        return False
    ok = True
    for m in msgs:
        if not (isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)):
            fs.add("chat.message", "error", "each message needs a string 'role' and "
                   "'content'", where)
            return False
        if m["role"] not in ROLES:
            fs.add("chat.role", "error", "roles are system, user and assistant", where)
            ok = False
    roles = [m["role"] for m in msgs]
    if "system" in roles[1:]:
        fs.add("chat.system_position", "error", "a system message may only come first", where)
        ok = False
    if roles[0] == "system" and mistral:
        fs.add("chat.system_mistral", "error", "Mistral models reject the system role", where)
        ok = False
    turns = [r for r in roles if r != "system"]
    if any(a == b for a, b in itertools.pairwise(turns)) or (turns and turns[0] != "user"):
        fs.add("chat.alternation", "error", "user and assistant must alternate, user first",
               where)
        ok = False
    if roles[-1] != "assistant":
        fs.add("chat.last", "error", "the last message must be the assistant's", where)
        ok = False
    return ok


class ModelContext:
    """What the model says about the data: its tokenizer, the context length, whether it is
    a Mistral (no system role), and the page's word on the base model (as findings)."""

    def __init__(self) -> None:
        self.tok: Any = None
        self.mistral = False
        self.ctx = DEFAULT_CONTEXT
        self.bm: R.BaseModel | None = None
        self.fs = _Findings()


def load_tokenizer(mdir: Path) -> Any:
    from tokenizers import Tokenizer

    if not (mdir / "tokenizer.json").is_file():
        raise InputError("no tokenizer.json to count tokens with", path=mdir,
                         hint="modelport tokenizer writes it from the slow files")
    tok = Tokenizer.from_file(str(mdir / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def model_context(model: str | Path | None, context_length: int | None,
                  base_model: str | None) -> ModelContext:
    m = ModelContext()
    m.ctx = context_length or DEFAULT_CONTEXT
    if model is not None:
        mdir = Path(model)
        m.tok = load_tokenizer(mdir)
        cfg_path = mdir / "config.json"
        if cfg_path.is_file():
            from modelport._io import jsonio

            cfg = jsonio.load(cfg_path)
            if isinstance(cfg, dict):
                m.mistral = cfg.get("model_type") in ("mistral", "mixtral")
                if context_length is None and isinstance(cfg.get("max_position_embeddings"), int):
                    m.ctx = cfg["max_position_embeddings"]
                name = cfg.get("_name_or_path")
                if base_model is None and isinstance(name, str) and "/" in name and \
                        not Path(name).exists():
                    base_model = name
    bm = m.bm = R.base_model(base_model) if base_model else None
    if bm is not None:
        m.mistral = m.mistral or bm.name.startswith("mistralai/")
        if bm.context_length and context_length is None:
            m.ctx = bm.context_length
        if bm.status == "retired":
            m.fs.add("model.retired", "error", f"{bm.name} is retired for fine-tuning: not "
                     f"supported after {bm.retired_after} ({R.SOURCE})", bm.name)
        elif bm.status == "unknown":
            m.fs.add("model.unlisted", "warning", f"{bm.name} is not among the page's "
                     f"supported models ({', '.join(R.SUPPORTED)})", bm.name)
    return m


def check_data(src: str | Path, target: str = "databricks", *, model: str | Path | None = None,
               endpoint_url: str | None = None, context_length: int | None = None,
               base_model: str | None = None,
               task: Literal["auto", "chat", "instruction", "pretraining"] = "auto"
               ) -> DataReport:
    """Check fine-tuning data: chat or instruction JSONL (a file, a folder of .jsonl, or
    s3://bucket/prefix), or a folder of text files for continued pre-training. Databricks
    paths (``dbfs:/Volumes/...``) are read where a cluster mounts them.

    ``model`` (a folder with tokenizer.json, and config.json for the context length) makes the
    token counts exact; without it they are estimated from the bytes. ``base_model`` (a
    Hugging Face id; else ``model``'s ``_name_or_path``) is held to the page's table of
    supported and retired models. Never raises for findings, only for bad input
    (:class:`InputError`, :class:`StorageError`).
    """
    if not target.startswith("databricks"):
        raise InputError(f"check-data knows the rules of Databricks fine-tuning, not {target!r}",
                         hint="--target databricks")
    t0 = time.perf_counter()
    src = location(src, what="data", stores=("s3",))
    m = model_context(model, context_length, base_model)
    tok, mistral, ctx, bm, fs = m.tok, m.mistral, m.ctx, m.bm, m.fs
    text_dir = isinstance(src, Path) and src.is_dir() and not any(src.rglob("*.jsonl")) \
        and R.pretraining_files(src)
    if task == "pretraining" or (task == "auto" and (text_dir or (
            isinstance(src, Path) and src.suffix in (".txt", ".text")))):
        from modelport.package.data_text import pretraining

        if not isinstance(src, Path):
            raise InputError("continued pre-training data is read from a folder",
                             hint="copy the text files to a folder or a volume")
        return pretraining(src, tok, ctx, bm, fs, t0)
    scan = Scan(fs)
    names: list[str] = []
    for name, fh in _sources(src, endpoint_url):
        names.append(name)
        scan.lines(((f"{name}:{i}", raw) for i, raw in enumerate(_lines(fh), 1)), tok, mistral)
    return finish(scan, names, str(src), tok is not None, ctx, bm, t0)


class Scan:
    """Counts and findings of lines checked so far; scans of parts (Spark partitions) merge."""

    def __init__(self, fs: _Findings | None = None) -> None:
        self.fs = fs or _Findings()
        self.formats: set[str] = set()
        self.n_lines = self.n_examples = self.n_bytes = self.tokens = 0

    def merge(self, other: Scan) -> None:
        for kind, f in other.fs.by_kind.items():
            mine = self.fs.by_kind.get(kind)
            if mine is None:
                self.fs.by_kind[kind] = f
            else:
                mine.count += f.count
                mine.lines = (mine.lines + f.lines)[:EXAMPLES]
        self.formats |= other.formats
        self.n_lines += other.n_lines
        self.n_examples += other.n_examples
        self.n_bytes += other.n_bytes
        self.tokens += other.tokens

    def lines(self, lines: Any, tok: Any, mistral: bool) -> None:
        """Check ``(where, raw line)`` pairs: encoding, JSON, chat or instruction rules."""
        fs = self.fs
        for where, raw in lines:
            self.n_lines += 1
            self.n_bytes += len(raw)
            if where.endswith(":1") and raw.startswith(b"\xef\xbb\xbf"):
                fs.add("encoding.bom", "warning", "a UTF-8 byte-order mark starts the file; "
                       "JSON readers may refuse it", where)
                raw = raw[3:]
            last = not raw.endswith(b"\n")
            if raw.endswith(b"\r\n"):
                fs.add("encoding.crlf", "info", "Windows line ends (CRLF)", where)
            body = raw.strip()
            if not body:
                fs.add("json.blank", "warning", "a blank line", where)
                continue
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as e:
                fs.add("encoding.utf8", "error", f"not UTF-8 (byte {e.start})", where)
                continue
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError):
                if last:
                    fs.add("json.truncated", "error", "the last line is cut off (no newline, "
                           "not a whole JSON object)", where)
                else:
                    fs.add("json.invalid", "error", "not a JSON object", where)
                continue
            if not isinstance(obj, dict):
                fs.add("json.not_object", "error", "each line must be a JSON object", where)
                continue
            if "messages" in obj:
                fmt = "chat"
                good = _check_chat(obj["messages"], where, fs, mistral)
            elif "prompt" in obj or "response" in obj:
                fmt = "instruction"
                good = all(isinstance(obj.get(k), str) and obj.get(k) for k in
                           ("prompt", "response"))
                if not good:
                    fs.add("instruction.fields", "error", "instruction lines need non-empty "
                           "string 'prompt' and 'response'", where)
            else:
                fs.add("format.unknown", "error", "neither 'messages' (chat) nor 'prompt'/"
                       "'response' (instruction)", where)
                continue
            self.formats.add(fmt)
            if good:
                self.n_examples += 1
                if tok is not None:
                    self.tokens += sum(len(e.ids) for e in tok.encode_batch(
                        _text_fields(obj, fmt), add_special_tokens=False))


def finish(scan: Scan, names: list[str], src: str, counted_tokens: bool, ctx: int,
           bm: R.BaseModel | None, t0: float) -> DataReport:
    """The dataset-wide rules (one format, token floor and cap) and the report."""
    fs, formats, tok = scan.fs, set(scan.formats), counted_tokens
    n_lines, n_examples, n_bytes, tokens = (scan.n_lines, scan.n_examples, scan.n_bytes,
                                            scan.tokens)
    if len(formats) > 1:
        fs.add("format.mixed", "error", "chat and instruction lines in one dataset",
               names[0] if names else src)
    counted = tokens if tok else n_bytes // 4
    if counted < ctx:
        fs.add("tokens.too_few", "error" if tok else "warning",
               f"{counted:,} tokens{'' if tok else ' (estimated: bytes / 4)'}: at least one "
               f"full context length ({ctx:,}) is needed", src)
    if counted > MAX_TOKENS:
        fs.add("tokens.too_many", "error", f"{counted:,} tokens: over the 10 billion the "
               "service accepts", src)
    fmt_name: Any = ("empty" if not formats else formats.pop() if len(formats) == 1
                     else "mixed")
    return DataReport(target="databricks-fine-tuning", sources=names, format=fmt_name,
                      lines=n_lines, examples=n_examples, bytes=n_bytes,
                      tokens=tokens if tok else None, tokens_estimated=n_bytes // 4,
                      context_length=ctx, base_model=bm, findings=list(fs.by_kind.values()),
                      seconds=round(time.perf_counter() - t0, 3))


__all__ = ["DataFinding", "DataReport", "check_data"]
