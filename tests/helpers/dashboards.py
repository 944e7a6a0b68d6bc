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


AUTHORIZE_PATH = "/hub/api/oauth2/authorize"


def visit_as_browser(session, url: str):
    """GET a dashboard in a logged-in browser-like session (``browser_session.logged_in_session``): the final response
    and whether the hub's OAuth authorize page was shown on the way."""
    page = session.get(url)
    return page, page.url.path == AUTHORIZE_PATH and "Authorize" in page.text
