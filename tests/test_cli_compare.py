"""`neuroscope-tui compare` without a terminal: the real command with stdout piped prints the
per-layer figures as a text table instead of opening the full-screen view (which would hang)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from neuroscope_tui.snapshot import save_snapshot
from neuroscope_tui.trace import ModelInfo, Trace

RNG = np.random.default_rng(5)


def run_of(n_tokens: int, prompt: str, n_layers: int = 3, d: int = 6) -> Trace:
    trace = Trace(model=ModelInfo(name="toy", n_layers=n_layers, d_model=d), prompt=prompt)
    trace.spec.full_layers = None
    full = RNG.normal(size=(n_layers, n_tokens, d)) + 2.0
    trace.append(
        list(range(n_tokens)),
        ["x"] * n_tokens,
        {
            "resid.full": full.astype(np.float32),
            "resid.norm": np.linalg.norm(full, axis=-1).astype(np.float32),
        },
    )
    return trace


def cos(x: np.ndarray, y: np.ndarray) -> float:
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def test_piped_compare_prints_the_figures_as_a_table(tmp_path):
    a, b = run_of(6, "The cat sat"), run_of(4, "A dog\x1b[2J ran")
    fa, fb = save_snapshot(a, tmp_path / "a.nscope"), save_snapshot(b, tmp_path / "b.nscope")
    got = subprocess.run(
        [sys.executable, "-m", "neuroscope_tui", "compare", str(fa), str(fb)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert "'The cat sat' (6 tokens)" in got.stdout and "\x1b" not in got.stdout
    header = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["layer"])
    assert lines[header].split() == ["layer", "cos_mean", "cos_centred", "cos_last", "cka_tokens"]
    rows = [ln.split() for ln in lines[header + 1 :]]
    assert [r[0] for r in rows] == ["0", "1", "2"]
    # the figures, against direct formulas (the first token is left out by default)
    ma = a.get("resid.full").astype(float)[:, 1:].mean(1)
    mb = b.get("resid.full").astype(float)[:, 1:].mean(1)
    for layer, row in enumerate(rows):
        assert float(row[1]) == pytest.approx(cos(ma[layer], mb[layer]), abs=1e-4)
        last = cos(a.get("resid.full")[layer, -1], b.get("resid.full")[layer, -1])
        assert float(row[3]) == pytest.approx(last, abs=1e-4)
        assert row[4] == "-"  # different lengths: no token-paired CKA


def test_piped_compare_with_one_prompt_is_still_one_sentence():
    got = subprocess.run(
        [sys.executable, "-m", "neuroscope_tui", "compare", "m", "--prompt", "only one"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert got.returncode == 2 and "exactly two prompts" in got.stderr
    assert "Traceback" not in got.stderr
