"""Watched modules' rows (capture/watch.py) as heatmap metrics and as an export table.

A `--watch` pattern whose matches sit one per block (`model.layers.*.mlp`: names that differ
only in the layer number, one for each layer) becomes four [layer, token] metrics, one per
summary, in the scan's metric cycle; a module outside the blocks (`model.norm`) has no layer
to sit on, so it is only in the snapshot and in the `watch` export table. Pure numpy: a
loaded snapshot gets the same metrics as the live run (the module names are in its notes).
"""

from __future__ import annotations

import fnmatch
from typing import Any

import numpy as np

from neuroscope_tui.analysis.exports import Table
from neuroscope_tui.analysis.metrics import Metric, add_metric
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import SUMMARY_STATS, Trace

STAT_WORDS = {"norm": "norm", "max_abs": "max |x|", "mean": "mean", "zero_frac": "near-zero"}
STAT_UNITS = {"norm": "||x||", "max_abs": "max|x|", "mean": "mean", "zero_frac": "fraction"}


def watched_modules(trace: Trace) -> list[str]:
    """The module names of the trace's watch.* rows, in row order ([] when none)."""
    names = trace.notes.get("watch_modules") or []
    return [str(n) for n in names] if trace.has("watch.norm") else []


def layer_rows(names: list[str], pattern: str, n_layers: int) -> dict[int, int] | None:
    """layer -> row of the watch arrays, when `pattern`'s matches among `names` are one per
    layer: the same dotted name but for one part, a layer number, 0 .. n_layers - 1. None
    otherwise (a module outside the blocks, or several per block)."""
    rows = [i for i, name in enumerate(names) if fnmatch.fnmatchcase(name, pattern)]
    if len(rows) != n_layers or n_layers == 0:
        return None
    parts = [names[i].split(".") for i in rows]
    if len({len(p) for p in parts}) != 1:
        return None
    differing = [k for k in range(len(parts[0])) if len({p[k] for p in parts}) > 1]
    if n_layers == 1:
        # one layer: the part right after the block list ("layers.0") is the layer number
        differing = [k for k, part in enumerate(parts[0]) if part == "0"][:1]
    if len(differing) != 1 or not all(p[differing[0]].isdigit() for p in parts):
        return None
    by_layer = {int(p[differing[0]]): row for p, row in zip(parts, rows, strict=True)}
    return by_layer if set(by_layer) == set(range(n_layers)) else None


def _reader(pattern: str, stat: str):
    def read(trace: Trace) -> np.ndarray:
        layers = trace.layers()
        out = np.full((len(layers), trace.n_tokens), np.nan, dtype=np.float32)
        names = watched_modules(trace)
        by_layer = layer_rows(names, pattern, trace.n_layers) if names else None
        if by_layer is None:
            return out
        values = trace.get(f"watch.{stat}")
        for row, layer in enumerate(layers):
            out[row] = values[by_layer[layer]]
        return out

    read.__doc__ = f"watch.{stat} of the modules {pattern!r} matches, one per layer."
    return read


def watch_metrics(trace: Trace) -> list[Metric]:
    """The heatmap metrics the trace's per-block watch patterns give (four per pattern)."""
    names = watched_modules(trace)
    if not names:
        return []
    out = []
    for pattern in dict.fromkeys((*trace.spec.watch, *trace.spec.watch_full)):
        if layer_rows(names, pattern, trace.n_layers) is None:
            continue
        for stat in SUMMARY_STATS:
            out.append(
                Metric(
                    name=f"watch:{pattern}:{stat}",
                    label=f"watch: {pattern} {STAT_WORDS[stat]}",
                    unit=STAT_UNITS[stat],
                    fn=_reader(pattern, stat),
                    array=f"watch.{stat}",
                )
            )
    return out


def register_watch_metrics(trace: Trace) -> list[str]:
    """Add the trace's watch metrics to the metric cycle (once each); their names."""
    metrics = watch_metrics(trace)
    for metric in metrics:
        add_metric(metric)
    return [m.name for m in metrics]


def watch_table(trace: Trace) -> Table:
    """Every watched module's summaries per token, long format (the `watch` export).

    Columns: module, layer (-1 for a module outside the blocks), token_index, token_text,
    is_generated, norm, max_abs, mean, zero_frac. Raises SnapshotError without watched rows.
    """
    names = watched_modules(trace)
    if not names:
        raise SnapshotError(
            "This snapshot watched no modules; capture with --watch PATTERN "
            "(`neuroscope-tui info MODEL --modules` lists the names)."
        )
    layer_of: dict[int, int] = {}
    for pattern in (*trace.spec.watch, *trace.spec.watch_full):
        for layer, row in (layer_rows(names, pattern, trace.n_layers) or {}).items():
            layer_of[row] = layer
    values = {stat: trace.get(f"watch.{stat}") for stat in SUMMARY_STATS}
    rows: list[list[Any]] = []
    for m, name in enumerate(names):
        for t in range(trace.n_tokens):
            cells = [float(values[stat][m, t]) for stat in SUMMARY_STATS]
            generated = t >= trace.n_prompt
            rows.append([name, layer_of.get(m, -1), t, trace.token_text[t], generated, *cells])
    columns = ["module", "layer", "token_index", "token_text", "is_generated", *SUMMARY_STATS]
    return Table(columns=columns, rows=rows)
