"""`capture --backend nnsight` and `--remote` (cli/backend_options.py, cli/capture_remote.py):
the snapshot equals the native one and opens in every view; every refusal before a model loads
is one sentence and exit 2; a remote run waits, then writes the whole run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from neuroscope_tui.cli import main
from neuroscope_tui.snapshot import load_snapshot, save_snapshot
from neuroscope_tui.trace import HEADS_MISSING_NOTE
from tiny_models import build_tiny

PROMPT = "The cat sat on the mat"
needs_nnsight = pytest.mark.skipif(
    importlib.util.find_spec("nnsight") is None, reason="nnsight is not installed"
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("llama", tmp_path_factory.mktemp("m") / "llama")


def capture(tiny: Path, out: Path, *extra: str) -> int:
    argv = ["capture", str(tiny), "--prompt", PROMPT, "--max-new-tokens", "3", "--device", "cpu"]
    return main([*argv, "--heads", "1.0,0.3", "--full-layers", "1", "-o", str(out), *extra])


def fails(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> str:
    """Exit 2, no traceback, the last stderr line one sentence holding `message`."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("neuroscope-tui: ") and message in last, last
    return last


@needs_nnsight
def test_backend_nnsight_writes_the_native_snapshot(tiny: Path, tmp_path: Path) -> None:
    assert capture(tiny, tmp_path / "native.nscope") == 0
    assert capture(tiny, tmp_path / "nnsight.nscope", "--backend", "nnsight") == 0
    native = load_snapshot(tmp_path / "native.nscope")
    other = load_snapshot(tmp_path / "nnsight.nscope")
    assert other.token_ids == native.token_ids and set(other.arrays) == set(native.arrays)
    for name, value in native.arrays.items():
        np.testing.assert_allclose(other.arrays[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    assert other.notes["backend"] == "nnsight"


def test_backend_nnsight_without_nnsight_says_how_to_install_it(
    tiny, tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "nnsight", None)  # as if it were not installed
    out = tmp_path / "x.nscope"
    last = fails(
        capsys,
        ["capture", str(tiny), "--prompt", "hi", "-o", str(out), "--backend", "nnsight"],
        'pip install "neuroscope-tui[nnsight]"',
    )
    assert not out.exists() and last.endswith('[nnsight]".')
    fails(capsys, ["capture", "gpt2", "--prompt", "hi", "-o", str(out), "--remote"], "nnsight")


@needs_nnsight
def test_refusals_before_the_model_loads(tiny: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out = str(tmp_path / "x.nscope")
    base = ["capture", str(tiny), "--prompt", "hi", "-o", out]
    watch = ["--watch", "model.layers.*.mlp"]
    fails(capsys, [*base, "--backend", "nnsight", *watch], "--watch runs on the native backend")
    fails(capsys, [*base, "--backend", "native", "--remote"], "leave out --backend native")
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    fails(capsys, [*base, "--remote"], "NDIF_API_KEY environment variable")
    monkeypatch.setenv("NDIF_API_KEY", "k")
    fails(capsys, [*base, "--remote", "--temperature", "0.7"], "decodes greedily")
    fails(capsys, [*base, "--remote", "--attribution"], "leave out --remote")
    resample = ["--ablate", "0.1", "--ablate-mode", "resample", "--resample-prompt", "ho"]
    fails(capsys, [*base, "--remote", *resample], "resample needs a second prompt")
    fails(capsys, [*base, "--remote", "--ablate", "0.1", "--side-by-side"], "leave out --remote")
    assert not Path(out).exists()


@needs_nnsight
def test_remote_without_a_network_is_one_sentence(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("NDIF_API_KEY", "k")
    monkeypatch.setenv("NDIF_HOST", "http://127.0.0.1:9")  # nothing listens there
    out = tmp_path / "x.nscope"
    fails(
        capsys,
        ["capture", "gpt2", "--prompt", "hi", "-o", str(out), "--remote"],
        "cannot reach NDIF at http://127.0.0.1:9",
    )
    assert not out.exists()


@needs_nnsight
def test_remote_waits_then_writes_the_whole_run(tiny, tmp_path, capsys, monkeypatch) -> None:
    """The remote flow end to end with NDIF played by this machine: the statuses are shown
    while waiting, then the snapshot holds the whole run and says heads are missing."""
    from neuroscope_tui.capture import remote
    from neuroscope_tui.capture.nnsight_backend import wrap
    from neuroscope_tui.models.loader import load_model

    bundle = load_model(str(tiny), device="cpu", dtype="float32")

    def connect(name, revision=None, *, environ=None):
        return remote.RemoteSession(lm=wrap(bundle), bundle=bundle, key="k", host="local")

    def run_here(session, prompt, spec, options, *, on_status=None, **kw):
        for status in ("QUEUED", "RUNNING"):
            on_status(status)
        ivs = kw.get("interventions", ())
        trace = remote.whole_run(
            session.lm, session.bundle, prompt, spec, options, interventions=ivs
        )
        trace.notes["remote"] = remote.REMOTE_NOTE
        return trace

    monkeypatch.setattr(remote, "connect", connect)
    monkeypatch.setattr(remote, "run_remote", run_here)
    monkeypatch.setenv("NDIF_API_KEY", "k")
    out = tmp_path / "remote.nscope"
    assert capture(tiny, out, "--remote") == 0
    err = capsys.readouterr().err
    assert "NDIF: queued" in err and "NDIF: running" in err
    trace = load_snapshot(out)
    assert trace.n_generated == 3 and trace.notes["remote"] == "ndif"
    assert "attention probabilities" in trace.notes[HEADS_MISSING_NOTE]
    # ablations travel with the request as nnsight edits: the snapshot lists them and they bite
    ablated = tmp_path / "ablated.nscope"
    assert capture(tiny, ablated, "--remote", "--ablate", "0.1", "--ablate-neuron", "1:3") == 0
    assert "intervention: ablate L0.H1 (zero) (an nnsight edit on NDIF)" in capsys.readouterr().err
    changed = load_snapshot(ablated)
    assert [iv["kind"] for iv in changed.interventions] == ["ablate", "ablate"]
    assert not np.allclose(changed.get("resid.norm"), trace.get("resid.norm"))


@needs_nnsight
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_snapshots_from_either_path_open_in_every_view(tmp_path: Path) -> None:
    """A token-by-token nnsight run and a one-request run (no head scores) open in every
    view; the heads view says why the second has no head scores."""
    from textual.widgets import Static

    from neuroscope_tui.capture.nnsight_backend import run_nnsight, wrap
    from neuroscope_tui.capture.remote import whole_run
    from neuroscope_tui.capture.run import GenerationOptions
    from neuroscope_tui.trace import CaptureSpec
    from neuroscope_tui.tui.app import NeuroscopeApp
    from neuroscope_tui.tui.views.registry import VIEWS
    from tiny_models import tiny_bundle

    bundle = tiny_bundle("llama")
    spec = CaptureSpec(full_layers=None, pattern_heads=((0, 1),))
    options = GenerationOptions(max_new_tokens=3)
    runs = {
        "steps": run_nnsight(bundle, PROMPT, spec, options),
        "request": whole_run(wrap(bundle), bundle, PROMPT, spec, options),
    }
    for name, trace in runs.items():
        path = tmp_path / f"{name}.nscope"
        save_snapshot(trace, path)
        loaded = load_snapshot(path)
        app = NeuroscopeApp(snapshot=loaded, snapshot_path=str(path), save_dir=tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            for entry in VIEWS:
                await pilot.press(entry.key)
                await pilot.pause()
                assert app.current_view == entry.name, (name, entry.name)
            await pilot.press("2")
            await pilot.pause()
            summary = str(app.query_one("#head-summary", Static).render())
            if name == "request":
                assert "no attention head scores: head scores and attention patterns" in summary
            else:
                assert "no attention head scores" not in summary
