"""The rules files: they validate, their schema file is current, and TARGETS.md is covered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelport.cli.main import cli
from modelport.package.rules import load_target, target_names
from tests.conftest import REAL

ROOT = Path(__file__).resolve().parents[2]
TARGETS_MD = REAL.parent / "TARGETS.md"
CATALOGUES = ["databricks-custom-gpu", "databricks-provisioned-throughput", "oci-genai",
              "watsonx-cpd-4.8", "watsonx-saas", "watsonx-software-hub-5.4-lightweight"]


def test_every_catalogue_has_a_valid_rules_file() -> None:
    assert target_names() == CATALOGUES
    for t in CATALOGUES:
        rules = load_target(t)
        assert rules.target == t
        assert all(c.sources for c in rules.checks)
        for src in rules.sources.values():
            assert src.url and src.retrieved


def test_shipped_schemas_are_current() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from gen_schemas import PKG, schemas

    for name, text in schemas().items():
        assert (PKG / name).read_text() == text, f"{name} is stale: run scripts/gen_schemas.py"


def _targets_md() -> str:
    if not TARGETS_MD.exists():
        pytest.skip("shared/TARGETS.md not available")
    return TARGETS_MD.read_text()


@pytest.mark.real  # reads ../shared/TARGETS.md
def test_watsonx_saas_table_rows_all_have_rules() -> None:
    text = _targets_md()
    table = text.split("Supported general-purpose architectures")[1].split("Quantization:")[0]
    rows = [r.split("|")[1:-1] for r in table.splitlines() if r.startswith("| ")][1:]
    rules = load_target("watsonx-saas")
    assert len(rows) == 25
    for cols in rows:
        model_type, _, quant, tp, sizes, specs = (c.strip() for c in cols)
        arch = rules.arch(model_type)
        assert arch is not None, f"TARGETS.md row {model_type} has no rule"
        assert arch.quantization == ([] if quant == "-" else [quant]), model_type
        assert arch.tensor_parallel == (tp == "yes"), model_type
        assert arch.sizes == sizes.split(","), model_type
        assert arch.specs == [f"caikit-{s.strip()}" for s in specs.split(",")], model_type
    assert rules.arch("tinytimemixer") is not None


@pytest.mark.real  # reads ../shared/TARGETS.md
@pytest.mark.parametrize(("target", "marker"), [
    ("watsonx-software-hub-5.4-lightweight", "Software Hub 5.4 lightweight engine:"),
    ("watsonx-cpd-4.8", "Cloud Pak for Data 4.8 (caikit-1.0):"),
])
def test_other_watsonx_catalogues_cover_their_lists(target: str, marker: str) -> None:
    text = _targets_md()
    listed = text.split(marker)[1].split("\n- ")[0].split("\n\n")[0]
    rules = load_target(target)
    for item in re.split(r",\s*(?![^()]*\))", listed.replace("\n", " ").strip().rstrip(".")):
        name = item.split("(")[0].strip()
        quant = re.findall(r"\((gptq|GPTQ|AWQ|awq)", item)
        arch = rules.arch(name)
        assert arch is not None, f"{target}: {name} has no rule"
        assert arch.quantization == [q.lower() for q in quant], name


@pytest.mark.real  # reads ../shared/TARGETS.md
@pytest.mark.parametrize(("target", "section"), [
    ("databricks", "## Databricks"), ("databricks-custom-gpu", "## Databricks"),
    ("oci-genai", "## OCI Generative AI")])
def test_expected_architectures_are_families(target: str, section: str) -> None:
    text = _targets_md().split(section)[1].split("\n## ")[0]
    block = text.split("Expected `architectures`")[1].split("\n- ")[0]
    names = set(re.findall(r"\b([A-Z][A-Za-z0-9]*(?:ForCausalLM|ForConditionalGeneration|Model))\b",
                           block))
    assert names
    covered = {a for f in load_target(target).families for a in f.architectures}
    assert names <= covered, f"{target}: no family for {sorted(names - covered)}"


def test_quantization_formats_are_data_and_shown() -> None:
    """What each runtime loads: TGI (watsonx) GPTQ v1 4/8-bit and AWQ GEMM 4-bit; vLLM (OCI)
    symmetric GPTQ v1 and AWQ GEMM 4-bit; the watsonx catalogues inherit the SaaS table."""
    from click.testing import CliRunner

    from modelport.cli.main import cli

    for t in ("watsonx-saas", "watsonx-cpd-4.8", "watsonx-software-hub-5.4-lightweight"):
        gptq = load_target(t).quant_format("gptq")
        assert gptq is not None and gptq.formats == ["gptq"] and 4 in gptq.bits
    oci = load_target("oci-genai")
    assert oci.quant_format("gptq").sym == [True]  # type: ignore[union-attr]
    assert oci.quant_format("awq").bits == [4]  # type: ignore[union-attr]
    assert load_target("databricks").quant_formats == []
    r = CliRunner().invoke(cli, ["targets", "show", "oci-genai"])
    assert r.exit_code == 0 and "awq: bits [4]" in r.output


def test_databricks_has_one_verdict_per_serving_path(tmp_path: Path) -> None:
    from modelport.package.check import check
    from tests.rules.folders import make_folder

    d = make_folder(tmp_path / "m", model_type="starcoder2",
                    architectures=["Starcoder2ForCausalLM"])
    pt = check(d, ["databricks"]).targets[0]  # the short name selects provisioned throughput
    assert pt.target == "databricks-provisioned-throughput"
    (f,) = [f for f in pt.findings if f.rule_id == "databricks.family.provisioned_throughput"]
    assert f.severity == "error" and "not eligible for provisioned throughput" in f.message
    gpu = check(d, ["databricks-custom-gpu"]).targets[0]
    assert not [f for f in gpu.findings if f.rule_id.endswith("provisioned_throughput")]
    (g,) = [f for f in gpu.findings if f.rule_id == "databricks.family.custom_gpu"]
    assert g.severity == "warning"
    r = CliRunner().invoke(cli, ["check", str(d), "--target", "databricks"])
    assert r.exit_code == 1 and "databricks-provisioned-throughput" in r.stdout


def test_a_source_that_is_not_a_platform_page_is_unconfirmed() -> None:
    """Only the platforms' own documentation is a rule; anything else a rules file cites
    (library code, a forum, modelport's policy, TARGETS.md's summaries) is marked unconfirmed,
    and a finding resting on such sources alone prints 'not in the platform documentation'."""
    pages = re.compile(r"https://(www\.ibm\.com/docs|cloud\.ibm\.com/docs|docs\.databricks\.com"
                       r"|docs\.oracle\.com)/")
    loose = [(t, k) for t in target_names() for k, s in load_target(t).sources.items()
             if not pages.match(s.url) and not s.unconfirmed]
    assert loose == []
