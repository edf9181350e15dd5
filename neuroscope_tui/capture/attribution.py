"""Which input tokens drove one output token: gradient x input, integrated gradients, occlusion.

The target is f(x) = logit(target) at the last position, or logit(target) - logit(foil) for a
contrast ("why ' Paris' rather than ' London'"), as a function of the input embeddings
x [T, d_model]. Every method gives one signed score per input token [T], and reports how far
the scores' sum is from f(x) - f(baseline) (the completeness gap), so a user knows how far to
trust them.

Choices, and why:

- Baseline b: the mean of the embedding matrix over the vocabulary, at every position but the
  first, which keeps its own embedding. Not the zero vector: RMSNorm/LayerNorm divide by the
  norm of their input, and near zero that map is singular (a tiny input is blown up to unit
  scale), so the integrand of integrated gradients spikes near alpha = 0 (on SmolLM2 at 64
  steps the sum missed f(x) - f(0) by a factor of 15). The mean embedding is a "no particular
  token" point with an ordinary norm. The first position stays put because a causal LM turns
  whatever sits there into an attention sink with massive activations; moving it along the
  path makes the integrand jump (on SmolLM2, "The capital of France is": gap 50% at 8
  steps and 780% at 16 with the first token moving, 4% at 32 and 0.8% at 64 with it kept).
  So gradient x input and IG give the first token 0 by construction; occlusion still
  measures it (replaced by the mean embedding). With a single input token nothing is kept.
- Integrated gradients: Gauss-Legendre quadrature with `steps` nodes on alpha in [0, 1] of
  grad f(b + alpha (x - b)) . (x - b), summed over d_model. Where the integrand is smooth this
  converges far faster than a Riemann sum with the same number of forward/backward passes;
  a trained model's integrand is not always smooth, so no fixed count is safe (SmolLM2 needed
  32 steps on one prompt and 128 on another for a 5% gap): `integrated_gradients_auto`
  doubles the count from 16 until the gap is under 5% and no token's score moved by more
  than 2% of the total since the count before (a small gap can hide unconverged scores on a
  narrow steep stretch of the path; see analysis/attribution_trust.py), at most 256, and
  says when that budget ran out. The app and CLI use it.
- Gradient x input: grad f(x) . (x - b), the one-point (alpha = 1) version of the same
  integral, so its gap is comparable with IG's.
- Occlusion: token t's embedding replaced by the mean embedding (the token is "left out" but
  the positions of the others do not shift, as they would if it were dropped);
  score_t = f(x) - f(x with t replaced). Occlusion is not additive, so it has no
  completeness gap (its `gap` is None and none is stored).

Shares (what the view colours) are scores / sum |scores|. The model runs in its own dtype
(f and gradients are accumulated in float32); in half precision the gap shows the cost.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuroscope_tui.analysis.attribution_trust import (
    ADDITIVE_METHODS,
)
from neuroscope_tui.errors import PromptError, UsageError
from neuroscope_tui.models.types import LoadedModel

METHODS = ("occlusion", "integrated_gradients", "gradient_x_input")
DEFAULT_STEPS = 32
BATCH_TOKENS = 4096  # positions per forward pass when batching alphas or occluded copies
# ... while someone watches the progress: smaller chunks, so it moves and Esc acts soon
# (SmolLM2 on a busy 2-core CPU: 1024 positions forward and backward took 43 s)
WATCHED_BATCH_TOKENS = 256
# what the progress line calls each method, and what its chunks count
STAGES = {
    "occlusion": ("occlusion", "positions"),
    "integrated_gradients": ("integrated gradients", "steps"),
    "gradient_x_input": ("gradient × input", ""),
}
_watch = threading.local()  # this thread's progress callback and stage, while one is set


@contextmanager
def _watching(progress: Callable[[float, str], None] | None) -> Iterator[None]:
    """Report the chunks done in this thread to `progress(fraction, text)` while the block runs.

    The callback may raise (the app's raises TaskCancelled once the user cancelled): the
    work then stops between two chunks.
    """
    _watch.progress, _watch.stage = progress, ("attribution", "")
    try:
        yield
    finally:
        _watch.progress = None


def _stage(method: str) -> None:
    """Name the method now running in the progress reports (and say it started)."""
    _watch.stage = STAGES.get(method, (method, ""))
    if getattr(_watch, "progress", None) is not None:
        _watch.progress(0.0, _watch.stage[0])


def _report(done: int, total: int) -> None:
    """Tell the watcher (if any) that `done` of `total` chunks' items are done."""
    progress = getattr(_watch, "progress", None)
    if progress is None or total <= 2:  # f(x) and f(baseline): not the method's work
        return
    label, unit = _watch.stage
    progress(done / total, f"{label} {done}/{total} {unit}" if unit else label)


@dataclass
class Attribution:
    """One method's signed score per input token, and its completeness check.

    `scores` [T] float64. `f_input` = f(x), `f_baseline` = f(b); for an additive method
    `gap` = sum(scores) - (f_input - f_baseline), `relative_gap` = |gap| / |f_input -
    f_baseline|; both None for occlusion, which has no completeness property. For integrated
    gradients with doubling steps, `score_change` is how far the scores moved since the
    step count before (share of the total) and `converged` whether both figures were met.
    """

    method: str
    scores: np.ndarray
    f_input: float
    f_baseline: float
    steps: int | None = None
    baseline: str = "mean embedding, first token kept"
    notes: dict[str, Any] = field(default_factory=dict)
    score_change: float | None = None
    converged: bool | None = None

    @property
    def delta(self) -> float:
        return self.f_input - self.f_baseline

    @property
    def additive(self) -> bool:
        """Whether the scores should sum to f(x) - f(b) (occlusion's need not)."""
        return self.method in ADDITIVE_METHODS

    @property
    def gap(self) -> float | None:
        return float(self.scores.sum() - self.delta) if self.additive else None

    @property
    def relative_gap(self) -> float | None:
        gap = self.gap
        if gap is None:
            return None
        return abs(gap) / abs(self.delta) if self.delta != 0 else math.inf

    def shares(self) -> np.ndarray:
        """scores / sum |scores|: signed, their absolute values sum to one."""
        total = np.abs(self.scores).sum()
        return self.scores / total if total > 0 else np.zeros_like(self.scores)

    def summary(self) -> dict[str, Any]:
        """JSON-able numbers for trace.notes: no gap for occlusion, the score change and
        verdict only where the steps were refined."""
        out: dict[str, Any] = {
            "f_input": self.f_input,
            "f_baseline": self.f_baseline,
            "sum": float(self.scores.sum()),
            "additive": self.additive,
        }
        if self.additive:
            out.update(gap=self.gap, relative_gap=self.relative_gap)
        out.update(steps=self.steps, baseline=self.baseline)
        if self.score_change is not None:
            out["score_change"] = self.score_change
        if self.converged is not None:
            out["converged"] = self.converged
        return {**out, **self.notes}


class _Target:
    """f over input embeddings [B, T, D] -> [B]: the last position's logit (difference)."""

    def __init__(self, bundle: LoadedModel, target_id: int, foil_id: int | None) -> None:
        self.model = bundle.model
        self.target_id = int(target_id)
        self.foil_id = None if foil_id is None else int(foil_id)

    def __call__(self, embeds: Any) -> Any:
        try:
            out = self.model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1)
        except TypeError:  # an architecture without logits_to_keep
            out = self.model(inputs_embeds=embeds, use_cache=False)
        last = out.logits[:, -1, :].float()
        value = last[:, self.target_id]
        if self.foil_id is not None:
            value = value - last[:, self.foil_id]
        return value


def _embeddings(bundle: LoadedModel, token_ids: list[int]) -> tuple[Any, Any, Any]:
    """Input embeddings x [T, D], the baseline b [T, D] and the mean embedding m [D], detached.

    b is m at every position except the first, which keeps x[0] (see the module docstring).
    """
    import torch

    if len(token_ids) == 0:
        raise PromptError("attribution needs at least one input token; type a prompt first.")
    table = bundle.model.get_input_embeddings()
    weight = table.weight
    ids = torch.tensor(token_ids, dtype=torch.long, device=weight.device)
    with torch.no_grad():
        x = table(ids).detach()
        mean = weight.mean(dim=0).to(x.dtype)
        b = mean.expand_as(x).clone()
        if len(token_ids) > 1:
            b[0] = x[0]
    return x, b, mean


def _batches(total: int, n_tokens: int) -> list[tuple[int, int]]:
    watched = getattr(_watch, "progress", None) is not None
    size = max(1, (WATCHED_BATCH_TOKENS if watched else BATCH_TOKENS) // max(n_tokens, 1))
    return [(i, min(i + size, total)) for i in range(0, total, size)]


def _f(f: _Target, embeds: Any) -> np.ndarray:
    """f at a batch of inputs [B, T, D] without gradients -> [B] float64."""
    import torch

    out = []
    with torch.no_grad():
        for lo, hi in _batches(embeds.shape[0], embeds.shape[1]):
            out.append(f(embeds[lo:hi]).double().cpu().numpy())
            _report(hi, embeds.shape[0])
    return np.concatenate(out)


def _grads(f: _Target, points: Any) -> Any:
    """grad f at each input of a batch [B, T, D] -> [B, T, D] (float32)."""
    import torch

    grads = []
    for lo, hi in _batches(points.shape[0], points.shape[1]):
        with torch.enable_grad():
            chunk = points[lo:hi].detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(f(chunk).sum(), chunk)
        grads.append(grad.float())
        _report(hi, points.shape[0])
    return torch.cat(grads)


def gradient_x_input(
    bundle: LoadedModel, token_ids: list[int], target_id: int, foil_id: int | None = None
) -> Attribution:
    """grad f(x) . (x - b) per token: the first-order share of each token in f(x) - f(b)."""
    f = _Target(bundle, target_id, foil_id)
    x, b, _ = _embeddings(bundle, token_ids)
    grad = _grads(f, x[None])[0]
    scores = (grad * (x - b).float()).sum(-1).double().cpu().numpy()
    fx, fb = _f(f, x[None])[0], _f(f, b[None])[0]
    return Attribution("gradient_x_input", scores, float(fx), float(fb), steps=1)


def integrated_gradients(
    bundle: LoadedModel,
    token_ids: list[int],
    target_id: int,
    foil_id: int | None = None,
    steps: int = DEFAULT_STEPS,
) -> Attribution:
    """Integrated gradients from the mean-embedding baseline, Gauss-Legendre with `steps` nodes.

    score_t = sum_i w_i grad f(b + a_i (x - b))_t . (x_t - b_t), with nodes a_i and weights w_i
    of the Gauss-Legendre rule mapped to [0, 1]. Completeness: sum_t score_t ~ f(x) - f(b);
    the Attribution reports the gap.
    """
    import torch

    if steps < 1:
        raise UsageError(f"integrated gradients needs at least 1 step, got {steps}.")
    f = _Target(bundle, target_id, foil_id)
    x, b, _ = _embeddings(bundle, token_ids)
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas = torch.tensor((nodes + 1) / 2, dtype=x.dtype, device=x.device)
    w = torch.tensor(weights / 2, dtype=torch.float32, device=x.device)
    diff = x - b
    points = b[None] + alphas[:, None, None] * diff[None]  # [steps, T, D]
    grads = _grads(f, points)  # [steps, T, D]
    mean_grad = (w[:, None, None] * grads).sum(0)  # [T, D]
    scores = (mean_grad * diff.float()).sum(-1).double().cpu().numpy()
    fx, fb = _f(f, torch.stack([x, b]))
    return Attribution("integrated_gradients", scores, float(fx), float(fb), steps=steps)


def occlusion(
    bundle: LoadedModel, token_ids: list[int], target_id: int, foil_id: int | None = None
) -> Attribution:
    """f(x) - f(x with token t's embedding replaced by the mean embedding), every t, batched."""
    import torch

    f = _Target(bundle, target_id, foil_id)
    x, b, mean = _embeddings(bundle, token_ids)
    n = x.shape[0]
    occluded = x[None].repeat(n, 1, 1)  # [T copies, T, D]
    idx = torch.arange(n, device=x.device)
    occluded[idx, idx] = mean
    fx, fb = _f(f, torch.stack([x, b]))
    scores = fx - _f(f, occluded)
    return Attribution("occlusion", scores, float(fx), float(fb))


def attribute(
    bundle: LoadedModel,
    token_ids: list[int],
    target_id: int,
    foil_id: int | None = None,
    *,
    methods: tuple[str, ...] = METHODS,
    steps: int = DEFAULT_STEPS,
) -> dict[str, Attribution]:
    """Every method in `methods` for the same target (and foil)."""
    out: dict[str, Attribution] = {}
    for method in methods:
        if method == "occlusion":
            out[method] = occlusion(bundle, token_ids, target_id, foil_id)
        elif method == "integrated_gradients":
            out[method] = integrated_gradients(bundle, token_ids, target_id, foil_id, steps)
        elif method == "gradient_x_input":
            out[method] = gradient_x_input(bundle, token_ids, target_id, foil_id)
        else:
            raise UsageError(f"unknown attribution method {method!r}; choose from {METHODS}.")
    return out
