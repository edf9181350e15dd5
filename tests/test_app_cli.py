"""`neuroscope-tui [MODEL]` and `neuroscope-tui view FILE`: what fails before the screen starts,
and the rule that the app and `view` never import torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from _fixtures_app import SCAN_FIXTURE
from neuroscope_tui.cli import main


def one_sentence(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("neuroscope-tui: ")
    return lines[0]


def test_view_of_a_corrupted_file_is_one_sentence(tmp_path, capsys):
    bad = tmp_path / "bad.nscope"
    data = SCAN_FIXTURE.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated
    assert main(["view", str(bad)]) == 2
    assert str(bad) in one_sentence(capsys.readouterr().err)


def test_view_of_a_missing_or_foreign_file(tmp_path, capsys):
    assert main(["view", str(tmp_path / "nope.nscope")]) == 2
    one_sentence(capsys.readouterr().err)
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    assert main(["view", str(junk)]) == 2
    one_sentence(capsys.readouterr().err)


def test_view_with_a_missing_save_dir(tmp_path, capsys):
    assert main(["view", str(SCAN_FIXTURE), "--save-dir", str(tmp_path / "no")]) == 2
    assert "--save-dir" in one_sentence(capsys.readouterr().err)


def test_live_with_a_missing_model_path_fails_before_the_screen(tmp_path, capsys):
    assert main([str(tmp_path / "no-such-model")]) == 2
    assert "no-such-model" in one_sentence(capsys.readouterr().err)


@pytest.mark.parametrize(
    "args", [["--top-p", "0"], ["--temperature", "-1"], ["--max-new-tokens", "-3"]]
)
def test_live_rejects_bad_generation_options(tmp_path, capsys, args):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert main([str(folder), *args]) == 2
    assert args[0] in one_sentence(capsys.readouterr().err)


def test_help_names_the_live_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--prompt", "--save-dir", "--max-new-tokens", "--device", "view"):
        assert option in out


def test_app_and_view_never_import_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from neuroscope_tui.tui.app import NeuroscopeApp\n"
        "import neuroscope_tui.cli.view, neuroscope_tui.cli.live\n"
        "import neuroscope_tui.tui.views.scan, neuroscope_tui.tui.engine\n"
        "import neuroscope_tui.tui.views.drift, neuroscope_tui.tui.drifting\n"
        "from neuroscope_tui.snapshot import load_snapshot\n"
        f"load_snapshot({str(SCAN_FIXTURE)!r})\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
