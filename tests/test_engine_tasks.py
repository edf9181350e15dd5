"""The model worker's task queue (tui/engine.py) and the progress/cancel contract
(neuroscope_tui/tasks.py), without the app: coalescing, what runs between generation steps,
cancelling, and a task between two steps leaving the run's recording intact."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from _fixtures_app import tiny_llama_bundle
from neuroscope_tui.tasks import TaskCancelled, TaskContext
from neuroscope_tui.tui.engine import ModelEngine, ModelTask, default_spec


def wait(condition, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def task(fn, *args, log: list, name: str = "", **kw) -> ModelTask:
    return ModelTask(
        fn, args,
        on_done=lambda r: log.append(("done", name, r)),
        on_error=lambda text: log.append(("error", name, text)),
        on_cancelled=lambda: log.append(("cancelled", name, None)),
        **kw,
    )  # fmt: skip


def test_progress_coalesces_and_raises_once_cancelled():
    notices = []
    ctx = TaskContext(notify=lambda: notices.append(1))
    for i in range(1000):
        ctx.progress(i / 1000, f"step {i}")
    assert len(notices) == 1  # one notice until the reader takes the newest
    assert ctx.take() == (0.999, "step 999")
    ctx.progress(1.0, "done")
    assert len(notices) == 2
    ctx.cancel()
    with pytest.raises(TaskCancelled):
        ctx.progress(1.0, "after cancel")


def test_fifty_requests_of_one_kind_leave_one_waiting_and_only_the_newest_runs():
    engine = ModelEngine(post=lambda m: None, model="model")
    log: list = []
    with engine.lock:  # a run (or a load) holds the model
        for i in range(50):
            engine.submit(task(lambda model, i: i, i, log=log, name=str(i), kind="patterns"))
            assert len(engine.pending("patterns")) == 1
    wait(lambda: any(e[0] == "done" for e in log))
    wait(lambda: not engine._serving)
    assert [e for e in log if e[0] == "done"] == [("done", "49", 49)]
    assert sum(e[0] == "cancelled" for e in log) == 49
    alive = [t for t in threading.enumerate() if t.name == "neuroscope-tasks"]
    assert len(alive) <= 1  # one serving thread, not one per request


def test_between_steps_only_one_quick_task_runs_and_long_ones_wait():
    engine = ModelEngine(post=lambda m: None, model="model")
    log: list = []
    with engine.lock:
        engine.submit(task(lambda m: "attr", log=log, name="attr", long=True, label="attribution"))
        engine.submit(task(lambda m: "p1", log=log, name="p1", kind="a"))
        engine.submit(task(lambda m: "p2", log=log, name="p2", kind="b"))
        engine.run_tasks("model", between_steps=True)
        assert [e[1] for e in log] == ["p1"]
        engine.run_tasks("model", between_steps=True)
        engine.run_tasks("model", between_steps=True)
        assert [e[1] for e in log] == ["p1", "p2"]  # the long one waits for the run's end
    wait(lambda: len(log) == 3)
    assert log[-1] == ("done", "attr", "attr")


def test_cancel_stops_a_running_task_at_its_next_report_and_drops_waiting_ones():
    engine = ModelEngine(post=lambda m: None, model="model")
    log: list = []
    reports: list = []
    started = threading.Event()

    def slow(model, *, progress):
        for i in range(1000):
            progress(i / 1000, f"chunk {i}")
            reports.append(i)
            started.set()
            time.sleep(0.01)
        return "finished"

    engine.submit(task(slow, log=log, name="slow", long=True, label="attribution", reports=True))
    wait(started.is_set)
    engine.submit(task(lambda m: 1, log=log, name="queued", long=True, label="probe"))
    labels = engine.cancel_tasks()
    assert sorted(labels) == ["attribution", "probe"]
    wait(lambda: len(log) == 2)
    assert ("cancelled", "slow", None) in log and ("cancelled", "queued", None) in log
    assert len(reports) < 1000 and engine.current is None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_llama_bundle(tmp_path_factory.mktemp("tiny") / "llama")


def test_a_pattern_between_generation_steps_leaves_the_run_unchanged(tiny):
    """compute_patterns inside a run used to remove the run's attention tap: the head scores
    stopped growing while the tokens went on (issue 9 items 1 and 17)."""
    from neuroscope_tui.capture.patterns import compute_patterns
    from neuroscope_tui.capture.run import GenerationOptions, run

    spec = default_spec(tiny, 20)
    options = GenerationOptions(max_new_tokens=6, stop_at_eos=False)
    asked = []

    def on_step(trace, start, stop):
        if stop >= trace.n_prompt + 1:  # between every two generated tokens
            asked.append(compute_patterns(tiny, list(trace.token_ids), [(1, 0), (0, -1)]))

    plain = run(tiny, "The cat sat", spec, options)
    with_tasks = run(tiny, "The cat sat", spec, options, on_step=on_step)
    assert len(asked) >= 5 and with_tasks.token_ids == plain.token_ids
    assert set(with_tasks.arrays) == set(plain.arrays)
    for name, arr in plain.arrays.items():
        assert with_tasks.arrays[name].shape == arr.shape, name
        np.testing.assert_allclose(with_tasks.arrays[name], arr, rtol=1e-4, atol=1e-5)
    assert tiny.model.config._attn_implementation == "sdpa"


def test_attribution_reports_steps_and_positions_and_stops_when_told(tiny):
    from neuroscope_tui.capture.attribution_runs import attribute_position

    ids = tiny.tokenizer("The cat sat on the mat")["input_ids"]
    plain = attribute_position(tiny, ids, len(ids) - 1, steps=8)
    seen: list[tuple[float, str]] = []
    watched = attribute_position(
        tiny, ids, len(ids) - 1, steps=8, progress=lambda f, t: seen.append((f, t))
    )
    for method, result in plain.results.items():
        np.testing.assert_allclose(watched.results[method].scores, result.scores, atol=1e-5)
    texts = [t for _, t in seen]
    n_in = len(ids) - 1
    assert f"occlusion {n_in}/{n_in} positions" in texts
    assert "integrated gradients 8/8 steps" in texts and "gradient × input" in texts
    assert all(0.0 <= f <= 1.0 for f, _ in seen)

    def stop_at_integrated_gradients(fraction: float, text: str) -> None:
        if text.startswith("integrated"):
            raise TaskCancelled(text)

    with pytest.raises(TaskCancelled):
        attribute_position(tiny, ids, len(ids) - 1, steps=8, progress=stop_at_integrated_gradients)
    # a later call in the same thread without a watcher reports to no one
    again = attribute_position(tiny, ids, len(ids) - 1, steps=8)
    np.testing.assert_allclose(again.results["occlusion"].scores, plain.results["occlusion"].scores)
