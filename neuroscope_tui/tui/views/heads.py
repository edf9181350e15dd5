"""The attention heads view: what every head does, and the selected head's pattern.

Top left, the layers x heads overview coloured by one head score (`c` cycles the score) with
each head's type letters; top right, the selected head's scores and types and the one-query
view (the tokens coloured by the weight the selected query puts on them). `a` ablates the
selected head and runs the prompt again (tui/intervening.py). Below, the selected
head's full pattern as a query x key grid (`g` switches linear/log colours), and, when the
terminal is large enough, all heads of the selected layer as small multiples.

Patterns on demand: a head's pattern is drawn from `trace.arrays["pattern.l.h"]` when the run
kept it; otherwise, with a live model, it is computed by `compute_patterns` in the model
worker (`app.run_model_task`) and kept in the trace only while it is on screen, so attention
memory stays O(heads on screen x T²). In `view` mode a missing pattern is said to be missing.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from neuroscope_tui.analysis.heads import (
    HEAD_TYPES,
    SCORE_NAMES,
    SCORES,
    HeadScores,
    head_scores,
    scores_from_rows,
    trace_patterns,
    type_letters,
)
from neuroscope_tui.capture.derive_entropy import missing_entropy
from neuroscope_tui.capture.interventions import Ablation
from neuroscope_tui.text_safety import markup_safe
from neuroscope_tui.trace import HEADS_MISSING_NOTE
from neuroscope_tui.tui.views.base import TraceView
from neuroscope_tui.tui.widgets.head_grid import HeadGrid
from neuroscope_tui.tui.widgets.pattern import (
    PatternGrid,
    colour_key,
    query_weights_text,
    thumbnail_text,
)

# the terminal size from which all heads of the layer are drawn as small multiples
MULTIPLES_MIN_SIZE = (150, 50)
THUMBNAIL_BINS = 16
PROBE_NOTE = "heads_probe"  # trace.notes key of the induction probe's per-head rows
REFRESH_EVERY = 8  # tokens between refreshes of a computed pattern while a run generates


def patterns_or_error(
    bundle: Any, token_ids: list[int], heads: list[tuple[int, int]], run: Any = None
) -> dict[tuple[int, int], np.ndarray] | str:
    """`compute_patterns` in the model worker; a failure comes back as a phrase, not a raise.

    So the view always hears back and never waits forever on a head it asked for. `run`: the
    trace of a run with interventions, whose patterns must be the intervened model's.
    """
    from contextlib import nullcontext

    from neuroscope_tui.capture.patterns import compute_patterns
    from neuroscope_tui.capture.side_by_side import replaying

    try:
        with replaying(bundle, run, len(token_ids)) if run is not None else nullcontext():
            return compute_patterns(bundle, token_ids, heads)
    except Exception as err:  # shown as a notice; the view keeps working
        return f"{type(err).__name__}: {str(err).strip()[:120]}"


def probe_or_error(bundle: Any) -> dict | str:
    """`probe_summary` in the model worker; a failure comes back as a phrase."""
    from neuroscope_tui.capture.probes import probe_summary

    try:
        return probe_summary(bundle)
    except Exception as err:  # shown as a notice; the view keeps working
        return f"{type(err).__name__}: {str(err).strip()[:120]}"


def pattern_name(layer: int, head: int) -> str:
    """The Trace array name of one head's full pattern."""
    return f"pattern.{layer}.{head}"


class HeadsView(TraceView):
    """Head overview, the selected head's pattern and its one-query view."""

    DEFAULT_CSS = """
    HeadsView { layout: vertical; }
    HeadsView #heads-top { height: auto; max-height: 50%; }
    HeadsView #head-grid { width: auto; min-width: 20; max-width: 60%; height: auto;
        max-height: 100%; }
    HeadsView #head-info { width: 1fr; height: auto; padding: 0 1; }
    HeadsView #head-query { height: auto; max-height: 8; }
    HeadsView #pattern-title { height: 1; background: $boost; }
    HeadsView #pattern { height: 1fr; min-height: 6; }
    HeadsView #head-multiples { height: auto; display: none; }
    HeadsView.-big #head-multiples { display: block; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cycle_score", "score"),
        Binding("g", "toggle_log", "log/linear"),
        Binding("p", "probe", "induction probe"),
        Binding("a", "ablate_head", "ablate head"),
        # the app binds these too (and lists them in its help); here they also work when the
        # view is hosted alone, and keep the cursor and pattern in step without a round trip
        Binding("[", "step_layer(-1)", "", show=False),
        Binding("]", "step_layer(1)", "", show=False),
        Binding("{", "step_head(-1)", "", show=False),
        Binding("}", "step_head(1)", "", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.score_name = "induction"
        self.log_scale = False
        self.scores: HeadScores | None = None
        # (trace, n_tokens) of self.scores: the trace itself, not its id(), which a later
        # trace may reuse once this one is freed
        self._scored_at: tuple[Any, int, bool] | None = None
        self._on_demand: set[tuple[int, int]] = set()  # patterns this view added to the trace
        # ... and the arrays themselves: while a run grows, each update is a new copy of the
        # trace, so they are put back into every copy instead of being asked for again
        self._computed: dict[tuple[int, int], np.ndarray] = {}
        self._pending: set[tuple[int, int]] = set()  # heads of the newest request
        self._ticket: object | None = None  # the newest request (answers to older ones: kept)
        self._run = 0  # counts reset_run calls: answers for an earlier run are dropped
        # heads whose pattern request failed, and why (not asked again for this trace)
        self._failed: dict[tuple[int, int], str] = {}
        self._probe: dict | None = None  # the probe's notes, for later runs of the same model
        self._probing = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="heads-top"):
            yield HeadGrid(id="head-grid")
            with Vertical(id="head-info"):
                yield Static(id="head-summary")
                yield Static(id="head-query")
        yield Static(id="pattern-title")
        yield PatternGrid(id="pattern")
        yield Static(id="head-multiples")

    # ---- actions -----------------------------------------------------------------------------

    def action_cycle_score(self) -> None:
        """Colour the heads grid by the next head score metric (entropy, first, prev, ...)."""
        i = SCORE_NAMES.index(self.score_name)
        self.score_name = SCORE_NAMES[(i + 1) % len(SCORE_NAMES)]
        self.refresh_view()

    def action_toggle_log(self) -> None:
        """Colour the pattern on a log or a linear scale."""
        self.log_scale = not self.log_scale
        self.refresh_view()

    def action_probe(self) -> None:
        """Run the induction probe in the model worker; its head types then mark the grid."""
        if getattr(self.app, "live_model", None) is None:
            live = getattr(self.app, "live", False)  # still loading, or failed to load
            why = self.app.model_missing() if live else "the induction probe needs the live model"
            self.app.notify(why, severity="warning")
            return
        if self._probing:
            return
        self._probing = True
        self.app.notify("running the induction probe (random tokens, repeated)...")

        def done(result: dict | str) -> None:
            self._probing = False
            if isinstance(result, str):
                self.app.notify(f"the induction probe failed: {result}", severity="error")
                return
            self._probe = result
            if self.trace is not None:
                self.trace.notes[PROBE_NOTE] = result
            self.refresh_view()

        self.app.run_model_task(probe_or_error, on_done=done)

    def action_ablate_head(self) -> None:
        """Switch off the selected head (zero its output) and run the prompt again."""
        if self._n_heads():
            head = min(self.selection.head, self._n_heads() - 1)
            self.app.intervene(Ablation("head", self._layer(), head))

    def action_step_layer(self, step: int) -> None:
        layers = self._layers()
        if layers:
            i = layers.index(self._layer()) + step
            self.select(layer=layers[int(np.clip(i, 0, len(layers) - 1))])
            self.refresh_view()

    def action_step_head(self, step: int) -> None:
        n_heads = self._n_heads()
        if n_heads:
            self.select(head=int(np.clip(self.selection.head + step, 0, n_heads - 1)))
            self.refresh_view()

    def on_head_grid_cursor_moved(self, event: HeadGrid.CursorMoved) -> None:
        event.stop()
        self.select(layer=self._layers()[event.row], head=event.head)
        self.refresh_view()

    def on_pattern_grid_query_moved(self, event: PatternGrid.QueryMoved) -> None:
        event.stop()
        self.select(token=event.query)
        self.refresh_view()

    def on_resize(self) -> None:
        self.refresh_view()

    # ---- what is selected --------------------------------------------------------------------

    def _layers(self) -> list[int]:
        return self.trace.layers() if self.trace is not None else []

    def _n_heads(self) -> int:
        if self.trace is None or not self.trace.has("heads.entropy"):
            return self.trace.n_heads if self.trace is not None else 0
        return int(self.trace.get("heads.entropy").shape[2])

    def _layer(self) -> int:
        """The selected layer, moved onto a layer the trace holds."""
        layers = self._layers()
        if not layers:
            return 0
        return min(layers, key=lambda layer: abs(layer - self.selection.layer))

    def _big(self) -> bool:
        size = self.app.size
        return size.width >= MULTIPLES_MIN_SIZE[0] and size.height >= MULTIPLES_MIN_SIZE[1]

    # ---- drawing -----------------------------------------------------------------------------

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        summary = self.query_one("#head-summary", Static)
        if self.trace is None or not self.trace.has("heads.entropy"):
            why = self.trace.notes.get(HEADS_MISSING_NOTE) if self.trace is not None else None
            # a backend that could not see the attention says why (capture/nnsight_backend.py)
            summary.update(
                f"This trace has no attention head scores: {markup_safe(str(why))}."
                if why
                else "This trace has no attention head scores."
            )
            self.query_one(PatternGrid).show(None, [], message="no pattern to show")
            return
        trace = self.trace
        # Keyed on the trace object itself, not id(): a later trace may reuse an id. A growing
        # run hands a new trace object every update, so per-run state (computed patterns,
        # failures) is cleared by reset_run() when a new run starts, not here.
        # a long prompt's entropy arrives after the run (capture/derive_entropy.py), in place
        key = (trace, trace.n_tokens, missing_entropy(trace))
        scored = self._scored_at
        if self.scores is None or scored is None or scored[0] is not trace or scored[1:] != key[1:]:
            recorded = {k: v for k, v in trace_patterns(trace).items() if k not in self._on_demand}
            self.scores = head_scores(trace, patterns=recorded)
            self._scored_at = key
        layer, head = self._layer(), min(self.selection.head, self._n_heads() - 1)
        self.set_class(self._big(), "-big")
        self._draw_grid(layer, head)
        self._draw_summary(layer, head)
        on_screen = [(layer, h) for h in range(self._n_heads())] if self._big() else []
        self._fetch_patterns([(layer, head), *on_screen])
        self._draw_pattern(layer, head)
        if self._big():
            self._draw_multiples(layer)

    def _probe_scores(self) -> HeadScores | None:
        """The induction probe's scores and types for this trace's heads, when the trace (or
        this session) has run it."""
        probe = self.trace.notes.get(PROBE_NOTE) if self.trace is not None else None
        same_model = self._probe is not None and self._probe.get("model") == self.trace.model.name
        if probe is None and same_model:
            self.trace.notes[PROBE_NOTE] = probe = self._probe  # saved with the snapshot
        if not probe:
            return None
        return scores_from_rows(probe["heads"], self.scores.layers, self.scores.n_heads)

    def _draw_grid(self, layer: int, head: int) -> None:
        # letters and colours from one source: the probe's when it ran, else this run's
        scores = self._probe_scores() or self.scores
        letters = [
            [type_letters(scores.types.get((lay, h), [])) for h in range(scores.n_heads)]
            for lay in scores.layers
        ]
        grid = self.query_one(HeadGrid)
        grid.show(scores.values[self.score_name], letters, scores.layers)
        grid.move_to(scores.layers.index(layer), head)

    def _draw_summary(self, layer: int, head: int) -> None:
        scores = self.scores
        types = scores.types.get((layer, head), [])
        values = "  ".join(f"{name} {scores.score(name, layer, head):.2f}" for name in SCORE_NAMES)
        partners = [
            f"L{b[0]}.H{b[1]}" if a == (layer, head) else f"L{a[0]}.H{a[1]}"
            for a, b, _ in scores.redundant_pairs
            if (layer, head) in (a, b)
        ]
        probe = self._probe_scores()
        on_probe = ""
        if probe is not None:
            on_probe = f"  on the probe: {', '.join(probe.types.get((layer, head), [])) or 'none'}"
        lines = [
            f"[b]L{layer}.H{head}[/b]  on this run: {', '.join(types) or 'none'}"
            + (f" (with {', '.join(partners)})" if partners else "")
            + on_probe,
            values.replace("nan", "n/a"),
            f"colour: {self.score_name}{' on the probe' if probe is not None else ''}"
            f" = {SCORES[self.score_name]}",
            ("letters (probe): " if probe is not None else "letters: ")
            + " ".join(f"{v[0]} {k}" for k, v in HEAD_TYPES.items()),
        ]
        self.query_one("#head-summary", Static).update("\n".join(lines))

    def _draw_pattern(self, layer: int, head: int) -> None:
        trace = self.trace
        grid = self.query_one(PatternGrid)
        title = self.query_one("#pattern-title", Static)
        query_view = self.query_one("#head-query", Static)
        pattern = trace.arrays.get(pattern_name(layer, head))
        query = int(np.clip(self.selection.token, 0, max(0, trace.n_tokens - 1)))
        newest = None if trace.finished else trace.n_tokens - 1
        if pattern is None:
            message = self._missing_message(layer, head)
            grid.show(None, [], message=message)
            query_view.update("")
            title.update(f" pattern L{layer}.H{head}")  # the grid says what is missing
            return
        query = min(query, pattern.shape[0] - 1)
        labels = trace.token_text[: pattern.shape[0]]
        grid.show(pattern, labels, query=query, newest=newest, log_scale=self.log_scale)
        title_text = colour_key(self.log_scale, 16)
        title_text.append(f"   pattern L{layer}.H{head}, query x key, {pattern.shape[0]} tokens")
        if pattern.shape[0] < trace.n_tokens:
            title_text.append(" (updating)")
        title.update(title_text)
        view = query_weights_text(pattern[query], labels, query, log_scale=self.log_scale)
        query_view.update(view)

    def _missing_message(self, layer: int, head: int) -> str:
        if (layer, head) in self._pending:
            return "computing the pattern..."
        if (layer, head) in self._failed:
            return f"could not compute the pattern: {self._failed[(layer, head)]}"
        return "this snapshot lacks this head's pattern (open the model live to compute it)"

    def _draw_multiples(self, layer: int) -> None:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        cells = []
        for h in range(self._n_heads()):
            pattern = self.trace.arrays.get(pattern_name(layer, h))
            cell = (
                thumbnail_text(pattern, THUMBNAIL_BINS, log_scale=self.log_scale)
                if pattern is not None
                else "…"
            )
            cells.append((f"L{layer}.H{h}", cell))
        per_row = max(1, self.app.size.width // (THUMBNAIL_BINS + 2))
        for start in range(0, len(cells), per_row):
            chunk = cells[start : start + per_row]
            table.add_row(*[name for name, _ in chunk])
            table.add_row(*[cell for _, cell in chunk])
        self.query_one("#head-multiples", Static).update(table)

    # ---- patterns on demand ------------------------------------------------------------------

    def _fetch_patterns(self, wanted: list[tuple[int, int]]) -> None:
        """Ask the model worker for patterns on screen that are missing or behind the trace.

        One request at a time matters: a newer one replaces a waiting one in the worker's
        queue (`kind`), so a burst of key presses costs one forward pass, not one per key.
        """
        trace = self.trace
        keep = set(wanted)
        for key in list(self._on_demand - keep):  # off screen: give the memory back
            trace.arrays.pop(pattern_name(*key), None)
            self._on_demand.discard(key)
            self._computed.pop(key, None)
        for key in self._on_demand:  # a new copy of the growing trace: put them back
            trace.arrays.setdefault(pattern_name(*key), self._computed[key])
        model = getattr(self.app, "live_model", None)
        if model is None:
            return
        missing = [key for key in dict.fromkeys(wanted) if self._needs_pattern(key)]
        if not missing or set(missing) <= self._pending:
            return  # nothing new, or the request in flight covers it
        self._pending = set(missing)
        ticket = self._ticket = object()
        run, token_ids = self._run, list(trace.token_ids)

        def settled() -> None:
            if ticket is self._ticket:
                self._pending, self._ticket = set(), None

        def done(result: dict[tuple[int, int], np.ndarray] | str) -> None:
            settled()
            if run != self._run:
                return  # asked for by the last run
            if isinstance(result, str):
                self._failed.update(dict.fromkeys(missing, result))
                self.app.notify(f"could not compute the pattern: {result}", severity="error")
            elif self.trace is not None:
                for key, pattern in result.items():
                    name = pattern_name(*key)
                    if name not in self.trace.arrays or key in self._on_demand:
                        self._computed[key] = np.asarray(pattern, np.float32)
                        self.trace.arrays[name] = self._computed[key]
                        self._on_demand.add(key)
            self.refresh_view()

        replay = trace if trace.interventions else None  # an intervened run's own patterns
        self.app.run_model_task(
            patterns_or_error, token_ids, missing, replay, on_done=done,
            kind=f"patterns {self.id}", on_cancelled=settled,
        )  # fmt: skip

    def reset_run(self) -> None:
        """A new run: patterns, scores and failures of the last one no longer apply."""
        self._run += 1
        self._on_demand.clear()
        self._computed.clear()
        self._failed.clear()
        self._pending, self._ticket = set(), None
        self.scores, self._scored_at = None, None

    def _needs_pattern(self, key: tuple[int, int]) -> bool:
        """Missing, or computed on demand and now behind the growing trace.

        While a run generates, a computed pattern is refreshed every REFRESH_EVERY tokens or
        quarter of its length and once the run ends.
        """
        pattern = self.trace.arrays.get(pattern_name(*key))
        if pattern is None:
            return key not in self._failed
        if key not in self._on_demand:
            return False  # the run records it row by row
        behind = self.trace.n_tokens - pattern.shape[0]
        # each refresh is a forward pass over the whole sequence: refresh when the run has
        # grown by REFRESH_EVERY tokens or by a quarter, whichever is more, so a long run
        # costs a few dozen passes rather than one every few tokens
        due = max(REFRESH_EVERY, pattern.shape[0] // 4)
        return behind > 0 and (self.trace.finished or behind >= due)
