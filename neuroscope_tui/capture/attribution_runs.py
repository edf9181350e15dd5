"""Attribution of one token of a run: which output, against which foil, stored where.

capture/attribution.py holds the methods (gradient x input, integrated gradients, occlusion)
as functions of token ids; this module picks what they explain for the app and `capture`
(a position of the trace, the model's own prediction, a `--target` continuation, a `--foil`),
runs integrated gradients until it has converged, and keeps the results on the trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuroscope_tui.analysis.attribution_trust import CHANGE_TOLERANCE, GAP_TOLERANCE, refine_steps
from neuroscope_tui.capture.attribution import (
    DEFAULT_STEPS,
    METHODS,
    Attribution,
    _stage,
    _watching,
    attribute,
    integrated_gradients,
)
from neuroscope_tui.errors import PromptError, UsageError
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import Trace

EXAMPLES = {"foil": "' London'", "target": "' Berlin'"}


def single_token_id(bundle: LoadedModel, text: str, role: str = "foil") -> tuple[int, str]:
    """The token id a foil (or target) text stands for: its first token, and that token's text.

    Raises UsageError for text that tokenizes to nothing or holds the tokenizer's unknown
    token.
    """
    ids = bundle.tokenizer(text, add_special_tokens=False)["input_ids"]
    example = EXAMPLES.get(role, "' London'")
    if not ids:
        raise UsageError(f"the {role} {text!r} is no token at all; give a word such as {example}.")
    unknown = getattr(bundle.tokenizer, "unk_token_id", None)
    if unknown is not None and int(unknown) in (int(i) for i in ids):
        raise UsageError(
            f"the {role} {text!r} is not a token this model knows (it reads as the unknown "
            f"token); give a word such as {example}."
        )
    return int(ids[0]), bundle.tokenizer.decode([int(ids[0])])


@dataclass
class AttributionSet:
    """Every method's attribution of one output position, and what it was for.

    The inputs are the trace's tokens [0, position); the target is the token at `position`
    (or the model's prediction after the last token when position == T).
    """

    position: int
    target_id: int
    target_text: str
    foil_id: int | None
    foil_text: str | None
    foil_given: str | None
    results: dict[str, Attribution]
    target_given: str | None = None  # the --target text, when the target was not the model's

    def notes(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "n_inputs": self.position,
            "target_id": self.target_id,
            "target_text": self.target_text,
            "foil_id": self.foil_id,
            "foil_text": self.foil_text,
            "foil_given": self.foil_given,
            "target_given": self.target_given,
            "methods": {m: r.summary() for m, r in self.results.items()},
        }


def integrated_gradients_auto(
    bundle: LoadedModel,
    token_ids: list[int],
    target_id: int,
    foil_id: int | None = None,
    *,
    target_gap: float = GAP_TOLERANCE,
    target_change: float = CHANGE_TOLERANCE,
    start: int = 16,
    max_steps: int = 256,
) -> Attribution:
    """Integrated gradients with 16, 32, 64... steps until it has converged.

    Converged: the relative gap is within `target_gap` and no token's score moved by more
    than `target_change` of the total since the count before (`refine_steps`). Returns that
    result, else the one with `max_steps` and `converged` False; its notes list the gap and
    the score change at every step count tried ("tried", "changes").
    """

    def integrate(steps: int) -> Attribution:
        return integrated_gradients(bundle, token_ids, target_id, foil_id, steps)

    return refine_steps(
        integrate,
        start=start,
        max_steps=max_steps,
        gap_tolerance=target_gap,
        change_tolerance=target_change,
    )


def attribute_position(
    bundle: LoadedModel,
    token_ids: list[int],
    position: int,
    foil: str | None = None,
    *,
    target: str | None = None,
    steps: int | None = None,
    methods: tuple[str, ...] = METHODS,
    progress: Callable[[float, str], None] | None = None,
) -> AttributionSet:
    """Attribute the token at `position` (or, at len(token_ids), the model's prediction) to
    the tokens before it, against the first token of `foil` when given. A `target` text puts
    its first token there instead, to explain a continuation the model did not choose.

    `steps` None runs integrated gradients with doubling step counts until its gap is under
    5% (`integrated_gradients_auto`). `progress(fraction, text)`, when given, hears of every
    chunk of every method ("integrated gradients 16/32 steps", per method) and may raise to
    stop the work between chunks. Does not touch any Trace: safe in the model worker.
    """
    import torch

    if not 1 <= position <= len(token_ids):
        raise UsageError(f"choose an output position between 1 and {len(token_ids)}.")
    inputs = list(token_ids[:position])
    if target is not None:
        target_id = single_token_id(bundle, target, "target")[0]
    elif position < len(token_ids):
        target_id = int(token_ids[position])
    else:
        with torch.no_grad():
            ids = torch.tensor([inputs], device=bundle.model.get_input_embeddings().weight.device)
            target_id = int(bundle.model(ids, use_cache=False).logits[0, -1].argmax())
    foil_id, foil_text = (None, None) if foil is None else single_token_id(bundle, foil)
    if foil_id == target_id:
        raise UsageError(f"the foil {foil!r} is the target token itself; choose another word.")
    results: dict[str, Attribution] = {}
    with _watching(progress):
        for method in methods:
            _stage(method)
            if method == "integrated_gradients" and steps is None:
                results[method] = integrated_gradients_auto(bundle, inputs, target_id, foil_id)
            else:
                one = attribute(
                    bundle,
                    inputs,
                    target_id,
                    foil_id,
                    methods=(method,),
                    steps=steps or DEFAULT_STEPS,
                )
                results.update(one)
    target_text = bundle.tokenizer.decode([target_id])
    return AttributionSet(
        position, target_id, target_text, foil_id, foil_text, foil, results, target
    )


def store_attributions(trace: Trace, found: AttributionSet) -> dict[str, np.ndarray]:
    """Write `attribution.<method>` [T_in] float32 to trace.extras and the numbers to
    trace.notes["attribution"] (replacing any earlier attribution); return the arrays."""
    for name in [n for n in trace.extras if n.startswith("attribution.")]:
        del trace.extras[name]
    arrays = {f"attribution.{m}": r.scores.astype(np.float32) for m, r in found.results.items()}
    trace.extras.update(arrays)
    trace.notes["attribution"] = found.notes()
    return arrays


def attribute_last_token(
    bundle: LoadedModel,
    trace: Trace,
    foil: str | None = None,
    *,
    steps: int | None = None,
    methods: tuple[str, ...] = METHODS,
) -> dict[str, np.ndarray]:
    """Attribute the trace's last generated token to the tokens before it; fill trace.extras.

    With no generated token, the target is the model's top-1 prediction after the prompt.
    A foil text is reduced to its first token (noted). Writes `attribution.<method>` [T_in]
    float32 arrays to trace.extras and their numbers to trace.notes["attribution"]; returns
    the arrays. `steps` None: integrated gradients doubles its steps until the gap is < 5%.
    """
    if trace.n_tokens == 0:
        raise PromptError("attribution needs a prompt; the trace holds no tokens.")
    position = trace.n_tokens - 1 if trace.n_generated > 0 else trace.n_tokens
    if position < 1:
        raise PromptError("attribution needs at least one token before the output token.")
    found = attribute_position(
        bundle, list(trace.token_ids), position, foil, steps=steps, methods=methods
    )
    return store_attributions(trace, found)


def attribute_continuation(
    bundle: LoadedModel, trace: Trace, target: str, foil: str | None = None
) -> dict[str, np.ndarray]:
    """Attribute `target` (its first token) as the continuation of the trace's prompt, as
    `capture --target` asks, whatever the model generated; fill trace.extras and notes as
    `attribute_last_token` does and return the arrays."""
    if trace.n_prompt < 1:
        raise PromptError("attribution needs a prompt; the trace holds no tokens.")
    ids = list(trace.token_ids[: trace.n_prompt])
    found = attribute_position(bundle, ids, trace.n_prompt, foil, target=target)
    return store_attributions(trace, found)
