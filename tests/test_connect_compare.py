"""Comparing two runs: the figures against direct formulas, and the command's bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _fixtures_connect import tiny_trace
from neuroscope_tui.analysis.compare import compare_runs
from neuroscope_tui.analysis.connectivity import linear_cka
from neuroscope_tui.cli import main
from neuroscope_tui.errors import UsageError
from neuroscope_tui.snapshot import save_snapshot
from neuroscope_tui.trace import ModelInfo, Trace

RNG = np.random.default_rng(3)


def toy_run(n_tokens: int, name: str = "toy", n_layers: int = 3, d: int = 5) -> Trace:
    trace = Trace(model=ModelInfo(name=name, n_layers=n_layers, d_model=d))
    trace.spec.full_layers = None
    full = RNG.normal(size=(n_layers, n_tokens, d)) + 3.0
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


def test_figures_match_direct_formulas():
    a, b = toy_run(7), toy_run(4)
    c = compare_runs(a, b, skip_first=False)
    fa, fb = a.get("resid.full").astype(float), b.get("resid.full").astype(float)
    ma, mb = fa.mean(1), fb.mean(1)
    for layer in range(3):
        assert c.cos_mean[layer] == pytest.approx(cos(ma[layer], mb[layer]), rel=1e-6)
        assert c.cos_last[layer] == pytest.approx(cos(fa[layer, -1], fb[layer, -1]), rel=1e-6)
        centred = cos(ma[layer] - ma.mean(0), mb[layer] - mb.mean(0))
        assert c.cos_centred[layer] == pytest.approx(centred, rel=1e-6)
    assert c.cka_mean_states == pytest.approx(linear_cka(ma, mb))
    assert c.cka_tokens is None  # different lengths: no token pairing
    assert c.metrics == ["resid.norm"]
    na, nb = a.get("resid.norm").mean(1), b.get("resid.norm").mean(1)
    assert np.allclose(c.relative_diff[:, 0], (nb - na) / na, rtol=1e-5)


def test_first_token_is_left_out_by_default():
    a, b = toy_run(7), toy_run(4)
    a.arrays["resid.full"][:, 0] *= 1000  # an outlier first token, as in many real models
    c = compare_runs(a, b)
    fa, fb = a.get("resid.full")[:, 1:].astype(float), b.get("resid.full")[:, 1:].astype(float)
    assert c.skip_first
    assert c.cos_mean[1] == pytest.approx(cos(fa[1].mean(0), fb[1].mean(0)), rel=1e-6)
    na, nb = a.get("resid.norm")[:, 1:].mean(1), b.get("resid.norm")[:, 1:].mean(1)
    assert np.allclose(c.relative_diff[:, 0], (nb - na) / na, rtol=1e-5)
    assert not compare_runs(toy_run(1), toy_run(1)).skip_first  # nothing would be left


def test_a_run_compared_with_itself():
    a = toy_run(6)
    c = compare_runs(a, a)
    assert np.allclose(c.cos_mean, 1) and np.allclose(c.cka_tokens, 1)
    assert c.cka_mean_states == pytest.approx(1.0)
    assert np.allclose(c.relative_diff, 0)


def test_different_models_are_refused():
    with pytest.raises(UsageError, match="different models"):
        compare_runs(toy_run(4), toy_run(4, name="other"))


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snaps")
    a = save_snapshot(tiny_trace("The cat sat on the mat"), folder / "a.nscope")
    b = save_snapshot(tiny_trace("A dog looked at the cat", max_new_tokens=2), folder / "b.nscope")
    other = toy_run(5, name="someone-else")
    c = save_snapshot(other, folder / "c.nscope")
    return a, b, c


def test_compare_two_snapshots_json(snapshots, capsys):
    a, b, _ = snapshots
    assert main(["compare", str(a), str(b), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "tiny-llama" and len(out["layers"]) == 3
    assert out["first_token_left_out"] is True
    first = out["layers"][0]
    assert -1 <= first["cos_mean"] <= 1 and first["cka_tokens"] is None
    assert "resid.norm rel.diff" in first
    assert 0 <= out["cka_mean_states"] <= 1


@pytest.mark.parametrize(
    "argv, says",
    [
        (["compare", "A", "B_FILE", "--json"], "not a snapshot file"),
        (["compare", "tiny", "--prompt", "only one"], "exactly two prompts"),
        (["compare", "--prompt", "a", "--prompt", "b", "--prompt", "c"], "exactly two prompts"),
        (["compare", "one.nscope"], "got 1 argument"),
        (["compare", "m", "--prompt", "a", "--prompt", " "], "empty"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(argv, says, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_snapshots_of_different_models_exit_2(snapshots, capsys):
    a, _, c = snapshots
    assert main(["compare", str(a), str(c), "--json"]) == 2
    err = capsys.readouterr().err
    assert "different models" in err and err.count("\n") == 1


def test_compare_prompts_through_a_model_folder(tmp_path, capsys):
    from tiny_models import build_tiny

    folder = build_tiny("llama", tmp_path / "tiny")
    argv = ["compare", str(folder), "--prompt", "The cat sat", "--prompt", "The dog sat"]
    assert main([*argv, "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["a"]["prompt"] == "The cat sat" and out["b"]["prompt"] == "The dog sat"
    assert len(out["layers"]) == 2


@pytest.mark.anyio
async def test_compare_app_figures_and_difference_cursor():
    from _fixtures_connect import FIXTURE_B, load_fixture
    from neuroscope_tui.tui.compare_app import CompareApp
    from neuroscope_tui.tui.widgets.heatmap import LayerHeatmap

    a, b = load_fixture(), load_fixture(FIXTURE_B)
    app = CompareApp(a, b)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("down", "down", "right")
        heat = app.query_one(LayerHeatmap)
        assert heat.cursor == (2, 1) and app.focused is heat
        c = compare_runs(a, b)
        assert c.metrics[1] == "attn.norm"
        na = a.get("attn.norm")[2, 1:].astype(float).mean()
        nb = b.get("attn.norm")[2, 1:].astype(float).mean()
        assert heat.value_at(2, 1) == pytest.approx((nb - na) / na, rel=1e-5)
        side = str(app.query_one("#diff-side").render())
        assert "layer 2 · attn.norm" in side
        table = app.query_one("#figures")
        assert table.cursor_row == 2 and table.row_count == 3
        assert table.get_row_at(0)[1] == f"{c.cos_mean[0]:.3g}"


def test_without_json_the_compare_view_opens(snapshots, monkeypatch):
    from neuroscope_tui.cli import compare as compare_cli
    from neuroscope_tui.tui import compare_app

    # in a terminal (pytest captures stdout; without a terminal the table is printed instead)
    monkeypatch.setattr(compare_cli, "stdout_is_terminal", lambda: True)
    monkeypatch.setattr(compare_cli, "require_terminal", lambda what, instead: None)
    opened = []
    monkeypatch.setattr(compare_app.CompareApp, "run", lambda self: opened.append(self))
    a, b, _ = snapshots
    assert main(["compare", str(a), str(b)]) == 0
    (app,) = opened
    assert app.a.prompt == "The cat sat on the mat" and app.comparison.skip_first


def test_analysis_views_and_compare_import_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import neuroscope_tui.analysis.connect_tables, neuroscope_tui.analysis.compare\n"
        "import neuroscope_tui.tui.compare_app, neuroscope_tui.cli.compare\n"
        "import neuroscope_tui.tui.views.connectivity, neuroscope_tui.tui.views.residual\n"
        "import neuroscope_tui.tui.views.flow, neuroscope_tui.tui.views.lens\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
