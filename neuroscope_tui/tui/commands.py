"""The command palette's provider (ctrl+p): every keyed action of the app, by name.

It lists the same bindings as the help screen (`app.key_sections()`: the app's, the view on
screen's and its focusable widgets') and runs the chosen one on the widget that owns it. A
query is matched against the key's description first, then against the words of the action's
docstring and its section ("metric" finds the heads view's "score": its action colours the
grid by another head metric).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from neuroscope_tui.tui.help import as_bindings, key_label


@dataclass(frozen=True)
class Command:
    """One palette entry: what it is called, the line under it, the words it is found by."""

    name: str
    help: str
    words: str
    run: Any


def action_doc(node: Any, action: str) -> str:
    """The first line of the docstring of `node`'s method for `action` ("cycle_score" or
    "step_layer(1)"), or ""."""
    name = action.split("(", 1)[0]
    if "." in name:  # "app.quit": the namespace is not ours to look into
        return ""
    method = getattr(node, f"action_{name}", None)
    doc = (getattr(method, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


class ActionCommands(Provider):
    """Every action that has a key, found by its description or what it does."""

    def _commands(self) -> list[Command]:
        out = []
        seen: set[tuple[str, str]] = set()  # one entry per action (q and ctrl+c both quit)
        for title, node, bindings in self.app.key_sections():
            for b in as_bindings(bindings):
                if not b.description or (title, b.action) in seen:
                    continue
                seen.add((title, b.action))
                doc = action_doc(node, b.action)
                where = f"{title} · key {key_label(b.key)}"
                out.append(
                    Command(
                        b.description,
                        f"{doc} ({where})" if doc else where,
                        f"{doc} {title}".lower(),
                        partial(self.app.run_action, b.action, node),
                    )
                )
        return out

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.name, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        words = query.lower().split()
        for command in self._commands():
            score = matcher.match(command.name)
            if score > 0:
                yield Hit(score, matcher.highlight(command.name), command.run, help=command.help)
            elif words and all(w in command.words for w in words):
                # found by what it does: ranked below every match on the name
                yield Hit(0.1, command.name, command.run, help=command.help)
