"""Head scores from the attention tap vs the same scores from eager `output_attentions`.

The reference side never touches the tap: a separate eager copy of the model gives the
attention probabilities, and `analysis.heads` (numpy) turns them into scores.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from neuroscope_tui.analysis.heads import (
    SCORE_NAMES,
    head_scores,
    query_scores_from_pattern,
    scores_from_pattern,
)
from neuroscope_tui.capture.probes import induction_probe, model_probe_ids, probe_ids, trace_ids
from neuroscope_tui.errors import UsageError
from neuroscope_tui.models.types import LoadedModel
from tiny_models import VOCAB, tiny_bundle


def bundle_for(arch: str, seed: int = 0) -> LoadedModel:
    return tiny_bundle(arch, seed=seed)


def eager_attentions(bundle: LoadedModel, ids: list[int]) -> list[np.ndarray]:
    """[layer] -> [H, T, T] from an eager copy of the model (output_attentions)."""
    ref = copy.deepcopy(bundle.model)
    ref.set_attn_implementation("eager")
    with torch.no_grad():
        out = ref(input_ids=torch.tensor([ids]), output_attentions=True)
    return [a[0].double().numpy() for a in out.attentions]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_tap_scores_match_eager_output_attentions(arch):
    bundle = bundle_for(arch)
    ids = model_probe_ids(bundle, length=20, seed=1)
    n_layers, n_heads = bundle.anatomy.n_layers, bundle.anatomy.n_heads
    heads = tuple((layer, h) for layer in range(n_layers) for h in range(n_heads))
    trace = trace_ids(bundle, ids, heads)
    eager = eager_attentions(bundle, ids)

    assert trace.get("heads.prev").shape == (n_layers, len(ids), n_heads)
    summary = head_scores(trace)
    for layer in range(n_layers):
        for h in range(n_heads):
            reference = eager[layer][h]
            np.testing.assert_allclose(trace.get(f"pattern.{layer}.{h}"), reference, atol=1e-5)
            per_query = query_scores_from_pattern(reference, ids)
            for name in SCORE_NAMES:
                np.testing.assert_allclose(
                    trace.get(f"heads.{name}")[layer, :, h], per_query[name], atol=1e-5
                )
            expected = scores_from_pattern(reference, ids)
            for name in SCORE_NAMES:
                assert summary.score(name, layer, h) == pytest.approx(expected[name], abs=1e-5)


def test_random_tiny_model_has_no_strong_induction_heads():
    bundle = bundle_for("llama", seed=3)
    trace = induction_probe(bundle, length=30, seed=0)
    scores = head_scores(trace)
    assert scores.values["induction"].shape == (2, 4)
    # near-uniform attention over ~45 visible keys puts ~1/45 on the induction target
    assert np.nanmax(scores.values["induction"]) < 0.15
    assert not any("induction" in types for types in scores.types.values())
    assert not any("previous-token" in types for types in scores.types.values())


def test_probe_summary_is_the_probes_rows_as_json():
    import json

    from neuroscope_tui.capture.probes import probe_summary

    bundle = bundle_for("llama", seed=3)
    summary = probe_summary(bundle, 20, seed=2)
    assert summary["model"] == "tiny-llama" and summary["length"] == 20
    assert summary["heads"] == head_scores(induction_probe(bundle, 20, seed=2)).rows()
    assert json.loads(json.dumps(summary)) == summary  # fits a snapshot's JSON notes


def test_probe_ids_repeat_distinct_tokens():
    ids = probe_ids(VOCAB, 25, seed=4, bos=2, exclude=[0, 1, 2, 3])
    assert ids[0] == 2 and len(ids) == 51
    first, second = ids[1:26], ids[26:]
    assert first == second
    assert len(set(first)) == 25
    assert not set(first) & {0, 1, 2, 3}
    assert probe_ids(VOCAB, 25, seed=4, bos=2) == probe_ids(VOCAB, 25, seed=4, bos=2)
    assert probe_ids(VOCAB, 25, seed=5) != probe_ids(VOCAB, 25, seed=4)


def test_probe_longer_than_the_vocabulary_is_a_usage_error():
    with pytest.raises(UsageError, match="smaller --probe-length"):
        probe_ids(10, 20)
    with pytest.raises(UsageError):
        probe_ids(10, 1)
