"""The HTML report: valid HTML5 (a strict parser: no headless browser on these machines), its
summary table first with one row per finding, self-contained (no URL, no script) and every
hostile text escaped. Reports are hand-made (tests/_fixtures_report.py): no model."""

from __future__ import annotations

import re

import pytest

from _fixtures_report import HOSTILE, NS, PROMPTS, TOKENS, empty_report, parse, sample_report
from neuroscope_tui.report import render
from neuroscope_tui.report.html import render_html
from neuroscope_tui.report.svg import bar_chart, fmt, layer_strip, line_plot

H = "{" + NS["h"] + "}"


def all_text(tree) -> str:
    return "".join(tree.itertext())


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(sample_report(), prompts=PROMPTS, tokens=TOKENS)


def test_the_report_is_valid_html5(page):
    tree = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert tree.find(".//h:head/h:meta[@charset='utf-8']", NS) is not None
    # the figures are real SVG elements, not text: two plots with curves, two strips, bars
    svgs = tree.findall(".//s:svg", NS)
    assert len(svgs) >= 5
    assert all(s.find("s:title", NS) is not None for s in svgs)


def test_the_summary_table_comes_first_with_one_row_per_finding(page):
    tree = parse(page)
    sections = [s.get("id") for s in tree.iter(H + "section")]
    assert sections[:2] == ["summary", "findings"]
    rows = tree.findall(".//h:table[@class='summary']/h:tbody/h:tr", NS)
    report = sample_report()
    assert len(rows) == len(report.findings) == 3
    # most severe first, and each row links to a finding section that exists
    severities = [all_text(r.findall("h:td", NS)[1]) for r in rows]
    assert severities == ["error", "warning", "info"]
    ids = {a.get("id") for a in tree.iter(H + "article")}
    for row in rows:
        href = row.find(".//h:a", NS).get("href")
        assert href.startswith("#") and href[1:] in ids
    counts = [all_text(td) for td in tree.findall(".//h:table[@class='counts']//h:td", NS)]
    assert counts == ["1", "1", "1"]


def test_each_finding_shows_its_figures_meaning_and_plot(page):
    tree = parse(page)
    arts = {a.get("id"): a for a in tree.iter(H + "article")}
    massive = arts["finding-3"]
    text = all_text(massive)
    assert "22,013" in text and "A few dimensions carry huge values" in text
    figures = massive.findall(".//h:table[@class='figures']//h:tr", NS)
    assert ["dimension", "394"] in [[all_text(td) for td in r.findall("h:td", NS)] for r in figures]
    # the long list is cut and says how many more
    assert "… (15 more)" in text
    plot = massive.find(".//s:svg", NS)
    assert len(plot.findall("s:path", NS)) == 1
    assert "log scale" in all_text(plot)
    assert any(line.get("stroke-dasharray") for line in plot.findall("s:line", NS))
    assert "threshold ratio = 100" in all_text(plot)
    # two curves: two plots, and no threshold line (it belongs to one curve, not both)
    dead = arts["finding-2"].findall(".//s:svg", NS)
    assert len(dead) == 3  # two plots and the layer strip
    assert not any(line.get("stroke-dasharray") for line in dead[0].findall("s:line", NS))
    # the cell names its token, shown as escaped text
    assert "token 0 'The'" in all_text(massive)
    nan = all_text(arts["finding-1"])
    assert "not finite" in nan and "NaN" in nan and "inf" in nan


def test_a_nan_breaks_the_curve_instead_of_drawing_through_it():
    svg = line_plot({"a": [1.0, 2.0, float("nan"), 4.0, 5.0]}, title="t")
    d = re.search(r'<path d="([^"]+)"', svg).group(1)
    assert d.count("M") == 2 and d.count("L") == 2


def test_no_url_and_no_script_anywhere(page):
    tree = parse(page)
    assert tree.find(".//h:script", NS) is None and tree.find(".//s:script", NS) is None
    for el in tree.iter():
        for name, value in el.attrib.items():
            local = name.split("}")[-1]
            assert not local.startswith("on"), (el.tag, name)  # no event handler either
            if local in ("src", "href", "xlink:href", "action", "srcset", "data", "style"):
                assert "//" not in value and ":" not in value.split("#")[0], (el.tag, name, value)
    for style in tree.iter(H + "style"):
        assert "url(" not in style.text and "@import" not in style.text
    # not even the SVG namespace is spelled out (the hostile report shows a URL as text)
    plain = render_html(sample_report(hostile=False), prompts=PROMPTS[:1])
    assert not re.search(r"https?:|//", plain.replace("</", ""))


def test_hostile_text_is_escaped_and_made_visible(page):
    tree = parse(page)
    # what the file holds: the markup as text, the controls as escapes
    assert "<script>alert" not in page and "<img" not in page
    assert "\x1b" not in page and "\u202e" not in page
    text = all_text(tree)
    assert '<script>alert(1)</script><img src="http://evil.example/x.png">' in text
    assert "\\x1b[2J\\u202e" in text
    # and nothing the text tried to add became an element
    assert tree.find(".//h:img", NS) is None


def test_a_report_with_nothing_found_says_so():
    page = render_html(empty_report())
    tree = parse(page)
    assert tree.find(".//h:table[@class='summary']", NS) is None
    assert "No detector found anything unusual" in all_text(tree)
    assert "Every detector ran." in all_text(tree)


def test_render_picks_the_format_from_the_suffix():
    report = sample_report(hostile=False)
    assert render(report, ".HTM").startswith("<!DOCTYPE html>")
    assert render(report, ".md").startswith("# Diagnostics: ")


def test_figures_are_fixed_size_and_escape_their_labels():
    for svg in (
        line_plot({HOSTILE: [1.0, 2.0]}, title=HOSTILE, threshold=1.5),
        bar_chart([(HOSTILE, 1.0), ("b", float("inf"))], title=HOSTILE),
        layer_strip(30, [3, 99], title=HOSTILE),
    ):
        tree = parse(f"<!DOCTYPE html><html><head><title>t</title></head><body>{svg}</body></html>")
        el = tree.find(".//s:svg", NS)
        assert el.get("width") == "560" and el.get("height").isdigit()
        assert "<script" not in svg and "\x1b" not in svg


@pytest.mark.parametrize(
    ("value", "text"),
    [(22013.5, "22,014"), (3.61, "3.61"), (50.0, "50"), (0.0042, "0.0042"), (1.2e-9, "1.20e-09")],
)
def test_numbers_read_as_a_person_would_write_them(value, text):
    assert fmt(value) == text


def test_figure_values_read_as_text():
    import numpy as np

    from neuroscope_tui.report.content import value_text

    assert (
        value_text([[0, 5, "'.'", 3], [1, 0, "'<s>'", 27]]) == "(0, 5, '.', 3), (1, 0, '<s>', 27)"
    )
    assert value_text(np.float32(3.5)) == "3.5" and value_text(np.bool_(True)) == "yes"
    assert value_text(list(range(20))).endswith(", 11, … (8 more)")
    assert value_text(123456) == "123,456" and value_text(None) == "-"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2e-5, "<0.1 ms"),
        (6.78e-4, "0.7 ms"),
        (0.045, "45 ms"),
        (2.44, "2.4 s"),
        (185, "3 min 05 s"),
    ],
)
def test_times_read_as_a_person_would_say_them(seconds, text):
    from neuroscope_tui.report.content import duration

    assert duration(seconds) == text
