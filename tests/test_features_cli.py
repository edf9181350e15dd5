"""`capture --attribution [--foil]` and `export FILE projection|clusters|attribution` end to end
on a tiny model saved to a folder (loaded through the real loading code)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from neuroscope_tui.analysis.projection import activations
from neuroscope_tui.cli import main
from neuroscope_tui.snapshot import load_snapshot
from tiny_models import build_tiny


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny("llama", tmp_path_factory.mktemp("m") / "llama")


def capture(tiny, out, *extra: str) -> int:
    argv = ["capture", str(tiny), "--prompt", "The cat sat on the mat", "-o", str(out)]
    return main([*argv, "--max-new-tokens", "3", "--device", "cpu", *extra])


def test_capture_with_attribution_and_foil_then_export(tiny, tmp_path, capsys) -> None:
    out = tmp_path / "run.nscope"
    assert capture(tiny, out, "--attribution", "--foil", "dog") == 0
    trace = load_snapshot(out)
    note = trace.notes["attribution"]
    n_in = trace.n_tokens - 1
    assert note["target_id"] == trace.token_ids[-1] and note["n_inputs"] == n_in
    assert note["foil_text"] is not None
    assert trace.extras["attribution.occlusion"].shape == (n_in,)
    assert note["methods"]["integrated_gradients"]["relative_gap"] <= 0.05
    capsys.readouterr()
    assert main(["export", str(out), "attribution"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 3 * n_in
    occ = [float(r["score"]) for r in rows if r["method"] == "occlusion"]
    np.testing.assert_allclose(occ, trace.extras["attribution.occlusion"], rtol=1e-6)


def test_export_projection_and_clusters_from_a_plain_capture(tiny, tmp_path, capsys) -> None:
    out = tmp_path / "plain.nscope"
    assert capture(tiny, out) == 0
    trace = load_snapshot(out)
    capsys.readouterr()
    assert main(["export", str(out), "projection"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == trace.n_layers * trace.n_tokens
    layer0 = np.array([[float(r[c]) for c in "xyz"] for r in rows if r["layer"] == "0"])
    x = activations(trace, 0).astype(np.float64)
    xc = x - x.mean(0)
    # PCA coordinates: their variances are the top eigenvalues of the covariance.
    eig = np.sort(np.linalg.eigvalsh(xc.T @ xc))[::-1][:3]
    np.testing.assert_allclose((layer0**2).sum(0), eig, rtol=1e-3)
    assert main(["export", str(out), "clusters"]) == 0
    assert "cluster" in capsys.readouterr().out.splitlines()[0]
    assert main(["export", str(out), "attribution"]) == 2  # none captured: one sentence
    assert "--attribution" in capsys.readouterr().err


def test_foil_without_attribution_is_a_usage_error(tiny, tmp_path, capsys) -> None:
    assert capture(tiny, tmp_path / "x.nscope", "--foil", "dog") == 2
    assert "--foil" in capsys.readouterr().err
