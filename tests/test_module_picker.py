"""The module picker (key M): a tree of the live model's modules with check boxes; Space
checks, Enter applies to the next run (which then watches those modules), Escape cancels.
Also its helpers: names as exact patterns, and how watch_full survives a pick."""

from __future__ import annotations

import pytest

from _fixtures_app import wait_until
from neuroscope_tui.analysis.metrics import METRICS
from neuroscope_tui.tui.module_picker import ModulePicker, ModuleTree, as_pattern, next_watch
from test_app_live import SIZE, live_app, run_prompt, tiny  # noqa: F401

pytestmark = pytest.mark.anyio
ACT = ["model.layers.0.mlp.act_fn", "model.layers.1.mlp.act_fn"]


@pytest.fixture(autouse=True)
def metrics_restored():
    """The scan registers watch metrics in the global cycle: leave it as other tests find it."""
    before = dict(METRICS)
    yield
    METRICS.clear()
    METRICS.update(before)


def test_names_become_exact_patterns_and_full_rows_stay_with_checked_modules() -> None:
    assert as_pattern("a.b[0]*") == "a.b[[]0][*]"
    names = ["m.norm", "m.a", "m.b"]
    got = next_watch(["m.b", "m.norm"], names, watch_full=("m.nor*",))
    assert got == {"watch": ("m.b",), "watch_full": ("m.norm",)}
    assert next_watch([], names, ("m.norm",)) == {"watch": (), "watch_full": ()}
    # every layer's copy checked: one pattern, so the scan shows it as one layer metric
    layers = ["m.h.0.mlp", "m.h.0.attn", "m.h.1.mlp", "m.h.1.attn", "m.h.2.mlp"]
    got = next_watch(["m.h.0.mlp", "m.h.1.mlp", "m.h.2.mlp", "m.h.0.attn"], layers, ())
    assert got["watch"] == ("m.h.*.mlp", "m.h.0.attn")
    assert next_watch(["m.h.0.mlp", "m.h.1.mlp"], layers, ())["watch"] == ("m.h.0.mlp", "m.h.1.mlp")


async def check(pilot, tree: ModuleTree, name: str) -> None:
    """Move the cursor to module `name` (opening its branch) and press Space."""
    node = tree.reveal(name)
    await pilot.pause()
    tree.move_cursor(node)
    await pilot.pause()
    assert tree.cursor_node is node
    await pilot.press("space")


async def test_picker_checks_applies_to_the_next_run_and_cancels(tiny, tmp_path) -> None:  # noqa: F811
    app = live_app(tiny, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await run_prompt(pilot, app, "The cat")
        assert "watch_modules" not in app.shown.notes
        await pilot.press("M")
        await pilot.pause()
        assert isinstance(app.screen, ModulePicker)
        tree = app.screen.query_one(ModuleTree)
        assert app.focused is tree
        for name in ACT:
            await check(pilot, tree, name)
        assert str(tree._by_name[ACT[0]].label) == "[x] act_fn"
        assert "2 modules checked" in str(app.screen.query_one("#picker-count").render())
        await check(pilot, tree, "model.norm")
        await check(pilot, tree, "model.norm")  # unchecked again
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ModulePicker)
        assert app.generation["watch"] == ("model.layers.*.mlp.act_fn",)
        await run_prompt(pilot, app, " sat")
        trace = app.shown
        assert trace.notes["watch_modules"] == ACT
        assert trace.get("watch.norm").shape == (2, trace.n_tokens)
        assert "watch:model.layers.*.mlp.act_fn:norm" in METRICS  # the scan drew it

        # reopened: the watched modules are checked; Escape leaves them as they were
        await pilot.press("M")
        await pilot.pause()
        tree = app.screen.query_one(ModuleTree)
        assert tree.checked == set(ACT)
        await check(pilot, tree, ACT[0])
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ModulePicker)
        assert app.generation["watch"] == ("model.layers.*.mlp.act_fn",)


async def test_the_picker_key_is_in_the_help_and_the_palette(tiny, tmp_path) -> None:  # noqa: F811
    app = live_app(tiny, tmp_path)
    async with app.run_test(size=SIZE):
        await wait_until(lambda: app.engine.model is not None)
        keys = [
            (b.key, b.description)
            for title, _, bindings in app.key_sections()
            if title == "everywhere"
            for b in bindings
        ]
        assert ("M", "modules to watch") in keys
        from neuroscope_tui.tui.commands import ActionCommands

        names = [c.name for c in ActionCommands(app.screen)._commands()]
        assert "modules to watch" in names


async def test_without_a_model_the_key_says_so() -> None:
    from _fixtures_app import synthetic_trace
    from neuroscope_tui.tui.app import NeuroscopeApp

    app = NeuroscopeApp(snapshot=synthetic_trace())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("M")
        await pilot.pause()
        assert not isinstance(app.screen, ModulePicker)
        notes = [n.message for n in app._notifications]
        assert "there is no model here to watch modules of" in notes


async def test_a_watch_pattern_matching_nothing_fails_the_run_in_one_sentence(tiny, tmp_path):  # noqa: F811
    """--watch on the live command: planned (sampling, memory) then refused before the run."""
    from neuroscope_tui.capture.sampling import Sampling

    gen = {"max_new_tokens": 2, "sampling": Sampling(), "watch": ("*.mlp.actfn",)}
    app = live_app(tiny, tmp_path, generation=gen)
    async with app.run_test(size=SIZE) as pilot:
        await run_prompt(pilot, app, "The cat")
        assert app.figures.state == "failed"
        notes = [n.message for n in app._notifications]
        assert any(
            "--watch *.mlp.actfn matches no module" in n and "model.layers.0.mlp.act_fn" in n
            for n in notes
        ), notes
        # the same app, the pattern fixed: the run watches (through the memory plan too)
        app.generation["watch"] = ("*.mlp.act_fn",)
        await run_prompt(pilot, app, " sat")
        assert app.figures.state.startswith("done")
        assert app.shown.get("watch.norm").shape[0] == 2
