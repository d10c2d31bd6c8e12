"""The tests' tokenizer oracle: transformers 4.57.6's slow classes and converters.

Runs only inside the test-only virtual environment ``.venv-tokref`` (transformers 4.57.6,
tokenizers 0.22, sentencepiece, protobuf, tiktoken, Meta's llama-models; no torch), never
beside modelport's transformers 5. The tests call it in a subprocess: a JSON request on stdin,
a JSON answer on stdout.

Request: {"folder": str, "class": str | null, "init": {...}, "texts": [str],
          "ref": str | null, "tiktoken": "llama3.1" | null,
          "decode": [[int]] | null, "ours": str | null, "truth_only": bool}
Answer:  {"class": str, "slow": [[int]] | null, "fast": [[int]] | null, "ref": [[int]] | null,
          "slow_decode": [[str, str]], "ours": [[int]], "ours_decode": [[str, str]], ...}

``slow`` is the slow class (the tokenizer the model was trained with), ``fast`` its own fast
converter (``convert_slow_tokenizer``), ``ref`` the authors' tokenizer.json read by tokenizers,
``ours`` a folder written by modelport, loaded by transformers 4 as a platform would.
"""

from __future__ import annotations

import json
import sys
import traceback


def _ids(tok, texts):  # type: ignore[no-untyped-def]
    return [tok(t, add_special_tokens=True)["input_ids"] for t in texts]


def _decodes(tok, ids):  # type: ignore[no-untyped-def]
    return [[tok.decode(i, skip_special_tokens=False), tok.decode(i, skip_special_tokens=True)]
            for i in ids]


def main() -> None:
    req = json.load(sys.stdin)
    import transformers
    from tokenizers import Tokenizer

    texts = req["texts"]
    out: dict = {"transformers": transformers.__version__}
    fast_tok = None
    if req.get("tekken"):
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer

        tk = Tekkenizer.from_file(req["folder"] + "/tekken.json")
        specials = {t["token_str"]: t["rank"] for t in tk._all_special_tokens}
        pattern = "(" + "|".join(__import__("re").escape(s)
                                 for s in sorted(specials, key=len, reverse=True)) + ")"

        def enc(text):  # special tokens in text map to their ids, as in tokenizer.json
            ids = [tk.bos_id]
            for i, part in enumerate(__import__("re").split(pattern, text)):
                if i % 2:
                    ids.append(specials[part])
                elif part:
                    ids += tk.encode(part, bos=False, eos=False)
            return ids

        out["class"] = "mistral-common Tekkenizer"
        out["slow"] = [enc(t) for t in texts]
        from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy

        out["slow_decode"] = [[tk.decode(i, special_token_policy=SpecialTokenPolicy.KEEP),
                               None] for i in out["slow"]]
        slow = None
    elif req.get("tiktoken"):
        # Meta's own tokenizer.py for Llama 3.1 (llama-models 0.0.19): its pattern, its 256
        # special tokens, tiktoken's file reader; nothing of modelport's
        from llama_models.llama3.api.tokenizer import Tokenizer

        if req["tiktoken"] != "llama3.1":
            raise SystemExit(f"no Meta tokenizer for {req['tiktoken']!r} in the oracle")
        meta = Tokenizer(req["folder"] + "/tokenizer.model")
        out["class"] = "Meta llama_models 0.0.19 Tokenizer (tiktoken)"
        out["slow"] = [meta.encode(t, bos=True, eos=False, allowed_special="all")
                       for t in texts]
        out["slow_decode"] = [[meta.decode(i), None] for i in out["slow"]]
        slow = None
    else:
        cls_name = req.get("class")
        init = req.get("init") or {}
        try:
            if cls_name:
                slow = getattr(transformers, cls_name).from_pretrained(req["folder"], **init)
            else:
                slow = transformers.AutoTokenizer.from_pretrained(req["folder"], use_fast=False,
                                                                  trust_remote_code=False,
                                                                  **init)
            out["class"] = type(slow).__name__
            out["slow"] = _ids(slow, texts)
        except Exception as e:  # reported, not raised: the test decides
            out["slow_error"] = f"{type(e).__name__}: {e}"
            slow = None
        if slow is not None and not req.get("truth_only"):
            try:
                from transformers.convert_slow_tokenizer import convert_slow_tokenizer

                fast_cls = getattr(transformers, type(slow).__name__ + "Fast", None)
                if fast_cls is not None:
                    fast = fast_cls.from_pretrained(req["folder"], from_slow=True, **init)
                else:
                    fast = transformers.PreTrainedTokenizerFast(
                        tokenizer_object=convert_slow_tokenizer(slow))
                out["fast"] = _ids(fast, texts)
                fast_tok = fast
            except Exception as e:
                out["fast_error"] = f"{type(e).__name__}: {e}"
    if req.get("ref"):
        ref = Tokenizer.from_file(req["ref"])
        out["ref"] = [ref.encode(t, add_special_tokens=True).ids for t in texts]
        fast_tok = transformers.PreTrainedTokenizerFast.from_pretrained(
            req["folder"], tokenizer_file=req["ref"])
    src = out.get("ref") or out.get("slow")
    if req.get("truth_only"):  # the ids only (the vocabulary proof's lines: many)
        json.dump(out, sys.stdout)
        return
    if slow is not None and src is not None:
        out["slow_decode"] = _decodes(slow, src)
    if fast_tok is not None and src is not None:
        out["fast_decode"] = _decodes(fast_tok, src)
    if req.get("ours"):
        ours = transformers.AutoTokenizer.from_pretrained(req["ours"], trust_remote_code=False)
        out["ours_class"] = type(ours).__name__
        out["ours"] = _ids(ours, texts)
        out["ours_decode"] = _decodes(ours, src if src is not None else out["ours"])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(3)
