"""Numerics: NaN or inf anywhere, float16 overflow, and bfloat16 precision loss.

- NaN / inf: every float array of every trace (the logit-lens arrays `lens.*` are left out:
  they hold NaN by design at positions the lens was not asked for). One error per kind naming
  the first occurrence in computation order (embeddings, then per layer attention, neurons,
  MLP, stream; the output logits last) and every array it reached.
- float16 overflow: |x| above 65,504 (the largest float16) in the stream, attention or MLP
  outputs (`*.max_abs`, `resid.full`, `neurons.full`): a warning, or an error when the
  model already runs in float16.
- bfloat16 precision: bfloat16 keeps 8 significant bits, so near |x| its rounding step is
  2^(floor(log2 |x|) - 7). Where a layer's largest |x| has a step above the layer's median |x|
  (`resid.full`), adding a typical component to that entry is lost in bfloat16: an info.
"""

from __future__ import annotations

import math

import numpy as np

from neuroscope_tui.analysis.diagnostics.common import (
    fmt,
    full_layers,
    layer_list,
    n_model_layers,
    plural,
    series,
    token_label,
)
from neuroscope_tui.analysis.diagnostics.findings import Cell, DetectorSkipped, Finding
from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs
from neuroscope_tui.trace import Trace

NAME = "numerics"
INFO = (
    "NaN or inf anywhere, values that would overflow float16, and entries whose bfloat16 "
    "rounding step exceeds the layer's typical value",
    "any trace arrays; full residual rows (resid.full) for the bfloat16 check",
)

# The largest finite float16 value: anything above becomes inf when cast.
FLOAT16_MAX = 65504.0
# bfloat16 stores 7 explicit significand bits (8 significant): the spacing of values in
# [2^e, 2^(e+1)) is 2^(e - 7).
BFLOAT16_MANTISSA_BITS = 7

# arrays whose NaN / inf mean nothing (NaN by design where the lens was not asked for), and
# watch.* (capture/watch.py): rows per watched module, not per layer, so a finding could not
# name a layer; a NaN inside a block still reaches that block's own arrays, which are checked
_EXEMPT_PREFIXES = ("lens.", "watch.")
# where in one layer's computation an array's values arise, so "first" follows the data flow
_SITE_ORDER = {"heads": 0, "pattern": 0, "attn": 1, "neurons": 2, "mlp": 3, "resid": 4}

NAN_MEANING = (
    "The model produced NaN (not a number) or infinite values: everything computed from them "
    "is garbage, and it spreads forward through every later layer and token. The first "
    "place it appears is the one to look at: a weight that is already NaN or inf (a corrupt or "
    "badly converted checkpoint), an overflow in half precision (run in float32 to check), a "
    "division by a zero norm. Nothing downstream of it can be "
    "trusted, including the other findings for those layers."
)
OVERFLOW_MEANING = (
    "These activations exceed 65,504, the largest number float16 can hold: run in float16, "
    "they become inf and then NaN. This usually comes with massive activations. Run the model "
    "in bfloat16 or float32 instead, or keep the layers involved in float32 (mixed precision); "
    "if you quantize, the same entries need special handling."
)
BFLOAT16_MEANING = (
    "bfloat16 keeps only 8 significant bits, so around these huge entries its rounding step "
    "is larger than a typical entry of the layer: a typical update added to them is rounded "
    "away. Usually these are massive activations at the first token, and models trained in "
    "bfloat16 live with it. It matters for interventions, steering or patching done in "
    "bfloat16 at those entries, and for fine-tuning that must change them: use float32 there."
)


def _position(name: str, trace: Trace, row: int) -> tuple[float, int | None]:
    """(order key, model layer or None) for row `row` of array `name`: embeddings first,
    logits last, per layer in data-flow order."""
    if name.startswith("embed."):
        return (-1.0, None)
    if name.startswith("logits."):
        return (math.inf, None)
    prefix = name.split(".")[0]
    if name.startswith("pattern."):
        layer = int(name.split(".")[1])
    elif name in ("resid.full", "neurons.full"):
        layer = full_layers(trace)[row]
    else:
        layer = trace.layers()[row]
    return (layer + _SITE_ORDER.get(prefix, 5) / 10, layer)


def _first_bad(name: str, arr: np.ndarray, trace: Trace, bad: np.ndarray):
    """(order key, layer, token) of the earliest bad entry of one array."""
    if name.startswith(("embed.", "logits.")):
        tokens = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
        key, layer = _position(name, trace, 0)
        return key, layer, int(tokens[0])
    if name.startswith("pattern."):
        queries = np.flatnonzero(bad.any(axis=1))
        key, layer = _position(name, trace, 0)
        return key, layer, int(queries[0])
    per_row = bad.reshape(bad.shape[0], bad.shape[1], -1).any(axis=2)  # [L', T]
    rows = np.flatnonzero(per_row.any(axis=1))
    row = int(rows[0])
    key, layer = _position(name, trace, row)
    return key, layer, int(np.flatnonzero(per_row[row])[0])


def detect(inputs: DiagnosticInputs) -> list[Finding]:
    if not any(t.arrays for t in inputs.traces):
        raise DetectorSkipped("there are no trace arrays to check.")
    findings = []
    suspects = _suspects(inputs)
    for kind, test in (("NaN", np.isnan), ("inf", np.isinf)):
        found = _nonfinite(inputs, suspects, kind, test)
        if found is not None:
            findings.append(found)
    findings += _float16(inputs)
    bf16 = _bfloat16(inputs)
    if bf16 is not None:
        findings.append(bf16)
    return findings


def _suspects(inputs: DiagnosticInputs) -> set[tuple[int, str]]:
    """(prompt, array name) of the float arrays that may hold NaN or inf: one pass each, as a
    finite sum has no NaN or inf in it (a sum overflowing to inf only costs a closer look)."""
    out = set()
    for p, trace in enumerate(inputs.traces):
        for name, arr in trace.arrays.items():
            if name.startswith(_EXEMPT_PREFIXES) or not np.issubdtype(arr.dtype, np.floating):
                continue
            if arr.size and not math.isfinite(float(np.sum(arr, dtype=np.float64))):
                out.add((p, name))
    return out


def _nonfinite(
    inputs: DiagnosticInputs, suspects: set[tuple[int, str]], kind: str, test
) -> Finding | None:
    arrays: dict[str, int] = {}  # array name -> bad entries over the prompt set
    prompts: set[int] = set()
    first = None  # (order key, prompt, array, layer, token)
    for p, trace in enumerate(inputs.traces):
        for name, arr in trace.arrays.items():
            if (p, name) not in suspects:
                continue
            if kind == "inf" and arr.dtype == np.float16:
                continue  # rows stored as float16 (full_dtype): inf is the storage overflowing
            bad = test(arr)
            if not bad.any():
                continue
            arrays[name] = arrays.get(name, 0) + int(bad.sum())
            prompts.add(p)
            key, layer, token = _first_bad(name, arr, trace, bad)
            cand = (key, p, name, layer, token)
            if (
                first is None
                or cand[:2] < first[:2]
                or (cand[:2] == first[:2] and token < first[4])
            ):
                first = cand
    if first is None:
        return None
    _, p, name, layer, token = first
    where = (
        "in the embeddings"
        if name.startswith("embed.")
        else "in the output logits"
        if name.startswith("logits.")
        else f"at layer {layer}"
    )
    text = token_label(inputs.traces[p], token)
    return Finding(
        detector=NAME,
        severity="error",
        title=(
            f"{kind} values in {plural(len(arrays), 'array')} of {plural(len(prompts), 'prompt')}; "
            f"first {where}, token {token} ({text}) of prompt {p}, in {name}"
        ),
        meaning=NAN_MEANING,
        cells=[Cell("scan", layer=layer, token=token, prompt=p)],
        figures={
            "kind": kind,
            "first_array": name,
            "first_layer": layer,
            "first_token": token,
            "first_token_text": text,
            "first_prompt": p,
            "arrays": dict(sorted(arrays.items())),
            "prompts": sorted(prompts),
        },
    )


def _float16(inputs: DiagnosticInputs) -> list[Finding]:
    """One finding per site whose |x| exceeds FLOAT16_MAX somewhere."""
    out = []
    dtype = inputs.traces[0].model.dtype if inputs.traces else ""
    for site, label, sources in (
        ("resid", "residual stream", ("resid.max_abs", "resid.full")),
        ("attn", "attention output", ("attn.max_abs",)),
        ("mlp", "MLP output", ("mlp.max_abs",)),
        ("neurons", "MLP neurons", ("neurons.full",)),
    ):
        peak: dict[int, float] = {}  # layer -> largest finite |x|
        at: dict[int, tuple[int, int]] = {}  # layer -> (prompt, token) of that peak
        for p, trace in enumerate(inputs.traces):
            for name in sources:
                if not trace.has(name) or trace.get(name).size == 0:
                    continue
                arr = trace.get(name)
                # one pass to rule the array out: fmax ignores NaN; inf counts (stored rows
                # overflowing float16 are inf) and is cleared below
                if not float(np.fmax.reduce(np.abs(arr), axis=None)) > FLOAT16_MAX:
                    continue
                arr = np.abs(np.asarray(arr, dtype=np.float64))
                arr = np.where(np.isfinite(arr), arr, 0.0)
                per = arr.reshape(arr.shape[0], arr.shape[1], -1).max(axis=2)  # [L', T]
                layers = full_layers(trace) if name.endswith(".full") else trace.layers()
                for row, layer in enumerate(layers):
                    t = int(np.argmax(per[row]))
                    if per[row, t] > FLOAT16_MAX and per[row, t] > peak.get(layer, 0.0):
                        peak[layer] = float(per[row, t])
                        at[layer] = (p, t)
        if not peak:
            continue
        layers = sorted(peak)
        top = max(layers, key=lambda layer: peak[layer])
        in_fp16 = dtype == "float16"
        title = (
            f"The {label} exceeds float16's largest value 65,504 at "
            f"{plural(len(layers), 'layer')} ({layer_list(layers)}): up to {fmt(peak[top])} "
            f"at layer {top}"
        )
        if in_fp16:
            title += " while the model runs in float16"
        out.append(
            Finding(
                detector=NAME,
                severity="error" if in_fp16 else "warning",
                title=title,
                meaning=OVERFLOW_MEANING,
                cells=[
                    Cell("scan", layer=layer, token=at[layer][1], prompt=at[layer][0])
                    for layer in layers[:8]
                ],
                figures={
                    "site": site,
                    "layers": layers,
                    "peaks": [peak[layer] for layer in layers],
                    "model_dtype": dtype,
                    "limit": FLOAT16_MAX,
                },
            )
        )
    return out


def bfloat16_step(value: float) -> float:
    """The spacing of bfloat16 numbers around |value| (0 for 0)."""
    mag = abs(value)
    if mag == 0 or not math.isfinite(mag):
        return 0.0
    return 2.0 ** (math.floor(math.log2(mag)) - BFLOAT16_MANTISSA_BITS)


def _bfloat16(inputs: DiagnosticInputs) -> Finding | None:
    """Layers whose largest |x| has a bfloat16 step above the layer's median |x|."""
    worst: dict[int, tuple[float, float, float, int, int]] = {}  # layer -> step/median, ...
    n_layers = n_model_layers(inputs)
    curve = np.full(n_layers, np.nan)
    for p, trace in enumerate(inputs.traces):
        if not trace.has("resid.full") or trace.get("resid.full").size == 0:
            continue
        resid = trace.get("resid.full")
        for row, layer in enumerate(full_layers(trace)):
            mag = np.abs(np.asarray(resid[row], dtype=np.float32))  # [T, D]
            finite = np.isfinite(mag)
            if not finite.any():
                continue  # NaN everywhere: the NaN finding says so
            median = float(np.median(mag if finite.all() else mag[finite]))
            if median <= 0:
                continue  # a mostly-zero layer has no typical magnitude to lose
            mag = np.where(finite, mag, 0.0)
            t, _ = np.unravel_index(int(np.argmax(mag)), mag.shape)
            peak = float(mag[t].max())
            step = bfloat16_step(peak)
            ratio = step / median
            if layer < n_layers:
                curve[layer] = np.nanmax([curve[layer], ratio])
            if step > median and ratio > worst.get(layer, (0.0,))[0]:
                worst[layer] = (ratio, peak, median, p, int(t))
    if not worst:
        return None
    layers = sorted(worst)
    top = max(layers, key=lambda layer: worst[layer][0])
    ratio, peak, median, p, t = worst[top]
    dtype = inputs.traces[0].model.dtype
    title = (
        f"bfloat16 would round away typical updates to the largest entries at "
        f"{plural(len(layers), 'layer')} ({layer_list(layers)}): at layer {top}, |x| = "
        f"{fmt(peak)} has a rounding step of {fmt(bfloat16_step(peak))}, {fmt(ratio)}x the "
        f"median |x| of {fmt(median)}"
    )
    if dtype == "bfloat16":
        title += " (this model runs in bfloat16)"
    return Finding(
        detector=NAME,
        severity="info",
        title=title,
        meaning=BFLOAT16_MEANING,
        cells=[
            Cell("scan", layer=layer, token=worst[layer][4], prompt=worst[layer][3])
            for layer in layers[:8]
        ],
        figures={
            "layers": layers,
            "peaks": [worst[layer][1] for layer in layers],
            "medians": [worst[layer][2] for layer in layers],
            "step_over_median": [worst[layer][0] for layer in layers],
            "model_dtype": dtype,
        },
        series={"bfloat16 step of the largest |x| / median |x|": series(curve)},
    )
