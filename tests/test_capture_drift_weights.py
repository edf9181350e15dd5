"""Weight change streamed from safetensors files: per block, per module, and what cannot be
compared is said, never counted as zero."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from neuroscope_tui.capture.drift_weights import block_of, module_of, weight_change
from neuroscope_tui.models.checkpoints import NoWeightFiles, weight_files


def tensors(seed: int = 0, dtype=torch.float32) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "model.embed_tokens.weight": torch.randn(10, 4, generator=gen, dtype=dtype),
        "model.layers.0.mlp.up_proj.weight": torch.randn(8, 4, generator=gen, dtype=dtype),
        "model.layers.0.mlp.up_proj.bias": torch.randn(8, generator=gen, dtype=dtype),
        "model.layers.1.mlp.up_proj.weight": torch.randn(8, 4, generator=gen, dtype=dtype),
        "model.norm.weight": torch.ones(4, dtype=dtype),
    }


def save(path, items):
    save_file({k: v.contiguous() for k, v in items.items()}, str(path))
    return [path]


def test_block_and_module_from_names():
    assert block_of("model.layers.12.self_attn.q_proj.weight") == 12
    assert block_of("transformer.h.3.attn.c_attn.weight") == 3
    assert block_of("gpt_neox.layers.2.mlp.dense_h_to_4h.bias") == 2
    assert block_of("model.decoder.layers.1.fc1.weight") == 1
    assert block_of("model.embed_tokens.weight") is None
    assert block_of("lm_head.weight") is None
    assert module_of("model.layers.0.mlp.up_proj.bias") == "model.layers.0.mlp.up_proj"


def test_relative_frobenius_per_block_and_module(tmp_path):
    base = tensors()
    ckpt = {k: v.clone() for k, v in base.items()}
    ckpt["model.layers.0.mlp.up_proj.weight"] += 0.5
    ckpt["model.layers.0.mlp.up_proj.bias"] -= 0.25
    files = save(tmp_path / "c.safetensors", ckpt)
    ref = save(tmp_path / "b.safetensors", base)
    (change,) = weight_change(files, [ref], n_layers=2)
    w, b = base["model.layers.0.mlp.up_proj.weight"], base["model.layers.0.mlp.up_proj.bias"]
    expected = np.sqrt((0.25 * w.numel() + 0.0625 * b.numel()) / float((w**2).sum() + (b**2).sum()))
    assert change.blocks[0] == pytest.approx(expected, rel=1e-6)
    assert change.blocks[1] == 0.0
    assert change.modules["model.layers.0.mlp.up_proj"] == pytest.approx(expected, rel=1e-6)
    assert change.modules["model.embed_tokens"] == 0.0 and change.modules["model.norm"] == 0.0
    assert change.problems == []


def test_bfloat16_and_several_references(tmp_path):
    base = tensors(dtype=torch.bfloat16)
    ckpt = {k: v.clone() for k, v in base.items()}
    ckpt["model.layers.1.mlp.up_proj.weight"] *= 2
    files = save(tmp_path / "c.safetensors", ckpt)
    same, base_files = weight_change(files, [files, save(tmp_path / "b.safetensors", base)], 2)
    assert np.all(same.blocks == 0.0)
    assert base_files.blocks[1] == pytest.approx(1.0, rel=1e-6) and base_files.blocks[0] == 0.0


def test_what_cannot_be_compared_is_named_and_not_zero(tmp_path):
    base = tensors()
    ckpt = {k: v.clone() for k, v in base.items()}
    ckpt["model.layers.1.mlp.extra.weight"] = torch.zeros(2)
    del ckpt["model.norm.weight"]
    ckpt["model.layers.0.mlp.up_proj.bias"] = torch.zeros(9)
    files = save(tmp_path / "c.safetensors", ckpt)
    (change,) = weight_change(files, [save(tmp_path / "b.safetensors", base)], 2)
    assert np.isnan(change.blocks).all()  # both blocks hold a tensor that was not compared
    assert np.isnan(change.modules["model.layers.0.mlp.up_proj"])
    assert np.isnan(change.modules["model.norm"])
    text = " ".join(change.problems)
    assert "model.layers.1.mlp.extra.weight is not in the reference" in text
    assert "model.norm.weight is only in the reference" in text
    assert "(9,) here, (8,) there" in text


def test_unrelated_names_are_refused(tmp_path):
    base = save(tmp_path / "b.safetensors", tensors())
    other = save(tmp_path / "c.safetensors", {"token_embd.weight": torch.zeros(3)})
    with pytest.raises(NoWeightFiles, match="do not match"):
        weight_change(other, [base], 2)
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(NoWeightFiles, match="not a usable safetensors file"):
        weight_change([tmp_path / "bad.safetensors"], [base], 2)


def test_a_gguf_without_its_cache_has_no_weights_to_stream(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(NoWeightFiles, match="no dequantized safetensors cache"):
        weight_files(str(gguf))


def test_the_reader_gives_what_safetensors_gives(tmp_path):
    from safetensors import safe_open

    from neuroscope_tui.capture.weight_reader import WeightFile

    items = {**tensors(dtype=torch.bfloat16), "ids": torch.arange(5), "empty": torch.zeros(0, 3)}
    (path,) = save(tmp_path / "w.safetensors", items)
    with WeightFile(path) as mine, safe_open(str(path), framework="pt") as theirs:
        assert sorted(mine.keys()) == sorted(theirs.keys())
        for name in theirs.keys():  # noqa: SIM118
            got, want = mine.get_tensor(name), theirs.get_tensor(name)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert torch.equal(got, want)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', "does not fit"),
        (b'{"a": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}}', "cannot read"),
        (b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', "does not fit"),
        (b"[1, 2]", "not a JSON object"),
        (b"{nope", "not JSON"),
    ],
)
def test_the_reader_refuses_bad_headers(tmp_path, header, why):
    import struct

    from neuroscope_tui.capture.weight_reader import WeightFile

    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    with pytest.raises(NoWeightFiles, match=why):
        WeightFile(path)
