"""The one check when a snapshot is opened (snapshot_manifest.py, safetensors_file.py): every
hostile manifest and header the hardening issue found is one sentence and exit 2 from `info`,
`view` and `export`, before any array is read; a FIFO is refused without hanging."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from _fixtures_e2e import error_sentence, run_cli
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.snapshot import load_snapshot, read_manifest

GOOD = Path(__file__).parent / "data" / "connect_tiny.nscope"


def _parts() -> tuple[dict, bytes]:
    data = GOOD.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def write(path: Path, header: dict, manifest_text: str | None = None) -> Path:
    """A copy of the good snapshot with `header` (and, if given, a raw manifest string)."""
    _, data = _parts()
    header = json.loads(json.dumps(header))
    if manifest_text is not None:
        header["__metadata__"] = {"neuroscope": manifest_text}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def manifest_with(change) -> str:
    header, _ = _parts()
    manifest = json.loads(header["__metadata__"]["neuroscope"])
    change(manifest)
    return json.dumps(manifest)


def header_with(name: str, key: str, value) -> dict:
    header, _ = _parts()
    header[name][key] = value
    return header


def _set(*path_and_value):
    *path, value = path_and_value

    def change(m):
        for key in path[:-1]:
            m = m[key]
        m[path[-1]] = value

    return change


GOOD_HEADER, _ = _parts()
MANIFEST = GOOD_HEADER["__metadata__"]["neuroscope"]

# name -> (header, manifest text or None, words the sentence must hold)
HOSTILE = {
    "infinity_token_id": (None, manifest_with(_set("token_ids", 0, float("inf"))), "token_ids.0"),
    "nan_n_prompt": (None, manifest_with(_set("n_prompt", float("nan"))), "n_prompt"),
    "infinity_offset": (
        header_with("resid.norm", "data_offsets", [float("inf"), 4]),
        None,
        "data_offsets",
    ),
    "arrays_7": (None, manifest_with(_set("arrays", 7)), "arrays: input should be a valid list"),
    "metadata_string": ({**GOOD_HEADER, "__metadata__": "x"}, None, "metadata"),
    "deep_nesting": (None, '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    "huge_integer": (
        None,
        MANIFEST.replace('"n_prompt": ', '"n_prompt": ' + "9" * 5000 + ', "x": '),
        "5000 digits",
    ),
    "text_extras_without_values": (
        None,
        manifest_with(_set("text_extras", {"labels": {"shape": [2]}})),
        "text_extras.labels.values",
    ),
    "text_extras_wrong_shape": (
        None,
        manifest_with(_set("text_extras", {"labels": {"shape": [3], "values": ["a"]}})),
        "does not have the shape",
    ),
    "attribution_methods_list": (
        None,
        manifest_with(_set("notes", "attribution", {"methods": []})),
        "notes.attribution.methods",
    ),
    "n_layers_past_the_arrays": (
        None,
        manifest_with(_set("model", "n_layers", 50)),
        "has 3 layers where the manifest says 50",
    ),
    "n_layers_huge": (None, manifest_with(_set("model", "n_layers", 10**8)), "model.n_layers"),
    "n_heads_past_the_arrays": (None, manifest_with(_set("model", "n_heads", 9)), "for 9 heads"),
    "id_text_key_not_a_number": (
        None,
        manifest_with(_set("notes", "id_text", "1x", "a")),
        "notes.id_text",
    ),
    "spec_top_k_text": (None, manifest_with(_set("spec", "top_k", "10")), "spec.top_k"),
    "spec_pattern_head_pair": (None, manifest_with(_set("spec", "pattern_heads", [[1]])), "spec"),
    "finished_as_text": (None, manifest_with(_set("finished", "no")), "finished"),
    "model_name_missing": (None, manifest_with(lambda m: m["model"].pop("name")), "model.name"),
    "tokens_and_texts_differ": (
        None,
        manifest_with(lambda m: m["token_text"].pop()),
        "18 token ids but 17 token texts",
    ),
    "unknown_dtype": (header_with("resid.norm", "dtype", "Q9"), None, "unknown dtype"),
    "shape_and_size_differ": (header_with("resid.norm", "shape", [3, 17]), None, "bytes for shape"),
    "negative_shape": (header_with("resid.norm", "shape", [-3, 18]), None, "shape.0"),
    "overlapping_offsets": (
        header_with("attn.max_abs", "data_offsets", [216, 432]),
        None,
        "overlaps another or leaves a gap",
    ),
    "pattern_name_not_a_layer": (
        {
            **{k: v for k, v in GOOD_HEADER.items() if k != "pattern.0.-1"},
            "pattern.x.-1": GOOD_HEADER["pattern.0.-1"],
        },
        manifest_with(
            lambda m: m.update(
                arrays=[a if a != "pattern.0.-1" else "pattern.x.-1" for a in m["arrays"]]
            )
        ),
        "names no layer",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_manifest_is_one_sentence_before_any_array_is_read(tmp_path, case, monkeypatch):
    header, text, words = HOSTILE[case]
    bad = write(tmp_path / "bad.nscope", header or GOOD_HEADER, text)
    import safetensors

    def no_reading(*args, **kwargs):
        raise AssertionError("an array was read before the manifest was checked")

    monkeypatch.setattr(safetensors, "safe_open", no_reading)
    for reader in (read_manifest, load_snapshot):
        with pytest.raises(SnapshotError) as info:
            reader(bad)
        message = str(info.value)
        assert words in message, message
        assert "\n" not in message and len(message) < 400


def test_unknown_keys_are_ignored_for_a_newer_writer(tmp_path):
    def newer_fields(m):
        m["spec"]["sampling"] = {"every": 4}
        m["model"]["rope"] = "yarn"
        m["something_new"] = [1, 2, 3]
        m["spec"]["near_zero"] = 0  # an int where a float is expected is still a number

    path = write(tmp_path / "new.nscope", GOOD_HEADER, manifest_with(newer_fields))
    trace = load_snapshot(path)
    assert trace.n_tokens == 18 and trace.spec.near_zero == 0


def test_control_characters_in_a_bad_key_are_not_echoed(tmp_path):
    text = manifest_with(_set("notes", "id_text", {"\x1b]0;pwned\x07": "a"}))
    path = write(tmp_path / "esc.nscope", GOOD_HEADER, text)
    with pytest.raises(SnapshotError) as info:
        load_snapshot(path)
    assert "\x1b" not in str(info.value) and "\x07" not in str(info.value)


# ---- through the real command ------------------------------------------------------------------

READERS = [("info", "{}"), ("export", "{}", "lens"), ("view", "{}")]
CLI_CASES = ["n_layers_past_the_arrays", "deep_nesting", "huge_integer", "attribution_methods_list"]


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r[0])
@pytest.mark.parametrize("case", CLI_CASES)
def test_hostile_snapshot_through_the_command_is_exit_2(tmp_path, reader, case):
    header, text, words = HOSTILE[case]
    bad = write(tmp_path / "bad.nscope", header or GOOD_HEADER, text)
    proc = run_cli(*[a.format(bad) for a in reader], timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert words in error_sentence(proc.stderr)
    assert proc.stdout == ""


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r[0])
def test_a_fifo_is_refused_without_hanging(tmp_path, reader):
    fifo = tmp_path / "run.nscope"
    os.mkfifo(fifo)
    proc = run_cli(*[a.format(fifo) for a in reader], timeout=30)  # a hang fails by timeout
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "is a FIFO, not a snapshot file" in error_sentence(proc.stderr)


def test_a_device_is_refused(tmp_path):
    with pytest.raises(SnapshotError, match="is a character device, not a snapshot file"):
        load_snapshot("/dev/zero")


def test_attribution_numbers_the_view_reads_are_required_with_attribution_arrays(tmp_path):
    import numpy as np

    from _fixtures_app import synthetic_trace
    from neuroscope_tui.snapshot import save_snapshot

    trace = synthetic_trace()
    trace.notes["attribution"] = {"methods": {"occlusion": {"relative_gap": 0.5}}}
    path = save_snapshot(trace, tmp_path / "notes-only.nscope")
    assert load_snapshot(path).notes["attribution"]  # without arrays, a partial note is fine
    trace.extras["attribution.occlusion"] = np.ones(3, dtype=np.float32)
    path = save_snapshot(trace, tmp_path / "with-arrays.nscope")
    with pytest.raises(SnapshotError, match=r"methods\.'occlusion' lacks f_input"):
        load_snapshot(path)
