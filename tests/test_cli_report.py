"""`neuroscope-tui report` end to end on a tiny saved model and on snapshots: what it writes
(HTML, Markdown, JSON), and every bad input as one sentence and exit 2, before the model loads,
with no file left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroscope_tui.cli import main

MISSING_MODEL = "no-such-model-anywhere-xyz"  # loading it would fail: a check that runs first


def fails(capsys, argv: list[str], message: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("neuroscope-tui: ") and message in last, last
    assert "\n" not in last
    return last


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("The cat sat on the mat\n# a comment\nOne two three four five\n")
    return path


def test_an_empty_prompt_file_is_refused_before_the_model_loads(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n   \n")
    out = tmp_path / "r.html"
    fails(
        capsys,
        ["report", MISSING_MODEL, "--prompt-file", str(empty), "-o", str(out)],
        "has no prompts",
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("missing-folder/r.html", "does not exist"),
        ("r.pdf", "not .pdf"),
        ("report", "a file without a suffix"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_first(
    tmp_path, capsys, prompts, output, message
):
    argv = ["report", MISSING_MODEL, "--prompt-file", str(prompts), "-o", str(tmp_path / output)]
    fails(capsys, argv, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.txt"]


def test_an_existing_file_or_a_folder_in_the_way(tmp_path, capsys, prompts):
    existing = tmp_path / "r.md"
    existing.write_text("keep me")
    fails(capsys, ["report", MISSING_MODEL, "-o", str(existing)], "pass --force")
    assert existing.read_text() == "keep me"
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "r.html").mkdir()  # a folder where the file should go
    fails(capsys, ["report", MISSING_MODEL, "-o", str(folder / "r.html")], "is a folder")


def test_no_output_and_no_json_is_refused(capsys):
    fails(capsys, ["report", MISSING_MODEL], "give -o report.html")


def test_models_and_snapshots_do_not_mix(tmp_path, capsys):
    snap = tmp_path / "a.nscope"
    snap.write_bytes(b"whatever")
    out = str(tmp_path / "r.html")
    fails(capsys, ["report", MISSING_MODEL, str(snap), "-o", out], "not both")
    fails(capsys, ["report", "gpt2", MISSING_MODEL, "-o", out], "one model at a time")
    fails(
        capsys,
        ["report", str(snap), "--prompt-file", str(snap), "-o", out],
        "snapshots hold their own prompts",
    )


def test_a_file_that_is_not_a_snapshot_is_one_sentence(tmp_path, capsys):
    junk = tmp_path / "junk.nscope"
    junk.write_bytes(b"not safetensors at all")
    out = tmp_path / "r.html"
    fails(capsys, ["report", str(junk), "-o", str(out)], str(junk))
    assert not out.exists()


def test_bad_max_tokens(tmp_path, capsys):
    fails(
        capsys,
        ["report", MISSING_MODEL, "--max-tokens", "0", "-o", str(tmp_path / "r.html")],
        "--max-tokens must be between 1 and",
    )


def test_the_json_is_strict(capsys):
    from neuroscope_tui.cli.report import plain_json

    doc = plain_json({"a": [float("nan"), float("inf"), 1.5], "b": (1, True, None)})
    assert json.loads(json.dumps(doc, allow_nan=False)) == {
        "a": [None, None, 1.5],
        "b": [1, True, None],
    }


# ---- end to end on a tiny model and its snapshots -------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import build_tiny

    return build_tiny("llama", tmp_path_factory.mktemp("m") / "llama")


@pytest.fixture(scope="module")
def snapshots(tiny, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("snaps")
    out = []
    for i, prompt in enumerate(["The cat sat on the mat", "One two three four five six"]):
        path = folder / f"run{i}.nscope"
        argv = ["capture", str(tiny), "--prompt", prompt, "-o", str(path)]
        assert main([*argv, "--max-new-tokens", "2", "--heads", "0.0,1.1"]) == 0
        out.append(path)
    return out


def strict_json(text: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the JSON output")

    return json.loads(text, parse_constant=refuse)


def parse_html(path: Path):
    import html5lib

    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(
        path.read_text(encoding="utf-8")
    )


def test_a_model_report_as_html_and_json(tiny, prompts, tmp_path, capsys):
    from neuroscope_tui.analysis.diagnostics.runner import DETECTORS

    out = tmp_path / "r.html"
    argv = ["report", str(tiny), "--prompt-file", str(prompts), "-o", str(out), "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    doc = strict_json(captured.out)  # stdout holds the JSON only; progress went to stderr
    assert "loading" in captured.err and "wrote the report" in captured.err
    assert doc["n_prompts"] == 2 and doc["prompts"] == [
        "The cat sat on the mat",
        "One two three four five",
    ]
    assert sorted(doc["ran"] + [s["detector"] for s in doc["skipped"]]) == sorted(DETECTORS)
    assert "gradient_health" in doc["ran"]  # the backward pass ran by default
    tree = parse_html(out)
    rows = tree.findall(".//table[@class='summary']/tbody/tr")
    assert len(rows) == len(doc["findings"])
    assert len(tree.findall(".//article")) == len(doc["findings"])
    assert sum(doc["counts"].values()) == len(doc["findings"])


def test_a_markdown_report_without_gradients(tiny, prompts, tmp_path, capsys):
    out = tmp_path / "r.md"
    argv = ["report", str(tiny), "--prompt-file", str(prompts), "-o", str(out), "--no-gradients"]
    assert main(argv) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Diagnostics: ")
    skipped = text[text.index("## Skipped detectors") :]
    assert "gradient\\_health" in skipped and "--no-gradients" in skipped
    # --force is needed to write it again, and then replaces it
    assert main([*argv, "--json"]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_json_alone_uses_the_default_prompt_set(tiny, capsys):
    from neuroscope_tui.prompt_sets import default_prompts

    assert main(["report", str(tiny), "--json", "--no-gradients", "--max-tokens", "8"]) == 0
    doc = strict_json(capsys.readouterr().out)
    assert doc["prompts"] == default_prompts() and doc["n_prompts"] == len(default_prompts())


def test_snapshots_are_reported_without_the_model(snapshots, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", *map(str, snapshots), "-o", str(out), "--json"]) == 0
    doc = strict_json(capsys.readouterr().out)
    assert doc["n_prompts"] == 2
    reasons = {s["detector"]: s["reason"] for s in doc["skipped"]}
    # what only a live model can give is skipped, saying why; dead neurons are counted on the
    # neuron rows the snapshots kept
    assert list(reasons) == ["gradient_health"]
    assert "needs the model" in reasons["gradient_health"]
    assert {"massive_activations", "dead_neurons", "numerics"} <= set(doc["ran"])
    text = "".join(parse_html(out).find(".//section[@id='skipped']").itertext())
    assert "gradient_health" in text and "needs the model" in text


def test_a_snapshot_without_the_arrays_a_detector_needs(tiny, tmp_path, capsys):
    lean = tmp_path / "lean.nscope"
    argv = ["capture", str(tiny), "--prompt", "The cat sat on the mat", "-o", str(lean)]
    assert main([*argv, "--full-layers", "none", "--max-new-tokens", "0"]) == 0
    out = tmp_path / "lean.md"
    assert main(["report", str(lean), "-o", str(out)]) == 0
    assert "skipped" in capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    skipped = text[text.index("## Skipped detectors") : text.index("Ran: ")]
    # no full residual rows: the massive-activation check says what it needs
    assert "massive\\_activations" in skipped and "--full-layers all" in skipped
    assert "dead\\_neurons" in skipped and "gradient\\_health" in skipped
    assert "numerics" in text[text.index("Ran: ") :]


def test_a_snapshot_that_nothing_can_read_is_one_sentence(tiny, tmp_path, capsys):
    sweep = tmp_path / "sweep.nscope"
    clean = "The cat sat on the mat and the cat looked at the dog"
    corrupt = "The dog sat on the mat and the cat looked at the cat"
    assert main(["patch", str(tiny), "--clean", clean, "--corrupt", corrupt, "-o", str(sweep)]) == 0
    out = tmp_path / "r.html"
    fails(capsys, ["report", str(sweep), "-o", str(out)], "nothing can be reported on")
    assert not out.exists()
