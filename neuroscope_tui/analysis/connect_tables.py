"""Export tables of the connectivity, residual, flow and logit-lens views (long format).

Registered in analysis/exports.py; each takes a Trace and returns a Table, raising
SnapshotError when the trace lacks what the view needs. NaN cells become None (empty in CSV,
null in JSON).
"""

from __future__ import annotations

import math

from neuroscope_tui.analysis.connectivity import MEASURES, available_measures, connectivity
from neuroscope_tui.analysis.exports import Table
from neuroscope_tui.analysis.flow import (
    FLOW_MAX_TOKENS,
    attention_flow,
    require_patterns,
    rollout,
    shares,
)
from neuroscope_tui.analysis.lens import id_text_map, lens_grid, token_text
from neuroscope_tui.analysis.residual import DOMINANT_NAMES, analyse_residual
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import Trace


def _num(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def connectivity_table(trace: Trace) -> Table:
    """Every available layer x layer measure: measure, layer_a, layer_b, value."""
    measures = available_measures(trace)
    if not measures:
        raise SnapshotError(
            "this run has none of "
            + ", ".join(sorted({m.source for m in MEASURES.values()}))
            + ", so there is no connectivity to export."
        )
    rows: list[list] = []
    for measure in measures:
        matrix, layers = connectivity(trace, measure)
        for i, a in enumerate(layers):
            for j, b in enumerate(layers):
                rows.append([measure, a, b, _num(matrix[i, j])])
    return Table(["measure", "layer_a", "layer_b", "value"], rows)


def residual_table(trace: Trace) -> Table:
    """Per layer and token: ||x_in||, the two block ratios, cos, change and the dominant path."""
    r = analyse_residual(trace)
    columns = [
        "layer",
        "token_index",
        "token_text",
        "is_generated",
        "x_in_norm",
        "attn_ratio",
        "mlp_ratio",
        "cos_in_out",
        "change",
        "dominant",
    ]
    rows: list[list] = []
    for i, layer in enumerate(r.layers):
        for t in range(r.attn_ratio.shape[1]):
            rows.append(
                [
                    layer,
                    t,
                    trace.token_text[t],
                    t >= trace.n_prompt,
                    _num(r.x_in_norm[i, t]),
                    _num(r.attn_ratio[i, t]),
                    _num(r.mlp_ratio[i, t]),
                    _num(r.cos[i, t]),
                    _num(r.change[i, t]),
                    DOMINANT_NAMES[int(r.dominant[i, t])],
                ]
            )
    return Table(columns, rows)


def flow_table(trace: Trace) -> Table:
    """Rollout and (up to FLOW_MAX_TOKENS) attention flow from the last position, per layer
    and input token: method, position, layer, token_index, token_text, value, share."""
    patterns = require_patterns(trace)
    position = patterns.shape[-1] - 1
    grids = {"rollout": rollout(patterns, position)}
    if position < FLOW_MAX_TOKENS:
        grids["flow"] = attention_flow(patterns, position)
    rows: list[list] = []
    for method, grid in grids.items():
        share = shares(grid)
        for layer in range(grid.shape[0]):
            for t in range(position + 1):
                rows.append(
                    [
                        method,
                        position,
                        layer,
                        t,
                        trace.token_text[t],
                        _num(grid[layer, t]),
                        _num(share[layer, t]),
                    ]
                )
    columns = ["method", "position", "layer", "token_index", "token_text", "value", "share"]
    return Table(columns, rows)


def lens_table(trace: Trace) -> Table:
    """Per layer and token: the lens top-1 and its probability, the actual next token, whether
    they match, KL to the final distribution, and the rank and first top-1 layer of the model's
    own prediction."""
    g = lens_grid(trace)
    texts = id_text_map(trace)
    columns = [
        "layer",
        "token_index",
        "token_text",
        "is_generated",
        "top1_id",
        "top1_text",
        "top1_prob",
        "actual_next_id",
        "is_actual_next",
        "kl_to_final",
        "pred_rank",
        "pred_prob",
        "first_pred_top1_layer",
    ]
    rows: list[list] = []
    for i, layer in enumerate(g.layers):
        for t in range(g.top1_ids.shape[1]):
            if g.top1_ids[i, t] < 0:
                continue  # the lens was not computed at this position
            rows.append(
                [
                    layer,
                    t,
                    trace.token_text[t],
                    t >= trace.n_prompt,
                    int(g.top1_ids[i, t]),
                    token_text(trace, int(g.top1_ids[i, t]), texts),
                    _num(g.top1_probs[i, t]),
                    int(g.actual_next[t]),
                    bool(g.hits[i, t]),
                    _num(g.kl[i, t]),
                    int(g.pred_rank[i, t]),
                    _num(g.pred_prob[i, t]),
                    int(g.first_pred_top1[t]),
                ]
            )
    return Table(columns, rows)


__all__ = ["connectivity_table", "flow_table", "lens_table", "residual_table"]
