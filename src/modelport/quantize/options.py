"""Options of ``quantize`` (imports only pydantic, so ``--help`` never loads torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

BITS = {"gptq": (4, 8), "awq": (4,)}  # what our dequantizer, TGI and vLLM all read
GROUP_SIZES = (-1, 32, 64, 128, 256, 512, 1024)


class QuantizeOptions(BaseModel):
    """How ``quantize`` runs. Defaults are what the serving runtimes load: GPTQ v1 4-bit
    symmetric group 128 without act-order; AWQ GEMM 4-bit with zero points, group 128."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["gptq", "awq"] = "gptq"
    bits: int = Field(4, description="4 or 8 (GPTQ); 4 (AWQ)")
    group_size: int = Field(128, description="-1 (one group per row) or a power of two ≥ 32")
    desc_act: bool = Field(False, description="GPTQ act-order (TGI's exllama kernels and "
                           "vLLM load it more slowly; off by default)")
    sym: bool | None = Field(None, description="symmetric quantization; default True for "
                             "GPTQ (vLLM rejects asymmetric GPTQ), False for AWQ (zero point)")
    calibration: str = Field("builtin", description="'builtin' or a text / JSONL file")
    samples: int = Field(128, ge=1, description="calibration windows at most")
    seqlen: int = Field(512, ge=8, description="tokens per calibration window at most")
    target: str | None = Field(None, description="refuse what this target does not load, "
                               "then check the output for it")
    device: str = Field("auto", description="'auto' (cuda when present), 'cpu', 'cuda', "
                        "'cuda:N'")
    damp_percent: float = Field(0.05, gt=0, lt=1, description="GPTQ Hessian dampening")
    verify_logits: bool | None = Field(None, description="compare the logits of the "
                                       "dequantized output with the original (None: when the "
                                       "model has at most 3B parameters)")
    max_weight_error: float | None = Field(None, gt=0, description="refuse the output when "
                                           "the mean relative weight error passes this "
                                           "(default: 0.3 at 4 bits, 0.05 at 8)")
    max_logit_error: float | None = Field(None, gt=0, description="refuse the output when "
                                          "the relative logit error passes this (default 1.0)")
    memory_check: bool = Field(True, description="estimate the memory first and refuse "
                               "when it is not there")
    trust_remote_code: bool = Field(False, description="run the model folder's own code "
                                    "(auto_map) to load it; recorded in the report")
    overwrite: bool = False

    @model_validator(mode="after")
    def _valid(self) -> QuantizeOptions:
        if self.bits not in BITS[self.method]:
            raise ValueError(f"{self.method} supports bits {list(BITS[self.method])}, "
                             f"not {self.bits}")
        if self.group_size not in GROUP_SIZES:
            raise ValueError(f"group_size must be one of {list(GROUP_SIZES)}")
        if self.method == "awq" and self.desc_act:
            raise ValueError("desc_act is a GPTQ option")
        return self

    @property
    def symmetric(self) -> bool:
        return self.sym if self.sym is not None else self.method == "gptq"
