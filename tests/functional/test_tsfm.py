"""tsfm-config: the file IBM's writer produces, every field, checked by IBM's own loader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import modelport
from modelport.cli.main import cli
from modelport.errors import OutputExistsError, UnsupportedError
from tests.conftest import real_path


def _ttm(tmp_path: Path, context: int = 64, prediction: int = 16) -> tuple[Path, object]:
    from tsfm_public.models.tinytimemixer import (
        TinyTimeMixerConfig,
        TinyTimeMixerForPrediction,
    )

    cfg = TinyTimeMixerConfig(context_length=context, prediction_length=prediction,
                              num_input_channels=2, d_model=16, patch_length=8, patch_stride=8)
    model = TinyTimeMixerForPrediction(cfg)
    model.save_pretrained(tmp_path / "hf")
    return tmp_path / "hf", model


def test_same_as_ibm_writer_plus_every_field(tmp_path: Path) -> None:
    from tsfm_public.toolkit.service_util import save_deployment_package
    from tsfm_public.toolkit.tsfm_config import TSFMConfig

    folder, model = _ttm(tmp_path)
    save_deployment_package(tmp_path / "ibm", model)
    ibm = json.loads((tmp_path / "ibm" / "tsfm_config.json").read_text())
    rep = modelport.tsfm_config(folder)
    ours = json.loads((folder / "tsfm_config.json").read_text())
    assert rep.written and rep.ok
    assert {k: ours[k] for k in ibm} == ibm  # every key IBM writes, same value
    assert ours["service_handler_module_path"] == "tsfminference.tsfm_service_handler"
    assert ours["service_handler_class_name"] == "TinyTimeMixerForecastingHandler"
    for key in ("multivariate_support", "missing_value_support", "exogenous_support",
                "is_finetuned", "inference_batch_size"):
        assert key in ours
    loaded = TSFMConfig.from_pretrained(folder)  # what the runtime's loader reads
    assert loaded.maximum_context_length == loaded.minimum_context_length == 64
    assert loaded.maximum_prediction_length == 16
    assert loaded.inference_handler_class_name == "TinyTimeMixerForecastingInferenceHandler"
    assert loaded.is_finetuned is False and loaded.inference_batch_size == 16


def test_finetuned_follows_preprocessor_and_overrides(tmp_path: Path) -> None:
    folder, _ = _ttm(tmp_path, context=512, prediction=96)
    (folder / "preprocessor_config.json").write_text("{}")
    rep = modelport.tsfm_config(folder, maximum_prediction_length=48, inference_batch_size=4,
                                exogenous_support=True)
    c = rep.config
    assert c["is_finetuned"] is True and c["maximum_prediction_length"] == 48
    assert c["inference_batch_size"] == 4 and c["exogenous_support"] is True
    with pytest.raises(OutputExistsError):
        modelport.tsfm_config(folder)
    with pytest.raises(modelport.errors.InputError, match="exceeds"):
        modelport.tsfm_config(folder, maximum_prediction_length=200, overwrite=True)


@pytest.mark.parametrize(("edit", "key"), [
    ({"inference_handler_module_path": "os.system"}, "inference_handler_module_path"),
    ({"inference_handler_class_name": "Forecaster"}, "inference_handler_class_name"),
    ({"maximum_context_length": 1024}, "maximum_context_length"),
    ({"maximum_prediction_length": 500}, "maximum_prediction_length"),
    ({"is_finetuned": True}, "is_finetuned"),
    ({"model_type": "patchtst"}, "model_type"),
])
def test_check_reports_each_finding(tmp_path: Path, edit: dict, key: str) -> None:
    folder, _ = _ttm(tmp_path)
    modelport.tsfm_config(folder)
    assert modelport.tsfm_config(folder, check_only=True).ok
    p = folder / "tsfm_config.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), **edit}))
    rep = modelport.tsfm_config(folder, check_only=True)
    assert not rep.ok and key in {f.key for f in rep.findings}
    r = CliRunner().invoke(cli, ["tsfm-config", str(folder), "--check"])
    assert r.exit_code == 1 and key in r.stdout


@pytest.mark.real
def test_real_ttm_r2_config(tmp_path: Path) -> None:
    src = real_path("ttm", "granite_ttm_cl512_fl96")
    shutil.copytree(src, tmp_path / "m")
    r = CliRunner().invoke(cli, ["tsfm-config", str(tmp_path / "m"), "--json"])
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["config"]
    assert (c["minimum_context_length"], c["maximum_context_length"],
            c["maximum_prediction_length"]) == (512, 512, 96)


def test_other_model_types_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(UnsupportedError, match="only applies to time-series"):
        modelport.tsfm_config(tmp_path)
    r = CliRunner().invoke(cli, ["tsfm-config", str(tmp_path)])
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert not (tmp_path / "tsfm_config.json").exists()


def test_inspect_and_check_agree_on_a_ttm_folder(tmp_path: Path) -> None:
    d, _ = _ttm(tmp_path)
    (d / "tsfm_config.json").unlink(missing_ok=True)
    msgs = [p.message for p in modelport.inspect(d).problems]
    assert not [m for m in msgs if "tokenizer.json" in m]  # a TTM needs no tokenizer
    assert [m for m in msgs if "tsfm_config.json" in m]
    rep = modelport.check(d, ["watsonx-saas"])
    ids = {f.rule_id for t in rep.targets for f in t.findings}
    assert "watsonx.tokenizer.json" not in ids and "watsonx.tsfm.config" in ids
