"""Regenerate the JSON Schemas shipped in the package from their pydantic models."""

from __future__ import annotations

import json
from pathlib import Path

from modelport.package.check import CheckReport
from modelport.package.rules import json_schema

PKG = Path(__file__).resolve().parents[1] / "src" / "modelport" / "package"


def schemas() -> dict[str, str]:
    report = json.dumps(CheckReport.model_json_schema(), indent=2, sort_keys=True) + "\n"
    from modelport.package.manifest import schema as manifest_schema

    return {"targets.schema.json": json_schema(), "check-report.schema.json": report,
            "manifest.schema.json": manifest_schema()}


if __name__ == "__main__":
    for name, text in schemas().items():
        (PKG / name).write_text(text)
        print(f"wrote {PKG / name}")
