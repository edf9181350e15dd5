"""The metric: how much larger a block's MLP output is than its attention output.

A heatmap metric is a function of the trace that returns float [layer, token] values, one
row per layer the trace recorded (`trace.layers()`). It reads the per-token norms every
capture keeps (`mlp.norm`, `attn.norm`), so it costs one division per cell.
"""

from __future__ import annotations

import numpy as np

from neuroscope_tui.trace import Trace


def mlp_attn_ratio(trace: Trace) -> np.ndarray:
    """Per layer and token: ||MLP output|| / ||attention output|| (above 1: the MLP writes more).

    NaN where the trace did not record both norms or the attention output is zero.
    """
    shape = (len(trace.layers()), trace.n_tokens)
    if not (trace.has("mlp.norm") and trace.has("attn.norm")):
        return np.full(shape, np.nan, dtype=np.float32)
    mlp = np.asarray(trace.get("mlp.norm"), dtype=np.float64)
    attn = np.asarray(trace.get("attn.norm"), dtype=np.float64)
    ratio = np.full(shape, np.nan)
    np.divide(mlp, attn, out=ratio, where=attn > 0)
    return ratio.astype(np.float32)


# What the scan's colour bar shows (both optional: the entry point's name otherwise).
mlp_attn_ratio.label = "MLP / attention norm"  # type: ignore[attr-defined]
mlp_attn_ratio.unit = "ratio"  # type: ignore[attr-defined]
