"""The diagnostics view (key !): the list shows a planted trace's findings, Enter moves the
app-wide cursor to a finding's cell in its view, `r` says `view` mode has no model and runs
the full check on a live tiny model (progress, Esc cancels), texts from the model are shown
escaped, and an SVG snapshot of the drawn view."""

from __future__ import annotations

import pytest

from _fixtures_app import SCAN_FIXTURE, synthetic_trace
from neuroscope_tui.analysis.diagnostics.findings import Cell, DiagnosticReport, Finding, Skipped
from neuroscope_tui.tui.app import NeuroscopeApp
from neuroscope_tui.tui.views.diagnostics import DiagnosticsView, FindingList
from neuroscope_tui.tui.views.diagnostics_work import Checked, destination, detail_text, list_item
from test_app_live import SIZE, wait_for

HOSTILE = "'\x1b[31m[bold]x[/]'"  # a token text as a title quotes it


@pytest.fixture
def anyio_backend():
    return "asyncio"


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
    await wait_for(pilot, lambda: not view.quick_pending)
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
