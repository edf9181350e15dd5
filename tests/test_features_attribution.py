"""Attribution against direct computation: completeness, occlusion by hand, a finite difference,
and (on the real SmolLM2) the word that makes " Paris" the answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscope_tui.capture import attribution as A
from neuroscope_tui.capture import attribution_runs as R
from neuroscope_tui.errors import UsageError
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace
from tiny_models import build_model, build_tokenizer

IDS = [5, 17, 33, 40, 60, 7, 90]
TARGET, FOIL = 12, 30


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def tiny(request: pytest.FixtureRequest) -> LoadedModel:
    model = build_model(request.param, seed=1)
    return LoadedModel(model, build_tokenizer(), "tiny", "", None, "cpu", "float32", None)


def f_direct(bundle: LoadedModel, embeds: torch.Tensor, foil: int | None = FOIL) -> float:
    """The target by a plain forward pass over all positions (no logits_to_keep)."""
    with torch.no_grad():
        logits = bundle.model(inputs_embeds=embeds[None]).logits[0, -1]
    return float(logits[TARGET] - (logits[foil] if foil is not None else 0))


def embeds_and_baseline(bundle: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """x [T, D] and the documented baseline: the mean embedding, first position kept."""
    weight = bundle.model.get_input_embeddings().weight.detach()
    x = weight[torch.tensor(IDS)]
    b = weight.mean(0).expand_as(x).clone()
    b[0] = x[0]
    return x, b


def test_integrated_gradients_completeness_within_5_percent(tiny: LoadedModel) -> None:
    got = A.integrated_gradients(tiny, IDS, TARGET, FOIL, steps=32)
    x, b = embeds_and_baseline(tiny)
    assert got.f_input == pytest.approx(f_direct(tiny, x), abs=1e-5)
    assert got.f_baseline == pytest.approx(f_direct(tiny, b), abs=1e-5)
    assert got.relative_gap < 0.05
    assert got.gap == pytest.approx(got.scores.sum() - (got.f_input - got.f_baseline))


def test_integrated_gradients_equals_a_fine_riemann_sum(tiny: LoadedModel) -> None:
    x, b = embeds_and_baseline(tiny)
    n = 256  # midpoint rule over alpha, computed here independently of the module
    alphas = ((torch.arange(n) + 0.5) / n)[:, None, None]
    points = (b + alphas * (x - b)).clone().requires_grad_(True)  # [n, T, D]
    logits = tiny.model(inputs_embeds=points).logits[:, -1]
    (grads,) = torch.autograd.grad((logits[:, TARGET] - logits[:, FOIL]).sum(), points)
    total = grads.mean(0)
    reference = (total * (x - b)).sum(-1).numpy()
    got = A.integrated_gradients(tiny, IDS, TARGET, FOIL, steps=32).scores
    np.testing.assert_allclose(got, reference, atol=2e-3 * np.abs(reference).max())


def test_occlusion_is_the_drop_in_f_with_one_token_replaced(tiny: LoadedModel) -> None:
    got = A.occlusion(tiny, IDS, TARGET, FOIL)
    x, _ = embeds_and_baseline(tiny)
    fx = f_direct(tiny, x)
    mean = tiny.model.get_input_embeddings().weight.detach().mean(0)
    for t in range(len(IDS)):
        occluded = x.clone()
        occluded[t] = mean
        assert got.scores[t] == pytest.approx(fx - f_direct(tiny, occluded), abs=1e-5)


def test_gradient_x_input_is_the_directional_derivative(tiny: LoadedModel) -> None:
    got = A.gradient_x_input(tiny, IDS, TARGET, None)
    x, b = embeds_and_baseline(tiny)
    eps = 1e-2
    plus = f_direct(tiny, x + eps * (x - b), None)
    minus = f_direct(tiny, x - eps * (x - b), None)
    assert got.scores.sum() == pytest.approx((plus - minus) / (2 * eps), rel=1e-2, abs=1e-4)


def test_shares_are_signed_and_sum_to_one_in_absolute_value(tiny: LoadedModel) -> None:
    shares = A.occlusion(tiny, IDS, TARGET, FOIL).shares()
    assert np.abs(shares).sum() == pytest.approx(1.0)


def test_attribute_last_token_fills_extras_and_notes(tiny: LoadedModel) -> None:
    tok = tiny.tokenizer
    cat = R.single_token_id(tiny, "cat")[0]
    ids = tok("The capital of France is", add_special_tokens=False)["input_ids"] + [cat]
    trace = Trace(ModelInfo(name="tiny", n_layers=2), CaptureSpec())
    trace.append(ids, [tok.decode([i]) for i in ids], {})
    trace.n_prompt = len(ids) - 1
    with pytest.raises(UsageError, match="target token itself"):
        R.attribute_last_token(tiny, trace, foil="cat")
    arrays = R.attribute_last_token(tiny, trace, foil="dog", steps=16)
    assert set(arrays) == {f"attribution.{m}" for m in A.METHODS}
    assert all(a.shape == (len(ids) - 1,) for a in arrays.values())
    assert trace.extras["attribution.occlusion"] is arrays["attribution.occlusion"]
    note = trace.notes["attribution"]
    assert note["target_id"] == cat and note["foil_id"] == R.single_token_id(tiny, "dog")[0]
    ig = note["methods"]["integrated_gradients"]
    assert ig["steps"] == 16 and ig["relative_gap"] == pytest.approx(
        abs(ig["sum"] - (ig["f_input"] - ig["f_baseline"])) / abs(ig["f_input"] - ig["f_baseline"])
    )


# ---- the real model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol(request: pytest.FixtureRequest) -> LoadedModel:
    try:
        return request.getfixturevalue("smollm2")
    except pytest.FixtureLookupError:
        pytest.importorskip("gguf")
        from neuroscope_tui.models.loader import load_model

        return load_model("smollm2", device="cpu", dtype="float32")


def top_token(smol: LoadedModel, prompt: str, target: str, foil: str | None) -> str:
    ids = smol.tokenizer(prompt)["input_ids"]
    target_id = R.single_token_id(smol, target)[0]
    foil_id = None if foil is None else R.single_token_id(smol, foil)[0]
    scores = A.occlusion(smol, ids, target_id, foil_id).scores
    return smol.tokenizer.decode([ids[int(np.argmax(scores))]])


@pytest.mark.smollm2
def test_occlusion_points_at_france_for_paris_against_london(smol: LoadedModel) -> None:
    assert top_token(smol, "The capital of France is", " Paris", " London") == " France"


@pytest.mark.smollm2
def test_occlusion_points_at_iffel_for_paris(smol: LoadedModel) -> None:
    prompt = "The Eiffel Tower is located in the city of"
    assert top_token(smol, prompt, " Paris", None) == "iffel"


def test_auto_steps_double_until_gap_and_scores_settle(tiny: LoadedModel) -> None:
    got = R.integrated_gradients_auto(tiny, IDS, TARGET, FOIL, start=2, max_steps=64)
    tried = {int(k): v for k, v in got.notes["tried"].items()}
    changes = {int(k): v for k, v in got.notes["changes"].items()}
    assert list(tried) == [2 * 2**i for i in range(len(tried))]
    assert list(changes) == list(tried)[1:]
    assert got.steps == max(tried) and got.relative_gap == tried[got.steps]
    assert got.score_change == changes[got.steps]
    # Every earlier count failed the gap or the change; the last met both or hit the budget.
    assert all(tried[s] > 0.05 or changes.get(s, 1.0) > 0.02 for s in tried if s < got.steps)
    assert got.converged == (got.relative_gap <= 0.05 and got.score_change <= 0.02)
    assert got.converged or got.steps == 64
    # The change, recomputed from a direct run at half the steps.
    half = A.integrated_gradients(tiny, IDS, TARGET, FOIL, got.steps // 2).scores
    total = max(np.abs(got.scores).sum(), np.abs(half).sum())
    assert got.score_change == pytest.approx(np.abs(got.scores - half).max() / total)
    numbers = got.summary()
    assert numbers["converged"] == got.converged and numbers["score_change"] == got.score_change


def test_occlusion_has_no_completeness_gap_anywhere(tiny: LoadedModel) -> None:
    got = A.occlusion(tiny, IDS, TARGET, FOIL)
    assert got.gap is None and got.relative_gap is None and not got.additive
    numbers = got.summary()
    assert "gap" not in numbers and "relative_gap" not in numbers and numbers["additive"] is False
    assert A.gradient_x_input(tiny, IDS, TARGET, FOIL).summary()["additive"] is True


def test_a_target_text_replaces_the_models_own_token(tiny: LoadedModel) -> None:
    dog = R.single_token_id(tiny, "dog", "target")[0]
    found = R.attribute_position(tiny, IDS, len(IDS), target="dog", methods=("occlusion",))
    assert found.target_id == dog and found.notes()["target_given"] == "dog"
    direct = A.occlusion(tiny, IDS, dog, None).scores
    np.testing.assert_allclose(found.results["occlusion"].scores, direct)
    with pytest.raises(UsageError, match="the target '€' is not a token this model knows"):
        R.attribute_position(tiny, IDS, len(IDS), target="€")
    with pytest.raises(UsageError, match="the target '' is no token"):
        R.single_token_id(tiny, "", "target")


def test_attribute_position_past_the_end_uses_the_models_prediction(tiny: LoadedModel) -> None:
    found = R.attribute_position(tiny, IDS, len(IDS), steps=8, methods=("occlusion",))
    with torch.no_grad():
        predicted = int(tiny.model(torch.tensor([IDS])).logits[0, -1].argmax())
    assert found.target_id == predicted and found.position == len(IDS)
    assert found.results["occlusion"].scores.shape == (len(IDS),)
    with pytest.raises(UsageError, match="between 1 and"):
        R.attribute_position(tiny, IDS, 0)


@pytest.mark.smollm2
def test_integrated_gradients_converges_where_a_small_gap_hid_it(smol: LoadedModel) -> None:
    # "The opposite of hot is" -> " cold": at 16 steps the gap is 3% (under the old 5% rule)
    # while " is" scores 1.83 against 0.98 converged.
    ids = smol.tokenizer("The opposite of hot is")["input_ids"]
    cold = R.single_token_id(smol, " cold", "target")[0]
    got = R.integrated_gradients_auto(smol, ids, cold)
    reference = A.integrated_gradients(smol, ids, cold, None, steps=512).scores
    total = np.abs(reference).sum()
    assert got.converged and got.steps >= 32 and got.score_change <= 0.02
    # Stated tolerance: every token within 0.5% of the total |attribution| of the reference.
    assert np.abs(got.scores - reference).max() <= 0.005 * total
    assert got.scores[-1] == pytest.approx(reference[-1], abs=0.005 * total)
    assert got.scores[-1] < 1.2  # " is" is no longer ~1.8
    early = A.integrated_gradients(smol, ids, cold, None, steps=16)
    assert early.relative_gap < 0.05 and np.abs(early.scores - reference).max() > 0.02 * total
