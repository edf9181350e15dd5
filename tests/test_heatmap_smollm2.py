"""On the real SmolLM2-135M: the first-token outlier that outlier clipping is for."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.analysis.metrics import metric_values, normalise

pytestmark = pytest.mark.smollm2

PROMPT = "The capital of France is Paris. The Eiffel Tower is in the city of"


@pytest.fixture(scope="module")
def resid_norm(smollm2) -> np.ndarray:
    """Residual norms [layer, token] of the prompt (no generation, no lens, no head scores)."""
    from neuroscope_tui.capture.run import GenerationOptions, run
    from neuroscope_tui.trace import CaptureSpec

    spec = CaptureSpec(sites=("resid",), head_scores=False, lens_positions=())
    trace = run(smollm2, PROMPT, spec, GenerationOptions(max_new_tokens=0))
    return metric_values(trace, "resid.norm")


def test_first_token_dominates_middle_layers(resid_norm):
    ratio = resid_norm[:, 0] / np.median(resid_norm[:, 1:], axis=1)
    assert (ratio[11:28] > 20).all(), np.round(ratio, 1)


def test_clipping_gives_the_other_tokens_the_colour_scale(resid_norm):
    plain = normalise(resid_norm, "per layer")
    clipped = normalise(resid_norm, "per layer", clip_outliers=True)
    middle = slice(11, 28)
    # min-max: the other tokens crowd into the bottom few percent of the scale
    assert np.median(plain[middle, 1:]) < 0.05
    # clipped: they spread over the scale, and the sink takes the top colour
    assert np.median(clipped[middle, 1:]) > 0.2
    assert (clipped[middle, 0] == 1.0).all()
