"""Prunable layers, silent or outsized blocks, and representation collapse.

- Prunable: block l barely changes the stream. From `resid.delta` [layer, token]
  (||x_out - x_in|| / ||x_in||) averaged over tokens after the first (the first token's
  massive activation makes its relative change tiny in every trained model), and from linear
  CKA between block l's input and output over the tokens after the first (`resid.full`; the
  input of block l > 0 is the output of block l - 1; block 0's input, the embeddings, is not
  kept in full, so block 0 is judged by its delta alone).
- Blocks: the MLP (or attention) of block l writes nothing (`mlp.norm` / `attn.norm` ~0 next
  to the stream), or writes far more than the median block's.
- Representation collapse: the tokens' residual vectors at layer l all point the same way
  (mean pairwise cosine among the tokens after the first, `resid.full`).

Each kind is one finding listing its layers, so a trained model's normal anisotropy in many
layers gives one line, not thirty.
"""

from __future__ import annotations

import numpy as np

from neuroscope_tui.analysis.connectivity import cka_matrix
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

NAME = "collapse"
INFO = (
    "layers that barely change the stream, blocks that write nothing or far too much, and "
    "token representations that all point the same way",
    "per-token summaries (resid.delta, mlp.norm, attn.norm); full residual rows (resid.full) "
    "for CKA and cosine",
)

# A block that moves the stream by under 1% of its norm on average does almost nothing; a
# trained model's quietest blocks move it by several percent, a tiny random model's by tens.
PRUNABLE_DELTA = 0.01
# Linear CKA between a block's input and output above this: the token geometry is unchanged.
# Consecutive layers of trained models sit around 0.9-0.99 once the first token is left out.
PRUNABLE_CKA = 0.999
# CKA over fewer tokens is meaningless (with 2 centred samples it is always 1).
MIN_CKA_TOKENS = 8
# Mean pairwise cosine among tokens above this: the representations are nearly one direction.
# Trained models are anisotropic (0.3-0.8 in the middle layers is usual), but above 0.95 the
# tokens are hard to tell apart by direction.
COLLAPSE_COSINE = 0.95
# A sub-block whose output norm is under this fraction of the stream's norm writes nothing.
SILENT_FRACTION = 1e-4
# A block's MLP (or attention) whose typical output norm is this many times the median
# block's dwarfs the others. Trained models vary by up to ~10x across depth (the last MLP is
# often the largest); a sub-block scaled up 100x stands out.
OUTSIZED_FACTOR = 30.0

PRUNABLE_MEANING = (
    "These blocks leave the residual stream almost as they found it: their output is nearly "
    "their input (relative change under 1%, or CKA between input and output above 0.999). "
    "They cost compute and add little; they are the first candidates for layer pruning or "
    "early exit (check the loss without them before removing any). In a model you trained, "
    "blocks that do nothing can also mean they never learned: compare with the gradient "
    "findings. After a block that writes far too much, every later block looks like this "
    "because the stream is out of scale."
)
SILENT_MEANING = (
    "This sub-block's output is essentially zero next to the residual stream, so the block "
    "computes nothing useful: its weights may have been zeroed or pruned, a conversion may "
    "have dropped them, or an adapter merge went wrong. Compare its weights with the original "
    "checkpoint; if deliberate, the sub-block can be removed."
)
OUTSIZED_MEANING = (
    "This sub-block writes vectors tens of times larger than the other blocks' (median) into "
    "the stream. Every later block then changes the stream relatively little and the final "
    "normalisation divides everything by this one contribution: the model's behaviour hinges "
    "on one layer. Typical causes: weights scaled by a bad conversion or merge, a missing "
    "normalisation, or training instability. Check that layer's weights' norms."
)
COLLAPSE_MEANING = (
    "At these layers the residual vectors of different tokens nearly point the same way (mean "
    "pairwise cosine above 0.95, first token left out): representation collapse. Trained "
    "models are anisotropic to a degree, often from one dominant direction; near 1 the tokens "
    "differ only in small components, which hurts probes, clustering and similarity-based "
    "analyses (centre the vectors first) and, if it reaches the last layer, the model's "
    "ability to tell contexts apart. In a model you trained it can signal rank collapse: "
    "check the attention (uniform heads average the tokens together)."
)


def detect(inputs: DiagnosticInputs) -> list[Finding]:
    has_delta = traces_with(inputs, "resid.delta")
    has_full = traces_with(inputs, "resid.full")
    has_norms = traces_with(inputs, "resid.norm")
    if not has_delta and not has_full and not has_norms:
        raise DetectorSkipped(
            "no trace holds resid.delta, resid.full or block output norms; capture the "
            "resid, attn and mlp sites."
        )
    n_layers = n_model_layers(inputs)
    delta = _mean_after_first(has_delta, "resid.delta", n_layers)
    cka = _block_cka(has_full, n_layers)
    cosine = _pairwise_cosine(has_full, n_layers)
    curves = {
        "relative change of the stream (mean over tokens)": series(delta),
        "CKA between block input and output": series(cka),
        "mean pairwise cosine of tokens": series(cosine),
    }
    findings = []
    prunable = _prunable(delta, cka, curves)
    if prunable is not None:
        findings.append(prunable)
    findings += _blocks(inputs, n_layers)
    collapsed = _collapsed(cosine, curves)
    if collapsed is not None:
        findings.append(collapsed)
    return findings


def _mean_after_first(found, name: str, n_layers: int) -> np.ndarray:
    """Mean of [L', T] rows over tokens t >= 1, pooled over prompts -> [n_layers]."""
    total = np.zeros(n_layers)
    count = np.zeros(n_layers)
    for _, trace in found:
        values = np.asarray(trace.get(name), dtype=np.float64)[:, 1:]
        for row, layer in enumerate(trace.layers()):
            if layer < n_layers:
                ok = np.isfinite(values[row])
                total[layer] += values[row][ok].sum()
                count[layer] += ok.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _block_cka(found, n_layers: int) -> np.ndarray:
    """Mean over prompts of CKA(output of l - 1, output of l) over tokens t >= 1 -> [n_layers].

    One `cka_matrix` per prompt (token x token Grams: cheap for short prompts) and its
    first off-diagonal; non-finite values (a NaN in the stream) are left out.
    """
    sums = np.zeros(n_layers)
    count = np.zeros(n_layers)
    for _, trace in found:
        resid = trace.get("resid.full")  # [L', T, D]
        if resid.shape[1] - 1 < MIN_CKA_TOKENS:
            continue
        layers = full_layers(trace)
        with np.errstate(invalid="ignore", over="ignore"):
            cka = cka_matrix(resid[:, 1:])  # [L', L']
        for row in range(1, len(layers)):
            layer = layers[row]
            if layers[row - 1] == layer - 1 and layer < n_layers and np.isfinite(cka[row - 1, row]):
                sums[layer] += cka[row - 1, row]
                count[layer] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, sums / count, np.nan)


def _pairwise_cosine(found, n_layers: int) -> np.ndarray:
    """Mean over prompts of the mean pairwise cosine among tokens t >= 1 -> [n_layers]."""
    sums = np.zeros(n_layers)
    count = np.zeros(n_layers)
    for _, trace in found:
        resid = trace.get("resid.full")
        if resid.shape[1] < 3:
            continue
        for row, layer in enumerate(full_layers(trace)):
            x = np.asarray(resid[row, 1:], dtype=np.float64)  # [n, D]
            norms = np.linalg.norm(x, axis=1)
            ok = np.isfinite(norms) & (norms > 0)
            n = int(ok.sum())
            if n < 2 or layer >= n_layers:
                continue
            unit = x[ok] / norms[ok, None]
            total = unit.sum(axis=0)
            # sum over i != j of cos = ||sum u||^2 - n; mean over the n (n - 1) ordered pairs
            sums[layer] += (float(total @ total) - n) / (n * (n - 1))
            count[layer] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, sums / count, np.nan)


def _prunable(delta: np.ndarray, cka: np.ndarray, curves) -> Finding | None:
    small = np.isfinite(delta) & (np.where(np.isfinite(delta), delta, 1) < PRUNABLE_DELTA)
    same = np.isfinite(cka) & (np.where(np.isfinite(cka), cka, 0) > PRUNABLE_CKA)
    layers = [int(v) for v in np.flatnonzero(small | same)]
    if not layers:
        return None
    quietest = min(layers, key=lambda i: delta[i] if np.isfinite(delta[i]) else 1.0)
    parts = []
    if np.isfinite(delta[quietest]):
        parts.append(f"relative change {fmt(100 * float(delta[quietest]))}%")
    if np.isfinite(cka[quietest]):
        # four decimals: the threshold sits at 0.999
        parts.append(f"CKA between input and output {float(cka[quietest]):.4f}")
    if len(layers) == 1:
        title = f"Block {quietest} barely changes the stream ({', '.join(parts)})"
    else:
        title = (
            f"{len(layers)} blocks barely change the stream ({layer_list(layers)}); "
            f"quietest, block {quietest}: {', '.join(parts)}"
        )
    return Finding(
        detector=NAME,
        severity="warning",
        title=title,
        meaning=PRUNABLE_MEANING,
        cells=[Cell("residual", layer=layer) for layer in layers[:8]],
        figures={
            "layers": layers,
            "delta": [float(delta[i]) for i in layers],
            "cka": [float(cka[i]) for i in layers],
            "threshold_delta": PRUNABLE_DELTA,
            "threshold_cka": PRUNABLE_CKA,
        },
        series=curves,
    )


def _typical_norm(inputs: DiagnosticInputs, name: str, n_layers: int) -> np.ndarray:
    """Median over tokens t >= 1 (pooled over prompts) of `name` [L', T] -> [n_layers]."""
    pooled: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
    for _, trace in traces_with(inputs, name):
        values = np.asarray(trace.get(name), dtype=np.float64)
        start = 1 if values.shape[1] > 1 else 0
        for row, layer in enumerate(trace.layers()):
            if layer < n_layers:
                pooled[layer].append(values[row, start:])
    return np.array(
        [nanmedian(np.concatenate(p)) if p else np.nan for p in pooled], dtype=np.float64
    )


def _blocks(inputs: DiagnosticInputs, n_layers: int) -> list[Finding]:
    stream = _typical_norm(inputs, "resid.norm", n_layers)
    out = []
    for site, label in (("mlp", "MLP"), ("attn", "attention")):
        norm = _typical_norm(inputs, f"{site}.norm", n_layers)
        if not np.isfinite(norm).any():
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            share = norm / stream
        silent = [
            int(i)
            for i in np.flatnonzero(
                np.isfinite(share) & (np.nan_to_num(share, nan=1) < SILENT_FRACTION)
            )
        ]
        others = _median_of_others(norm)  # [n_layers]: each layer against the rest
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(others > 0, norm / others, np.nan)
        loud = [int(i) for i in np.flatnonzero(np.nan_to_num(ratio, nan=0) > OUTSIZED_FACTOR)]
        curves = {
            f"{label} output norm (median over tokens)": series(norm),
            "stream norm (median over tokens)": series(stream),
        }
        if silent:
            out.append(
                Finding(
                    detector=NAME,
                    severity="warning",
                    title=(
                        f"{_whose(label, silent)} "
                        f"{'contributes' if len(silent) == 1 else 'contribute'} nothing "
                        f"(output norm {fmt(float(norm[silent[0]]))}, under "
                        f"{fmt(SILENT_FRACTION)} of the stream's)"
                    ),
                    meaning=SILENT_MEANING,
                    cells=[Cell("residual", layer=layer) for layer in silent[:8]],
                    figures={
                        "site": site,
                        "layers": silent,
                        "output_norm": [float(norm[i]) for i in silent],
                        "share_of_stream": [float(share[i]) for i in silent],
                        "threshold": SILENT_FRACTION,
                    },
                    series=curves,
                )
            )
        if loud:
            top = max(loud, key=lambda i: ratio[i])
            out.append(
                Finding(
                    detector=NAME,
                    severity="warning",
                    title=(
                        f"{_whose(label, loud)} {'writes' if len(loud) == 1 else 'write'} "
                        f"{fmt(float(ratio[top]))}x more than the other blocks' median "
                        f"({fmt(float(norm[top]))} vs {fmt(float(others[top]))})"
                    ),
                    meaning=OUTSIZED_MEANING,
                    cells=[Cell("residual", layer=layer) for layer in loud[:8]],
                    figures={
                        "site": site,
                        "layers": loud,
                        "output_norm": [float(norm[i]) for i in loud],
                        "ratio_to_median": [float(ratio[i]) for i in loud],
                        "median_of_others": [float(others[i]) for i in loud],
                        "threshold": OUTSIZED_FACTOR,
                    },
                    series=curves,
                )
            )
    return out


def _whose(label: str, layers: list[int]) -> str:
    """ "The MLP of block 3" / "The MLPs of blocks 3 and 5"."""
    if len(layers) == 1:
        return f"The {label} of block {layers[0]}"
    many = "MLPs" if label == "MLP" else label
    return f"The {many} of blocks {layer_list(layers)}"


def _median_of_others(values: np.ndarray) -> np.ndarray:
    """For each layer, the median of the other layers' finite values (NaN when none): a
    leave-one-out reference, so one outsized layer of two still stands out."""
    out = np.full(len(values), np.nan)
    for i in range(len(values)):
        rest = np.delete(values, i)
        rest = rest[np.isfinite(rest)]
        if rest.size:
            out[i] = float(np.median(rest))
    return out


def _collapsed(cosine: np.ndarray, curves) -> Finding | None:
    high = np.isfinite(cosine) & (np.nan_to_num(cosine, nan=0) > COLLAPSE_COSINE)
    layers = [int(v) for v in np.flatnonzero(high)]
    if not layers:
        return None
    top = max(layers, key=lambda i: cosine[i])
    return Finding(
        detector=NAME,
        severity="warning",
        title=(
            f"Token representations point the same way at {plural(len(layers), 'layer')} "
            f"({layer_list(layers)}): mean pairwise cosine up to {fmt(float(cosine[top]))} "
            f"at layer {top}"
        ),
        meaning=COLLAPSE_MEANING,
        cells=[Cell("residual", layer=layer) for layer in layers[:8]],
        figures={
            "layers": layers,
            "cosine": [float(cosine[i]) for i in layers],
            "threshold": COLLAPSE_COSINE,
        },
        series=curves,
    )
