"""Projections, clusters and attributions kept in a Trace's extras, and their export tables.

Names in `trace.extras` (numpy arrays, saved with the snapshot):

    projection.{method}.L{layer}[.neurons]   [T, k] float32  coordinates (method: pca, tsne, umap)
    clusters.{method}.L{layer}[.neurons]     [T] int32       cluster labels (kmeans, agglomerative)
    attribution.{method}                     [T_in] float32  signed score per input token

`.neurons` marks MLP-neuron activations; without it the residual stream. Each projection or
clustering also leaves its settings in `trace.notes["features"][name]` (JSON). A stored array
whose token count no longer matches the trace (the run grew since) is stale and ignored.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from neuroscope_tui.analysis.clusters import Clustering, kmeans
from neuroscope_tui.analysis.exports import Table
from neuroscope_tui.analysis.projection import Projection, activations, full_layers, pca
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import Trace

_NAME = re.compile(r"^(projection|clusters)\.(\w+)\.L(\d+)(\.neurons)?$")


def feature_name(kind: str, method: str, layer: int, site: str = "resid") -> str:
    """The extras name of a projection or clustering ("projection" / "clusters")."""
    return f"{kind}.{method}.L{layer}" + (".neurons" if site == "neurons" else "")


def parse_name(name: str) -> tuple[str, str, int, str] | None:
    """(kind, method, layer, site) of an extras name, or None for other names."""
    match = _NAME.match(name)
    if match is None:
        return None
    kind, method, layer, neurons = match.groups()
    return kind, method, int(layer), "neurons" if neurons else "resid"


def store_projection(trace: Trace, proj: Projection, layer: int, site: str = "resid") -> str:
    """Keep a projection in trace.extras (and its settings in notes); return its name."""
    name = feature_name("projection", proj.method, layer, site)
    trace.extras[name] = np.asarray(proj.coords, dtype=np.float32)
    note = {k: v for k, v in proj.params.items() if np.isscalar(v) or v is None}
    if proj.explained is not None:
        note["explained"] = [float(v) for v in proj.explained]
    trace.notes.setdefault("features", {})[name] = note
    return name


def store_clusters(trace: Trace, result: Clustering, layer: int, site: str = "resid") -> str:
    """Keep cluster labels in trace.extras (and k, silhouettes in notes); return its name."""
    name = feature_name("clusters", result.method, layer, site)
    trace.extras[name] = np.asarray(result.labels, dtype=np.int32)
    trace.notes.setdefault("features", {})[name] = {
        "k": int(result.k),
        "silhouette": {str(k): float(v) for k, v in result.silhouette.items()},
    }
    return name


def stored(trace: Trace, name: str) -> np.ndarray | None:
    """The extras array `name` when it covers every token of the trace (else None: stale)."""
    arr = trace.extras.get(name)
    if arr is None or arr.shape[0] != trace.n_tokens:
        return None
    return arr


# ---- export tables -------------------------------------------------------------------------


def _fresh(trace: Trace, kind: str) -> list[tuple[str, str, int, str]]:
    out = []
    for name in sorted(trace.extras):
        parsed = parse_name(name)
        if parsed and parsed[0] == kind and stored(trace, name) is not None:
            out.append((name, *parsed[1:]))
    return out


def _require_full(trace: Trace) -> list[int]:
    layers = full_layers(trace) if trace.has("resid.full") else []
    if not layers or trace.n_tokens < 3:
        raise SnapshotError(
            "This snapshot holds no stored projections and no full residual vectors to compute "
            "them from; capture with --full-layers (and at least 3 tokens)."
        )
    return layers


def projection_table(trace: Trace) -> Table:
    """Per stored projection and token: coordinates (up to 3) and the token's cluster.

    With none stored, PCA of the residual stream at every layer whose full vectors the
    trace kept (computed here, 3 components).
    """
    entries = _fresh(trace, "projection")
    computed: dict[str, np.ndarray] = {}
    if not entries:
        for layer in _require_full(trace):
            name = feature_name("projection", "pca", layer)
            computed[name] = pca(activations(trace, layer), 3).coords
            entries.append((name, "pca", layer, "resid"))
    rows: list[list[Any]] = []
    for name, method, layer, site in entries:
        coords = computed.get(name, trace.extras.get(name))
        labels = _labels_for(trace, layer, site)
        for t in range(trace.n_tokens):
            xyz = [float(coords[t, i]) if i < coords.shape[1] else float("nan") for i in range(3)]
            cluster = int(labels[t]) if labels is not None else -1
            rows.append([method, site, layer, t, trace.token_text[t], *xyz, cluster])
    columns = ["method", "site", "layer", "token", "text", "x", "y", "z", "cluster"]
    return Table(columns, rows)


def _labels_for(trace: Trace, layer: int, site: str) -> np.ndarray | None:
    for method in ("kmeans", "agglomerative"):
        labels = stored(trace, feature_name("clusters", method, layer, site))
        if labels is not None:
            return labels
    return None


def clusters_table(trace: Trace) -> Table:
    """Per stored clustering and token: the cluster label.

    With none stored, k-means (k by silhouette over 2..8) of the residual stream at every
    layer whose full vectors the trace kept.
    """
    entries = _fresh(trace, "clusters")
    computed: dict[str, np.ndarray] = {}
    if not entries:
        for layer in _require_full(trace):
            name = feature_name("clusters", "kmeans", layer)
            computed[name] = kmeans(activations(trace, layer)).labels
            entries.append((name, "kmeans", layer, "resid"))
    rows: list[list[Any]] = []
    for name, method, layer, site in entries:
        labels = computed.get(name, trace.extras.get(name))
        rows += [
            [method, site, layer, t, trace.token_text[t], int(labels[t])]
            for t in range(trace.n_tokens)
        ]
    return Table(["method", "site", "layer", "token", "text", "cluster"], rows)


def attribution_table(trace: Trace) -> Table:
    """Per attribution method and input token: the signed score, its share and how far to
    trust the method.

    Share = score / sum |scores| of that method. `relative_gap` is the completeness gap, empty
    for occlusion (not additive, so it has none); `score_change` and `converged` are integrated
    gradients' convergence check (empty where the step count was fixed). SnapshotError when
    the snapshot holds no attribution (capture with --attribution, or compute it in the app's
    attribution view).
    """
    from neuroscope_tui.analysis.attribution_trust import completeness_gap, convergence

    names = sorted(n for n in trace.extras if n.startswith("attribution."))
    if not names:
        raise SnapshotError(
            "This snapshot holds no attributions; capture with --attribution or compute them "
            "in the app's attribution view (key 8) and save."
        )
    note = trace.notes.get("attribution", {})
    rows: list[list[Any]] = []
    for name in names:
        method = name.split(".", 1)[1]
        scores = np.asarray(trace.extras[name], dtype=np.float64)
        total = np.abs(scores).sum()
        numbers = note.get("methods", {}).get(method, {})
        gap = completeness_gap(method, numbers)
        change, converged = convergence(numbers)
        trust = [
            float("nan") if gap is None else gap,
            float("nan") if change is None else change,
            converged,  # None: an empty cell
        ]
        for t, score in enumerate(scores):
            text = trace.token_text[t] if t < len(trace.token_text) else ""
            share = score / total if total > 0 else 0.0
            rows.append([method, t, text, float(score), float(share), *trust])
    columns = ["method", "token", "text", "score", "share", "relative_gap"]
    columns += ["score_change", "converged"]
    return Table(columns, rows)
