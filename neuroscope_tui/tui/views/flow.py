"""The flow view: how information reaches one output position from the input tokens.

A layer x token grid from the chosen output position (`o` takes the cursor's token, `,`/`.`
step it; the last token by default): row l is each input token's share of the position's
representation after layer l, by attention rollout or attention flow (`f` switches; Abnar &
Zuidema 2020). Below, the input tokens coloured by their share after the cursor's layer.

Head-averaged patterns come from the run (`pattern.{l}.-1`, or every head of a layer), or,
with a live model, from `compute_patterns` in the model worker. Attention flow solves max-flow
problems in a thread worker (seconds for long runs) and is cached per position.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static
from textual.worker import Worker, WorkerState, get_current_worker

from neuroscope_tui.analysis.flow import (
    FLOW_MAX_TOKENS,
    attention_flow,
    head_averaged_patterns,
    require_patterns,
    rollout,
    shares,
)
from neuroscope_tui.errors import SnapshotError, UsageError
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.views.grid_view import Grid, GridView, finite_range, unit_range
from neuroscope_tui.tui.widgets.colorbar import format_value
from neuroscope_tui.tui.widgets.heatmap_render import _contrast, build_palette, token_label

METHODS = ("rollout", "flow")
PATTERN_TIMEOUT = 60.0  # s: a live-model request unanswered this long (it failed) is re-sent


def shares_text(tokens: list[str], share: np.ndarray, width: int = 10) -> Text:
    """The input tokens, each on a background coloured by its share (scaled to the largest)."""
    palette = build_palette()
    n = len(palette.colours)
    top = float(np.nanmax(share)) if np.isfinite(share).any() else 1.0
    text = Text()
    for tok, s in zip(tokens, share.tolist(), strict=False):
        if not np.isfinite(s):
            text.append(token_label(tok, width).rstrip() + " ", "dim")
            continue
        colour = palette.colours[min(n - 1, int(s / max(top, 1e-12) * (n - 1)))]
        text.append(
            token_label(tok, width).rstrip(), Style(bgcolor=f"rgb{colour}", color=_contrast(colour))
        )
        text.append(" ")
    return text


class FlowView(GridView):
    """Rollout / attention flow from one output position back to the input tokens."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_method", "rollout/flow"),
        Binding("o", "output_at_cursor", "output here"),
        Binding("comma", "step_output(-1)", "output ←", show=False, key_display=","),
        Binding("full_stop", "step_output(1)", "output →", show=False, key_display="."),
    ]
    DEFAULT_CSS = """
    FlowView .grid-bottom { height: auto; max-height: 8; }
    FlowView .flow-tokens { height: auto; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.method = "rollout"
        self.position: int | None = None  # None: the newest token
        self._asked: list[int] | None = None  # token ids of the request to the live model
        self._asked_at = 0.0
        self._patterns: tuple[list[int], np.ndarray] | None = None  # (token ids, [L, T, T])
        self._flows: dict[tuple, np.ndarray] = {}  # (n_tokens, position) -> flow grid
        self._computing: tuple | None = None
        self.shown_position = 1 << 30  # the output position the grid was last built for

    def compose_bottom(self) -> ComposeResult:
        yield Static(classes="flow-tokens")

    # ---- actions -----------------------------------------------------------------------------

    def action_toggle_method(self) -> None:
        """Switch between attention rollout and attention flow."""
        self.method = METHODS[(METHODS.index(self.method) + 1) % 2]
        self.invalidate()

    def action_output_at_cursor(self) -> None:
        """Trace the flow to the token under the cursor."""
        self.position = self.heatmap.cursor[1]
        self.invalidate()

    def action_step_output(self, step: int) -> None:
        """Move the output position one token left or right."""
        if self.trace is None or self.trace.n_tokens == 0:
            return
        last = self.trace.n_tokens - 1
        at = last if self.position is None else self.position
        self.position = max(0, min(last, at + step))
        self.invalidate()

    # ---- grid --------------------------------------------------------------------------------

    def output_position(self, trace: Trace) -> int:
        last = trace.n_tokens - 1
        return last if self.position is None else min(self.position, last)

    def grid_key(self, trace: Trace) -> tuple:
        have = len(self._patterns[0]) if self._patterns else -1
        flows_done = len(self._flows)  # a flow grid finished: rebuild
        return (
            id(trace),
            trace.n_tokens,
            self.method,
            self.output_position(trace),
            have,
            flows_done,
        )

    def title_text(self) -> str:
        trace = self.trace
        if trace is None or trace.n_tokens == 0:
            return f"information flow · {self.method}"
        p = min(self.output_position(trace), self.shown_position)
        return (
            f"information flow · attention {self.method} to output {p} "
            f"{trace.token_text[p]!r}   f: rollout/flow  o: output at cursor  ,/.: step output"
        )

    def patterns(self, trace: Trace) -> np.ndarray:
        """Head-averaged patterns [L, T', T'] from the run or the live model; SnapshotError
        when there are none yet.

        From the live model, one request is in flight at a time (each is a forward pass
        between generation steps); meanwhile the last answer is used when the run still
        starts with its tokens, so during generation the grid lags a few tokens behind
        (T' < T) instead of asking the model again for every token.
        """
        held = head_averaged_patterns(trace)
        if held is not None:
            return held
        if getattr(self.app, "live_model", None) is None:
            require_patterns(trace)  # raises, saying how to get them
        ids = list(trace.token_ids)
        stored = self._patterns
        fresh = stored is not None and stored[0] == ids
        stuck = time.monotonic() - self._asked_at > PATTERN_TIMEOUT
        if not fresh and (self._asked is None or stuck):
            from neuroscope_tui.capture.patterns import compute_patterns

            heads = [(layer, -1) for layer in range(trace.n_layers)]
            self._asked, self._asked_at = ids, time.monotonic()
            self.app.run_model_task(
                compute_patterns,
                ids,
                heads,
                on_done=lambda got: self._got_patterns(ids, got, heads),
                kind=f"patterns {self.id}",
            )
        if stored is not None and ids[: len(stored[0])] == stored[0]:
            return stored[1]
        raise SnapshotError("computing head-averaged attention patterns with the model…")

    def reset_run(self) -> None:
        """A new run: the chosen output and the patterns asked for belong to the last one."""
        self.position, self._asked, self._patterns = None, None, None
        self._flows.clear()

    def _got_patterns(self, ids: list[int], got: dict, heads: list[tuple[int, int]]) -> None:
        if self._asked != ids:
            return  # asked for by the last run
        self._asked = None
        self._patterns = (ids, np.stack([np.asarray(got[h], dtype=np.float64) for h in heads]))
        self.invalidate()

    def build_grid(self, trace: Trace) -> Grid:
        self.shown_position = 1 << 30
        pats = self.patterns(trace)
        n = pats.shape[-1]  # fewer than the run's tokens while live patterns catch up
        p = self.shown_position = min(self.output_position(trace), n - 1)
        if self.method == "rollout":
            raw = rollout(pats, p)
        else:
            if p >= FLOW_MAX_TOKENS:
                raise UsageError(
                    f"attention flow is limited to the first {FLOW_MAX_TOKENS} positions; "
                    "press f for rollout, or o on an earlier token."
                )
            key = self._flow_key(trace, n, p)
            if key not in self._flows:
                self._start_flow(pats, p, key)
                raise SnapshotError(f"computing attention flow to position {p}…")
            raw = shares(self._flows[key])
        lo, hi = 0.0, max(1e-12, finite_range(raw)[1])
        layers = list(range(raw.shape[0]))
        label = f"{self.method} share of each input token"
        return Grid(
            unit_range(raw, lo, hi),
            raw,
            list(trace.token_text[:n]),
            trace.n_prompt,
            layers,
            label,
            "share",
            lo,
            hi,
        )

    @staticmethod
    def _flow_key(trace: Trace, n: int, position: int) -> tuple:
        """What a flow grid depends on: the tokens it covers and the output position."""
        return (tuple(trace.token_ids[:n]), position)

    def _start_flow(self, pats: np.ndarray, position: int, key: tuple) -> None:
        if self._computing == key:
            return
        self._computing = key

        def work() -> tuple[tuple, np.ndarray] | None:
            worker = get_current_worker()
            grid = attention_flow(pats, position, cancel=lambda: worker.is_cancelled)
            return None if worker.is_cancelled else (key, grid)  # a cut-short grid is no use

        self.run_worker(work, thread=True, exclusive=True, group="flow", exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "flow":
            return
        if event.state == WorkerState.ERROR:
            self._computing = None
            self.notify(f"attention flow failed: {event.worker.error}", severity="error")
            return
        if event.state != WorkerState.SUCCESS or event.worker.result is None:
            return
        key, grid = event.worker.result
        self._flows[key] = grid
        if self._computing == key:
            self._computing = None
        self.invalidate()

    # ---- panels ------------------------------------------------------------------------------

    def describe_cell(self, row: int, column: int) -> Text:
        g, trace = self.grid, self.trace
        if g is None or trace is None:
            return Text("")
        p = min(self.output_position(trace), self.shown_position)
        text = Text()
        text.append(f"output {p} {trace.token_text[p]!r}\n", "bold")
        text.append(f"after layer {row}, input {column} {trace.token_text[column]!r}\n")
        text.append(f"{self.method} share {format_value(g.raw[row, column])}\n\n", "bold")
        final = g.raw[-1]
        order = [t for t in np.argsort(-np.nan_to_num(final, nan=-1.0)) if np.isfinite(final[t])]
        text.append("largest shares after the last layer\n", "bold")
        for t in order[:8]:
            text.append(f"{t:>4} {trace.token_text[t]!r:<18.18}{final[t]:>8.1%}\n")
        return text

    def draw_bottom(self, row: int, column: int) -> None:
        g, trace = self.grid, self.trace
        if g is None or trace is None:
            return
        line = Text(f"after layer {row}: ", style="bold")
        line.append_text(shares_text(list(trace.token_text), g.raw[row]))
        self.query_one(".flow-tokens", Static).update(line)
