"""capture/run.py: a run stays whole when the same model works between its steps, runs
with the KV-cache argument the installed transformers asks for (no FutureWarning), and
computes the lens of generated tokens a few at a time without changing a figure."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from tiny_models import tiny_bundle

torch = pytest.importorskip("torch")

from neuroscope_tui.capture import run as run_module  # noqa: E402
from neuroscope_tui.capture.derive import LENS_ARRAYS, missing_positions  # noqa: E402
from neuroscope_tui.capture.patterns import compute_patterns  # noqa: E402
from neuroscope_tui.capture.run import (  # noqa: E402
    GenerationOptions,
    cache_keyword,
    run,
)
from neuroscope_tui.trace import CaptureSpec  # noqa: E402

PROMPT = "The cat sat on the mat and"


@pytest.fixture(scope="module")
def bundle():
    return tiny_bundle("llama")


def test_a_pattern_computed_between_steps_leaves_the_run_as_it_was(bundle):
    """Issue 9 item 1: the heads view's pattern pass between two steps used to switch the run's
    attention tap off (its head scores stopped growing) and fed the run's hooks its rows."""
    options = GenerationOptions(max_new_tokens=6, stop_at_eos=False)
    spec = CaptureSpec(pattern_heads=((1, 2),))
    plain = run(bundle, PROMPT, spec, options)
    asked = []

    def between(trace, start, stop):
        asked.append(compute_patterns(bundle, list(trace.token_ids), [(0, 1), (1, -1)]))

    busy = run(bundle, PROMPT, spec, options, on_step=between)
    assert len(asked) == 7 and busy.token_ids == plain.token_ids
    assert sorted(busy.arrays) == sorted(plain.arrays)
    for name, arr in plain.arrays.items():
        np.testing.assert_allclose(busy.arrays[name], arr, rtol=1e-5, atol=1e-6, err_msg=name)
    # and the tap is off again afterwards: the model's own attention, no tap left behind
    assert bundle.model.config._attn_implementation == "sdpa"
    assert not any(hasattr(m, "_neuroscope_tap") for m in bundle.anatomy.attention)


def test_a_capture_raises_no_future_warning(bundle):
    """Issue 9 item 22: transformers 5 deprecates `past_key_values` for `cache`."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trace = run(bundle, PROMPT, CaptureSpec(), GenerationOptions(max_new_tokens=3))
    assert trace.n_generated == 3


def test_the_cache_keyword_follows_the_forward_signature(bundle):
    import inspect

    params = inspect.signature(bundle.model.forward).parameters
    assert cache_keyword(bundle.model) == ("cache" if "cache" in params else "past_key_values")

    class OldModel(torch.nn.Module):
        def forward(self, input_ids=None, past_key_values=None, use_cache=None):
            return None

    assert cache_keyword(OldModel()) == "past_key_values"


def test_the_lens_of_tokens_taken_four_at_a_time_equals_one_at_a_time(bundle, monkeypatch):
    """A generated token's lens waits for three more, to share one product with the
    unembedding; every figure equals the lens computed at its own step, and each token's
    lens is in the trace at most three steps after the token."""
    options = GenerationOptions(max_new_tokens=10, stop_at_eos=False)
    late: list[int] = []

    def between(trace, start, stop):
        missing = missing_positions(trace)
        late.append(trace.n_tokens - min(missing) if missing else 0)

    batched = run(bundle, PROMPT, CaptureSpec(), options, on_step=between)
    monkeypatch.setattr(run_module, "LENS_POSITIONS_PER_PRODUCT", 1)
    single = run(bundle, PROMPT, CaptureSpec(), options)
    assert batched.token_ids == single.token_ids
    assert missing_positions(batched) == []
    for name in LENS_ARRAYS:
        np.testing.assert_allclose(batched.get(name), single.get(name), rtol=1e-5, atol=2e-6)
    assert late[0] == 0  # the prompt's lens at once
    assert max(late) == 3 and late[4] == 0  # the fourth generated token brings its three


def test_a_cancelled_run_still_has_the_lens_of_every_token(bundle):
    cancel = threading.Event()

    def between(trace, start, stop):
        if trace.n_generated == 2:
            cancel.set()

    options = GenerationOptions(max_new_tokens=10, stop_at_eos=False)
    trace = run(bundle, PROMPT, CaptureSpec(), options, on_step=between, cancel=cancel)
    assert trace.stop_reason == "cancelled" and trace.n_generated == 2
    assert missing_positions(trace) == []


def test_an_interrupted_run_still_has_the_lens_of_every_token(bundle):
    """Ctrl+C in `capture` saves the run so far: the tokens whose lens was waiting for
    company get it before the trace leaves."""

    def between(trace, start, stop):
        if trace.n_generated == 2:
            raise KeyboardInterrupt

    options = GenerationOptions(max_new_tokens=10, stop_at_eos=False)
    with pytest.raises(KeyboardInterrupt) as caught:
        run(bundle, PROMPT, CaptureSpec(), options, on_step=between)
    trace = caught.value.trace
    assert trace.n_generated == 2 and missing_positions(trace) == []
