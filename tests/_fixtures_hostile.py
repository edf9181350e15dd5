"""A run whose every text is hostile: markup, terminal escapes, bidi overrides, NUL bytes.

`hostile_trace()` is the saved tiny-llama fixture run with its token texts, vocabulary texts
(the lens's top-k), model name, notes and attribution target and foil replaced by strings that
would crash Textual's markup parser, run an action, retitle the terminal or reorder the line
if shown raw. The arrays stay the fixture's, so every view has something to draw.
"""

from __future__ import annotations

import numpy as np

# The raw bytes a terminal must never receive from a displayed text.
RAW_CONTROLS = ("\x1b", "\x9b", "\x07", "\x00", "\x7f", "\u202e", "\u2066", "\r")

HOSTILE = [
    "[/]",
    "[bold red]x[/]",
    "[@click=app.quit]",
    "\x1b]0;pwned\x07",
    "\x00",
    "\x1b[2J",
    "\x9b31m",
    "\u202eevil",
    "tail\\",
    "\x7f",
    "\r",
    "\u2066iso",
]

MODEL_NAME = "\x1b]0;pwned\x07[@click=app.quit][/]"
SNAPSHOT_NAME = "pwn\x1b[31m[bold]x[@click=app.quit].nscope"


def hostile_trace():
    """The tiny-llama fixture run with hostile texts everywhere a text is stored."""
    from _fixtures_connect import load_fixture

    trace = load_fixture()
    n = trace.n_tokens
    trace.token_text = [HOSTILE[t % len(HOSTILE)] for t in range(n)]
    trace.token_text[-1] = "[/]"  # the flow view's output position and title
    trace.model.name = MODEL_NAME
    ids = sorted(set(int(i) for i in trace.arrays["lens.top_ids"].ravel()))
    ids += [int(i) for i in trace.token_ids]
    trace.notes["id_text"] = {str(i): HOSTILE[k % len(HOSTILE)] for k, i in enumerate(ids)}
    trace.notes["\x1b[31mnote[/]"] = "[@click=app.quit]\x1b]0;pwned\x07\u202e"
    trace.stop_reason = "\x1b[2J[/]"
    # every head's own pattern, so the heads view draws its axes from the token texts wherever
    # the cursor goes (its keys reach the head grid from the first press)
    heads = [(layer, h) for layer in range(trace.model.n_layers) for h in range(trace.n_heads)]
    for layer, h in heads:
        trace.arrays[f"pattern.{layer}.{h}"] = trace.arrays[f"pattern.{layer}.-1"].copy()
    trace.spec.pattern_heads = (*trace.spec.pattern_heads, *heads)
    n_in = n - 1
    rng = np.random.default_rng(0)
    trace.extras["attribution.occlusion"] = rng.normal(size=n_in).astype(np.float32)
    trace.extras["attribution.integrated_gradients"] = rng.normal(size=n_in).astype(np.float32)
    numbers = {
        "f_input": 2.0, "f_baseline": 1.0, "sum": 1.1, "gap": 0.1, "relative_gap": 0.1,
        "steps": 32, "baseline": "[/]\x1b]0;pwned\x07",
    }  # fmt: skip
    trace.notes["attribution"] = {
        "position": n_in, "n_inputs": n_in, "target_id": 4, "target_text": "[/]",
        "foil_id": 6, "foil_text": "[bold red]x[/]", "foil_given": "[@click=app.quit]",
        "methods": {"occlusion": dict(numbers), "integrated_gradients": dict(numbers)},
    }  # fmt: skip
    add_hostile_interventions(trace)
    return trace


def add_hostile_interventions(trace) -> None:
    """View 9's texts: an intervention quoting a hostile source prompt, a side by side with
    the hostile tokens as the clean run, and a sweep over them with a hostile target."""
    from neuroscope_tui.analysis.intervention_store import store_side_by_side, store_sweep
    from neuroscope_tui.analysis.patching import PatchSweep
    from neuroscope_tui.capture.interventions import Patch, intervention_to_dict

    n = trace.n_tokens
    source = "[@click=app.quit]\x1b]0;pwned\x07"
    trace.interventions = [intervention_to_dict(Patch("resid", 0, (1,), source=source))]
    store_side_by_side(trace, trace, np.linspace(-1, 1, n).astype(np.float32))
    tokens = list(trace.token_text[: trace.n_prompt])
    grid = np.linspace(0, 1, trace.model.n_layers * len(tokens), dtype=np.float32)
    store_sweep(trace, PatchSweep(
        site="resid", rows=[f"L{i}" for i in range(trace.model.n_layers)], tokens=tokens,
        recovered=grid.reshape(trace.model.n_layers, len(tokens)), clean_diff=1.0,
        corrupt_diff=-1.0, target="[/]", foil="[bold red]x", clean=source, corrupt=source,
        partial=False,
    ))  # fmt: skip
