"""What several detectors share: picking the traces that hold an array, layer bookkeeping,
token labels and number formatting for titles. Pure numpy."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from neuroscope_tui.analysis.diagnostics.findings import DetectorSkipped
from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs
from neuroscope_tui.trace import Trace


def traces_with(inputs: DiagnosticInputs, *names: str) -> list[tuple[int, Trace]]:
    """(prompt index, trace) for every trace that holds all of `names` with some content."""
    out = []
    for p, trace in enumerate(inputs.traces):
        if all(trace.has(n) and trace.get(n).size > 0 for n in names):
            out.append((p, trace))
    return out


def require(inputs: DiagnosticInputs, *names: str, why: str) -> list[tuple[int, Trace]]:
    """`traces_with`, or DetectorSkipped("... no trace holds X; `why`") when none does."""
    found = traces_with(inputs, *names)
    if not found:
        if not inputs.traces:
            raise DetectorSkipped("there are no traces to look at.")
        held = " and ".join(names)
        raise DetectorSkipped(f"no trace holds {held}; {why}")
    return found


def full_layers(trace: Trace) -> list[int]:
    """The model layers that rows of `resid.full` / `neurons.full` belong to, in order."""
    if trace.spec.full_layers is None:
        return trace.layers()
    return list(trace.spec.full_layers)


def n_model_layers(inputs: DiagnosticInputs) -> int:
    """The model's number of layers (the largest any trace names)."""
    n = 0
    for trace in inputs.traces:
        n = max(n, trace.n_layers, *(layer + 1 for layer in trace.layers()))
        if trace.spec.layers is None and trace.has("resid.norm"):
            n = max(n, trace.get("resid.norm").shape[0])  # metadata without n_layers
    return n


def token_label(trace: Trace, position: int) -> str:
    """The token's text at `position` as `repr` shows it (quotes, escapes), or "?" if unknown.

    Left raw otherwise: the report and the app escape it for their medium.
    """
    if 0 <= position < len(trace.token_text):
        return repr(trace.token_text[position])
    return "?"


def layer_list(layers: Iterable[int], limit: int = 12) -> str:
    """ "3, 4, 5-9 and 12" style text of layer numbers, shortened after `limit` runs."""
    values = sorted(set(int(v) for v in layers))
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in runs]
    if len(parts) > limit:
        parts = [*parts[:limit], f"{len(parts) - limit} more ranges"]
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def plural(n: int, word: str, many: str | None = None) -> str:
    """ "1 layer", "3 layers"."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def fmt(x: float) -> str:
    """A number for a title: 3 significant figures, thousands separated, NaN/inf spelled."""
    if x is None or not math.isfinite(x):
        return "NaN" if x is None or math.isnan(x) else ("inf" if x > 0 else "-inf")
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 1 or ax == 0:
        return f"{x:.3g}"
    if ax >= 1e-3:
        return f"{x:.3f}".rstrip("0").rstrip(".")
    return f"{x:.2e}"


def series(values: Sequence[float] | np.ndarray) -> list[float]:
    """A JSON-able float list (NaN kept: the report draws gaps)."""
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def nanmedian(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """np.nanmedian without the all-NaN warning (NaN where nothing is finite)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = np.where(np.isfinite(arr), arr, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(arr, axis=axis)


def nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """np.nanmean without the empty-slice warning (NaN where nothing is finite)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = np.where(np.isfinite(arr), arr, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(arr, axis=axis)


def row_mean(values: np.ndarray) -> np.ndarray:
    """Mean of each row of [rows, cols] over its finite entries (NaN for a row with none)."""
    ok = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        sums = np.where(ok, values, 0.0).sum(axis=1)
        return np.where(ok.any(axis=1), sums / ok.sum(axis=1), np.nan)
