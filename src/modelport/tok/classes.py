"""Which tokenizer class a folder's model was built with, and how we know.

The class decides the ids (special-token layout, fairseq offsets, language codes), the
template and the flags; the file library alone decides none of them. The class comes from,
in this order: ``--family``, tokenizer_config ``tokenizer_class``, config ``model_type`` (when
it maps to exactly one class), or evidence in the vocabulary. Evidence alone is a guess: it is
used only with ``accept_guess``; otherwise the folder is refused, naming the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from modelport.errors import AmbiguousTokenizerError, InputError, UnsupportedError
from modelport.tok.source import MISTRAL_SPM, Source

Kind = Literal["sentencepiece", "bpe", "wordpiece", "tiktoken"]

LLAMA3_RANKS = 128_000  # Llama 3's tiktoken file (Llama 4's holds about 200k)
QWEN2_MIN = 150_000  # Qwen2's byte-level vocab.json: 151,643 entries; GPT-2's 50,257
# slow class name -> (family, kind)
CLASSES: dict[str, tuple[str, Kind]] = {
    "LlamaTokenizer": ("llama", "sentencepiece"),
    "CodeLlamaTokenizer": ("llama", "sentencepiece"),
    "GemmaTokenizer": ("gemma", "sentencepiece"),
    "T5Tokenizer": ("t5", "sentencepiece"),
    "MT5Tokenizer": ("t5", "sentencepiece"),
    "AlbertTokenizer": ("albert", "sentencepiece"),
    "XLNetTokenizer": ("xlnet", "sentencepiece"),
    "DebertaV2Tokenizer": ("deberta-v2", "sentencepiece"),
    "XLMRobertaTokenizer": ("xlm-roberta", "sentencepiece"),
    "CamembertTokenizer": ("camembert", "sentencepiece"),
    "MBartTokenizer": ("mbart", "sentencepiece"),
    "MBart50Tokenizer": ("mbart50", "sentencepiece"),
    "NllbTokenizer": ("nllb", "sentencepiece"),
    "RobertaTokenizer": ("roberta", "bpe"),
    "BartTokenizer": ("roberta", "bpe"),
    "LongformerTokenizer": ("roberta", "bpe"),
    "GPT2Tokenizer": ("gpt2", "bpe"),
    "CodeGenTokenizer": ("gpt2", "bpe"),
    "GPTNeoXTokenizer": ("gpt2", "bpe"),
    "Qwen2Tokenizer": ("qwen2", "bpe"),
    "WhisperTokenizer": ("whisper", "bpe"),
    "OpenAIGPTTokenizer": ("openai-gpt", "bpe"),
    "BertTokenizer": ("bert", "wordpiece"),
    "DistilBertTokenizer": ("bert", "wordpiece"),
    "ElectraTokenizer": ("bert", "wordpiece"),
    "Llama3Tokenizer": ("llama3", "tiktoken"),
    "Llama31Tokenizer": ("llama3.1", "tiktoken"),
    "TekkenTokenizer": ("tekken", "tiktoken"),
}
# the class each family name stands for, for --family
FAMILY_CLASS = {
    "llama": "LlamaTokenizer", "mistral": "LlamaTokenizer", "gemma": "GemmaTokenizer",
    "t5": "T5Tokenizer", "mt5": "MT5Tokenizer", "albert": "AlbertTokenizer",
    "xlnet": "XLNetTokenizer", "deberta-v2": "DebertaV2Tokenizer",
    "xlm-roberta": "XLMRobertaTokenizer", "camembert": "CamembertTokenizer",
    "mbart": "MBartTokenizer", "mbart50": "MBart50Tokenizer", "nllb": "NllbTokenizer",
    "roberta": "RobertaTokenizer", "bart": "BartTokenizer", "longformer": "LongformerTokenizer",
    "gpt2": "GPT2Tokenizer", "codegen": "CodeGenTokenizer", "gpt-neox": "GPTNeoXTokenizer",
    "qwen2": "Qwen2Tokenizer", "whisper": "WhisperTokenizer", "openai-gpt": "OpenAIGPTTokenizer",
    "bert": "BertTokenizer", "distilbert": "DistilBertTokenizer", "llama3": "Llama3Tokenizer",
    "llama3.1": "Llama31Tokenizer", "llama3.2": "Llama31Tokenizer", "llama3.3": "Llama31Tokenizer",
    "tekken": "TekkenTokenizer",
}
# config model_type -> the classes its models ship with (more than one: ambiguous)
MODEL_TYPES: dict[str, tuple[str, ...]] = {
    "llama": ("LlamaTokenizer",), "mistral": ("LlamaTokenizer",),
    "mixtral": ("LlamaTokenizer",), "gemma": ("GemmaTokenizer",),
    "gemma2": ("GemmaTokenizer",), "t5": ("T5Tokenizer",), "mt5": ("MT5Tokenizer",),
    "umt5": ("T5Tokenizer",), "albert": ("AlbertTokenizer",), "xlnet": ("XLNetTokenizer",),
    "deberta-v2": ("DebertaV2Tokenizer",), "xlm-roberta": ("XLMRobertaTokenizer",),
    "camembert": ("CamembertTokenizer",), "mbart": ("MBartTokenizer", "MBart50Tokenizer"),
    "m2m_100": ("NllbTokenizer", "M2M100Tokenizer"), "roberta": ("RobertaTokenizer",),
    "bart": ("BartTokenizer",), "longformer": ("LongformerTokenizer",),
    "gpt2": ("GPT2Tokenizer",), "opt": ("GPT2Tokenizer",), "codegen": ("CodeGenTokenizer",),
    "gpt_neox": ("GPTNeoXTokenizer",), "qwen2": ("Qwen2Tokenizer",),
    "qwen2_moe": ("Qwen2Tokenizer",), "whisper": ("WhisperTokenizer",),
    "openai-gpt": ("OpenAIGPTTokenizer",), "bert": ("BertTokenizer",),
    "distilbert": ("DistilBertTokenizer",), "electra": ("ElectraTokenizer",),
}
REFUSED = {
    "MarianTokenizer": ("Marian models use two sentencepiece models (source.spm, target.spm) "
                        "and a shared vocab.json; no single tokenizer.json can represent them "
                        "and transformers has no fast Marian tokenizer",
                        "deploy with the slow MarianTokenizer, or pick another model"),
    "BertJapaneseTokenizer": ("BertJapaneseTokenizer splits words with MeCab (a dictionary "
                              "outside the tokenizer files) before WordPiece; tokenizer.json "
                              "cannot run MeCab",
                              "serve the model with its slow tokenizer and fugashi/unidic"),
    "M2M100Tokenizer": ("M2M100Tokenizer maps a sentencepiece model through a separate "
                        "vocab.json", "serve the model with its slow tokenizer"),
}


@dataclass
class Resolved:
    """The class, its family and kind, where it came from, and the other candidates."""

    name: str
    family: str
    kind: Kind
    source: str
    guess: bool = False
    candidates: list[str] = field(default_factory=list)


def _refuse(name: str, src: Source) -> None:
    if name in REFUSED:
        why, hint = REFUSED[name]
        raise UnsupportedError(why, path=src.folder, hint=hint)


def _evidence(src: Source) -> tuple[list[str], str]:
    """Candidate classes from the files alone, best first, and the evidence."""
    if src.tiktoken is not None:
        n = sum(1 for _ in src.tiktoken.open("rb"))
        if n > LLAMA3_RANKS + 1000:  # Llama 4's file holds about 200k ranks, Llama 3's 128k
            raise UnsupportedError(f"{src.tiktoken.name}: a tiktoken file of {n} ranks, the "
                                   "size of Llama 4's (200k), not Llama 3's (128,000)",
                                   path=src.tiktoken, supported=["Llama3Tokenizer",
                                                                 "Llama31Tokenizer"],
                                   hint="add Llama 4's own tokenizer.json")
        return (["Llama31Tokenizer", "Llama3Tokenizer"],
                f"{src.tiktoken.name}: tiktoken ranks, {n} entries (Llama 3 and 3.1+ share "
                "the ranks but name special tokens 128002-128010 differently)")
    if src.spm is not None:
        name = src.spm.name
        if name == "sentencepiece.bpe.model":
            return (["XLMRobertaTokenizer", "MBartTokenizer", "MBart50Tokenizer",
                     "CamembertTokenizer", "NllbTokenizer"],
                    f"{name}: the fairseq family's file name")
        if name == "spiece.model":
            return (["T5Tokenizer", "AlbertTokenizer", "XLNetTokenizer"],
                    f"{name}: the file name of T5, ALBERT and XLNet")
        return (["LlamaTokenizer", "GemmaTokenizer"], f"{name}: a sentencepiece model")
    if "vocab.json" in src.files and "merges.txt" not in src.files:
        raise InputError("vocab.json without merges.txt", path=src.folder,
                         hint="BPE needs both files")
    if src.has("vocab.json", "merges.txt"):
        from modelport.tok.source import read_json

        vocab = read_json(src.folder / "vocab.json")
        head = [t for t, _ in sorted(vocab.items(), key=lambda x: x[1]
                                     if isinstance(x[1], int) else 0)[:8]]
        if sum(str(t).endswith("</w>") for t in list(vocab)[:2000]) > 100:
            return ["OpenAIGPTTokenizer"], "vocab.json entries end in </w>"
        if {"<s>", "</s>", "<pad>", "<unk>"} <= set(head[:5]):
            return (["RobertaTokenizer", "BartTokenizer"],
                    f"vocab.json starts with {' '.join(head[:5])} (the RoBERTa layout)")
        if len(vocab) >= QWEN2_MIN:
            return (["Qwen2Tokenizer", "GPT2Tokenizer", "CodeGenTokenizer", "GPTNeoXTokenizer"],
                    f"vocab.json holds {len(vocab)} byte-level entries: Qwen2's size (151,643)"
                    "; GPT-2, CodeGen and GPT-NeoX hold about 50k")
        return (["GPT2Tokenizer", "CodeGenTokenizer", "GPTNeoXTokenizer"],
                "vocab.json + merges.txt with no special layout")
    if "vocab.txt" in src.files:
        return ["BertTokenizer", "DistilBertTokenizer"], "vocab.txt (WordPiece)"
    raise InputError("no tokenizer files (tokenizer.model, spiece.model, "
                     "sentencepiece.bpe.model, a tiktoken file, tekken.json, "
                     "vocab.json + merges.txt, or vocab.txt)", path=src.folder)


def _fits(kind: Kind, src: Source) -> bool:
    """Whether the folder has the file the class reads."""
    return {"sentencepiece": src.spm is not None,
            "bpe": src.has("vocab.json", "merges.txt"),
            "wordpiece": "vocab.txt" in src.files,
            "tiktoken": src.tiktoken is not None or "tekken.json" in src.files}[kind]


def _need(r: Resolved, src: Source) -> Resolved:
    if not _fits(r.kind, src):
        what = {"sentencepiece": "a sentencepiece model (tokenizer.model, spiece.model, "
                "sentencepiece.bpe.model)", "bpe": "vocab.json + merges.txt",
                "wordpiece": "vocab.txt", "tiktoken": "a tiktoken rank file or tekken.json"}
        raise InputError(f"{r.name} (from {r.source}) reads {what[r.kind]}, which the folder "
                         "does not have", path=src.folder,
                         hint="add the tokenizer file, or pass --family for the files present")
    return r


def resolve(src: Source, family: str | None, accept_guess: bool) -> Resolved:
    """The class of the folder's tokenizer; refuses a guess unless ``accept_guess``."""
    return _need(_resolve(src, family, accept_guess), src)


def _resolve(src: Source, family: str | None, accept_guess: bool) -> Resolved:
    if "source.spm" in src.files or src.model_type == "marian":
        _refuse("MarianTokenizer", src)
    if family:
        name = FAMILY_CLASS.get(family.lower(), family.replace("Fast", ""))
        if name not in CLASSES:
            _refuse(name, src)
            raise InputError(f"unknown family {family!r}", path=src.folder,
                             hint=f"one of: {', '.join(sorted(FAMILY_CLASS))}")
        return Resolved(name, *CLASSES[name], source=f"--family {family}")
    # tokenizer_config's tokenizer_class, else config.json's: the order AutoTokenizer reads them
    for conf, where in ((src.tc, "tokenizer_config"), (src.cfg, "config")):
        cls = str(conf.get("tokenizer_class") or "").replace("Fast", "")
        if not cls or cls == "PreTrainedTokenizer":
            continue
        _refuse(cls, src)
        if cls in CLASSES:
            return Resolved(cls, *CLASSES[cls], source=f"{where} tokenizer_class")
        custom = conf.get("auto_map")
        code = custom.get("AutoTokenizer") if isinstance(custom, dict) else None
        if isinstance(code, list):  # [slow class, fast class], either may be null
            code = ", ".join(str(c) for c in code if c)
        named = f" (custom code named by auto_map: AutoTokenizer -> {code})" if code else ""
        raise UnsupportedError(f"tokenizer_class {cls} is not a class modelport can "
                               f"express{named}", path=src.folder / f"{where}.json",
                               supported=sorted(CLASSES),
                               hint="modelport never runs a folder's code; if its files "
                               "follow one of these classes, pass --family")
    if "tekken.json" in src.files:  # self-describing: its pattern and special tokens inside
        return Resolved("TekkenTokenizer", "tekken", "tiktoken",
                        source="tekken.json (states its pattern and special tokens)")
    if src.spm is not None and MISTRAL_SPM.fullmatch(src.spm.name):
        return Resolved("LlamaTokenizer", *CLASSES["LlamaTokenizer"], source=(
            f"{src.spm.name} (mistral-common's versioned sentencepiece file, which Mistral's "
            "Hugging Face repositories load with LlamaTokenizer)"))
    cands, why = _evidence(src)
    mt = tuple(c for c in MODEL_TYPES.get(src.model_type, ())
               if c not in CLASSES or _fits(CLASSES[c][1], src))  # a class for these files
    if mt and len(mt) == 1:
        _refuse(mt[0], src)
        return Resolved(mt[0], *CLASSES[mt[0]], source=f"config model_type {src.model_type}")
    if mt:
        cands, why = list(mt), f"config model_type {src.model_type} (shipped with several)"
    if accept_guess:
        return Resolved(cands[0], *CLASSES[cands[0]], source=f"guess from {why} (--accept-guess)",
                        guess=True, candidates=cands)
    fams = [next(f for f, n in FAMILY_CLASS.items() if n == c) for c in cands
            if c in FAMILY_CLASS.values()]  # one family name per candidate
    raise AmbiguousTokenizerError(
        f"the tokenizer class is not stated (no tokenizer_class in tokenizer_config.json, "
        f"{'model_type ' + src.model_type if src.model_type else 'no config model_type'}); "
        f"evidence: {why}; candidates: {', '.join(cands)}", path=src.folder,
        hint=f"pass --family ({' or '.join(fams) or 'see --help'}) for the class the model "
             "was trained with, or --accept-guess to take the first")
