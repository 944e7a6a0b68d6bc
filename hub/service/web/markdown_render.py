"""Markdown (the legal documents, later other operator-written texts) to HTML that is safe to put in a page.

Rules this module guarantees:

* Parsing is CommonMark (``markdown-it-py``, the parser Jupyter's own tools use) with tables, and with raw HTML
  **off**: ``<script>``, ``<img onerror=...>`` or any other tag in the source is shown as text, never as markup.
* The result is sanitised again by ``nh3`` (the Ammonia sanitiser) with an allow-list of the tags CommonMark makes,
  ``href`` only on links and only ``http``, ``https`` and ``mailto`` URLs (markdown-it already refuses
  ``javascript:`` and ``data:`` links; the second pass keeps that true whatever the parser does), links marked
  ``rel="noopener noreferrer nofollow"``. No attribute can carry script or style (table alignment's
  ``style="text-align: ..."`` is dropped too: the pages' CSP allows no inline style).
* ``heading_offset`` shifts headings down (``# Title`` becomes ``<h2>`` with offset 1), so a document shown inside
  a page under the page's own ``<h1>`` keeps one ``<h1>`` per page.

Rejected alternatives: Python-Markdown (not CommonMark, raw HTML passes through by default); ``bleach`` (deprecated
by its maintainers in favour of nh3); showing the source in ``<pre>`` (what the pages did: readable only to
someone who knows Markdown).
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

ALLOWED_TAGS = frozenset(
    {
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "p",
        "br",
        "hr",
        "strong",
        "em",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "a",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "s",
    }
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def render_markdown(text: str, *, heading_offset: int = 0) -> Markup:
    """``text`` as sanitised HTML, ready for a template (``Markup``: not escaped again)."""
    parser = _parser()
    tokens = parser.parse(text)
    if heading_offset:
        for token in tokens:
            if token.type in ("heading_open", "heading_close"):
                token.tag = f"h{min(6, int(token.tag[1:]) + heading_offset)}"
    html = parser.renderer.render(tokens, parser.options, {})
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(cleaned)  # noqa: S704 (sanitised just above)
