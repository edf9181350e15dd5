"""What the detectors read: traces of a prompt set, plus neuron and gradient health.

`traces` come from `capture/diagnostics.py` (one run per prompt, no generation, spec
`DIAGNOSTIC_SPEC` there: full residual rows at every layer, head scores, every head's
pattern for prompts short enough) or from snapshots the user names (whatever they kept).
`neurons` and `gradients` need the live model; from snapshots they are None and the
detectors that need them raise `DetectorSkipped` saying so. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuroscope_tui.trace import Trace


@dataclass
class NeuronHealth:
    """MLP neuron statistics over every token of the prompt set, per layer and neuron.

    Counted on the activation function's output f(x) (x its input, the pre-activation):
    `active_frac[l, n]` fraction of tokens where |f(x)| > `threshold`; `flat_frac[l, n]`
    fraction of tokens where |f'(x)| < `flat_slope` (the flat part of f; f' by finite
    difference of the model's own activation module); `max_abs[l, n]` the largest |f(x)|;
    `mean[l, n]` the mean f(x). Where no activation module was found, counted on the down
    projection's input instead, `activation` says so and `flat_frac` is all NaN. A neuron
    that produced NaN on any token has NaN `active_frac` / `flat_frac` (broken, not dead:
    the numerics detector reports it). Built by `capture/neuron_health.py`.
    """

    active_frac: np.ndarray  # [L, N] float32
    flat_frac: np.ndarray  # [L, N] float32 (NaN when the activation is unknown)
    max_abs: np.ndarray  # [L, N] float32
    mean: np.ndarray  # [L, N] float32
    n_tokens: int
    threshold: float
    flat_slope: float
    activation: str  # e.g. "SiLU", "GELUTanh", or "down projection input (no activation module)"


@dataclass
class GradientHealth:
    """Gradient norms of the next-token loss (mean cross-entropy over the prompt's positions).

    `resid[p, l]`: ||dLoss/dx_l|| of prompt p, x_l the residual stream after block l, the norm
    taken over the whole [T, D] block; `embed[p]` the same for the embeddings' output;
    `params[p, l]`: the norm of the gradient with respect to all of block l's parameters
    together; `attn_params` / `mlp_params` [p, l] the same for its attention and its MLP;
    `loss[p]` the loss itself. float32, NaN where a prompt had fewer than 2 tokens.
    """

    resid: np.ndarray  # [P, L]
    embed: np.ndarray  # [P]
    params: np.ndarray  # [P, L]
    attn_params: np.ndarray  # [P, L]
    mlp_params: np.ndarray  # [P, L]
    loss: np.ndarray  # [P]


@dataclass
class DiagnosticInputs:
    """Everything the detectors may read. `source` is "model" or "snapshot"."""

    traces: list[Trace]
    neurons: NeuronHealth | None = None
    gradients: GradientHealth | None = None
    source: str = "model"
    prompts: list[str] = field(default_factory=list)
    # why neurons / gradients are absent (shown in the report's skipped list), by key
    missing: dict[str, str] = field(default_factory=dict)
    # seconds per capture stage ("capture.traces", "capture.gradients"), for the report
    timings: dict[str, float] = field(default_factory=dict)
