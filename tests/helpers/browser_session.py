"""A browser-like HTTP session (cookies, XSRF) that logs in through the hub's login form."""

from __future__ import annotations

import contextlib
import re

import httpx


@contextlib.contextmanager
def logged_in_session(platform, username: str, password: str):
    with httpx.Client(follow_redirects=True, timeout=60) as session:
        page = session.get(f"{platform.url}/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        r = session.post(
            f"{platform.url}/hub/login",
            data={"username": username, "password": password, "_xsrf": xsrf},
            follow_redirects=False,
        )
        assert r.status_code == 302, f"login failed: {r.status_code} {r.text[:300]}"
        yield session


def form_xsrf(html: str) -> str:
    """The XSRF token a page carries: a hidden form field, or the form's action URL (the spawn page)."""
    match = re.search(r'name="_xsrf" value="([^"]+)"', html) or re.search(r"_xsrf=([^&\"']+)", html)
    return match.group(1)
