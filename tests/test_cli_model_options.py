"""The model and generation options of `neuroscope-tui`, `capture` and `heads`, through the real
command in a fresh process: a bad value or an unloadable model name is one sentence and exit
status 2 before any model runs, and a failed run leaves no empty output folder behind.

HF_HUB_OFFLINE is set so no test waits on a network; the subprocess timeout only guards
against a hang (a screen that opened, a hub retry loop), it is not a speed check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _fixtures_e2e import error_sentence, run_cli
from tiny_models import build_tiny

HANG_GUARD = 90  # seconds: far above any answer here; a hang fails instead of blocking CI


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# (arguments, words the sentence must hold); the model is never loaded for any of these
BAD_GENERATION = [
    (["capture", "--prompt", "hi", "-o", "x.nscope", "--temperature", "nan"], "--temperature"),
    (["capture", "--prompt", "hi", "-o", "x.nscope", "--temperature", "inf"], "--temperature"),
    (["capture", "--prompt", "hi", "-o", "x.nscope", "--temperature", "-1"], "--temperature"),
    (["capture", "--prompt", "hi", "-o", "x.nscope", "--top-p", "nan"], "--top-p"),
    (["capture", "--prompt", "hi", "-o", "x.nscope", "--seed", str(2**64)], "--seed"),
    (["capture", "--prompt", "hi", "-o", "x.nscope", "--seed", "-1"], "--seed"),
    (["--prompt", "hi", "--temperature", "nan"], "--temperature"),
    (["--prompt", "hi", "--seed", "99999999999999999999999999"], "--seed"),
    (["--prompt", "hi", "--top-p", "inf"], "--top-p"),
    (["heads", "--seed", "-5"], "--seed"),
    (["heads", "--chat"], "--chat"),
]


@pytest.mark.parametrize(("args", "words"), BAD_GENERATION, ids=lambda a: " ".join(a))
def test_bad_generation_values_are_one_sentence(args, words, tmp_path: Path) -> None:
    done = run_cli(*args, cwd=tmp_path, timeout=HANG_GUARD)
    assert done.returncode == 2, done.stderr
    assert words in error_sentence(done.stderr)
    assert not (tmp_path / "x.nscope").exists()


def test_near_miss_of_an_alias_suggests_it(tmp_path: Path) -> None:
    live = ["smolm2", "--prompt", "hi"]
    for args in (live, ["capture", "SmolLM-2", "--prompt", "hi", "-o", "x"]):
        done = run_cli(*args, cwd=tmp_path, timeout=HANG_GUARD)
        assert done.returncode == 2, done.stderr
        sentence = error_sentence(done.stderr)
        assert "did you mean smollm2" in sentence
        assert "could not reach" not in sentence


@pytest.mark.parametrize(
    "args",
    [
        ["nobody-xyz/no-such-model", "--prompt", "hi"],  # the live app: before any screen
        ["capture", "nobody-xyz/no-such-model", "--prompt", "hi", "-o", "x.nscope"],
        ["heads", "nobody-xyz/no-such-model"],
    ],
    ids=["live", "capture", "heads"],
)
def test_offline_hub_id_names_the_offline_model_and_a_folder(args, tmp_path: Path) -> None:
    done = run_cli(*args, cwd=tmp_path, timeout=HANG_GUARD)
    assert done.returncode == 2, done.stderr
    sentence = error_sentence(done.stderr)
    assert "could not reach the Hugging Face hub" in sentence
    assert "smollm2" in sentence and "local folder" in sentence


def test_offline_hub_id_in_the_hub_cache_still_loads(tmp_path: Path, monkeypatch) -> None:
    """The early check must not refuse what the local hub cache holds."""
    repo = tmp_path / "hub" / "models--someone--tiny-llama"
    build_tiny("llama", repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    out = tmp_path / "run.nscope"
    done = run_cli(
        "capture", "someone/tiny-llama", "--prompt", "hello there", "-o", out,
        "--max-new-tokens", "2", "--device", "cpu", timeout=HANG_GUARD * 2,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.is_file()


def test_failed_prompt_file_run_leaves_no_empty_folder(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n")
    out = tmp_path / "runs"
    done = run_cli("capture", "smolm2", "--prompt-file", prompts, "-o", out, timeout=HANG_GUARD)
    assert done.returncode == 2, done.stderr
    error_sentence(done.stderr)
    assert not out.exists()


def test_failed_run_keeps_a_folder_the_user_made(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\n")
    out = tmp_path / "runs"
    out.mkdir()
    done = run_cli("capture", "smolm2", "--prompt-file", prompts, "-o", out, timeout=HANG_GUARD)
    assert done.returncode == 2, done.stderr
    assert out.is_dir()


def test_chat_on_a_model_without_a_template_is_refused(tmp_path: Path) -> None:
    folder = build_tiny("llama", tmp_path / "tiny")
    out = tmp_path / "run.nscope"
    for args in (
        ["capture", folder, "--prompt", "hi", "--chat", "-o", out, "--device", "cpu"],
        ["heads", folder, "--prompt", "hi", "--chat", "--device", "cpu"],
    ):
        done = run_cli(*args, timeout=HANG_GUARD * 2)
        assert done.returncode == 2, done.stderr
        assert "has no chat template" in error_sentence(done.stderr)
    assert not out.exists()
