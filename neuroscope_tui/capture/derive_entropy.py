"""A long prompt's head entropy, derived after the run that left it out.

Every head score of a prompt but one comes almost free from the fused attention kernel's
log-sum-exp (capture/attention_flash.py); entropy needs sum_j p_ij s_ij, a second pass over
every (query, key) pair that costs as much as the model's own attention. A run with
`entropy_later` (the app's live scan) leaves it "not computed" (NaN) for prompts longer than
ENTROPY_LATER_TOKENS, and this module fills it in with one forward pass over the prompt:

- `missing_entropy(trace)`: whether any recorded entropy is still NaN;
- `derive_entropy(bundle, trace)`: the pass, in place; `complete_trace` (capture/derive.py)
  calls it, so the app derives it when the worker is idle after a run and `complete_for_save`
  before any snapshot is written.

The numbers are the tap's own (the same fused route with the entropy asked), so they equal
what a run without `entropy_later` records. torch is imported only inside `derive_entropy`.
"""

from __future__ import annotations

import numpy as np

from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import Trace


def missing_entropy(trace: Trace) -> bool:
    """Whether `trace` records head entropy and some of it is "not computed" (NaN)."""
    if not trace.has("heads.entropy"):
        return False
    return bool(np.isnan(trace.get("heads.entropy")[:, : trace.n_tokens]).any())


class _EntropySink:
    """The tap's sink for the derivation: keeps each layer's entropy [T, H], nothing else."""

    entropy_later = False  # the point of the pass

    def __init__(self) -> None:
        self.entropy: dict[int, np.ndarray] = {}

    def wants_patterns(self, layer: int) -> list[int]:
        return []

    def attention(self, layer: int, stats, rows) -> None:
        self.entropy[layer] = stats["entropy"].float().cpu().numpy()


def derive_entropy(bundle: LoadedModel, trace: Trace) -> int:
    """Fill in the NaN entropy of `trace` (positions up to the last one missing) from one
    forward pass under the tap, in place; returns how many (layer, position) rows it filled.
    Call it in the model worker, with the model's lock held."""
    if not missing_entropy(trace):
        return 0
    entropy = trace.arrays["heads.entropy"]  # [recorded layers, T, H]
    missing = np.isnan(entropy[:, : trace.n_tokens]).any(axis=2)  # [L, T]
    last = int(np.flatnonzero(missing.any(axis=0))[-1])
    got = entropy_pass(bundle, trace.token_ids[: last + 1], trace)
    filled = 0
    for row, layer in enumerate(trace.layers()):
        todo = np.flatnonzero(missing[row, : last + 1])
        if todo.size and layer in got:
            entropy[row, todo] = got[layer][todo]
            filled += int(todo.size)
    return filled


def entropy_pass(
    bundle: LoadedModel, token_ids: list[int], trace: Trace | None = None
) -> dict[int, np.ndarray]:
    """Every layer's head entropy [T, H] over `token_ids`, from one forward pass under the
    tap (empty when the model cannot use it: then no run left entropy out). With `trace`,
    the pass replays the run's interventions: an ablated head's entropy is the one the
    intervened run had."""
    from contextlib import nullcontext

    import torch

    from neuroscope_tui.capture.attention_tap import tapped
    from neuroscope_tui.capture.side_by_side import replaying

    sink = _EntropySink()
    ids = torch.tensor([list(token_ids)], device=torch.device(bundle.device))
    replay = replaying(bundle, trace, len(token_ids)) if trace is not None else nullcontext()
    tap = tapped(bundle.model, bundle.anatomy.attention, sink, lambda: None)
    with torch.no_grad(), replay, tap as ok:
        if not ok:
            return {}
        try:  # the full-vocabulary logits of every position are not needed
            bundle.model(input_ids=ids, use_cache=False, logits_to_keep=1)
        except TypeError:
            bundle.model(input_ids=ids, use_cache=False)
    return sink.entropy
