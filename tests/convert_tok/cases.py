"""The real tokenizer cases of ../shared/real and what each one's model was built with."""

from __future__ import annotations

from tests.conftest import REAL
from tests.convert_tok.compare import Case

# bare files (no tokenizer_config, no config) need --family: the class named here is the one
# the file's project uses (see ../shared/real/SOURCES.tsv)
BARE = {
    "tok/llama2c_llama2": ("llama", "LlamaTokenizer", {}),
    "tok/spm_test_model_stub": ("llama", "LlamaTokenizer", {}),
    "tok/t5_base_torchtext": ("t5", "T5Tokenizer", {}),
    "tok/bert_base_cased_torchtext": ("bert", "BertTokenizer", {"do_lower_case": False}),
    "tok2/gpt1_openai_original": ("openai-gpt", "OpenAIGPTTokenizer", {}),
    "tok2/mistral_common_v1": ("mistral", "LlamaTokenizer", {}),
    "tok2/mistral_common_v3": ("mistral", "LlamaTokenizer", {}),
    "tok2/torchtune_t5_spiece": ("t5", "T5Tokenizer", {}),
}
TIKTOKEN = {"tok2/llama3_meta_tiktoken": "llama3.1", "tok2/torchtune_tiktoken_small": "llama3.1"}
STATED = ["tok/armberta", "tok/bertino_distilbert_it", "tok/opt_erebus",
          "tok2/albert_hebrew_asafam", "tok2/chinese_llama_compat_canvachen",
          "tok2/mbart_trimmed_sign2text", "tok2/phi2_codegen_bacoco",
          "tok2/qwen2_molmo7b_reubzdubz", "tok2/spm350m_llama_syclient",
          "tok2/t5_base_qa_shymaa", "tok2/trocr_roberta_felipemarcelino",
          "tok2/whisper_base_theonlyengine"]
REFUSED = {"tok/opus_mt_en_mg": "Marian"}
# (lines, lines whose ids equal the truth) per case, pinned: a line that differs must be one the
# report lists as a known difference, and this many, no more (T5 `</s>`, ALBERT `9,`, Llama
# `legacy: false`'s leading space); the README's "all lines" figure is their sum
PINNED = {
    "tok/armberta": (75, 75), "tok/bert_base_cased_torchtext": (75, 75),
    "tok/bertino_distilbert_it": (75, 75), "tok/llama2c_llama2": (63, 63),
    "tok/opt_erebus": (57, 57), "tok/spm_test_model_stub": (63, 63),
    "tok/t5_base_torchtext": (83, 81), "tok2/albert_hebrew_asafam": (81, 79),
    "tok2/chinese_llama_compat_canvachen": (63, 57), "tok2/gpt1_openai_original": (50, 50),
    "tok2/llama3_meta_tiktoken": (87, 87), "tok2/mbart_trimmed_sign2text": (81, 81),
    "tok2/mistral_common_v1": (63, 63), "tok2/mistral_common_v3": (88, 88),
    "tok2/phi2_codegen_bacoco": (81, 81), "tok2/qwen2_molmo7b_reubzdubz": (91, 91),
    "tok2/spm350m_llama_syclient": (81, 81), "tok2/t5_base_qa_shymaa": (83, 81),
    "tok2/torchtune_t5_spiece": (83, 81), "tok2/torchtune_tiktoken_small": (87, 87),
    "tok2/trocr_roberta_felipemarcelino": (75, 75),
    "tok2/whisper_base_theonlyengine": (121, 121),
}


def real_cases() -> list[Case]:
    out = [Case(n, REAL / n) for n in STATED]
    out += [Case(n, REAL / n, family=f, oracle_class=c, oracle_init=i)
            for n, (f, c, i) in BARE.items()]
    out += [Case(n, REAL / n, family=v, tiktoken=v) for n, v in TIKTOKEN.items()]
    return sorted(out, key=lambda c: c.name)
