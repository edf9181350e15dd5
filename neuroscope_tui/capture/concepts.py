"""The forward passes that feed a concept: one per prompt, the residual stream of every layer
at the chosen position, collected through the recorder (no hooks of our own).

`collect_activations(bundle, texts, position)` returns float32 [n_texts, n_layers, d_model]:
the stream after each block at the prompt's last token ("last") or averaged over the prompt's
tokens after the first ("mean"). `progress(fraction, text)` (a `TaskContext.progress`) is
called after every prompt, so a cancel stops the work at the next prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from neuroscope_tui.capture.recorder import recording
from neuroscope_tui.capture.run import GenerationOptions, tokenize_prompt
from neuroscope_tui.errors import ConceptError, PromptError
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.tasks import ProgressFn
from neuroscope_tui.trace import CaptureSpec

POSITIONS = ("last", "mean")

# Full residual rows of every layer, nothing else worth the time: no attention tap, no lens.
_SPEC = CaptureSpec(sites=(), full_layers=None, head_scores=False, lens_positions=(), top_k=1)


def pick_position(rows: np.ndarray, position: str) -> np.ndarray:
    """[L, T, D] residual rows of one prompt -> [L, D] at `position` ("last" or "mean")."""
    if position == "last":
        return rows[:, -1]
    if position == "mean":
        # The first token carries the attention sink's massive activations (thousands of
        # times the median on SmolLM2): averaged in, it swamps every other token, so the mean
        # is over the tokens after it.
        return rows[:, 1:].mean(axis=1) if rows.shape[1] > 1 else rows[:, 0]
    raise ConceptError(f"unknown position {position!r}; choose one of: {', '.join(POSITIONS)}")


@torch.no_grad()
def collect_activations(
    bundle: LoadedModel,
    texts: Sequence[str],
    position: str = "last",
    *,
    progress: ProgressFn | None = None,
    label: str = "prompt",
) -> np.ndarray:
    """Residual stream per layer at `position` for every text: float32 [n, L, D].

    A prompt longer than the context keeps its last tokens (as a run would with
    --too-long truncate). Raises ConceptError for an unknown position or a prompt that
    gives no tokens.
    """
    if position not in POSITIONS:
        pick_position(np.zeros((1, 1, 1)), position)  # raises the sentence
    anatomy = bundle.anatomy
    out = np.zeros((len(texts), anatomy.n_layers, anatomy.d_model), np.float32)
    device = torch.device(bundle.device)
    options = GenerationOptions(too_long="truncate")
    with recording(anatomy, _SPEC) as rec:
        for i, text in enumerate(texts):
            try:
                ids = tokenize_prompt(bundle, text, options)
            except PromptError as err:
                raise ConceptError(f"{label} {i + 1} cannot be run: {err}") from None
            inputs = torch.tensor([ids], device=device)
            try:
                bundle.model(input_ids=inputs, use_cache=False, logits_to_keep=1)
            except TypeError:  # an architecture without logits_to_keep
                bundle.model(input_ids=inputs, use_cache=False)
            rows = rec.flush()["resid.full"]  # [L, T, D]
            out[i] = pick_position(rows.astype(np.float32, copy=False), position)
            if progress is not None:
                progress((i + 1) / len(texts), f"{label} {i + 1}/{len(texts)}")
    return out


@torch.no_grad()
def prompt_rows(bundle: LoadedModel, text: str) -> tuple[list[str], np.ndarray]:
    """(each token's text, the residual stream after every block at every token [L, T, D])
    of one prompt, by one forward pass through the recorder."""
    from neuroscope_tui.capture.run import token_texts

    ids = tokenize_prompt(bundle, text, GenerationOptions())
    with recording(bundle.anatomy, _SPEC) as rec:
        bundle.model(
            input_ids=torch.tensor([ids], device=torch.device(bundle.device)), use_cache=False
        )
        rows = rec.flush()["resid.full"].astype(np.float32, copy=False)
    return token_texts(bundle.tokenizer, ids), rows
