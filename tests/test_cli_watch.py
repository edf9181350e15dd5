"""`--watch` / `--watch-full` on `capture` and `info MODEL --modules`, end to end on a tiny
saved model: the snapshot holds the watched rows, a pattern matching nothing is one sentence
(with the closest module names) before any run, and the module tree prints with shapes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from neuroscope_tui.cli import main
from neuroscope_tui.snapshot import load_snapshot
from tiny_models import build_tiny

PROMPT = "The cat sat on the mat"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("llama", tmp_path_factory.mktemp("m") / "llama")


def test_capture_watch_keeps_the_watched_rows(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.nscope"
    argv = ["capture", str(tiny), "--prompt", PROMPT, "--max-new-tokens", "3", "-o", str(out)]
    argv += ["--watch", "model.layers.*.mlp.act_fn", "--watch-full", "model.norm"]
    assert main(argv) == 0
    trace = load_snapshot(out)
    names = trace.notes["watch_modules"]
    assert names == ["model.layers.0.mlp.act_fn", "model.layers.1.mlp.act_fn", "model.norm"]
    assert trace.get("watch.norm").shape == (3, trace.n_tokens)
    assert trace.get("watch.full.2").shape[0] == trace.n_tokens
    assert trace.spec.watch == ("model.layers.*.mlp.act_fn",)
    assert trace.spec.watch_full == ("model.norm",)


def test_capture_refuses_a_pattern_matching_nothing(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "none.nscope"
    argv = ["capture", str(tiny), "--prompt", PROMPT, "-o", str(out), "--watch", "*.mlp.actfn"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert last.startswith("neuroscope-tui: --watch *.mlp.actfn matches no module"), last
    assert "model.layers.0.mlp.act_fn" in last
    assert not out.exists()


def test_info_modules_prints_the_tree_with_shapes(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(tiny), "--modules"]) == 0
    text = capsys.readouterr().out
    lines = {line.split()[-1]: line for line in text.splitlines()}
    assert "model.layers.1.mlp.act_fn" in lines
    mlp = lines["model.layers.0.mlp"]
    # [batch, tokens of the short prompt, d_model]
    assert "LlamaMLP" in mlp and re.search(r"\[1, \d+, 32\]", mlp)
    # children are indented under their parent
    assert lines["model.layers.0.mlp.down_proj"].startswith("        down_proj")
    assert main(["info", str(tiny), "--modules", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["model.norm"]["shape"][0] == 1 and by_name["model.norm"]["class"]
    assert by_name["model.layers.0.mlp.down_proj"]["params"] > 0


def test_the_live_command_takes_watch_and_refuses_a_pattern_matching_nothing(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from neuroscope_tui.cli import live

    parser = argparse.ArgumentParser()
    live.add_arguments(parser)
    args = parser.parse_args([str(tiny), "--watch", "*.mlp", "--watch-full", "model.norm"])
    gen = live.generation_options(args)
    assert gen["watch"] == ("*.mlp",) and gen["watch_full"] == ("model.norm",)
    # without a terminal the live command prints the run: the pattern is still checked
    argv = [str(tiny), "--prompt", PROMPT, "--max-new-tokens", "1", "--watch", "*.mlpp"]
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--watch *.mlpp matches no module" in last and "model.layers.0.mlp" in last
