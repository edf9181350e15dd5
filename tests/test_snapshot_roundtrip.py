"""Snapshot files: round trip, atomic writes, every way a file can be bad, no torch needed."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from neuroscope_tui.errors import OutputPathError, SnapshotError
from neuroscope_tui.snapshot import (
    MANIFEST_KEY,
    SNAPSHOT_VERSION,
    check_output_path,
    load_snapshot,
    save_snapshot,
)
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace


def make_trace(n_layers: int = 3, n_tokens: int = 5, n_heads: int = 2, k: int = 4) -> Trace:
    """A Trace with arrays of every kind a run produces (values random but fixed)."""
    rng = np.random.default_rng(0)
    model = ModelInfo(
        name="tiny", architecture="LlamaForCausalLM", n_layers=n_layers, n_heads=n_heads,
        n_kv_heads=1, d_model=8, d_head=4, d_mlp=16, vocab_size=50, context_length=16,
    )  # fmt: skip
    spec = CaptureSpec(full_layers=(0, 2), pattern_heads=((1, 0),), top_k=k)
    trace = Trace(model=model, spec=spec, n_prompt=3, prompt="a b c")
    trace.append([1, 2, 3], ["a", " b", " c"], {})
    L, T, H = n_layers, n_tokens, n_heads
    trace.token_ids.extend([7, 8])
    trace.token_text.extend([" d", " é"])
    trace.arrays = {
        "resid.norm": rng.random((L, T), dtype=np.float32),
        "heads.entropy": rng.random((L, T, H), dtype=np.float32),
        "logits.top_ids": rng.integers(0, 50, (T, k)).astype(np.int32),
        "logits.top_probs": rng.random((T, k), dtype=np.float32),
        "lens.kl": np.where(rng.random((L, T)) > 0.5, np.nan, 1.0).astype(np.float32),
        "pattern.1.0": np.tril(rng.random((T, T), dtype=np.float32)),
        "resid.full": rng.standard_normal((2, T, 8)).astype(np.float32),
        "neurons.full": np.zeros((0, T, 16), dtype=np.float32),  # zero-size must survive
        "embed.norm": rng.random(T).astype(np.float64),
    }
    trace.extras = {
        "projection.pca": rng.standard_normal((T, 2)).astype(np.float32),
        "clusters.labels": np.arange(T, dtype=np.int64),
        "empty": np.zeros((0,), dtype=np.float32),
        "labels.text": np.array(["x", "yz", "ü"]),
    }
    trace.notes = {"truncated": 0, "seed": np.int64(3), "layers": (1, 2)}
    trace.finished = True
    trace.stop_reason = "length"
    return trace


def assert_same(a: Trace, b: Trace) -> None:
    assert a.model == b.model
    assert a.spec == b.spec
    assert a.token_ids == b.token_ids
    assert a.token_text == b.token_text
    assert (a.n_prompt, a.prompt, a.finished, a.stop_reason, a.version) == (
        b.n_prompt, b.prompt, b.finished, b.stop_reason, b.version,
    )  # fmt: skip
    assert set(a.arrays) == set(b.arrays)
    assert set(a.extras) == set(b.extras)
    for src, dst in ((a.arrays, b.arrays), (a.extras, b.extras)):
        for name, arr in src.items():
            got = dst[name]
            assert got.shape == arr.shape, name
            assert got.dtype == arr.dtype, name
            np.testing.assert_array_equal(got, arr, err_msg=name)


def test_round_trip_keeps_every_field_and_array(tmp_path: Path) -> None:
    trace = make_trace()
    out = save_snapshot(trace, tmp_path / "run.nscope")
    back = load_snapshot(out)
    assert_same(trace, back)
    assert back.notes == {"truncated": 0, "seed": 3, "layers": [1, 2]}
    assert back.summary()["arrays"]["neurons.full"]["shape"] == [0, 5, 16]
    assert sorted(os.listdir(tmp_path)) == ["run.nscope"]  # no temporary file left
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_file_is_plain_safetensors_with_json_manifest(tmp_path: Path) -> None:
    """What docs/snapshot-format.md promises: safetensors + json read it, names as documented."""
    from safetensors import safe_open

    trace = make_trace()
    out = save_snapshot(trace, tmp_path / "run.nscope")
    with safe_open(str(out), framework="np") as f:
        manifest = json.loads(f.metadata()[MANIFEST_KEY])
        keys = set(f.keys())
        np.testing.assert_array_equal(f.get_tensor("resid.norm"), trace.arrays["resid.norm"])
    assert manifest["version"] == SNAPSHOT_VERSION
    assert manifest["token_ids"] == [1, 2, 3, 7, 8]
    assert keys == set(trace.arrays) | {
        "extras/projection.pca", "extras/clusters.labels", "extras/empty",
    }  # fmt: skip
    assert manifest["text_extras"]["labels.text"]["values"] == ["x", "yz", "ü"]


def test_existing_file_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "run.nscope"
    out.write_bytes(b"precious")
    with pytest.raises(OutputPathError, match="already exists; pass --force"):
        save_snapshot(make_trace(), out)
    assert out.read_bytes() == b"precious"
    save_snapshot(make_trace(), out, force=True)
    assert load_snapshot(out).token_ids == [1, 2, 3, 7, 8]


@pytest.mark.parametrize(
    ("sub", "message"),
    [
        ("missing/run.nscope", "does not exist; create it first"),
        ("afile/run.nscope", "is not a folder"),
        (".", "is a folder"),
    ],
)
def test_unwritable_output_paths(tmp_path: Path, sub: str, message: str) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputPathError, match=message) as info:
        save_snapshot(make_trace(), tmp_path / sub)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores modes")
def test_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match="cannot write in the folder"):
            check_output_path(ro / "run.nscope")
    finally:
        ro.chmod(0o755)


def test_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    import neuroscope_tui.snapshot

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(neuroscope_tui.snapshot, "write_safetensors", broken)
    out = tmp_path / "run.nscope"
    with pytest.raises(OutputPathError, match="No space left on device"):
        save_snapshot(make_trace(), out)
    assert os.listdir(tmp_path) == []


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="there is no file"):
        load_snapshot(tmp_path / "nope.nscope")


@pytest.mark.parametrize("cut", [1, 100, 2000, "header", "length"])
def test_truncated_snapshot(tmp_path: Path, cut) -> None:
    out = save_snapshot(make_trace(), tmp_path / "run.nscope")
    data = out.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    keep = {"header": 8 + n // 2, "length": 5}.get(cut)
    out.write_bytes(data[:keep] if keep is not None else data[:-cut])
    with pytest.raises(SnapshotError, match=r"truncated|too short") as info:
        load_snapshot(out)
    assert "\n" not in str(info.value)


def test_corrupted_tensor_table(tmp_path: Path) -> None:
    """Offsets that overlap or point past the data are caught (by us or by safetensors)."""
    out = save_snapshot(make_trace(), tmp_path / "run.nscope")
    data = out.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["resid.norm"]["data_offsets"][1] += 4  # its size no longer matches its shape
    raw = json.dumps(header).encode()
    out.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :] + b"\0" * 4)
    with pytest.raises(SnapshotError, match="corrupted"):
        load_snapshot(out)


@pytest.mark.parametrize(
    "content", [b"", b"hello, I am a text file\n", b"PK\x03\x04" + b"\0" * 100, bytes(range(256))]
)
def test_not_a_snapshot(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_bytes(content)
    with pytest.raises(SnapshotError, match="is not a snapshot"):
        load_snapshot(bad)


def test_safetensors_without_manifest(tmp_path: Path) -> None:
    plain = tmp_path / "weights.safetensors"
    save_file({"w": np.ones((2, 2), np.float32)}, str(plain), metadata={"format": "np"})
    with pytest.raises(SnapshotError, match="is a safetensors file but not a neuroscope snapshot"):
        load_snapshot(plain)


def _rewrite_manifest(path: Path, change) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        manifest = json.loads(f.metadata()[MANIFEST_KEY])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    change(manifest)
    save_file(tensors, str(path), metadata={MANIFEST_KEY: json.dumps(manifest)})


def test_newer_version_is_refused(tmp_path: Path) -> None:
    out = save_snapshot(make_trace(), tmp_path / "run.nscope")
    _rewrite_manifest(out, lambda m: m.update(version=3))
    newer = r"newer neuroscope-tui \(format 3, this reads up to 1\)"
    with pytest.raises(SnapshotError, match=newer):
        load_snapshot(out)


def test_manifest_naming_a_missing_array(tmp_path: Path) -> None:
    out = save_snapshot(make_trace(), tmp_path / "run.nscope")
    _rewrite_manifest(out, lambda m: m["arrays"].append("resid.ghost"))
    with pytest.raises(SnapshotError, match=r"lacks the arrays resid\.ghost"):
        load_snapshot(out)


def test_loading_does_not_import_torch(tmp_path: Path) -> None:
    out = save_snapshot(make_trace(), tmp_path / "run.nscope")
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from neuroscope_tui.snapshot import load_snapshot, save_snapshot\n"
        f"t = load_snapshot({str(out)!r})\n"
        f"save_snapshot(t, {str(tmp_path / 'again.nscope')!r})\n"
        "print(t.n_tokens, sorted(t.arrays)[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["5", "embed.norm"]


def test_empty_trace_round_trips(tmp_path: Path) -> None:
    """A run cancelled before its first step still saves and loads (no tensors at all)."""
    empty = Trace(model=ModelInfo(name="x"), prompt="hi", stop_reason="cancelled")
    back = load_snapshot(save_snapshot(empty, tmp_path / "empty.nscope"))
    assert_same(empty, back)
    assert back.arrays == {} and back.extras == {}
