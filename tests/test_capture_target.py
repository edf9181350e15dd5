"""`capture --attribution --target TEXT`: explain any continuation of the prompt from the
command line, through the real CLI in a fresh process (issue 9, item 26)."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_e2e import error_sentence, run_cli
from neuroscope_tui.snapshot import load_snapshot
from tiny_models import build_tiny, build_tokenizer

PROMPT = "The cat sat on the mat"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny("llama", tmp_path_factory.mktemp("m") / "llama")


def capture(model, out, prompt: str, *extra: str):
    argv = ["capture", model, "--prompt", prompt, "-o", out, "--device", "cpu"]
    return run_cli(*argv, "--attribution", *extra, timeout=600)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--attribution", "--target", ""], "--target is empty"),
        (["--target", "dog"], "--target only means something with --attribution"),
    ],
)
def test_target_mistakes_are_caught_before_loading(tmp_path, extra, words):
    fake = tmp_path / "model"
    fake.mkdir()
    (fake / "config.json").write_text("{}")  # never loaded: the mistake shows first
    proc = run_cli("capture", fake, "--prompt", "hi", "-o", tmp_path / "x.nscope", *extra)
    assert proc.returncode == 2 and words in error_sentence(proc.stderr)


def test_an_untokenizable_target_stops_before_the_run(tiny, tmp_path):
    out = tmp_path / "x.nscope"
    proc = capture(tiny, out, PROMPT, "--target", "€")
    assert proc.returncode == 2, proc.stderr
    assert "the target '€' is not a token this model knows" in error_sentence(proc.stderr)
    assert "attributing" not in proc.stderr and not out.exists()
    same = capture(tiny, out, PROMPT, "--target", "dog", "--foil", "dog")
    assert same.returncode == 2 and "are the same token" in error_sentence(same.stderr)


def test_target_explains_that_continuation_of_the_prompt(tiny, tmp_path):
    own, other = tmp_path / "own.nscope", tmp_path / "dog.nscope"
    assert capture(tiny, own, PROMPT, "--max-new-tokens", "0").returncode == 0
    proc = capture(tiny, other, PROMPT, "--max-new-tokens", "3", "--target", "dog")
    assert proc.returncode == 0, proc.stderr
    assert "attributing 'dog' as the continuation of the prompt" in proc.stderr
    a, b = load_snapshot(own), load_snapshot(other)
    dog = build_tokenizer()("dog", add_special_tokens=False)["input_ids"][0]
    note = b.notes["attribution"]
    # Whatever was generated, the inputs are the prompt and the target is the given text.
    assert note["position"] == b.n_prompt == a.n_prompt and note["target_id"] == dog
    assert note["target_given"] == "dog" and a.notes["attribution"]["target_id"] != dog
    assert "relative_gap" not in note["methods"]["occlusion"]  # occlusion: no gap stored
    assert b.extras["attribution.occlusion"].shape == (b.n_prompt,)
    assert not np.allclose(a.extras["attribution.occlusion"], b.extras["attribution.occlusion"])


@pytest.mark.smollm2
def test_berlin_is_explained_differently_from_paris_on_smollm2(smollm2, tmp_path):
    prompt = "The capital of France is"
    paris, berlin = tmp_path / "paris.nscope", tmp_path / "berlin.nscope"
    assert capture("smollm2", paris, prompt, "--max-new-tokens", "1").returncode == 0
    proc = capture("smollm2", berlin, prompt, "--max-new-tokens", "1", "--target", " Berlin")
    assert proc.returncode == 0, proc.stderr
    a, b = load_snapshot(paris), load_snapshot(berlin)
    assert a.notes["attribution"]["target_text"] == " Paris"  # the model's own answer
    assert b.notes["attribution"]["target_text"] == " Berlin"
    assert a.notes["attribution"]["position"] == b.notes["attribution"]["position"] == 5
    for method in ("occlusion", "integrated_gradients"):
        x, y = a.extras[f"attribution.{method}"], b.extras[f"attribution.{method}"]
        assert np.abs(x - y).max() > 0.1 * np.abs(x).sum(), method
    assert b.notes["attribution"]["methods"]["integrated_gradients"]["converged"] is True
