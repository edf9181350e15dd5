"""The model side of the app: loading, runs and model tasks, all in worker threads.

`ModelEngine` is plain threading (no widgets): the app starts its methods in worker threads
(`spawn`) and gets results back as messages (tui/messages.py) through `post`, which must be
thread-safe (`App.post_message` is). The threads are daemon threads, not Textual's thread
workers: those run in asyncio's default executor, which `asyncio.run` joins at exit, so
quitting during a 20 s model load would hang until the load ended. One lock serialises
everything that touches the model; a task asked for during generation (`submit`) runs between
two generation steps, so a view's request never waits for the whole run. torch is imported
only inside functions.

View tasks: one queue, served by one thread at a time (`submit` starts it when none is
serving). During a run only quick tasks (one pattern: a forward pass) run, one between two
generation steps; long ones (attribution: minutes on CPU) wait for the run's end, so
generation never stalls on them. A task of a `kind` replaces a queued one of the same kind:
a burst of key presses leaves one pattern request, not fifty forward passes. A task with a
`label` shows progress (its TaskContext, neuroscope_tui/tasks.py) and Esc cancels it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.tasks import TaskCancelled, TaskContext
from neuroscope_tui.trace import CaptureSpec, Trace
from neuroscope_tui.tui.intervention_state import InterventionState
from neuroscope_tui.tui.messages import (
    LoadFailed,
    LoadProgress,
    MemoryPlanned,
    ModelReady,
    RunEnded,
    TaskProgress,
    TraceGrew,
)

# Full MLP neurons and residual vectors of every layer (for the neuron time series and the
# projections) are kept when the whole run's rows fit in this many bytes. The trace grows into
# buffers with spare room, so a token costs only its own rows; the limit is memory.
FULL_ROWS_BUDGET = 256 * 1024 * 1024


@dataclass
class ModelTask:
    """A function of the live model asked for by a view, and where its answer goes.

    `kind`: a newer task of the same kind replaces this one while it waits. `long`: it waits
    for the end of a run instead of running between two generation steps. `label`: what the
    progress line calls it; labelled tasks are the ones Esc cancels. `reports`: `fn` takes a
    `progress=` keyword (TaskContext.progress). `on_done`, `on_error` and `on_cancelled` are
    called in the worker thread (the app's post messages); `on_progress` on the UI thread,
    from the coalesced TaskProgress messages.
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    on_done: Callable[[Any], None]
    on_error: Callable[[str], None]
    kind: str | None = None
    long: bool = False
    label: str = ""
    reports: bool = False
    on_cancelled: Callable[[], None] | None = None
    on_progress: Callable[[float, str], None] | None = None  # the app calls it on the UI thread
    context: TaskContext = field(default_factory=TaskContext)

    def cancelled(self) -> None:
        if self.on_cancelled is not None:
            self.on_cancelled()


@dataclass
class ModelEngine:
    """Runs the model for the app: one lock, one queue of view tasks, one cancel event."""

    post: Callable[[Any], None]
    model: Any = None  # LoadedModel once loaded
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancel: threading.Event = field(default_factory=threading.Event)
    tasks: list[ModelTask] = field(default_factory=list)  # waiting, oldest first
    current: ModelTask | None = None  # the task running now
    running: bool = False
    latest: TraceGrew | None = None  # the newest growth, read by the UI with `take_growth`
    deriving: bool = False  # completing the last run's lens while the model is otherwise idle
    derive_error: str | None = None
    # the interventions the user built and the clean run they are compared with
    interventions: InterventionState = field(default_factory=InterventionState)
    _posted: threading.Event = field(default_factory=threading.Event)
    _taken: TraceGrew | None = None  # the growth the UI last took
    _queue_lock: threading.Lock = field(default_factory=threading.Lock)
    _serving: bool = False  # a thread is serving the queue (or waiting for the model)
    # the model's module names (the module picker's tree), listed in the worker at load
    _module_names: list[str] = field(default_factory=list)
    # --remote: the NDIF session (capture/remote.py RemoteSession); `model` is then its
    # structure on the meta device, which no view task can run (tui/remote_runs.py)
    remote: Any = None

    def spawn(self, name: str, fn: Callable[..., Any], *args: Any) -> threading.Thread:
        """Run `fn(*args)` in a new daemon thread called `neuroscope-<name>`."""
        thread = threading.Thread(target=fn, args=args, name=f"neuroscope-{name}", daemon=True)
        thread.start()
        return thread

    def module_names(self) -> list[str]:
        """Every named module of the loaded model, in tree order ([] before it loads)."""
        if self.model is None:
            return []
        if not self._module_names:  # a model handed in (tests, `view`), not loaded here
            self._module_names = module_names(self.model)
        return list(self._module_names)

    # ---- loading ---------------------------------------------------------------------------

    def load(self, name: str, options: dict[str, Any]) -> None:
        """Load `name` with loader options; posts LoadProgress..., then ModelReady or LoadFailed.
        With options["remote"], connect to NDIF instead (tui/remote_runs.py)."""
        if options.get("remote"):
            from neuroscope_tui.tui.remote_runs import connect_remote

            connect_remote(self, name, options)
            return
        try:
            # the loader's own first step comes after these imports, the longest part of a
            # warm start: say so, or the line under the prompt box is silent for seconds
            self.post(LoadProgress("importing torch and transformers"))
            from neuroscope_tui.models.loader import load_model

            with self.lock:
                bundle = load_model(
                    name, progress=lambda text: self.post(LoadProgress(text)), **options
                )
            self._module_names = module_names(bundle)
            self.model = bundle
            self.post(ModelReady(bundle))
        except NeuroscopeError as err:
            self.post(LoadFailed(str(err)))
        except Exception as err:  # a bug or an odd model: still one sentence, never a traceback
            self.post(LoadFailed(f"loading {name} failed ({describe(err)})"))

    # ---- runs ------------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        spec: CaptureSpec | None,
        options: dict[str, Any],
        interventions: Sequence[Any] = (),
    ) -> None:
        """Run `prompt` and generate, posting TraceGrew after each step and RunEnded at the end.

        On an error the trace so far comes back in RunEnded with one sentence; view tasks
        submitted meanwhile run between steps. With `interventions`, the clean run of the
        same prompt and options is kept in `self.interventions` (run first, silently, only
        when none is kept); a run without them becomes the kept clean run.
        """
        from neuroscope_tui.capture.run import GenerationOptions, run

        if self.remote is not None:  # one request to NDIF; the trace comes back whole
            from neuroscope_tui.tui.remote_runs import generate_remote

            generate_remote(self, prompt, options, interventions)
            return
        bundle = self.model
        self.running = True
        asked, options, ivs = dict(options), dict(options), list(interventions)
        if options.pop("backend", "native") == "nnsight":  # --backend nnsight: same Trace
            from neuroscope_tui.capture.nnsight_backend import run_nnsight as run
        lens = bool(options.pop("lens", True))
        sampling = options.pop("sampling", None)
        # modules to watch (--watch, or the module picker for the next run): part of the spec
        watch = {k: tuple(options.pop(k)) for k in ("watch", "watch_full") if k in options}
        n_prompt = len(bundle.tokenizer(prompt)["input_ids"]) if prompt.strip() else 0
        if spec is None:
            n_tokens = n_prompt + int(options.get("max_new_tokens", 32))
            spec = default_spec(bundle, n_tokens, lens=lens)
        if watch:  # asked on the command line or in the module picker: what the run watches
            spec = replace(spec, **watch)
        if sampling is not None and n_prompt:
            try:
                # under the lock: watched modules are sized by a one-token pass of the model
                # (capture/watch.py `watch_size`), which must not overlap a task's or the
                # last run's lens completion
                with self.lock:
                    spec = self.plan_memory(bundle, spec, n_prompt, options, sampling)
            except NeuroscopeError as err:  # refused before the model runs
                self.running = False
                self.post(RunEnded(None, str(err)))
                return
        started: list[float] = []  # time of the first generated token
        state: dict[str, Any] = {"trace": None}

        def on_step(trace: Trace, start: int, stop: int) -> None:
            state["trace"] = trace
            rate = None
            if start >= trace.n_prompt:  # a generated token
                if not started:
                    started.append(time.perf_counter())
                elif (elapsed := time.perf_counter() - started[0]) > 0:
                    rate = (stop - trace.n_prompt - 1) / elapsed
            self.latest = TraceGrew(trace, stop, rate, gpu_bytes(bundle.device))
            if not self._posted.is_set():  # coalesce at the source: one message in flight
                self._posted.set()
                self.post(self.latest)
            # no sleep here to hand the GIL over: torch releases it inside every kernel and
            # the interpreter's switch interval (5 ms) bounds the UI's wait; a 1 ms sleep per
            # token cost about 1.5% of the token rate on CPU
            self.run_tasks(bundle, between_steps=True)

        ended: RunEnded | None = None
        try:
            with self.lock:
                if ivs and self.interventions.clean_for(prompt, asked) is None:
                    clean = run(bundle, prompt, spec, GenerationOptions(**options),
                                cancel=self.cancel, lens_later=True)  # fmt: skip
                    self.interventions.keep_clean(clean, prompt, asked)
                trace = run(
                    bundle,
                    prompt,
                    spec,
                    GenerationOptions(**options),
                    on_step=on_step,
                    cancel=self.cancel,
                    lens_later=True,  # derived on demand, then in complete_when_idle
                    entropy_later=True,  # a long prompt's: in complete_when_idle
                    interventions=ivs,
                )
            if not ivs and not self.cancel.is_set():
                self.interventions.keep_clean(trace, prompt, asked)
            ended = RunEnded(trace, None)
        except Exception as err:
            trace = getattr(err, "trace", None) or state["trace"]
            at = f" at token {trace.n_tokens}" if trace is not None and trace.n_tokens else ""
            if isinstance(err, NeuroscopeError):
                text = str(err)
            else:
                text = f"the model failed{at} ({describe(err)}); what was captured is kept"
            ended = RunEnded(trace if trace is not None and trace.n_tokens else None, text)
        finally:
            # Tasks still waiting (the long ones) are run by the serving thread, which waits
            # for the lock; not here, so the UI hears of the end at once.
            # not running before the UI hears the end, so Enter right after it starts a run
            self.running = False
            # set before the UI hears the end, so "idle" is never seen between the two
            self.deriving = ended is not None and ended.trace is not None
            if ended is not None:
                self.post(ended)
        if ended is not None and ended.trace is not None:
            self.complete_when_idle(ended.trace)

    def complete_when_idle(self, trace: Trace) -> None:
        """Derive what the run left for later (a long prompt's head entropy, then the lens a
        chunk of positions at a time) while no new run wants the model; view tasks still run
        between chunks. Posts a TraceGrew after each chunk so the views show the new figures."""
        from neuroscope_tui.capture.derive import complete_some

        bundle = self.model
        self.deriving = True
        try:
            while not self.running and not self.cancel.is_set():  # cancel: the app quits
                with self.lock:
                    if self.running:  # a new run was asked for while we waited
                        return
                    self.run_tasks(bundle)
                    done = complete_some(bundle, trace)
                if not done:
                    return
                rate = self.latest.tokens_per_s if self.latest is not None else None
                self.latest = TraceGrew(trace, trace.n_tokens, rate, gpu_bytes(bundle.device))
                if not self._posted.is_set():
                    self._posted.set()
                    self.post(self.latest)
        except Exception as err:  # the run is kept; its lens cells say "not computed"
            self.derive_error = f"completing the lens and head entropy failed ({describe(err)})"
        finally:
            self.deriving = False

    def plan_memory(self, bundle: Any, spec: CaptureSpec, n_prompt: int, options, sampling):
        """`spec` sampled as asked and fitted to the memory budget; posts MemoryPlanned.

        Raises UsageError for sampling the model's shape rules out and MemoryBudgetError when
        the run cannot fit (both before the model runs).
        """
        from neuroscope_tui.capture.sampling import plan_for_model

        a = bundle.anatomy
        spec = sampling.apply(spec, a.n_layers, a.d_mlp, bundle.name)
        max_new = int(options.get("max_new_tokens", 32))
        fitted = plan_for_model(bundle, spec, n_prompt, max_new, sampling)
        self.post(MemoryPlanned(fitted.line(), fitted.estimate.total, bool(fitted.reduced)))
        return fitted.spec

    def prepare_run(self) -> None:
        """Mark a run as started (UI thread, before its worker starts), so a stop pressed at
        once is kept and a second Enter is refused."""
        self.cancel.clear()
        self.running = True

    def wait_idle(self, timeout: float) -> bool:
        """Whether the model is free (no load, run or task holding it) within `timeout` s."""
        if not self.lock.acquire(timeout=timeout):
            return False
        self.lock.release()
        return True

    def take_growth(self) -> TraceGrew | None:
        """The newest growth not taken yet, or None (UI thread); the worker posts the next
        TraceGrew only after this, so a frame the UI puts off costs it no messages."""
        self._posted.clear()
        latest = self.latest
        if latest is self._taken:
            return None
        self._taken = latest
        return latest

    def stop(self) -> None:
        """Ask the run in progress to stop after its current step."""
        self.cancel.set()

    # ---- view tasks ------------------------------------------------------------------------

    def submit(self, task: ModelTask) -> None:
        """Queue a view's model task (replacing a waiting one of the same kind) and make sure
        a thread serves the queue."""
        task.context.notify = lambda: self.post(TaskProgress(task))
        replaced: list[ModelTask] = []
        with self._queue_lock:
            if task.kind is not None:
                replaced = [t for t in self.tasks if t.kind == task.kind]
                self.tasks = [t for t in self.tasks if t.kind != task.kind]
            self.tasks.append(task)
            start = not self._serving
            self._serving = True
        for old in replaced:
            old.context.cancel()
            old.cancelled()
        if start:
            self.spawn("tasks", self.serve_tasks)

    def serve_tasks(self) -> None:
        """Run queued tasks whenever no run holds the model (a run runs the quick ones
        between its steps); return when the queue is empty."""
        while True:
            with self.lock:
                self.run_tasks(self.model)
            with self._queue_lock:
                if not self.tasks:
                    self._serving = False
                    return

    def pending(self, kind: str | None = None) -> list[ModelTask]:
        """The tasks waiting (of `kind`, when given)."""
        with self._queue_lock:
            return [t for t in self.tasks if kind is None or t.kind == kind]

    def cancel_tasks(self) -> list[str]:
        """Cancel every labelled task, waiting or running; their labels (for a notice)."""
        with self._queue_lock:
            dropped = [t for t in self.tasks if t.label]
            self.tasks = [t for t in self.tasks if not t.label]
        running = self.current
        if running is not None and running.label and not running.context.cancelled.is_set():
            running.context.cancel()  # it stops at its next progress report
            dropped.append(running)
        for task in dropped:
            task.context.cancel()
            if task is not running:
                task.cancelled()
        return [t.label for t in dropped]

    def _next_task(self, between_steps: bool) -> ModelTask | None:
        with self._queue_lock:
            for i, task in enumerate(self.tasks):
                if not (between_steps and task.long):
                    return self.tasks.pop(i)
        return None

    def run_tasks(self, bundle: Any, *, between_steps: bool = False) -> None:
        """Run queued tasks with the model (the caller holds the lock): all of them, or,
        between two generation steps, only the oldest quick one."""
        while (task := self._next_task(between_steps)) is not None:
            self.current = task
            try:
                if task.context.cancelled.is_set():
                    raise TaskCancelled(task.label)
                if task.label:
                    task.context.progress(0.0, task.label)  # "started", for the UI
                kw = {"progress": task.context.progress} if task.reports else {}
                result = task.fn(bundle, *task.args, **kw)
            except TaskCancelled:
                task.cancelled()
            except Exception as err:
                task.on_error(describe(err))
            else:
                task.on_done(result)
            finally:
                self.current = None
            if between_steps:
                return


def describe(err: BaseException) -> str:
    """An exception as a short phrase: its type and the first line of its message."""
    if type(err).__name__ == "OutOfMemoryError":
        return "out of GPU memory; try a shorter prompt or fewer --max-new-tokens"
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first[:160]}" if first else type(err).__name__


def gpu_bytes(device: str) -> int | None:
    """Bytes of GPU memory torch holds on `device`, or None off CUDA."""
    if not str(device).startswith("cuda"):
        return None
    import torch

    return int(torch.cuda.memory_allocated(torch.device(device)))


def module_names(bundle: Any) -> list[str]:
    """The model's named modules (the root left out): a walk over Python objects, no torch."""
    return [name for name, _ in bundle.model.named_modules() if name]


def default_spec(bundle: Any, n_tokens: int, *, lens: bool = True) -> CaptureSpec:
    """What the live scan records for a run of about `n_tokens`: every site and layer, the
    logit lens for every position (unless `lens` is False: on CPU it halves the token rate),
    and full MLP neurons and residual vectors for every layer when they fit in
    FULL_ROWS_BUDGET (SmolLM2-135M: 248 KiB a token, so runs up to 1059)."""
    anatomy = bundle.anatomy
    per_token = 4 * anatomy.n_layers * (anatomy.d_mlp + anatomy.d_model)
    fits = per_token * max(1, n_tokens) <= FULL_ROWS_BUDGET
    return CaptureSpec(full_layers=None if fits else (), lens_positions=None if lens else ())


def trace_upto(trace: Trace, n_tokens: int) -> Trace:
    """The first `n_tokens` positions of `trace`, as views of its arrays (no copy).

    The worker only writes positions past the ones announced (into spare room of its
    buffers, or into a fresh buffer when they fill), so what this returns stays consistent
    while the run goes on: the UI reads and saves it safely.
    """
    if n_tokens >= trace.n_tokens and trace.finished:
        return trace
    arrays: dict[str, Any] = {}
    for name, arr in list(trace.arrays.items()):
        if name.startswith("pattern."):
            arrays[name] = arr[:n_tokens, :n_tokens]
        elif Trace.token_axis(name) == 0:
            arrays[name] = arr[:n_tokens]
        else:
            arrays[name] = arr[:, :n_tokens]
    return replace(
        trace,
        token_ids=list(trace.token_ids[:n_tokens]),
        token_text=list(trace.token_text[:n_tokens]),
        n_prompt=min(trace.n_prompt, n_tokens),
        arrays=arrays,
        extras=dict(trace.extras),
        notes=dict(trace.notes),
    )
