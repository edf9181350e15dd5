"""Groups of tokens with similar activations at a layer, and how groups carry across layers.

Input is token activations [T, D] (see `analysis.projection.activations`). `kmeans` and
`agglomerative` choose k by the silhouette score over a range unless k is given; `members`
lists each cluster's token positions; `match_clusters` pairs the clusters of two layers by
the Jaccard overlap of their members, and `follow_clusters` renumbers every layer's clusters
so a cluster keeps its number (and colour) from one layer to the next when its tokens stay
together. Pure numpy / scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from neuroscope_tui.analysis.projection import check_points, one_thread

METHODS = ("kmeans", "agglomerative")
DEFAULT_K_RANGE = (2, 8)
# k-means starts per k. One start (scikit-learn's "auto" for k-means++) often lands in a poor
# local optimum, and then the silhouette compares a bad k=2 with a good k=3 and picks the wrong
# k (on SmolLM2 one prompt gave k=3 at silhouette 0.25 where k=2 reaches 0.80). Ten starts
# agreed with a 30-start reference on 60 random blob sets where one start missed 3 of them
# (tests/test_features_projection.py keeps such a case); they cost ~0.6 s for 512 x 576, k 2..8.
KMEANS_STARTS = 10


@dataclass
class Clustering:
    """Cluster labels [T] (0..k-1) and how they were chosen.

    `silhouette` maps each k tried to its silhouette score (one entry when k was given;
    NaN when every point is its own cluster or all share one).
    """

    method: str
    labels: np.ndarray
    k: int
    silhouette: dict[int, float] = field(default_factory=dict)

    def members(self) -> list[list[int]]:
        return members(self.labels)


def _candidate_ks(n: int, k: int | None, k_range: tuple[int, int]) -> list[int]:
    """The k values to try: silhouette is defined for 2 <= k <= n - 1."""
    if k is not None:
        return [int(max(1, min(k, n)))]
    lo, hi = k_range
    ks = [kk for kk in range(max(2, lo), hi + 1) if kk <= n - 1]
    return ks or [min(2, n)]


def _silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """scikit-learn's silhouette score from precomputed Euclidean distances [T, T]."""
    from sklearn.metrics import silhouette_score

    n_labels = len(np.unique(labels))
    if not 2 <= n_labels <= len(labels) - 1:
        return float("nan")
    return float(silhouette_score(distances, labels, metric="precomputed"))


def _best(
    x: np.ndarray, ks: list[int], fit: Callable[[int], np.ndarray], method: str
) -> Clustering:
    from sklearn.metrics import pairwise_distances

    distances = pairwise_distances(x)  # one [T, T] matrix serves every k's silhouette
    scores: dict[int, float] = {}
    best: tuple[float, int, np.ndarray] | None = None
    for kk in ks:
        labels = np.asarray(fit(kk), dtype=np.int32)
        score = _silhouette(distances, labels)
        scores[kk] = score
        rank = -np.inf if np.isnan(score) else score
        if best is None or rank > best[0]:
            best = (rank, kk, labels)
    assert best is not None
    _, k_best, labels = best
    return Clustering(method, _by_first_member(labels), k_best, scores)


def _by_first_member(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters in order of their first token, so numbering does not depend on seeds."""
    order: dict[int, int] = {}
    for lab in labels:
        order.setdefault(int(lab), len(order))
    return np.array([order[int(lab)] for lab in labels], dtype=np.int32)


def kmeans(
    x: np.ndarray,
    k: int | None = None,
    *,
    k_range: tuple[int, int] = DEFAULT_K_RANGE,
    seed: int = 0,
    n_init: int = KMEANS_STARTS,
) -> Clustering:
    """k-means of the token activations [T, D]; k by best silhouette over `k_range` unless given.

    scikit-learn's KMeans (k-means++, the best of `n_init` starts per k) with
    `random_state=seed`, on one thread (see `one_thread`). Fewer than 3 tokens is a
    TooFewPointsError.
    """
    from sklearn.cluster import KMeans

    x = check_points(x, "clustering").astype(np.float64)
    ks = _candidate_ks(len(x), k, k_range)

    def fit(kk: int) -> np.ndarray:
        return KMeans(n_clusters=kk, n_init=n_init, random_state=seed).fit_predict(x)

    with one_thread():
        return _best(x, ks, fit, "kmeans")


def agglomerative(
    x: np.ndarray,
    k: int | None = None,
    *,
    k_range: tuple[int, int] = DEFAULT_K_RANGE,
    linkage: str = "ward",
) -> Clustering:
    """Agglomerative (Ward by default) clustering of [T, D]; k by silhouette unless given."""
    from sklearn.cluster import AgglomerativeClustering

    x = check_points(x, "clustering").astype(np.float64)
    ks = _candidate_ks(len(x), k, k_range)

    def fit(kk: int) -> np.ndarray:
        return AgglomerativeClustering(n_clusters=kk, linkage=linkage).fit_predict(x)

    with one_thread():
        return _best(x, ks, fit, "agglomerative")


def cluster(x: np.ndarray, method: str = "kmeans", k: int | None = None) -> Clustering:
    """Dispatch to `kmeans` or `agglomerative` by name."""
    if method == "kmeans":
        return kmeans(x, k)
    if method == "agglomerative":
        return agglomerative(x, k)
    raise ValueError(f"unknown clustering method {method!r}; choose one of {METHODS}")


def members(labels: np.ndarray) -> list[list[int]]:
    """Token positions of each cluster: members(labels)[c] lists the t with labels[t] == c."""
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if labels.size else 0
    return [np.flatnonzero(labels == c).tolist() for c in range(k)]


def jaccard_matrix(labels_a: np.ndarray, labels_b: np.ndarray) -> np.ndarray:
    """Jaccard overlap [k_a, k_b] of the member sets of two clusterings of the same tokens."""
    a, b = members(labels_a), members(labels_b)
    out = np.zeros((len(a), len(b)), dtype=np.float64)
    for i, sa in enumerate(a):
        set_a = set(sa)
        for j, sb in enumerate(b):
            union = len(set_a | set(sb))
            out[i, j] = len(set_a & set(sb)) / union if union else 0.0
    return out


def match_clusters(labels_a: np.ndarray, labels_b: np.ndarray) -> list[tuple[int, int, float]]:
    """Pairs (cluster in a, cluster in b, Jaccard) maximising total overlap, one-to-one.

    Hungarian assignment on the Jaccard matrix; pairs with zero overlap are left out.
    """
    from scipy.optimize import linear_sum_assignment

    jac = jaccard_matrix(labels_a, labels_b)
    if jac.size == 0:
        return []
    rows, cols = linear_sum_assignment(-jac)
    return [
        (int(r), int(c), float(jac[r, c])) for r, c in zip(rows, cols, strict=True) if jac[r, c] > 0
    ]


def follow_clusters(labels_by_layer: list[np.ndarray]) -> list[np.ndarray]:
    """Renumber each layer's clusters so matched clusters keep the previous layer's number.

    A cluster with no match in the layer before gets a number not used there. The member
    sets do not change, only their numbers, so colours stay stable along the layers.
    """
    out: list[np.ndarray] = []
    for labels in labels_by_layer:
        labels = np.asarray(labels, dtype=np.int32)
        if not out:
            out.append(labels.copy())
            continue
        prev = out[-1]
        mapping = {b: a for a, b, _ in match_clusters(prev, labels)}
        used = set(mapping.values()) | {int(c) for c in prev}
        fresh = (n for n in range(10_000) if n not in used)
        for c in range(int(labels.max()) + 1 if labels.size else 0):
            if c not in mapping:
                mapping[c] = next(fresh)
        out.append(np.array([mapping[int(c)] for c in labels], dtype=np.int32))
    return out
