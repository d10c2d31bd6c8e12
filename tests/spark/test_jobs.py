"""prepare_many on Spark (local mode) against a real S3 server: one row per model, a broken
model among them fails alone, with its reason."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelport
from modelport.package.localstore import LocalS3
from modelport.package.manifest import MANIFEST
from modelport.spark import RESULT_FIELDS, prepare_many
from tests.spark.conftest import broken_folder, llama_folder

pytestmark = [pytest.mark.s3, pytest.mark.spark]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    with LocalS3(tmp_path_factory.mktemp("weed"), bucket="models") as server:
        yield server


def test_prepare_many_rows_with_one_broken_model(spark, tmp_path: Path, s3: LocalS3) -> None:
    a = llama_folder(tmp_path / "a", seed=1)
    b = llama_folder(tmp_path / "b", seed=2)
    bad = broken_folder(tmp_path / "bad")
    jobs = spark.createDataFrame([(str(a), "s3://models/many/a"),
                                  (str(bad), str(tmp_path / "out-bad")),
                                  (str(b), str(tmp_path / "out-b"))],
                                 "source string, destination string")
    df = prepare_many(spark, jobs, "watsonx-saas", endpoint_url=s3.endpoint)
    assert df.columns == [n for n, _ in RESULT_FIELDS]
    rows = [r.asDict() for r in df.collect()]
    assert [r["source"] for r in rows] == [str(a), str(bad), str(b)]  # the jobs' order
    ok_a, broken, ok_b = rows
    why = [(r["error_class"], r["error_message"]) for r in rows]
    assert ok_a["ok"] and ok_b["ok"] and not broken["ok"], why
    assert broken["error_class"] == "CheckpointError"
    assert "pytorch_model-00002-of-00002.bin" in broken["error_message"]
    assert not (tmp_path / "out-bad").exists()  # nothing half-written
    # the local bundle is the one the row describes
    data = (tmp_path / "out-b" / MANIFEST).read_bytes()
    assert ok_b["manifest_sha256"] == hashlib.sha256(data).hexdigest()
    m = json.loads(data)
    assert ok_b["bytes"] == sum(f["size"] for f in m["files"]) and ok_b["files"] == len(m["files"])
    assert ok_b["checks"].startswith("watsonx-saas: ok")
    # the uploaded one verifies remotely, byte for byte, against its manifest
    from modelport.package.upload import UploadOptions

    assert modelport.verify("s3://models/many/a", UploadOptions(endpoint_url=s3.endpoint)).ok
    assert ok_a["seconds"] > 0 and ok_a["destination"] == "s3://models/many/a"
    assert not list(tmp_path.glob(".*modelport-work"))


def test_prepare_many_reads_sources_from_the_bucket(spark, tmp_path: Path, s3: LocalS3,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoint reaches s3:// sources as well as destinations (it used to go to AWS's
    default endpoint for the source and fail every row)."""
    import boto3

    a = llama_folder(tmp_path / "a", seed=3)
    c = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                     aws_secret_access_key=s3.secret_key, region_name="us-east-1")
    for p in sorted(a.iterdir()):
        c.upload_file(str(p), "models", f"src/a/{p.name}")
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    jobs = [("s3://models/src/a", "s3://models/from-bucket/a"),
            ("s3://models/src/a", str(tmp_path / "out-local"))]
    rows = [r.asDict() for r in prepare_many(spark, jobs, "watsonx-saas",
                                             endpoint_url=s3.endpoint).collect()]
    assert all(r["ok"] for r in rows), [(r["error_class"], r["error_message"]) for r in rows]
    from modelport.package.upload import UploadOptions

    assert modelport.verify("s3://models/from-bucket/a",
                            UploadOptions(endpoint_url=s3.endpoint)).ok
    assert rows[0]["bytes"] == rows[1]["bytes"] and rows[0]["files"] == rows[1]["files"]
    assert (tmp_path / "out-local" / "model.safetensors").is_file()


def test_check_errors_are_reported_as_verdicts(spark, tmp_path: Path) -> None:
    src = llama_folder(tmp_path / "m")
    cfg = json.loads((src / "config.json").read_text())
    cfg["model_type"] = "not-a-model"
    (src / "config.json").write_text(json.dumps(cfg))
    rows = prepare_many(spark, [{"source": str(src), "destination": str(tmp_path / "o")}],
                        ["watsonx-saas", "oci-genai"]).collect()
    (r,) = rows
    assert not r.ok and r.error_class == "TargetCheckFailed"
    assert "watsonx-saas:" in r.checks and "error(s)" in r.checks


def test_bad_arguments(spark) -> None:
    from modelport.errors import InputError

    with pytest.raises(InputError, match="unknown prepare option"):
        prepare_many(spark, [], "watsonx-saas", upload="x")
    assert prepare_many(spark, [], "watsonx-saas").count() == 0
    with pytest.raises(InputError, match="'source' and 'destination'"):
        prepare_many(spark, spark.createDataFrame([("a",)], "src string"))
