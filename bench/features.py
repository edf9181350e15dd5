"""Time the projection and clustering functions on 512 tokens x 576 dims (SmolLM2's width).

`python bench/features.py` prints median wall and CPU milliseconds per call for PCA (also with
one BLAS thread), PCATracker.update, k-means (one k, and k by silhouette over 2..8),
agglomerative, t-SNE and UMAP (first call in the process, which imports and compiles, and a
second call). Data: 512 points in 8 Gaussian groups in 576 dims with a decaying spectrum, so
the methods have structure to find.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from neuroscope_tui.analysis import clusters, projection


def data(n: int = 512, d: int = 576, groups: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, d)) * 4
    scale = 0.97 ** np.arange(d)
    return (centres[np.arange(n) % groups] + rng.normal(size=(n, d)) * scale).astype(np.float32)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (wall ms, this thread's CPU ms) over `repeats` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.thread_time()
        fn()
        walls.append((time.perf_counter() - w) * 1000)
        cpus.append((time.thread_time() - c) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    x = data()
    rows: list[tuple[str, float, float]] = []

    def add(name: str, fn: Callable[[], object], repeats: int) -> None:
        wall, cpu = timed(fn, repeats)
        rows.append((name, wall, cpu))
        print(f"{name:<44} wall {wall:9.1f} ms   cpu {cpu:9.1f} ms", flush=True)

    projection.pca(x)  # imports
    add("PCA 512x576, 3 components", lambda: projection.pca(x), 20)
    with threadpool_limits(1):
        add("PCA 512x576, 3 components, 1 BLAS thread", lambda: projection.pca(x), 20)
    tracker = projection.PCATracker(3)
    add("PCATracker.update (one more token)", lambda: tracker.update(x), 20)
    add("k-means k=8", lambda: clusters.kmeans(x, 8), 5)
    add("k-means, k by silhouette over 2..8", lambda: clusters.kmeans(x), 3)
    add("agglomerative, k by silhouette over 2..8", lambda: clusters.agglomerative(x), 3)
    add("t-SNE 512 points", lambda: projection.tsne(x), 3)
    add("UMAP 512 points, first call (import+compile)", lambda: projection.umap(x), 1)
    add("UMAP 512 points, later call", lambda: projection.umap(x), 3)


if __name__ == "__main__":
    main()
