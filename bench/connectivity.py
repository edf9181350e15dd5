"""Time the connectivity, rollout and attention-flow computations at realistic sizes.

Run: python bench/connectivity.py. Prints one line per case (seconds, best of 3 where cheap).
Random inputs of SmolLM2-135M's shape (30 layers, width 576); attention patterns are causal,
peaked like real heads (uniform ** 8, rows normalised).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from neuroscope_tui.analysis.connectivity import cka_matrix, correlation_matrix, cosine_matrix
from neuroscope_tui.analysis.flow import attention_flow, rollout

N_LAYERS, D_MODEL = 30, 576


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """The shortest of `repeat` wall-clock timings of fn(), in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def patterns(n: int, rng: np.random.Generator) -> np.ndarray:
    """Causal attention patterns [L, n, n] peaked like real heads."""
    p = np.tril(rng.random((N_LAYERS, n, n)) ** 8)
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def row(case: str, seconds: float) -> None:
    print(f"{case:<46}{seconds:>10.3f}")


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'case (L = 30 layers, D = 576)':<46}{'seconds':>10}")
    for t in (128, 512, 1024):
        resid = rng.normal(size=(N_LAYERS, t, D_MODEL)).astype(np.float32)
        norms = np.linalg.norm(resid, axis=-1)
        row(f"CKA matrix, T={t}", best_of(lambda r=resid: cka_matrix(r)))
        row(f"mean-cosine matrix, T={t}", best_of(lambda r=resid: cosine_matrix(r)))
        row(f"correlation matrix, T={t}", best_of(lambda v=norms: correlation_matrix(v)))
    for t in (128, 512):
        pats = patterns(t, rng)
        row(f"rollout grid, T={t}", best_of(lambda p=pats, n=t: rollout(p, n - 1)))
    for t in (32, 64, 128):
        pats = patterns(t, rng)
        last = [N_LAYERS - 1]
        row(f"attention flow, last row, p={t - 1}", best_of(
            lambda p=pats, n=t, keep=last: attention_flow(p, n - 1, layers=keep), 1
        ))  # fmt: skip
        row(f"attention flow, all rows, p={t - 1}", best_of(
            lambda p=pats, n=t: attention_flow(p, n - 1), 1
        ))  # fmt: skip


if __name__ == "__main__":
    main()
