"""`capture --steer CONCEPT.safetensors@L:ALPHA`: a fitted concept file steers along its
layer-L difference-of-means direction (unit length), checked against adding alpha * direction
by hand after block L; a layer the concept lacks or another model's width is one sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neuroscope_tui.analysis.concepts import fit_concept
from neuroscope_tui.capture.interventions import Steering, intervention_from_dict
from neuroscope_tui.cli import main
from neuroscope_tui.concept_file import concept_from_fit, save_concept
from neuroscope_tui.snapshot import load_snapshot
from tiny_models import build_tiny

PROMPT = "The cat sat on the mat and the cat looked at the dog"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("llama", tmp_path_factory.mktemp("m") / "llama")


def concept_file(folder: Path, n_layers: int, d_model: int, name: str = "toy") -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, n_layers, d_model)).astype(np.float32)
    y = np.arange(12) % 2
    x[y == 0] += 3 * rng.normal(size=(n_layers, d_model)).astype(np.float32)
    model = {"name": "tiny", "n_layers": n_layers, "d_model": d_model}
    fit = fit_concept(x, y, folds=3)
    concept = concept_from_fit(
        fit, name=name, labels=("a", "b"), position="last", model=model, sets=[]
    )
    return save_concept(concept, folder / f"{name}.safetensors")


def fails(capsys, argv: list[str], message: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("neuroscope-tui: ") and message in last, last


def test_a_concept_file_steers_along_its_unit_direction(tiny, tmp_path):
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM

    path = concept_file(tmp_path, 2, 32)
    direction = load_file(str(path))["direction"][0].astype(np.float64)
    unit = direction / np.linalg.norm(direction)
    out, alpha = tmp_path / "run.nscope", 6.0
    argv = ["capture", str(tiny), "--prompt", PROMPT, "--max-new-tokens", "3", "-o", str(out)]
    assert main([*argv, "--steer", f"{path}@0:{alpha}"]) == 0
    trace = load_snapshot(out)
    (steer,) = [intervention_from_dict(d) for d in trace.interventions]
    assert isinstance(steer, Steering) and steer.label == "concept toy"
    assert steer.layer == 0 and steer.alpha == alpha
    np.testing.assert_allclose(steer.direction, unit, atol=1e-6)

    model = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32).eval()
    add = torch.tensor(alpha * unit, dtype=torch.float32)

    def steer_by_hand(module, args, output):
        x = output if isinstance(output, torch.Tensor) else output[0]
        return x + add if isinstance(output, torch.Tensor) else (x + add, *output[1:])

    seen: dict[str, torch.Tensor] = {}

    def keep(module, args, output):  # HF's last hidden state is after the final norm
        seen["out"] = output if isinstance(output, torch.Tensor) else output[0]

    handles = [
        model.model.layers[0].register_forward_hook(steer_by_hand),
        model.model.layers[1].register_forward_hook(keep),
    ]
    try:
        with torch.no_grad():
            hand = model(torch.tensor([trace.token_ids]))
    finally:
        for handle in handles:
            handle.remove()
    # greedy decoding: the steered model by hand picks the run's generated tokens
    n = trace.n_prompt
    picked = hand.logits[0, n - 1 : len(trace.token_ids) - 1].argmax(-1).tolist()
    assert picked == trace.token_ids[n:]
    # the stream out of block 1 (after the steered block 0) is the hand-steered one
    norm = trace.arrays["resid.norm"][1]
    want = seen["out"][0].norm(dim=-1).numpy()[: norm.shape[0]]
    np.testing.assert_allclose(norm, want, rtol=1e-3, atol=1e-3)
    plain = tmp_path / "plain.nscope"
    assert main([*argv[:-1], str(plain)]) == 0
    assert not np.allclose(load_snapshot(plain).arrays["resid.norm"][1], norm, atol=1e-3)


def test_a_concept_refuses_a_layer_it_lacks_and_another_width(tiny, tmp_path, capsys):
    argv = ["capture", str(tiny), "--prompt", PROMPT, "--max-new-tokens", "1"]
    argv += ["-o", str(tmp_path / "run.nscope")]
    fitting = concept_file(tmp_path, 2, 32)
    fails(capsys, [*argv, "--steer", f"{fitting}@2:1"], "has layers 0-1, not layer 2")
    wide = concept_file(tmp_path, 2, 48, name="wide")
    fails(capsys, [*argv, "--steer", f"{wide}@1:1"], "has 48 numbers but the model's residual")
    assert not (tmp_path / "run.nscope").exists()
