"""`capture` and `info` end to end on a tiny saved model, and every bad input: one sentence on
stderr, exit status 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from neuroscope_tui.cli import main
from neuroscope_tui.snapshot import load_snapshot, save_snapshot
from tiny_models import build_tiny

PROMPT = "The cat sat on the mat and the cat looked at the dog"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("llama", tmp_path_factory.mktemp("m") / "llama")


@pytest.fixture(scope="module")
def short_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model that reads at most 16 tokens."""
    folder = tmp_path_factory.mktemp("m") / "short"
    return build_tiny("llama", folder, max_position_embeddings=16)


@pytest.fixture(scope="module")
def snapshot(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("snap") / "run.nscope"
    args = ["capture", str(tiny), "--prompt", PROMPT, "--max-new-tokens", "5", "-o", str(out)]
    assert main([*args, "--heads", "1.0,0.3", "--full-layers", "1"]) == 0
    return out


def fails(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> str:
    """Run the CLI expecting a user error: exit 2, the last stderr line one sentence."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("neuroscope-tui: "), err
    assert message in last, last
    return err


# ---- capture -------------------------------------------------------------------------------


def test_capture_matches_transformers(tiny: Path, snapshot: Path) -> None:
    """Tokens are greedy `generate`'s; the logits' top-1 at every position is the argmax of
    one full forward pass over the whole sequence (computed here by transformers)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trace = load_snapshot(snapshot)
    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    tok = AutoTokenizer.from_pretrained(tiny)
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = model.generate(ids, max_new_tokens=5, do_sample=False, eos_token_id=None)
        logits = model(expected).logits[0]
    assert trace.token_ids == expected[0].tolist()
    assert trace.n_prompt == ids.shape[1] and trace.n_generated == 5
    assert trace.prompt == PROMPT and trace.stop_reason == "length" and trace.finished
    np.testing.assert_array_equal(trace.get("logits.top_ids")[:, 0], logits.argmax(-1).numpy())
    T = trace.n_tokens
    assert trace.get("pattern.1.0").shape == (T, T)
    assert trace.get("pattern.0.3").shape == (T, T)
    assert trace.get("resid.full").shape == (1, T, 32)  # only --full-layers 1
    assert trace.spec.full_layers == (1,)
    assert trace.model.n_layers == 2 and trace.model.context_length == 128


def test_capture_prints_a_summary(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "a.nscope"
    assert main(["capture", str(tiny), "--prompt", "the dog", "--max-new-tokens", "2",
                 "-o", str(out), "--full-layers", "none", "--no-lens"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    trace = load_snapshot(out)
    assert captured.out.strip() == (
        f"wrote {out}: {trace.n_prompt} prompt + 2 generated tokens (stop: length); "
        f"generated: {trace.generated_text!r}"
    )
    assert "loading" in captured.err  # progress goes to stderr
    assert "resid.full" not in trace.arrays
    lens = trace.arrays.get("lens.top_ids")
    assert lens is None or (lens == -1).all()


def test_prompt_file_writes_one_snapshot_each(tiny: Path, tmp_path: Path, capsys) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the cat sat\n\n   \nthe dog ran away\n")
    out = tmp_path / "runs"
    argv = ["capture", str(tiny), "--prompt-file", str(prompts), "--max-new-tokens", "1"]
    assert main([*argv, "-o", str(out), "--full-layers", "none"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["prompt-001.nscope", "prompt-002.nscope"]
    assert load_snapshot(out / "prompt-001.nscope").prompt == "the cat sat"
    assert load_snapshot(out / "prompt-002.nscope").prompt == "the dog ran away"
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    # again without --force: refused before loading, nothing overwritten
    fails(capsys, [*argv, "-o", str(out)], "prompt-001.nscope already exists; pass --force")


def test_too_long_prompt_truncated_on_request(short_context: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "t.nscope"
    argv = ["capture", str(short_context), "--prompt", PROMPT * 3, "--max-new-tokens", "3"]
    assert main([*argv, "-o", str(out), "--too-long", "truncate"]) == 0
    err = capsys.readouterr().err
    assert "note: the prompt was cut from the left" in err
    trace = load_snapshot(out)
    assert trace.n_prompt < 16 and trace.n_tokens <= 16
    assert "truncated" in trace.notes


# ---- bad input -----------------------------------------------------------------------------


def test_unknown_model(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "x.nscope")
    fails(capsys, ["capture", "./no/such/model", "--prompt", "hi", "-o", out], "there is no file")


def test_unknown_hub_model_offline(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = str(tmp_path / "x.nscope")
    fails(capsys, ["capture", "gtp2", "--prompt", "hi", "-o", out], "could not reach the Hugging")


def test_empty_prompt(tiny: Path, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "x.nscope")
    err = fails(capsys, ["capture", str(tiny), "--prompt", "  ", "-o", out], "the prompt is empty")
    assert err.count("\n") == 1  # refused before loading anything


def test_blank_or_missing_prompt_file(tiny: Path, tmp_path: Path, capsys) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    out = str(tmp_path / "runs")
    fails(capsys, ["capture", str(tiny), "--prompt-file", str(blank), "-o", out], "no prompts")
    missing = str(tmp_path / "nope.txt")
    fails(capsys, ["capture", str(tiny), "--prompt-file", missing, "-o", out], "no prompt file")


def test_prompt_longer_than_context(short_context: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.nscope"
    argv = ["capture", str(short_context), "--prompt", PROMPT * 3, "-o", str(out)]
    fails(capsys, argv, "reads at most 16; shorten it, or pass --too-long truncate")
    assert not out.exists()


def test_unwritable_output(tiny: Path, tmp_path: Path, capsys) -> None:
    base = ["capture", str(tiny), "--prompt", "hi", "-o"]
    fails(capsys, [*base, str(tmp_path / "missing" / "x.nscope")], "does not exist; create it")
    (tmp_path / "file").write_text("x")
    fails(capsys, [*base, str(tmp_path / "file" / "x.nscope")], "is not a folder")
    fails(capsys, [*base, str(tmp_path)], "is a folder; give a file name")


def test_existing_output_needs_force(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.nscope"
    out.write_text("keep me")
    argv = ["capture", str(tiny), "--prompt", "hi", "--max-new-tokens", "1", "-o", str(out)]
    err = fails(capsys, argv, "already exists; pass --force to overwrite it")
    assert "loading" not in err  # checked before the model loads
    assert out.read_text() == "keep me"
    assert main([*argv, "--force"]) == 0
    assert load_snapshot(out).prompt == "hi"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--heads", "1-0"], "must be LAYER.HEAD"),
        (["--heads", "7.0"], "has layers 0 to 1 and heads 0 to 3"),
        (["--full-layers", "some"], "must be all, none, or layer numbers"),
        (["--full-layers", "0,9"], "has layers 0 to 1, not 9"),
        (["--max-new-tokens", "-1"], "--max-new-tokens must be 0 or more"),
        (["--top-p", "0"], "--top-p must be above 0"),
        (["--device", "gpu"], "is not one of auto, cpu, cuda"),
    ],
)
def test_bad_options(tiny: Path, tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    out = str(tmp_path / "x.nscope")
    fails(capsys, ["capture", str(tiny), "--prompt", "hi", "-o", out, *extra], message)


# ---- info ----------------------------------------------------------------------------------


def test_info_text(snapshot: Path, capsys) -> None:
    assert main(["info", str(snapshot)]) == 0
    text = capsys.readouterr().out
    trace = load_snapshot(snapshot)
    assert f"prompt     {PROMPT!r} ({trace.n_prompt} tokens)" in text
    assert f"generated  {trace.generated_text!r} (5 tokens, stop: length)" in text
    assert "llama, 2 layers x 4 heads (2 KV), d_model 32, float32 on cpu" in text
    assert f"arrays     {len(trace.arrays)}" in text
    T = trace.n_tokens
    assert any(line.split()[:3] == ["pattern.1.0", f"[{T},", f"{T}]"] for line in text.splitlines())


def test_info_json(snapshot: Path, capsys) -> None:
    assert main(["info", str(snapshot), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    trace = load_snapshot(snapshot)
    assert info["generated"] == trace.generated_text
    assert info["file_bytes"] == snapshot.stat().st_size
    assert set(info["arrays"]) == set(trace.arrays)
    for name, arr in trace.arrays.items():
        assert info["arrays"][name] == {
            "shape": list(arr.shape), "dtype": str(arr.dtype), "bytes": arr.nbytes,
        }  # fmt: skip
    # the data is most of the file: sizes add up to the file less its header
    assert 0 < snapshot.stat().st_size - sum(a["bytes"] for a in info["arrays"].values()) < 65536


def test_info_bad_snapshots(snapshot: Path, tmp_path: Path, capsys) -> None:
    cut = tmp_path / "cut.nscope"
    cut.write_bytes(snapshot.read_bytes()[:-500])
    fails(capsys, ["info", str(cut)], "is truncated")
    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n")
    fails(capsys, ["info", str(text)], "is not a snapshot")
    fails(capsys, ["info", str(tmp_path / "gone.nscope")], "there is no file")
    trace = load_snapshot(snapshot)
    newer = tmp_path / "newer.nscope"
    import neuroscope_tui.snapshot as snap

    real = snap.SNAPSHOT_VERSION
    snap.SNAPSHOT_VERSION = 2  # write as a future version would
    try:
        save_snapshot(trace, newer)
    finally:
        snap.SNAPSHOT_VERSION = real
    fails(capsys, ["info", str(newer)], "made by a newer neuroscope-tui (format 2, this reads")


def test_info_in_a_real_process_without_torch(snapshot: Path, tmp_path: Path) -> None:
    """The console entry point: a bad file is one line and exit 2; a good one needs no torch."""
    bad = tmp_path / "bad.nscope"
    bad.write_bytes(b"\x00" * 10)
    code = "import sys; sys.modules['torch'] = None; from neuroscope_tui.cli import main; "
    for path, status in ((bad, 2), (snapshot, 0)):
        done = subprocess.run(
            [sys.executable, "-c", code + f"sys.exit(main(['info', {str(path)!r}]))"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == status, done.stderr
        assert "Traceback" not in done.stderr
        if status == 2:
            assert done.stderr.count("\n") == 1 and "is not a snapshot" in done.stderr


@pytest.mark.smollm2
def test_capture_smollm2_paris(smollm2, tmp_path: Path, capsys) -> None:
    """The real model through the CLI (from the GGUF cache the fixture made): ' Paris'."""
    out = tmp_path / "paris.nscope"
    argv = ["capture", "smollm2", "--prompt", "The capital of France is", "--max-new-tokens", "2"]
    assert main([*argv, "-o", str(out), "--device", "cpu", "--full-layers", "none"]) == 0
    trace = load_snapshot(out)
    assert trace.generated_text.startswith(" Paris")
    assert trace.model.n_layers == 30 and trace.model.n_heads == 9
    assert main(["info", str(out)]) == 0
    assert "generated  ' Paris" in capsys.readouterr().out


def test_first_ctrl_c_saves_the_run_so_far(tiny: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """A real SIGINT after the second generated token: the run stops, the snapshot holds what
    was captured (stop: cancelled), later prompts are skipped, exit status 130."""
    import signal

    import neuroscope_tui.capture.run as capture_run

    real_run = capture_run.run

    def run_then_interrupt(*args, on_step=None, **kwargs):
        def step(trace, start, stop):
            if on_step:
                on_step(trace, start, stop)
            if trace.n_generated == 2:
                signal.raise_signal(signal.SIGINT)

        return real_run(*args, on_step=step, **kwargs)

    monkeypatch.setattr(capture_run, "run", run_then_interrupt)
    prompts = tmp_path / "p.txt"
    prompts.write_text("the cat sat\nthe dog ran\n")
    out = tmp_path / "runs"
    argv = ["capture", str(tiny), "--prompt-file", str(prompts), "--max-new-tokens", "20"]
    assert main([*argv, "-o", str(out), "--full-layers", "none"]) == 130
    err = capsys.readouterr().err
    assert "stopping after this token" in err and "stopped after 1 of 2 prompt(s)" in err
    trace = load_snapshot(out / "prompt-001.nscope")
    assert trace.stop_reason == "cancelled" and trace.n_generated == 2
    assert not (out / "prompt-002.nscope").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_info_piped_into_head(tmp_path: Path) -> None:
    """`info big.nscope | head -1`: the reader leaving early is no error and no traceback."""
    from test_snapshot_roundtrip import make_trace

    trace = make_trace()
    trace.extras.update(
        {f"projection.run{i:04d}": np.zeros((2, 2), np.float32) for i in range(3000)}
    )
    big = save_snapshot(trace, tmp_path / "big.nscope")
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuroscope_tui", "info", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"snapshot")
    proc.stdout.close()  # more than a pipe buffer is still unwritten
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
