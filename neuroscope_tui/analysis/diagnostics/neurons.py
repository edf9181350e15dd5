"""Dead and saturated MLP neurons over the prompt set.

Reads `NeuronHealth` (counted on the activation function's output over every token, with the
flat part of the function found from its slope; needs the live model). Dead: a neuron never
exceeds the activation threshold on any token, and its largest output is negligible next to
its layer's other neurons (`DEAD_RELATIVE`), so a model whose activations are all small (a
tiny random model; a threshold too high for the model's scale) is not called dead.
Saturated: it sits on the flat part of its activation on at least `SATURATED_SHARE` of tokens
while not dead. Without NeuronHealth but with `neurons.full` rows in the traces, only dead
neurons can be counted (saturation needs the activation's slope, i.e. the model).
"""

from __future__ import annotations

import numpy as np

from neuroscope_tui.analysis.diagnostics.common import (
    fmt,
    full_layers,
    layer_list,
    n_model_layers,
    nanmedian,
    plural,
    series,
    traces_with,
)
from neuroscope_tui.analysis.diagnostics.findings import Cell, DetectorSkipped, Finding
from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs

NAME = "dead_neurons"
INFO = (
    "MLP neurons that never activate, or sit on the flat part of their activation function",
    "the model (neuron statistics), or full MLP neuron rows (neurons.full) for dead ones only",
)

# A neuron is saturated when flat on at least this share of tokens: "almost always", leaving
# room for a token or two in a hundred that wakes it (a tiny random model's neurons are flat
# on well under half of the tokens).
SATURATED_SHARE = 0.99
# A layer is flagged when more than this share of its neurons is dead (or saturated): a
# healthy trained model has at most a percent or two for a varied prompt set; a tiny random
# model has none.
LAYER_SHARE = 0.05
# The model-wide summary appears when more than this share of all neurons is dead (or
# saturated), even if no single layer passes LAYER_SHARE.
OVERALL_SHARE = 0.01
# A neuron that never passes the threshold counts as dead only when its largest |output| is
# also under this fraction of the median neuron's largest |output| in its layer: a dead
# neuron is an outlier of its layer, not a layer of small numbers (a tiny random gemma's
# gated GELU outputs all sit under the capture's 0.01 threshold).
DEAD_RELATIVE = 0.01
# Past this many flagged layers, one finding lists them instead of one finding per layer.
MAX_LAYER_FINDINGS = 6

DEAD_MEANING = (
    "These neurons never produced an output above the threshold on any token of the prompt "
    "set: for these inputs they do nothing. A few are normal (a neuron may be specialised for "
    "text the prompt set lacks; ReLU models have more). A large share in one layer wastes "
    "capacity and often follows a too-high learning rate, a bad initialisation or over-eager "
    "weight decay or pruning. Confirm with a larger, more varied prompt set before acting; "
    "neurons dead over a large set are candidates for pruning."
)
SATURATED_MEANING = (
    "These neurons sit on the flat part of their activation function (derivative near zero) "
    "on at least 99% of tokens, so they pass almost no gradient and learn slowly or not at "
    "all. With ReLU that is the negative side (nearly dead); with GELU or SiLU the far negative "
    "side; with tanh or sigmoid either end. Many in one layer often mean its pre-activations "
    "grew too large: check that layer's norms, the learning rate, and its normalisation."
)


def detect(inputs: DiagnosticInputs) -> list[Finding]:
    health = inputs.neurons
    if health is not None:
        active = np.asarray(health.active_frac, dtype=np.float64)
        flat = np.asarray(health.flat_frac, dtype=np.float64)
        dead = np.isfinite(active) & (active == 0)
        largest = np.asarray(health.max_abs, dtype=np.float64)
        if np.isfinite(largest).any():
            dead &= _negligible(largest, np.isfinite(active) & (active > 0))
        saturated = None
        if np.isfinite(flat).any():
            saturated = np.isfinite(flat) & (flat >= SATURATED_SHARE) & ~dead
        how = f"{health.activation}, threshold {fmt(health.threshold)}, {health.n_tokens} tokens"
        neuron_ids = None
        held = np.ones(dead.shape[0], dtype=bool)
    else:
        dead, neuron_ids, held, how = _dead_from_rows(inputs)
        saturated = None
    findings: list[Finding] = []
    findings += _kind_findings("dead", "never activate", dead, held, neuron_ids, how, DEAD_MEANING)
    if saturated is not None:
        findings += _kind_findings(
            "saturated",
            "sit on the flat part of their activation",
            saturated,
            held,
            neuron_ids,
            how,
            SATURATED_MEANING,
        )
    return findings


def _dead_from_rows(inputs: DiagnosticInputs):
    """Dead neurons from `neurons.full` rows: never |x| > the capture's near-zero threshold and
    negligible next to the layer's other neurons."""
    found = traces_with(inputs, "neurons.full")
    if not found:
        reason = inputs.missing.get("neurons") or (
            "it needs the model (neuron statistics) or traces with full MLP neuron rows"
        )
        raise DetectorSkipped(_sentence(reason))
    n_layers = n_model_layers(inputs)
    width = max(t.get("neurons.full").shape[2] for _, t in found)
    ever = np.zeros((n_layers, width), dtype=bool)
    largest = np.full((n_layers, width), np.nan)  # largest finite |x| per neuron
    seen = np.zeros((n_layers, width), dtype=bool)  # some finite value: NaN rows prove nothing
    held = np.zeros(n_layers, dtype=bool)
    threshold = found[0][1].spec.near_zero
    tokens = 0
    for _, trace in found:
        rows = np.asarray(trace.get("neurons.full"))  # [L', T, N]
        tokens += rows.shape[1]
        for row, layer in enumerate(full_layers(trace)):
            if layer < n_layers:
                mag = np.abs(rows[row])
                finite = np.isfinite(mag)
                on = np.where(finite, mag, 0) > threshold  # [T, N]
                ever[layer, : rows.shape[2]] |= on.any(axis=0)
                seen[layer, : rows.shape[2]] |= finite.any(axis=0)
                peak = np.where(finite.any(axis=0), np.where(finite, mag, 0).max(axis=0), np.nan)
                largest[layer, : rows.shape[2]] = np.fmax(largest[layer, : rows.shape[2]], peak)
                held[layer] = True
    dead = ~ever & seen & held[:, None] & _negligible(largest, ever)
    subset = found[0][1].spec.neuron_subset
    how = (
        f"counted on the kept MLP neuron rows, threshold {fmt(threshold)}, {tokens} tokens; "
        "saturation needs the model"
    )
    return dead, (list(subset) if subset is not None else None), held, how


def _kind_findings(kind, verb, mask, held, neuron_ids, how, meaning) -> list[Finding]:
    """Per-layer findings (or one listing the layers) and the model-wide one for `mask`."""
    n_per_layer = mask.shape[1]
    per_layer = mask.sum(axis=1) / max(n_per_layer, 1)  # [L]
    share = np.where(held, per_layer, np.nan)
    total = int(mask[held].sum())
    n_total = int(held.sum()) * n_per_layer
    overall = total / max(n_total, 1)
    flagged = [int(layer) for layer in np.flatnonzero(held & (per_layer > LAYER_SHARE))]
    out: list[Finding] = []

    def example(layer: int) -> int | None:
        idx = np.flatnonzero(mask[layer])
        if not len(idx):
            return None
        return int(neuron_ids[idx[0]]) if neuron_ids is not None else int(idx[0])

    def neurons_at(layer: int) -> list[int]:
        idx = np.flatnonzero(mask[layer])[:50]
        return [int(neuron_ids[i]) if neuron_ids is not None else int(i) for i in idx]

    if flagged and len(flagged) <= MAX_LAYER_FINDINGS:
        for layer in flagged:
            n = int(mask[layer].sum())
            out.append(
                Finding(
                    detector=NAME,
                    severity="warning",
                    title=(
                        f"Layer {layer}: {fmt(100 * per_layer[layer])}% of MLP neurons {verb} "
                        f"({n} of {n_per_layer})"
                    ),
                    meaning=meaning,
                    cells=[Cell("scan", layer=layer, dimension=example(layer))],
                    figures={
                        "kind": kind,
                        "layer": layer,
                        "count": n,
                        "of": n_per_layer,
                        "share": float(per_layer[layer]),
                        "neurons": neurons_at(layer),
                        "counted": how,
                        "threshold_share": LAYER_SHARE,
                    },
                )
            )
    if flagged or overall > OVERALL_SHARE:
        where = ""
        if flagged:
            where = f"; over {fmt(100 * LAYER_SHARE)}% in layers {layer_list(flagged)}"
        out.append(
            Finding(
                detector=NAME,
                severity="warning",
                title=(
                    f"{plural(total, 'MLP neuron')} of {n_total} ({fmt(100 * overall)}%) {verb} "
                    f"over the prompt set{where}"
                ),
                meaning=meaning,
                cells=[Cell("scan", layer=layer, dimension=example(layer)) for layer in flagged],
                figures={
                    "kind": kind,
                    "count": total,
                    "of": n_total,
                    "share": overall,
                    "flagged_layers": flagged,
                    "counted": how,
                    "threshold_share": LAYER_SHARE,
                },
                series={f"{kind} share per layer": series(share)},
            )
        )
    return out


def _negligible(largest: np.ndarray, active: np.ndarray) -> np.ndarray:
    """[L, N] bool: a neuron's largest |output| is under DEAD_RELATIVE x its layer's reference,
    the median over the layer's active neurons (over all of them where none is active: a layer
    of small outputs is not an outlier of itself). The active ones, not all: when most of a
    layer is dead the median of all would be a dead neuron's."""
    values = np.where(np.isfinite(largest), largest, np.nan)
    reference = np.empty(values.shape[0])
    for layer in range(values.shape[0]):
        pool = values[layer, active[layer]] if active[layer].any() else values[layer]
        reference[layer] = nanmedian(pool) if pool.size else np.nan
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(values, nan=np.inf) <= DEAD_RELATIVE * reference[:, None]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith(".") else text + "."
