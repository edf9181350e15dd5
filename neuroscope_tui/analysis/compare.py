"""Comparing two runs of one model (two prompts, or two snapshots) layer by layer.

The runs have different tokens, so nothing is paired by token unless both have the same
length. What is compared, per layer l (A and B are the two runs' residual streams [L, T, D]):

    cos_mean       cos(mean_t A[l], mean_t B[l]): do the average states point the same way?
    cos_centred    the same after subtracting each run's mean over layers, the part of the
                   state that changes with depth (the raw residual stream has a large shared
                   direction that makes cos_mean near 1 everywhere in many models)
    cos_last       cos(A[l, -1], B[l, -1]): the states at each run's last token
    cka_tokens     linear CKA over tokens paired by position; only when both runs have the
                   same number of tokens, else None

and for the whole run `cka_mean_states`: linear CKA between the two [L, D] matrices of mean
states, layers as the paired samples (is the path through depth shaped alike?).

Position 0 is left out of every figure by default (`skip_first`): in many models (SmolLM2
among them) the first token's residual is an outlier that dominates token means, so two
unrelated prompts look alike; measured on SmolLM2 for "The capital of France is" against its
French translation, cos_mean at layer 12 is 0.999 with it and 0.79 without it.

The difference heatmap is layer x metric: the token-mean of each [L, T] metric in B minus A,
relative to A's (so +0.5 means B's is 50% larger).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroscope_tui.analysis.connectivity import full_layers, linear_cka
from neuroscope_tui.errors import SnapshotError, UsageError
from neuroscope_tui.trace import Trace

DIFF_METRICS = ("resid.norm", "attn.norm", "mlp.norm", "resid.delta", "resid.cos", "lens.kl")


@dataclass
class Comparison:
    """The per-layer figures of two runs and their difference heatmap [L, M]."""

    layers: list[int]
    cos_mean: np.ndarray  # [L]
    cos_centred: np.ndarray  # [L]
    cos_last: np.ndarray  # [L]
    cka_tokens: np.ndarray | None  # [L], only for runs of equal length
    cka_mean_states: float
    metrics: list[str]
    mean_a: np.ndarray  # [L, M] token-mean of each metric in run A
    mean_b: np.ndarray  # [L, M]
    relative_diff: np.ndarray  # [L, M] (B - A) / |A|
    skip_first: bool = True

    def to_dict(self, a: Trace, b: Trace) -> dict:
        """A JSON-able account: the runs, the overall CKA and one record per layer."""

        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), 6)

        rows = []
        for i, layer in enumerate(self.layers):
            row = {
                "layer": layer,
                "cos_mean": num(self.cos_mean[i]),
                "cos_centred": num(self.cos_centred[i]),
                "cos_last": num(self.cos_last[i]),
                "cka_tokens": None if self.cka_tokens is None else num(self.cka_tokens[i]),
            }
            for m, name in enumerate(self.metrics):
                row[f"{name} A"] = num(self.mean_a[i, m])
                row[f"{name} B"] = num(self.mean_b[i, m])
                row[f"{name} rel.diff"] = num(self.relative_diff[i, m])
            rows.append(row)
        return {
            "model": a.model.name,
            "a": {"prompt": a.prompt, "tokens": a.n_tokens},
            "b": {"prompt": b.prompt, "tokens": b.n_tokens},
            "cka_mean_states": num(self.cka_mean_states),
            "first_token_left_out": self.skip_first,
            "layers": rows,
        }


def _cos(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise cosine of [L, D] and [L, D] -> [L] (NaN for a zero row)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(x * y, axis=-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))


def check_comparable(a: Trace, b: Trace) -> None:
    """UsageError unless both runs come from the same model with the same full layers."""
    ma, mb = a.model, b.model
    if (ma.name, ma.n_layers, ma.d_model) != (mb.name, mb.n_layers, mb.d_model):
        raise UsageError(
            f"the runs come from different models ({ma.name}, {ma.n_layers} layers vs "
            f"{mb.name}, {mb.n_layers} layers); compare two runs of the same model."
        )
    for trace, which in ((a, "first"), (b, "second")):
        if not trace.has("resid.full") or trace.get("resid.full").size == 0:
            raise SnapshotError(
                f"the {which} run kept no full residual vectors; capture it with "
                "--full-layers all to compare it."
            )
    if full_layers(a) != full_layers(b):
        raise UsageError(
            "the runs kept full vectors for different layers; capture both with the same "
            "--full-layers."
        )


def compare_runs(a: Trace, b: Trace, skip_first: bool = True) -> Comparison:
    """Compare two runs of one model; raises UsageError / SnapshotError when they cannot be.

    `skip_first` leaves position 0 out (when both runs have more than one token).
    """
    check_comparable(a, b)
    skip_first = skip_first and min(a.n_tokens, b.n_tokens) > 1
    start = 1 if skip_first else 0
    ra = a.get("resid.full")[:, start:].astype(np.float64)  # [L, Ta, D]
    rb = b.get("resid.full")[:, start:].astype(np.float64)  # [L, Tb, D]
    mean_a, mean_b = ra.mean(axis=1), rb.mean(axis=1)  # [L, D]
    centred_a = mean_a - mean_a.mean(axis=0)
    centred_b = mean_b - mean_b.mean(axis=0)
    cka_tokens = None
    if ra.shape[1] == rb.shape[1] and ra.shape[1] >= 2:
        cka_tokens = np.array([linear_cka(ra[i], rb[i]) for i in range(ra.shape[0])])
    metrics = [m for m in DIFF_METRICS if a.has(m) and b.has(m)]
    n_layers = len(a.layers())
    ma = np.full((n_layers, len(metrics)), np.nan)
    mb = np.full((n_layers, len(metrics)), np.nan)
    for j, name in enumerate(metrics):
        ma[:, j] = _token_mean(a.get(name)[:, start:])
        mb[:, j] = _token_mean(b.get(name)[:, start:])
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = (mb - ma) / np.abs(ma)
    return Comparison(
        layers=full_layers(a),
        cos_mean=_cos(mean_a, mean_b),
        cos_centred=_cos(centred_a, centred_b),
        cos_last=_cos(ra[:, -1], rb[:, -1]),
        cka_tokens=cka_tokens,
        cka_mean_states=linear_cka(mean_a, mean_b) if len(mean_a) >= 2 else float("nan"),
        metrics=metrics,
        mean_a=ma,
        mean_b=mb,
        relative_diff=rel,
        skip_first=skip_first,
    )


def _token_mean(values: np.ndarray) -> np.ndarray:
    """Mean over tokens of an [L, T] metric, ignoring NaN cells -> [L]."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    counts = finite.sum(axis=1)
    sums = np.where(finite, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
