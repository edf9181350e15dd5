"""The app's interventions: the list the user built with keys, and the clean run they change.

`InterventionState` is plain data shared by the UI thread (which edits the list) and the model
worker (which reads a copy taken when a run starts, and keeps the clean trace). The clean run
of a prompt is kept so that a re-run where only the interventions changed never recomputes it:
`clean_for(prompt, options)` gives it back while the prompt and generation options match.
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from neuroscope_tui.capture.interventions import Ablation, Intervention, Steering
from neuroscope_tui.trace import Trace

ABLATE_MODES = ("zero", "mean")  # what `m` cycles in the panel (resample needs a 2nd prompt)
ALPHA_STEP = 1.0  # what + and - add to a steering alpha


def run_key(prompt: str, options: dict[str, Any]) -> tuple:
    """What makes two runs of a prompt the same run: the prompt and its generation options."""
    return (prompt, tuple(sorted((k, repr(v)) for k, v in options.items())))


@dataclass
class InterventionState:
    """The interventions the user built, and the clean run of the last prompt."""

    items: list[Intervention] = field(default_factory=list)
    clean: Trace | None = None  # the last finished run without interventions
    clean_key: tuple | None = None

    def enabled(self) -> list[Intervention]:
        return [iv for iv in self.items if iv.enabled]

    def clean_for(self, prompt: str, options: dict[str, Any]) -> Trace | None:
        """The kept clean run of `prompt` with `options`, or None."""
        return self.clean if self.clean_key == run_key(prompt, options) else None

    def keep_clean(self, trace: Trace, prompt: str, options: dict[str, Any]) -> None:
        self.clean, self.clean_key = trace, run_key(prompt, options)

    # ---- editing (UI thread) --------------------------------------------------------------

    def add(self, iv: Intervention) -> bool:
        """Add `iv`, or remove it when the same site is already in the list (a key toggles
        its own ablation); whether it is now in the list."""
        same = [i for i, old in enumerate(self.items) if _site(old) == _site(iv)]
        if same:
            del self.items[same[0]]
            return False
        self.items.append(iv)
        return True

    def toggle(self, i: int) -> None:
        iv = self.items[i]
        self.items[i] = replace(iv, enabled=not iv.enabled)

    def remove(self, i: int) -> None:
        del self.items[i]

    def cycle_mode(self, i: int) -> bool:
        """Next ablation mode (zero, mean); whether item `i` has a mode."""
        iv = self.items[i]
        if not isinstance(iv, Ablation):
            return False
        at = ABLATE_MODES.index(iv.mode) if iv.mode in ABLATE_MODES else -1
        self.items[i] = replace(iv, mode=ABLATE_MODES[(at + 1) % len(ABLATE_MODES)])
        return True

    def change_alpha(self, i: int, step: float) -> bool:
        """Add `step` to a steering vector's alpha; whether item `i` has one."""
        iv = self.items[i]
        if not isinstance(iv, Steering):
            return False
        self.items[i] = replace(iv, alpha=round(iv.alpha + step, 6))
        return True


def _site(iv: Intervention) -> tuple:
    """Where an intervention acts, whatever its mode or alpha (one entry per site)."""
    if isinstance(iv, Steering):
        return ("steer", iv.layer, iv.label)
    kind = "ablate" if isinstance(iv, Ablation) else "patch"
    return (kind, iv.site, iv.layer, iv.index, iv.positions)
