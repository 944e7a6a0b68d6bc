"""Every page of the platform service has the hub's look, and forms show their problems beside the field.

Specification: each page (sign-up, sign-up received, terms, privacy, an unknown document, consent, account, account
erased, processors, a processor's run form, admin accounts, admin account, admin sign-ups, administrators only) links JupyterHub's own stylesheet from
``/hub/static/`` (same origin as the service through the proxy) with the version JupyterHub itself gives it, and the
service's small ``pages.css``; carries the hub's navigation bar (Home, Token, Admin for administrators, Dashboards,
Processors, Account,
the user's name, Logout; Login without a user) and the light/dark toggle; runs no script but the theme script,
which its CSP allows by hash; and shows each form problem right after its input, named by the input's
``aria-describedby``. (How they look in a browser: ``tests/hub/test_page_screenshots.py``.)
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from jupyterhub._data import DATA_FILES_PATH

from polartep_hub.service.web.pages import PAGE_CSP
from tests.helpers.processors import ECHO_DEFINITION
from tests.helpers.service_fakes import PREFIX, RecordingHubAPI
from tests.helpers.service_login import finish_login, start_login
from tests.helpers.signup import form_signup

HUB_CSS = Path(DATA_FILES_PATH) / "static" / "css" / "style.min.css"


@pytest.fixture
def database_url(sqlite_database_url):
    """Pages do not depend on the database kind: SQLite only."""
    return sqlite_database_url


def browser_login(api, fake_hub, token: str) -> None:
    assert finish_login(api, fake_hub, start_login(api), token=token).status_code == 302


def xsrf_of(html: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', html).group(1)


def make_account(api, name: str) -> None:
    assert api.get(f"api/v1/users/{name}/entitlements", token="hub-token").status_code == 200


# Each page: (how to get it, status, the signed-in user or None, is that user an admin).
PageGetter = Callable[..., object]


def _signup(api, app, fake_hub):
    return api.get("signup")


def _signup_received(api, app, fake_hub):
    return form_signup(api)


def _terms(api, app, fake_hub):
    return api.get("legal/terms")


def _privacy(api, app, fake_hub):
    return api.get("legal/privacy")


def _no_such_document(api, app, fake_hub):
    return api.get("legal/cookies")


def _consent(api, app, fake_hub):
    browser_login(api, fake_hub, "alice-token")
    return api.get("consent", params={"next": "/hub/spawn"})


def _account(api, app, fake_hub):
    browser_login(api, fake_hub, "alice-token")
    return api.get("account")


def _dashboards(api, app, fake_hub):
    browser_login(api, fake_hub, "alice-token")
    return api.get("dashboards")


def _processors(api, app, fake_hub):
    browser_login(api, fake_hub, "alice-token")
    return api.get("processors")


def _processor_form(api, app, fake_hub):
    from sqlalchemy import select

    from polartep_hub.accounts.models import Account
    from polartep_hub.processors.models import Processor, ProcessorVersion

    make_account(api, "alice")
    with app.state.context.session() as session:
        owner = session.scalar(select(Account.id).where(Account.name == "alice"))
        processor = Processor(name="echo-page", owner_id=owner, visibility="private")
        session.add(processor)
        session.flush()
        definition = {**ECHO_DEFINITION, "id": "echo-page"}
        session.add(ProcessorVersion(processor_id=processor.id, sequence=1, version="1.0.0",
                                     notebook_sha256="0" * 64, definition=definition, published_by_id=owner))  # fmt: skip
        session.commit()
    browser_login(api, fake_hub, "alice-token")
    return api.get("processors/echo-page")


def _account_erased(api, app, fake_hub):
    app.state.context.hub_api = RecordingHubAPI()
    browser_login(api, fake_hub, "alice-token")
    page = api.get("account")
    return api.post(
        "account/erase", data={"_xsrf": xsrf_of(page.text), "confirm": "alice", "processors": "withdraw"}
    )


def _admin_accounts(api, app, fake_hub):
    make_account(api, "alice")
    browser_login(api, fake_hub, "ada-token")
    return api.get("admin/accounts")


def _admin_account(api, app, fake_hub):
    make_account(api, "alice")
    browser_login(api, fake_hub, "ada-token")
    return api.get("admin/accounts/alice")


def _admin_signups(api, app, fake_hub):
    assert form_signup(api).status_code == 201
    browser_login(api, fake_hub, "ada-token")
    return api.get("admin/signups")


def _administrators_only(api, app, fake_hub):
    browser_login(api, fake_hub, "alice-token")
    return api.get("admin/accounts")


PAGES: dict[str, tuple[PageGetter, int, str | None, bool]] = {
    "signup": (_signup, 200, None, False),
    "signup-received": (_signup_received, 201, None, False),
    "terms": (_terms, 200, None, False),
    "privacy": (_privacy, 200, None, False),
    "no-such-document": (_no_such_document, 404, None, False),
    "consent": (_consent, 200, "alice", False),
    "account": (_account, 200, "alice", False),
    "dashboards": (_dashboards, 200, "alice", False),
    "processors": (_processors, 200, "alice", False),
    "processor-form": (_processor_form, 200, "alice", False),
    "account-erased": (_account_erased, 200, None, False),
    "admin-accounts": (_admin_accounts, 200, "ada", True),
    "admin-account": (_admin_account, 200, "ada", True),
    "admin-signups": (_admin_signups, 200, "ada", True),
    "administrators-only": (_administrators_only, 403, "alice", False),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_has_the_hubs_look(api, app, fake_hub, name):
    get, status, user, admin = PAGES[name]
    page = get(api, app, fake_hub)
    assert page.status_code == status, page.text[:500]
    html = page.text

    # JupyterHub's stylesheet, from the hub's static files on this origin, with the hub's own version tag.
    version = hashlib.md5(HUB_CSS.read_bytes(), usedforsecurity=False).hexdigest()
    assert f'<link rel="stylesheet" href="/hub/static/css/style.min.css?v={version}">' in html
    css = re.search(rf'<link rel="stylesheet" href="({PREFIX}static/pages\.css\?v=[0-9a-f]+)">', html).group(
        1
    )
    served = api.get(css.removeprefix(PREFIX))
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/css")

    # The CSP: the one inline script is the theme script, allowed by its hash; nothing else may run.
    assert page.headers["content-security-policy"] == PAGE_CSP
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1 and html.count("<script") == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in PAGE_CSP
    assert "style=" not in html  # no inline style: the CSP forbids it

    # The hub's navigation bar and the theme toggle.
    assert '<nav class="navbar navbar-expand-sm bg-body-tertiary mb-4"' in html
    assert 'id="dark-theme-toggle"' in html and '<img src="/hub/logo"' in html
    links = set(re.findall(r'<a class="nav-link(?: active)?" href="([^"]+)"', html))
    if user is None:
        assert (
            links == set()
            and '<a id="login" role="button" class="btn btn-sm btn-outline-contrast" href="/hub/login">'
            in html
        )
    else:
        assert f'<span class="me-1 user" id="polartep-user">{user}</span>' in html
        assert 'href="/hub/logout"' in html
        expected = {
            "/hub/home",
            "/hub/token",
            f"{PREFIX}dashboards",
            f"{PREFIX}processors",
            f"{PREFIX}account",
            f"{PREFIX}statements",
        }
        if admin:
            expected |= {"/hub/admin", f"{PREFIX}admin/signups", f"{PREFIX}admin/accounts"}
        assert links == expected
    assert html.count("<h1>") == 1


def test_the_hubs_stylesheet_linked_is_the_installed_one():
    """The hub serves ``share/jupyterhub/static`` at ``/hub/static/``: the file the pages link exists there."""
    assert HUB_CSS.is_file() and b"data-bs-theme=dark" in HUB_CSS.read_bytes()


def assert_beside(html: str, field: str, message: str) -> None:
    """``message`` is shown right after ``field``'s input (no other field between them) and the input names it."""
    control = re.search(rf'<(?:input|select) [^>]*\bid="{field}"[^>]*>', html)
    assert control, f"no input {field}"
    assert re.search(rf'aria-describedby="[^"]*\b{field}-error\b', control.group(0)), control.group(0)
    assert 'aria-invalid="true"' in control.group(0)
    error = re.search(
        rf'<div class="invalid-feedback d-block field-error" id="{field}-error">([^<]*)</div>', html
    )
    assert error, f"no message beside {field}"
    assert error.group(1) == message
    between = html[control.end() : error.start()]
    assert not re.search(r"<(?:input|select|textarea) ", between), (
        f"another field between {field} and its message"
    )


def test_signup_problems_sit_beside_their_fields(api):
    response = form_signup(api, email="not-an-address", password_confirm="different", accept_terms=None)
    assert response.status_code == 422
    assert "Please fix the fields marked below." in response.text
    assert_beside(
        response.text, "email", "not a valid e-mail address (An email address must have an @-sign.)"
    )
    assert_beside(response.text, "password_confirm", "the two passwords differ; type the same one twice")
    assert_beside(
        response.text,
        "accept_terms",
        "tick the box to accept the terms and conditions; you cannot sign up without it",
    )
    # Fields without a problem are not marked.
    assert 'aria-invalid="true"' not in re.search(r'<input [^>]*\bid="full_name"[^>]*>', response.text).group(
        0
    )


def test_account_problems_sit_beside_their_fields(api, fake_hub):
    browser_login(api, fake_hub, "alice-token")
    page = api.get("account").text
    form = {
        "_xsrf": xsrf_of(page),
        "full_name": "",
        "email": "alice@polar.example",
        "organisation": "Ice Lab",
        "organisation_location": "Tromsø",
        "phone": "",
    }
    response = api.post("account/details", data=form)
    assert response.status_code == 422
    assert_beside(response.text, "full_name", "must not be empty")

    response = api.post(
        "account/erase", data={"_xsrf": xsrf_of(page), "confirm": "bob", "processors": "withdraw"}
    )
    assert response.status_code == 422
    assert_beside(response.text, "confirm", "Type your user name exactly as it is to confirm the erasure.")


def test_consent_problems_sit_beside_their_boxes(api, fake_hub):
    browser_login(api, fake_hub, "alice-token")
    page = api.get("consent", params={"next": "/hub/spawn"}).text
    versions = dict(re.findall(r'name="version_(\w+)" value="([^"]+)"', page))
    form = {"_xsrf": xsrf_of(page), "next": "/hub/spawn", "accept_terms": "yes"}
    form.update({f"version_{kind}": version for kind, version in versions.items()})
    response = api.post("consent", data=form)
    assert response.status_code == 400
    assert_beside(response.text, "accept_privacy", "Tick this box to accept the privacy statement (gdpr).")
    assert 'aria-invalid="true"' not in re.search(
        r'<input [^>]*\bid="accept_terms"[^>]*>', response.text
    ).group(0)


def test_consent_page_shows_the_documents_formatted(api, fake_hub):
    browser_login(api, fake_hub, "alice-token")
    page = api.get("consent", params={"next": "/hub/spawn"}).text
    # The shipped documents' "# Title" sits under the card's <h2>, as <h3>; no Markdown source is shown.
    assert "<h3>Polar TEP terms and conditions</h3>" in page
    assert "<h3>Polar TEP privacy statement (GDPR)</h3>" in page
    assert "<pre" not in page and "# Polar TEP" not in page


def test_admin_plan_problems_sit_beside_the_select(api, fake_hub):
    make_account(api, "alice")
    browser_login(api, fake_hub, "ada-token")
    page = api.get("admin/accounts/alice").text
    response = api.post("admin/accounts/alice/plan", data={"_xsrf": xsrf_of(page), "plan": "platinum"})
    assert response.status_code == 400
    message = re.search(r'id="plan-error">([^<]*)<', response.text).group(1)
    assert "platinum" in message
    assert_beside(response.text, "plan", message)
