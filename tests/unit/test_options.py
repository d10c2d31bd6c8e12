"""Convert's options as the ecosystem spells them: max_shard_size (bytes or "5GB") in the API,
the CLI and Spark alike; the 0.1 name still works, with a DeprecationWarning."""

from __future__ import annotations

import pytest

from modelport.convert.options import ConvertOptions


def test_max_shard_size_takes_bytes_or_units() -> None:
    assert ConvertOptions(max_shard_size="2GB").max_shard_size == 2 * 10**9
    assert ConvertOptions(max_shard_size="512MiB").max_shard_size == 512 * 2**20
    assert ConvertOptions(max_shard_size=1000).max_shard_size == 1000
    assert ConvertOptions().max_shard_size == 5 * 10**9


def test_the_old_name_warns_and_still_works() -> None:
    with pytest.warns(DeprecationWarning, match="max_shard_size"):
        o = ConvertOptions(max_shard_bytes="300KB")
    assert o.max_shard_size == 300_000


def test_keyword_arguments_beside_options_are_validated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch
    from safetensors.torch import save_file

    import modelport

    d = tmp_path / "m"
    d.mkdir()
    save_file({f"w{i}": torch.ones(1000) for i in range(4)}, d / "model.safetensors",
              metadata={"format": "pt"})
    rep = modelport.convert(d, tmp_path / "o", ConvertOptions(), max_shard_size="5KB",
                            progress=False)
    assert sum(o.role == "weights" for o in rep.outputs) == 4
