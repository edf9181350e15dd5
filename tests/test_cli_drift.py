"""`neuroscope-tui drift`: its figures (--json, the summary lines, the table) against the
arrays they come from, and every bad input refused in one sentence with exit 2 before any
model loads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _fixtures_drift import make_result
from neuroscope_tui.cli import main
from neuroscope_tui.cli.drift import drift_json, summary_lines, summary_table


def test_json_holds_every_table_with_missing_values_as_null():
    result = make_result(n_ckpt=3)
    result.arrays["cka.base"][1, 2] = np.nan
    doc = json.loads(json.dumps(drift_json(result), allow_nan=False))
    assert [c["label"] for c in doc["checkpoints"]] == [
        "checkpoint-100",
        "checkpoint-200",
        "checkpoint-300",
    ]
    assert doc["per_layer"]["cka.base"][1][2] is None
    np.testing.assert_allclose(doc["per_layer"]["cos.prev"], result.arrays["cos.prev"], atol=1e-6)
    np.testing.assert_allclose(doc["per_prompt"]["kl.base"], result.arrays["kl.base"], atol=1e-6)
    assert doc["weights_per_module"]["modules"] == result.modules
    np.testing.assert_allclose(
        doc["weights_per_module"]["base"], result.arrays["weights.module.base"], atol=1e-6
    )
    np.testing.assert_allclose(
        doc["heads"]["induction"], result.arrays["heads.induction"], atol=1e-6
    )
    assert doc["other"]["lens.split.base"] == result.arrays["lens.split.base"].tolist()
    assert doc["skipped"] == result.skipped and "neurons.mean" not in json.dumps(doc)


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
    assert "lens splits at never" in line
    table = summary_table(result)
    assert "weight change: skipped (a snapshot holds no weights)" in table


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
