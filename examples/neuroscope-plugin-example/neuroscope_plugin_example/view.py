"""The view: one bar per layer, the MLP/attention ratio at the selected token.

A view is a `TraceView` subclass with `name` and `title` class attributes. The app calls
`show_trace` and `show_selection` (see neuroscope_tui/tui/views/base.py), which store the
trace and the selection and call `refresh_view`; here `render` draws from them. Text from the
model (token texts) goes through `neuroscope_tui.text_safety.visible` before it is shown.
"""

from __future__ import annotations

import math

from rich.text import Text

from neuroscope_plugin_example.metric import mlp_attn_ratio
from neuroscope_tui.text_safety import visible
from neuroscope_tui.tui.views.base import TraceView

BAR = 40  # characters for the largest ratio


def bar_lines(ratios: list[float], layers: list[int], width: int = BAR) -> list[str]:
    """One line per layer: its number, a bar as long as its ratio (the largest fills `width`)
    and the ratio; a layer without a value says so."""
    finite = [r for r in ratios if math.isfinite(r)]
    top = max(finite) if finite and max(finite) > 0 else 1.0
    lines = []
    for layer, r in zip(layers, ratios, strict=True):
        if not math.isfinite(r):
            lines.append(f"L{layer:<3} (not recorded)")
            continue
        n = round(width * r / top)
        lines.append(f"L{layer:<3} {'█' * n}{' ' * (width - n)} {r:.2f}")
    return lines


class BalanceView(TraceView):
    """Per layer, how much more the MLP writes than attention at the selected token."""

    name = "mlp-attn"
    title = "MLP / attention balance"

    DEFAULT_CSS = "BalanceView { padding: 1 2; }"

    def render(self) -> Text:
        trace = self.trace
        if trace is None or trace.n_tokens == 0:
            return Text("No trace yet: run a prompt or open a snapshot.")
        token = min(max(self.selection.token, 0), trace.n_tokens - 1)
        ratios = mlp_attn_ratio(trace)[:, token]
        head = f"||MLP|| / ||attention|| at token {token} {visible(trace.token_text[token])!r}"
        lines = [head, "", *bar_lines([float(r) for r in ratios], trace.layers())]
        return Text("\n".join(lines))
