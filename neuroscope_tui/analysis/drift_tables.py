"""The drift tables of `neuroscope-tui export FILE drift[-...]`: one view per table of
analysis/drift.py `drift_rows`, read from a drift file (drift_file.py). A plain snapshot is
refused in one sentence. No torch."""

from __future__ import annotations

from neuroscope_tui.analysis.exports import Table
from neuroscope_tui.drift_file import drift_from_trace
from neuroscope_tui.trace import Trace


def drift_table(trace: Trace, table: str = "layers") -> Table:
    """One table of a drift file for `neuroscope-tui export`: the rows analysis/drift.py
    `drift_rows` gives under `table`, their keys as columns in first-seen order."""
    result = drift_from_trace(trace)  # a plain snapshot: one sentence
    from neuroscope_tui.analysis.drift import drift_rows

    rows = drift_rows(result)[table]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return Table(columns=columns, rows=[[row.get(c) for c in columns] for row in rows])


def drift_modules_table(trace: Trace) -> Table:
    return drift_table(trace, "modules")


def drift_heads_table(trace: Trace) -> Table:
    return drift_table(trace, "heads")


def drift_neurons_table(trace: Trace) -> Table:
    return drift_table(trace, "neurons")


def drift_prompts_table(trace: Trace) -> Table:
    return drift_table(trace, "prompts")


def drift_checkpoints_table(trace: Trace) -> Table:
    return drift_table(trace, "checkpoints")
