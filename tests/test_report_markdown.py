"""The Markdown report: the same content as the HTML one, figures as tables, and hostile text
that cannot change the document's shape (no raw HTML, no table cell split, no link)."""

from __future__ import annotations

import re

from _fixtures_report import HOSTILE, PROMPTS, TOKENS, empty_report, sample_report
from neuroscope_tui.report.markdown import md, render_markdown


def table_rows(text: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header line starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        # split on pipes that are not backslash-escaped
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([c.strip() for c in cells])
    return rows


def test_summary_table_has_one_row_per_finding_most_severe_first():
    text = render_markdown(sample_report(), prompts=PROMPTS, tokens=TOKENS)
    assert text.index("## Summary") < text.index("## Findings") < text.index("## Skipped")
    rows = table_rows(text, "| # | severity")
    assert [r[1] for r in rows] == ["error", "warning", "info"]
    assert all(len(r) == 4 for r in rows)  # a hostile title did not split its cell
    for r in rows:
        anchor = re.search(r"\]\(#(finding-\d)\)$", r[3]).group(1)
        assert f'<a id="{anchor}"></a>' in text


def test_curves_become_a_table_per_layer():
    text = render_markdown(sample_report(hostile=False))
    rows = table_rows(text, "| layer | peak")
    assert len(rows) == 30
    assert rows[20] == ["20", "4,001"]  # 1 + 10 * 20**2
    nan_rows = table_rows(text, "| layer | NaN count")
    assert [r[1] for r in nan_rows[:6]] == ["0", "0", "NaN", "inf", "128", "128"]
    assert "Per layer (threshold ratio: 100):" in text
    dead_rows = table_rows(text, "| layer | dead fraction | neurons per layer")
    assert dead_rows[1] == ["1", "0.12", "1,536"]


def test_skipped_detectors_and_timings_are_listed():
    text = render_markdown(sample_report(hostile=False))
    skipped = table_rows(text, "| detector | why")
    assert skipped[0][0] == "gradient\\_health"
    assert "--no-gradients" in skipped[0][1]
    timings = dict(r[:2] for r in table_rows(text, "| stage or detector"))
    # capture.traces is part of capture: counted once in the total
    assert timings["**total**"] == "1.7 s" and timings["numerics"] == "10 ms"


def test_hostile_text_stays_text():
    text = render_markdown(sample_report(), prompts=PROMPTS, tokens=TOKENS)
    assert "<script" not in text and "<img" not in text
    assert "\x1b" not in text and "\u202e" not in text
    assert "&lt;script&gt;" in text and "\\x1b" in text
    # no Markdown link or image can come from the text: every [ ] * _ | is escaped
    assert md(HOSTILE).count("\\[") == HOSTILE.count("[")
    assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(//", text)
    assert md("a|b*c_d`e") == "a\\|b\\*c\\_d\\`e"


def test_nothing_found_says_so():
    text = render_markdown(empty_report())
    assert "No detector found anything unusual" in text
    assert "| # | severity" not in text
