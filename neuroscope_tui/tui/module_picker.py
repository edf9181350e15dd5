"""The module picker: which of the model's modules the next run watches (`--watch` in the app).

A tree of the model's named modules (from the model worker: tui/engine.py `module_names`),
each with a check box. Space checks or unchecks the module under the cursor, Enter applies
the checked ones to the next run's capture (capture/watch.py records their per-token
summaries), Escape leaves what the next run watches as it was. Right and left open and close
a branch. The screen returns the checked module names, or None when cancelled.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from neuroscope_tui.text_safety import visible


def as_pattern(name: str) -> str:
    """A module name as a glob that matches only it (`[`, `*`, `?` bracketed)."""
    return re.sub(r"([\[*?])", r"[\1]", name)


def matching(names: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The names any of `patterns` matches (as capture/watch.py matches them)."""
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def _grouped(keep: list[str], names: Sequence[str]) -> list[str]:
    """Patterns for `keep`: where every layer's copy of a module is kept (`...layers.0.mlp`,
    `...layers.1.mlp`, ...), one pattern with `*` for the layer number, so the scan shows
    them as one [layer, token] metric; other modules by their exact name."""
    kept, out, done = set(keep), [], set()
    for name in keep:
        if name in done:
            continue
        parts = as_pattern(name).split(".")
        numbers = [i for i, part in enumerate(parts) if part.isdigit()]
        pattern = as_pattern(name)
        if numbers:
            parts[numbers[0]] = "*"
            wide = ".".join(parts)
            hits = matching(names, (wide,))
            if len(hits) > 1 and all(hit in kept for hit in hits):
                pattern = wide
                done.update(hits)
        done.add(name)
        out.append(pattern)
    return out


def next_watch(
    checked: Sequence[str], names: Sequence[str], watch_full: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """The next run's `watch` and `watch_full` from the picker's checked modules: a module
    that kept its full rows before keeps them while checked; the rest get summaries."""
    full = set(matching(names, watch_full))
    keep = [n for n in names if n in set(checked)]
    return {
        "watch": tuple(_grouped([n for n in keep if n not in full], names)),
        "watch_full": tuple(_grouped([n for n in keep if n in full], names)),
    }


class ModuleTree(Tree[str]):
    """The module tree; its keys check modules rather than select them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_check", "check / uncheck"),
        Binding("enter", "apply", "apply to the next run"),
        Binding("right", "open_branch", "open", show=False),
        Binding("left", "close_branch", "close", show=False),
    ]

    def __init__(self, names: Sequence[str], checked: Iterable[str]) -> None:
        super().__init__("modules", id="module-tree")
        self.show_root = False
        self.checked: set[str] = set(checked)
        self._by_name: dict[str, TreeNode[str]] = {}
        parents = {n.rsplit(".", 1)[0] for n in names if "." in n}
        for name in names:  # named_modules order: a parent comes before its children
            parent_name = name.rsplit(".", 1)[0] if "." in name else ""
            parent = self._by_name.get(parent_name, self.root)
            label = self._label(name)
            if name in parents:
                node = parent.add(label, data=name)
            else:
                node = parent.add_leaf(label, data=name)
            self._by_name[name] = node
        self.root.expand()
        for name in self.checked:  # open the way to each checked module
            self.reveal(name)

    def reveal(self, name: str) -> TreeNode[str] | None:
        """Open every branch above module `name`; its node (None for an unknown name)."""
        node = self._by_name.get(name)
        above = node.parent if node is not None else None
        while above is not None:
            above.expand()
            above = above.parent
        return node

    def _label(self, name: str) -> Text:
        # Text, not markup: "[x]" and a module's own name are shown as they are
        box = "[x] " if name in self.checked else "[ ] "
        return Text(box, style="bold" if name in self.checked else "") + Text(
            visible(name.rsplit(".", 1)[-1])
        )

    def action_toggle_check(self) -> None:
        """Check or uncheck the module under the cursor."""
        node = self.cursor_node
        if node is None or node.data is None:
            return
        name = node.data
        self.checked.symmetric_difference_update({name})
        node.set_label(self._label(name))
        self.screen.query_one("#picker-count", Static).update(self.screen.count_text())

    def action_apply(self) -> None:
        """Apply the checked modules to the next run."""
        self.screen.dismiss(sorted(self.checked, key=list(self._by_name).index))

    def action_open_branch(self) -> None:
        if self.cursor_node is not None:
            self.cursor_node.expand()

    def action_close_branch(self) -> None:
        node = self.cursor_node
        if node is not None and node.is_expanded:
            node.collapse()
        elif node is not None and node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)


class ModulePicker(ModalScreen[list[str] | None]):
    """Check the modules the next run watches; Enter applies, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]

    DEFAULT_CSS = """
    ModulePicker { align: center middle; }
    ModulePicker > Vertical {
        width: 90; max-width: 100%; height: 90%; border: thick $primary; padding: 0 1;
        background: $surface;
    }
    ModulePicker ModuleTree { height: 1fr; }
    """

    def __init__(self, model_name: str, names: Sequence[str], checked: Iterable[str]) -> None:
        super().__init__()
        self.model_name = model_name
        self.names = list(names)
        self.initial = [n for n in self.names if n in set(checked)]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                Text(f"modules of {visible(self.model_name)} to watch in the next run", "bold")
            )
            yield Static(
                "space checks, enter applies, esc cancels; right/left open and close",
                id="picker-keys",
            )
            yield Static(self.count_text(len(self.initial)), id="picker-count")
            yield ModuleTree(self.names, self.initial)

    def on_mount(self) -> None:
        self.query_one(ModuleTree).focus()

    def count_text(self, n: int | None = None) -> str:
        if n is None:
            n = len(self.query_one(ModuleTree).checked)
        return f"{n} module{'' if n == 1 else 's'} checked"

    def action_cancel(self) -> None:
        """Close without changing what the next run watches."""
        self.dismiss(None)
