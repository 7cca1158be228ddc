"""The architecture data file and its loader."""

from __future__ import annotations

import pytest

from ttclab.errors import DataError
from ttclab.ledger.models import load_architectures, normalise_name


def test_embedded_models_match_their_configs():
    table = load_architectures()
    smol = table.get("smollm2-135m")
    assert (smol.n_layers, smol.hidden_size, smol.n_heads, smol.n_kv_heads, smol.head_dim) == (30, 576, 9, 3, 64)
    gemma = table.get("gemma3-270m")
    assert (gemma.n_layers, gemma.hidden_size, gemma.n_heads, gemma.n_kv_heads, gemma.head_dim) == (18, 640, 4, 1, 256)
    assert 260e6 < gemma.n_params < 275e6 and gemma.n_local_layers == 15 and gemma.sliding_window == 512


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Qwen/Qwen2.5-Math-7B-Instruct", "qwen2.5-math-7b"),
        ("Qwen2.5-Math-RM-72B", "qwen2.5-math-rm-72b"),
        ("/models/SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m"),
        ("gemma-3-270m-q4_k_m.gguf", "gemma3-270m"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("Qwen/Qwen2-0.5B", "qwen2-0.5b"),
        ("llama-3.2-3b", "llama-3.2-3b"),
    ],
)
def test_lookup_resolves_hub_ids_and_files(name, expected):
    assert load_architectures().get(name).name == expected


def test_every_builtin_model_is_consistent():
    table = load_architectures()
    assert len(table.models) >= 15
    for arch in table.models.values():
        assert arch.n_params > 1e8 and arch.context >= 4096
        # attention width equals hidden size for these models except Gemma 3 (head_dim 256 x 4 heads)
        assert arch.attn_width == arch.hidden_size or arch.name.startswith("gemma")
        assert arch.n_heads % arch.n_kv_heads == 0


def test_unknown_model_is_one_line_data_error():
    with pytest.raises(DataError) as err:
        load_architectures().get("gpt-5-mini")
    assert "gpt-5-mini" in str(err.value) and "\n" not in str(err.value)


def test_bad_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  m: {n_params: 10, n_layers: 2}\n")
    with pytest.raises(DataError, match="missing field 'hidden_size'"):
        load_architectures(bad)
    bad.write_text(
        "models:\n  m: {n_params: -1, n_layers: 1, hidden_size: 1, n_heads: 1, n_kv_heads: 1, head_dim: 1, context: 1}\n"
    )
    with pytest.raises(DataError, match="n_params"):
        load_architectures(bad)
    with pytest.raises(DataError, match="not found"):
        load_architectures("no-such-file")


def test_overrides_add_and_replace():
    table = load_architectures().with_overrides(
        {
            "smollm2-135m": {"n_params": 2e8},
            "brand-new": {
                "n_params": 1e9,
                "n_layers": 2,
                "hidden_size": 8,
                "n_heads": 2,
                "n_kv_heads": 1,
                "head_dim": 4,
                "context": 64,
            },
        }
    )
    assert table.get("SmolLM2-135M-Instruct").n_params == 2e8
    assert table.get("SmolLM2-135M-Instruct").n_layers == 30
    assert table.get("brand-new").n_layers == 2


def test_normalise_name():
    assert normalise_name("Org/Model-7B.Q8_0.gguf") == "model-7b"
