"""The forward passes that feed a concept: residual rows through the recorder equal
transformers' own hidden states; progress and cancel through TaskContext; on SmolLM2 the
sentiment facts of DESIGN.md."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscope_tui.capture.concepts import collect_activations
from neuroscope_tui.errors import ConceptError
from neuroscope_tui.tasks import TaskCancelled, TaskContext
from tests.tiny_models import tiny_bundle

TEXTS = ["The cat sat on the mat.", "A dog", "Paris is the capital of France."]


@pytest.fixture(scope="module")
def bundle():
    return tiny_bundle("llama")


@pytest.mark.parametrize("position", ["last", "mean"])
def test_rows_equal_output_hidden_states(bundle, position):
    got = collect_activations(bundle, TEXTS, position)
    assert got.shape == (3, bundle.anatomy.n_layers, bundle.anatomy.d_model)
    for i, text in enumerate(TEXTS):
        ids = torch.tensor([bundle.tokenizer(text)["input_ids"]])
        with torch.no_grad():
            hidden = bundle.model(input_ids=ids, output_hidden_states=True).hidden_states
        # hidden_states[l + 1] is the output of block l (the last one after the final norm,
        # which the recorder's block hook does not see): compare the blocks before it
        for layer in range(bundle.anatomy.n_layers - 1):
            h = hidden[layer + 1][0].numpy()
            want = h[-1] if position == "last" else h[1:].mean(0)
            np.testing.assert_allclose(got[i, layer], want, atol=1e-5)


def test_progress_and_cancel(bundle):
    seen = []
    ctx = TaskContext()
    hooks_before = sum(len(b._forward_hooks) for b in bundle.anatomy.blocks)
    collect_activations(bundle, TEXTS, progress=lambda f, t: seen.append((f, t)))
    assert [f for f, _ in seen] == pytest.approx([1 / 3, 2 / 3, 1.0])
    ctx.cancel()
    with pytest.raises(TaskCancelled):
        collect_activations(bundle, TEXTS, progress=ctx.progress)
    # our hooks are gone after the cancel (transformers' own, left by output_hidden_states
    # in the test above, stay: DESIGN.md)
    assert sum(len(b._forward_hooks) for b in bundle.anatomy.blocks) == hooks_before


def test_bad_position_and_empty_text_are_one_sentence(bundle):
    with pytest.raises(ConceptError, match="unknown position"):
        collect_activations(bundle, TEXTS, "first")
    with pytest.raises(ConceptError, match="prompt 2 cannot be run"):
        collect_activations(bundle, ["fine", "   "])


@pytest.mark.smollm2
def test_smollm2_sentiment_separates_early_and_transfers_to_french_mid_stack(smollm2):
    from neuroscope_tui.analysis.concepts import fit_concept
    from neuroscope_tui.concept_sets import read_sets

    en, fr = read_sets(["example:sentiment_en"]), read_sets(["example:sentiment_fr"])
    classes = en.classes
    fit = fit_concept(
        collect_activations(smollm2, en.texts),
        np.array(en.label_ids(classes)),
        transfer_x=collect_activations(smollm2, fr.texts),
        transfer_y=np.array(fr.label_ids(classes)),
    )
    acc, transfer = fit.cv_accuracy, fit.transfer_accuracy
    # measured (last token, 40 + 40 sentences): 0.54 at layer 0, 0.85 at layer 3, >= 0.93
    # from layer 13; transfer 0.50 at layer 0, 0.80 at layers 15-16, 0.60 at layer 29
    assert acc[0] < 0.65 and acc[3] >= 0.8 and acc[13:].min() >= 0.9
    peak = int(np.argmax(transfer))
    assert 11 <= peak <= 19
    assert transfer[peak] >= transfer[0] + 0.2 and transfer[peak] >= transfer[-1] + 0.1
    assert fit.transfer_auc[peak] > 0.75
