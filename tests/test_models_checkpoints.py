"""Drift's inputs: names resolved and ordered, shapes checked from files only (no torch)."""

from __future__ import annotations

import json

import pytest

from neuroscope_tui.errors import ModelNotFoundError, UsageError
from neuroscope_tui.models.checkpoints import (
    NoWeightFiles,
    check_compatible,
    resolve_checkpoints,
    shape_from_config,
    weight_files,
)

LLAMA = {
    "model_type": "llama",
    "num_hidden_layers": 4,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 64,
    "vocab_size": 160,
}


def model_folder(path, **changes):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({**LLAMA, **changes}))
    return path


def test_trainer_folder_is_ordered_by_step(tmp_path):
    base = model_folder(tmp_path / "base")
    run = tmp_path / "run"
    for step in (10, 2, 100):
        model_folder(run / f"checkpoint-{step}")
    (run / "logs").mkdir()
    (run / "checkpoint-x").mkdir()
    got = resolve_checkpoints(str(base), [str(run)])
    assert [c.label for c in got] == ["base", "checkpoint-2", "checkpoint-10", "checkpoint-100"]
    assert [c.step for c in got[1:]] == [2, 10, 100]
    assert got[0].name == str(base) and got[1].name == str(run / "checkpoint-2")
    assert all(c.kind == "model" for c in got)


def test_plain_model_folders_keep_the_order_given_and_unique_labels(tmp_path):
    base = model_folder(tmp_path / "base")
    a = model_folder(tmp_path / "one" / "final")
    b = model_folder(tmp_path / "two" / "final")
    got = resolve_checkpoints(str(base), [str(b), str(a)])
    assert [c.name for c in got[1:]] == [str(b), str(a)]
    assert [c.label for c in got[1:]] == ["final", "final (2)"]


def test_bad_inputs_are_one_sentence(tmp_path):
    base = model_folder(tmp_path / "base")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no config\.json.*no checkpoint-\* folders"):
        resolve_checkpoints(str(base), [str(empty)])
    with pytest.raises(ModelNotFoundError, match="there is no file or folder"):
        resolve_checkpoints(str(base), [str(tmp_path / "missing")])
    with pytest.raises(UsageError, match="at least one checkpoint"):
        resolve_checkpoints(str(base), [])
    run = tmp_path / "run"
    model_folder(run / "checkpoint-1")
    model_folder(run / "checkpoint-2")
    with pytest.raises(UsageError, match="the base must be one model"):
        resolve_checkpoints(str(run), [str(base)])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"hidden_size": 64}, "width (hidden size) is 64, the base's is 32"),
        ({"num_hidden_layers": 6}, "number of layers is 6"),
        ({"num_attention_heads": 8}, "number of attention heads is 8"),
        ({"vocab_size": 200}, "vocabulary size is 200"),
        ({"model_type": "mistral"}, "architecture is mistral, the base's is llama"),
    ],
)
def test_incompatible_shapes_are_refused_with_the_reason(tmp_path, change, words):
    base = model_folder(tmp_path / "base")
    other = model_folder(tmp_path / "other", **change)
    ckpts = resolve_checkpoints(str(base), [str(other)])
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        check_compatible(ckpts)


def test_same_shapes_pass_and_gpt2_defaults_are_understood(tmp_path):
    base = model_folder(tmp_path / "base")
    other = model_folder(tmp_path / "other")
    assert check_compatible(resolve_checkpoints(str(base), [str(other)]))["d_model"] == 32
    gpt2 = shape_from_config({"model_type": "gpt2", "n_layer": 2, "n_embd": 32, "n_head": 4})
    assert gpt2["d_mlp"] == 128 and gpt2["n_kv_heads"] == 4 and gpt2["n_layers"] == 2


def test_snapshot_input_is_read_from_its_manifest(tmp_path):
    from neuroscope_tui.snapshot import save_snapshot
    from neuroscope_tui.trace import ModelInfo, Trace

    base = model_folder(tmp_path / "base")
    trace = Trace(
        model=ModelInfo(
            name="x", architecture="llama", n_layers=4, n_heads=4, n_kv_heads=2, d_model=48,
            d_mlp=64, vocab_size=160,
        )
    )  # fmt: skip
    snap = tmp_path / "run.nscope"
    save_snapshot(trace, snap)
    got = resolve_checkpoints(str(base), [str(snap)])
    assert got[1].kind == "snapshot"
    with pytest.raises(UsageError, match="width \\(hidden size\\) is 48"):
        check_compatible(got)


def test_weight_files_of_folders(tmp_path):
    one = model_folder(tmp_path / "one")
    (one / "model.safetensors").write_bytes(b"")
    assert weight_files(str(one)) == [one / "model.safetensors"]
    sharded = model_folder(tmp_path / "sharded")
    index = {"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    (sharded / "model-1.safetensors").write_bytes(b"")
    with pytest.raises(NoWeightFiles, match=r"lacks the shard model-2\.safetensors"):
        weight_files(str(sharded))
    (sharded / "model-2.safetensors").write_bytes(b"")
    assert len(weight_files(str(sharded))) == 2
    pickled = model_folder(tmp_path / "pickled")
    (pickled / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(NoWeightFiles, match="pickle"):
        weight_files(str(pickled))


def test_resolving_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from neuroscope_tui.models.checkpoints import resolve_checkpoints, check_compatible\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_run_folder_with_its_final_model(tmp_path):
    base = model_folder(tmp_path / "base")
    run = model_folder(tmp_path / "run")  # trainer.save_model() beside the checkpoints
    for step in (20, 5):
        model_folder(run / f"checkpoint-{step}")
    got = resolve_checkpoints(str(base), [str(run)])
    assert [c.label for c in got] == ["base", "checkpoint-5", "checkpoint-20", "run (final)"]
    assert got[-1].name == str(run) and got[-1].step is None
    # as the base, the run folder is its final model
    got = resolve_checkpoints(str(run), [str(run / "checkpoint-5")])
    assert [(c.label, c.name) for c in got] == [
        ("base", str(run)),
        ("checkpoint-5", str(run / "checkpoint-5")),
    ]
