"""A patching sweep and a side-by-side comparison kept on the trace on screen, in the formats
the engine and the snapshot manifest define, so `s` saves them, `view` shows them again and
`export` writes them (`patching`, `interventions`) with no second format:

- sweep (analysis/patching.py): `extras["patching.recovered"]` (and `patching.logit_diff`)
  [rows, positions of the trace] with `notes["patching"]` = `PatchSweep.note()`. A sweep file
  (`neuroscope-tui patch -o`) is a trace of the corrupted prompt; on a run's trace the sweep
  covers the prompt's positions and the generated ones hold NaN (not computed);
- side by side (analysis/interventions.py): `extras["interventions.logit_diff"]` [positions of
  the clean run] with `notes["clean_run"]` = the clean run's token ids and texts; the
  interventions themselves are `trace.interventions`.

Readers check shapes and types, so a hostile or damaged trace is a sentence, never a traceback.
Torch-free.
"""

from __future__ import annotations

import numpy as np

from neuroscope_tui.analysis.interventions import LOGIT_DIFF, SideBySide
from neuroscope_tui.analysis.patching import RECOVERED, PatchSweep
from neuroscope_tui.capture.interventions import (
    InterventionError,
    describe,
    intervention_from_dict,
)
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.trace import Trace

SWEEP_NOTE, CLEAN_NOTE = "patching", "clean_run"


def sweep_fits(trace: Trace, sweep: PatchSweep) -> bool:
    """Whether `sweep` belongs on `trace`: its clean prompt is the trace's, with as many tokens."""
    return sweep.clean == trace.prompt and len(sweep.tokens) == trace.n_prompt


def store_sweep(trace: Trace, sweep: PatchSweep) -> None:
    """Put `sweep` on `trace` (see `sweep_fits`), its grid widened to the trace's positions."""
    n = trace.n_tokens
    if trace.notes.get(SWEEP_NOTE) == sweep.note() and trace.extras[RECOVERED].shape[1] == n:
        return  # already there (the view puts its sweep on every copy of a growing trace)
    extras, note = sweep.to_arrays()
    for name, grid in extras.items():
        wide = np.full((grid.shape[0], n), np.nan, np.float32)
        wide[:, : grid.shape[1]] = grid[:, :n]
        trace.extras[name] = wide
    trace.notes[SWEEP_NOTE] = note


def stored_sweep(trace: Trace | None) -> PatchSweep | None:
    """The sweep kept on `trace` (cut to its prompt's positions), None when it has none;
    SnapshotError when it is malformed."""
    if trace is None or SWEEP_NOTE not in trace.notes:
        return None
    note, grid = trace.notes[SWEEP_NOTE], trace.extras.get(RECOVERED)
    if not isinstance(note, dict) or grid is None:
        raise SnapshotError("the saved patching sweep is incomplete (no grid or no figures)")
    rows = note.get("rows")
    grid = np.asarray(grid)
    if not isinstance(rows, list) or grid.shape != (len(rows), trace.n_tokens):
        raise SnapshotError("the saved patching sweep's grid does not match its rows and tokens")
    if not np.issubdtype(grid.dtype, np.floating):
        raise SnapshotError("the saved patching sweep's grid is not made of numbers")
    try:
        sweep = PatchSweep.from_trace(trace)
    except (KeyError, TypeError, ValueError) as err:
        raise SnapshotError(f"the saved patching sweep's figures are unreadable ({err})") from None
    n = max(trace.n_prompt, 1)  # the swept positions: a sweep file's tokens are all prompt
    sweep.tokens, sweep.recovered = sweep.tokens[:n], sweep.recovered[:, :n]
    if sweep.logit_diff.shape == grid.shape:
        sweep.logit_diff = sweep.logit_diff[:, :n]
    return sweep


def store_side_by_side(intervened: Trace, clean: Trace, logit_diff: np.ndarray | None) -> None:
    """Keep the clean run's tokens and the per-token logit difference on the intervened trace
    (NaN until the model worker has computed it)."""
    n = clean.n_tokens
    diff = np.full(n, np.nan, np.float32)
    if logit_diff is not None:
        got = np.asarray(logit_diff, np.float32).reshape(-1)[:n]
        diff[: got.shape[0]] = got
    intervened.extras[LOGIT_DIFF] = diff
    intervened.notes[CLEAN_NOTE] = {
        "token_ids": [int(i) for i in clean.token_ids],
        "token_text": list(clean.token_text),
    }


def stored_side_by_side(trace: Trace | None) -> SideBySide | None:
    """Both runs as the side by side draws them, None when `trace` has no clean run kept;
    SnapshotError when what is kept is malformed."""
    if trace is None or CLEAN_NOTE not in trace.notes:
        return None
    note, diff = trace.notes[CLEAN_NOTE], trace.extras.get(LOGIT_DIFF)
    tokens = note.get("token_text") if isinstance(note, dict) else None
    if diff is None or not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise SnapshotError("the saved side-by-side comparison is incomplete")
    diff = np.asarray(diff)
    if diff.shape != (len(tokens),) or not np.issubdtype(diff.dtype, np.floating):
        raise SnapshotError("the saved logit difference does not match the clean run's tokens")
    lines = []
    for d in trace.interventions:
        try:
            lines.append(describe(intervention_from_dict(d)))
        except InterventionError as err:
            lines.append(f"(unreadable: {err})")
    mine = list(trace.token_text)
    n = min(len(tokens), len(mine))
    diverge = next((t for t in range(n) if tokens[t] != mine[t]), None)
    return SideBySide(
        prompt=trace.prompt,
        clean_text="".join(tokens[trace.n_prompt :]),
        intervened_text=trace.generated_text,
        clean_tokens=list(tokens),
        intervened_tokens=mine,
        n_prompt=trace.n_prompt,
        logit_diff=diff.astype(np.float32, copy=False),
        interventions=lines,
        first_divergence=diverge if diverge is not None or len(tokens) == len(mine) else n,
    )
