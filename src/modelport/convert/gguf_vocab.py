"""The vocabulary a GGUF file embeds (``tokenizer.ggml.*``) as tokenizer files.

llama.cpp's ``llama`` vocabulary type is a SentencePiece BPE model stored piece by piece:
``tokens``, ``scores`` and ``token_type`` (the same numbering as SentencePiece's piece types:
normal, unknown, control, user-defined, unused, byte), the special ids, and
``add_space_prefix``. They are written back into a SentencePiece ``tokenizer.model`` (the
normalizer llama.cpp applies: no rule, a dummy prefix unless ``add_space_prefix`` is false,
whitespace kept, byte fallback when byte pieces exist) and a ``tokenizer_config.json`` with
``LlamaTokenizer`` and the bos/eos flags; ``modelport tokenizer`` then writes tokenizer.json
with its parity proof against that class.

The ``gpt2`` type (byte-level BPE) is taken for Llama 3's vocabulary only: the pre-tokenizer
must be ``llama-bpe``, the normal tokens are written back as a tiktoken rank file (each token's
bytes, its id as its rank — tiktoken's BPE merges by rank), and the special tokens after them
must be exactly Llama 3's or Llama 3.1's list, which says the family; the tiktoken library is
then the parity reference. Other vocabulary types and pre-tokenizers are refused, named.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelport.errors import UnsupportedError

BYTE = 6  # SentencePiece's (and GGUF's) piece type of <0xNN> pieces


NONE_IDS = (0xFFFFFFFF, -1)  # llama.cpp's "no such token" (LLAMA_TOKEN_NULL, as uint32)


def field(r: Any, key: str, default: Any = None) -> Any:
    """A metadata value of the header ``r`` (read with its arrays: a scalar, a string or a
    list), or ``default`` when absent or an empty list; a token id that means "none"
    (``0xFFFFFFFF``, as llama.cpp's converter writes an absent padding token) is ``default``
    too."""
    value = r.fields.get(key)
    if value is None or value == []:
        return default
    if key.endswith("_token_id") and value in NONE_IDS:
        return default
    return value


def gguf_vocab_type(r: Any) -> str | None:
    v = field(r, "tokenizer.ggml.model")
    return str(v) if v is not None else None


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-ins for bytes, inverted (``Ġ`` -> 0x20, ...)."""
    from modelport.tok.reference import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


def write_tiktoken_files(r: Any, folder: Path, src: Path) -> str:
    """Write a tiktoken ``tokenizer.model`` (and ``tokenizer_config.json``) for a Llama 3
    ``gpt2`` vocabulary; returns the family (``llama3`` or ``llama3.1``)."""
    import base64

    from modelport.tok.tiktoken_ import llama3_specials

    pre = field(r, "tokenizer.ggml.pre")
    if pre != "llama-bpe":
        raise UnsupportedError(f"GGUF gpt2 vocabulary with pre-tokenizer {pre!r}", path=src,
                               supported=["llama-bpe (Llama 3)"],
                               hint="add the model's own tokenizer files to the output")
    tokens = [str(t) for t in field(r, "tokenizer.ggml.tokens")]
    types = [int(t) for t in field(r, "tokenizer.ggml.token_type", [1] * len(tokens))]
    n = next((i for i, t in enumerate(types) if t != 1), len(tokens))
    specials = tokens[n:]
    family = next((v for v in ("llama3", "llama3.1") if llama3_specials(v) == specials), None)
    if family is None:
        raise UnsupportedError(f"GGUF gpt2 vocabulary whose {len(specials)} special tokens "
                               "are neither Llama 3's nor Llama 3.1's", path=src,
                               hint="add the model's own tokenizer files to the output")
    dec = _byte_decoder()
    lines = []
    for i, tok in enumerate(tokens[:n]):
        try:
            raw = bytes(dec[c] for c in tok)
        except KeyError as e:
            raise UnsupportedError(f"token {i} ({tok!r}) is not byte-level", path=src) from e
        lines.append(f"{base64.b64encode(raw).decode()} {i}")
    (folder / "tokenizer.model").write_text("\n".join(lines) + "\n")
    cfg = {"add_bos_token": bool(field(r, "tokenizer.ggml.add_bos_token", True)),
           "model_max_length": int(field(r, "llama.context_length", 8192))}
    template = field(r, "tokenizer.chat_template")
    if template:
        cfg["chat_template"] = str(template)
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return family


def write_spm_files(r: Any, folder: Path, src: Path) -> None:
    """Write ``tokenizer.model`` and ``tokenizer_config.json`` for a ``llama`` vocabulary.
    Raises ``UnsupportedError`` for other vocabulary types."""
    kind = gguf_vocab_type(r)
    if kind != "llama":
        raise UnsupportedError(f"GGUF vocabulary type {kind!r}", path=src,
                               supported=["llama (SentencePiece)"],
                               hint="add the model's own tokenizer files to the output")
    from sentencepiece import sentencepiece_model_pb2 as pb

    tokens = [str(t) for t in field(r, "tokenizer.ggml.tokens")]
    scores = list(field(r, "tokenizer.ggml.scores", [0.0] * len(tokens)))
    types = [int(t) for t in field(r, "tokenizer.ggml.token_type", [1] * len(tokens))]
    if not (len(tokens) == len(scores) == len(types)):
        raise UnsupportedError("GGUF vocabulary with tokens, scores and types of different "
                               "lengths", path=src)
    m = pb.ModelProto()
    for tok, score, ty in zip(tokens, scores, types, strict=True):
        p = m.pieces.add()
        p.piece, p.score, p.type = tok, float(score), ty
    ts = m.trainer_spec
    ts.model_type = pb.TrainerSpec.BPE
    ts.vocab_size = len(tokens)
    ts.byte_fallback = BYTE in types
    ids = {k: field(r, f"tokenizer.ggml.{k}_token_id") for k in ("unknown", "bos", "eos",
                                                                 "padding")}
    ts.unk_id = int(ids["unknown"]) if ids["unknown"] is not None else 0
    ts.bos_id = int(ids["bos"]) if ids["bos"] is not None else -1
    ts.eos_id = int(ids["eos"]) if ids["eos"] is not None else -1
    ts.pad_id = int(ids["padding"]) if ids["padding"] is not None else -1
    ns = m.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = bool(field(r, "tokenizer.ggml.add_space_prefix", True))
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    (folder / "tokenizer.model").write_bytes(m.SerializeToString())
    cfg: dict[str, Any] = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": bool(field(r, "tokenizer.ggml.add_bos_token", True)),
        "add_eos_token": bool(field(r, "tokenizer.ggml.add_eos_token", False)),
        "legacy": True, "model_max_length": int(field(r, "llama.context_length", 4096)),
    }
    for key, name in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"),
                      ("padding", "pad_token")):
        if ids[key] is not None and 0 <= int(ids[key]) < len(tokens):
            cfg[name] = tokens[int(ids[key])]
    template = field(r, "tokenizer.chat_template")
    if template:
        cfg["chat_template"] = str(template)
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")


__all__ = ["field", "gguf_vocab_type", "write_spm_files", "write_tiktoken_files"]
