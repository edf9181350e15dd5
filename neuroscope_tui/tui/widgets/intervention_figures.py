"""Pure renderers of view 9: the side-by-side text, the sweep grid's data and its cell panel.

No widgets here, only what they are given: `side_by_side_text(side)` (both runs' generated text,
the per-token logit difference and the interventions), `sweep_grid(sweep)` (colours, raw values,
row numbers for `LayerHeatmap`) and `sweep_cell_text(sweep, row, column)`. Every text from a
prompt or a token goes through `text_safety.visible` and into `Text` objects, never markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.text import Text

from neuroscope_tui.analysis.interventions import SideBySide
from neuroscope_tui.analysis.patching import PatchSweep
from neuroscope_tui.capture.interventions import (
    InterventionError,
    describe,
    intervention_from_dict,
)
from neuroscope_tui.text_safety import visible

BAR_WIDTH = 10  # characters of the widest logit-difference bar


def token_shown(text: str) -> str:
    """A token on one line: newlines as ⏎, control characters as escapes."""
    return visible(text.replace("\n", "⏎"))


def interventions_lines(saved: list[dict]) -> list[str]:
    """One line per intervention recorded with a run (a malformed record says so)."""
    lines = []
    for d in saved:
        try:
            lines.append(describe(intervention_from_dict(d)))
        except InterventionError as err:
            lines.append(f"(unreadable: {err})")
    return lines


def diff_bar(value: float, scale: float) -> Text:
    """A signed bar: red to the right when the intervention raised the logit, blue left."""
    if not math.isfinite(value):
        return Text("·", style="dim")
    n = round(min(abs(value) / scale, 1.0) * BAR_WIDTH) if scale > 0 else 0
    colour = "red" if value > 0 else "blue"
    left = " " * BAR_WIDTH if value >= 0 else " " * (BAR_WIDTH - n) + "█" * n
    right = "█" * n if value > 0 else ""
    return Text.assemble((left, colour), ("│", "dim"), (right, colour))


def side_by_side_text(side: SideBySide) -> Text:
    """Both runs' generated text, then per position: tokens and the logit difference."""
    out = Text()
    prompt = token_shown(side.prompt)
    out.append("prompt      ", "bold")
    out.append(prompt[:200] + ("…" if len(prompt) > 200 else "") + "\n")
    out.append("clean       ", "bold")
    out.append(token_shown(side.clean_text) or "(nothing generated)", "green")
    out.append("\nintervened  ", "bold")
    out.append(token_shown(side.intervened_text) or "(nothing generated)", "magenta")
    out.append("\n\n")
    out.append("logit of the clean run's next token: with the interventions minus without\n",
               "italic")  # fmt: skip
    finite = np.abs(side.logit_diff[np.isfinite(side.logit_diff)])
    scale = float(finite.max()) if finite.size else 0.0
    if not finite.size:
        out.append("(computing the logit difference…)\n", "dim")
    clean, mine = side.clean_tokens, side.intervened_tokens
    out.append(f"{'pos':>4} {'clean next':<14}{'intervened next':<16}{'Δ logit':>8}\n", "bold")
    for t in range(max(0, side.n_prompt - 1), max(len(clean), len(mine)) - 1):
        clean_next = clean[t + 1] if t + 1 < len(clean) else ""
        mine_next = mine[t + 1] if t + 1 < len(mine) else ""
        value = float(side.logit_diff[t]) if t < len(side.logit_diff) else math.nan
        style = "" if clean_next == mine_next else "bold yellow"
        out.append(f"{t:>4} ")
        out.append(f"{token_shown(clean_next)[:13]:<14}")
        out.append(f"{token_shown(mine_next)[:15]:<16}", style)
        out.append(f"{value:>+8.2f} " if math.isfinite(value) else f"{'n/a':>8} ")
        out.append_text(diff_bar(value, scale))
        out.append("\n")
    return out


@dataclass
class SweepGrid:
    """What `LayerHeatmap.set_data` takes for a sweep, and the colour scale's ends."""

    values_norm: np.ndarray
    raw: np.ndarray
    labels: list[str]
    layer_ids: list[int]
    lo: float
    hi: float


def row_layer(label: str, fallback: int) -> int:
    """The layer number of a sweep row label ("L3" or "L3.H5"; anything else: `fallback`)."""
    head = label[1:].split(".", 1)[0] if label.startswith("L") else ""
    return int(head) if head.isdigit() else fallback


def sweep_grid(sweep: PatchSweep) -> SweepGrid:
    """Colours on a fixed 0..1 scale (0 = the corrupted run, 1 = the clean one), widened only
    when a cell overshoots, so two sweeps read alike; NaN (not computed) stays empty."""
    raw = np.asarray(sweep.recovered, dtype=np.float32)
    finite = raw[np.isfinite(raw)]
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    hi = max(1.0, float(finite.max())) if finite.size else 1.0
    norm = np.where(np.isfinite(raw), (raw - lo) / (hi - lo), np.nan)
    layer_ids = [row_layer(label, i) for i, label in enumerate(sweep.rows)]
    labels = [token_shown(t) for t in sweep.tokens]
    return SweepGrid(norm, raw, labels, layer_ids, lo, hi)


def sweep_title(sweep: PatchSweep) -> str:
    """One line, numbers first (a long prompt is cut at the screen's edge, not the figures)."""
    contrast = f" {token_shown(sweep.target)!r}" if sweep.target else " the clean next token"
    contrast += f" vs {token_shown(sweep.foil)!r}" if sweep.foil else ""
    part = " (partial: cancelled)" if sweep.partial else ""
    return (
        f"{sweep.site} sweep{part}  logit diff clean {sweep.clean_diff:+.2f}, corrupted "
        f"{sweep.corrupt_diff:+.2f} for{contrast}  ·  {token_shown(sweep.clean)!r} -> "
        f"{token_shown(sweep.corrupt)!r}"
    )


def sweep_cell_text(sweep: PatchSweep, row: int, column: int) -> Text:
    """The side panel for a cell: where it is and how much it recovered."""
    if not sweep.rows or not sweep.tokens:
        return Text("empty sweep", "italic")
    row = min(max(row, 0), len(sweep.rows) - 1)
    column = min(max(column, 0), len(sweep.tokens) - 1)
    value = float(sweep.recovered[row, column])
    where = "before block" if sweep.site == "resid" else "output of"
    out = Text()
    out.append(f"{sweep.rows[row]} · position {column}\n", "bold")
    out.append(f"token {token_shown(sweep.tokens[column])!r}\n")
    out.append(f"patched: {sweep.site} ({where} {sweep.rows[row]})\n")
    out.append("recovered: ")
    out.append(f"{value:.2f}" if math.isfinite(value) else "not computed", "bold")
    out.append("\n\n1 = the clean logit difference restored,\n0 = the corrupted one.", "dim")
    return out


def symmetric_scale(diff: np.ndarray) -> tuple[np.ndarray, float]:
    """Colours in [0, 1] with 0.5 = no change, and the scale's half-width (largest |diff|)."""
    finite = np.abs(diff[np.isfinite(diff)])
    half = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return np.where(np.isfinite(diff), np.clip(0.5 + diff / (2 * half), 0.0, 1.0), np.nan), half
