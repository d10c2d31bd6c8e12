"""What a tokenizer folder holds: files, configs, special tokens, added tokens and flags."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport._io import jsonio
from modelport.errors import InputError

SPM_FILES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "spm.model")
MISTRAL_SPM = re.compile(r"tokenizer\.model\.v(\d+)")  # mistral-common's versioned files
ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
         "mask_token")
# tokenizer_config flags that change ids or text; each one applied is named in the report
FLAGS = ("legacy", "add_prefix_space", "add_bos_token", "add_eos_token", "do_lower_case",
         "strip_accents", "tokenize_chinese_chars", "remove_space", "keep_accents",
         "split_by_punct", "extra_ids", "src_lang", "tgt_lang", "language", "task",
         "predict_timestamps", "clean_up_tokenization_spaces", "spaces_between_special_tokens",
         "trim_offsets", "do_basic_tokenize", "errors")


# flags transformers applies when decoding, not in tokenizer.json: carried in tokenizer_config
DECODE_FLAGS = ("clean_up_tokenization_spaces", "spaces_between_special_tokens", "errors")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when the file is absent."""
    if not path.is_file():
        return {}
    try:
        obj = jsonio.load(path)
    except (OSError, ValueError) as e:
        raise InputError(f"not valid JSON ({e})", path=path) from e
    return obj if isinstance(obj, dict) else {}


def content(v: Any) -> str | None:
    """The text of a token given as a string or an AddedToken-like dict."""
    if isinstance(v, dict):
        v = v.get("content")
    return v if isinstance(v, str) else None


@dataclass(frozen=True)
class Added:
    """An added token as transformers' ``AddedToken`` describes it."""

    content: str
    id: int | None = None
    special: bool = True
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool = False
    single_word: bool = False
    explicit: bool = False  # given as a dict with its own flags
    all_special: bool = False  # a role token or additional_special_tokens


def _added_from(v: Any, *, special: bool, id: int | None = None) -> Added | None:
    text = content(v)
    if not text:
        return None
    if isinstance(v, dict):
        return Added(text, id, bool(v.get("special", special)), bool(v.get("lstrip")),
                     bool(v.get("rstrip")), bool(v.get("normalized", not special)),
                     bool(v.get("single_word")), explicit=True)
    return Added(text, id, special, normalized=not special)


class Source:
    """The tokenizer files of one folder and what its configs say."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tc = read_json(folder / "tokenizer_config.json")
        self.cfg = read_json(folder / "config.json")
        self.stm = read_json(folder / "special_tokens_map.json")
        self.added_json = {k: v for k, v in read_json(folder / "added_tokens.json").items()
                           if isinstance(v, int)}
        self.model_type = str(self.cfg.get("model_type") or "")
        self.files = {p.name for p in folder.iterdir() if p.is_file()}
        versioned = sorted((f for f in self.files if MISTRAL_SPM.fullmatch(f)),
                           key=lambda f: -int(f.rsplit("v", 1)[1]))  # the newest version
        self.spm = next((folder / f for f in (*SPM_FILES, *versioned) if f in self.files
                         and not _is_tiktoken(folder / f)), None)
        self.tiktoken = next((folder / f for f in ("tokenizer.model", "cl100k_base.tiktoken")
                              if f in self.files and _is_tiktoken(folder / f)), None)

    def has(self, *names: str) -> bool:
        return all(n in self.files for n in names)

    def flag(self, name: str, default: bool, applied: dict[str, Any]) -> bool:
        """A boolean tokenizer_config flag (the class's default when absent or null), recorded
        in ``applied`` for the report."""
        v = self.tc.get(name)
        applied[name] = default if v is None else bool(v)
        return applied[name]

    def flags(self) -> dict[str, Any]:
        """The tokenizer_config flags present (applied or not: the report says which)."""
        return {k: self.tc[k] for k in FLAGS if k in self.tc and self.tc[k] is not None}

    def role(self, role: str, default: str | None = None) -> Added | None:
        """The token of a role: tokenizer_config wins where both files name it, as in
        transformers (the special_tokens_map.json is read second only when set)."""
        a, b = self.stm.get(role), self.tc.get(role)
        if content(a) and content(b) and content(a) != content(b):
            raise InputError(f"conflicting {role}: {content(a)!r} in special_tokens_map.json, "
                             f"{content(b)!r} in tokenizer_config.json", path=self.folder,
                             hint="make the two files agree, then run again")
        if role in self.tc and self.tc[role] is None and role not in self.stm:
            return None  # explicitly unset
        v = b if content(b) else a
        if content(v):
            return _added_from(v, special=True)
        return Added(default) if default else None

    def additional_special(self) -> list[Added]:
        out: list[Added] = []
        for key in ("additional_special_tokens",):
            for v in (self.tc.get(key) or self.stm.get(key) or []):
                a = _added_from(v, special=True)
                if a:
                    out.append(a)
        return out

    def added_decoder(self) -> list[Added]:
        """tokenizer_config ``added_tokens_decoder`` and added_tokens.json, with their ids."""
        out: dict[str, Added] = {}
        for text, i in self.added_json.items():
            out[text] = Added(text, i, special=False, normalized=True)
        dec = self.tc.get("added_tokens_decoder")
        if isinstance(dec, dict):
            for i, v in dec.items():
                if str(i).isdigit() and isinstance(v, dict):
                    a = _added_from(v, special=bool(v.get("special", False)), id=int(i))
                    if a:
                        out[a.content] = a
        return sorted(out.values(), key=lambda a: a.id if a.id is not None else -1)


def _is_tiktoken(path: Path) -> bool:
    """A tiktoken rank file (base64 token, space, rank per line), not a protobuf."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError:
        return False
    line = head.split(b"\n", 1)[0]
    parts = line.split(b" ")
    return len(parts) == 2 and parts[1].strip().isdigit() and all(
        c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=" for c in parts[0])
