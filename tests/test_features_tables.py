"""Projection, cluster and attribution extras: names, staleness, export tables, snapshots."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from neuroscope_tui.analysis import feature_tables as F
from neuroscope_tui.analysis.clusters import kmeans
from neuroscope_tui.analysis.exports import EXPORTS, table_function
from neuroscope_tui.analysis.projection import pca
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace


def blob_trace(t: int = 12, d: int = 16) -> Trace:
    """Two layers of full residual vectors: three well-separated groups of tokens."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, d)) * 20
    groups = np.arange(t) % 3
    full = np.stack([centres[groups] + rng.normal(size=(t, d)) for _ in range(2)])
    trace = Trace(ModelInfo(name="blobs", n_layers=2, d_model=d), CaptureSpec(full_layers=None))
    trace.append(list(range(t)), [f"w{i}" for i in range(t)], {"resid.full": full.astype("f4")})
    trace.n_prompt = t
    return trace


def test_names_round_trip() -> None:
    name = F.feature_name("projection", "tsne", 7, "neurons")
    assert name == "projection.tsne.L7.neurons"
    assert F.parse_name(name) == ("projection", "tsne", 7, "neurons")
    assert F.parse_name("clusters.kmeans.L0") == ("clusters", "kmeans", 0, "resid")
    assert F.parse_name("attribution.occlusion") is None


def test_exports_are_registered() -> None:
    for view in ("projection", "clusters", "attribution"):
        assert view in EXPORTS and callable(table_function(view))


def test_projection_table_computes_pca_when_nothing_is_stored() -> None:
    trace = blob_trace()
    table = F.projection_table(trace)
    assert len(table.rows) == 2 * trace.n_tokens
    rows = [r for r in table.rows if r[2] == 1]
    got = np.array([r[5:8] for r in rows])
    ref = PCA(3, svd_solver="full").fit_transform(trace.get("resid.full")[1].astype(np.float64))
    signs = np.sign(np.sum(got * ref, axis=0))
    np.testing.assert_allclose(got * signs, ref, atol=1e-3 * np.abs(ref).max())


def test_stored_projection_and_clusters_are_exported_and_stale_ones_ignored() -> None:
    trace = blob_trace()
    x = trace.get("resid.full")[0]
    F.store_projection(trace, pca(x, 2), 0)
    result = kmeans(x)
    F.store_clusters(trace, result, 0)
    assert result.k == 3
    table = F.projection_table(trace)
    assert {r[0] for r in table.rows} == {"pca"} and len(table.rows) == trace.n_tokens
    assert [r[8] for r in table.rows] == result.labels.tolist()
    assert np.isnan(table.rows[0][7])  # a 2D projection has no z
    clusters = F.clusters_table(trace)
    assert [r[5] for r in clusters.rows] == result.labels.tolist()
    assert trace.notes["features"]["clusters.kmeans.L0"]["k"] == 3
    # One more token arrives: the stored arrays no longer cover the trace.
    trace.append([99], ["new"], {"resid.full": np.zeros((2, 1, 16), "f4")})
    assert F.stored(trace, "projection.pca.L0") is None
    assert len(F.projection_table(trace).rows) == 2 * trace.n_tokens  # recomputed PCA


def test_attribution_table_and_missing_attribution() -> None:
    trace = blob_trace()
    with pytest.raises(SnapshotError, match="--attribution"):
        F.attribution_table(trace)
    trace.extras["attribution.occlusion"] = np.array([1.0, -3.0, 0.0], dtype="f4")
    trace.extras["attribution.integrated_gradients"] = np.array([0.5, 0.5, -1.0], dtype="f4")
    ig = {"relative_gap": 0.01, "steps": 64, "score_change": 0.004, "converged": True}
    # An older snapshot stored a "gap" for occlusion; it is not additive, so none is shown.
    methods = {"occlusion": {"relative_gap": 0.25}, "integrated_gradients": ig}
    trace.notes["attribution"] = {"methods": methods}
    table = F.attribution_table(trace)
    assert table.columns[5:] == ["relative_gap", "score_change", "converged"]
    rows = {(r[0], r[1]): r for r in table.rows}
    assert [rows["occlusion", t][4] for t in range(3)] == [0.25, -0.75, 0.0]
    assert rows["occlusion", 1][2] == "w1"
    assert np.isnan(rows["occlusion", 0][5]) and np.isnan(rows["occlusion", 0][6])
    assert rows["occlusion", 0][7] is None
    assert rows["integrated_gradients", 2][5:] == [0.01, 0.004, True]


def test_without_full_vectors_the_table_says_what_to_capture() -> None:
    trace = Trace(ModelInfo(name="x", n_layers=2), CaptureSpec())
    trace.append([1, 2, 3], ["a", "b", "c"], {})
    with pytest.raises(SnapshotError, match="--full-layers"):
        F.projection_table(trace)


def test_extras_survive_a_snapshot(tmp_path) -> None:
    from neuroscope_tui.snapshot import load_snapshot, save_snapshot

    trace = blob_trace()
    x = trace.get("resid.full")[1]
    F.store_projection(trace, pca(x, 3), 1)
    F.store_clusters(trace, kmeans(x), 1)
    path = save_snapshot(trace, tmp_path / "s.nscope")
    back = load_snapshot(path)
    np.testing.assert_array_equal(
        back.extras["projection.pca.L1"], trace.extras["projection.pca.L1"]
    )
    np.testing.assert_array_equal(
        back.extras["clusters.kmeans.L1"], trace.extras["clusters.kmeans.L1"]
    )
    assert F.projection_table(back).rows == F.projection_table(trace).rows
