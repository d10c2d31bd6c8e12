"""The run-time reference: a slow tokenizer class's semantics around the file's own library.

``SlowRef`` follows ``PreTrainedTokenizer.tokenize`` of transformers 4 (the slow classes the
models were trained with): lower-casing outside special tokens where the class lower-cases,
splitting out every added token (longest first, with the token's ``lstrip``/``rstrip``), the
class's ``_tokenize`` on the text between them (sentencepiece, a BPE merger, WordPiece), the
class's token-to-id map (fairseq offsets, added tokens) and its template. Nothing here uses
the Rust ``tokenizers`` library: it is the thing the written tokenizer.json is checked against.

Quirks of a class that tokenizer.json cannot express (T5 adding ``</s>`` only when absent,
ALBERT/XLNet re-splitting ``9,`` pieces) are switchable, so that a line where only a quirk
differs is reported as a known difference with its name, never as parity.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from modelport.errors import InputError
from modelport.tok.source import Added

SPIECE = "▁"


@dataclass
class Template:
    """Token texts around one sequence: ``prefix + ids + suffix``."""

    prefix: list[str] = field(default_factory=list)
    suffix: list[str] = field(default_factory=list)
    eos_if_absent: str | None = None  # T5: the suffix token is not added when already last

    def describe(self) -> str:
        return " ".join([*self.prefix, "$A", *self.suffix]) + (
            f" (slow class: {self.eos_if_absent} only when absent)" if self.eos_if_absent else "")


@functools.lru_cache(maxsize=8)
def _added_pattern(tokens: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled pattern per set of added tokens (built once, not per line)."""
    return re.compile("|".join(re.escape(t) for t in tokens))


def split_added(text: str, added: dict[str, Added]) -> list[str]:
    """Split text on added tokens, leftmost then longest, applying lstrip/rstrip."""
    if not added:
        return [text]
    pattern = _added_pattern(tuple(sorted(added, key=len, reverse=True)))
    parts: list[str] = []
    pos = 0
    for m in pattern.finditer(text):
        parts += [text[pos:m.start()], m.group()]
        pos = m.end()
    parts.append(text[pos:])
    for i, p in enumerate(parts):
        if i % 2 == 1:
            a = added[p]
            if a.rstrip and i + 1 < len(parts) and parts[i + 1]:
                parts[i + 1] = parts[i + 1].lstrip()
            if a.lstrip and i > 0 and parts[i - 1]:
                parts[i - 1] = parts[i - 1].rstrip()
    return parts


class SlowRef:
    """Encode text as the slow class did."""

    def __init__(self, *, tokenize: Callable[[str], list[str]], to_id: Callable[[str], int],
                 added: list[Added], template: Template, lower: bool = False,
                 prepare: Callable[[str], str] | None = None,
                 prefix_space: str | None = None,
                 quirks: dict[str, Callable[[str], list[str]]] | None = None) -> None:
        self._tokenize = tokenize
        self._to_id = to_id
        self.added = {a.content: a for a in added}
        self.added_ids = {a.content: a.id for a in added if a.id is not None}
        # transformers' all_special_tokens: the role tokens and additional_special_tokens,
        # not every added token flagged special
        self.specials = {a.content for a in added if a.special and a.all_special}
        self.template = template
        self.lower = lower
        self.prepare = prepare
        self.prefix_space = prefix_space  # Llama/T5 non-legacy: "▁" before the whole text
        self.quirks = quirks or {}
        self.corpus_tokens: list[str] = []  # pieces the file itself treats specially
        # tokens -> text, by the file's library (None: the reference cannot say)
        self.decode: Callable[[list[str]], str | None] | None = None
        # the text of pieces whose merge order tokenizer.json cannot express (tok.ties)
        self.tied: tuple[str, ...] = ()
        # the slow base class lower-cases all but the special tokens and the normalized,
        # non-special added tokens
        keep = [a.content for a in added if a.all_special or (not a.special and a.normalized)]
        self._lower_re = re.compile("(" + "|".join(map(re.escape, keep)) + r")|(.+?)", re.S) \
            if keep else re.compile(r"()|(.+?)", re.S)

    def tokens(self, text: str, quirks: bool = True) -> list[str]:
        if self.prepare and (quirks or "prepare" not in self.quirks):
            text = self.prepare(text)
        if self.lower:
            text = self._lower_re.sub(lambda m: m.group(1) or m.group(2).lower(), text)
        prefixed = False
        if self.prefix_space is not None and text:
            text = text.replace(SPIECE, " ")
            # the slow class puts "▁" before text that starts with a space or an added token
            # too; tokenizers' Metaspace (prepend_scheme "first", what transformers'
            # converter writes) prepends only to a first segment that does not
            if quirks or not (text.startswith(" ") or any(
                    text.startswith(a) for a in self.added)):
                text = self.prefix_space + text
                prefixed = bool(self.prefix_space)
        tokenize = self.quirks.get("tokenize") if quirks and "tokenize" in self.quirks else \
            self._tokenize
        out: list[str] = []
        for i, part in enumerate(split_added(text, self.added)):
            if not part:
                continue
            out += [part] if i % 2 == 1 else tokenize(part)
        if prefixed and len(out) > 1 and out[0] == SPIECE and out[1] in self.specials:
            out = out[1:]
        return out

    def token_id(self, token: str) -> int:
        if token in self.added_ids:
            return self.added_ids[token]  # type: ignore[return-value]
        return self._to_id(token)

    def encode(self, text: str, add_special_tokens: bool = True, quirks: bool = True
               ) -> list[int]:
        ids = [self.token_id(t) for t in self.tokens(text, quirks)]
        if not add_special_tokens:
            return ids
        t = self.template
        pre = [self.token_id(x) for x in t.prefix]
        suf = [self.token_id(x) for x in t.suffix]
        if quirks and t.eos_if_absent is not None and ids and ids[-1] == self.token_id(
                t.eos_if_absent):
            suf = [s for s in suf if s != self.token_id(t.eos_if_absent)]
        return pre + ids + suf


def assign_ids(vocab: dict[str, int], explicit: list[Added], ordered: list[Added],
               where: object) -> list[Added]:
    """Give every added token its id as a slow class does.

    ``explicit`` carry their ids (added_tokens_decoder, added_tokens.json, class layouts);
    ``ordered`` (role tokens, then additional special tokens) take the vocabulary's id when
    the vocabulary has them, else the next free id, in order.
    """
    out: dict[str, Added] = {}
    used = set(vocab.values())
    for a in explicit:
        have = vocab.get(a.content)
        if have is not None and a.id is not None and have != a.id:
            raise InputError(f"added token {a.content!r} has id {have} in the vocabulary but "
                             f"{a.id} in the tokenizer config", path=str(where))
        prev = out.get(a.content)
        out[a.content] = Added(a.content, a.id if a.id is not None else have,
                               a.special or (prev.special if prev else False), a.lstrip,
                               a.rstrip, a.normalized, a.single_word, a.explicit,
                               a.all_special)
        if out[a.content].id is not None:
            used.add(out[a.content].id)  # type: ignore[arg-type]
    nxt = max(used, default=-1) + 1
    for a in ordered:
        if a.content in out:
            prev = out[a.content]
            out[a.content] = Added(prev.content, prev.id, True, prev.lstrip or a.lstrip,
                                   prev.rstrip or a.rstrip, prev.normalized, prev.single_word,
                                   prev.explicit, all_special=True)
            continue
        i = vocab.get(a.content)
        if i is None:
            i, nxt = nxt, nxt + 1
        out[a.content] = Added(a.content, i, True, a.lstrip, a.rstrip, a.normalized,
                               a.single_word, a.explicit, all_special=True)
    return sorted(out.values(), key=lambda a: a.id)  # type: ignore[arg-type,return-value]


def finish(tok: object, added: list[Added], template: Template) -> str:
    """Put the added tokens and the template into a ``tokenizers.Tokenizer``."""
    from tokenizers import AddedToken, processors

    t = tok  # a tokenizers.Tokenizer
    for a in added:
        have = t.token_to_id(a.content)  # type: ignore[attr-defined]
        size = t.get_vocab_size(with_added_tokens=True)  # type: ignore[attr-defined]
        if have is None and a.id != size:
            raise InputError(f"added token {a.content!r} wants id {a.id}, the next free id is "
                             f"{size}", hint="the added-token ids have gaps")
        if have is not None and have != a.id:
            raise InputError(f"added token {a.content!r} has id {have}, the class gives {a.id}")
        at = AddedToken(a.content, single_word=a.single_word, lstrip=a.lstrip, rstrip=a.rstrip,
                        normalized=a.normalized and not a.special, special=a.special)
        if a.special:
            t.add_special_tokens([at])  # type: ignore[attr-defined]
        else:
            t.add_tokens([at])  # type: ignore[attr-defined]
    ids = {a.content: a.id for a in added}
    used = [*template.prefix, *template.suffix]
    if not used:
        t.post_processor = None  # type: ignore[attr-defined]
        return "none"
    single = " ".join([*(f"{x}:0" for x in template.prefix), "$A:0",
                       *(f"{x}:0" for x in template.suffix)])
    pair = " ".join([single, "$B:1", *(f"{x}:1" for x in template.suffix)])
    t.post_processor = processors.TemplateProcessing(  # type: ignore[attr-defined]
        single=single, pair=pair,
        special_tokens=[(x, ids[x] if x in ids else t.token_to_id(x))  # type: ignore[attr-defined]
                        for x in dict.fromkeys(used)])
    return template.describe()
