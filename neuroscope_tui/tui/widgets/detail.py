"""The detail panel: every number the trace holds for the cell under the heatmap's cursor.

`cell_details` is pure (trace + cell -> Rich Text) so it is tested without an app: each
heatmap metric at that layer and token, the top-10 MLP neurons (index, activation) and the
logit lens's top-5 next tokens with probabilities. Token ids are decoded with the trace's own
`notes["id_text"]` (so `view` mode needs no tokenizer), else with `decode` when given. Lines
stay within 31 cells, so the panel fits beside the heatmap in an 80-column terminal.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from neuroscope_tui.analysis.metrics import METRICS
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.widgets.heatmap_render import token_shown

LENS_SHOWN = 5
NEURONS_SHOWN = 10


def visible(text: str, limit: int = 16) -> str:
    """A token's text with whitespace and control characters made visible, cut to `limit`."""
    shown = token_shown(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def fmt(value: float) -> str:
    """A value in 3 significant digits; '–' when it was not recorded."""
    return f"{value:.3g}" if math.isfinite(value) else "–"


def token_text_of(trace: Trace, token_id: int, decode: Callable[[int], str] | None) -> str:
    """The text of a vocabulary id: from the trace's notes, else `decode`, else '#id'."""
    known = trace.notes.get("id_text", {}).get(str(int(token_id)))
    if known is None and decode is not None:
        known = decode(int(token_id))
    return known if known is not None else f"#{token_id}"


def cell_details(
    trace: Trace, row: int, token: int, decode: Callable[[int], str] | None = None
) -> Text:
    """What the panel shows for heatmap row `row` (a position in trace.layers()) and `token`."""
    out = Text()
    layers = trace.layers()
    if not layers or not 0 <= token < trace.n_tokens or not 0 <= row < len(layers):
        out.append("no cell yet: run a prompt", style="dim")
        return out
    kind = "prompt" if token < trace.n_prompt else "generated"
    out.append(f"layer {layers[row]}", style="bold")
    out.append(f" · token {token} ", style="bold")
    out.append(visible(trace.token_text[token], 20), style="reverse")
    out.append(f" ({kind})\n", style="dim")
    out.append("metrics\n", style="bold underline")
    for metric in METRICS.values():
        values = metric.fn(trace)
        value = float(values[row, token]) if values.shape[1] > token else float("nan")
        out.append(f" {metric.label[:22]:<22}{fmt(value):>8}\n")
    _neurons(out, trace, row, token)
    _lens(out, trace, row, token, decode)
    return out


def _neurons(out: Text, trace: Trace, row: int, token: int) -> None:
    out.append(f"top-{NEURONS_SHOWN} MLP neurons (idx: value)\n", style="bold underline")
    if not trace.has("neurons.top_idx"):
        out.append(" not recorded in this trace\n", style="dim")
        return
    idx = trace.get("neurons.top_idx")[row, token, :NEURONS_SHOWN]
    val = trace.get("neurons.top_val")[row, token, :NEURONS_SHOWN]
    cells = [f"{int(i):>5}:{fmt(float(v)):>7}" for i, v in zip(idx, val, strict=True)]
    for start in range(0, len(cells), 2):
        out.append(" " + "  ".join(cells[start : start + 2]) + "\n")


def _lens(
    out: Text, trace: Trace, row: int, token: int, decode: Callable[[int], str] | None
) -> None:
    out.append(f"logit lens: top {LENS_SHOWN} next tokens\n", style="bold underline")
    if not trace.has("lens.top_ids"):
        out.append(" not recorded in this trace\n", style="dim")
        return
    ids = trace.get("lens.top_ids")[row, token, :LENS_SHOWN]
    probs = trace.get("lens.top_probs")[row, token, :LENS_SHOWN]
    if (ids < 0).all():
        asked = trace.spec.lens_positions
        if asked is None or token in asked:  # a live run derives it on demand
            out.append(" computing… (when the model is free)\n", style="dim")
        else:
            out.append(" the lens was not asked for this position\n", style="dim")
        return
    for i, p in zip(ids, probs, strict=True):
        if i < 0:
            continue
        text = visible(token_text_of(trace, int(i), decode), 13)
        bar = "█" * round(float(p) * 8) if np.isfinite(p) else ""
        out.append(f" {text:<13} {float(p):6.1%} ")
        out.append(f"{bar}\n", style="green")


class DetailPanel(VerticalScroll):
    """The scrollable panel beside the heatmap; `show(trace, row, token)` redraws it."""

    DEFAULT_CSS = """
    DetailPanel {
        width: 40%; max-width: 44; min-width: 36;
        border-left: tall $primary-muted; padding: 0 1;
    }
    DetailPanel > Static { width: 1fr; height: 28; }
    """

    def compose(self):
        yield Static(id="detail-text")

    def show(
        self, trace: Trace | None, row: int, token: int, decode: Callable[[int], str] | None
    ) -> None:
        """Redraw for heatmap cell (`row`, `token`) of `trace`."""
        text = (
            cell_details(trace, row, token, decode)
            if trace is not None
            else Text("no trace yet: type a prompt and press Enter", style="dim")
        )
        # a fixed-size Static: skipping the layout pass makes a cursor move cheap
        self.query_one("#detail-text", Static).update(text, layout=False)
