"""The app's header line and the prompt/generated-text line under the prompt input.

`header_text` and `run_text` are pure, so the figures they show are tested without an app.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from neuroscope_tui import text_safety
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.widgets.detail import visible


def human_bytes(n: int | None) -> str:
    """Bytes as B / KiB / MiB / GiB with 3 significant digits."""
    if n is None:
        return "–"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:.3g} GiB"


def captured_bytes(trace: Trace | None) -> int:
    """The bytes the trace's arrays hold (what a run captured)."""
    if trace is None:
        return 0
    return sum(int(a.nbytes) for a in list(trace.arrays.values()))


@dataclass
class HeaderFigures:
    """What the header shows: the model and the live figures of the run."""

    model: str = "no model"
    device: str = ""
    dtype: str = ""
    state: str = ""
    tokens_per_s: float | None = None
    captured: int = 0
    gpu_bytes: int | None = None
    source: str = ""  # "live" or the snapshot path
    chat: bool = False  # prompts are wrapped in the model's chat template (--chat)
    estimate: int | None = None  # the run's memory estimate (capture/memory.py), bytes


def header_text(f: HeaderFigures, width: int | None = None) -> Text:
    """One line: name · model · device · dtype · state · tok/s · captured · GPU memory.

    Given a `width`, the figures a user needs least give way first (dtype, device, the memory
    estimate, bytes captured, GPU memory, tok/s) so the model and the run's state stay whole;
    only then is the line cut with an ellipsis. The model name, device, dtype, source and
    state may come from a snapshot file or the command line: their control characters are
    shown as escapes.
    """
    shown = text_safety.visible
    # (text, style, how late it gives way: 0 = never)
    parts: list[tuple[str, str, int]] = [
        (" neuroscope ", "bold reverse", 0),
        (f" {shown(f.model)}", "bold", 0),
    ]
    if f.device:
        parts.append((f" · {shown(f.device)}", "", 5))
    if f.dtype:
        parts.append((f" · {shown(f.dtype)}", "", 6))
    if f.source:
        parts.append((f" · {shown(f.source)}", "italic", 0))
    if f.chat:
        parts.append((" · chat", "bold", 0))
    if f.state:
        parts.append((f" · {shown(f.state)}", "bold", 0))
    if f.tokens_per_s is not None:
        parts.append((f" · {f.tokens_per_s:.1f} tok/s", "", 1))
    parts.append((f" · {human_bytes(f.captured)} captured", "", 4))
    if f.estimate is not None:
        parts.append((f" · est. {human_bytes(f.estimate)}", "", 7))
    if f.gpu_bytes is not None:
        parts.append((f" · GPU {human_bytes(f.gpu_bytes)}", "", 3))
    if width is not None:
        for rank in (7, 6, 5, 4, 3, 1):
            if sum(len(t) for t, _, _ in parts) <= width:
                break
            parts = [p for p in parts if p[2] != rank]
    out = Text(no_wrap=True, overflow="ellipsis")
    for text, style, _ in parts:
        out.append(text, style=style)
    return out


def run_text(trace: Trace | None) -> Text:
    """The prompt, then the generated text in the accent colour, whitespace made visible."""
    out = Text(no_wrap=True, overflow="ellipsis")
    if trace is None or trace.n_tokens == 0:
        out.append("no run yet", style="dim")
        return out
    # the count first: a long prompt cuts the line's end, and the count must stay readable
    out.append(f"[{trace.n_prompt} prompt + {trace.n_generated} generated tokens]  ", style="dim")
    prompt = "".join(trace.token_text[: trace.n_prompt])
    out.append(visible(prompt, 10_000))
    out.append(visible(trace.generated_text, 10_000) if trace.n_generated else "", style="bold")
    return out


class StatusHeader(Static):
    """The header line at the top of the app; `show(figures)` redraws it."""

    DEFAULT_CSS = "StatusHeader { height: 1; background: $panel; }"

    figures = HeaderFigures()

    def show(self, figures: HeaderFigures) -> None:
        self.figures = figures
        self.refresh()

    def render(self) -> Text:
        return header_text(self.figures, self.size.width or None)
