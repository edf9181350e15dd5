"""Plugins: views, heatmap metrics and analyses from other packages, by Python entry points.

Three entry-point groups (a package declares them in its pyproject.toml; see
examples/neuroscope-plugin-example):

- `neuroscope_tui.views`: a `TraceView` subclass with `name` and `title` class attributes; the
  app gives it the next free view key (or a command-palette entry when none is left);
- `neuroscope_tui.metrics`: `fn(trace) -> [layer, token]` array, optional `label` and `unit`
  attributes; it joins the scan's metric cycle and `export` (its own table and a column of
  the heatmap table);
- `neuroscope_tui.analyses`: `fn(trace)` (or `fn(trace, model)` with `needs_model = True`)
  returning a `Table`, a list of dicts or a `(columns, rows)` pair, optional `description`;
  it joins `export` and the diagnostics report.

Each plugin is imported once, when first asked for, and checked. A plugin that fails to
import, returns the wrong kind of thing or takes a built-in name becomes a `PluginProblem`
(one sentence) and is left out: a broken plugin never stops the app or a command. A metric
is also checked each time it runs: an error or a wrong shape gives an empty (NaN) grid and
one notice, so the scan keeps drawing. NEUROSCOPE_NO_PLUGINS=1 turns every plugin off.
No textual and no torch at module level (a view plugin's check imports textual, only when
views are asked for).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import numpy as np

from neuroscope_tui.analysis.exports import EXPORTS, Table
from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.trace import Trace

# what a user calls each kind -> its entry-point group
GROUPS: dict[str, str] = {
    "views": "neuroscope_tui.views",
    "metrics": "neuroscope_tui.metrics",
    "analyses": "neuroscope_tui.analyses",
}
EXPORT_PREFIX = "plugin:"  # an EXPORTS target naming a plugin's table, not a module
MAX_NAME = 40
NO_PLUGINS_VARIABLE = "NEUROSCOPE_NO_PLUGINS"  # set (not "0"): load no plugin at all


class PluginError(NeuroscopeError):
    """A plugin failed while it ran (an analysis raised, a metric returned the wrong shape)."""

    def __init__(self, plugin: Plugin, reason: str) -> None:
        super().__init__(f"{_what(plugin)} {reason}.")
        self.reason = reason  # the sentence without the plugin's name: "failed: ValueError: x"


@dataclass(frozen=True)
class PluginProblem:
    """Why one plugin was left out, or failed when it ran."""

    kind: str  # "views", "metrics" or "analyses"
    name: str
    distribution: str
    error: str

    def sentence(self) -> str:
        what = f"the {kind_word(self.kind)} plugin {self.name!r} ({self.distribution})"
        return f"{what}: {self.error}"


@dataclass
class Plugin:
    """One entry point and, once loaded, what it gave (or why it was refused)."""

    kind: str
    name: str  # sanitised: what the app, `export` and the report call it
    distribution: str
    version: str
    target: str  # the entry point's "module:attribute"
    entry: EntryPoint | None = field(default=None, repr=False)
    obj: Any = None
    error: str | None = None
    loaded: bool = False

    @property
    def ok(self) -> bool:
        return self.loaded and self.error is None

    @property
    def where(self) -> str:
        """The distribution and version, as the listing shows it."""
        return f"{self.distribution} {self.version}".strip()


def kind_word(kind: str) -> str:
    return {"views": "view", "metrics": "metric", "analyses": "analysis"}.get(kind, kind)


def sanitise(raw: str) -> str:
    """A plugin's name as the app shows and types it: lower case letters, digits, `_.-`,
    at most MAX_NAME characters ("" when nothing usable is left)."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", raw.strip().lower()).strip("-.")
    return name[:MAX_NAME]


# ---- discovery and loading -------------------------------------------------------------------

_lock = threading.Lock()  # metrics run in the UI thread, `export` and the report elsewhere
_found: dict[str, list[Plugin]] | None = None
_problems: list[PluginProblem] = []
_reported: set[tuple[str, str]] = set()  # (kind, name) already told to the user
_failed: set[tuple[str, str]] = set()  # (kind, name) that failed while running
_reporter: Callable[[PluginProblem], None] | None = None


def reset() -> None:
    """Forget what was discovered and loaded (tests install and remove plugins)."""
    global _found
    with _lock:
        _found = None
        _problems.clear()
        _reported.clear()
        _failed.clear()
    unregister()


def unregister() -> None:
    """Take the plugins' metrics out of METRICS and their tables out of EXPORTS, and forget
    the reporter; what was discovered stays cached (tests: one app's plugins must not leak
    into the next test's metric list)."""
    set_reporter(None)
    for name in [n for n in EXPORTS if EXPORTS[n][0].startswith(EXPORT_PREFIX)]:
        del EXPORTS[name]
    from neuroscope_tui.analysis import metrics

    for name in [n for n, m in metrics.METRICS.items() if m.array.startswith(EXPORT_PREFIX)]:
        del metrics.METRICS[name]


def set_reporter(report: Callable[[PluginProblem], None] | None) -> None:
    """Who hears of a plugin failing while it runs (the app's notices); None: nobody, the
    problem is only collected."""
    global _reporter
    _reporter = report


def disabled() -> bool:
    """Whether NEUROSCOPE_NO_PLUGINS asks for no plugins at all (a plugin that misbehaves
    worse than by raising, or tests that want the built-in lists only)."""
    return os.environ.get(NO_PLUGINS_VARIABLE, "") not in ("", "0")


def discover() -> dict[str, list[Plugin]]:
    """Every installed plugin by kind, not yet imported (cached); none when disabled()."""
    global _found
    if disabled():
        return {kind: [] for kind in GROUPS}
    with _lock:
        if _found is None:
            _found = {kind: _entries(kind) for kind in GROUPS}
        return _found


def _entries(kind: str) -> list[Plugin]:
    out: list[Plugin] = []
    for ep in sorted(entry_points(group=GROUPS[kind]), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        plugin = Plugin(
            kind,
            sanitise(ep.name),
            dist.name if dist is not None else "unknown distribution",
            dist.version if dist is not None else "",
            ep.value,
            ep,
        )
        if not plugin.name:
            plugin.name = ep.name or "?"
            _refuse(plugin, f"its entry-point name {ep.name!r} has no usable letters")
        out.append(plugin)
    return out


def _refuse(plugin: Plugin, error: str) -> None:
    plugin.loaded, plugin.error = True, error
    _problems.append(PluginProblem(plugin.kind, plugin.name, plugin.distribution, error))


def one_sentence(err: BaseException) -> str:
    """An exception as one short sentence: its type and the first line of its message."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text[:200]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def plugins(kind: str) -> list[Plugin]:
    """The plugins of `kind`, each imported and checked once; refused ones included."""
    found = discover()[kind]
    taken: set[str] = set()
    for plugin in found:
        if not plugin.loaded:
            _load(plugin, taken)
        if plugin.ok:
            taken.add(plugin.name)
    return found


def loaded(kind: str) -> list[Plugin]:
    """The plugins of `kind` that imported and passed their checks."""
    return [p for p in plugins(kind) if p.ok]


def problems() -> list[PluginProblem]:
    """Every plugin left out or failed so far, in the order found."""
    return list(_problems)


def new_problems() -> list[PluginProblem]:
    """The problems not yet told to the user (each plugin is told once)."""
    out = []
    for problem in _problems:
        key = (problem.kind, problem.name)
        if key not in _reported:
            _reported.add(key)
            out.append(problem)
    return out


def _load(plugin: Plugin, taken: set[str]) -> None:
    assert plugin.entry is not None
    try:
        obj = plugin.entry.load()
    except Exception as err:  # a plugin's import may raise anything: it must not stop us
        _refuse(plugin, f"it failed to import ({one_sentence(err)})")
        return
    check = {"views": _check_view, "metrics": _check_metric, "analyses": _check_analysis}
    error = check[plugin.kind](plugin, obj)
    if error is None and plugin.name in taken:
        error = f"another {kind_word(plugin.kind)} plugin already uses the name {plugin.name!r}"
    if error is not None:
        _refuse(plugin, error)
        return
    plugin.obj, plugin.loaded = obj, True


def _check_view(plugin: Plugin, obj: Any) -> str | None:
    from neuroscope_tui.tui.views.base import TraceView
    from neuroscope_tui.tui.views.registry import VIEWS

    if not (isinstance(obj, type) and issubclass(obj, TraceView)):
        return "it is not a TraceView subclass"
    name, title = vars(obj).get("name"), vars(obj).get("title")
    if not isinstance(name, str) or not isinstance(title, str) or not title.strip():
        return "it needs `name` and `title` class attributes (text)"
    plugin.name = sanitise(name) or plugin.name
    if plugin.name in {v.name for v in VIEWS}:
        return f"its name {plugin.name!r} is a built-in view's"
    return None


def _check_metric(plugin: Plugin, obj: Any) -> str | None:
    from neuroscope_tui.analysis.metrics import METRICS

    if not callable(obj):
        return "it is not a function of the trace"
    builtin = {n for n, m in METRICS.items() if not m.array.startswith(EXPORT_PREFIX)}
    if plugin.name in builtin:
        return f"its name {plugin.name!r} is a built-in metric's"
    return _check_export_name(plugin)


def _check_analysis(plugin: Plugin, obj: Any) -> str | None:
    if not callable(obj):
        return "it is not a function of the trace"
    return _check_export_name(plugin)


def _check_export_name(plugin: Plugin) -> str | None:
    target = EXPORTS.get(plugin.name, (EXPORT_PREFIX,))[0]
    if not target.startswith(EXPORT_PREFIX):
        return f"its name {plugin.name!r} is a built-in export's"
    other = target[len(EXPORT_PREFIX) :].split(":")[0]
    if other and other != plugin.kind:  # a metric and an analysis of the same name
        return f"a {kind_word(other)} plugin already uses the name {plugin.name!r}"
    return None


def report_failure(plugin: Plugin, error: str) -> None:
    """A plugin failed while it ran (a view's drawing, say): collect it, tell the user once."""
    _report(plugin, error)


def _report(plugin: Plugin, error: str) -> None:
    """A plugin failed while it ran: collect it, and tell the user the first time."""
    key = (plugin.kind, plugin.name)
    problem = PluginProblem(plugin.kind, plugin.name, plugin.distribution, error)
    with _lock:
        if key in _failed:
            return
        _failed.add(key)
        _problems.append(problem)
        reporter = _reporter
        if reporter is not None:
            _reported.add(key)
    if reporter is not None:
        reporter(problem)


# ---- metrics ---------------------------------------------------------------------------------


def metric_grid(plugin: Plugin, trace: Trace) -> np.ndarray:
    """The plugin metric's values, float32 [layer, token]; PluginError when it raises or
    returns another shape."""
    shape = (len(trace.layers()), trace.n_tokens)
    try:
        values = np.asarray(plugin.obj(trace), dtype=np.float32)
    except Exception as err:
        raise PluginError(plugin, f"failed: {one_sentence(err)}") from None
    if values.shape != shape:
        raise PluginError(
            plugin, f"returned an array of shape {values.shape}, not [layer, token] {shape}"
        )
    return values


def _what(plugin: Plugin) -> str:
    return f"the {kind_word(plugin.kind)} plugin {plugin.name!r} ({plugin.distribution})"


def soft_metric(plugin: Plugin) -> Callable[[Trace], np.ndarray]:
    """The metric as the heatmap calls it: a failure is an empty grid and one notice."""

    def values(trace: Trace) -> np.ndarray:
        try:
            return metric_grid(plugin, trace)
        except PluginError as err:
            _report(plugin, err.reason)
            return np.full((len(trace.layers()), trace.n_tokens), np.nan, dtype=np.float32)

    return values


def metric_table(plugin: Plugin, trace: Trace) -> Table:
    """A metric plugin's values per layer and token, long format (its `export` table)."""
    values = metric_grid(plugin, trace)
    rows = [
        [layer, t, trace.token_text[t], t >= trace.n_prompt, float(values[row, t])]
        for row, layer in enumerate(trace.layers())
        for t in range(trace.n_tokens)
    ]
    return Table(["layer", "token_index", "token_text", "is_generated", plugin.name], rows)


# ---- analyses --------------------------------------------------------------------------------


def needs_model(plugin: Plugin) -> bool:
    return bool(getattr(plugin.obj, "needs_model", False))


def analysis_table(plugin: Plugin, trace: Trace, model: Any = None) -> Table:
    """Run an analysis plugin and make what it returns a Table; PluginError when it needs a
    model that is not there, raises, or returns something else."""
    if needs_model(plugin) and model is None:
        raise PluginError(plugin, "needs the live model; run it with a model loaded")
    try:
        result = plugin.obj(trace, model) if needs_model(plugin) else plugin.obj(trace)
    except NeuroscopeError:
        raise
    except Exception as err:
        raise PluginError(plugin, f"failed: {one_sentence(err)}") from None
    table = as_table(result)
    if table is None:
        raise PluginError(
            plugin,
            f"returned {type(result).__name__}, not a Table, a list of dicts "
            "or a (columns, rows) pair",
        )
    return table


def as_table(result: Any) -> Table | None:
    """A Table from what an analysis returned, or None when it is none of the three forms."""
    if isinstance(result, Table):
        return result
    if isinstance(result, list) and all(isinstance(r, dict) for r in result):
        columns: list[str] = []
        for record in result:
            columns += [str(k) for k in record if str(k) not in columns]
        return Table(columns, [[r.get(c) for c in columns] for r in result])
    if isinstance(result, tuple) and len(result) == 2:
        columns, rows = result
        if isinstance(columns, (list, tuple)) and all(
            isinstance(r, (list, tuple)) and len(r) == len(columns) for r in rows
        ):
            return Table([str(c) for c in columns], [list(r) for r in rows])
    return None


def description(plugin: Plugin) -> str:
    """One line on what the plugin gives, from its `description` or its docstring."""
    text = getattr(plugin.obj, "description", None) or (plugin.obj.__doc__ or "")
    text = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return text[:100]


# ---- registration: metrics into the scan's cycle, metrics and analyses into `export` ----------


def register() -> list[PluginProblem]:
    """Add the metric plugins to METRICS and both metrics and analyses to EXPORTS (again
    harmless); the problems found so far."""
    from neuroscope_tui.analysis.metrics import METRICS, Metric, add_metric

    for plugin in loaded("metrics"):
        label = str(getattr(plugin.obj, "label", "") or plugin.name)
        unit = str(getattr(plugin.obj, "unit", "") or "")
        if plugin.name not in METRICS:
            add_metric(
                Metric(
                    plugin.name,
                    f"{label} (plugin)",
                    unit,
                    soft_metric(plugin),
                    array=f"{EXPORT_PREFIX}{plugin.name}",
                )
            )
        desc = description(plugin) or f"per layer and token: {label}"
        EXPORTS[plugin.name] = (f"{EXPORT_PREFIX}metrics:{plugin.name}", f"(plugin) {desc}")
    for plugin in loaded("analyses"):
        desc = description(plugin) or "a table from the trace"
        EXPORTS[plugin.name] = (f"{EXPORT_PREFIX}analyses:{plugin.name}", f"(plugin) {desc}")
    return problems()


def export_function(target: str) -> Callable[[Trace], Table]:
    """The table function of an EXPORTS target "plugin:<kind>:<name>"."""
    kind, name = target[len(EXPORT_PREFIX) :].split(":", 1)
    plugin = next(p for p in loaded(kind) if p.name == name)
    if kind == "metrics":
        return lambda trace: metric_table(plugin, trace)
    return lambda trace: analysis_table(plugin, trace)
