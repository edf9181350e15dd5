"""A run: one forward pass over the prompt, then token-by-token generation with the KV cache.

Every step records only the new positions into the Trace (for attention, the new query rows).
`on_step(trace, start, stop)` is called in the calling (worker) thread after the prompt's pass
(start=0, stop=n_prompt) and after each generated token; `cancel` (a threading.Event) is
checked between steps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

StepCallback = Callable[[Trace, int, int], None]


@dataclass
class GenerationOptions:
    """How a run continues after the prompt.

    temperature 0 decodes greedily; otherwise sampling with `top_p` nucleus and `seed`.
    `too_long` is what happens to a prompt longer than the model's context: "refuse" raises
    PromptError, "truncate" keeps the rightmost tokens that fit and says so in trace.notes.
    """

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    too_long: str = "refuse"
    stop_at_eos: bool = True


def model_info(bundle: LoadedModel) -> ModelInfo:
    """The Trace's record of the model (counts come from the anatomy)."""
    raise NotImplementedError  # filled in by capture/run.py's author


def run(
    bundle: LoadedModel,
    prompt: str,
    spec: CaptureSpec | None = None,
    options: GenerationOptions | None = None,
    *,
    on_step: StepCallback | None = None,
    cancel: threading.Event | None = None,
) -> Trace:
    """Run `prompt` and generate; return the Trace (stop_reason: "eos", "length", "cancelled").

    Raises PromptError for an empty prompt or (too_long="refuse") one past the context.
    Hooks are removed when this returns or raises.
    """
    raise NotImplementedError


def compute_patterns(
    bundle: LoadedModel, token_ids: list[int], heads: list[tuple[int, int]]
) -> dict[tuple[int, int], np.ndarray]:
    """Full attention patterns [T, T] for the given (layer, head) pairs, by one forward pass.

    A head of -1 means the mean over that layer's heads. Used for patterns on demand.
    """
    raise NotImplementedError
