"""`patch` and `capture --ablate/--steer` end to end on a tiny saved model: what they write,
what `info` and `export` read back, and every bad input as one sentence, exit 2, no file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuroscope_tui.analysis.patching import PatchSweep
from neuroscope_tui.capture.interventions import Ablation, Steering, intervention_from_dict
from neuroscope_tui.cli import main
from neuroscope_tui.snapshot import load_snapshot
from tiny_models import build_tiny

CLEAN = "The cat sat on the mat and the cat looked at the dog"
CORRUPT = "The dog sat on the mat and the cat looked at the cat"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("llama", tmp_path_factory.mktemp("m") / "llama")


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from safetensors.numpy import save_file

    folder = tmp_path_factory.mktemp("v")
    rng = np.random.default_rng(0)
    save_file({"v": rng.standard_normal(32).astype(np.float32)}, str(folder / "one.st"))
    save_file(
        {
            "wide": rng.standard_normal(32).astype(np.float32),
            "narrow": rng.standard_normal(16).astype(np.float32),
            "square": rng.standard_normal((32, 32)).astype(np.float32),
        },
        str(folder / "three.st"),
    )
    (folder / "junk.st").write_bytes(b"not safetensors at all")
    return folder


def fails(capsys, argv: list[str], message: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("neuroscope-tui: ") and message in last, last


def test_patch_writes_a_sweep_that_info_and_export_read(tiny, tmp_path, capsys):
    out = tmp_path / "sweep.nscope"
    argv = ["patch", str(tiny), "--clean", CLEAN, "--corrupt", CORRUPT, "-o", str(out)]
    assert main([*argv, "--target", " dog", "--foil", " cat", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    sweep = PatchSweep.from_trace(load_snapshot(out))
    assert printed["rows"] == sweep.rows == ["L0", "L1"]
    assert printed["target"] == sweep.target
    np.testing.assert_allclose(np.array(printed["recovered"], float), sweep.recovered, atol=1e-5)
    assert main(["info", str(out)]) == 0
    assert "resid sweep of 2 rows" in capsys.readouterr().out
    assert main(["export", str(out), "patching"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "row,layer,head,position,token,recovered,logit_diff"
    assert len(lines) == 1 + sweep.recovered.size


def test_patch_prints_a_grid_of_heads(tiny, capsys):
    assert (
        main(["patch", str(tiny), "--clean", CLEAN, "--corrupt", CORRUPT, "--site", "heads"]) == 0
    )
    out = capsys.readouterr().out
    assert "heads patching" in out and "L1.H3" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--clean", CLEAN], "needs a corrupted prompt"),
        (["--corrupt", CORRUPT], "needs a clean prompt"),
        (["--clean", CLEAN, "--corrupt", "The dog"], "same token length"),
        (
            ["--clean", CLEAN, "--corrupt", CORRUPT, "--target", " cat", "--foil", " cat"],
            "same token, so there is no difference to recover; name both with --target and --foil",
        ),
        (["--clean", CLEAN, "--corrupt", CORRUPT, "--foil", ""], "--foil is empty"),
    ],
)
def test_patch_refuses_bad_input_and_writes_nothing(tiny, tmp_path, capsys, extra, message):
    out = tmp_path / "sweep.nscope"
    fails(capsys, ["patch", str(tiny), *extra, "-o", str(out)], message)
    assert not out.exists()


def test_capture_records_interventions_and_the_side_by_side(tiny, vectors, tmp_path, capsys):
    out = tmp_path / "run.nscope"
    argv = ["capture", str(tiny), "--prompt", CLEAN, "--max-new-tokens", "3", "-o", str(out)]
    argv += ["--ablate", "1.2,0.3", "--ablate-mode", "mean", "--ablate-neuron", "1:5"]
    argv += ["--ablate-block", "attn:0", "--steer", f"{vectors / 'three.st'}:wide@1:2.5"]
    assert main([*argv, "--side-by-side"]) == 0
    trace = load_snapshot(out)
    ivs = [intervention_from_dict(d) for d in trace.interventions]
    assert ivs[:4] == [
        Ablation("head", 1, 2, mode="mean"),
        Ablation("head", 0, 3, mode="mean"),
        Ablation("neuron", 1, 5, mode="mean"),
        Ablation("attn", 0, mode="mean"),
    ]
    assert isinstance(ivs[4], Steering) and ivs[4].label == "three.st:wide"
    assert ivs[4].alpha == 2.5 and len(ivs[4].direction) == 32
    assert trace.extras["interventions.logit_diff"].shape == (
        len(trace.notes["clean_run"]["token_ids"]),
    )
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "intervened ablate L1.H2 (mean)" in capsys.readouterr().out
    assert main(["export", str(out), "interventions"]) == 0
    assert capsys.readouterr().out.startswith("position,clean_token,intervened_token")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--ablate", "1.4"], "head 4 is out of range"),
        (["--ablate", "2.0"], "layer 2 is out of range"),
        (["--ablate", "1-2"], "needs the form 18.6"),
        (["--ablate-neuron", "0:64"], "neuron 64 is out of range"),
        (["--ablate-block", "ffn:1"], "attn:5 or mlp:5"),
        (["--steer", "{v}/three.st:narrow@0:1"], "has 16 numbers but the model's residual"),
        (["--steer", "{v}/three.st@0:1"], "holds 3 tensors"),
        (["--steer", "{v}/three.st:square@0:1"], "must be one [d_model] vector"),
        (["--steer", "{v}/junk.st@0:1"], "not a readable safetensors file"),
        (["--steer", "{v}/none.st@0:1"], "no steering vector file"),
        (["--steer", "{v}/one.st@0:lots"], "not a number"),
        (["--steer", "{v}/one.st@9:1"], "layer 9 is out of range"),
        (["--ablate", "0.1", "--ablate-mode", "resample"], "needs --resample-prompt"),
        (
            ["--ablate", "0.1", "--ablate-mode", "resample", "--resample-prompt", "The dog"],
            "same token length",
        ),
        (["--side-by-side"], "add --ablate or --steer"),
    ],
)
def test_capture_refuses_bad_interventions_and_writes_nothing(
    tiny, vectors, tmp_path, capsys, extra, message
):
    out = tmp_path / "run.nscope"
    extra = [e.replace("{v}", str(vectors)) for e in extra]
    fails(capsys, ["capture", str(tiny), "--prompt", CLEAN, "-o", str(out), *extra], message)
    assert not out.exists()


def test_steer_diff_is_the_difference_of_last_token_means(tiny, tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("The cat sat\n\nthe dog ran\n")
    b.write_text("One two three\n")
    out = tmp_path / "run.nscope"
    argv = ["capture", str(tiny), "--prompt", CLEAN, "--max-new-tokens", "2", "-o", str(out)]
    assert main([*argv, "--steer-diff", f"{a}:{b}@0:3"]) == 0
    steer = intervention_from_dict(load_snapshot(out).interventions[0])
    assert steer.label == "mean(a.txt)-mean(b.txt)" and steer.alpha == 3.0 and steer.layer == 0
    model, tok = AutoModelForCausalLM.from_pretrained(tiny), AutoTokenizer.from_pretrained(tiny)

    def last(text: str) -> torch.Tensor:
        with torch.no_grad():
            ids = torch.tensor([tok(text)["input_ids"]])
            return model(input_ids=ids, output_hidden_states=True).hidden_states[1][0, -1]

    want = (last("The cat sat") + last("the dog ran")) / 2 - last("One two three")
    np.testing.assert_allclose(steer.direction, want.numpy(), atol=1e-5)
    fails(
        capsys, [*argv, "--force", "--steer-diff", f"{a}:{tmp_path}/none.txt@0:1"], "no prompt file"
    )
    fails(capsys, [*argv, "--force", "--steer-diff", f"{a}@0:1"], "A.txt:B.txt@LAYER:ALPHA")
    fails(capsys, [*argv, "--force", "--steer-diff", f"{a}:{b}@5:1"], "layer 5 is out of range")
