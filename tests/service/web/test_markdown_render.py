"""``markdown_render``: CommonMark to sanitised HTML; nothing in a Markdown file can put markup of its own on a page."""

from __future__ import annotations

import pytest

from polartep_hub.service.web.markdown_render import render_markdown


def test_markdown_becomes_formatted_html():
    html = render_markdown(
        "# Title\n\nSome **bold** and *em*.\n\n1. one\n2. two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    assert html.startswith(
        "<h1>Title</h1>\n<p>Some <strong>bold</strong> and <em>em</em>.</p>\n<ol>\n<li>one</li>"
    )
    assert "<table>" in html and "<td>1</td>" in html


def test_headings_shift_down_under_a_page_heading():
    assert (
        render_markdown("# A\n\n## B\n\n###### F", heading_offset=2) == "<h3>A</h3>\n<h4>B</h4>\n<h6>F</h6>\n"
    )


@pytest.mark.parametrize(
    ("source", "absent"),
    [
        ("<script>alert(1)</script>", "<script"),
        ("<img src=x onerror=alert(1)>", "<img"),
        ('<a href="https://x.example" onclick="steal()">x</a>', "<a "),
        ("[x](javascript:alert(1))", "href"),
        ("[x](data:text/html;base64,PHNjcmlwdD4=)", "href"),
        ("![x](https://tracker.example/pixel.png)", "<img"),
        ('<div style="position:fixed">overlay</div>', "<div"),
        ("<iframe src=https://x.example></iframe>", "<iframe"),
    ],
)
def test_markup_in_the_source_never_reaches_the_page_as_markup(source, absent):
    html = render_markdown(source)
    assert absent not in html


def test_links_are_kept_only_for_safe_schemes_and_marked_nofollow():
    html = render_markdown("[site](https://polar.example/a) [mail](mailto:dpo@polar.example)")
    assert '<a href="https://polar.example/a" rel="noopener noreferrer nofollow">site</a>' in html
    assert '<a href="mailto:dpo@polar.example" rel="noopener noreferrer nofollow">mail</a>' in html
