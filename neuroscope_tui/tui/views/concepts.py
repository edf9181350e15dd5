"""The concept view (key 0): where the model separates two labelled prompt sets, layer by layer.

`f` fits the chosen sets in the model worker (one forward per prompt, then the probes of
analysis/concepts.py) with a progress line; Esc cancels. `e` cycles the sets: those given with
`--concept-set` / `--concept-transfer`, then the shipped examples. On screen: the accuracy per
layer (cross-validated probe, the direction's own sign, transfer to the second set) as a plot
and a layer strip; the selected layer's projections of the two classes as a histogram; the
examples that sit worst on the wrong side. `[` `]` (or left/right on the strip) move the layer.
Example texts come from files: they are shown as plain text, never markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from neuroscope_tui.analysis.concepts import ConceptFit, worst_examples
from neuroscope_tui.text_safety import visible
from neuroscope_tui.tui.views.base import TraceView
from neuroscope_tui.tui.views.long_task import LongTask
from neuroscope_tui.tui.widgets.heatmap_render import build_palette

EXAMPLE_CHOICES: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("example:sentiment_en",), ("example:sentiment_fr",)),
    (("example:requests",), ()),
]


@dataclass
class ConceptResult:
    """A fit and the examples it was fitted on (what the view draws)."""

    fit: ConceptFit
    labels: tuple[str, str]
    texts: tuple[str, ...]
    y: np.ndarray
    sets: tuple[str, ...]
    transfer: tuple[str, ...]


def fit_sets(bundle: Any, sets: tuple[str, ...], transfer: tuple[str, ...], progress=None):
    """In the model worker: read the sets, run the prompts, fit -> ConceptResult, or the
    sentence saying what is wrong with the sets (a str)."""
    from neuroscope_tui.analysis.concepts import fit_concept
    from neuroscope_tui.capture.concepts import collect_activations
    from neuroscope_tui.concept_sets import read_sets
    from neuroscope_tui.errors import NeuroscopeError

    try:
        s = read_sets(sets)
        t = read_sets(transfer, what="the transfer set") if transfer else None
        labels = s.classes
        y = np.array(s.label_ids(labels))
        ty = np.array(t.label_ids(labels)) if t is not None else None
        n = len(s) + (len(t) if t is not None else 0)

        def part(offset: int, size: int):
            if progress is None:
                return None
            return lambda f, text: progress(0.9 * (offset + f * size) / n, text)

        x = collect_activations(bundle, s.texts, progress=part(0, len(s)))
        tx = None
        if t is not None:
            tx = collect_activations(
                bundle, t.texts, progress=part(len(s), len(t)), label="transfer prompt"
            )
        probe_progress = None
        if progress is not None:
            probe_progress = lambda f, text: progress(0.9 + 0.1 * f, text)  # noqa: E731
        fit = fit_concept(x, y, transfer_x=tx, transfer_y=ty, progress=probe_progress)
    except NeuroscopeError as err:
        return str(err)
    except ValueError as err:  # too few examples of a label for the probes
        return f"the sets cannot be fitted: {err}"
    return ConceptResult(fit, (labels[0], labels[1]), s.texts, y, tuple(sets), tuple(transfer))


def layer_strip(fit: ConceptFit, layer: int) -> Text:
    """One cell per layer, coloured by cross-validated accuracy (0.5 dark .. 1.0 bright),
    the selected layer underlined and the best one starred."""
    colours = build_palette().colours
    text = Text("probe accuracy by layer  ", style="bold")
    best = fit.best_layer
    for i, acc in enumerate(fit.cv_accuracy):
        level = min(max((float(acc) - 0.5) / 0.5, 0.0), 1.0)
        c = colours[int(level * (len(colours) - 1))]
        fg = "black" if level > 0.6 else "white"
        style = Style(bgcolor=f"rgb{c}", color=fg, underline=i == layer, bold=i == layer)
        text.append(f"{i}{'*' if i == best else ''}", style)
        text.append(" ")
    return text


class LayerStrip(Static, can_focus=True):
    """The layer strip; focusable so the view's keys reach it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "step(-1)", "previous layer", show=False),
        Binding("right", "step(1)", "next layer", show=False),
    ]

    def action_step(self, delta: int) -> None:
        view = next(a for a in self.ancestors if isinstance(a, ConceptView))
        view.step_layer(delta)


class ConceptView(LongTask, TraceView):
    """Accuracy and transfer per layer, the selected layer's projections, the worst examples."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "fit", "fit concept"),
        Binding("e", "next_sets", "sets"),
        Binding("c", "cancel", "cancel", show=False),
    ]
    STATUS_ID = "concept-status"
    CANCELLED = "concept fit cancelled"
    DEFAULT_CSS = """
    ConceptView { layout: vertical; }
    ConceptView #concept-status { height: auto; padding: 0 1; }
    ConceptView #concept-strip { height: auto; padding: 0 1; }
    ConceptView #concept-plots { height: 1fr; }
    ConceptView #concept-acc, ConceptView #concept-hist { width: 1fr; }
    ConceptView #concept-worst { height: auto; max-height: 8; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.choice = 0
        self.result: ConceptResult | None = None
        self.init_long_task()  # the fit, in the model worker

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="concept-status")
            yield LayerStrip(id="concept-strip")
            with Horizontal(id="concept-plots"):
                yield PlotextPlot(id="concept-acc")
                yield PlotextPlot(id="concept-hist")
            yield Static(id="concept-worst")

    def on_mount(self) -> None:
        # the concept view needs no run: draw its sets and keys at once
        self.call_after_refresh(self.refresh_view)

    # ---- the sets ---------------------------------------------------------------------------

    def choices(self) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        given = tuple(getattr(self.app, "concept_sets", ()) or ())
        transfer = tuple(getattr(self.app, "concept_transfer", ()) or ())
        return ([(given, transfer)] if given else []) + EXAMPLE_CHOICES

    def current_sets(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        options = self.choices()
        return options[self.choice % len(options)]

    def action_next_sets(self) -> None:
        """Choose the next sets to fit."""
        self.choice = (self.choice + 1) % len(self.choices())
        self.refresh_view()

    # ---- the fit in the model worker --------------------------------------------------------

    def action_fit(self) -> None:
        """Fit the chosen sets in the model worker (Esc cancels)."""
        if getattr(self.app, "live_model", None) is None:
            self.message = "fitting a concept needs the live model (not `view` mode)"
            self.notify(self.message, severity="warning")
            self.refresh_view()
            return
        if self.busy:
            self.notify("a concept is already being fitted; Esc or c cancels it")
            return
        sets, transfer = self.current_sets()
        self.start_long_task(
            fit_sets, sets, transfer, kind="concept", label="concept", on_done=self._fitted
        )

    def _fitted(self, found: Any) -> None:
        if isinstance(found, str):
            self.message = found
            self.notify(found, severity="warning")
        else:
            self.show_result(found)
            return
        self.refresh_view()

    def show_result(self, result: ConceptResult) -> None:
        """Draw a fit (from the worker, or a test)."""
        self.result = result
        self.message = ""
        if result.fit.cv_accuracy.size:
            self.select(layer=result.fit.best_layer)
        self.refresh_view()

    def action_cancel(self) -> None:
        """Cancel the fit in progress."""
        if not self.cancel_work():
            self.notify("no concept is being fitted")

    def step_layer(self, delta: int) -> None:
        if self.result is None:
            return
        n = self.result.fit.cv_accuracy.size
        self.select(layer=min(max(self.layer() + delta, 0), n - 1))
        self.refresh_view()

    def layer(self) -> int:
        n = self.result.fit.cv_accuracy.size if self.result is not None else 1
        return min(max(self.selection.layer, 0), max(n - 1, 0))

    # ---- drawing ------------------------------------------------------------------------------

    def status_text(self) -> Text:
        sets, transfer = self.current_sets()
        text = Text("concept sets: ", style="bold")
        text.append(visible(" + ".join(sets)))
        if transfer:
            text.append("   transfer: ", style="bold")
            text.append(visible(" + ".join(transfer)))
        text.append("\nf fit · e other sets · [ ] layer · Esc cancel", style="dim")
        if not self.progress_lines(text) and self.result is None:
            text.append("\nno concept fitted yet: press f", style="italic")
        return text

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        self.query_one("#concept-status", Static).update(self.status_text())
        r = self.result
        strip = self.query_one("#concept-strip", LayerStrip)
        worst = self.query_one("#concept-worst", Static)
        if r is None:
            strip.update("")
            worst.update("")
            for plot_id in ("#concept-acc", "#concept-hist"):
                plot = self.query_one(plot_id, PlotextPlot)
                plot.plt.clear_data()
                plot.plt.clear_figure()
                plot.refresh()
            return
        layer = self.layer()
        strip.update(layer_strip(r.fit, layer))
        self._draw_accuracy(r, layer)
        self._draw_histogram(r, layer)
        worst.update(self.worst_text(r, layer))

    def _draw_accuracy(self, r: ConceptResult, layer: int) -> None:
        plot = self.query_one("#concept-acc", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        xs = list(range(r.fit.cv_accuracy.size))
        plt.title("accuracy per layer")
        plt.plot(xs, [float(v) for v in r.fit.cv_accuracy], label="probe (cv)", marker="braille")
        if r.fit.transfer_accuracy is not None:
            ys = [float(v) for v in r.fit.transfer_accuracy]
            plt.plot(xs, ys, label="transfer", marker="braille")
        plt.hline(0.5, "gray")
        plt.vline(layer, "red")
        plt.ylim(0.0, 1.05)
        plot.refresh()

    def _draw_histogram(self, r: ConceptResult, layer: int) -> None:
        plot = self.query_one("#concept-hist", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        p = r.fit.projections[:, layer]
        plt.title(f"layer {layer}: projection u·x-b")
        for k, name in enumerate(r.labels):
            values = [float(v) for v in p[r.y == k]]
            if values:
                plt.hist(values, bins=16, label=visible(name)[:20])
        plt.vline(0.0, "red")
        plot.refresh()

    def worst_text(self, r: ConceptResult, layer: int) -> Text:
        idx = worst_examples(r.fit.projections, r.y, layer, k=5)
        acc = float(r.fit.cv_accuracy[layer])
        text = Text(f"layer {layer}: probe accuracy {acc:.2f}", style="bold")
        if r.fit.transfer_accuracy is not None:
            text.append(f", transfer {float(r.fit.transfer_accuracy[layer]):.2f}", style="bold")
        if not idx:
            text.append("\nevery example is on its label's side of the direction")
            return text
        text.append("\nworst on the wrong side:")
        for i in idx:
            value = float(r.fit.projections[i, layer])
            text.append(f"\n {value:+8.2f}  {visible(r.labels[int(r.y[i])])[:12]:<12} ")
            text.append(visible(r.texts[i])[:90])
        return text
