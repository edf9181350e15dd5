"""The analysis: one row per layer summing up what the trace holds about it.

An analysis is a function of the trace that returns a table: a neuroscope `Table`, a list of
dicts (one per row, as here) or a `(columns, rows)` pair. It shows in `export --list`, as
`export FILE layer-summary`, and as its own section of the diagnostics report. Give the
function `needs_model = True` to receive the live model as a second argument (it then runs
only where a model is loaded).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuroscope_plugin_example.metric import mlp_attn_ratio
from neuroscope_tui.trace import Trace


def layer_summary(trace: Trace) -> list[dict[str, Any]]:
    """Per layer: mean and peak residual norm, where the peak is, the mean MLP/attention ratio."""
    ratio = mlp_attn_ratio(trace)
    resid = (
        np.asarray(trace.get("resid.norm"), dtype=np.float64)
        if trace.has("resid.norm")
        else np.full(ratio.shape, np.nan)
    )
    rows = []
    for row, layer in enumerate(trace.layers()):
        norms = resid[row]
        finite = np.isfinite(norms)
        peak = int(np.argmax(np.where(finite, norms, -np.inf))) if finite.any() else None
        ratios = ratio[row][np.isfinite(ratio[row])]
        rows.append(
            {
                "layer": layer,
                "resid_norm_mean": float(norms[finite].mean()) if finite.any() else None,
                "resid_norm_max": float(norms[peak]) if peak is not None else None,
                "peak_token_index": peak,
                "peak_token_text": trace.token_text[peak] if peak is not None else None,
                "mlp_attn_ratio_mean": float(ratios.mean()) if ratios.size else None,
            }
        )
    return rows


layer_summary.description = "per layer: residual norm mean and peak, mean MLP/attention ratio"  # type: ignore[attr-defined]
