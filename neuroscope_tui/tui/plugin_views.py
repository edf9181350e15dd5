"""Plugin views in the app: which key each gets, and how the app tells of broken plugins.

A view plugin (neuroscope_tui/plugins.py) gets the next free key of PLUGIN_KEYS: the
shifted number row from @ to ), which no app, view or widget binding uses (the letters are
all taken by some view, and a focused view's letter would shadow an app-wide one). Past the
ninth plugin view there is no safe single key left: the rest open from the command palette
(ctrl+p) only, and the help screen shows them with the key "palette". A plugin view that
raises while it draws says so in its place and is reported once; the app goes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual.app import RenderResult
from textual.binding import Binding, BindingType

from neuroscope_tui import plugins
from neuroscope_tui.text_safety import visible
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.help import as_bindings
from neuroscope_tui.tui.views.base import Selection, TraceView
from neuroscope_tui.tui.views.registry import VIEWS, ViewEntry

# @ # $ % ^ & * ( ): shift+2 .. shift+0 on a US keyboard ("!" is the diagnostics view)
PLUGIN_KEYS: tuple[str, ...] = (
    "at",
    "number_sign",
    "dollar_sign",
    "percent_sign",
    "circumflex_accent",
    "ampersand",
    "asterisk",
    "left_parenthesis",
    "right_parenthesis",
)
PALETTE_ONLY = "palette"  # the "key" of a plugin view past the ninth: listed, never bound


@dataclass(frozen=True)
class PluginView:
    """A view plugin as the app shows it: its registry entry and its class."""

    entry: ViewEntry
    cls: type[TraceView]

    @property
    def keyed(self) -> bool:
        return self.entry.key != PALETTE_ONLY

    def binding(self) -> Binding:
        return Binding(self.entry.key, f"show_view('{self.entry.name}')", self.entry.title)


def guarded(cls: type[TraceView], plugin: plugins.Plugin) -> type[TraceView]:
    """`cls` with its drawing guarded: an exception from `show_trace`, `show_selection` or
    `render` is reported once (plugins.report_failure) and the view says it failed instead
    of taking the app down. Its keys and actions are its own and are not guarded."""

    class Guarded(cls):  # type: ignore[valid-type, misc]
        failure: str | None = None

        def _failed(self, err: Exception) -> None:
            if self.failure is None:
                self.failure = plugins.one_sentence(err)
                plugins.report_failure(plugin, f"failed while drawing: {self.failure}")
            self.refresh()

        def show_trace(self, trace: Trace) -> None:
            try:
                super().show_trace(trace)
            except Exception as err:  # a plugin's code may raise anything
                self._failed(err)

        def show_selection(self, selection: Selection) -> None:
            try:
                super().show_selection(selection)
            except Exception as err:
                self._failed(err)

        def render(self) -> RenderResult:
            if self.failure is None:
                try:
                    return super().render()
                except Exception as err:
                    self._failed(err)
            return Text(f"This plugin view ({plugin.where}) failed: {visible(self.failure or '')}")

    # Textual's CSS matches type names: keep the plugin's, so its DEFAULT_CSS still applies
    Guarded.__name__ = Guarded.__qualname__ = cls.__name__
    return Guarded


def taken_keys(bindings: Iterable[BindingType]) -> set[str]:
    """Every key the app's own bindings (views' number keys included) use."""
    keys = {k.strip() for b in as_bindings(bindings) for k in b.key.split(",")}
    return keys | {v.key for v in VIEWS}


def plugin_views(taken: set[str]) -> list[PluginView]:
    """The installed view plugins that loaded, each with the next free key (or the palette)."""
    free = [k for k in PLUGIN_KEYS if k not in taken]
    out = []
    for plugin in plugins.loaded("views"):
        key = free.pop(0) if free else PALETTE_ONLY
        title = f"{plugin.obj.title.strip()} (plugin)"
        entry = ViewEntry(key, plugin.name, title, plugin.target)
        out.append(PluginView(entry, guarded(plugin.obj, plugin)))
    return out


def problems_notice(problems: list[plugins.PluginProblem]) -> str:
    """One line per plugin left out, for the app's notice."""
    lines = [p.sentence() for p in problems]
    return "\n".join(f"{line[0].upper()}{line[1:]}." for line in lines)
