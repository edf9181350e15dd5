"""`text_safety`: hostile strings made visible, markup-proof and JSON-exact.

Markup safety is checked with Textual's own parser (the one `Static`, `Label` and `notify`
use), not against a copy of its rules.
"""

from __future__ import annotations

import json

import pytest
from rich.text import Text
from textual.content import Content

from neuroscope_tui.text_safety import (
    json_safe,
    markup_safe,
    one_cell_each,
    printable_json,
    visible,
    visible_text,
)

# (hostile text, what `visible` shows)
TABLE = [
    ("plain words, é 中 ü", "plain words, é 中 ü"),
    ("", ""),
    ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
    ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
    ("\x9b31m", "\\x9b31m"),
    ("\x00", "\\x00"),
    ("\x7f", "\\x7f"),
    ("a\rb", "a\\rb"),
    ("a\nb\tc", "a\\nb\\tc"),
    ("\u202eevil\u202c", "\\u202eevil\\u202c"),
    ("\u2066iso\u2069", "\\u2066iso\\u2069"),
    ("\u200b", "\\u200b"),
    ("\ud800", "\\ud800"),  # a lone surrogate (JSON can carry one) cannot even be encoded
    ("\U000e0041", "\\U000e0041"),  # a tag character: invisible, outside the BMP
    ("[/]", "[/]"),
    ("[@click=app.quit]", "[@click=app.quit]"),
]
HOSTILE = [text for text, _ in TABLE] + [
    "[bold red]x[/]", "[$accent]x", "[B]x", "tail\\", "\\[b]", "[b]\\", "a\\\\[/]",
]  # fmt: skip


def printable(text: str, newlines: bool = False) -> bool:
    return all(ch.isprintable() or (newlines and ch == "\n") for ch in text)


@pytest.mark.parametrize(("text", "shown"), TABLE)
def test_visible_writes_each_control_character_as_its_escape(text, shown):
    assert visible(text) == shown
    assert printable(visible(text))


def test_visible_keeps_newlines_only_when_the_text_is_meant_to_span_lines():
    assert visible("a\nb\x1b", newlines=True) == "a\nb\\x1b"
    assert visible("a\nb") == "a\\nb"


@pytest.mark.parametrize("text", HOSTILE)
def test_markup_safe_text_inside_markup_renders_literally(text):
    # The text between two real tags: it must neither crash the parser, nor close or open a
    # tag, nor add an action; and what shows is exactly `visible(text)`.
    content = Content.from_markup(f"[b]{markup_safe(text)}[/b] after")
    # (a text ending in a backslash gets a zero-width space: see markup_safe)
    shown = content.plain.replace("\u200b", "")
    assert shown == f"{visible(text)} after" and printable(shown)
    assert all(span.style == "b" for span in content.spans)


@pytest.mark.parametrize("text", ["[$accent]x", "[B]x", "tail\\"])
def test_rich_markup_escape_alone_is_not_enough_for_textual(text):
    from rich.markup import escape

    # why markup_safe exists: Textual's parser reads these after Rich's escape
    assert Content.from_markup(f"[i]{escape(text)}[/i]").plain != text
    assert Content.from_markup(f"[i]{markup_safe(text)}[/i]").plain.rstrip("\u200b") == text


@pytest.mark.parametrize("text", HOSTILE)
def test_json_safe_is_printable_and_gives_back_the_exact_text(text):
    doc = {"token_text": text, "k\x1b": [text, 1.5]}
    out = json_safe(doc, indent=2)
    assert printable(out, newlines=True)
    assert json.loads(out) == doc


def test_printable_json_leaves_json_whitespace_alone():
    raw = json.dumps({"a": ["\u202e", 1]}, ensure_ascii=False, indent="\t")
    assert printable_json(raw) == raw.replace("\u202e", "\\u202e")


@pytest.mark.parametrize("text", HOSTILE)
def test_one_cell_each_keeps_every_position(text):
    shown = one_cell_each(text)
    assert len(shown) == len(text) and printable(shown)
    assert one_cell_each("a\x1bb\x00\x7f\u202e") == "a␛b␀␡\ufffd"


def test_visible_text_keeps_each_style_on_its_characters():
    text = Text("ab\x1bc", style="italic")
    text.stylize("bold", 1, 3)  # "b\x1b"
    text.append("\u202ez", "red")
    shown = visible_text(text)
    assert shown.plain == "ab\\x1bc\\u202ez" and shown.style == "italic"
    styled = {str(s.style): shown.plain[s.start : s.end] for s in shown.spans}
    assert styled == {"bold": "b\\x1b", "red": "\\u202ez"}
    already = Text("fine\nlines")
    assert visible_text(already) is already
