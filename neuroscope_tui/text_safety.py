"""Text from a file, a model or a user, made safe to show on a terminal.

Token texts, model names, notes and prompts come from snapshots, tokenizers and command lines
that anyone may have written. Printed raw, an ESC or CSI byte is a terminal command (one can
retitle the window or move the cursor), a bidi override reorders what follows it, and `[/]`
or `[@click=app.quit]` is Textual markup. Everything such a text passes through on its way to
a screen or to stdout goes through one of these functions:

- `visible(text)`: every character that is not printable is shown as the escape Python's
  `repr` uses: `\\n`, `\\t`, `\\r`, `\\x1b`, `\\x9b`, `\\u202e`, `\\U000e0001`. Ordinary spaces
  and all printable Unicode stay as they are; with `newlines=True` a newline stays a newline
  (for texts meant to span lines). A backslash already in the text is left alone, so a
  literal four-character `\\x1b` reads the same as an escaped ESC: the point is that no
  control character reaches the terminal, not a reversible encoding (JSON output keeps
  the exact text; see `json_safe`).
- `markup_safe(text)`: `visible`, then every `[` escaped for Textual's content markup (the
  markup `Static`, `Label` and `notify` read), so the result can sit inside a markup string.
- `json_safe(doc)` / `printable_json(json_text)`: JSON text whose strings keep their exact
  value but spell every non-printable character as a `\\uXXXX` escape.
- `visible_text(rich_text)`: `visible` for a Rich `Text`, its styles kept.
- `one_cell_each(text)`: for an editable field, where every character must keep its own
  cell: each non-printable becomes one printable picture (ESC -> '␛', NUL -> '␀', others '�').

No Textual, Rich or torch import: the CLI uses it too.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(ch: str) -> str:
    """One non-printable character as Python's `repr` spells it."""
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, *, newlines: bool = False) -> str:
    """`text` with every non-printable character (C0/C1 controls, DEL, bidi controls, other
    format and separator characters, lone surrogates) written as its escape; spaces and
    printable Unicode unchanged; newlines kept only when `newlines` is true."""
    text = str(text)
    if text.isprintable():  # the common case, checked in C
        return text
    return "".join(
        ch if ch.isprintable() or (newlines and ch == "\n") else _escape(ch) for ch in text
    )


def markup_safe(text: str, *, newlines: bool = False) -> str:
    """`visible(text)` written so Textual's content markup shows it literally.

    Textual reads every unescaped `[` as the start of a tag (`[/]` closes one, `[@click=...]`
    is an action) and `\\[` as a literal `[`, whatever precedes it; so every `[` is escaped.
    A trailing backslash would escape the `[` of a tag written after the text, and Textual
    has no way to write a literal backslash just before a tag, so a zero-width space follows
    it.
    """
    shown = visible(text, newlines=newlines).replace("[", "\\[")
    return shown + "\u200b" if shown.endswith("\\") else shown


def printable_json(text: str) -> str:
    """JSON text (from `json.dumps(..., ensure_ascii=False)`) with every non-printable
    character that JSON leaves raw (DEL, C1 controls, bidi controls, lone surrogates...)
    escaped as `\\uXXXX`. json.dumps already escapes the controls below U+0020 inside
    strings, so a raw newline or tab can only be JSON's own whitespace, which is kept; every
    other escape lands inside a string, and a reader gets back exactly the original text."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in "\n\t\r" else _json_escape(ch) for ch in text)


def json_safe(doc: Any, **dumps_options: Any) -> str:
    """`json.dumps(doc, ensure_ascii=False, **dumps_options)` made printable (see
    `printable_json`)."""
    return printable_json(json.dumps(doc, ensure_ascii=False, **dumps_options))


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: JSON spells it as a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def one_cell_each(text: str) -> str:
    """`text` with each non-printable character replaced by one printable character (its
    Unicode control picture for C0 controls and DEL, else U+FFFD), so positions and lengths
    stay those of the original: for an editable field whose cursor indexes the text."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch.isprintable():
            out.append(ch)
        elif code < 0x20:
            out.append(chr(0x2400 + code))  # ␀ ... ␟
        elif code == 0x7F:
            out.append("\u2421")  # ␡
        else:
            out.append("\ufffd")
    return "".join(out)


def visible_text(text: Text, *, newlines: bool = True) -> Text:
    """A Rich `Text` with `visible` applied to its characters, its styles kept on the same
    characters (a Text is never read as markup, but Rich passes ESC and bidi controls through
    to the terminal)."""
    plain = text.plain
    if plain.replace("\n", "").isprintable() if newlines else plain.isprintable():
        return text
    cuts = sorted({0, len(plain), *(s.start for s in text.spans), *(s.end for s in text.spans)})
    out = text.blank_copy()
    for a, b in pairwise(cuts):
        piece = visible(plain[a:b], newlines=newlines)
        start = len(out)
        out.append(piece)
        for span in text.spans:
            if span.start <= a and b <= span.end:
                out.stylize(span.style, start, start + len(piece))
    return out
