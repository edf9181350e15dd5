"""Per-layer concept probes: pure functions over activations [n_examples, n_layers, d_model].

A concept has two labels; label 0 (the first set named) is the side the direction points to.
Per layer:
- the difference-of-means direction u = (mean(x | 0) - mean(x | 1)) / ||...|| and its
  midpoint b = u . (mean0 + mean1) / 2; the projection of x is u . x - b, positive on the
  side of label 0 (the live metric and the concept view use the same number);
- a logistic-regression probe (scikit-learn, standardised inside each fold so nothing of a
  held-out fold leaks into its scaler), its cross-validated accuracy and each example's
  out-of-fold margin (signed distance to the probe's boundary, positive = right side);
- the transfer of the direction to a second labelled set (another language, say): the
  accuracy of its sign once the projections are centred on that set's own median (a new
  language shifts every projection by about the same amount, which a threshold fitted in the
  first language would count as errors; the median uses no label), and the threshold-free
  ROC AUC of the projections.
No torch here; scikit-learn is imported inside the functions that fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_PER_LABEL = 2  # a mean and a fold need at least two examples of each label


@dataclass
class ConceptFit:
    """Everything fitted per layer (rows = the activations' layer axis)."""

    direction: np.ndarray  # [L, D] unit vectors, toward label 0
    midpoint: np.ndarray  # [L]
    probe_weight: np.ndarray  # [L, D] in raw activation units (scaler folded in)
    probe_bias: np.ndarray  # [L]
    cv_accuracy: np.ndarray  # [L] logistic probe, cross-validated
    direction_accuracy: np.ndarray  # [L] the direction + midpoint on the fitting set itself
    margins: np.ndarray  # [n, L] out-of-fold probe margins, positive = right side
    projections: np.ndarray  # [n, L] u . x - b of every fitting example
    folds: int
    transfer_accuracy: np.ndarray | None = None  # [L]
    transfer_auc: np.ndarray | None = None  # [L]
    transfer_projections: np.ndarray | None = None  # [m, L]
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def best_layer(self) -> int:
        return best_layer(self.cv_accuracy)


def _check(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 3 or y.shape != (x.shape[0],):
        raise ValueError(f"expected x [n, L, D] and y [n], got {x.shape} and {y.shape}")
    if set(np.unique(y).tolist()) - {0, 1}:
        raise ValueError("labels must be 0 and 1")
    counts = np.bincount(y.astype(int), minlength=2)
    if counts.min() < MIN_PER_LABEL:
        raise ValueError(f"each label needs at least {MIN_PER_LABEL} examples, got {counts}")
    return x, y.astype(int)


def mean_difference(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer unit direction from label 1's mean to label 0's, and the midpoint offset."""
    x, y = _check(x, y)
    m0 = x[y == 0].mean(0)  # [L, D]
    m1 = x[y == 1].mean(0)
    diff = m0 - m1
    norm = np.linalg.norm(diff, axis=-1, keepdims=True)
    u = diff / np.where(norm > 0, norm, 1.0)
    mid = np.einsum("ld,ld->l", u, (m0 + m1) / 2)
    return u.astype(np.float32), mid.astype(np.float32)


def project(x: np.ndarray, direction: np.ndarray, midpoint: np.ndarray) -> np.ndarray:
    """u . x - b per layer: x [..., L, D] -> [..., L] (float64 sums, float32 out)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.einsum("...ld,ld->...l", x, np.asarray(direction, np.float64))
    return (out - np.asarray(midpoint, np.float64)).astype(np.float32)


def sign_accuracy(projections: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[n, L] projections -> [L] fraction on their label's side (> 0 means label 0)."""
    predicted = (np.asarray(projections) <= 0).astype(int)  # 0 when on label 0's side
    return (predicted == np.asarray(y)[:, None]).mean(0).astype(np.float32)


def _probe(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))


def n_folds(y: np.ndarray, wanted: int = 5) -> int:
    """Folds for stratified cross-validation: at most `wanted`, at most the smaller count."""
    counts = np.bincount(np.asarray(y, dtype=int), minlength=2)
    return int(max(2, min(wanted, counts.min())))


def cross_validate(
    x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0, progress=None
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated logistic-probe accuracy per layer [L] and out-of-fold margins [n, L].

    Stratified folds, shuffled with `seed`; the scaler and the probe see only the training
    folds. `progress(fraction, text)` is called after each layer.
    """
    from sklearn.model_selection import StratifiedKFold

    x, y = _check(x, y)
    n, n_layers, _ = x.shape
    k = n_folds(y, folds)
    splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(x[:, 0], y))
    acc = np.zeros(n_layers, np.float32)
    margins = np.zeros((n, n_layers), np.float32)
    sign = np.where(y == 1, 1.0, -1.0)  # sklearn's decision > 0 means class 1
    for layer in range(n_layers):
        xl = x[:, layer]
        correct = 0
        for train, test in splits:
            model = _probe(seed).fit(xl[train], y[train])
            decision = model.decision_function(xl[test])
            w = model[-1].coef_[0] / model[0].scale_
            margins[test, layer] = sign[test] * decision / max(np.linalg.norm(w), 1e-12)
            correct += int((model.predict(xl[test]) == y[test]).sum())
        acc[layer] = correct / n
        if progress is not None:
            progress((layer + 1) / n_layers, f"probe layer {layer + 1}/{n_layers}")
    return acc, margins


def fit_probes(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logistic probes on every example, per layer, as raw-unit weights [L, D] and bias [L]:
    w . x + c > 0 means label 1 (sklearn's convention), the scaler folded into w and c."""
    x, y = _check(x, y)
    weights = np.zeros(x.shape[1:], np.float32)
    bias = np.zeros(x.shape[1], np.float32)
    for layer in range(x.shape[1]):
        model = _probe(seed).fit(x[:, layer], y)
        scaler, lr = model[0], model[-1]
        w = lr.coef_[0] / scaler.scale_
        weights[layer] = w
        bias[layer] = lr.intercept_[0] - float(w @ scaler.mean_)
    return weights, bias


def best_layer(accuracy: np.ndarray) -> int:
    """The layer of highest accuracy (the earliest of ties)."""
    return int(np.argmax(np.asarray(accuracy)))


def fit_concept(
    x: np.ndarray,
    y: np.ndarray,
    *,
    transfer_x: np.ndarray | None = None,
    transfer_y: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
    progress=None,
) -> ConceptFit:
    """Directions, probes, cross-validated accuracy and (given a second set) transfer."""
    x, y = _check(x, y)
    direction, midpoint = mean_difference(x, y)
    projections = project(x, direction, midpoint)
    acc, margins = cross_validate(x, y, folds, seed, progress)
    weight, bias = fit_probes(x, y, seed)
    fit = ConceptFit(
        direction=direction,
        midpoint=midpoint,
        probe_weight=weight,
        probe_bias=bias,
        cv_accuracy=acc,
        direction_accuracy=sign_accuracy(projections, y),
        margins=margins,
        projections=projections,
        folds=n_folds(y, folds),
    )
    if transfer_x is not None and transfer_y is not None:
        fit.transfer_projections = project(transfer_x, direction, midpoint)
        fit.transfer_accuracy, fit.transfer_auc = transfer_scores(
            fit.transfer_projections, transfer_y
        )
    return fit


def transfer_scores(projections: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[m, L] projections of a second set -> (median-centred sign accuracy [L], ROC AUC [L]).

    AUC: the probability that a label-0 example projects above a label-1 example (ties half).
    """
    p = np.asarray(projections, np.float64)
    y = np.asarray(y, dtype=int)
    if p.ndim != 2 or y.shape != (p.shape[0],) or set(np.unique(y).tolist()) != {0, 1}:
        raise ValueError("the transfer set needs [m, L] projections and both labels")
    acc = sign_accuracy(p - np.median(p, axis=0), y)
    a, b = p[y == 0], p[y == 1]  # [m0, L], [m1, L]
    greater = (a[:, None, :] > b[None, :, :]).mean((0, 1))
    ties = (a[:, None, :] == b[None, :, :]).mean((0, 1))
    return acc, (greater + ties / 2).astype(np.float32)


def worst_examples(projections: np.ndarray, y: np.ndarray, layer: int, k: int = 5) -> list[int]:
    """Indices of the examples furthest on the wrong side at `layer` (worst first); only
    examples on the wrong side (or on the boundary) are listed."""
    side = np.where(np.asarray(y) == 0, 1.0, -1.0) * np.asarray(projections)[:, layer]
    order = np.argsort(side, kind="stable")
    return [int(i) for i in order[:k] if side[i] <= 0]


def trace_projection(trace, direction: np.ndarray, midpoint: np.ndarray) -> np.ndarray:
    """The concept's projection u . x - b of every recorded layer's residual at every token:
    float32 [len(trace.layers()), n_tokens], NaN for layers whose full rows were not kept.

    This is the live metric's number, computed from the trace's `resid.full` rows.
    """
    layers = trace.layers()
    out = np.full((len(layers), trace.n_tokens), np.nan, dtype=np.float32)
    if not trace.has("resid.full"):
        return out
    full = trace.spec.full_layers
    kept = [layer for layer in (layers if full is None else full) if layer in layers]
    rows = trace.get("resid.full")  # [len(kept), T, D]
    for j, layer in enumerate(kept[: rows.shape[0]]):
        x = np.asarray(rows[j], dtype=np.float64)
        out[layers.index(layer)] = x @ np.asarray(direction[layer], np.float64) - float(
            midpoint[layer]
        )
    return out
