"""Interventions on the real SmolLM2-135M reproduce the two facts measured before the issue:

- ablating the four strongest induction heads that the probe (`heads`) reports raises the loss
  on the second copy of a repeated random-token sequence far more than four other heads
  (DESIGN.md: 3.1 -> 8.1 against about 3.6);
- patching the residual stream from "The capital of Germany is" into "The capital of France is"
  recovers " Berlin" over " Paris" at the country token up to layer 23 and not from 24 on,
  where the last position carries it instead.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscope_tui.analysis.heads import head_scores
from neuroscope_tui.capture.interventions import Ablation
from neuroscope_tui.capture.patching import patch_sweep
from neuroscope_tui.capture.probes import induction_probe, model_probe_ids
from neuroscope_tui.capture.side_by_side import intervened_logits

pytestmark = pytest.mark.smollm2

REPEATED = 60  # random tokens in each copy


def _second_copy_loss(bundle, ids: list[int], heads: list[tuple[int, int]]) -> float:
    """Mean cross-entropy of the second copy's tokens with `heads` zero-ablated."""
    logits = intervened_logits(bundle, ids, [Ablation("head", l, h) for l, h in heads])
    start = len(ids) - REPEATED
    logp = torch.log_softmax(logits[start - 1 : -1], -1)
    return float(-logp.gather(1, torch.tensor(ids[start:])[:, None]).mean())


def test_ablating_induction_heads_breaks_copying(smollm2):
    scores = head_scores(induction_probe(smollm2, 50, seed=0, keep_patterns=False))
    induction = scores.values["induction"]  # [layer, head]
    flat = np.argsort(-induction, axis=None, kind="stable")
    n_heads = induction.shape[1]
    top = [(scores.layers[i // n_heads], int(i % n_heads)) for i in flat[:4]]
    others = [(scores.layers[i // n_heads], int(i % n_heads)) for i in flat[-40:][::10]]
    ids = model_probe_ids(smollm2, REPEATED, seed=1)  # a sequence the probe did not use
    plain = _second_copy_loss(smollm2, ids, [])
    ablated = _second_copy_loss(smollm2, ids, top)
    random = _second_copy_loss(smollm2, ids, others)
    assert plain < 4.0
    assert ablated > plain + 3.0, (plain, ablated, random)
    assert random < plain + 1.0, (plain, ablated, random)


def test_the_country_moves_to_the_last_token_at_layer_24(smollm2):
    sweep = patch_sweep(
        smollm2,
        "The capital of Germany is",
        "The capital of France is",
        target=" Berlin",
        foil=" Paris",
    )
    assert sweep.tokens == ["The", " capital", " of", " France", " is"]
    assert sweep.clean_diff > 0 > sweep.corrupt_diff
    country, last = sweep.recovered[:, 3], sweep.recovered[:, 4]
    assert (country[:23] > 0.9).all(), country
    assert (np.abs(country[24:]) < 0.1).all(), country
    assert (last[24:] > 0.9).all() and (np.abs(last[:20]) < 0.1).all(), last
    assert np.abs(sweep.recovered[:, :3]).max() < 0.05  # the shared tokens carry nothing
