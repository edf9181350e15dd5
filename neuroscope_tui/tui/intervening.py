"""The app's intervention actions: add one from a view's key, re-run the prompt, compare.

A mixin of `NeuroscopeApp` (like SavingActions). The views call `app.intervene(iv)` (the heads
view's `a` ablates the head under the cursor, the scan's `a` / `b` a neuron or a block); the
panel of view 9 edits `engine.interventions` and calls `rerun_interventions()`. Every change is
checked against the model's shape first (`check_interventions`): a bad one is a notice and the
run on screen stays. When a run with interventions ends, the per-token logit difference against
the clean run is computed in the model worker and kept on the trace (side by side, view 9), so
saving it keeps what was done and what it changed. Never imports torch at module level.
"""

from __future__ import annotations

from typing import Any

from neuroscope_tui.analysis.intervention_store import store_side_by_side
from neuroscope_tui.capture.interventions import (
    Intervention,
    InterventionError,
    check_interventions,
    describe,
)
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.intervention_state import InterventionState

VIEW_MODE = "interventions need the live model; `view` mode shows those saved with the run (9)"
FIRST_RUN = "run a prompt first: interventions change a run"


class InterventionActions:
    """Mixin of NeuroscopeApp, which provides `engine`, `shown`, `live`, `view`, `start_run`,
    `run_model_task`, `model_missing` and `notify` (see the module docstring)."""

    engine: Any
    shown: Trace | None

    last_prompt: str | None = None  # the prompt of the last run started from this app

    @property
    def interventions(self) -> InterventionState:
        return self.engine.interventions

    def intervene(self, iv: Intervention) -> None:
        """Add `iv` (or take it away if its site is already in the list) and re-run."""
        trace = self.shown
        if not self.live or self.engine.model is None:
            why = self.model_missing() if self.live else VIEW_MODE
            self.notify(why, severity="warning")
            return
        if trace is None or self.last_prompt is None:
            self.notify(FIRST_RUN, severity="warning")
            return
        if self.engine.running:  # the list changes only with the run it applies to
            self.notify("a run is in progress; press Esc to stop it first", severity="warning")
            return
        try:
            check_interventions([iv], trace.model)
        except InterventionError as err:  # the run on screen stays as it is
            self.notify(str(err), title="intervention refused", severity="error")
            return
        added = self.interventions.add(iv)
        self.notify(f"{'added' if added else 'removed'}: {describe(iv)}; re-running the prompt")
        self.rerun_interventions()

    def rerun_interventions(self) -> None:
        """Run the last prompt again with the enabled interventions (the clean run is kept)."""
        trace = self.shown
        if self.last_prompt is None or trace is None:
            self.notify(FIRST_RUN, severity="warning")
            return
        try:
            check_interventions(self.interventions.enabled(), trace.model)
        except InterventionError as err:
            self.notify(str(err), title="intervention refused", severity="error")
            return
        self.start_run(self.last_prompt)

    def run_interventions(self) -> list[Intervention]:
        """What a run started now applies (start_run asks)."""
        return self.interventions.enabled()

    def compare_after_run(self, trace: Trace | None, ivs: list[Intervention]) -> None:
        """A run with interventions ended: keep the side-by-side figures on its trace and
        compute the per-token logit difference in the model worker."""
        clean = self.interventions.clean
        if trace is None or not ivs or clean is None or clean.prompt != trace.prompt:
            return
        store_side_by_side(trace, clean, None)  # texts at once; the difference follows

        def done(result: Any) -> None:
            if isinstance(result, str):
                self.notify(f"the logit difference failed: {result}", severity="error")
                return
            store_side_by_side(trace, clean, result)
            view = self.view
            if self.shown is trace or getattr(view, "trace", None) is trace:
                view.show_trace(self.shown)

        self.run_model_task(
            logit_difference_or_error, clean, ivs, on_done=done, kind="side_by_side", long=True
        )


def logit_difference_or_error(bundle: Any, clean: Trace, ivs: list[Intervention]) -> Any:
    """Model worker: `intervened_logit_difference` over the clean run; a failure is a phrase."""
    try:
        from neuroscope_tui.capture.side_by_side import intervened_logit_difference
    except ImportError:  # an engine without it: the side by side keeps the texts
        return "this build cannot compute the logit difference yet"
    try:
        return intervened_logit_difference(bundle, clean, ivs)
    except Exception as err:  # shown as a notice; the side by side keeps the texts
        return f"{type(err).__name__}: {str(err).strip()[:120]}"
