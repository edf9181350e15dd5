"""capture/derive.py: the lens derived after the run equals the lens computed at every step.

Tiny random models of every claimed architecture (GQA included) run the same prompt twice:
the eager way (`run()` computing the lens at each step) and the fast way (`lens_later`, the
lens left for later, then filled on demand for some cells and by `complete_trace` for the
rest). Every array, and a snapshot saved from each, must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.capture.derive import (
    LENS_ARRAYS,
    complete_trace,
    derive_lens,
    missing_lens,
    missing_positions,
)
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.snapshot import load_snapshot, save_snapshot
from neuroscope_tui.trace import CaptureSpec
from tiny_models import ARCHS, tiny_bundle

torch = pytest.importorskip("torch")

PROMPT = "the cat sat on the mat and the cat"
OPTIONS = GenerationOptions(max_new_tokens=5, stop_at_eos=False)
FULL = CaptureSpec(full_layers=None)


def assert_same_arrays(a, b) -> None:
    assert sorted(a.arrays) == sorted(b.arrays)
    for name in a.arrays:
        x, y = np.asarray(a.arrays[name]), np.asarray(b.arrays[name])
        assert x.shape == y.shape, name
        if x.dtype.kind in "iu":
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module", params=ARCHS)
def bundle(request):
    return tiny_bundle(request.param)


def test_the_fast_run_leaves_the_lens_for_later_and_the_rest_unchanged(bundle):
    eager = run(bundle, PROMPT, FULL, OPTIONS)
    fast = run(bundle, PROMPT, FULL, OPTIONS, lens_later=True)
    assert missing_lens(fast).all()
    assert not missing_lens(eager).any()
    for name in eager.arrays:
        if name not in LENS_ARRAYS:
            np.testing.assert_allclose(fast.arrays[name], eager.arrays[name], err_msg=name)
    assert fast.token_ids == eager.token_ids


def test_derived_lens_equals_the_eager_lens_and_so_do_the_snapshots(bundle, tmp_path):
    eager = run(bundle, PROMPT, FULL, OPTIONS)
    fast = run(bundle, PROMPT, FULL, OPTIONS, lens_later=True)
    # on demand first: one cell (the detail panel), then a few columns (the lens view)
    assert derive_lens(bundle, fast, [3], rows=[1]) == 1
    assert missing_lens(fast).sum() == missing_lens(fast).size - 1
    np.testing.assert_array_equal(fast.get("lens.top_ids")[1, 3], eager.get("lens.top_ids")[1, 3])
    derive_lens(bundle, fast, [0, fast.n_tokens - 1])
    complete_trace(bundle, fast)
    assert missing_positions(fast) == []
    assert_same_arrays(fast, eager)
    assert np.allclose(fast.get("lens.kl")[-1], 0.0, atol=1e-5)  # the last layer is the model
    for key, text in eager.notes["id_text"].items():
        assert fast.notes["id_text"][key] == text
    save_snapshot(eager, tmp_path / "eager.nsnap")
    save_snapshot(fast, tmp_path / "fast.nsnap")
    saved_fast = load_snapshot(tmp_path / "fast.nsnap")
    assert_same_arrays(saved_fast, load_snapshot(tmp_path / "eager.nsnap"))


def test_without_the_stream_kept_completion_runs_the_model_again(bundle):
    """A run that does not keep full rows computes its lens at each step (lens_later is only a
    wish); a trace missing the lens without the rows is completed by a forward pass."""
    spec = CaptureSpec(full_layers=(), lens_positions=(0, 2, 5, 9))
    eager = run(bundle, PROMPT, spec, OPTIONS)
    later = run(bundle, PROMPT, spec, OPTIONS, lens_later=True)
    assert not missing_lens(later).any()
    assert_same_arrays(later, eager)
    for name in LENS_ARRAYS:  # forget the lens, as if the run had left it
        arr = later.arrays[name]
        arr[...] = -1 if arr.dtype.kind == "i" else np.nan
    assert missing_positions(later) == [0, 2, 5, 9]
    complete_trace(bundle, later)
    assert_same_arrays(later, eager)


def test_a_trace_captured_without_the_lens_misses_nothing(bundle):
    trace = run(bundle, PROMPT, CaptureSpec(lens_positions=()), OPTIONS, lens_later=True)
    assert not trace.has("lens.top_ids")
    assert missing_positions(trace) == []
    assert complete_trace(bundle, trace) is trace
