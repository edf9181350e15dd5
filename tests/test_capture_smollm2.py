"""Truths only a trained model has: SmolLM2-135M answers " Paris", and its logit lens converges
to its own prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.trace import CaptureSpec

pytestmark = pytest.mark.smollm2


def test_greedy_paris_and_lens_matches_prediction(smollm2) -> None:
    trace = run(
        smollm2,
        "The capital of France is",
        CaptureSpec(full_layers=()),
        GenerationOptions(max_new_tokens=3),
    )
    assert trace.generated_text.startswith(" Paris")
    assert trace.model.n_layers == 30 and trace.model.n_heads == 9
    assert trace.model.n_kv_heads == 3 and trace.model.d_model == 576
    # at every position the last layer's lens top-1 is the model's own next-token prediction
    lens_top1 = trace.get("lens.top_ids")[-1, :, 0]
    np.testing.assert_array_equal(lens_top1, trace.get("logits.top_ids")[:, 0])
    # and each generated token is the previous position's prediction (greedy)
    own = trace.get("logits.top_ids")[:, 0]
    assert trace.token_ids[trace.n_prompt :] == own[trace.n_prompt - 1 : -1].tolist()


def test_paris_rank_per_layer_matches_hidden_states(smollm2) -> None:
    """The lens rank of " Paris" at the last prompt position, against output_hidden_states."""
    trace = run(smollm2, "The capital of France is", None, GenerationOptions(max_new_tokens=0))
    ids = torch.tensor([trace.token_ids])
    model, anatomy = smollm2.model, smollm2.anatomy
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
        paris = int(out.logits[0, -1].argmax())
        ranks = []
        for layer in range(anatomy.n_layers):
            h = out.hidden_states[layer + 1][0, -1]
            if layer < anatomy.n_layers - 1:  # transformers' last entry already has the norm
                h = anatomy.final_norm(h)
            logits = anatomy.unembed(h)
            ranks.append(int((logits > logits[paris]).sum()))
    assert smollm2.tokenizer.decode([paris]) == " Paris"
    np.testing.assert_array_equal(trace.get("lens.pred_rank")[:, -1], ranks)
    assert ranks[-1] == 0 and ranks[len(ranks) // 2] > 100  # climbs late, as the issue says
