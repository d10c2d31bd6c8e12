"""tiktoken-style rank files: Meta's original Llama 3 ``tokenizer.model`` (base64 token,
rank per line) and Mistral's ``tekken.json``.

tokenizer.json is a byte-level BPE whose merges are recovered from the ranks (every split of a
token into two ranked tokens, rank order, with ``ignore_merges``: tiktoken's own rule), with
the file's pre-split pattern and its special tokens: Llama 3's 256 after the ranks (names from
Meta's ``tokenizer.py``), tekken's before them (ids 0..N-1, every rank shifted by N, as
mistral-common numbers them). The reference is the ``tiktoken`` library itself.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from modelport.errors import InputError, MissingDependencyError, UnsupportedError
from modelport.tok import reference as algo
from modelport.tok.classes import Resolved
from modelport.tok.slow import SlowRef, Template, assign_ids, finish
from modelport.tok.source import Added, Source, read_json

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def llama3_specials(variant: str) -> list[str]:
    """The 256 special tokens after the ranks, as Meta's tokenizer.py names them."""
    if variant == "llama3":  # Llama 3 (April 2024)
        head = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                "<|reserved_special_token_1|>", "<|reserved_special_token_2|>",
                "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|reserved_special_token_4|>", "<|eot_id|>"]
        return head + [f"<|reserved_special_token_{i}|>" for i in range(5, 256 - 5)]
    head = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
            "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
            "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
            "<|python_tag|>"]
    return head + [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(head))]


def read_ranks(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    lines = path.read_bytes().splitlines()
    for n, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            tok, rank = line.split()
            ranks[base64.b64decode(tok, validate=True)] = int(rank)
        except (ValueError, binascii.Error) as e:
            raise InputError(f"line {n} is not 'base64-token rank'", path=path) from e
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise InputError("the ranks are not 0..N-1 without gaps", path=path)
    return ranks


def merges_from_ranks(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Every split of each token into two tokens, in rank order (as transformers'
    TikTokenConverter does); with ``ignore_merges`` BPE then gives tiktoken's ids."""
    out: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        for k in range(1, len(token)):
            a, b = token[:k], token[k:]
            ra, rb = ranks.get(a), ranks.get(b)
            if ra is not None and rb is not None:
                out.append((rank, ra, rb, a, b))
    out.sort()
    return [(a, b) for *_, a, b in out]


def _byte_level(ranks: dict[bytes, int], shift: int, head: list[str]
                ) -> tuple[Any, dict[str, int]]:
    from tokenizers import Tokenizer, decoders
    from tokenizers.models import BPE

    b2u = algo.bytes_to_unicode()

    def s(b: bytes) -> str:
        return "".join(b2u[x] for x in b)

    # tekken: the special tokens take ids 0..N-1 inside the model's vocabulary
    vocab = {t: i for i, t in enumerate(head)} | {s(t): r + shift for t, r in ranks.items()}
    merges = [(s(a), s(b)) for a, b in merges_from_ranks(ranks)]
    tok = Tokenizer(BPE(vocab, merges, dropout=None, continuing_subword_prefix="",
                        end_of_word_suffix="", fuse_unk=False, ignore_merges=True))
    tok.decoder = decoders.ByteLevel()
    return tok, vocab


def _pre(pattern: str) -> Any:
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])


def _tekken(src: Source) -> tuple[dict[bytes, int], str, list[str], dict[str, Any]]:
    path = src.folder / "tekken.json"
    data = read_json(path)
    try:
        cfg = data["config"]
        n_special = int(cfg["default_num_special_tokens"])
        inner = int(cfg["default_vocab_size"]) - n_special
        pattern = str(cfg["pattern"])
        ranks: dict[bytes, int] = {}
        for e in data["vocab"][:inner]:
            ranks[base64.b64decode(e["token_bytes"], validate=True)] = int(e["rank"])
        specials = [str(t["token_str"]) for t in sorted(data.get("special_tokens") or [],
                                                        key=lambda t: int(t["rank"]))]
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise InputError(f"not a tekken.json file ({type(e).__name__}: {e})", path=path) from e
    if not specials:
        raise UnsupportedError("tekken.json without special_tokens (a deprecated layout)",
                               path=path, hint="use a tekken.json from mistral-common >= 1.4")
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise InputError("the vocab ranks are not 0..N-1 without gaps", path=path)
    specials += [f"<SPECIAL_{i}>" for i in range(len(specials), n_special)]
    return ranks, pattern, specials, {"version": cfg.get("version"),
                                      "default_vocab_size": cfg["default_vocab_size"],
                                      "default_num_special_tokens": n_special}


def build(src: Source, res: Resolved, notes: list[str]) -> tuple[Any, SlowRef, dict[str, Any]]:
    try:
        import tiktoken
    except ImportError as e:
        raise MissingDependencyError("tiktoken", "tokenizers") from e
    if res.family == "tekken":
        ranks, pattern, names, applied = _tekken(src)
        shift, first = len(names), 0
        roles = {"unk_token": names[0], "bos_token": names[1], "eos_token": names[2]}
        bos_name = names[1]
    else:
        assert src.tiktoken is not None
        ranks, pattern = read_ranks(src.tiktoken), LLAMA3_PATTERN
        variant = res.family if res.family in ("llama3", "llama3.1") else "llama3.1"
        names = llama3_specials(variant)
        shift, first = 0, len(ranks)
        roles = {"bos_token": names[0], "eos_token": names[1]}
        bos_name = names[0]
        applied = {"special_tokens": variant}
    tok, vocab = _byte_level(ranks, shift, names if shift else [])
    tok.pre_tokenizer = _pre(pattern)
    specials = [Added(t, first + i) for i, t in enumerate(names)]
    added = assign_ids(vocab, specials, [], src.folder)
    bos = src.flag("add_bos_token", True, applied)
    template = Template([bos_name] if bos else [])
    post = finish(tok, added, template)
    enc = tiktoken.Encoding(name="modelport-ref", pat_str=pattern, mergeable_ranks=ranks,
                            special_tokens={})
    ref = SlowRef(tokenize=lambda text: [str(i + shift) for i in enc.encode_ordinary(text)],
                  to_id=int, added=added, template=template)
    ref.decode = lambda toks: enc.decode([int(t) - shift for t in toks])
    n = len(ranks)
    notes.append(f"{'tekken' if res.family == 'tekken' else 'tiktoken'} ranks, {n} tokens, "
                 f"{len(names)} special tokens at {first}..{first + len(names) - 1}, ranks at "
                 f"{shift}..{shift + n - 1}; reference: the tiktoken library")
    return tok, ref, {"applied": applied, "post": post, "roles": roles}
