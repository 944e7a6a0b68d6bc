"""Shared by several test modules (moved from ``tests/hub/test_passwords.py``)."""

from __future__ import annotations

import re
import secrets

import httpx

API = "/services/platform/api/v1"


FORGOT_ANSWER = (
    "If this user name or e-mail address belongs to an account with a platform password, a link to choose a new "
    "password has been e-mailed to the account's address. It works once and expires; check your inbox."
)


NEW = "second-password-for-passwords-2"  # noqa: S105


OLD = "first-password-for-passwords-1"  # noqa: S105 (throw-away test platform)


def hub_login(client: httpx.Client, platform, name: str, password: str) -> httpx.Response:
    """Post the hub's login form; 302 when it logged in."""
    page = client.get(f"{platform.url}/hub/login")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    return client.post(
        f"{platform.url}/hub/login",
        data={"username": name, "password": password, "_xsrf": xsrf},
        follow_redirects=False,
    )


def make_user(platform, prefix: str = "pw") -> tuple[str, str, str]:
    """A fresh approved user with password ``OLD`` and an e-mail address: (name, API token, address)."""
    name = f"{prefix}{secrets.token_hex(3)}"
    token = platform.create_user(name, password=OLD)
    address = f"{name}@polar.example"
    r = platform.api("PATCH", f"{API}/me", token, json={"email": address})
    assert r.status_code == 200, r.text
    return name, token, address
