"""trace.py: every array of a growing Trace covers every token."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace


def test_append_refuses_a_step_that_leaves_an_array_behind():
    trace = Trace(ModelInfo(name="x", n_layers=2), CaptureSpec())
    trace.append([1, 2], ["a", "b"], {"heads.entropy": np.zeros((2, 2, 3), "f4")})
    with pytest.raises(ValueError, match=r"heads\.entropy"):
        trace.append([3], ["c"], {"resid.norm": np.zeros((2, 1), "f4")})
    assert trace.n_tokens == 2 and sorted(trace.arrays) == ["heads.entropy"]  # unchanged
    trace.append([3], ["c"], {"heads.entropy": np.ones((2, 1, 3), "f4")})
    assert trace.get("heads.entropy").shape == (2, 3, 3)
