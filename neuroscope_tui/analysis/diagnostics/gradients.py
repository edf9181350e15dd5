"""Gradient health: vanishing and exploding gradients of the next-token loss, per layer.

Reads `GradientHealth` (one backward pass per prompt; needs the live model). Per layer the
median over prompts of ||dLoss/dx_l|| (x_l the residual stream after block l) and of the norm
of the gradient for block l's parameters; a layer is flagged when its value is below the
median over layers / `VANISHING_FACTOR` or above `EXPLODING_FACTOR` x that median. Infinite
or NaN gradients are errors.
"""

from __future__ import annotations

import numpy as np

from neuroscope_tui.analysis.diagnostics.common import (
    fmt,
    layer_list,
    nanmedian,
    plural,
    series,
)
from neuroscope_tui.analysis.diagnostics.findings import Cell, DetectorSkipped, Finding
from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs

NAME = "gradient_health"
INFO = (
    "per-layer gradient norms of the next-token loss, flagging vanishing and exploding layers",
    "the model (one backward pass per prompt)",
)

# Two orders of magnitude either way from the median layer. Healthy pre-norm transformers
# keep residual-gradient norms within about one order of magnitude across depth (the skip
# path carries the gradient), and parameter-gradient norms within ~1.5; a 100x gap means
# some layers effectively do not learn (or dominate every update).
VANISHING_FACTOR = 100.0
EXPLODING_FACTOR = 100.0

VANISHING_MEANING = (
    "The gradient that reaches these layers is over 100 times smaller than at the median layer, "
    "so training barely changes them: the classic vanishing gradient. In a pre-norm "
    "transformer the residual path should carry the gradient to every layer; a gap this large "
    "usually means a layer whose output is far larger than the rest (later layers then "
    "matter little to the loss), a saturated or zeroed block, or a broken residual connection. "
    "Compare with the collapse and numerics findings for the same layers."
)
EXPLODING_MEANING = (
    "The gradient at these layers is over 100 times larger than at the median layer: one "
    "update step would change them far more than the rest, which destabilises training "
    "(loss spikes, divergence). Usual causes: a layer scaled up (weights or a missing "
    "normalisation), a too-high learning rate, or fp16 overflow. Gradient clipping hides the "
    "symptom; look for the layer whose activations are out of scale."
)
NONFINITE_MEANING = (
    "Some gradients are infinite or NaN: one backward pass through this model on these prompts "
    "already breaks, so training (or fine-tuning) on them would corrupt the weights in one "
    "step. Usually the forward pass already holds a NaN or an overflow (see the numerics "
    "findings), or a division by a zero norm."
)

_QUANTITIES = (
    ("resid", "residual-stream gradient", "residual"),
    ("params", "parameter gradient", "residual"),
)


def detect(inputs: DiagnosticInputs) -> list[Finding]:
    grads = inputs.gradients
    if grads is None:
        reason = inputs.missing.get("gradients") or (
            "it needs the model: run report on a model, not a snapshot"
        )
        raise DetectorSkipped(reason if reason.endswith(".") else reason + ".")
    findings: list[Finding] = []
    curves: dict[str, np.ndarray] = {}
    for key, _, _ in _QUANTITIES:
        values = np.asarray(getattr(grads, key), dtype=np.float64)  # [P, L]
        curves[key] = nanmedian(values, axis=0) if values.size else np.array([])
    bad = _nonfinite(grads, inputs)
    if bad is not None:
        findings.append(bad)
    for key, label, view in _QUANTITIES:
        findings += _outliers(key, label, view, curves)
    return findings


def _nonfinite(grads, inputs: DiagnosticInputs) -> Finding | None:
    """One error naming the prompts and layers with inf or NaN gradients (NaN rows of prompts
    with fewer than 2 tokens are expected and left out)."""
    loss = np.asarray(grads.loss, dtype=np.float64)
    # a prompt is short by its token count, not by its NaNs: a model whose loss is NaN on
    # every layer of a long prompt is exactly what this finding is for
    lengths = [t.n_tokens for t in inputs.traces]
    if len(lengths) == len(loss):
        short = np.asarray(lengths) < 2
    else:  # gradients from elsewhere than these traces: fall back on the NaN pattern
        short = np.isnan(loss) & np.all(np.isnan(np.asarray(grads.resid, dtype=np.float64)), axis=1)
    where: list[tuple[str, int, int]] = []
    for key in ("resid", "params", "attn_params", "mlp_params"):
        values = np.asarray(getattr(grads, key), dtype=np.float64)
        if not values.size:
            continue
        bad = ~np.isfinite(values)
        bad[short] = False
        for p, layer in zip(*np.nonzero(bad), strict=True):
            where.append((key, int(p), int(layer)))
    loss_bad = [int(p) for p in np.flatnonzero(~np.isfinite(loss) & ~short)]
    if not where and not loss_bad:
        return None
    layers = sorted({layer for _, _, layer in where})
    prompts = sorted({p for _, p, _ in where} | set(loss_bad))
    first = min(where, key=lambda w: (w[2], w[1])) if where else None
    title = f"Gradients are infinite or NaN for {plural(len(prompts), 'prompt')}" + (
        f", from layer {layers[0]} (layers {layer_list(layers)})" if layers else " (the loss)"
    )
    cells = [Cell("residual", layer=first[2], prompt=first[1])] if first else []
    return Finding(
        detector=NAME,
        severity="error",
        title=title,
        meaning=NONFINITE_MEANING,
        cells=cells,
        figures={
            "prompts": prompts,
            "layers": layers,
            "first": list(first) if first else None,
            "loss_nonfinite_prompts": loss_bad,
        },
    )


def _outliers(key: str, label: str, view: str, curves: dict[str, np.ndarray]) -> list[Finding]:
    curve = curves[key]
    finite = np.isfinite(curve)
    if finite.sum() < 2:
        return []
    median = float(np.median(curve[finite]))
    if median <= 0:
        return []
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = curve / median
    out = []
    for direction, mask, factor, meaning in (
        (
            "vanishing",
            finite & (ratio < 1.0 / VANISHING_FACTOR),
            VANISHING_FACTOR,
            VANISHING_MEANING,
        ),
        ("exploding", finite & (ratio > EXPLODING_FACTOR), EXPLODING_FACTOR, EXPLODING_MEANING),
    ):
        layers = [int(v) for v in np.flatnonzero(mask)]
        if not layers:
            continue
        extreme = (
            min(layers, key=lambda i: ratio[i])
            if direction == "vanishing"
            else max(layers, key=lambda i: ratio[i])
        )
        how, reach = ("below 1/", "down to") if direction == "vanishing" else ("above ", "up to")
        out.append(
            Finding(
                detector=NAME,
                severity="warning",
                title=(
                    f"{direction.capitalize()} {label} at {plural(len(layers), 'layer')} "
                    f"({layer_list(layers)}): {how}{fmt(factor)}x the median layer's "
                    f"{fmt(median)}, {reach} {fmt(float(curve[extreme]))} at layer {extreme}"
                ),
                meaning=meaning,
                cells=[Cell(view, layer=layer) for layer in layers[:8]],
                figures={
                    "quantity": key,
                    "direction": direction,
                    "layers": layers,
                    "median": median,
                    "values": [float(curve[i]) for i in layers],
                    "ratios": [float(ratio[i]) for i in layers],
                    "factor": factor,
                },
                series={
                    "residual-stream gradient norm (median over prompts)": series(curves["resid"]),
                    "block parameter gradient norm (median over prompts)": series(curves["params"]),
                },
            )
        )
    return out
