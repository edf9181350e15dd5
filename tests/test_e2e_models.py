"""The headless commands on tiny real models, as a user chains them: capture -> info -> export
(every registered view) and the mistakes that need the model's shape to be caught (a prompt
past the context, a layer or head out of range). In-process through `cli.main`, so torch is
imported once; the bad-input table over fresh processes is test_e2e_cli_errors.py."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from _fixtures_e2e import error_sentence
from neuroscope_tui.analysis.exports import EXPORTS
from neuroscope_tui.cli import main
from neuroscope_tui.snapshot import load_snapshot
from tiny_models import build_tiny

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny random Llama (context 128) saved with its tokenizer."""
    return build_tiny("llama", tmp_path_factory.mktemp("models") / "llama")


@pytest.fixture(scope="module")
def run_snapshot(tiny, tmp_path_factory) -> Path:
    """A capture that keeps every head's pattern, so every view can be exported."""
    out = tmp_path_factory.mktemp("runs") / "run.nscope"
    heads = ",".join(f"{layer}.{head}" for layer in range(2) for head in range(4))
    code = main(
        [
            "capture",
            str(tiny),
            "--prompt",
            PROMPT,
            "--max-new-tokens",
            "4",
            "--heads",
            heads,
            "--device",
            "cpu",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    return out


def fails(capsys, argv: list[str]) -> str:
    """Run the command, check exit 2 with one sentence, return the sentence."""
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    return error_sentence(captured.err)


def test_capture_then_info_describes_the_run(run_snapshot, capsys):
    trace = load_snapshot(run_snapshot)
    assert trace.prompt == PROMPT and trace.n_generated == 4 and trace.finished
    capsys.readouterr()
    assert main(["info", str(run_snapshot), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_prompt"] == trace.n_prompt and info["n_generated"] == 4
    assert info["arrays"]["resid.norm"]["shape"] == [2, trace.n_tokens]
    assert main(["info", str(run_snapshot)]) == 0
    text = capsys.readouterr().out
    assert PROMPT in text and "2 layers x 4 heads" in text


# asked for separately (capture --attribution / --side-by-side / --concept / --watch, patch,
# drift)
DRIFT_TABLES = tuple(v for v in EXPORTS if v.startswith("drift"))
NOT_IN_A_PLAIN_RUN = (
    "attribution",
    "patching",
    "interventions",
    "concepts",
    "watch",
    *DRIFT_TABLES,
)


@pytest.mark.parametrize("view", [v for v in EXPORTS if v not in NOT_IN_A_PLAIN_RUN])
def test_every_view_exports_as_csv_and_json_with_the_same_rows(
    run_snapshot, tmp_path, capsys, view
):
    assert main(["export", str(run_snapshot), view]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    out = tmp_path / f"{view}.json"
    assert main(["export", str(run_snapshot), view, "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["view"] == view and len(doc["records"]) == len(rows) > 0
    assert list(rows[0]) == doc["columns"]
    # the same table twice: CSV's first row is JSON's first record
    first = {k: ("" if v is None else v) for k, v in doc["records"][0].items()}
    for key, value in first.items():
        if isinstance(value, float):
            assert float(rows[0][key]) == pytest.approx(value, rel=1e-6, abs=1e-12)
        elif isinstance(value, bool):
            assert rows[0][key] == ("true" if value else "false")
        else:
            assert rows[0][key] == str(value)


def test_heatmap_export_is_the_snapshot_arrays(run_snapshot, capsys):
    """An independent check of one export: every cell equals the array in the file."""
    trace = load_snapshot(run_snapshot)
    capsys.readouterr()
    assert main(["export", str(run_snapshot), "heatmap", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)["records"]
    assert len(records) == 2 * trace.n_tokens
    for rec in records:
        layer, tok = rec["layer"], rec["token_index"]
        assert rec["resid.norm"] == pytest.approx(float(trace.arrays["resid.norm"][layer, tok]))
        assert rec["token_text"] == trace.token_text[tok]
        assert rec["is_generated"] == (tok >= trace.n_prompt)


def test_a_prompt_past_the_context_is_refused_or_cut_with_a_note(tiny, tmp_path, capsys):
    long_prompt = "The capital of France is Paris. " * 40  # far past 128 tokens
    out = tmp_path / "long.nscope"
    argv = ["capture", str(tiny), "--prompt", long_prompt, "--device", "cpu", "-o", str(out)]
    sentence = fails(capsys, argv)
    assert "reads at most 128" in sentence and "--too-long truncate" in sentence
    assert not out.exists()
    assert main([*argv, "--too-long", "truncate", "--max-new-tokens", "2"]) == 0
    assert "cut from the left" in capsys.readouterr().err
    trace = load_snapshot(out)
    assert trace.n_tokens <= 128 and "truncated" in trace.notes
    assert trace.prompt == long_prompt  # the prompt as typed is kept


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--heads", "5.1"], "layers 0 to 1 and heads 0 to 3"),
        (["--heads", "0.9"], "layers 0 to 1 and heads 0 to 3"),
        (["--full-layers", "7"], "layers 0 to 1, not 7"),
    ],
)
def test_capture_layer_or_head_out_of_range(tiny, tmp_path, capsys, args, words):
    out = tmp_path / "x.nscope"
    argv = ["capture", str(tiny), "--prompt", "hi", "--device", "cpu", "-o", str(out), *args]
    assert words in fails(capsys, argv)
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--layer", "5"], "has layers 0 to 1"),
        (["--head", "9"], "--head 9 is out of range"),
    ],
)
def test_heads_layer_or_head_out_of_range(tiny, capsys, args, words):
    assert words in fails(capsys, ["heads", str(tiny), "--device", "cpu", *args])


def test_heads_and_compare_run_on_the_tiny_model(tiny, capsys):
    capsys.readouterr()
    assert main(["heads", str(tiny), "--device", "cpu", "--json", "--probe-length", "8"]) == 0
    entries = json.loads(capsys.readouterr().out)
    entries = entries["heads"] if isinstance(entries, dict) else entries
    assert len(entries) == 2 * 4
    argv = ["compare", str(tiny), "--prompt", "The cat sat", "--prompt", "A dog ran", "--json"]
    assert main([*argv, "--device", "cpu"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [row["layer"] for row in doc["layers"]] == [0, 1]


def test_compare_of_snapshots_from_different_models(run_snapshot, tmp_path, capsys):
    gpt2 = build_tiny("gpt2", tmp_path / "gpt2")
    other = tmp_path / "gpt2.nscope"
    assert (
        main(["capture", str(gpt2), "--prompt", PROMPT, "--device", "cpu", "-o", str(other)]) == 0
    )
    sentence = fails(capsys, ["compare", str(run_snapshot), str(other), "--json"])
    assert "different models" in sentence


def test_token_texts_keep_word_spaces_for_metaspace_tokenizers(run_snapshot):
    trace = load_snapshot(run_snapshot)
    assert "".join(trace.token_text[: trace.n_prompt]) == PROMPT
