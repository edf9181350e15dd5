"""drift_file.py: a drift comparison survives a save and a load exactly, and every way a
drift file can be wrong (truncated, wrong shapes, a damaged or missing note, a newer version)
is one SnapshotError sentence, never a traceback."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _fixtures_drift_file import make_result
from neuroscope_tui.cli import main
from neuroscope_tui.drift_file import (
    drift_to_trace,
    is_drift_snapshot,
    load_drift,
    save_drift,
)
from neuroscope_tui.errors import OutputPathError, SnapshotError
from neuroscope_tui.snapshot import load_snapshot, save_snapshot


def _same_trace(a, b) -> None:
    assert a.model == b.model and a.spec == b.spec
    assert a.token_ids == b.token_ids and a.token_text == b.token_text
    assert a.n_prompt == b.n_prompt and a.prompt == b.prompt
    assert a.finished == b.finished and a.stop_reason == b.stop_reason
    assert a.notes == b.notes
    assert sorted(a.arrays) == sorted(b.arrays)
    for name in a.arrays:
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
        assert a.arrays[name].dtype == b.arrays[name].dtype
    assert sorted(a.extras) == sorted(b.extras)
    for name in a.extras:
        np.testing.assert_array_equal(a.extras[name], b.extras[name])


@pytest.mark.parametrize("traces", [True, False])
def test_round_trip_keeps_everything(tmp_path, traces):
    result = make_result(traces=traces)
    path = save_drift(result, tmp_path / "d.nscope")
    back = load_drift(path)
    assert back.base == result.base and back.checkpoints == result.checkpoints
    assert back.prompts == result.prompts and back.modules == result.modules
    assert (back.n_layers, back.n_heads, back.d_mlp) == (3, 2, 5)
    assert back.head_types == result.head_types and back.skipped == result.skipped
    assert back.model == result.model and back.version == result.version
    assert sorted(back.arrays) == sorted(result.arrays)
    for name, arr in result.arrays.items():
        np.testing.assert_array_equal(back.arrays[name], arr)
        assert back.arrays[name].dtype == arr.dtype
    assert len(back.traces) == len(result.traces)
    for a, b in zip(result.traces, back.traces, strict=True):
        _same_trace(a, b)


def test_saving_leaves_the_base_trace_alone_and_view_opens_it(tmp_path, capsys):
    result = make_result()
    before = dict(result.traces[0].extras), dict(result.traces[0].notes)
    path = save_drift(result, tmp_path / "d.nscope")
    assert (dict(result.traces[0].extras), dict(result.traces[0].notes)) == before
    snap = load_snapshot(path)  # what `view` reads: an ordinary snapshot of the base's run
    assert is_drift_snapshot(snap) and snap.token_text == result.traces[0].token_text
    assert not is_drift_snapshot(result.traces[0])
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "resid.norm" in out
    assert "drift of 2 checkpoint(s) against 'base' on 2 prompt(s): checkpoint-100, " in out


def test_an_existing_file_needs_force(tmp_path):
    path = save_drift(make_result(), tmp_path / "d.nscope")
    with pytest.raises(OutputPathError, match="--force"):
        save_drift(make_result(), path)
    save_drift(make_result(seed=3), path, force=True)
    np.testing.assert_array_equal(
        load_drift(path).arrays["cka.base"], make_result(seed=3).arrays["cka.base"]
    )


def test_an_inconsistent_result_is_not_written(tmp_path):
    result = make_result()
    result.arrays["cka.base"] = result.arrays["cka.base"][:, :2]
    with pytest.raises(ValueError, match=r"cka\.base"):
        save_drift(result, tmp_path / "d.nscope")
    assert not list(tmp_path.iterdir())


def test_an_array_a_later_version_adds_is_kept(tmp_path):
    result = make_result()
    result.arrays["neurons.shift.base"] = np.ones((2, 3), np.float32)  # [C, L]: optional
    back = load_drift(save_drift(result, tmp_path / "d.nscope"))
    np.testing.assert_array_equal(back.arrays["neurons.shift.base"], np.ones((2, 3)))


def test_a_normal_snapshot_is_not_a_drift_file(tmp_path):
    path = save_snapshot(make_result().traces[1], tmp_path / "plain.nscope")
    with pytest.raises(SnapshotError, match="holds no drift comparison"):
        load_drift(path)


@pytest.mark.parametrize("keep", [0, 8, 100, 1000, -1, -50])
def test_a_truncated_file_is_one_sentence(tmp_path, keep):
    raw = save_drift(make_result(), tmp_path / "d.nscope").read_bytes()
    cut = tmp_path / "cut.nscope"
    cut.write_bytes(raw[:keep])
    with pytest.raises(SnapshotError):
        load_drift(cut)


def _save_tampered(tmp_path, change) -> object:
    """Save a drift file whose snapshot Trace `change(trace)` has edited."""
    trace = drift_to_trace(make_result())
    change(trace)
    return save_snapshot(trace, tmp_path / "bad.nscope", force=True)


def _drop_note_key(key):
    return lambda t: t.notes["drift"].pop(key)


def _set_note(key, value):
    return lambda t: t.notes["drift"].__setitem__(key, value)


def _set_extra(name, value):
    return lambda t: t.extras.__setitem__(name, value)


HOSTILE = {
    "no checkpoints key": (_drop_note_key("checkpoints"), "notes.drift.checkpoints"),
    "prompts not a list": (_set_note("prompts", "p"), "notes.drift.prompts"),
    "layers a float": (_set_note("n_layers", 3.0), "notes.drift.n_layers"),
    "negative heads": (_set_note("n_heads", -1), "notes.drift.n_heads"),
    "bool version": (_set_note("version", True), "notes.drift.version"),
    "newer version": (_set_note("version", 99), "newer neuroscope-tui"),
    "bad kind": (
        _set_note("base", {"name": "b", "label": "b", "kind": "pickle"}),
        "notes.drift.base.kind",
    ),
    "fewer layers than arrays": (_set_note("n_layers", 2), "shape"),
    "one prompt too many": (_set_note("prompts", ["a", "b", "c"]), "kl."),
    "one module short": (
        lambda t: t.notes["drift"]["modules"].pop(),
        "weights.module",
    ),
    "cka transposed": (
        lambda t: t.extras.__setitem__("drift.cka.base", t.extras["drift.cka.base"].T.copy()),
        "drift array 'cka.base' has shape",
    ),
    "heads of one model too few": (
        lambda t: t.extras.__setitem__("drift.heads.prev", t.extras["drift.heads.prev"][:2]),
        "heads.prev",
    ),
    "array not in the note": (
        _set_extra("drift.cka.extra", np.zeros((2, 3), np.float32)),
        "disagree on the array",
    ),
    "array missing": (
        lambda t: t.extras.pop("drift.cos.prev"),
        "disagree on the array",
    ),
    "split past the layers": (
        _set_extra("drift.lens.split.base", np.array([0, 7], np.int32)),
        "names a layer",
    ),
    "split as fractions": (
        _set_extra("drift.lens.split.base", np.array([0.5, 1], np.float32)),
        "layer numbers",
    ),
    "head type past the heads": (
        _set_note("head_types", [{"0.9": "P"}] * 3),
        "head types name a head",
    ),
    "head types for two models": (_set_note("head_types", [{}] * 2), "head-type maps"),
    "traces skip one": (
        lambda t: t.notes["drift"]["traces"].pop(0),
        "keeps traces of models",
    ),
    "trace tokens mismatch": (
        lambda t: t.notes["drift"]["traces"][0]["manifest"]["token_text"].pop(),
        "model 1's trace",
    ),
    "trace array wrong length": (
        lambda t: t.extras.__setitem__("drift.trace.2.resid.norm", np.zeros((3, 9), np.float32)),
        "model 2's trace",
    ),
    "trace array unlisted": (
        _set_extra("drift.trace.1.resid.max_abs", np.zeros((3, 4), np.float32)),
        "unlisted array",
    ),
    "trace of another width": (
        lambda t: t.notes["drift"]["traces"][0]["manifest"]["model"].__setitem__("n_layers", 9),
        "model 1's trace",
    ),
    "a new array leading with neither C nor M": (
        lambda t: (
            t.extras.__setitem__("drift.cka.later", np.zeros((5, 3), np.float32)),
            t.notes["drift"]["arrays"].append("cka.later"),
        ),
        "does not lead with the 2 checkpoints or 3 models",
    ),
    "model not a model": (_set_note("model", {"name": 3}), "notes.drift.model"),
    "other traces without the base's": (_set_note("base_trace", False), "not the base's"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_damaged_drift_file_is_one_sentence(tmp_path, case):
    change, words = HOSTILE[case]
    path = _save_tampered(tmp_path, change)
    with pytest.raises(SnapshotError, match=None) as caught:
        load_drift(path)
    text = str(caught.value)
    assert words in text
    assert "\n" not in text
    assert text.startswith(str(path))


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    key=st.sampled_from(
        [
            "version",
            "base",
            "checkpoints",
            "prompts",
            "n_layers",
            "n_heads",
            "d_mlp",
            "arrays",
            "modules",
            "head_types",
            "skipped",
            "model",
            "base_trace",
            "traces",
        ]
    ),
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**40), 2**40)
        | st.floats()
        | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=8,
    ),
)
def test_any_value_in_the_note_loads_or_is_one_sentence(tmp_path, key, value):
    trace = drift_to_trace(make_result())
    note = copy.deepcopy(trace.notes["drift"])
    note[key] = json.loads(json.dumps(value, allow_nan=True))
    trace.notes = {**trace.notes, "drift": note}
    path = save_snapshot(trace, tmp_path / "f.nscope", force=True)
    try:
        load_drift(path)
    except SnapshotError as err:
        assert "\n" not in str(err)
