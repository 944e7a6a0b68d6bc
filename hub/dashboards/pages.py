"""The dashboards gallery: a page of the platform service, with the hub's look (``service/web/pages.py``).

``GET <prefix>dashboards`` lists every dashboard the signed-in user may open: their own, and those shared with them
or with one of their groups (JupyterHub's shares, asked at each rendering), each with its title, description,
owner, kind (a Voila dashboard, a Panel app or a web app), thumbnail (the notebook's first image, ``GET <prefix>api/v1/dashboards/<id>/thumbnail.png``) and stable
link. Without a session the browser is sent to the service's login, which brings it back. Every value is escaped
(Jinja2 autoescaping); the page carries the pages' CSP.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse

from polartep_hub.dashboards import store
from polartep_hub.service.hub_api import HubApiError
from polartep_hub.service.web.access import Context, optional_identity
from polartep_hub.service.web.identity import Identity
from polartep_hub.service.web.pages import render_page

page_router = APIRouter()


@page_router.get("/dashboards", include_in_schema=False)
def gallery(context: Context, identity: Annotated[Identity | None, Depends(optional_identity)]) -> Any:
    """The gallery of the dashboards the signed-in user may open."""
    prefix = context.config.prefix
    if identity is None or not identity.is_user:
        return RedirectResponse(f"{prefix}login?next={quote(prefix + 'dashboards')}", status_code=302)
    shared: list[dict[str, Any]] = []
    error = None
    if context.hub_api is not None:
        try:
            shared = context.hub_api.shared_with(identity.name)
        except HubApiError:
            error = "The dashboards shared with you cannot be listed right now (JupyterHub did not answer)."
    with context.session() as session:
        cards = [
            {
                "id": dashboard.id,
                "title": dashboard.title,
                "description": dashboard.description,
                "owner": dashboard.owner.name,
                "access": access,
                "kind": dashboard.kind,
                "url": f"/user/{quote(dashboard.owner.name, safe='')}/{store.server_name(dashboard.id)}/",
                "thumbnail": (
                    f"{prefix}api/v1/dashboards/{dashboard.id}/thumbnail.png"
                    if store.thumbnail(store.version(session, dashboard, dashboard.current_sha256).notebook)
                    else None
                ),
            }
            for dashboard, access in store.visible_to(session, identity.name, shared)
        ]
    return render_page(
        context,
        "dashboards_gallery.html",
        title="Dashboards",
        user=identity.name,
        admin=identity.admin,
        nav="dashboards",
        cards=cards,
        error=error,
    )
