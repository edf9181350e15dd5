"""The `concepts` export: each concept's projection per layer and token, as `capture
--concept` kept it in the snapshot ("concept.NAME" rows, [layer, token]). No torch."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuroscope_tui.analysis.exports import Table
from neuroscope_tui.concept_file import CONCEPT_EXTRA
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.safetensors_file import shown
from neuroscope_tui.trace import Trace


def concepts_table(trace: Trace) -> Table:
    """One row per concept, layer and token: the projection u . x - midpoint (positive = the
    concept's first label). Raises SnapshotError when the snapshot holds no concept rows."""
    names = [k[len(CONCEPT_EXTRA) :] for k in trace.extras if k.startswith(CONCEPT_EXTRA)]
    if not names:
        raise SnapshotError(
            "this snapshot holds no concept rows; capture it with --concept CONCEPT.safetensors"
        )
    layers = trace.layers()
    rows: list[list[Any]] = []
    for name in names:
        values = np.asarray(trace.extras[CONCEPT_EXTRA + name], dtype=np.float64)
        if values.ndim != 2:  # a damaged or foreign file: one sentence, not a traceback
            raise SnapshotError(
                f"this snapshot's concept rows {shown(name)} are {list(values.shape)}, not "
                "[layer, token]; capture it again"
            )
        row_layers = layers if len(layers) == values.shape[0] else list(range(values.shape[0]))
        for row, layer in enumerate(row_layers):
            for t in range(min(values.shape[1], trace.n_tokens)):
                text = trace.token_text[t]
                rows.append([name, layer, t, text, t >= trace.n_prompt, float(values[row, t])])
    columns = ["concept", "layer", "token_index", "token_text", "is_generated", "projection"]
    return Table(columns=columns, rows=rows)
