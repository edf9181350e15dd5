"""Every user mistake the issues list, through the real command in a fresh process: one
sentence on stderr, exit status 2, never a traceback. None of these load a model (the ones
that do are in test_e2e_models.py), so each call takes a fraction of a second."""

from __future__ import annotations

from pathlib import Path

import pytest

from _fixtures_app import synthetic_trace
from _fixtures_e2e import bad_snapshots, error_sentence, run_cli
from neuroscope_tui.snapshot import save_snapshot
from neuroscope_tui.trace import ModelInfo

# (which damaged snapshot, words its sentence must hold)
BAD_SNAPSHOTS = [
    ("missing", "there is no file"),
    ("folder", "is a folder"),
    ("truncated", "is truncated"),
    ("truncated_header", "is truncated"),
    ("empty", "not a snapshot"),
    ("text", "not a snapshot"),
    ("corrupted", "not a snapshot"),
    ("huge_header", "not a snapshot"),
    ("plain_safetensors", "not a neuroscope snapshot"),
    ("newer", "newer neuroscope-tui (format 99"),
    ("bad_version", "no valid format version"),
    ("missing_array", "lacks the arrays resid.ghost"),
    ("no_model", "damaged manifest"),
    ("inconsistent", "is inconsistent"),
]

# every command that reads a snapshot; {} is the snapshot
READERS = [
    ("info", "--json", "{}"),
    ("export", "{}", "lens", "--format", "json"),
    ("view", "{}"),
    ("compare", "{good}", "{}", "--json"),
]


@pytest.fixture(scope="module")
def snaps(tmp_path_factory) -> dict[str, Path]:
    return bad_snapshots(tmp_path_factory.mktemp("snaps"))


def fill(args, snaps: dict[str, Path], path: Path) -> list[str]:
    return [a.format(path, good=snaps["good"]) for a in args]


@pytest.mark.parametrize("reader", READERS, ids=lambda r: "-".join(r[:2]).replace("{}", "FILE"))
@pytest.mark.parametrize(("bad", "words"), BAD_SNAPSHOTS, ids=[b for b, _ in BAD_SNAPSHOTS])
def test_a_bad_snapshot_is_one_sentence_and_exit_2(snaps, reader, bad, words):
    proc = run_cli(*fill(reader, snaps, snaps[bad]))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    if reader[0] == "compare" and bad in ("missing", "folder"):
        words = "is not a snapshot file"  # compare then reads it as a model-or-file mix-up
    assert words in error_sentence(proc.stderr)
    assert proc.stdout == ""  # nothing half-printed before the error


def test_the_good_snapshot_passes_every_reader_that_has_no_screen(snaps, tmp_path):
    """The control for the table above: the same commands on the intact file succeed."""
    for reader in READERS:
        if reader[0] in ("view", "compare"):
            continue  # view needs a terminal (test_e2e_tui.py); compare needs full vectors
        proc = run_cli(*fill(reader, snaps, snaps["good"]), cwd=tmp_path)
        assert proc.returncode == 0, (reader, proc.stderr)


# export mistakes: (arguments after `export`, words of the sentence); {good} {tmp}
EXPORT_MISTAKES = [
    (["{good}", "nosuchview"], "there is no view 'nosuchview'"),
    (["{good}"], "give a snapshot and a view"),
    ([], "give a snapshot and a view"),
    (["{good}", "heatmap", "-o", "{tmp}/old.csv"], "already exists; pass --force"),
    (["{good}", "heatmap", "-o", "{tmp}/nofolder/out.csv"], "does not exist; create it first"),
    (["{good}", "heatmap", "-o", "{good}/out.csv"], "is a file, not a folder"),
    (["{good}", "heatmap", "-o", "{tmp}/out.txt"], "cannot tell the format"),
    (["{good}", "heatmap", "-o", "{tmp}", "--format", "csv"], "is a folder"),
    (["{good}", "heatmap", "-o", "/proc/out.csv"], "cannot write in the folder /proc"),
    (["{good}", "attribution"], "holds no attributions"),
    (["{good}", "flow"], "attention patterns"),
    (["{bad}", "nosuchview"], "there is no view"),  # the view is checked first, cheaply
]


@pytest.mark.parametrize(("args", "words"), EXPORT_MISTAKES, ids=[w for _, w in EXPORT_MISTAKES])
def test_export_mistakes(snaps, tmp_path, args, words):
    (tmp_path / "old.csv").write_text("keep me\n")
    argv = [a.format(good=snaps["good"], tmp=tmp_path, bad=snaps["truncated"]) for a in args]
    proc = run_cli("export", *argv, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert words in error_sentence(proc.stderr).lower() or words in proc.stderr
    assert (tmp_path / "old.csv").read_text() == "keep me\n"  # never overwritten
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_export_refuses_an_existing_output_before_reading_the_snapshot(snaps, tmp_path):
    """The cheap check comes first: a damaged snapshot plus an existing -o names the -o."""
    (tmp_path / "old.csv").write_text("keep me\n")
    proc = run_cli("export", snaps["truncated"], "heatmap", "-o", tmp_path / "old.csv")
    assert proc.returncode == 2
    assert "already exists" in error_sentence(proc.stderr)


# capture / heads / compare / view / live mistakes caught before any model is loaded
EARLY_MISTAKES = [
    (["capture", "{tiny}", "--prompt", "", "-o", "{tmp}/x.nscope"], "the prompt is empty"),
    (["capture", "{tiny}", "--prompt", "  \n ", "-o", "{tmp}/x.nscope"], "the prompt is empty"),
    (["capture", "{tiny}", "--prompt", "hi", "-o", "{tmp}/old.nscope"], "already exists"),
    (["capture", "{tiny}", "--prompt", "hi", "-o", "{tmp}/no/x.nscope"], "does not exist"),
    (["capture", "{tiny}", "--prompt", "hi", "-o", "{tmp}"], "is a folder"),
    (["capture", "{tiny}", "--prompt", "hi", "-o", "/proc/x.nscope"], "cannot write"),
    (["capture", "{tiny}", "--prompt", "hi", "--heads", "x", "-o", "{tmp}/x.nscope"], "LAYER.HEAD"),
    (
        ["capture", "{tiny}", "--prompt", "hi", "--max-new-tokens", "-3", "-o", "{tmp}/x.nscope"],
        "--max-new-tokens must be 0 or more",
    ),
    (
        ["capture", "{tiny}", "--prompt", "hi", "--temperature", "-1", "-o", "{tmp}/x.nscope"],
        "--temperature",
    ),
    (["capture", "{tiny}", "--prompt", "hi", "--top-p", "2", "-o", "{tmp}/x.nscope"], "--top-p"),
    (
        ["capture", "{tiny}", "--prompt", "hi", "--device", "tpu", "-o", "{tmp}/x.nscope"],
        "--device 'tpu'",
    ),
    (
        ["capture", "{tiny}", "--prompt", "hi", "--attribution", "--foil", "", "-o", "{tmp}/x"],
        "--foil is empty",
    ),
    (
        ["capture", "{tiny}", "--prompt", "hi", "--foil", "x", "-o", "{tmp}/x.nscope"],
        "--foil only means something with --attribution",
    ),
    (
        ["capture", "{tmp}/nosuch", "--prompt", "hi", "-o", "{tmp}/x.nscope"],
        "there is no file or folder",
    ),
    (
        ["capture", "{tmp}/old.nscope", "--prompt", "hi", "-o", "{tmp}/x.nscope"],
        "not a .gguf model",
    ),
    (
        ["capture", "{good}", "--prompt", "hi", "-o", "{tmp}/x.nscope"],
        "is a snapshot, not a model; open it with: neuroscope-tui view",
    ),
    (["{good}"], "is a snapshot, not a model"),  # the live app given a snapshot
    (["heads", "{good}"], "is a snapshot, not a model"),
    (["heads", "{tiny}", "--layer", "-1"], "--layer must be 0 or more"),
    (["heads", "{tiny}", "--top", "0"], "--top must be 1 or more"),
    (["heads", "{tiny}", "--prompt", ""], "--prompt is empty"),
    (["compare", "{good}", "--json"], "compare needs two prompts"),
    (["compare", "{tiny}", "--prompt", "a", "--json"], "exactly two prompts, got 1"),
    (["compare", "{tiny}", "--prompt", "a", "--prompt", "", "--json"], "prompts is empty"),
    (["compare", "{good}", "{good}", "--prompt", "a", "--json"], "not both"),
    (["compare", "{good}", "{other}", "--json"], "different models"),
    (["view", "{good}", "--save-dir", "{tmp}/nofolder"], "is not an existing folder"),
]


@pytest.fixture(scope="module")
def other_model_snapshot(tmp_path_factory) -> Path:
    trace = synthetic_trace()
    trace.model = ModelInfo(**{**trace.model.to_dict(), "name": "another-model"})
    return save_snapshot(trace, tmp_path_factory.mktemp("other") / "other.nscope")


@pytest.mark.parametrize(("args", "words"), EARLY_MISTAKES, ids=[w for _, w in EARLY_MISTAKES])
def test_mistakes_caught_before_loading_a_model(snaps, other_model_snapshot, tmp_path, args, words):
    """{tiny} names a model folder that does not need to be loaded for the mistake to show."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    (tiny / "config.json").write_text("{}")  # never read: each mistake is caught first
    (tmp_path / "old.nscope").write_bytes(b"old")
    argv = [
        a.format(tiny=tiny, tmp=tmp_path, good=snaps["good"], other=other_model_snapshot)
        for a in args
    ]
    proc = run_cli(*argv, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert words in error_sentence(proc.stderr)
    assert (tmp_path / "old.nscope").read_bytes() == b"old"
    assert not (tmp_path / "x.nscope").exists()
