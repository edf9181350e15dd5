"""The command palette's provider (ctrl+p): every keyed action of the app, by name.

It lists the same bindings as the help screen (the app's, the view on screen's and the
heatmap's) and runs the chosen one on the widget that owns it.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from neuroscope_tui.tui.help import as_bindings, key_label


class ActionCommands(Provider):
    """Every action that has a key, found by its description."""

    def _commands(self) -> list[tuple[str, str, object]]:
        """(name shown, help, callback) for each described binding."""
        out = []
        seen: set[tuple[str, str]] = set()  # one entry per action (q and ctrl+c both quit)
        for title, node, bindings in self.app.key_sections():
            for b in as_bindings(bindings):
                if not b.description or (title, b.action) in seen:
                    continue
                seen.add((title, b.action))
                callback = partial(self.app.run_action, b.action, node)
                out.append((f"{b.description}", f"{title} · key {key_label(b.key)}", callback))
        return out

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
