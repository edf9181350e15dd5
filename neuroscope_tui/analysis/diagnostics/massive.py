"""Massive activations: single residual dimensions orders of magnitude above the layer's median.

Reads `resid.full` [layer, token, d_model]. Per prompt and layer the typical magnitude is the
median |x| over every token and dimension (robust: a handful of huge entries do not move it);
an entry whose |x| is more than `MASSIVE_RATIO` times that median is massive. Findings are
per residual dimension, pooled over the prompt set: where it appears and disappears, at which
tokens, its peak and a per-layer curve of its largest |x| / median.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuroscope_tui.analysis.diagnostics.common import (
    fmt,
    full_layers,
    layer_list,
    n_model_layers,
    plural,
    require,
    series,
    token_label,
)
from neuroscope_tui.analysis.diagnostics.findings import Cell, Finding
from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs

NAME = "massive_activations"
INFO = (
    "residual dimensions whose magnitude is orders of magnitude above the layer's median",
    "full residual vectors (resid.full)",
)

# Sun et al. (2024) call an activation massive when it is ~1000x the median and over 100 in
# value; 100x keeps the ones that already dominate a layer while a Gaussian-like layer's
# largest entry stays ~5-10x its median (checked on tiny random models: at most ~12x).
MASSIVE_RATIO = 100.0
# The scale the literature means by "massive"; the title says where a dimension passes it.
MASSIVE_SCALE = 1000.0
# One finding per dimension: models have a handful. Past this many, the rest go in one line.
MAX_DIMENSIONS = 5
# Tokens listed per dimension in the figures (the count is always given).
MAX_TOKENS_LISTED = 20

MEANING = (
    "Most trained transformers have a few residual dimensions that carry values hundreds to "
    "thousands of times the typical entry, usually at the first token (and sometimes at "
    "delimiters such as '.' or a newline), from an early layer on (Sun et al. 2024, 'Massive "
    "activations in large language models'). They act as fixed biases that let attention "
    "heads 'sink' on those tokens: a known property of trained models, not a bug. They matter "
    "when you quantize (one outlier sets the scale of a whole row: keep these dimensions in "
    "higher precision or use outlier-aware quantization), when you clip or normalise "
    "activations, and when you steer or patch the stream at those tokens. A massive value at "
    "a token other than the first or a delimiter is less usual: look at what that token is."
)


@dataclass
class _Dimension:
    """What one residual dimension does over the prompt set."""

    dimension: int
    ratio_by_layer: np.ndarray  # [model layers] largest |x| / median, NaN where not held
    layers: set[int] = field(default_factory=set)
    # (prompt, position) -> number of layers where it is massive there
    tokens: dict[tuple[int, int], int] = field(default_factory=dict)
    peak_ratio: float = 0.0
    peak_value: float = 0.0
    peak_at: tuple[int, int, int] = (0, 0, 0)  # prompt, layer, position


def detect(inputs: DiagnosticInputs) -> list[Finding]:
    found = require(
        inputs, "resid.full", why="capture with full residual rows (--full-layers all)."
    )
    n_layers = n_model_layers(inputs)
    dims: dict[int, _Dimension] = {}
    # [layer, dimension] largest |x| / median over tokens and prompts: every dimension's curve,
    # so a massive one's also shows the layers where it stays below the threshold
    curves: np.ndarray | None = None
    for p, trace in found:
        resid = trace.get("resid.full")  # [L', T, D]
        if curves is None or curves.shape[1] < resid.shape[2]:
            grown = np.full((n_layers, resid.shape[2]), np.nan)
            if curves is not None:
                grown[:, : curves.shape[1]] = curves
            curves = grown
        for row, layer in enumerate(full_layers(trace)):
            mag = np.abs(np.asarray(resid[row], dtype=np.float32))  # [T, D]
            finite = np.isfinite(mag)
            if not finite.all():
                if not finite.any():
                    continue  # NaN everywhere: the numerics detector says so
                mag = np.where(finite, mag, 0.0)
            median = float(np.median(mag if finite.all() else mag[finite]))
            if median <= 0:
                continue  # a zero layer has no scale to compare with
            ratio = mag / median  # [T, D]
            if layer < n_layers:
                curves[layer, : ratio.shape[1]] = np.fmax(
                    curves[layer, : ratio.shape[1]], ratio.max(axis=0)
                )
            positions, columns = np.nonzero(ratio > MASSIVE_RATIO)
            for d in np.unique(columns):
                _note(
                    dims, int(d), p, layer, positions[columns == d], ratio[:, d], resid[row, :, d]
                )
    if not dims:
        return []
    for dim in dims.values():
        dim.ratio_by_layer = curves[:, dim.dimension].copy()
    ranked = sorted(dims.values(), key=lambda d: -d.peak_ratio)
    findings = [_finding(inputs, d, len(found)) for d in ranked[:MAX_DIMENSIONS]]
    if len(ranked) > MAX_DIMENSIONS:
        findings.append(_rest_finding(ranked[MAX_DIMENSIONS:]))
    return findings


def _note(dims, d: int, p: int, layer: int, positions, ratio: np.ndarray, values) -> None:
    """Record that dimension `d` is massive at `positions` of prompt `p`, layer `layer`."""
    dim = dims.get(d)
    if dim is None:
        dim = dims[d] = _Dimension(d, np.array([]))
    dim.layers.add(layer)
    for t in positions:
        key = (p, int(t))
        dim.tokens[key] = dim.tokens.get(key, 0) + 1
    best = int(np.argmax(ratio))
    if ratio[best] > dim.peak_ratio:
        dim.peak_ratio = float(ratio[best])
        dim.peak_value = float(values[best])
        dim.peak_at = (p, layer, best)


def _finding(inputs: DiagnosticInputs, dim: _Dimension, n_prompts: int) -> Finding:
    appears, disappears = min(dim.layers), max(dim.layers)
    n_layers = len(dim.ratio_by_layer)
    prompt, layer, position = dim.peak_at
    tokens = sorted(dim.tokens.items(), key=lambda kv: (-kv[1], kv[0]))
    not_first = [(p, t) for (p, t), _ in tokens if t != 0]
    prompts_with = len({p for p, _ in dim.tokens})
    if not not_first:
        where = "at the first token"
    elif len(not_first) == len(tokens):
        where = f"at {plural(len(tokens), 'token')}, none of them the first"
    else:
        where = f"at the first token and {plural(len(not_first), 'other token')}"
    if not_first:
        texts = list(dict.fromkeys(token_label(inputs.traces[p], t) for p, t in not_first))
        more = f" and {len(texts) - 3} more" if len(texts) > 3 else ""
        where += f" ({', '.join(texts[:3])}{more})"
    span = (
        f"from layer {appears} on"
        if disappears == n_layers - 1 and appears != disappears
        else f"in layer {appears}"
        if appears == disappears
        else f"in layers {appears}-{disappears}"
    )
    # Sun et al.'s scale: where the dimension passes 1000x its layer's median
    over_1000x = [
        i for i, v in enumerate(dim.ratio_by_layer) if np.isfinite(v) and v > MASSIVE_SCALE
    ]
    if not over_1000x:
        scale = ""
    elif over_1000x == list(range(over_1000x[0], n_layers)) and len(over_1000x) > 1:
        scale = f" (over {fmt(MASSIVE_SCALE)}x from layer {over_1000x[0]} on)"
    else:
        noun = "layer" if len(over_1000x) == 1 else "layers"
        scale = f" (over {fmt(MASSIVE_SCALE)}x in {noun} {layer_list(over_1000x)})"
    title = (
        f"Residual dimension {dim.dimension} reaches {fmt(abs(dim.peak_value))} {where} "
        f"{span}, {fmt(dim.peak_ratio)}x the layer's median{scale}"
    )
    listed = [[p, t, token_label(inputs.traces[p], t), count] for (p, t), count in tokens][
        :MAX_TOKENS_LISTED
    ]
    cells = [Cell("scan", layer=layer, token=position, prompt=prompt, dimension=dim.dimension)]
    if appears != layer:
        first_p, first_t = _first_token_at(dim)
        cells.append(
            Cell("scan", layer=appears, token=first_t, prompt=first_p, dimension=dim.dimension)
        )
    for p, t in not_first[:3]:
        cells.append(Cell("scan", layer=layer, token=t, prompt=p, dimension=dim.dimension))
    return Finding(
        detector=NAME,
        severity="info",
        title=title,
        meaning=MEANING,
        cells=_unique(cells),
        figures={
            "dimension": dim.dimension,
            "peak_value": dim.peak_value,
            "peak_ratio": dim.peak_ratio,
            "peak_layer": layer,
            "peak_token": position,
            "peak_token_text": token_label(inputs.traces[prompt], position),
            "peak_prompt": prompt,
            "appears_layer": appears,
            "disappears_layer": disappears,
            "layers": sorted(dim.layers),
            "layers_text": layer_list(dim.layers),
            "n_tokens": len(tokens),
            "tokens": listed,  # [prompt, position, text, layers massive there]
            "not_first_token": len(not_first),
            "prompts_with": prompts_with,
            "n_prompts": n_prompts,
            "threshold_ratio": MASSIVE_RATIO,
            # where it passes 1000x (Sun et al.'s scale), None if it never does
            "over_1000x_from": over_1000x[0] if over_1000x else None,
            "layers_over_1000x": over_1000x,
        },
        series={"peak |x| / layer median": series(dim.ratio_by_layer)},
    )


def _first_token_at(dim: _Dimension) -> tuple[int, int]:
    """A (prompt, position) where the dimension is massive, preferring the first token."""
    keys = sorted(dim.tokens, key=lambda k: (k[1] != 0, k))
    return keys[0] if keys else (0, 0)


def _rest_finding(rest: list[_Dimension]) -> Finding:
    dims = [d.dimension for d in rest]
    return Finding(
        detector=NAME,
        severity="info",
        title=(
            f"{plural(len(rest), 'more residual dimension')} exceed {fmt(MASSIVE_RATIO)}x "
            f"their layer's median (up to {fmt(rest[0].peak_ratio)}x)"
        ),
        meaning=MEANING,
        cells=[
            Cell(
                "scan",
                layer=d.peak_at[1],
                token=d.peak_at[2],
                prompt=d.peak_at[0],
                dimension=d.dimension,
            )
            for d in rest[:5]
        ],
        figures={"dimensions": dims, "peak_ratios": [d.peak_ratio for d in rest]},
    )


def _unique(cells: list[Cell]) -> list[Cell]:
    seen, out = set(), []
    for c in cells:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out
