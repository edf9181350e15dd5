"""The interventions panel: the list the user built, one line each, edited from the keyboard.

Live, it lists `app.interventions` (tui/intervention_state.py): space turns one on or off,
Delete removes it, `m` cycles an ablation's mode (zero, mean), `+` / `-` change a steering
alpha, `r` runs the prompt again with what is on (the clean run is kept, not recomputed).
In `view` mode it lists what the saved run applied, read-only. Lines are `Text`: a patch
quotes its source prompt, which must not be read as markup.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import OptionList

from neuroscope_tui.capture.interventions import describe
from neuroscope_tui.text_safety import visible
from neuroscope_tui.tui.intervention_state import ALPHA_STEP
from neuroscope_tui.tui.widgets.intervention_figures import interventions_lines

EMPTY_LIVE = "no interventions: a in the heads view (2) or the scan (1) ablates what is selected"
EMPTY_SAVED = "this run applied no interventions"


class InterventionPanel(OptionList):
    """Active interventions; see the module docstring for its keys."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle", "on/off"),
        Binding("delete,backspace", "remove", "remove"),
        Binding("m", "cycle_mode", "ablation mode"),
        Binding("plus,equals_sign", "alpha(1)", "alpha +", show=False),
        Binding("minus", "alpha(-1)", "alpha -", show=False),
        Binding("r", "rerun", "re-run"),
    ]

    def show_items(self, live: list[Any] | None, saved: list[dict]) -> None:
        """List `live` interventions (editable), or else the `saved` records of the run."""
        at = self.highlighted
        self.clear_options()
        if live is not None:
            lines = [describe(iv) for iv in live] or [EMPTY_LIVE]
        else:
            lines = interventions_lines(saved) or [EMPTY_SAVED]
        self.add_options([Text(visible(line)) for line in lines])
        if self.option_count:  # keep the cursor where it was (on the first line at first)
            self.highlighted = min(at or 0, self.option_count - 1)

    # ---- actions: the app owns the list; the view redraws after each --------------------

    def _edit(self, fn_name: str, *args: Any) -> None:
        state = getattr(self.app, "interventions", None)
        at = self.highlighted
        if not getattr(self.app, "live", False) or state is None:
            self.notify("view mode: these are the interventions saved with the run", timeout=4)
            return
        if at is None or at >= len(state.items):
            self.notify("no intervention selected", severity="warning")
            return
        result = getattr(state, fn_name)(at, *args)
        if result is False:
            what = "an ablation" if fn_name == "cycle_mode" else "a steering vector"
            self.notify(f"only {what} has that setting", severity="warning")
        self.post_message(self.Edited())

    def action_toggle(self) -> None:
        """Turn the selected intervention on or off (applies at the next run: r)."""
        self._edit("toggle")

    def action_remove(self) -> None:
        """Remove the selected intervention."""
        self._edit("remove")

    def action_cycle_mode(self) -> None:
        """Ablate the selected site with the next mode (zero, mean)."""
        self._edit("cycle_mode")

    def action_alpha(self, sign: int) -> None:
        """Raise or lower the selected steering vector's alpha."""
        self._edit("change_alpha", sign * ALPHA_STEP)

    def action_rerun(self) -> None:
        """Run the prompt again with the interventions that are on."""
        rerun = getattr(self.app, "rerun_interventions", None)
        if rerun is None or not getattr(self.app, "live", False):
            self.notify("re-running needs the live model", severity="warning")
            return
        rerun()

    class Edited(Message):
        """The list changed: redraw it."""
