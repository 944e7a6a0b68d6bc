"""Publishing and opening dashboards in tests (the dashboards' hub tests and their attacks share these)."""

from __future__ import annotations

from typing import Any

MARKER = "DASHBOARD-MARKER"


def notebook(*sources: str) -> dict[str, Any]:
    """An nbformat-4 notebook of code cells with ``sources``."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"c{index}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for index, source in enumerate(sources)
        ],
    }


def marker_notebook() -> dict[str, Any]:
    """A notebook whose output (computed by the kernel, so only a rendered page shows it) is ``MARKER-42``."""
    return notebook(f"print('{MARKER}-' + str(6 * 7))")


def publish(platform, token: str, title: str = "Sea ice", nb: dict | None = None) -> dict[str, Any]:
    r = platform.api(
        "POST",
        "/services/platform/api/v1/dashboards",
        token,
        json={"title": title, "description": "A test dashboard", "notebook": nb or marker_notebook()},
    )
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()


def share(platform, token: str, dashboard_id: str, **target: str):
    return platform.api(
        "POST", f"/services/platform/api/v1/dashboards/{dashboard_id}/shares", token, json=target
    )


def open_page(platform, owner: str, server: str, token: str | None, path: str = "", **kwargs: Any):
    """GET a path of the dashboard server with ``token`` (as a viewer's API client would)."""
    return platform.api("GET", f"/user/{owner}/{server}/{path}", token, timeout=90, **kwargs)


# Hosted apps (dashboards of kind panel and web) ------------------------------------------------------------------

APP_MARKER = "APP-MARKER"

PANEL_APP = f"""
import panel as pn

slider = pn.widgets.IntSlider(name="n", start=1, end=10, value=6)


def times_seven(n):
    return "{APP_MARKER}-" + str(n * 7)


pn.Column(pn.pane.Markdown("# Sea ice app"), slider, pn.bind(times_seven, slider)).servable(
    title="Sea ice app " + times_seven(6)
)
"""
"""A Panel app whose texts are computed by the server's Python: the page's title (in the HTML Panel serves) ends
in ``APP-MARKER-42``, and so does the text under the slider (sent over the websocket) until the slider moves."""

ASGI_APP = f"""
import json


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    found = scope["path"] == "/hello"
    body = json.dumps({{
        "marker": "{APP_MARKER}-web" if found else "not-found",
        "path": scope["path"],
        "prefix": headers.get(b"x-forwarded-prefix", b"").decode(),
        "user_token": "JUPYTERHUB_API_TOKEN" in __import__("os").environ,
    }}).encode()
    await send({{"type": "http.response.start", "status": 200 if found else 404,
                "headers": [(b"content-type", b"application/json")]}})
    await send({{"type": "http.response.body", "body": body}})
"""
"""A bare ASGI app: its own route ``/hello`` answers JSON with the marker, the path it saw and whether it holds the
owner's hub token; every other path is its own 404."""


def app_files(files: dict[str, str]) -> dict[str, str]:
    """``{"relative/path": text}`` as the API takes an app's files (base64)."""
    import base64

    return {path: base64.b64encode(text.encode()).decode() for path, text in files.items()}


def publish_app(
    platform,
    token: str,
    kind: str,
    entry: str,
    files: dict[str, str],
    runner: str | None = None,
    **extra: Any,
):
    """POST an app (the raw response: callers assert the status)."""
    app: dict[str, Any] = {"entry": entry, "files": files}
    if runner is not None:
        app["runner"] = runner
    return platform.api(
        "POST",
        "/services/platform/api/v1/dashboards",
        token,
        json={"title": f"A {kind} app", "kind": kind, "app": app, **extra},
    )


def app_owner(platform, name: str, password: str | None = None) -> str:
    """A new user with a ``hosting-small`` subscription (5 dashboards or apps, run with the small profile); their
    token. With ``password``, they can log in in a browser."""
    token = platform.create_user(name, plan="large", password=password)
    r = platform.api(
        "POST", f"/services/platform/api/v1/accounts/{name}/subscriptions/hosting-small", platform.admin_token
    )
    assert r.status_code in (200, 201), r.text
    return token


AUTHORIZE_PATH = "/hub/api/oauth2/authorize"


def visit_as_browser(session, url: str):
    """GET a dashboard in a logged-in browser-like session (``browser_session.logged_in_session``): the final response
    and whether the hub's OAuth authorize page was shown on the way."""
    page = session.get(url)
    return page, page.url.path == AUTHORIZE_PATH and "Authorize" in page.text
