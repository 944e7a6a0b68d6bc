"""Reading a service page's form errors as a person sees them: the message beside its field."""

from __future__ import annotations

import re


def field_error(html: str, field: str) -> str:
    """The message shown beside ``field`` (its input names it in ``aria-describedby``)."""
    linked = rf'<input [^>]*\bid="{field}"[^>]*aria-describedby="[^"]*{field}-error'
    assert re.search(linked, html), f"{field} does not name its error"
    match = re.search(
        rf'<div class="invalid-feedback d-block field-error" id="{field}-error">([^<]*)</div>', html
    )
    assert match, f"no error shown for {field}"
    return match.group(1)
