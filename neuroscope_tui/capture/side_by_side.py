"""What the interventions do to the clean run's own predictions, by teacher forcing.

`intervened_logit_difference` reads the clean run's tokens (prompt and generated) once without
and once with the interventions, and returns, per position t, logit(target at t) with them
minus without. By default the target at t is the clean run's own next token (the token it
wrote at t + 1; at the last position, its top prediction): a negative figure says the
intervention pushed the model away from what it said.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from neuroscope_tui.capture.intervening import EMPTY_SPEC, prepare_intervener
from neuroscope_tui.capture.interventions import (
    Intervention,
    InterventionError,
    intervention_from_dict,
)
from neuroscope_tui.capture.recorder import recording
from neuroscope_tui.capture.run import GenerationOptions, model_info, tokenize_prompt
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import Trace


def _targets(clean: Trace) -> list[int]:
    """The clean run's next token at each position (its top prediction at the last)."""
    ids = list(clean.token_ids[1:])
    last = -1
    if clean.has("logits.top_ids") and clean.get("logits.top_ids").shape[0] == clean.n_tokens:
        last = int(clean.get("logits.top_ids")[-1, 0])
    return [*ids, last]


@contextmanager
def replaying(bundle: LoadedModel, trace: Trace, n_tokens: int) -> Iterator[None]:
    """Within the block, a forward over the trace's first `n_tokens` tokens (from position 0,
    no cache) gets the interventions the trace was run with: a pass that recomputes what the
    run saw (the lens of a stream that was not kept) must see the same model."""
    interventions = [intervention_from_dict(d) for d in trace.interventions]
    if not any(iv.enabled for iv in interventions):
        yield
        return
    options = GenerationOptions(chat="chat_template" in trace.notes)
    intervener = prepare_intervener(
        bundle,
        interventions,
        list(trace.token_ids[: trace.n_prompt]),
        model_info(bundle),
        lambda text: tokenize_prompt(bundle, text, options),
    )
    intervener.begin(0, n_tokens)
    with recording(bundle.anatomy, EMPTY_SPEC, intervener):
        yield


@torch.no_grad()
def intervened_logits(
    bundle: LoadedModel,
    ids: list[int],
    interventions: Sequence[Intervention],
    n_prompt: int | None = None,
    options: GenerationOptions | None = None,
) -> torch.Tensor:
    """Logits [T, vocab] (float32) of one forward over `ids` with the interventions applied.

    The first `n_prompt` ids (default: all) are the prompt: mean ablations average over them,
    and source prompts must have that many tokens (tokenized with `options`).
    """
    n_prompt = len(ids) if n_prompt is None else n_prompt
    options = options or GenerationOptions()
    intervener = prepare_intervener(
        bundle,
        interventions,
        ids[:n_prompt],
        model_info(bundle),
        lambda text: tokenize_prompt(bundle, text, options),
    )
    inputs = torch.tensor([ids], device=torch.device(bundle.device))
    if intervener is None:
        return bundle.model(input_ids=inputs, use_cache=False).logits[0].float()
    intervener.begin(0, len(ids))
    with recording(bundle.anatomy, EMPTY_SPEC, intervener):
        return bundle.model(input_ids=inputs, use_cache=False).logits[0].float()


@torch.no_grad()
def intervened_logit_difference(
    bundle: LoadedModel,
    clean: Trace,
    interventions: Sequence[Intervention],
    target_ids: list[int] | None = None,
) -> np.ndarray:
    """[positions] float32: logit(target at t) with the interventions minus without, over the
    clean run's tokens (NaN where a target is unknown). Raises InterventionError as `run` does.
    """
    ids = list(clean.token_ids)
    if not ids:
        raise InterventionError("the clean run holds no tokens to compare against")
    targets = list(target_ids) if target_ids is not None else _targets(clean)
    if len(targets) != len(ids):
        raise InterventionError(
            f"{len(targets)} target tokens were given for a run of {len(ids)} positions"
        )
    options = GenerationOptions(chat="chat_template" in clean.notes)
    plain = intervened_logits(bundle, ids, (), clean.n_prompt)
    changed = intervened_logits(bundle, ids, interventions, clean.n_prompt, options)
    known = torch.tensor([t >= 0 for t in targets], device=plain.device)
    index = torch.tensor([max(t, 0) for t in targets], device=plain.device)[:, None]
    delta = (changed.gather(1, index) - plain.gather(1, index))[:, 0]
    return torch.where(known, delta, torch.nan).cpu().numpy().astype(np.float32)
