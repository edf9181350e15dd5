"""Interventions in the app, without torch: the keys, the panel, the side by side, the sweep.

The live app here holds a stand-in model (a name and nothing else) and its engine's `spawn`
records the runs it would start, so what a key asks the model worker to do is checked exactly;
the sweep runs through the real task queue with a stand-in `patch_sweep`.
"""

from __future__ import annotations

import csv
import io
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from _fixtures_app import N_LAYERS, N_PROMPT, SCAN_FIXTURE, synthetic_trace, wait_until
from _fixtures_interventions import clean_and_intervened, fake_sweep
from neuroscope_tui.analysis.intervention_store import (
    CLEAN_NOTE,
    SWEEP_NOTE,
    stored_side_by_side,
    stored_sweep,
)
from neuroscope_tui.analysis.metrics import metric_values
from neuroscope_tui.capture.interventions import Ablation, Steering
from neuroscope_tui.tasks import TaskCancelled
from neuroscope_tui.tui import views
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.messages import RunEnded
from neuroscope_tui.tui.views.interventions import InterventionsView
from neuroscope_tui.tui.widgets.heatmap import LayerHeatmap
from neuroscope_tui.tui.widgets.intervention_panel import InterventionPanel

pytestmark = pytest.mark.anyio
SIZE = (120, 40)


def live_app(trace=None) -> tuple[NeuroscopeApp, list]:
    """The live app on a stand-in model, showing `trace` as its last run; runs are recorded."""
    model = SimpleNamespace(name="synthetic-6L", device="cpu", dtype="float32")
    app = NeuroscopeApp(model=model)
    started: list = []
    real_spawn = app.engine.spawn

    def spawn(name, fn, *args):
        if name == "run":
            started.append(args)
            return None
        return real_spawn(name, fn, *args)

    app.engine.spawn = spawn
    recording_notices(app)
    app.shown = app.trace = trace if trace is not None else synthetic_trace()
    app.last_prompt = app.shown.prompt
    return app, started


def notices(app) -> list[str]:
    """Every notice the app was asked to show (toasts expire; this list does not)."""
    return app.said


async def show(pilot, app, key: str) -> None:
    """Press a view's number key and wait until that view holds the keyboard (on a loaded
    machine the focus moves a refresh later, and a key pressed before goes to the last view)."""
    await pilot.press(key)
    await wait_until(lambda: app.view.has_focus_within)


def recording_notices(app: NeuroscopeApp) -> NeuroscopeApp:
    app.said = []
    real = app.notify

    def notify(message, *args, **kwargs):
        app.said.append(str(message))
        return real(message, *args, **kwargs)

    app.notify = notify
    return app


async def test_a_in_the_heads_view_ablates_the_selected_head_and_reruns():
    app, started = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(pilot, app, "2")
        await pilot.press("]", "]", "}", "a")
        assert app.interventions.items == [Ablation("head", 2, 1)]
        prompt, _spec, _options, ivs = started[-1]
        assert prompt == app.shown.prompt and ivs == [Ablation("head", 2, 1)]
        app.engine.running = False
        await pilot.press("a")  # the same head again: taken back, and the clean run again
        assert app.interventions.items == [] and started[-1][3] == []


async def test_a_and_b_in_the_scan_ablate_the_plotted_neuron_and_the_block():
    app, started = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "right", "right", "a")
        top = int(app.shown.get("neurons.top_idx")[2, 2, 0])
        assert app.interventions.items == [Ablation("neuron", 2, top)]
        app.engine.running = False
        await pilot.press("m", "b")  # metric: attention-output norm -> the attention block
        assert app.interventions.items[-1] == Ablation("attn", 2)
        assert started[-1][3] == [Ablation("neuron", 2, top), Ablation("attn", 2)]


async def test_an_out_of_range_intervention_is_a_notice_and_the_run_stays():
    app, started = live_app()
    async with app.run_test(size=SIZE) as pilot:
        shown = app.shown
        app.intervene(Ablation("head", N_LAYERS + 3, 0))
        app.intervene(Steering(1, 2.0, (1.0, 2.0)))  # 2 numbers for a 16-wide stream
        await pilot.pause()
        said = " ".join(notices(app))
        assert f"layer {N_LAYERS + 3} is out of range" in said
        assert "has 2 numbers but the model's residual stream has 16" in said
        assert app.interventions.items == [] and started == [] and app.shown is shown


async def test_a_run_the_engine_refuses_leaves_the_clean_run_on_screen():
    app, started = live_app()
    async with app.run_test(size=SIZE) as pilot:
        shown = app.shown
        await show(pilot, app, "2")
        await pilot.press("a")
        assert started  # the re-run was asked for; the engine refuses it before running
        app.post_message(RunEnded(None, "the source prompt has 5 tokens but this prompt 6"))
        await wait_until(lambda: "failed" in app.figures.state)
        assert app.shown is shown and "the source prompt has 5 tokens" in " ".join(notices(app))
        assert CLEAN_NOTE not in shown.notes


async def test_view_mode_keys_say_they_need_the_model():
    app = recording_notices(
        NeuroscopeApp(snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE))
    )
    async with app.run_test(size=SIZE) as pilot:
        await show(pilot, app, "2")
        await pilot.press("a")
        await show(pilot, app, "9")
        await pilot.press("w")
        said = " ".join(notices(app))
        assert "interventions need the live model" in said and "sweep needs the live model" in said


async def test_the_panel_toggles_removes_changes_mode_and_alpha_then_reruns():
    app, started = live_app()
    app.interventions.items.extend(
        [Ablation("head", 1, 0), Steering(2, 1.0, tuple([0.5] * 16), label="v")]
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("9")
        panel = app.query_one(InterventionPanel)
        await wait_until(lambda: panel.has_focus)  # the app focuses a view after a refresh
        assert panel.option_count == 2
        await pilot.press("m")  # zero -> mean
        await pilot.press("down", "plus", "plus", "minus")  # alpha 1 -> 2
        await pilot.press("up", "space")  # the head off
        items = app.interventions.items
        assert items[0] == Ablation("head", 1, 0, mode="mean", enabled=False)
        assert items[1].alpha == 2.0
        assert str(panel.get_option_at_index(0).prompt) == "ablate L1.H0 (mean) [off]"
        await pilot.press("r")  # re-run with what is on: the steering vector only
        assert started[-1][3] == [items[1]]
        app.engine.running = False
        await pilot.press("down", "delete")
        assert app.interventions.items == [items[0]] and panel.option_count == 1


async def test_side_by_side_and_sweep_of_a_saved_run_in_view_mode(tmp_path):
    from _fixtures_interventions import intervened_trace_with_sweep
    from neuroscope_tui.snapshot import load_snapshot, save_snapshot

    path = save_snapshot(intervened_trace_with_sweep(), tmp_path / "iv.nscope")
    trace = load_snapshot(path)
    app = NeuroscopeApp(snapshot=trace, snapshot_path=str(path), save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("9")
        panel = app.query_one(InterventionPanel)
        lines = [str(panel.get_option_at_index(i).prompt) for i in range(panel.option_count)]
        assert lines == ["ablate L4.H2 (mean)", "ablate L3.N17 (zero)",
                         "steer L2 +4 x refusal.safetensors:dir"]  # fmt: skip
        grid = app.query_one("#iv-grid", LayerHeatmap)
        np.testing.assert_array_equal(grid._raw, fake_sweep().recovered)
        await pilot.press("tab", "tab")  # panel -> side by side -> sweep grid
        assert grid.has_focus
        await pilot.press("down", "down", "right", "right", "right")
        cell = str(app.query_one("#iv-cell").render())
        assert "L2 · position 3" in cell and "recovered: 0.95" in cell
        await pilot.press("x")
        await pilot.pause()
        written = {p.name.split("-")[2]: p for p in tmp_path.glob("*.csv")}
        assert sorted(written) == ["side", "sweep"]  # synthetic-6L-sweep-<time>.csv
        rows = list(csv.DictReader(io.StringIO(written["sweep"].read_text())))
        assert len(rows) == N_LAYERS * N_PROMPT and float(rows[3]["recovered"]) == 1.0


async def test_scan_difference_is_intervened_minus_clean():
    clean, mine = clean_and_intervened()
    mine.arrays["resid.norm"] = mine.arrays["resid.norm"].copy()
    mine.arrays["resid.norm"][2] += 1.5
    app, _ = live_app(mine)
    app.interventions.keep_clean(clean, clean.prompt, {})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        heatmap = app.query_one(LayerHeatmap)
        await pilot.press("d")
        expected = metric_values(mine, "resid.norm") - metric_values(clean, "resid.norm")
        np.testing.assert_allclose(heatmap._raw, expected, atol=1e-6)
        assert np.allclose(heatmap._raw[2], 1.5) and np.allclose(heatmap._raw[0], 0.0)
        await pilot.press("d")
        np.testing.assert_array_equal(heatmap._raw, metric_values(mine, "resid.norm"))


async def test_scan_difference_without_a_clean_run_is_a_notice():
    app, _ = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("d")
        assert "no clean run to compare with" in " ".join(notices(app))


async def test_a_sweep_runs_in_the_worker_with_progress_and_lands_on_the_trace(monkeypatch):
    asked, release = [], threading.Event()

    def fake(bundle, clean, corrupt, site, target, foil, progress=None):
        asked.append((clean, corrupt, site, target, foil))
        progress(0.5, "patching layer 3 of 6")
        release.wait(10)
        return fake_sweep()

    monkeypatch.setattr(views.interventions, "sweep_or_error", fake)
    app, _ = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(pilot, app, "9")
        await pilot.press("e", "e", "e", "w")  # e three times: back to resid
        await pilot.press(*"The capital of Germany is", "tab", *" Berlin", "enter")
        view = app.query_one(InterventionsView)
        await wait_until(lambda: view.progress is not None)
        status = str(app.query_one("#iv-status").render())
        assert "patching layer 3 of 6" in status and "50%" in status
        release.set()
        await wait_until(lambda: not view.busy)
        assert asked == [(app.shown.prompt, "The capital of Germany is", "resid", " Berlin", None)]
        assert stored_sweep(app.shown).rows == fake_sweep().rows
        assert SWEEP_NOTE in app.shown.notes  # so `s` saves it


async def test_esc_cancels_a_running_sweep(monkeypatch):
    def fake(bundle, clean, corrupt, site, target, foil, progress=None):
        for _ in range(1000):
            progress(0.1, "patching")
            threading.Event().wait(0.01)
        raise AssertionError("never cancelled")

    monkeypatch.setattr(views.interventions, "sweep_or_error", fake)
    app, _ = live_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(pilot, app, "9")
        await pilot.press("w", *"x y", "enter")
        view = app.query_one(InterventionsView)
        await wait_until(lambda: view.progress is not None)
        await pilot.press("escape")
        await wait_until(lambda: not view.busy)
        assert view.message == "sweep cancelled"
        await wait_until(lambda: app.engine.current is None and not app.engine.pending())


def test_sweep_or_error_turns_a_refusal_into_a_sentence(monkeypatch):
    import sys
    import types

    from neuroscope_tui.capture.interventions import InterventionError

    def refuse(*args, **kwargs):
        raise InterventionError("the clean prompt has 6 tokens and the corrupted one 5")

    fake_module = types.ModuleType("neuroscope_tui.capture.patching")
    fake_module.patch_sweep = refuse
    monkeypatch.setitem(sys.modules, "neuroscope_tui.capture.patching", fake_module)
    said = views.interventions.sweep_or_error(None, "a", "b", "resid", None, None)
    assert said == "the clean prompt has 6 tokens and the corrupted one 5"

    def cancelled(*args, **kwargs):
        raise TaskCancelled("cancelled")

    fake_module.patch_sweep = cancelled
    with pytest.raises(TaskCancelled):
        views.interventions.sweep_or_error(None, "a", "b", "resid", None, None)


def test_side_by_side_survives_a_snapshot_and_lists_the_interventions(tmp_path):
    from neuroscope_tui.snapshot import load_snapshot, save_snapshot

    _, mine = clean_and_intervened()
    back = load_snapshot(save_snapshot(mine, tmp_path / "side.nscope"))
    side = stored_side_by_side(back)
    assert side.clean_tokens[N_PROMPT] == " Paris" and side.intervened_tokens[N_PROMPT] == " Berlin"
    assert side.logit_diff[5] == pytest.approx(-5.2)
    assert side.interventions == ["ablate L4.H2 (mean)", "ablate L3.N17 (zero)",
                                  "steer L2 +4 x refusal.safetensors:dir"]  # fmt: skip
    assert side.first_divergence == N_PROMPT


def test_export_writes_the_sweep_and_the_side_by_side_as_csv_and_json(tmp_path, capsys):
    """What the app keeps on a run is what `export ... patching|interventions` writes."""
    import json

    from _fixtures_interventions import intervened_trace_with_sweep
    from neuroscope_tui.cli import main
    from neuroscope_tui.snapshot import save_snapshot

    trace = intervened_trace_with_sweep()
    path = str(save_snapshot(trace, tmp_path / "iv.nscope"))
    assert main(["export", path, "patching"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    grid = fake_sweep().recovered
    assert len(rows) == N_LAYERS * trace.n_tokens  # generated positions: not computed
    at = {(r["row"], int(r["position"])): r["recovered"] for r in rows}
    assert float(at[("L2", 3)]) == pytest.approx(grid[2, 3]) and at[("L5", 0)] == ""  # NaN
    assert at[("L0", N_PROMPT)] == ""
    out = tmp_path / "side.json"
    assert main(["export", path, "interventions", "-o", str(out)]) == 0
    records = json.loads(out.read_text())["records"]
    changed = [(r["position"], r["clean_token"], r["intervened_token"]) for r in records
               if not r["same"]]  # fmt: skip
    assert changed == [(6, " Paris", " Berlin"), (9, " is", " was"), (10, " big", " old")]
    assert records[5]["logit_diff"] == pytest.approx(-5.2)


async def test_a_malformed_sweep_is_a_sentence_in_export_and_in_the_view(tmp_path, capsys):
    from _fixtures_interventions import intervened_trace_with_sweep
    from neuroscope_tui.cli import main
    from neuroscope_tui.snapshot import save_snapshot

    trace = intervened_trace_with_sweep()
    trace.notes[SWEEP_NOTE]["rows"] = ["L0"]  # 1 row label for a 6-row grid
    path = save_snapshot(trace, tmp_path / "bad.nscope")
    assert main(["export", str(path), "patching"]) == 2
    err = capsys.readouterr().err
    assert "for the sweep's cells" in err and err.count("\n") == 1
    app = NeuroscopeApp(snapshot=trace, snapshot_path=str(path))  # damaged in memory
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("9")
        assert "does not match its rows" in str(app.query_one("#iv-status").render())


async def test_a_sweep_file_opens_on_its_grid(tmp_path):
    """`neuroscope-tui view sweep.nscope` (a file of `patch -o`) shows view 9 at once."""
    from neuroscope_tui.snapshot import load_snapshot, save_snapshot

    run = synthetic_trace()
    path = save_snapshot(fake_sweep().to_trace(run.model, run.token_ids[:N_PROMPT]),
                         tmp_path / "sweep.nscope")  # fmt: skip
    app = NeuroscopeApp(snapshot=load_snapshot(path), snapshot_path=str(path))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.current_view == "interventions")
        await pilot.pause()
        grid = app.query_one("#iv-grid", LayerHeatmap)
        np.testing.assert_array_equal(grid._raw, fake_sweep().recovered)
        side = str(app.query_one("#iv-side-text").render())
        assert "saved without a side-by-side" in side
