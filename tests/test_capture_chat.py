"""`--chat` (GenerationOptions.chat): the prompt wrapped in the model's own chat template.

The model reads the templated text; the trace keeps the user's prompt and records the
templated text in `notes["chat_template"]`, which `info` and the app's header show. A tokenizer
without a template is refused before any forward pass.
"""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path

import pytest

from _fixtures_e2e import run_cli
from neuroscope_tui.errors import PromptError
from neuroscope_tui.snapshot import load_snapshot, save_snapshot
from neuroscope_tui.trace import CaptureSpec
from tiny_models import tiny_bundle

torch = pytest.importorskip("torch")
from neuroscope_tui.capture.run import GenerationOptions, run  # noqa: E402

CHEAP = CaptureSpec(full_layers=(), lens_positions=())
TEMPLATE = "{% for m in messages %}<turn {{ m['role'] }}>{{ m['content'] }}</turn>{% endfor %}"


@pytest.fixture(scope="module")
def tiny_chat():
    """A tiny Llama whose tokenizer has a (made-up) chat template."""
    bundle = tiny_bundle("llama")
    bundle.tokenizer = copy.deepcopy(bundle.tokenizer)
    bundle.tokenizer.chat_template = TEMPLATE
    return bundle


def test_without_a_template_chat_is_refused_before_the_model_runs(monkeypatch) -> None:
    bundle = tiny_bundle("llama")
    assert not getattr(bundle.tokenizer, "chat_template", None)
    calls = []
    monkeypatch.setattr(bundle.model, "forward", lambda *a, **k: calls.append(1))
    with pytest.raises(PromptError, match="has no chat template"):
        run(bundle, "hello", CHEAP, GenerationOptions(max_new_tokens=1, chat=True))
    assert calls == []


def test_chat_reads_the_templated_text_and_keeps_the_users_prompt(tiny_chat) -> None:
    trace = run(tiny_chat, "hello world", CHEAP, GenerationOptions(max_new_tokens=2, chat=True))
    wanted = tiny_chat.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello world"}], add_generation_prompt=True, tokenize=False
    )
    assert trace.prompt == "hello world"
    assert trace.notes["chat_template"] == wanted
    ids = tiny_chat.tokenizer(wanted, add_special_tokens=False)["input_ids"]
    assert trace.token_ids[: trace.n_prompt] == list(ids)
    plain = run(tiny_chat, "hello world", CHEAP, GenerationOptions(max_new_tokens=2))
    assert "chat_template" not in plain.notes
    assert plain.n_prompt < trace.n_prompt


def test_chat_note_survives_a_snapshot_and_info_shows_it(tiny_chat, tmp_path: Path) -> None:
    trace = run(tiny_chat, "hi", CHEAP, GenerationOptions(max_new_tokens=1, chat=True))
    path = save_snapshot(trace, tmp_path / "chat.nscope")
    assert load_snapshot(path).notes["chat_template"] == trace.notes["chat_template"]
    done = run_cli("info", path)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "chat_template" in x)
    assert "chat template" in line and "<turn user>hi</turn>" in line


@pytest.mark.anyio
async def test_live_app_header_says_chat_and_the_run_is_templated(tiny_chat, tmp_path) -> None:
    from neuroscope_tui.tui.app import NeuroscopeApp

    app = NeuroscopeApp(
        model=tiny_chat,
        save_dir=tmp_path,
        prompt="hello",
        generation={"max_new_tokens": 2, "chat": True, "lens": False},
    )
    async with app.run_test(size=(120, 40)) as pilot:
        end = time.monotonic() + 60
        while not app.figures.state.startswith(("done", "failed")):
            assert time.monotonic() < end, "the run did not end"
            await asyncio.sleep(0.02)
        await pilot.pause(0.1)
        assert app.figures.state.startswith("done"), app.figures.state
        assert " · chat" in str(app.query_one("#header").render())
        assert app.trace.notes["chat_template"].startswith("<turn user>hello")


@pytest.mark.smollm2
def test_smollm2_answers_differently_inside_its_chat_template(smollm2) -> None:
    prompt = "What is the capital of France?"
    options = GenerationOptions(max_new_tokens=8)
    plain = run(smollm2, prompt, CHEAP, options)
    chat = run(smollm2, prompt, CHEAP, GenerationOptions(max_new_tokens=8, chat=True))
    templated = chat.notes["chat_template"]
    assert "<|im_start|>user\n" + prompt in templated
    assert templated.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>" in "".join(chat.token_text[: chat.n_prompt])
    assert chat.prompt == plain.prompt == prompt
    assert chat.generated_text != plain.generated_text
    print(f"plain: {plain.generated_text!r}; chat: {chat.generated_text!r}")


@pytest.mark.anyio
async def test_view_of_a_chat_snapshot_says_chat_in_the_header(tmp_path) -> None:
    from _fixtures_app import synthetic_trace
    from neuroscope_tui.tui.app import NeuroscopeApp

    plain = synthetic_trace()
    chat = synthetic_trace()
    chat.notes["chat_template"] = "<turn user>hi</turn>"
    for trace, shown in ((plain, False), (chat, True)):
        path = save_snapshot(trace, tmp_path / f"{shown}.nscope")
        app = NeuroscopeApp(snapshot=load_snapshot(path), snapshot_path=str(path))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert (" · chat" in str(app.query_one("#header").render())) is shown
