"""`neuroscope-tui heads` on a tiny saved model: table, JSON, filters and bad input."""

from __future__ import annotations

import json

import pytest

from neuroscope_tui.analysis.heads import SCORE_NAMES, head_scores
from neuroscope_tui.capture.probes import induction_probe
from neuroscope_tui.cli import main
from tiny_models import build_tiny


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny("llama", tmp_path_factory.mktemp("tiny-heads") / "llama", seed=5))


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["heads", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_has_one_entry_per_head_with_the_probe_scores(tiny_folder, capsys):
    rc, out, err = run_cli(capsys, tiny_folder, "--json", "--probe-length", "20", "--seed", "3")
    assert rc == 0, err
    entries = json.loads(out)
    assert len(entries) == 2 * 4
    assert [(e["layer"], e["head"]) for e in entries[:5]] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 0),
    ]
    for e in entries:
        assert set(SCORE_NAMES) <= set(e) and isinstance(e["types"], list)
        assert "redundant_with" in e and "prompt" not in e

    # the same numbers straight from the probe and the analysis, without the CLI
    from neuroscope_tui.models.loader import load_model

    scores = head_scores(induction_probe(load_model(tiny_folder), 20, seed=3))
    for e in entries:
        for name in SCORE_NAMES:
            assert e[name] == pytest.approx(scores.score(name, e["layer"], e["head"]), abs=1e-6)


def test_table_filters_and_prompt(tiny_folder, capsys):
    rc, out, _ = run_cli(capsys, tiny_folder, "--probe-length", "20", "--layer", "1")
    assert rc == 0
    lines = out.strip().splitlines()
    assert "2 layers x 4 heads" in lines[0]
    assert lines[1].split()[:3] == ["layer", "head", "entropy"]
    assert len(lines) == 2 + 4 and all(line.split()[0] == "1" for line in lines[2:])

    rc, out, _ = run_cli(
        capsys, tiny_folder, "--json", "--probe-length", "20", "--top", "3", "--sort", "prev",
        "--prompt", "The cat sat on the mat. The cat sat on the mat.",
    )  # fmt: skip
    entries = json.loads(out)
    assert len(entries) == 3
    prevs = [e["prev"] for e in entries]
    assert prevs == sorted(prevs, reverse=True)
    assert set(SCORE_NAMES) <= set(entries[0]["prompt"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "2"], "--layer 2 is out of range"),
        (["--head", "4"], "--head 4 is out of range"),
    ],
)
def test_layer_or_head_out_of_range_is_one_sentence_and_exit_2(tiny_folder, capsys, args, message):
    rc, out, err = run_cli(capsys, tiny_folder, "--probe-length", "20", *args)
    assert rc == 2 and out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "args", [["--head", "-1"], ["--layer", "-3"], ["--top", "0"], ["--prompt", "  "]]
)
def test_bad_values_are_refused_before_loading(capsys, args):
    # the model does not exist: the argument is refused before anything is loaded
    rc, _, err = run_cli(capsys, "/no/such/model", *args)
    assert rc == 2
    assert "no/such/model" not in err and len(err.strip().splitlines()) == 1
