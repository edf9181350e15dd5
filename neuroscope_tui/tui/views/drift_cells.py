"""What the drift view draws, as pure functions of a DriftResult: its grids and the cell text.

The grid is layer x checkpoint (rows are layers, like every heatmap of the app; columns are the
checkpoints in order, the base left out), of one of three measures against the base or the
previous model (`ref`, "base" or "prev"), each oriented so that change is bright:

    cka      1 - linear CKA of the residual stream after block l  (cka.<ref>)
    weights  relative Frobenius change of block l's weights      (weights.<ref>)
    neurons  mean over neurons of |Δ mean activation| at layer l (from neurons.mean)

No Textual here: the view (drift.py) is a thin layer over these, and the tests check them
against the arrays directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text

from neuroscope_tui.analysis.drift import changed_head_types, top_moved_heads, top_moved_neurons
from neuroscope_tui.analysis.drift_record import Checkpoint, DriftResult
from neuroscope_tui.tui.widgets.colorbar import format_value

REFS = ("base", "prev")
REF_WORDS = {"base": "vs base", "prev": "vs previous"}


@dataclass(frozen=True)
class DriftMetric:
    """One measure the grid can show: its name on screen, its unit and the array it needs."""

    label: str
    unit: str
    needs: str  # an array of DriftResult.arrays, "{ref}" filled in ("cka.{ref}")


METRICS: dict[str, DriftMetric] = {
    "cka": DriftMetric("1 - CKA (residual)", "1-CKA", "cka.{ref}"),
    "weights": DriftMetric("weight change (block)", "rel. Frobenius", "weights.{ref}"),
    "neurons": DriftMetric("neuron shift", "mean |Δ mean|", "neurons.mean"),
}


def ref_model(c: int, ref: str) -> int:
    """The model (M axis: 0 the base) checkpoint c is compared with."""
    return 0 if ref == "base" else c


def neuron_shift(result: DriftResult, ref: str) -> np.ndarray:
    """[C, L] mean over neurons of |neurons.mean[c + 1] - neurons.mean[reference of c]|."""
    means = result.arrays["neurons.mean"].astype(np.float64)  # [M, L, N]
    refs = [ref_model(c, ref) for c in range(result.n_checkpoints)]
    return np.abs(means[1:] - means[refs]).mean(axis=-1)  # [C, L]


def available(result: DriftResult, metric: str, ref: str) -> bool:
    """Whether `result` holds what `metric` needs (a skipped measure is absent)."""
    return METRICS[metric].needs.format(ref=ref) in result.arrays


def why_missing(result: DriftResult, metric: str, ref: str) -> str:
    """One sentence: why `metric` cannot be drawn (the reason `skipped` gives, if any)."""
    name = METRICS[metric].needs.format(ref=ref)
    reason = result.skipped.get(name) or next(
        (why for key, why in result.skipped.items() if name.startswith(key)), ""
    )
    label = METRICS[metric].label
    return f"{label} was not measured" + (f": {reason}" if reason else ".")


def metric_values(result: DriftResult, metric: str, ref: str) -> np.ndarray:
    """[C, L] the measure per checkpoint and layer, change bright (KeyError when absent)."""
    if metric == "neurons":
        return neuron_shift(result, ref)
    values = result.arrays[METRICS[metric].needs.format(ref=ref)].astype(np.float64)
    return 1.0 - values if metric == "cka" else values


LOG_DECADES = 4  # a log scale spans at most this many decades below the largest change


def colour_scale(raw: np.ndarray, log: bool) -> tuple[np.ndarray, float, float]:
    """(colours in [0, 1], lo, hi) of changes `raw` (>= 0; NaN stays NaN).

    Linear: 0 to the largest change. Log: the smallest positive change (at most LOG_DECADES
    decades below the largest) to the largest; smaller ones, and no change at all, get the
    dark end. Drift spans decades (1 - CKA of 1e-5 where a fine-tune starts, 1e-2 at the last
    layers), so on a linear scale only the largest cells would light up.
    """
    raw = np.asarray(raw, dtype=np.float64)
    finite = raw[np.isfinite(raw)]
    hi = float(finite.max()) if finite.size else 0.0
    if not hi > 0:  # nothing moved (or nothing finite): every cell at the dark end
        return np.where(np.isnan(raw), np.nan, 0.0), 0.0, 1.0
    if not log:
        return np.clip(raw / hi, 0.0, 1.0), 0.0, hi
    lo = max(float(finite[finite > 0].min()), hi * 10.0**-LOG_DECADES)
    if not hi > lo:
        return np.where(np.isnan(raw), np.nan, np.where(raw >= hi, 1.0, 0.0)), lo, hi
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.log(np.maximum(raw, lo) / lo) / np.log(hi / lo)
    norm = np.where(raw < lo, 0.0, norm)
    return np.where(np.isnan(raw), np.nan, np.clip(norm, 0.0, 1.0)), lo, hi


def column_label(ckpt: Checkpoint) -> str:
    """A checkpoint's column on the axis: its trainer step, else its label."""
    return str(ckpt.step) if ckpt.step is not None else ckpt.label


def similarity_text(value: float) -> str:
    """A CKA or cosine: near 1 with enough digits to show a change (0.99998, not "1")."""
    if np.isfinite(value) and 0.99 < value < 1.0:
        return f"{value:.6f}".rstrip("0")
    return format_value(value)


def _figure(result: DriftResult, name: str, c: int, layer: int | None = None) -> float:
    arr = result.arrays.get(name)
    if arr is None:
        return float("nan")
    return float(arr[c] if layer is None else arr[c, layer])


def _mean_kl(result: DriftResult, ref: str, c: int) -> float:
    arr = result.arrays.get(f"kl.{ref}")
    return float("nan") if arr is None else float(np.nanmean(arr[c]))


def cell_text(result: DriftResult, metric: str, ref: str, c: int, layer: int, k: int = 5) -> Text:
    """The detail pane of (checkpoint c, layer): the figures, then the heads and neurons of
    that layer that moved most against the reference."""
    ckpt, refs = result.checkpoints[c], result.models[ref_model(c, ref)]
    text = Text()
    text.append(f"{ckpt.label}", "bold")
    text.append(f" · layer {layer}\n")
    text.append(f"vs {refs.label}" + (" (previous)" if ref == "prev" else "") + "\n\n")
    rows = [
        ("CKA", _figure(result, f"cka.{ref}", c, layer)),
        ("cos", _figure(result, f"cos.{ref}", c, layer)),
        ("weight change", _figure(result, f"weights.{ref}", c, layer)),
    ]
    if "neurons.mean" in result.arrays:
        rows.append(("neuron shift", float(neuron_shift(result, ref)[c, layer])))
    rows.append(("KL (nats)", _mean_kl(result, ref, c)))  # next token, mean over prompts
    for name, value in rows:
        text.append(f"{name:<15}", "dim")
        shown = similarity_text(value) if name in ("CKA", "cos") else format_value(value)
        text.append(f"{shown}\n", "bold")
    split = result.arrays.get("lens.split.base")
    agree = _figure(result, "lens.agree.base", c, layer)
    text.append(f"{'lens split':<15}", "dim")
    if split is None:
        text.append("–\n", "bold")
    else:
        at = int(split[c])
        text.append("never" if at < 0 else f"layer {at}", "bold")
        text.append(f" (agree here {format_value(agree)})\n" if np.isfinite(agree) else "\n")
    heads = top_moved_heads(result, c, layer, k, ref=ref) if result.n_heads else []
    recorded = bool(heads)
    heads = [h for h in heads if h[2] != 0.0]  # an unmoved head says nothing
    types = {h: (a, b) for _, h, a, b in changed_head_types(result, c, ref, layer=layer)}
    text.append("\ntop moved heads\n", "bold")
    if not heads:
        text.append("  no head score moved\n" if recorded else "  no head scores recorded\n", "dim")
    for head, score, delta in heads:
        text.append(f"  H{head:<3}{score:<10}{delta:+.3g}")
        if head in types:
            before, after = types.pop(head)
            text.append(f"  {before or '·'}→{after or '·'}", "bold")
        text.append("\n")
    for head, (before, after) in sorted(types.items()):  # a type change beyond the top k
        text.append(f"  H{head:<3}type {before or '·'}→{after or '·'}\n")
    neurons = top_moved_neurons(result, c, layer, k, ref=ref)
    recorded = bool(neurons)
    neurons = [n for n in neurons if n[1] != 0.0]
    text.append("\ntop moved neurons\n", "bold")
    if not neurons:
        text.append("  no neuron moved\n" if recorded else "  no neuron means recorded\n", "dim")
    for neuron, shift in neurons:
        text.append(f"  n{neuron:<6}{shift:+.3g}\n")
    if result.skipped:
        text.append("\nnot measured: ", "dim")
        text.append(", ".join(sorted(result.skipped)), "dim")
    return text
