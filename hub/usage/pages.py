"""Statements as printable pages, at ``<prefix>statements?month=YYYY-MM``.

Rules this module guarantees:

* Reading needs a logged-in browser (``<prefix>login``, the hub's OAuth) or a user's token; a browser without a
  session is sent to log in. An administrator sees every account's statement of the month; any other user sees
  only their own (the page never takes another name from the request).
* The numbers are ``statements.py``'s (the same as the API and ``polartep statements``); everything shown is
  rendered by the autoescaping templates, in the service's page layout, with a print stylesheet-friendly table.
* A month that is not ``YYYY-MM`` or has not begun is answered 422 with the message; the default is last month.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from polartep_hub.service.orm import utcnow
from polartep_hub.service.web.access import Context, optional_identity
from polartep_hub.service.web.identity import Identity
from polartep_hub.service.web.pages import render_page
from polartep_hub.usage import statements
from polartep_hub.usage.periods import month_key, month_start

router = APIRouter(include_in_schema=False)
_ONE_DAY = timedelta(days=1)
OptionalCaller = Annotated[Identity | None, Depends(optional_identity)]


@router.get("/statements", response_class=HTMLResponse)
def statements_page(
    request: Request,
    caller: OptionalCaller,
    context: Context,
    month: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The month's statements: everyone's for an administrator, one's own for a user."""
    if caller is None:
        target = f"{context.config.prefix}login?next={quote(request.url.path, safe='/')}"
        return RedirectResponse(target, status_code=status.HTTP_302_FOUND)
    month = month or month_key(month_start(utcnow()) - _ONE_DAY)
    admin = caller.is_user and caller.admin
    try:
        statements.parse_month(month)
    except statements.BadMonth as error:
        return render_page(
            context,
            "statements.html",
            title="Statements",
            user=caller.name,
            admin=admin,
            nav="statements",
            month=month,
            statements=[],
            error=str(error),
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    with context.session() as session:
        if admin:
            found = statements.month_statements(session, context.catalogue, month)
        else:
            found = [statements.account_statement(session, context.catalogue, caller.name, month)]
    return render_page(
        context,
        "statements.html",
        title=f"Statements {month}",
        user=caller.name,
        admin=admin,
        nav="statements",
        month=month,
        statements=found,
        error=None,
    )
