"""`neuroscope-tui concept fit` on a tiny model, the concept file (round trip, hostile files),
and `capture --concept` (its rows equal the projection computed offline from the snapshot)."""

from __future__ import annotations

import csv
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from neuroscope_tui.analysis.concept_tables import concepts_table
from neuroscope_tui.analysis.concepts import trace_projection
from neuroscope_tui.cli import main
from neuroscope_tui.concept_file import load_concept
from neuroscope_tui.errors import ConceptError, SnapshotError
from neuroscope_tui.snapshot import load_snapshot
from tests.tiny_models import build_tiny

POS = ["The cat sat on the mat.", "A cat looked at the dog.", "The quick brown fox.", "Paris."]
NEG = ["One two three four.", "Language models predict.", "Five six seven.", "Heads copy."]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny("llama", tmp_path_factory.mktemp("m") / "llama")


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("sets")
    (d / "pos.txt").write_text("\n".join(POS))
    (d / "neg.txt").write_text("\n".join(NEG))
    return str(d / "pos.txt"), str(d / "neg.txt")


@pytest.fixture(scope="module")
def fitted(tiny, sets, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("c") / "toy.safetensors"
    argv = ["concept", "fit", str(tiny), "--device", "cpu", "--set", sets[0], "--set", sets[1]]
    assert main([*argv, "--transfer", sets[0], "--transfer", sets[1], "-o", str(out)]) == 0
    return out


def fails(capsys, argv: list[str], words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("neuroscope-tui: ") and words in last and "Traceback" not in err


def test_fit_writes_a_file_that_loads_back(fitted, tiny, capsys):
    c = load_concept(fitted)
    assert c.name == "toy" and c.labels == ("pos", "neg") and c.manifest.position == "last"
    assert c.direction.shape == (2, 32) and c.midpoint.shape == (2,)
    np.testing.assert_allclose(np.linalg.norm(c.direction, axis=1), 1.0, atol=1e-5)
    assert [s.n for s in c.manifest.sets] == [4, 4]
    assert len(c.manifest.sets[0].sha256) == 64
    assert c.arrays["accuracy.transfer"].shape == c.arrays["auc.transfer"].shape == (2,)


def test_fit_json_lists_every_layer(tiny, sets, tmp_path, capsys):
    out = tmp_path / "c.safetensors"
    argv = ["concept", "fit", str(tiny), "--device", "cpu", "--set", sets[0], "--set", sets[1]]
    assert main([*argv, "-o", str(out), "--json", "--position", "mean"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["labels"] == ["pos", "neg"] and got["position"] == "mean"
    assert [r["layer"] for r in got["layers"]] == [0, 1]
    assert all(0.0 <= r["cv_accuracy"] <= 1.0 for r in got["layers"])


def test_bad_sets_are_one_sentence_before_loading(tiny, sets, tmp_path, capsys):
    base = ["concept", "fit", "no-such-model", "-o", str(tmp_path / "x.safetensors")]
    fails(capsys, [*base, "--set", sets[0]], "only the label")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    fails(capsys, [*base, "--set", sets[0], "--set", str(empty)], "only the label")
    other = tmp_path / "yes.txt"
    other.write_text("a b\nc d\n")
    fails(
        capsys,
        [
            *base,
            "--set",
            sets[0],
            "--set",
            sets[1],
            "--transfer",
            str(other),
            "--transfer",
            sets[1],
        ],
        "not one of the concept's labels",
    )


def test_capture_concept_rows_equal_the_offline_projection(tiny, fitted, tmp_path):
    snap = tmp_path / "run.nscope"
    argv = ["capture", str(tiny), "--device", "cpu", "--prompt", "The cat sat on"]
    assert main([*argv, "--max-new-tokens", "3", "--concept", str(fitted), "-o", str(snap)]) == 0
    trace = load_snapshot(snap)
    c = load_concept(fitted)
    live = trace.extras["concept.toy"]
    assert live.shape == (2, trace.n_tokens)
    full = trace.get("resid.full").astype(np.float64)  # [L, T, D]
    offline = np.einsum("ltd,ld->lt", full, c.direction.astype(np.float64)) - c.midpoint[:, None]
    np.testing.assert_allclose(live, offline, atol=1e-4)
    np.testing.assert_allclose(trace_projection(trace, c.direction, c.midpoint), live, atol=1e-6)
    assert trace.notes["concepts"][0]["labels"] == ["pos", "neg"]


def test_capture_refuses_a_concept_of_another_model(fitted, tmp_path, capsys):
    wide = build_tiny("llama", tmp_path / "wide", hidden_size=48)
    argv = ["capture", str(wide), "--device", "cpu", "--prompt", "The cat"]
    fails(capsys, [*argv, "--concept", str(fitted), "-o", str(tmp_path / "r.nscope")], "width 32")


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a concept file with its header JSON changed by `edit(header_dict)`."""
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    dst.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    return dst


def _manifest_edit(change):
    def edit(header):
        m = json.loads(header["__metadata__"]["neuroscope_concept"])
        change(m)
        header["__metadata__"]["neuroscope_concept"] = json.dumps(m)

    return edit


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_manifest_edit(lambda m: m.update(labels=["only"])), "damaged manifest"),
        (_manifest_edit(lambda m: m.update(position="first")), "damaged manifest"),
        (_manifest_edit(lambda m: m["model"].update(d_model=64)), "direction"),
        (_manifest_edit(lambda m: m["model"].update(n_layers="2")), "damaged manifest"),
        (_manifest_edit(lambda m: m.update(format="other")), "not a neuroscope concept"),
        (_manifest_edit(lambda m: m.update(version=99)), "newer"),
        (_manifest_edit(lambda m: m.update(best_layer=7)), "best layer"),
        (lambda h: h["direction"].update(dtype="F16"), "corrupted"),
        (lambda h: h.pop("__metadata__"), "not a neuroscope concept"),
    ],
)
def test_hostile_concept_files_are_one_sentence(fitted, tmp_path, edit, words):
    bad = _rewrite(fitted, tmp_path / "bad.safetensors", edit)
    with pytest.raises(ConceptError, match=words) as err:
        load_concept(bad)
    assert "\n" not in str(err.value)


def test_truncated_nan_and_missing_files(fitted, tmp_path):
    raw = fitted.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[:-8])
    with pytest.raises(ConceptError, match="truncated"):
        load_concept(cut)
    nan = tmp_path / "nan.safetensors"
    nan.write_bytes(raw[:-4] + np.array([np.nan], np.float32).tobytes())
    with pytest.raises(ConceptError, match="NaN"):
        load_concept(nan)
    with pytest.raises(ConceptError, match="no file"):
        load_concept(tmp_path / "missing.safetensors")
    (tmp_path / "text.safetensors").write_text("hello")
    with pytest.raises(ConceptError, match="not a"):
        load_concept(tmp_path / "text.safetensors")


def test_score_prints_the_projection_per_layer_and_token(tiny, fitted, capsys):
    import torch

    from tests.tiny_models import build_tokenizer

    argv = ["concept", "score", str(tiny), "--device", "cpu", "--concept", str(fitted)]
    assert main([*argv, "--prompt", "The cat sat", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    c = load_concept(fitted)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny)
    ids = build_tokenizer()("The cat sat")["input_ids"]
    with torch.no_grad():
        hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    want = hidden[1][0].double().numpy() @ c.direction[0].astype(np.float64) - c.midpoint[0]
    np.testing.assert_allclose(got["projection"][0], want, atol=1e-4)
    assert len(got["tokens"]) == len(ids) and got["labels"] == ["pos", "neg"]
    fails(capsys, [*argv, "--prompt", "  "], "prompt is empty")


def test_export_concepts_is_the_snapshots_concept_rows(tiny, fitted, tmp_path, capsys):
    snap = tmp_path / "run.nscope"
    argv = ["capture", str(tiny), "--device", "cpu", "--prompt", "The cat sat on"]
    assert main([*argv, "--max-new-tokens", "2", "--concept", str(fitted), "-o", str(snap)]) == 0
    trace = load_snapshot(snap)
    c = load_concept(fitted)
    full = trace.get("resid.full").astype(np.float64)
    offline = np.einsum("ltd,ld->lt", full, c.direction.astype(np.float64)) - c.midpoint[:, None]
    capsys.readouterr()
    assert main(["export", str(snap), "concepts"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == offline.size and {r["concept"] for r in rows} == {"toy"}
    for r in rows:
        want = offline[int(r["layer"]), int(r["token_index"])]
        assert abs(float(r["projection"]) - want) < 1e-4
    assert main(["export", str(snap), "concepts", "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert len(got["records"]) == len(rows) and got["records"][0]["concept"] == "toy"
    plain = tmp_path / "plain.nscope"
    assert main([*argv, "--max-new-tokens", "1", "-o", str(plain)]) == 0
    capsys.readouterr()
    fails(capsys, ["export", str(plain), "concepts"], "holds no concept rows")
    trace.extras["concept.flat\x1b"] = np.zeros(3, np.float32)
    with pytest.raises(SnapshotError, match=r"'flat\\x1b' are \[3\], not \[layer, token\]"):
        concepts_table(trace)
