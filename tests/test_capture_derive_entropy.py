"""capture/derive_entropy.py: a long prompt's head entropy, left out by a run with
`entropy_later` and derived afterwards, equals the entropy computed during the run (and
eager `output_attentions`'), and no snapshot is saved without it."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import neuroscope_tui.capture.attention_tap as tap_module
from neuroscope_tui.capture.attention_scores import head_stats
from neuroscope_tui.capture.complete import complete_for_save, needs_completion
from neuroscope_tui.capture.derive import complete_trace
from neuroscope_tui.capture.derive_entropy import derive_entropy, missing_entropy
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.trace import HEAD_SCORES, CaptureSpec
from tiny_models import tiny_bundle

torch = pytest.importorskip("torch")

# 40 tokens or so: past the (lowered) threshold and the deferred route's 32 queries
PROMPT = "The cat sat on the mat and the cat looked at the dog. The cat sat on the mat again."
SPEC = CaptureSpec(sites=("resid",), head_scores=True, lens_positions=())
OPTIONS = GenerationOptions(max_new_tokens=3, stop_at_eos=False)


@pytest.fixture(autouse=True)
def short_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny prompts count as long, so the fused route leaves their entropy out."""
    monkeypatch.setattr(tap_module, "ENTROPY_LATER_TOKENS", 8)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_derived_entropy_equals_the_entropy_of_the_run(arch: str) -> None:
    bundle = tiny_bundle(arch)
    whole = run(bundle, PROMPT, SPEC, OPTIONS)
    later = run(bundle, PROMPT, SPEC, OPTIONS, entropy_later=True)
    n_prompt = later.n_prompt
    assert n_prompt > 32
    entropy = later.get("heads.entropy")
    assert np.isnan(entropy[:, :n_prompt]).all()  # the prompt's: left out
    assert not np.isnan(entropy[:, n_prompt:]).any()  # generated tokens': computed
    assert missing_entropy(later) and not missing_entropy(whole)
    for name in HEAD_SCORES:  # every other score is computed now, and the same
        if name != "entropy":
            np.testing.assert_array_equal(later.get(f"heads.{name}"), whole.get(f"heads.{name}"))
    assert derive_entropy(bundle, later) == len(later.layers()) * n_prompt
    assert not missing_entropy(later)
    np.testing.assert_allclose(later.get("heads.entropy"), whole.get("heads.entropy"), atol=1e-6)
    # and against eager output_attentions
    ref = copy.deepcopy(bundle.model)
    ref.set_attn_implementation("eager")
    with torch.no_grad():
        att = ref(input_ids=torch.tensor([later.token_ids]), output_attentions=True).attentions
    ids = torch.tensor(later.token_ids)
    for layer in range(2):
        want = head_stats(att[layer][0], torch.arange(len(ids)), ids)["entropy"].numpy()
        np.testing.assert_allclose(later.get("heads.entropy")[layer], want, atol=1e-5)


def test_short_prompts_and_runs_without_the_flag_keep_their_entropy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = tiny_bundle("llama")
    monkeypatch.setattr(tap_module, "ENTROPY_LATER_TOKENS", 512)
    trace = run(bundle, PROMPT, SPEC, OPTIONS, entropy_later=True)
    assert not missing_entropy(trace)
    assert derive_entropy(bundle, trace) == 0


def test_completion_and_saving_fill_the_entropy_in() -> None:
    bundle = tiny_bundle("llama")
    later = run(bundle, PROMPT, SPEC, OPTIONS, entropy_later=True)
    assert needs_completion(later)
    saved = complete_for_save(bundle, later)
    assert not missing_entropy(saved) and not needs_completion(saved)
    again = run(bundle, PROMPT, SPEC, OPTIONS, entropy_later=True)
    complete_trace(bundle, again)  # what the app runs when the worker is idle
    np.testing.assert_array_equal(again.get("heads.entropy"), saved.get("heads.entropy"))


def test_derived_entropy_of_an_intervened_run_is_the_intervened_models() -> None:
    """The later pass replays the run's interventions: an ablated MLP block early on changes
    every later layer's attention, and the derived entropy must be the intervened run's."""
    from neuroscope_tui.capture.interventions import Ablation

    bundle = tiny_bundle("llama")
    ablate = [Ablation(site="mlp", layer=0)]
    whole = run(bundle, PROMPT, SPEC, OPTIONS, interventions=ablate)
    later = run(bundle, PROMPT, SPEC, OPTIONS, entropy_later=True, interventions=ablate)
    clean = run(bundle, PROMPT, SPEC, OPTIONS)
    derive_entropy(bundle, later)
    np.testing.assert_allclose(later.get("heads.entropy"), whole.get("heads.entropy"), atol=1e-6)
    # and the ablation did change it (a tiny random model's attention is nearly uniform, so
    # by little, but by far more than the tolerance above): the comparison above can fail
    changed = np.abs(whole.get("heads.entropy")[1] - clean.get("heads.entropy")[1]).max()
    assert changed > 1e-5
