"""SVG snapshots of the main screen (pytest-textual-snapshot) from the synthetic fixture.

Update after an intended change with `pytest tests/test_app_snapshots.py --snapshot-update`
and look at the report before committing the new SVGs.
"""

from __future__ import annotations

from _fixtures_app import SCAN_FIXTURE, synthetic_trace
from neuroscope_tui.tui.app import NeuroscopeApp

SIZE = (120, 40)


def fixture_app() -> NeuroscopeApp:
    return NeuroscopeApp(snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE))


class TestScanScreen:
    def test_opens_on_the_scan(self, snap_compare):
        assert snap_compare(fixture_app(), terminal_size=SIZE)

    def test_cursor_metric_and_normalisation(self, snap_compare):
        keys = ["down", "down", "down", "right"] + ["right"] * 5 + ["m", "m", "n"]
        assert snap_compare(fixture_app(), terminal_size=SIZE, press=keys)

    def test_smallest_layout(self, snap_compare):
        assert snap_compare(fixture_app(), terminal_size=(80, 24), press=["end"])


class TestScreensOverTheScan:
    def test_help(self, snap_compare):
        assert snap_compare(fixture_app(), terminal_size=SIZE, press=["question_mark"])

    def test_too_small(self, snap_compare):
        assert snap_compare(fixture_app(), terminal_size=(70, 20))


def loading_app(*posts) -> NeuroscopeApp:
    """The live app whose model load only posts `posts` (made from the app's own post) and
    never finishes: the screen while a model loads, without torch or a model."""
    app = NeuroscopeApp(model_name="smollm2", load_options={})
    app.engine.load = lambda name, options: [app.engine.post(message) for message in posts]
    return app


class TestWhileTheModelLoads:
    def test_typing_and_a_queued_prompt(self, snap_compare):
        from neuroscope_tui.tui.messages import LoadProgress

        app = loading_app(LoadProgress("loading the cached weights"))
        keys = [*"The capital of France is", "enter"]
        assert snap_compare(app, terminal_size=SIZE, press=keys)

    def test_a_load_failure(self, snap_compare):
        from neuroscope_tui.tui.messages import LoadFailed, LoadProgress

        sentence = (
            "could not load smollm2 (HeaderTooLarge); its files may be damaged or incomplete: "
            "save or download them again"
        )
        app = loading_app(LoadProgress("loading the cached weights"), LoadFailed(sentence))
        assert snap_compare(app, terminal_size=SIZE)
