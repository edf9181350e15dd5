"""`neuroscope-tui drift`: its figures (--json, the summary lines, the table) against the
arrays they come from, and every bad input refused in one sentence with exit 2 before any
model loads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _fixtures_drift_file import make_result
from neuroscope_tui.cli import main
from neuroscope_tui.cli.drift import drift_json, summary_lines, summary_table


def test_json_holds_the_tables_with_missing_values_as_null():
    result = make_result(n_ckpt=3)
    result.arrays["cka.base"][1, 2] = np.nan
    doc = json.loads(json.dumps(drift_json(result), allow_nan=False))
    labels = [c["label"] for c in doc["checkpoints"]]
    assert labels == ["checkpoint-100", "checkpoint-200", "checkpoint-300"]
    assert doc["per_layer"]["cka.base"][1][2] is None
    for name in ("cka.prev", "cos.base", "cos.prev", "weights.base", "lens.agree.base"):
        np.testing.assert_allclose(doc["per_layer"][name], result.arrays[name], atol=1e-6)
    assert sorted(doc["tables"]) == [
        "checkpoints", "heads", "layers", "modules", "neurons", "prompts"
    ]  # fmt: skip
    layer_rows = doc["tables"]["layers"]
    assert len(layer_rows) == 3 * 3
    assert layer_rows[5]["checkpoint"] == "checkpoint-200" and layer_rows[5]["cka_base"] is None
    assert doc["skipped"] == result.skipped and "neurons.mean" not in doc["per_layer"]


def test_summary_figures_match_the_arrays():
    result = make_result(n_ckpt=2, seed=5)
    a = result.arrays
    doc = drift_json(result)
    for c, s in enumerate(doc["summary"]):
        # independent: plain Python over the rows
        w = [float(x) for x in a["weights.base"][c]]
        k = [float(x) for x in a["cka.base"][c]]
        assert s["max_weight_change_layer"] == w.index(max(w))
        assert s["max_weight_change"] == pytest.approx(max(w), abs=1e-6)
        assert s["min_cka_layer"] == k.index(min(k))
        assert s["min_cka"] == pytest.approx(min(k), abs=1e-6)
        kl = [float(x) for x in a["kl.base"][c]]
        assert s["mean_kl"] == pytest.approx(sum(kl) / len(kl), abs=1e-6)
        assert s["lens_split_layer"] == int(a["lens.split.base"][c])
    lines = summary_lines(result)
    assert len(lines) == 2 and lines[0].startswith("checkpoint-100: max weight change")
    assert f"at layer {doc['summary'][0]['min_cka_layer']}" in lines[0]


def test_skipped_measures_say_so():
    result = make_result(n_ckpt=1)
    for name in (
        "weights.base",
        "weights.prev",
        "weights.module.base",
        "weights.module.prev",
        "kl.base",
        "kl.prev",
    ):
        del result.arrays[name]
    result.skipped = {"weights.base": "a snapshot holds no weights"}
    result.arrays["lens.split.base"] = np.array([-1], np.int32)
    (line,) = summary_lines(result)
    assert "max weight change skipped" in line and "mean KL skipped" in line
    assert "the lens never splits" in line
    table = summary_table(result)
    assert "weight change: not measured" in table
    assert "skipped weights.base: a snapshot holds no weights" in table


def test_table_shows_a_value_per_layer_and_checkpoint_and_escapes_labels():
    result = make_result(n_ckpt=2)
    result.checkpoints[0].label = "evil\x1b]0;x\x07"
    table = summary_table(result)
    assert "\x1b" not in table and "\x07" not in table
    rows = [line for line in table.splitlines() if line.strip().startswith("2 ")]
    assert rows[0].split()[1:] == [f"{v:.4f}" for v in result.arrays["cka.base"][:, 2]]


def _one_sentence(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("neuroscope-tui: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["drift"], "at least one checkpoint"),
        (["drift", "smollm2"], "at least one checkpoint"),
        (["drift", "a", "b", "--prompt-file", "{tmp}/none.txt"], "no prompt file"),
        (["drift", "a", "b", "--prompt-file", "{tmp}/empty.txt"], "has no prompts"),
        (["drift", "a", "b", "-o", "{tmp}/missing/d.nscope"], "does not exist"),
        (["drift", "a", "b", "-o", "{tmp}/exists.nscope"], "--force"),
        (["drift", "a", "b", "-o", "{tmp}"], "is a folder"),
    ],
)
def test_bad_arguments_are_one_sentence_before_any_model(tmp_path, capsys, argv, words):
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    (tmp_path / "exists.nscope").write_bytes(b"x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    assert words in _one_sentence(capsys)


# ---- the command on tiny checkpoints -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny llama (3 layers) as the base; `same`, a copy of it; and a trainer-style run
    folder of a copy fine-tuned with only block 1 trainable (checkpoint-2 and checkpoint-5);
    `wide`, a llama of another width."""
    from tests.tiny_checkpoints import save_copy, save_finetuned
    from tests.tiny_models import build_tiny

    root = tmp_path_factory.mktemp("drift")
    base, run = save_finetuned(root, n_layers=3, block=1, steps=(2, 5))
    same = save_copy(root / "same", base)
    wide = build_tiny("llama", root / "wide", num_hidden_layers=3, hidden_size=48)
    return {"root": root, "base": base, "same": same, "run": run, "wide": wide}


@pytest.fixture(scope="module")
def drift_output(tiny_run):
    """One `drift BASE RUN -o FILE --json` run: (process, its JSON, the file)."""
    import subprocess
    import sys

    out = tiny_run["root"] / "drift.nscope"
    prompts = tiny_run["root"] / "prompts.txt"
    prompts.write_text("The capital of France is Paris.\nA cat sat on the mat.\n")
    cmd = [sys.executable, "-m", "neuroscope_tui", "drift", str(tiny_run["base"]),
           str(tiny_run["same"]), str(tiny_run["run"]), "--prompt-file", str(prompts),
           "-o", str(out), "--json", "--device", "cpu"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done, json.loads(done.stdout), out


def test_drift_finds_the_one_trained_layer(drift_output):
    done, doc, _ = drift_output
    labels = [c["label"] for c in doc["checkpoints"]]
    assert labels == ["same", "checkpoint-2", "checkpoint-5"]
    weights, cka = doc["per_layer"]["weights.base"], doc["per_layer"]["cka.base"]
    # `same` is the base itself: no change anywhere
    assert weights[0] == pytest.approx([0, 0, 0], abs=1e-7)
    assert cka[0] == pytest.approx([1, 1, 1], abs=1e-4)
    # fine-tuned: only block 1 moved; the stream is unchanged before it, changed from it on
    for c in (1, 2):
        assert weights[c][0] == 0 and weights[c][2] == 0 and weights[c][1] > 1e-3
        assert cka[c][0] == pytest.approx(1, abs=1e-5) and cka[c][1] < 1 - 1e-4
        assert doc["summary"][c]["max_weight_change_layer"] == 1
    assert weights[2][1] > weights[1][1]  # more steps, more change
    # checkpoint-2 against the previous model (`same`, equal to the base): the same figures
    assert doc["per_layer"]["weights.prev"][1] == pytest.approx(weights[1], abs=1e-7)
    lines = [line for line in done.stderr.splitlines() if line.startswith(tuple(labels))]
    assert len(lines) == 3 and "(layer 1)" in lines[2], done.stderr
    assert "no weight changed, min CKA 1.0000" in lines[0], lines[0]
    assert doc["summary"][0]["max_weight_change_layer"] is None


def test_the_file_holds_the_same_figures_and_opens_like_a_snapshot(drift_output, capsys):
    from neuroscope_tui.drift_file import load_drift
    from neuroscope_tui.snapshot import load_snapshot

    _, doc, out = drift_output
    result = load_drift(out)
    assert [c.label for c in result.checkpoints] == ["same", "checkpoint-2", "checkpoint-5"]
    for name, rows in doc["per_layer"].items():
        np.testing.assert_allclose(result.arrays[name], np.array(rows, float), atol=1e-6)
    assert len(result.traces) == 4 and load_snapshot(out).n_tokens > 0
    assert main(["info", str(out)]) == 0
    assert "drift of 3 checkpoint(s)" in capsys.readouterr().out


def test_export_writes_the_drift_tables(drift_output, tmp_path, capsys):
    import csv
    import io

    out = drift_output[2]
    assert main(["export", str(out), "drift"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows, "no rows"
    assert main(["export", str(out), "drift", "-o", str(tmp_path / "d.json")]) == 0
    records = json.loads((tmp_path / "d.json").read_text())["records"]
    assert len(records) == len(rows)


def test_export_drift_of_a_plain_snapshot_is_one_sentence(tmp_path, capsys):
    from _fixtures_drift_file import tiny_trace
    from neuroscope_tui.snapshot import save_snapshot

    path = save_snapshot(tiny_trace(0), tmp_path / "plain.nscope")
    assert main(["export", str(path), "drift"]) == 2
    assert "holds no drift comparison" in _one_sentence(capsys)


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fail the test if any model is loaded."""
    # imported first: it binds the loader's function at import, which must be the real one
    import neuroscope_tui.capture.drift as capture_drift
    import neuroscope_tui.models.loader as loader

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(loader, "load_model", refuse)
    monkeypatch.setattr(capture_drift, "load_model", refuse)


@pytest.mark.parametrize(
    ("which", "words"),
    [
        (["{base}", "{wide}"], "width"),
        (["{base}", "{root}"], "checkpoint"),  # a folder with no checkpoint-* and no model
        (["{base}", "{root}/missing"], "missing"),
        (["{base}", "{run}", "-o", "/proc/drift.nscope"], "cannot write in the folder /proc"),
    ],
)
def test_bad_inputs_are_one_sentence_and_nothing_loads(
    tiny_run, no_model_loads, capsys, which, words
):
    argv = ["drift", *(w.format(**tiny_run) for w in which), "--json"]
    assert main(argv) == 2
    err = _one_sentence(capsys)
    assert words in err, err


def test_a_snapshot_input_gives_the_activation_figures_and_says_what_it_skipped(
    tiny_run, tmp_path, capsys
):
    snap = tmp_path / "ft.nscope"
    ckpt = tiny_run["run"] / "checkpoint-5"
    prompt = ["--prompt", "The cat sat on the mat.", "--max-new-tokens", "0", "--device", "cpu"]
    assert main(["capture", str(ckpt), *prompt, "-o", str(snap)]) == 0
    capsys.readouterr()
    assert main(["drift", str(tiny_run["base"]), str(snap), "--json", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["prompts"] == ["The cat sat on the mat."]
    assert doc["checkpoints"][0]["kind"] == "snapshot"
    assert "weights.base" not in doc["per_layer"] and doc["skipped"]
    cka = doc["per_layer"]["cka.base"][0]
    assert cka[0] == pytest.approx(1, abs=1e-5) and cka[1] < 1 - 1e-4  # block 1 was trained
    assert "on the snapshot's prompt" in captured.err
    assert "max weight change skipped" in captured.err


def _fake_measure(monkeypatch, result):
    import neuroscope_tui.capture.drift as capture_drift

    monkeypatch.setattr(capture_drift, "measure_drift", lambda *a, **k: result)


def test_without_output_a_terminal_opens_the_drift_view(tiny_run, monkeypatch, capsys):
    import neuroscope_tui.cli.drift as cli_drift
    import neuroscope_tui.tui.views.drift as view

    result = make_result()
    _fake_measure(monkeypatch, result)
    monkeypatch.setattr(cli_drift, "stdout_is_terminal", lambda: True)
    monkeypatch.setattr("neuroscope_tui.cli.terminal.terminal_problem", lambda: None)
    opened = []
    monkeypatch.setattr(view, "open_drift_app", lambda r, path=None: opened.append(r) or 0)
    assert main(["drift", str(tiny_run["base"]), str(tiny_run["run"])]) == 0
    assert opened == [result]
    assert capsys.readouterr().out == ""


def test_without_output_a_pipe_gets_the_table(tiny_run, monkeypatch, capsys):
    result = make_result()
    _fake_measure(monkeypatch, result)
    assert main(["drift", str(tiny_run["base"]), str(tiny_run["run"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith("base base; 2 prompt(s)") and "linear CKA vs base" in out


def test_without_a_terminal_for_the_view_it_says_so_before_any_model(
    tiny_run, no_model_loads, monkeypatch, capsys
):
    import neuroscope_tui.cli.drift as cli_drift

    monkeypatch.setattr(cli_drift, "stdout_is_terminal", lambda: True)
    monkeypatch.setattr("neuroscope_tui.cli.terminal.terminal_problem", lambda: "no keys")
    assert main(["drift", str(tiny_run["base"]), str(tiny_run["run"])]) == 2
    assert "the drift view needs a terminal, but no keys; add --json" in _one_sentence(capsys)
