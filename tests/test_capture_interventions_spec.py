"""The torch-free description of interventions: round trip, strict loading, checks, text."""

from __future__ import annotations

import json

import pytest

from neuroscope_tui.capture.interventions import (
    Ablation,
    InterventionError,
    Patch,
    Steering,
    check_interventions,
    describe,
    intervention_from_dict,
    intervention_to_dict,
)
from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.trace import ModelInfo

INFO = ModelInfo(name="tiny", n_layers=4, n_heads=4, n_kv_heads=2, d_model=8, d_head=2, d_mlp=16)

EXAMPLES = [
    Ablation("head", 2, 3, mode="mean"),
    Ablation("neuron", 1, 15, positions=(0, 4)),
    Ablation("attn", 0),
    Ablation("mlp", 3, mode="resample", source="other prompt"),
    Patch("resid", 2, (1,), source="The capital of Germany is"),
    Patch("head", 1, (0, 2), index=3, source="x", enabled=False),
    Steering(1, -2.5, tuple(float(i) for i in range(8)), label="v.safetensors:happy"),
]


@pytest.mark.parametrize("iv", EXAMPLES, ids=describe)
def test_round_trip_through_json(iv):
    d = json.loads(json.dumps(intervention_to_dict(iv)))
    assert intervention_from_dict(d) == iv
    check_interventions([iv], INFO)


def test_describe_reads_like_the_contract():
    assert describe(Ablation("head", 18, 6, mode="mean")) == "ablate L18.H6 (mean)"
    assert describe(Steering(12, 4.0, (1.0,), label="refusal")) == "steer L12 +4 x refusal"
    assert describe(Ablation("neuron", 12, 341)) == "ablate L12.N341 (zero)"
    assert describe(Ablation("attn", 5, positions=(3,))) == "ablate attn L5 (zero) @3"
    assert "[off]" in describe(Patch("resid", 0, (1,), source="a", enabled=False))


@pytest.mark.parametrize(
    "d, words",
    [
        ({"kind": "explode", "layer": 1}, "unknown intervention kind"),
        ({"kind": "ablate", "site": "head", "layer": 1, "index": 0, "colour": 1}, "colour"),
        ({"kind": "ablate", "site": "head", "layer": "1", "index": 0}, "whole number"),
        ({"kind": "ablate", "site": "head", "layer": 1}, "needs its index"),
        ({"kind": "ablate", "site": "brain", "layer": 1}, "cannot ablate"),
        ({"kind": "ablate", "site": "attn", "layer": 1, "mode": "halve"}, "ablation mode"),
        ({"kind": "ablate", "site": "mlp", "layer": 1, "mode": "resample"}, "second prompt"),
        ({"kind": "patch", "site": "resid", "layer": 1, "positions": [1]}, "second"),
        (
            {"kind": "patch", "site": "resid", "layer": 1, "positions": [], "source": "a"},
            "position",
        ),
        ({"kind": "steer", "layer": 1, "alpha": 1.0}, "direction"),
        ({"kind": "steer", "layer": 1, "alpha": True, "direction": [1.0]}, "alpha"),
        ({"kind": "steer", "layer": 1, "alpha": 1.0, "direction": ["a"]}, "numbers"),
        ([1, 2], "JSON object"),
    ],
)
def test_from_dict_is_strict(d, words):
    with pytest.raises(InterventionError, match=words) as err:
        intervention_from_dict(d)
    assert isinstance(err.value, NeuroscopeError)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "iv, words",
    [
        (Ablation("head", 4, 0), "layer 4 is out of range.*0-3"),
        (Ablation("head", -1, 0), "layer -1"),
        (Ablation("head", 1, 4), "head 4 is out of range.*0-3"),
        (Ablation("neuron", 1, 16), "neuron 16 is out of range.*0-15"),
        (Ablation("attn", 1, positions=(-1,)), "negative"),
        (Steering(1, 1.0, (1.0, 2.0), label="v.st"), "v.st has 2 numbers.*has 8"),
        (Steering(1, float("nan"), (1.0,) * 8), "finite"),
        (Patch("head", 1, (0,), index=9, source="b"), "head 9"),
    ],
)
def test_check_refuses_what_does_not_fit(iv, words):
    with pytest.raises(InterventionError, match=words) as err:
        check_interventions([Ablation("attn", 0), iv], INFO)
    assert "\n" not in str(err.value)


def test_module_has_no_torch():
    import subprocess
    import sys

    code = "import sys, neuroscope_tui.capture.interventions; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
