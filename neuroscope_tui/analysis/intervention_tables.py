"""A patching sweep and a side-by-side comparison as they live inside a Trace, and their tables.

The app keeps both on a trace so that saving, `view` and `export` need nothing new
(interv-contract-changes.md):

- sweep: `extras["patch_sweep.recovered"]` (float32 [rows, positions]; 1 = the clean logit
  difference fully restored, 0 = the corrupted one, NaN = not computed) and
  `notes["patch_sweep"]` (site, row labels, token texts, both logit differences, target, foil,
  both prompts, whether it is partial);
- side by side (on the intervened run): `extras["side_by_side.logit_diff"]` (float32
  [positions]: logit of the target with the interventions minus without) and
  `notes["side_by_side"]` (the clean run's prompt, tokens and prompt length, the target).

Readers check every field's type, so a hostile snapshot is a sentence, never a traceback.
Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuroscope_tui.analysis.exports import Table
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import Trace

SWEEP_NOTE, SWEEP_ARRAY = "patch_sweep", "patch_sweep.recovered"
SIDE_NOTE, SIDE_ARRAY = "side_by_side", "side_by_side.logit_diff"


@dataclass
class SweepFigures:
    """What the sweep grid draws (the fields of the engine's PatchSweep that a view needs)."""

    site: str
    rows: list[str]
    tokens: list[str]
    recovered: np.ndarray  # [rows, positions]
    clean_diff: float
    corrupt_diff: float
    target: str
    foil: str
    clean: str
    corrupt: str
    partial: bool


@dataclass
class SideBySide:
    """Two runs of one prompt, without and with the interventions."""

    clean_prompt: str
    clean_tokens: list[str]
    clean_n_prompt: int
    tokens: list[str]  # the intervened run's
    n_prompt: int
    logit_diff: np.ndarray  # [positions]; NaN where not computed
    target: str
    interventions: list[dict]


def _number(value: Any) -> float:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else math.nan
    )


def _texts(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def store_sweep(trace: Trace, sweep: Any) -> None:
    """Put a sweep (the engine's PatchSweep, or SweepFigures) on `trace`, replacing any."""
    grid = np.asarray(sweep.recovered, dtype=np.float32)
    if trace.extras.get(SWEEP_ARRAY) is grid and SWEEP_NOTE in trace.notes:
        return  # already there (the view puts its sweep on every trace it is shown)
    trace.extras[SWEEP_ARRAY] = grid
    trace.notes[SWEEP_NOTE] = {
        "site": str(sweep.site),
        "rows": [str(r) for r in sweep.rows],
        "tokens": [str(t) for t in sweep.tokens],
        "clean_diff": None if not math.isfinite(sweep.clean_diff) else float(sweep.clean_diff),
        "corrupt_diff": None
        if not math.isfinite(sweep.corrupt_diff)
        else float(sweep.corrupt_diff),
        "target": str(sweep.target or ""),
        "foil": str(sweep.foil or ""),
        "clean": str(sweep.clean),
        "corrupt": str(sweep.corrupt),
        "partial": bool(sweep.partial),
    }


def stored_sweep(trace: Trace | None) -> SweepFigures | None:
    """The sweep kept on `trace`, None when it has none; SnapshotError when it is malformed."""
    if trace is None or SWEEP_NOTE not in trace.notes:
        return None
    note, grid = trace.notes[SWEEP_NOTE], trace.extras.get(SWEEP_ARRAY)
    if not isinstance(note, dict) or grid is None:
        raise SnapshotError("the saved patching sweep is incomplete (no grid or no description)")
    rows, tokens = _texts(note.get("rows")), _texts(note.get("tokens"))
    grid = np.asarray(grid)
    if rows is None or tokens is None or grid.shape != (len(rows), len(tokens)):
        raise SnapshotError("the saved patching sweep's grid does not match its rows and tokens")
    if not np.issubdtype(grid.dtype, np.floating):
        raise SnapshotError("the saved patching sweep's grid is not made of numbers")
    strings = {k: note.get(k, "") for k in ("site", "target", "foil", "clean", "corrupt")}
    if not all(isinstance(v, str) for v in strings.values()):
        raise SnapshotError("the saved patching sweep's description has a field of the wrong type")
    return SweepFigures(
        rows=rows, tokens=tokens, recovered=grid.astype(np.float32, copy=False),
        clean_diff=_number(note.get("clean_diff")), corrupt_diff=_number(note.get("corrupt_diff")),
        partial=note.get("partial") is True, **strings,
    )  # fmt: skip


def store_side_by_side(
    intervened: Trace, clean: Trace, logit_diff: np.ndarray | None, target: str = ""
) -> None:
    """Keep the clean run's text and the per-token logit difference on the intervened trace."""
    n = intervened.n_tokens
    diff = np.full(n, np.nan, np.float32)
    if logit_diff is not None:
        values = np.asarray(logit_diff, dtype=np.float32).reshape(-1)[:n]
        diff[: len(values)] = values
    intervened.extras[SIDE_ARRAY] = diff
    intervened.notes[SIDE_NOTE] = {
        "clean_prompt": clean.prompt,
        "clean_tokens": list(clean.token_text),
        "clean_n_prompt": int(clean.n_prompt),
        "target": target,
    }


def stored_side_by_side(trace: Trace | None) -> SideBySide | None:
    """The side-by-side kept on `trace`, None when it has none; SnapshotError if malformed."""
    if trace is None or SIDE_NOTE not in trace.notes:
        return None
    note, diff = trace.notes[SIDE_NOTE], trace.extras.get(SIDE_ARRAY)
    if not isinstance(note, dict) or diff is None:
        raise SnapshotError("the saved side-by-side comparison is incomplete")
    tokens = _texts(note.get("clean_tokens"))
    n_prompt = note.get("clean_n_prompt")
    prompt, target = note.get("clean_prompt", ""), note.get("target", "")
    diff = np.asarray(diff)
    if (
        tokens is None
        or not isinstance(n_prompt, int)
        or not isinstance(prompt, str)
        or not isinstance(target, str)
        or diff.ndim != 1
        or not np.issubdtype(diff.dtype, np.floating)
    ):
        raise SnapshotError("the saved side-by-side comparison has a field of the wrong type")
    return SideBySide(
        clean_prompt=prompt, clean_tokens=tokens, clean_n_prompt=max(0, min(n_prompt, len(tokens))),
        tokens=list(trace.token_text), n_prompt=trace.n_prompt,
        logit_diff=diff.astype(np.float32), target=target,
        interventions=list(getattr(trace, "interventions", None) or []),
    )  # fmt: skip


def sweep_table(trace: Trace) -> Table:
    """One row per (row, position) of the patching sweep: recovered fraction and context."""
    sweep = stored_sweep(trace)
    if sweep is None:
        raise SnapshotError("this snapshot has no patching sweep; run one with `patch` or key w")
    cols = ["site", "row", "position", "token", "recovered", "clean_diff", "corrupt_diff"]
    rows = [
        [sweep.site, label, t, token, float(sweep.recovered[r, t]), sweep.clean_diff,
         sweep.corrupt_diff]
        for r, label in enumerate(sweep.rows)
        for t, token in enumerate(sweep.tokens)
    ]  # fmt: skip
    return Table(columns=cols, rows=rows)


def side_by_side_table(trace: Trace) -> Table:
    """One row per position: both runs' tokens and the logit difference the interventions made."""
    side = stored_side_by_side(trace)
    if side is None:
        raise SnapshotError(
            "this snapshot has no side-by-side comparison (a run with interventions)"
        )
    n = max(len(side.tokens), len(side.clean_tokens))
    rows = []
    for t in range(n):
        clean = side.clean_tokens[t] if t < len(side.clean_tokens) else ""
        mine = side.tokens[t] if t < len(side.tokens) else ""
        diff = float(side.logit_diff[t]) if t < len(side.logit_diff) else math.nan
        rows.append([t, t >= side.n_prompt, clean, mine, clean != mine, diff])
    cols = ["position", "generated", "clean_token", "intervened_token", "differs", "logit_diff"]
    return Table(columns=cols, rows=rows)
