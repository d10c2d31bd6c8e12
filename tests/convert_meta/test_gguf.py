"""GGUF -> safetensors against transformers' own GGUF loading: the real tiny llama 2 file
(F16) and files written here with the gguf package's writer (F32, F16, Q8_0)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import modelport
from modelport.errors import CheckpointError
from tests.conftest import real_path


def _transformers_load(path: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                dtype=torch.float32)


@pytest.mark.real
def test_real_gguf_equals_transformers_loading(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    src = real_path("ckpt2", "gguf_ollama_llama2_tiny_random", "llama-2-tiny-random.gguf")
    rep = modelport.convert(src, tmp_path / "hf", progress=False)
    assert rep.inputs[0].format == "gguf" and "as stored" in rep.warnings[0]
    ours = load_file(tmp_path / "hf" / "model.safetensors")
    theirs = _transformers_load(src).state_dict()
    assert {v.dtype for v in ours.values()} == {torch.float16, torch.float32}  # as stored
    for k, v in ours.items():
        assert torch.equal(v.float(), theirs[k]), k
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["hidden_size"] == 8 and cfg["vocab_size"] == 32000


def _write_gguf(path: Path, qtype: str) -> None:
    """A tiny llama GGUF written with the gguf package (weights in llama.cpp's order)."""
    import gguf

    from tests.convert_meta.layouts import to_meta_rows

    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(path, "llama")
    dim, ff, heads, vocab = 64, 96, 4, 128
    w.add_context_length(256)
    w.add_embedding_length(dim)
    w.add_block_count(1)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("llama")  # transformers sizes the vocabulary from the token list
    w.add_token_list([f"<t{i}>" for i in range(vocab)])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([1] * vocab)
    shapes = {"token_embd.weight": (vocab, dim), "output_norm.weight": (dim,),
              "output.weight": (vocab, dim), "blk.0.attn_norm.weight": (dim,),
              "blk.0.ffn_norm.weight": (dim,), "blk.0.attn_q.weight": (dim, dim),
              "blk.0.attn_k.weight": (dim, dim), "blk.0.attn_v.weight": (dim, dim),
              "blk.0.attn_output.weight": (dim, dim), "blk.0.ffn_gate.weight": (ff, dim),
              "blk.0.ffn_up.weight": (ff, dim), "blk.0.ffn_down.weight": (dim, ff)}
    for name, shape in shapes.items():
        a = rng.standard_normal(shape).astype(np.float32) * 0.1
        if "attn_q" in name or "attn_k" in name:  # llama.cpp stores q/k in Meta's order
            a = to_meta_rows(torch.from_numpy(a), heads).numpy()
        if len(shape) == 1 or qtype == "F32":
            w.add_tensor(name, a)
        elif qtype == "F16":
            w.add_tensor(name, a.astype(np.float16))
        else:
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("qtype", ["F32", "F16", "Q8_0"])
def test_written_gguf_equals_transformers_loading(tmp_path: Path, qtype: str) -> None:
    from safetensors.torch import load_file

    src = tmp_path / f"tiny-{qtype}.gguf"
    _write_gguf(src, qtype)
    rep = modelport.convert(src, tmp_path / "hf", progress=False)
    if qtype == "Q8_0":
        assert "not the original weights" in rep.warnings[0]
    ours = load_file(tmp_path / "hf" / "model.safetensors")
    theirs = _transformers_load(src).state_dict()
    for k, v in ours.items():
        assert torch.equal(v.float(), theirs[k]), k


def test_every_verb_knows_a_gguf(tmp_path: Path) -> None:
    """inspect reads a .gguf (file or a folder holding one) from its header; convert takes
    the folder too and applies --max-shard-size; --dry-run and options the route does not
    apply are refused in one line instead of being ignored."""
    import gguf
    from click.testing import CliRunner
    from safetensors.torch import load_file

    from modelport.cli.main import cli

    d = tmp_path / "folder"
    d.mkdir()
    _write_gguf(d / "tiny.gguf", "Q8_0")
    r = gguf.GGUFReader(d / "tiny.gguf")
    for target in (d / "tiny.gguf", d):
        info = modelport.inspect(target)
        assert info.ok and info.weight_files[0].format == "GGUF (llama)"
        assert info.tensors == len(r.tensors)
        assert info.dtypes == {k: sum(t.tensor_type.name == k for t in r.tensors)
                               for k in {t.tensor_type.name for t in r.tensors}}
        assert any("dequantized" in p.message for p in info.problems)
    one = modelport.convert(d / "tiny.gguf", tmp_path / "one", progress=False)
    rep = modelport.convert(d, tmp_path / "sharded", progress=False, max_shard_size=4096)
    assert sum(o.role == "weights" for o in rep.outputs) > 1
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    merged: dict[str, torch.Tensor] = {}
    for o in rep.outputs:
        if o.role == "weights":
            merged.update(load_file(tmp_path / "sharded" / o.path))
    whole = load_file(tmp_path / "one" / "model.safetensors")
    assert merged.keys() == whole.keys() and all(torch.equal(merged[k], whole[k]) for k in whole)
    assert one.tensors_written == rep.tensors_written
    dry = modelport.plan_convert(d, tmp_path / "x", modelport.ConvertOptions(
        max_shard_size=4096))
    dry.close()
    assert [(s.filename, [t.name for t in s.tensors]) for s in dry.shards] == [
        (o.path, list(load_file(tmp_path / "sharded" / o.path))) for o in rep.outputs
        if o.role == "weights"]
    for args, says in ((["--aliases", "copy"], "--aliases does not apply to a GGUF"),
                       (["--weights", "module"], "--weights does not apply to a GGUF")):
        res = CliRunner().invoke(cli, ["convert", str(d), str(tmp_path / "x"), *args])
        assert res.exit_code == 2 and says in res.stderr, res.output
        assert len(res.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "x").exists()


def test_damaged_gguf_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "bad.gguf"
    src.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 40)
    with pytest.raises(CheckpointError, match="GGUF header counts larger than the file"):
        modelport.convert(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def _ids_of(tokenizer_json: Path, lines: list[str]) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    return [tok.encode(x).ids for x in lines]


def _spm_ids(model: Path, lines: list[str], bos: int = 1) -> list[list[int]]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    return [[bos, *sp.encode(x)] for x in lines]


def _lines() -> list[str]:
    from modelport.tok.corpus import corpus

    return corpus([])


@pytest.mark.real
def test_real_gguf_vocabulary_equals_llama2_sentencepiece(tmp_path: Path) -> None:
    """The tiny Llama 2 GGUF embeds Llama 2's 32000 pieces; tokenizer.json built from them
    gives the ids of Meta's own tokenizer.model (sentencepiece), the file the model was built
    with, on every line of the parity corpus."""
    src = real_path("ckpt2", "gguf_ollama_llama2_tiny_random", "llama-2-tiny-random.gguf")
    truth = real_path("tok", "llama2c_llama2", "tokenizer.model")
    rep = modelport.convert(src, tmp_path / "hf", progress=False)
    assert "as LlamaTokenizer" in rep.warnings[0] and "0 known" in rep.warnings[0]
    assert {o.path for o in rep.outputs} >= {"tokenizer.json", "tokenizer.model",
                                             "tokenizer_config.json"}
    lines = _lines()
    assert _ids_of(tmp_path / "hf" / "tokenizer.json", lines) == _spm_ids(truth, lines)


def _spm_vocab(m: Any, pad: int | None = None) -> Any:
    """A GGUF writer step storing SentencePiece model ``m`` as llama.cpp's converter does:
    pieces, scores, types and the special ids (``pad`` as given)."""
    def vocab(w: Any) -> None:
        w.add_tokenizer_model("llama")
        w.add_token_list([p.piece for p in m.pieces])
        w.add_token_scores([p.score for p in m.pieces])
        w.add_token_types([p.type for p in m.pieces])
        w.add_bos_token_id(m.trainer_spec.bos_id)
        w.add_eos_token_id(m.trainer_spec.eos_id)
        w.add_unk_token_id(m.trainer_spec.unk_id)
        if pad is not None:
            w.add_pad_token_id(pad)
    return vocab


def _gguf_with_vocab(tmp: Path, vocab: Any, n_vocab: int) -> Path:
    """tmp/v.gguf: the tiny F32 llama of _write_gguf with the vocabulary ``vocab(writer)``
    writes (embeddings resized to ``n_vocab`` rows)."""
    import gguf

    _write_gguf(tmp / "tok.gguf", "F32")
    r = gguf.GGUFReader(tmp / "tok.gguf")
    w = gguf.GGUFWriter(tmp / "v.gguf", "llama")
    for f in r.fields.values():
        if f.name.startswith("llama."):
            w.add_key_value(f.name, f.contents(), f.types[0], f.types[-1]
                            if f.types[0] == gguf.GGUFValueType.ARRAY else None)
    vocab(w)
    for t in r.tensors:
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        if t.name in ("token_embd.weight", "output.weight"):
            w.add_tensor(t.name, np.zeros((n_vocab, shape[1]), np.float16))
        else:
            w.add_tensor(t.name, np.asarray(t.data).reshape(shape).copy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tmp / "v.gguf"


# Meta's meta-llama/llama3 tokenizer.py (April 2024), copied here so that the truth is not
# modelport's own constants: its pat_str and its 256 special tokens
LLAMA3_PAT_STR = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|reserved_special_token_2|>",
    "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|reserved_special_token_4|>", "<|eot_id|>",
] + [f"<|reserved_special_token_{i}|>" for i in range(5, 256 - 5)]


@pytest.mark.real
def test_llama3_gguf_vocabulary_equals_tiktoken(tmp_path: Path) -> None:
    """A gpt2-type GGUF vocabulary holding Llama 3's tokenizer (Meta's tiktoken file, as
    llama.cpp's converter stores it: byte-level strings, then the 256 special tokens): the
    converted tokenizer.json gives tiktoken's ids on that file, plus <|begin_of_text|>."""
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    # GPT-2's byte table as transformers ships it (what llama.cpp's converter uses)
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    ranks = load_tiktoken_bpe(str(real_path("tok2", "llama3_meta_tiktoken", "tokenizer.model")))
    enc = bytes_to_unicode()
    base = [("".join(enc[b] for b in tok)) for tok, _ in sorted(ranks.items(),
                                                                key=lambda kv: kv[1])]
    specials = LLAMA3_SPECIALS

    def vocab(w: Any) -> None:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("llama-bpe")
        w.add_token_list(base + specials)
        w.add_token_types([1] * len(base) + [3] * len(specials))
        w.add_bos_token_id(128000)
        w.add_eos_token_id(128001)

    src = _gguf_with_vocab(tmp_path, vocab, len(base) + len(specials))
    rep = modelport.convert(src, tmp_path / "hf", progress=False)
    assert "embedded gpt2 vocabulary" in rep.warnings[0], rep.warnings
    truth = tiktoken.Encoding(name="llama3", pat_str=LLAMA3_PAT_STR, mergeable_ranks=ranks,
                              special_tokens={})
    lines = _lines()
    assert _ids_of(tmp_path / "hf" / "tokenizer.json", lines) == [
        [128000, *truth.encode_ordinary(x)] for x in lines]


def test_other_gpt2_vocabularies_are_named(tmp_path: Path) -> None:
    def vocab(w: Any) -> None:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen2")
        w.add_token_list([f"t{i}" for i in range(128)])
        w.add_token_types([1] * 128)

    rep = modelport.convert(_gguf_with_vocab(tmp_path, vocab, 128), tmp_path / "hf",
                            progress=False)
    assert "pre-tokenizer 'qwen2'" in rep.warnings[0]
    assert not list((tmp_path / "hf").glob("tokenizer*"))


@pytest.mark.parametrize("pad", [None, 0xFFFFFFFF])
def test_written_gguf_vocabulary_equals_its_sentencepiece_model(tmp_path: Path,
                                                                pad: int | None) -> None:
    """A SentencePiece BPE model trained here, its pieces written into a GGUF with the gguf
    writer: the converted tokenizer.json gives the trained model's ids. ``pad`` 0xFFFFFFFF is
    how llama.cpp's converter stores "no padding token" (it was passed on as an id and
    stopped the conversion with an internal error)."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(_lines() * 3))
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tmp_path / "sp"), vocab_size=1200, model_type="bpe",
        byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        minloglevel=2, num_threads=1, character_coverage=1.0)
    m = pb.ModelProto()
    m.ParseFromString((tmp_path / "sp.model").read_bytes())

    _gguf_with_vocab(tmp_path, _spm_vocab(m, pad), len(m.pieces))
    rep = modelport.convert(tmp_path / "v.gguf", tmp_path / "hf", progress=False)
    assert "as LlamaTokenizer" in rep.warnings[0], rep.warnings
    tc = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    assert "pad_token" not in tc  # "none" is no token
    lines = _lines()
    assert _ids_of(tmp_path / "hf" / "tokenizer.json", lines) == _spm_ids(
        tmp_path / "sp.model", lines, bos=m.trainer_spec.bos_id)


def test_an_unusable_vocabulary_leaves_the_weights_and_says_so(tmp_path: Path) -> None:
    src = tmp_path / "tiny.gguf"
    _write_gguf(src, "F16")  # <t0>... pieces, no unknown piece: not a SentencePiece model
    rep = modelport.convert(src, tmp_path / "hf", progress=False)
    assert "vocabulary was not converted" in rep.warnings[0]
    assert "add the model's tokenizer files" in rep.warnings[0]
    assert not list((tmp_path / "hf").glob("tokenizer*"))
    assert (tmp_path / "hf" / "model.safetensors").is_file()


def test_a_rebuilt_vocabulary_is_never_called_the_original(tmp_path: Path) -> None:
    """A SentencePiece model that collapses runs of whitespace (the trainer's default, as in
    llama2.c's tokenizers): a GGUF does not record that setting, so the rebuilt tokenizer
    differs from the original on "a  b" — and the report says the vocabulary was rebuilt, what
    a GGUF does not record, and never that it equals the original."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(_lines() * 3))
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tmp_path / "sp"), vocab_size=1200, model_type="bpe",
        byte_fallback=True, minloglevel=2, num_threads=1, character_coverage=1.0)
    m = pb.ModelProto()
    m.ParseFromString((tmp_path / "sp.model").read_bytes())
    assert m.normalizer_spec.remove_extra_whitespaces  # the original collapses runs

    _gguf_with_vocab(tmp_path, _spm_vocab(m), len(m.pieces))
    rep = modelport.convert(tmp_path / "v.gguf", tmp_path / "hf", progress=False)
    note = rep.warnings[0]
    assert "rebuilt from the embedded llama vocabulary" in note, note
    assert "not proven against the model's original tokenizer" in note
    assert "whitespace" in note and "100%" not in note
    runs = ["a  b", "x   y z"]
    assert _ids_of(tmp_path / "hf" / "tokenizer.json", runs) != _spm_ids(
        tmp_path / "sp.model", runs, bos=m.trainer_spec.bos_id)


def _header_equals_the_reference_reader(path: Path) -> None:
    import gguf

    from modelport.convert.gguf_header import read_gguf_header

    ours, ref = read_gguf_header(path), gguf.GGUFReader(path)
    assert ours.version == int(ref.fields["GGUF.version"].parts[-1][0])
    for name, f in ref.fields.items():
        if name.startswith("GGUF."):
            continue
        if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
            assert ours.fields[name] == len(f.data), name  # arrays: their element count
        else:
            assert ours.fields[name] == f.contents(), name
    assert len(ours.fields) == len([n for n in ref.fields if not n.startswith("GGUF.")])
    assert [(t.name, t.type_name, t.shape, t.offset, t.n_bytes) for t in ours.tensors] == [
        (t.name, t.tensor_type.name, tuple(int(x) for x in t.shape), int(t.data_offset),
         int(t.n_bytes)) for t in ref.tensors]
    # convert's read: the arrays too (the vocabulary), each equal to GGUFReader's contents
    full = read_gguf_header(path, arrays=True)
    arrays = 0
    for name, f in ref.fields.items():
        if not name.startswith("GGUF."):
            assert full.fields[name] == f.contents(), name
            arrays += isinstance(full.fields[name], list)
    assert arrays > 0 and full.tensors == ours.tensors


@pytest.mark.parametrize("qtype", ["F32", "F16", "Q8_0"])
def test_header_reader_equals_gguf_reader(tmp_path: Path, qtype: str) -> None:
    """The header walk (arrays skipped for inspect, read for convert) gives gguf's
    GGUFReader's answers: every field and array, every tensor's type, shape, offset and size;
    a cut file is an error, not a guess."""
    from modelport.convert.gguf_header import read_gguf_header

    src = tmp_path / "m.gguf"
    _write_gguf(src, qtype)
    _header_equals_the_reference_reader(src)
    data = src.read_bytes()
    for cut in (len(data) - 1, 200, 30):
        (tmp_path / "cut.gguf").write_bytes(data[:cut])
        for arrays in (False, True):
            with pytest.raises(CheckpointError):
                read_gguf_header(tmp_path / "cut.gguf", arrays=arrays)


@pytest.mark.real
def test_header_reader_equals_gguf_reader_on_a_real_file() -> None:
    _header_equals_the_reference_reader(
        next(real_path("ckpt2/gguf_ollama_llama2_tiny_random").glob("*.gguf")))
