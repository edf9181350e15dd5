"""The diagnostics view (key !): the list shows a planted trace's findings, Enter moves the
app-wide cursor to a finding's cell in its view, `r` says `view` mode has no model and runs
the full check on a live tiny model (progress, Esc cancels), texts from the model are shown
escaped, and an SVG snapshot of the drawn view."""

from __future__ import annotations

import numpy as np
import pytest

from _fixtures_app import SCAN_FIXTURE, synthetic_trace, tiny_llama_bundle, wait_until
from neuroscope_tui.analysis.diagnostics.findings import Cell, DiagnosticReport, Finding, Skipped
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.views.diagnostics import DiagnosticsView, FindingList
from neuroscope_tui.tui.views.diagnostics_work import Checked, destination, detail_text, list_item
from test_app_live import SIZE

HOSTILE = "'\x1b[31m[bold]x[/]'"  # a token text as a title quotes it


def hand_made(prompts: list[str], *, full: bool = True) -> Checked:
    """Three findings (a massive activation, a sink head, a NaN) and one skipped detector."""
    ratio = [1.0, 2.0, 150.0, 3000.0, 2500.0, float("nan")]
    findings = [
        Finding(
            "numerics", "error", f"NaN in the residual stream at token {HOSTILE}",
            "A NaN spreads to everything after it.",
            cells=[Cell("scan", layer=4, token=2, prompt=0)], figures={"count": 3},
        ),
        Finding(
            "massive_activations", "info",
            "Residual dimension 5 reaches 3,412 at the first token, 3,000x the layer's median",
            "Most trained transformers have a few massive dimensions.",
            cells=[Cell("scan", layer=3, token=0, prompt=0, dimension=5)],
            figures={"peak": 3412.0, "ratio": 3000.0, "layers": [2, 3, 4]},
            series={"max |x| / median": ratio},
        ),
        Finding(
            "attention_sinks", "info", "Head L2.H1 puts 95% of its weight on the first token",
            "Attention sinks park attention no head needs.",
            cells=[Cell("heads", layer=2, head=1, token=0, prompt=1)],
            figures={"first": 0.95},
        ),
    ]  # fmt: skip
    report = DiagnosticReport(
        "synthetic-6L", len(prompts), findings=findings,
        skipped=[Skipped("gradient_health", "gradients need the live model.")],
        ran=["numerics", "massive_activations", "attention_sinks"],
    )  # fmt: skip
    return Checked(report, prompts, full=full)


async def show_hand_made(pilot) -> None:
    app = pilot.app
    await pilot.press("exclamation_mark")
    await pilot.pause()
    view = app.query_one(DiagnosticsView)
    await wait_until(lambda: not view.quick_pending)
    view.show_checked(hand_made([app.shown.prompt, "Another prompt of the set."]))
    await pilot.pause()


def view_app() -> NeuroscopeApp:
    return NeuroscopeApp(snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE))


@pytest.mark.anyio
async def test_the_list_and_the_detail_pane_show_the_findings():
    app = view_app()
    async with app.run_test(size=SIZE) as pilot:
        await show_hand_made(pilot)
        listing = app.query_one(FindingList)
        assert listing.option_count == 3 and listing.highlighted == 0
        first = str(listing.get_option_at_index(0).prompt)
        assert "error" in first and "\\x1b[31m[bold]x[/]" in first and "\x1b" not in first
        detail = app.query_one("#diag-detail").render()
        assert "count: 3" in str(detail) and "A NaN spreads" in str(detail)
        assert "gradients need the live model" in str(app.query_one("#diag-skipped").render())
        assert "1 error" in str(app.query_one("#diag-status").render())
        await pilot.press("down")
        await pilot.pause()
        assert "peak: 3,412" in str(app.query_one("#diag-detail").render())


@pytest.mark.anyio
async def test_enter_moves_to_the_scan_at_the_layer_and_token():
    app = view_app()
    async with app.run_test(size=SIZE) as pilot:
        await show_hand_made(pilot)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.current_view == "scan"
        assert (app.selection.layer, app.selection.token) == (3, 0)
        heatmap = app.query_one("#view-scan").heatmap
        assert heatmap.cursor == (app.shown.layers().index(3), 0)


@pytest.mark.anyio
async def test_a_finding_of_another_prompt_moves_only_the_layer_and_head():
    app = view_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("right", "right")  # the cursor sits on token 2
        await show_hand_made(pilot)
        token = app.selection.token
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert app.current_view == "heads"
        assert (app.selection.layer, app.selection.head, app.selection.token) == (2, 1, token)
        notices = [n.message for n in app._notifications]
        assert any("not the run on screen" in m for m in notices)


@pytest.mark.anyio
async def test_r_in_view_mode_says_the_full_check_needs_the_model():
    app = view_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("exclamation_mark")
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        view = app.query_one(DiagnosticsView)
        assert "needs the live model" in view.message and not view.busy
        assert any("needs the live model" in n.message for n in app._notifications)


def test_destination_of_a_quick_check_finding_is_the_run_on_screen():
    trace = synthetic_trace()
    checked = hand_made([trace.prompt], full=False)
    where = destination(checked.report.findings[2], checked, trace)
    assert where.view == "heads" and where.changes == {"layer": 2, "head": 1}
    assert "not the run on screen" in where.notice  # prompt 1: not this run
    where = destination(checked.report.findings[1], checked, trace)
    assert where.changes == {"layer": 3, "token": 0} and where.notice == ""


def test_texts_from_the_model_are_never_markup_or_controls():
    checked = hand_made(["p"])
    for finding in checked.report.findings:
        for text in (list_item(finding), detail_text(finding, checked)):
            assert "\x1b" not in text.plain
    assert "[bold]x[/]" in list_item(checked.report.findings[0]).plain


class TestDiagnosticsScreen:
    def test_findings_with_the_detail_and_plot(self, snap_compare):
        async def run_before(pilot):
            await show_hand_made(pilot)
            await pilot.press("down")
            await pilot.pause()

        assert snap_compare(view_app(), terminal_size=SIZE, run_before=run_before)


def test_help_shows_the_key_as_an_exclamation_mark():
    from neuroscope_tui.tui.help import key_rows

    rows = dict((what, key) for key, what in key_rows(NeuroscopeApp.BINDINGS))
    assert rows["Diagnostics"] == "!"


# ---- with the detectors: a planted trace, and the full check on a live tiny model ----------


def planted_trace():
    """The synthetic trace with full residual rows at layers 1 and 3 where dimension 5 reaches
    thousands of times the layer's median at the first token, and no head that sinks."""
    trace = synthetic_trace()
    rng = np.random.default_rng(1)
    resid = rng.normal(size=(2, trace.n_tokens, 16)).astype(np.float32)
    resid[1, 0, 5] = 5000.0  # layer 3 (the second full layer), token 0
    trace.arrays["resid.full"] = resid
    trace.token_text[0] = "\x1b[31m[/]"  # the finding quotes it: shown escaped, not markup
    for score in ("first", "prev", "self", "dup", "induction"):
        trace.arrays[f"heads.{score}"] = np.full_like(trace.arrays[f"heads.{score}"], 0.1)
    return trace


@pytest.mark.anyio
async def test_a_planted_massive_activation_is_listed_and_enter_goes_to_it():
    app = NeuroscopeApp(snapshot=planted_trace(), snapshot_path=str(SCAN_FIXTURE))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("exclamation_mark")
        view = app.query_one(DiagnosticsView)
        await wait_until(lambda: view.quick is not None or view.message)
        await pilot.pause()
        assert view.quick is not None, view.message
        found = view.quick.report.findings
        massive = [i for i, f in enumerate(found) if f.detector == "massive_activations"]
        assert massive, [f.title for f in found]
        assert found[massive[0]].cells[0].dimension == 5
        assert "5,000" in found[massive[0]].title  # the planted value
        skipped = {s.detector for s in view.quick.report.skipped}
        assert skipped == {"gradient_health"}  # dead neurons: counted from neurons.full
        assert "needs the live model" in str(app.query_one("#diag-skipped").render())
        listing = app.query_one(FindingList)
        listing.highlighted = massive[0]
        await pilot.pause()
        detail = str(app.query_one("#diag-detail").render())
        assert "[/]" in detail and "\x1b" not in detail and "\\x1b" in detail
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_view == "scan"
        assert (app.selection.layer, app.selection.token) == (3, 0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.mark.anyio
async def test_r_runs_the_full_check_with_progress(tiny, tmp_path):
    from neuroscope_tui.prompt_sets import default_prompts

    app = NeuroscopeApp(model=tiny, save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.action_show_view("diagnostics")  # the prompt box holds the keys before a run
        await pilot.pause()
        view = app.query_one(DiagnosticsView)
        seen: list[tuple[float, str]] = []
        shown = view._long_task_progress
        view._long_task_progress = lambda t, f, text: (seen.append((f, text)), shown(t, f, text))
        view.action_full_check()
        assert view.busy
        await wait_until(lambda: not view.busy, timeout=300)
        await pilot.pause()
        assert view.full is not None, view.message
        assert view.full.report.n_prompts == len(default_prompts())
        assert "dead_neurons" in view.full.report.ran
        assert seen and max(f for f, _ in seen) > 0.5
        status = str(app.query_one("#diag-status").render())
        assert f"full check over {len(default_prompts())} prompts" in status


@pytest.mark.anyio
async def test_escape_cancels_the_full_check(tiny, tmp_path):
    app = NeuroscopeApp(model=tiny, save_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.action_show_view("diagnostics")
        await pilot.pause()
        view = app.query_one(DiagnosticsView)
        view.focus()
        app.engine.lock.acquire()  # keep the worker busy so the task is still waiting
        try:
            view.action_full_check()
            assert view.busy
            app.prompt_asked = False
            app.query_one(FindingList).focus()
            await pilot.press("escape")
            await pilot.pause()
        finally:
            app.engine.lock.release()
        assert not view.busy and view.message == "full check cancelled"
        await pilot.pause(0.5)
        assert view.full is None
