"""Result records shared by the verbs (pydantic, so every report has a stable JSON form)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary units, as the summaries print sizes)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class Record(BaseModel):
    """A result modelport returns. ``print(report)`` gives the summary the CLI prints (a
    verb's own, else a line per field); in Jupyter it renders as an HTML table."""

    model_config = ConfigDict(extra="forbid")

    def summary(self) -> str:
        """The human summary (the CLI's output without ``--json``)."""
        lines = [type(self).__name__]
        for k, v in self:
            if isinstance(v, list):
                v = f"{len(v)} item(s)" if v and isinstance(v[0], BaseModel) else v
            elif isinstance(v, BaseModel):
                v = type(v).__name__
            lines.append(f"  {k}: {v}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """Jupyter's rendering: the summary's first line, then a table of the fields."""
        from html import escape

        from modelport._io.redact import redact

        head, *_ = self.summary().split("\n", 1)
        rows = []
        for k, v in self:
            if isinstance(v, list) and v and isinstance(v[0], BaseModel):
                text = f"{len(v)} item(s): " + "; ".join(
                    str(getattr(x, "path", None) or getattr(x, "name", None) or x)
                    for x in v[:8]) + (" ..." if len(v) > 8 else "")
            elif isinstance(v, BaseModel):
                text = v.summary() if isinstance(v, Record) else str(v)
            else:
                text = str(v)
            rows.append(f"<tr><th style='text-align:left'>{escape(k)}</th>"
                        f"<td style='text-align:left'><pre style='margin:0'>"
                        f"{escape(redact(text))}</pre></td></tr>")
        return (f"<div><b>{escape(redact(head))}</b><table>{''.join(rows)}</table></div>")


class FileRecord(Record):
    """A file written (or copied) into an output folder."""

    path: str  # relative to the output folder
    role: str  # weights, index, config, tokenizer, other
    size: int
    sha256: str
    tensors: int = 0


class SkippedItem(Record):
    """Something not carried into the output, and why."""

    name: str
    reason: str


def file_role(rel: str) -> str:
    """Classify a file of a model folder by its name."""
    name = rel.rsplit("/", 1)[-1]
    if name.endswith(".safetensors"):
        return "weights"
    if name.endswith(".index.json"):
        return "index"
    if name in ("tsfm_config.json",):
        return "tsfm"
    if name.startswith("tokenizer") or name in (
        "vocab.json", "vocab.txt", "merges.txt", "special_tokens_map.json", "added_tokens.json",
        "spiece.model", "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json",
    ):
        return "tokenizer"
    if name.endswith(".json"):
        return "config"
    return "other"


# the bundle's manifest file name (package writes it; quantize never carries one over)
MANIFEST = "modelport.manifest.json"

# what a model is served as, for the rules' ``applies_when.model_kind``: check and inspect
# both gate their tokenizer and tsfm findings on it
TIMESERIES_TYPES = frozenset({"tinytimemixer"})


def model_kind(model_type: str | None) -> Literal["general", "timeseries"]:
    return "timeseries" if model_type in TIMESERIES_TYPES else "general"
