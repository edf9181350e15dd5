"""A tiny llama run shared by this area's tests: 3 layers, full vectors, head-averaged patterns."""

from __future__ import annotations

from functools import lru_cache

PROMPT = "The cat sat on the mat and the cat looked at the dog"
N_LAYERS = 3


@lru_cache(maxsize=1)
def tiny_bundle():
    """A tiny random llama as a LoadedModel (built in memory, float32, cpu)."""
    from tiny_models import tiny_bundle as build

    return build("llama", num_hidden_layers=N_LAYERS)


def tiny_trace(prompt: str = PROMPT, max_new_tokens: int = 4):
    """A run of the tiny llama with every array this area reads."""
    from neuroscope_tui.capture.run import GenerationOptions, run
    from neuroscope_tui.trace import CaptureSpec

    spec = CaptureSpec(
        full_layers=None, pattern_heads=tuple((layer, -1) for layer in range(N_LAYERS))
    )
    options = GenerationOptions(max_new_tokens=max_new_tokens, stop_at_eos=False)
    return run(tiny_bundle(), prompt, spec, options)


FIXTURE = "connect_tiny.nscope"  # in tests/data; rebuild with `python tests/_fixtures_connect.py`
FIXTURE_B = "connect_tiny_b.nscope"  # a second prompt through the same model, for compare


def fixture_path(name: str = FIXTURE):
    from pathlib import Path

    return Path(__file__).parent / "data" / name


def load_fixture(name: str = FIXTURE):
    """The saved tiny-llama run the view tests draw (no model needed, same on every machine)."""
    from neuroscope_tui.snapshot import load_snapshot

    return load_snapshot(fixture_path(name))


def make_host(view_cls, trace, *, live_model=None, tasks=None):
    """A minimal app around one view that passes selections back like the real app does.

    `live_model` stands in for the app's model; `run_model_task(fn, *args, on_done)` then
    calls `fn(live_model, *args)` at once, records it in `tasks` and hands the result to
    `on_done` on the next turn of the event loop.
    """
    from textual.app import App

    from neuroscope_tui.tui.views.base import SelectionChanged

    class Host(App):
        def __init__(self) -> None:
            super().__init__()
            self.trace = trace
            self.live_model = live_model
            self.tasks = tasks if tasks is not None else []

        def compose(self):
            yield view_cls(id="view")

        def on_mount(self) -> None:
            view = self.query_one("#view")
            view.show_trace(self.trace)
            view.heatmap.focus()

        def on_selection_changed(self, event: SelectionChanged) -> None:
            self.query_one("#view").show_selection(event.selection)

        def run_model_task(self, fn, *args, on_done, **options) -> None:
            # like the real app: the result arrives later, on the UI thread
            self.tasks.append(args)
            result = fn(self.live_model, *args)
            self.call_later(on_done, result)

    return Host()


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(fixture_path().parent.parent))
    from neuroscope_tui.snapshot import save_snapshot

    prompts = {FIXTURE: "The cat sat on the mat and the dog", FIXTURE_B: "A quick brown fox"}
    for name, prompt in prompts.items():
        trace = tiny_trace(prompt, max_new_tokens=4)
        print(save_snapshot(trace, fixture_path(name), force=True), trace.n_tokens, "tokens")
