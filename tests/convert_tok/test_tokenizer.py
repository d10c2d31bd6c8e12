"""tokenizer: the verb end to end (trained tokenizers, the real MiniLM, refusals, the parity
gate, the CLI). Class-by-class parity against the oracle is in test_classes / test_real."""

from __future__ import annotations

import json
import shutil
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

import modelport
from modelport.cli.main import cli
from modelport.errors import AmbiguousTokenizerError, InputError, UnsupportedError
from modelport.tok.verb import TokenizerParityError
from tests.conftest import real_path
from tests.integration.test_real_minilm import minilm_dir


@pytest.fixture(scope="module")
def training_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Public-domain text available offline: the docstrings and code of Python's stdlib."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    text = "\n".join((lib / f).read_text(encoding="utf-8", errors="ignore")
                     for f in ("textwrap.py", "argparse.py", "json/decoder.py", "difflib.py"))
    p = tmp_path_factory.mktemp("corpus") / "train.txt"
    p.write_text(text + "\nGrüße Straße ¿Dónde? Съешь 你好 😀 déjà vu\n")
    return p


def _spm(tmp: Path, text: Path, model_type: str, **kw: object) -> Path:
    import sentencepiece as spm

    tmp.mkdir()
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tmp / "tokenizer"), vocab_size=800,
        model_type=model_type, character_coverage=1.0, minloglevel=2, num_threads=1,
        user_defined_symbols=["<tool>"], control_symbols=["<|im_start|>", "<|im_end|>"], **kw)
    (tmp / "tokenizer.vocab").unlink()
    return tmp


@pytest.mark.parametrize(("model_type", "extra"), [
    ("unigram", {}), ("bpe", {"byte_fallback": True}),
    ("unigram", {"normalization_rule_name": "nmt_nfkc_cf", "split_digits": True}),
    ("bpe", {"remove_extra_whitespaces": False, "allow_whitespace_only_pieces": True,
             "byte_fallback": True}),
])
def test_trained_sentencepiece(tmp_path: Path, training_text: Path, model_type: str,
                               extra: dict) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    d = _spm(tmp_path / "tok", training_text, model_type, **extra)
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "chat_template": "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>"
                         "{% endfor %}"}))
    rep = modelport.tokenizer(d)
    assert rep.written and rep.kind == "sentencepiece" and rep.certified
    assert rep.tokenizer_class == "LlamaTokenizer"
    assert rep.class_source == "tokenizer_config tokenizer_class"
    assert rep.flags_applied["add_bos_token"] is True and rep.flags_applied["legacy"] is True
    assert rep.parity.rate == 1.0 and rep.parity.examples >= 60
    assert rep.parity.decode_matched == rep.parity.decode_checked > 30
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    assert tok.encode("hi <tool>x").ids[0] == 1  # BOS from the post-processor
    assert "<tool>" in tok.encode("hi <tool>x").tokens  # a user-defined piece, whole
    # a control piece the config does not declare is plain text to LlamaTokenizer
    assert "<|im_start|>" not in tok.encode("hi <|im_start|>x").tokens
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    assert cfg["chat_template"].startswith("{% for m")  # carried over, never dropped
    hf = AutoTokenizer.from_pretrained(d)
    assert hf("hello world")["input_ids"] == tok.encode("hello world").ids


def test_trained_byte_level_bpe_with_added_tokens(tmp_path: Path, training_text: Path) -> None:
    from tokenizers import ByteLevelBPETokenizer

    d = tmp_path / "bpe"
    d.mkdir()
    t = ByteLevelBPETokenizer()
    t.train([str(training_text)], vocab_size=1200, special_tokens=["<|endoftext|>"],
            show_progress=False)
    t.save_model(str(d))
    n = t.get_vocab_size()
    (d / "added_tokens.json").write_text(json.dumps({"<|tool|>": n}))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}))
    (d / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    rep = modelport.tokenizer(d, tmp_path / "out")
    assert rep.kind == "bpe" and rep.family == "gpt2" and rep.parity.rate == 1.0
    assert rep.parity.decode_matched == rep.parity.decode_checked  # byte-level: exact
    assert not (d / "tokenizer.json").exists()  # --out leaves the input alone
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tmp_path / "out" / "tokenizer.json"))
    assert tok.token_to_id("<|tool|>") == n
    text = "def f(x):\n\treturn x  # ünïcödé 😀"
    assert tok.decode(tok.encode(text).ids) == text


def test_trained_wordpiece(tmp_path: Path, training_text: Path) -> None:
    from tokenizers import BertWordPieceTokenizer

    d = tmp_path / "wp"
    d.mkdir()
    t = BertWordPieceTokenizer(lowercase=True)
    t.train([str(training_text)], vocab_size=900, show_progress=False)
    t.save_model(str(d))
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    # vocab.txt alone does not say which class, but BERT and DistilBERT write the same files:
    # no guess, the proof runs against both (#23)
    both = modelport.tokenizer(d, tmp_path / "both")
    assert both.candidates == ["BertTokenizer", "DistilBertTokenizer"] and not both.guessed
    assert both.certified and "write the same files" in both.class_source
    rep = modelport.tokenizer(d, family="bert")
    assert (d / "tokenizer.json").read_bytes() == (tmp_path / "both" / "tokenizer.json"
                                                   ).read_bytes()
    assert rep.kind == "wordpiece" and rep.parity.rate == 1.0
    assert "lowercase=True (tokenizer_config do_lower_case)" in rep.notes[0]
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    assert cfg["clean_up_tokenization_spaces"] is True  # BertTokenizer's own default


def test_real_minilm_vocab_matches_its_authors_tokenizer_json(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from modelport.tok.corpus import corpus

    src = minilm_dir()
    d = tmp_path / "m"
    d.mkdir()
    for f in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
        shutil.copy(src / f, d / f)
    rep = modelport.tokenizer(d)
    assert rep.parity.rate == 1.0
    ours = Tokenizer.from_file(str(d / "tokenizer.json"))
    theirs = Tokenizer.from_file(str(src / "tokenizer.json"))
    theirs.no_padding()  # the authors' file pads to 128; compare the encodings only
    theirs.no_truncation()
    texts = corpus(["[CLS]", "[SEP]", "[MASK]"])
    assert [ours.encode(t).ids for t in texts] == [theirs.encode(t).ids for t in texts]
    shutil.copy(src / "tokenizer.json", d / "tokenizer.json")
    checked = modelport.tokenizer(d, check=True)  # the authors' own file, proven too
    assert checked.parity.rate == 1.0 and not checked.written


@pytest.mark.real
def test_cased_vocab_is_not_lowercased(tmp_path: Path) -> None:
    d = tmp_path / "c"
    shutil.copytree(real_path("tok", "bert_base_cased_torchtext"), d)
    rep = modelport.tokenizer(d, family="bert")
    assert "lowercase=False" in rep.notes[0] and "capitalised entries" in rep.notes[0]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    assert "Paris" in tok.encode("Paris").tokens


def test_mismatch_is_an_error_and_writes_nothing(tmp_path: Path, training_text: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenizers import ByteLevelBPETokenizer, Tokenizer

    from modelport.tok import bpe
    from modelport.tok import reference as ref

    d = tmp_path / "bpe"
    d.mkdir()
    t = ByteLevelBPETokenizer()
    t.train([str(training_text)], vocab_size=600, show_progress=False)
    t.save_model(str(d))
    assert modelport.tokenizer(d, tmp_path / "good", family="gpt2").parity.rate == 1.0
    # a reference that disagrees (the regex of another family): the gate must hold
    monkeypatch.setattr(bpe, "GPT2_PATTERN", ref.QWEN2_PATTERN)
    with pytest.raises(TokenizerParityError, match="lines differ from GPT2Tokenizer"):
        modelport.tokenizer(d, family="gpt2")
    assert not (d / "tokenizer.json").exists()
    rep = modelport.tokenizer(d, family="gpt2", accept_mismatch=True)
    assert rep.written and rep.parity.rate < 1.0 and rep.parity.first_mismatches
    assert not rep.certified
    monkeypatch.undo()
    # a tokenizer.json whose vocabulary was tampered with: --check shows where it differs
    good = json.loads((tmp_path / "good" / "tokenizer.json").read_text())
    v = good["model"]["vocab"]
    a, b = v["Ġthe"], v["Ġa"]
    v["Ġthe"], v["Ġa"] = b, a
    (d / "tokenizer.json").write_text(json.dumps(good))
    Tokenizer.from_file(str(d / "tokenizer.json"))
    r = CliRunner().invoke(cli, ["tokenizer", str(d), "--check", "--family", "gpt2"])
    assert r.exit_code == 1 and "mismatch:" in r.stdout


def test_user_corpus_jsonl(tmp_path: Path, training_text: Path) -> None:
    d = _spm(tmp_path / "tok", training_text, "unigram")
    c = tmp_path / "c.jsonl"
    c.write_text("\n".join(json.dumps({"text": f"user line {i} with ümlauts"})
                           for i in range(7)))
    rep = modelport.tokenizer(d, corpus=c, family="llama")
    assert rep.parity.examples >= 7 + 43 and rep.parity.rate == 1.0


@pytest.mark.parametrize(("setup", "match"), [
    (lambda d: None, "no tokenizer files"),
    (lambda d: ((d / "tokenizer.model").write_bytes(b"\x00garbage" * 10),
                (d / "config.json").write_text(json.dumps({"model_type": "llama"}))),
     "not a readable sentencepiece model"),
    (lambda d: (d / "vocab.json").write_text("{}"), "without merges"),
    (lambda d: ((d / "vocab.txt").write_text("[UNK]\n[CLS]\n[SEP]\na\n"),
                (d / "special_tokens_map.json").write_text(json.dumps({"unk_token": "[UNK]"})),
                (d / "tokenizer_config.json").write_text(json.dumps({
                    "unk_token": "<unk>", "tokenizer_class": "BertTokenizer"}))),
     "conflicting unk_token"),
])
def test_bad_input_writes_nothing(tmp_path: Path, setup: object, match: str) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    setup(d)  # type: ignore[operator]
    before = sorted(p.name for p in d.iterdir())
    with pytest.raises(InputError, match=match):
        modelport.tokenizer(d)
    assert sorted(p.name for p in d.iterdir()) == before
    r = CliRunner().invoke(cli, ["tokenizer", str(d)])
    assert r.exit_code == 2 and "Traceback" not in r.stderr


def test_mbart_model_type_alone_names_both_classes(tmp_path: Path, training_text: Path) -> None:
    import sentencepiece as spm

    d = tmp_path / "mbart"
    d.mkdir()
    spm.SentencePieceTrainer.train(input=str(training_text), model_prefix=str(d / "s"),
                                   vocab_size=500, model_type="bpe", minloglevel=2)
    (d / "s.model").rename(d / "sentencepiece.bpe.model")
    (d / "config.json").write_text(json.dumps({"model_type": "mbart"}))
    r = CliRunner().invoke(cli, ["tokenizer", str(d)])
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert "MBartTokenizer, MBart50Tokenizer" in r.stderr and "--family" in r.stderr
    assert not (d / "tokenizer.json").exists()
    rep = modelport.tokenizer(d, family="mbart")
    assert rep.tokenizer_class == "MBartTokenizer" and rep.class_source == "--family mbart"
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    ids = tok.encode("hello").ids
    # fairseq layout: <s>=0 <pad>=1 </s>=2 <unk>=3, pieces one up, "</s> en_XX" after
    assert [tok.id_to_token(i) for i in (0, 1, 2, 3)] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert tok.token_to_id("ar_AR") == 501  # the first language code follows the pieces
    assert ids[-2:] == [2, tok.token_to_id("en_XX")] and tok.token_to_id("en_XX") == 504
    assert tok.token_to_id("<mask>") == 501 + 25


def test_bare_roberta_layout_gets_its_template_without_a_family(tmp_path: Path,
                                                                training_text: Path) -> None:
    from tokenizers import ByteLevelBPETokenizer, Tokenizer

    d = tmp_path / "rb"
    d.mkdir()
    t = ByteLevelBPETokenizer()
    t.train([str(training_text)], vocab_size=600, show_progress=False,
            special_tokens=["<pad>", "<s>", "</s>", "<unk>", "<mask>"])
    t.save_model(str(d))
    # RoBERTa or BART (CodeT5's files): the same tokenizer.json either way, so no refusal
    both = modelport.tokenizer(d, tmp_path / "both")
    assert both.candidates == ["RobertaTokenizer", "BartTokenizer"] and both.certified
    rep = modelport.tokenizer(d, family="roberta")
    assert (d / "tokenizer.json").read_bytes() == (tmp_path / "both" / "tokenizer.json"
                                                   ).read_bytes()
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    ids = tok.encode("hello").ids
    assert ids[0] == 1 and ids[-1] == 2 and rep.post_processor == "<s> $A </s>"
    assert tok.encode("a <mask> b").tokens[2] == " <mask>"  # the mask takes the space before


def test_guess_is_a_flag_and_recorded(tmp_path: Path, training_text: Path) -> None:
    d = _spm(tmp_path / "tok", training_text, "unigram")
    r = CliRunner().invoke(cli, ["tokenizer", str(d), "--accept-guess"])
    assert r.exit_code == 0, r.stderr
    assert "GUESSED class" in r.stdout and "100%" not in r.stdout
    r = CliRunner().invoke(cli, ["tokenizer", str(d), "--check", "--accept-guess", "--json"])
    rep = json.loads(r.stdout)
    assert rep["guessed"] is True and rep["certified"] is False
    assert rep["candidates"] == ["LlamaTokenizer", "GemmaTokenizer"]


def test_mecab_japanese_bert_is_refused_with_what_to_do(tmp_path: Path) -> None:
    d = tmp_path / "ja"
    d.mkdir()
    (d / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n日本\n")
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertJapaneseTokenizer", "word_tokenizer_type": "mecab"}))
    r = CliRunner().invoke(cli, ["tokenizer", str(d)])
    assert r.exit_code == 2 and "MeCab" in r.stderr and "hint:" in r.stderr
    assert not (d / "tokenizer.json").exists()


def test_a_custom_class_is_refused_naming_its_auto_map(tmp_path: Path) -> None:
    """A tokenizer class that exists only as the folder's own code: refused in one line that
    names the code auto_map points at, which never runs (a marker file proves it)."""
    d = tmp_path / "custom"
    d.mkdir()
    (d / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    (d / "tokenization_mine.py").write_text(
        f"open({str(tmp_path / 'ran')!r}, 'w').write('ran')\n")
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "MineTokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_mine.MineTokenizer", None]}}))
    r = CliRunner().invoke(cli, ["tokenizer", str(d)])
    assert r.exit_code == 2, r.output
    assert "auto_map: AutoTokenizer -> tokenization_mine.MineTokenizer" in r.stderr
    assert "never runs" in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "ran").exists() and not (d / "tokenizer.json").exists()


@pytest.mark.real
def test_report_lists_flags_applied_and_carried(tmp_path: Path) -> None:
    d = tmp_path / "w"
    shutil.copytree(real_path("tok2", "whisper_base_theonlyengine"), d,
                    ignore=shutil.ignore_patterns("ref"))
    rep = modelport.tokenizer(d, tmp_path / "out")
    assert rep.tokenizer_class == "WhisperTokenizer" and rep.certified
    assert rep.flags_applied == {"add_prefix_space": False, "predict_timestamps": False}
    assert rep.flags_carried["clean_up_tokenization_spaces"] is True
    assert rep.post_processor == "<|startoftranscript|> <|notimestamps|> $A <|endoftext|>"


def test_prepare_records_the_tokenizer_class_and_a_guess(tmp_path: Path,
                                                         training_text: Path) -> None:
    from tokenizers import ByteLevelBPETokenizer

    from tests.conftest import tiny_model

    src = tmp_path / "src"
    tiny_model("llama").save_pretrained(src)
    t = ByteLevelBPETokenizer()
    t.train([str(training_text)], vocab_size=600, show_progress=False)
    t.save_model(str(src))  # llama weights, GPT-2 style files: no class fits model_type
    with pytest.raises(AmbiguousTokenizerError, match="GPT2Tokenizer"):
        modelport.prepare(src, tmp_path / "b0", ["watsonx-saas"])
    assert not (tmp_path / "b0").exists()
    rep = modelport.prepare(src, tmp_path / "b1", ["watsonx-saas"],
                            accept_tokenizer_guess=True)
    detail = next(s.detail for s in rep.manifest.provenance.steps if s.verb == "tokenizer")
    assert "GPT2Tokenizer" in detail and "GUESSED" in detail
    rep = modelport.prepare(src, tmp_path / "b2", ["watsonx-saas"], tokenizer_family="gpt2")
    detail = next(s.detail for s in rep.manifest.provenance.steps if s.verb == "tokenizer")
    assert "GPT2Tokenizer from --family gpt2" in detail and "GUESSED" not in detail


def test_fairseq_class_refuses_a_model_in_another_order(tmp_path: Path,
                                                       training_text: Path) -> None:
    from tests.convert_tok import trained

    d = trained.spm(tmp_path / "x", training_text, "sentencepiece.bpe.model",
                    {"tokenizer_class": "XLMRobertaTokenizer"}, pad_id=0, bos_id=1, eos_id=2,
                    unk_id=3)
    with pytest.raises(UnsupportedError, match="start with <unk> <s> </s>"):
        modelport.tokenizer(d)
    assert not (d / "tokenizer.json").exists()


@pytest.mark.real
def test_a_refusal_names_qwen2_for_its_vocabulary_alone(tmp_path: Path) -> None:
    """Qwen2's vocab.json + merges.txt without any config: the class is not stated, so the
    answer is a refusal, and its candidates start with the true class (Qwen2's pre-tokenizer
    differs from GPT-2's), with the evidence."""
    d = tmp_path / "q"
    d.mkdir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(real_path("tok2", "qwen2_molmo7b_reubzdubz", name), d / name)
    with pytest.raises(AmbiguousTokenizerError) as e:
        modelport.tokenizer(d)
    assert "candidates: Qwen2Tokenizer, GPT2Tokenizer" in e.value.message
    assert "Qwen2's size" in e.value.message and "--family (qwen2 " in e.value.hint
    rep = modelport.tokenizer(d, tmp_path / "out", family="qwen2")
    assert rep.tokenizer_class == "Qwen2Tokenizer" and rep.certified


def test_a_llama4_sized_tiktoken_file_is_not_called_llama3(tmp_path: Path) -> None:
    """Llama 4's tiktoken file holds about 200k ranks (Llama 3's 128,000): it is refused as
    what it is, not offered as Llama 3 or 3.1."""
    import base64

    d = tmp_path / "l4"
    d.mkdir()
    lines = [base64.b64encode(bytes([i])) + b" " + str(i).encode() for i in range(256)]
    lines += [base64.b64encode(f"t{i}".encode()) + b" " + str(256 + i).encode()
              for i in range(200_000 - 256)]
    (d / "tokenizer.model").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(UnsupportedError, match="200000 ranks, the size of Llama 4's"):
        modelport.tokenizer(d)
    assert not (d / "tokenizer.json").exists()
