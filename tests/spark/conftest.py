"""Spark in local mode (2 cores, up to 3 attempts per task) for the tests of modelport.spark."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.package.localstore import LocalS3
from tests.conftest import VOCAB, save_bin, tiny_model


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from modelport.spark.session import find_java

    home = find_java()  # JAVA_HOME, java on PATH, or a JVM under /usr/lib/jvm (else it says)
    with pytest.MonkeyPatch.context() as mp:  # every variable set here is restored after
        if home is not None:
            mp.setenv("JAVA_HOME", str(home))
        mp.setenv("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter
        # the Python workers inherit the JVM's environment, fixed when it starts: the
        # credentials of the tests' LocalS3 servers (one fixed key pair), as
        # spark.executorEnv would give them
        mp.setenv("AWS_ACCESS_KEY_ID", LocalS3.access_key)
        mp.setenv("AWS_SECRET_ACCESS_KEY", LocalS3.secret_key)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
        # workers import the tests' own helpers (a fault to inject) by the names pytest gave
        tests = Path(__file__).resolve().parents[1]
        mp.setenv("PYTHONPATH", os.pathsep.join(
            [str(tests.parent), str(tests), *filter(None, [os.environ.get("PYTHONPATH")])]))
        from pyspark.sql import SparkSession

        s = (SparkSession.builder.master("local[2,3]").appName("modelport-tests")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
             .config("spark.python.worker.reuse", "true").getOrCreate())
        s.sparkContext.setLogLevel("ERROR")
        yield s
        s.stop()


def write_wordlevel_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"t{i}": i for i in range(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))


def llama_folder(folder: Path, shards: int = 2, seed: int = 0) -> Path:
    """A pickled llama checkpoint in ``shards`` .bin files with config and tokenizer.json."""
    model = tiny_model("llama", seed=seed)
    model.config.architectures = ["LlamaForCausalLM"]
    model.config.save_pretrained(folder)
    save_bin({k: v.contiguous() for k, v in model.state_dict().items()}, folder, shards=shards)
    write_wordlevel_tokenizer(folder)
    return folder


def broken_folder(folder: Path) -> Path:
    """A checkpoint whose second shard was cut short by a failed copy."""
    llama_folder(folder)
    shard = folder / "pytorch_model-00002-of-00002.bin"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    return folder


__all__ = ["broken_folder", "llama_folder"]
