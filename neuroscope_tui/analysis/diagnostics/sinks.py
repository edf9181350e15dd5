"""Attention sinks: heads that put most of their weight on the first token or on delimiters.

First-token sinks come from `heads.first` [layer, token, head], which the attention tap keeps
for every head: a head's weight on key 0, averaged over every query after the first (pooled
over the prompt set; query 0 can only see itself). Delimiter sinks need the full rows
`pattern.{l}.{h}`: the weight on delimiter tokens (punctuation, newlines, special tokens like
"</s>") other than the first. Findings summarise per kind over the whole model (never one per
head), with cells on the strongest heads in the heads view.
"""

from __future__ import annotations

import re

import numpy as np

from neuroscope_tui.analysis.diagnostics.common import (
    fmt,
    layer_list,
    n_model_layers,
    plural,
    require,
    row_mean,
    series,
)
from neuroscope_tui.analysis.diagnostics.findings import Cell, Finding
from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs
from neuroscope_tui.analysis.heads import trace_patterns

NAME = "attention_sinks"
INFO = (
    "heads that put most of their attention on the first token or on delimiter tokens",
    "per-head attention scores (heads.first); full patterns for delimiter sinks",
)

# More than half of a head's weight on one token is the usual definition of a sink (Xiao et
# al. 2023, "Efficient streaming language models with attention sinks"). A random head's
# weight on key 0 is about 1 / (t + 1): at most 0.5 (at t = 1), about 0.25 averaged over a
# ten-token prompt, so an untrained model stays below this.
SINK_WEIGHT = 0.5
# A delimiter sink must also beat uniform attention by this factor: prompts full of
# punctuation would otherwise make every diffuse head one.
DELIMITER_OVER_UNIFORM = 3.0
# Strongest heads the finding points at.
MAX_CELLS = 6

_SPECIAL = re.compile(r"^(<\|?[^<>\s]{1,40}\|?>|\[[A-Z]{2,10}\])$")  # </s>, <|im_end|>, [SEP]

FIRST_MEANING = (
    "Trained transformers route the attention they do not need onto the first token, which "
    "carries massive activations and little content: an 'attention sink' (Xiao et al. 2023). "
    "It is normal and expected, usually in most layers after the first few. It matters for "
    "long-context tricks (keep the first token when evicting the KV cache), for reading "
    "attention maps (a sink head's pattern says 'nothing to do here', not 'the first word "
    "matters') and for interventions: changing the first token's representation moves every "
    "sink head at once."
)
DELIMITER_MEANING = (
    "Some heads park their attention on punctuation, newlines or special tokens instead of "
    "(or besides) the first token: secondary sinks. Like first-token sinks they usually mean "
    "'no-op' rather than 'this delimiter matters'. Worth knowing when reading attention maps, "
    "and when compressing the KV cache (evicting those delimiters changes these heads)."
)


def is_delimiter(text: str) -> bool:
    """A token whose text is empty after stripping, only punctuation, or a special token."""
    stripped = text.strip()
    if not stripped:
        return True
    if _SPECIAL.match(stripped):
        return True
    return all(not ch.isalnum() for ch in stripped)


def detect(inputs: DiagnosticInputs) -> list[Finding]:
    found = require(inputs, "heads.first", why="capture with head scores on.")
    n_layers = n_model_layers(inputs)
    n_heads = max(t.get("heads.first").shape[2] for _, t in found)
    total = np.zeros((n_layers, n_heads))
    count = np.zeros((n_layers, n_heads))
    for _, trace in found:
        first = np.asarray(trace.get("heads.first"), dtype=np.float64)  # [L', T, H]
        if first.shape[1] < 2:
            continue
        rows = first[:, 1:, :]  # queries t >= 1
        for row, layer in enumerate(trace.layers()):
            vals = rows[row]
            ok = np.isfinite(vals)
            total[layer, : vals.shape[1]] += np.where(ok, vals, 0.0).sum(axis=0)
            count[layer, : vals.shape[1]] += ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(count > 0, total / count, np.nan)  # [L, H] mean weight on key 0
    findings = []
    sink = _first_sinks(weight)
    if sink is not None:
        findings.append(sink)
    delim = _delimiter_sinks(inputs, n_layers, n_heads)
    if delim is not None:
        findings.append(delim)
    return findings


def _first_sinks(weight: np.ndarray) -> Finding | None:
    held = np.isfinite(weight)
    sinks = held & (np.where(held, weight, 0.0) > SINK_WEIGHT)
    if not sinks.any():
        return None
    layers = [int(x) for x in np.flatnonzero(sinks.any(axis=1))]
    n_layers_held = int(held.any(axis=1).sum())
    order = np.argsort(-np.where(sinks, weight, -1.0), axis=None)[: int(sinks.sum())]
    strongest = [np.unravel_index(i, weight.shape) for i in order]
    per_layer = sinks.sum(axis=1).astype(float)
    per_layer[~held.any(axis=1)] = np.nan
    top_layer, top_head = (int(v) for v in strongest[0])
    return Finding(
        detector=NAME,
        severity="info",
        title=(
            f"{len(layers)} of {n_layers_held} layers have first-token sink heads; "
            f"{int(sinks.sum())} of {int(held.sum())} heads put over {fmt(SINK_WEIGHT)} of "
            f"their attention on the first token (up to {float(weight[top_layer, top_head]):.2f} "
            f"in L{top_layer}.H{top_head})"
        ),
        meaning=FIRST_MEANING,
        cells=[Cell("heads", layer=int(lh[0]), head=int(lh[1])) for lh in strongest[:MAX_CELLS]],
        figures={
            "sink_layers": layers,
            "sink_layers_text": layer_list(layers),
            "n_sink_heads": int(sinks.sum()),
            "n_heads": int(held.sum()),
            "strongest": [
                [int(layer), int(head), float(weight[layer, head])]
                for layer, head in strongest[:20]
            ],
            "threshold": SINK_WEIGHT,
        },
        series={
            "sink heads per layer": series(per_layer),
            "mean weight on the first token": series(row_mean(weight)),
        },
    )


def _delimiter_sinks(inputs: DiagnosticInputs, n_layers: int, n_heads: int) -> Finding | None:
    """Heads whose mean weight on delimiters (other than the first token) exceeds SINK_WEIGHT
    and DELIMITER_OVER_UNIFORM times what uniform attention would give them."""
    total = np.zeros((n_layers, n_heads))
    uniform = np.zeros((n_layers, n_heads))
    count = np.zeros((n_layers, n_heads))
    for trace in inputs.traces:
        patterns = trace_patterns(trace)
        if not patterns:
            continue
        delim = np.array([is_delimiter(t) for t in trace.token_text], dtype=bool)
        delim[:1] = False  # the first token is the other finding
        n = len(delim)
        if n < 2 or not delim.any():
            continue
        # queries that can see at least one delimiter; uniform share = delimiters / visible keys
        seen = np.cumsum(delim)
        queries = np.flatnonzero((np.arange(n) >= 1) & (seen > 0))
        if not len(queries):
            continue
        share = seen[queries] / (queries + 1.0)
        for (layer, head), pattern in patterns.items():
            if layer >= n_layers or head >= n_heads or pattern.shape[0] != n:
                continue
            w = np.tril(np.asarray(pattern, dtype=np.float64))[queries][:, delim].sum(axis=1)
            if not np.all(np.isfinite(w)):
                continue
            total[layer, head] += w.sum()
            uniform[layer, head] += share.sum()
            count[layer, head] += len(queries)
    if not count.any():
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(count > 0, total / count, np.nan)
        base = np.where(count > 0, uniform / count, np.nan)
    held = count > 0
    w0 = np.where(held, weight, 0.0)
    sinks = held & (w0 > SINK_WEIGHT) & (w0 > DELIMITER_OVER_UNIFORM * np.where(held, base, 1))
    if not sinks.any():
        return None
    layers = [int(x) for x in np.flatnonzero(sinks.any(axis=1))]
    order = np.argsort(-np.where(sinks, weight, -1.0), axis=None)[: int(sinks.sum())]
    strongest = [tuple(int(v) for v in np.unravel_index(i, weight.shape)) for i in order]
    per_layer = sinks.sum(axis=1).astype(float)
    per_layer[~held.any(axis=1)] = np.nan
    top = strongest[0]
    return Finding(
        detector=NAME,
        severity="info",
        title=(
            f"{plural(int(sinks.sum()), 'head')} in {plural(len(layers), 'layer')} put over "
            f"{fmt(SINK_WEIGHT)} of their attention on delimiter tokens other than the first "
            f"(up to {float(weight[top]):.2f} in L{top[0]}.H{top[1]})"
        ),
        meaning=DELIMITER_MEANING,
        cells=[Cell("heads", layer=lh[0], head=lh[1]) for lh in strongest[:MAX_CELLS]],
        figures={
            "sink_layers": layers,
            "sink_layers_text": layer_list(layers),
            "n_sink_heads": int(sinks.sum()),
            "n_heads_with_patterns": int(held.sum()),
            "strongest": [[lh[0], lh[1], float(weight[lh])] for lh in strongest[:20]],
            "threshold": SINK_WEIGHT,
        },
        series={"delimiter sink heads per layer": series(per_layer)},
    )
