"""Every view's numbers as a table, for `neuroscope-tui export FILE VIEW` and the app's CSV key.

A view registers one line in EXPORTS: its name, where its table function lives
("module:function", imported on use), and a one-line description. A table function takes a
Trace and returns a Table; it raises SnapshotError when the trace lacks what it needs.
Plugins add entries whose target is "plugin:<kind>:<name>" (neuroscope_tui/plugins.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from neuroscope_tui.trace import Trace


@dataclass
class Table:
    """Rows of plain values under named columns (long format: one row per cell)."""

    columns: list[str]
    rows: list[list[Any]]


# view name -> ("module:function", description)
EXPORTS: dict[str, tuple[str, str]] = {
    "heatmap": (
        "neuroscope_tui.analysis.metrics:heatmap_table",
        "per layer and token: every heatmap metric (norms, max |activation|, block change)",
    ),
    "heads": ("neuroscope_tui.analysis.heads:heads_table", "per-head attention scores and types"),
    "connectivity": (
        "neuroscope_tui.analysis.connect_tables:connectivity_table",
        "layer x layer correlation, linear CKA and mean cosine",
    ),
    "residual": (
        "neuroscope_tui.analysis.connect_tables:residual_table",
        "per layer and token: block/stream ratios, cos(x_in, x_out), dominant path",
    ),
    "flow": (
        "neuroscope_tui.analysis.connect_tables:flow_table",
        "attention rollout and flow from the last position to the input tokens",
    ),
    "lens": (
        "neuroscope_tui.analysis.connect_tables:lens_table",
        "logit lens: top-1 per layer and token, KL to final, rank of the prediction",
    ),
    "projection": (
        "neuroscope_tui.analysis.feature_tables:projection_table",
        "per layer and token: projection coordinates (stored, else PCA) and cluster",
    ),
    "clusters": (
        "neuroscope_tui.analysis.feature_tables:clusters_table",
        "per layer and token: cluster label (stored, else k-means by silhouette)",
    ),
    "attribution": (
        "neuroscope_tui.analysis.feature_tables:attribution_table",
        "per input token: attribution score and signed share of the last output token",
    ),
    "patching": (
        "neuroscope_tui.analysis.patching:patching_table",
        "a patching sweep (neuroscope-tui patch): recovered logit difference per cell",
    ),
    "interventions": (
        "neuroscope_tui.analysis.interventions:interventions_table",
        "a run with interventions against its clean run: tokens and logit difference",
    ),
    "concepts": (
        "neuroscope_tui.analysis.concept_tables:concepts_table",
        "per concept, layer and token: the projection kept by capture --concept",
    ),
    "watch": (
        "neuroscope_tui.analysis.watch_metrics:watch_table",
        "per watched module (--watch) and token: norm, max |x|, mean, near-zero fraction",
    ),
    # a drift file (neuroscope-tui drift -o): one table per kind of figure
    "drift": (
        "neuroscope_tui.analysis.drift_tables:drift_table",
        "drift per checkpoint and layer: CKA, cosine, weight change (vs base, previous), lens",
    ),
    "drift-modules": (
        "neuroscope_tui.analysis.drift_tables:drift_modules_table",
        "drift per checkpoint and weight tensor: relative weight change (vs base, previous)",
    ),
    "drift-heads": (
        "neuroscope_tui.analysis.drift_tables:drift_heads_table",
        "drift per checkpoint and head: head score changes, types before and after",
    ),
    "drift-neurons": (
        "neuroscope_tui.analysis.drift_tables:drift_neurons_table",
        "drift per checkpoint and layer: the MLP neurons whose mean moved most",
    ),
    "drift-prompts": (
        "neuroscope_tui.analysis.drift_tables:drift_prompts_table",
        "drift per checkpoint and prompt: KL of the next-token distributions",
    ),
    "drift-checkpoints": (
        "neuroscope_tui.analysis.drift_tables:drift_checkpoints_table",
        "drift per checkpoint: mean KL and the layer where the logit lens splits",
    ),
}


def table_function(view: str) -> Callable[[Trace], Table]:
    """The table function registered for `view` (KeyError if none)."""
    target = EXPORTS[view][0]
    if target.startswith("plugin:"):  # a plugin's metric or analysis (neuroscope_tui/plugins.py)
        from neuroscope_tui.plugins import export_function

        return export_function(target)
    module_name, func = target.split(":")
    return getattr(importlib.import_module(module_name), func)
