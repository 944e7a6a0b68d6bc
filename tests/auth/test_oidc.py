"""Login through an OpenID Connect identity provider, end to end against a real provider (oidc-provider-mock).

Specification: with ``POLARTEP_AUTH=oidc`` the hub discovers the provider from its issuer URL (and refuses to start,
saying why, when it cannot); a user goes through the real redirect flow (hub ``/hub/oauth_login`` -> the provider's
authorize form -> ``/hub/oauth_callback``) and lands logged in; the platform service holds an approved account with
``auth_source`` ``oidc`` and the claimed profile; the provider's groups become the user's JupyterHub groups (with
the configured prefix) and follow the provider at the next login; provider admin groups make admins; a username
that cannot be an account name is refused with a message, and two identities are never merged into one account.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import ClassVar

import httpx
import oidc_provider_mock
import pytest
import werkzeug.serving
from sqlalchemy import select

from polartep_hub.accounts.models import Account, OIDCIdentity
from polartep_hub.auth.oidc import (
    OIDCDiscoveryError,
    PlatformOIDCAuthenticator,
    account_name_from_claim,
    discover,
    group_names,
)
from polartep_hub.service.db import make_engine
from polartep_hub.settings import PlatformSettings
from tests.harness import RunningPlatform, free_port
from tests.helpers.service_fakes import JsonHandler

pytestmark = [
    pytest.mark.hub,
    # The provider (oidc-provider-mock) uses authlib APIs that authlib now deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib"),
]


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """A real OIDC provider on 127.0.0.1 that only knows registered clients; yields its issuer URL."""
    app = oidc_provider_mock.app(require_client_registration=True)
    server = werkzeug.serving.make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def oidc_platform(provider, tmp_path_factory) -> Iterator[RunningPlatform]:
    root = tmp_path_factory.mktemp("oidc-platform")
    platform = RunningPlatform(
        root,
        extra_env={
            "POLARTEP_AUTH": "oidc",
            "POLARTEP_OIDC_ISSUER": provider,
            "POLARTEP_OIDC_ADMIN_GROUPS": "polar-admins",
            "POLARTEP_IDLE_TIMEOUT": "0",
        },
    )
    # Register the platform as a client, the way an operator registers it at Keycloak.
    r = httpx.post(
        f"{provider}/oauth2/clients",
        json={"redirect_uris": [f"{platform.url}/hub/oauth_callback"]},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    secret_file = root / "oidc-client-secret"
    secret_file.write_text(r.json()["client_secret"] + "\n")
    platform.env["POLARTEP_OIDC_CLIENT_ID"] = r.json()["client_id"]
    platform.env["POLARTEP_OIDC_CLIENT_SECRET_FILE"] = str(secret_file)
    with platform.running():
        yield platform


def set_identity(provider: str, subject: str, **claims) -> None:
    """What the provider will say about ``subject`` (its userinfo claims)."""
    r = httpx.put(f"{provider}/users/{subject}", json=claims, timeout=10)
    assert r.status_code == 204, r.text


def log_in(platform: RunningPlatform, provider: str, subject: str) -> tuple[httpx.Client, httpx.Response]:
    """The browser's redirect flow; returns the browser and the hub's answer to the callback."""
    browser = httpx.Client(timeout=60)
    r = browser.get(f"{platform.url}/hub/oauth_login", follow_redirects=False)
    assert r.status_code == 302, r.text
    authorize = r.headers["location"]
    assert authorize.startswith(f"{provider}/oauth2/authorize?")
    form = browser.get(authorize)
    assert form.status_code == 200 and 'name="sub"' in form.text
    # The provider's authorization form: the test chooses who logs in.
    r = browser.post(authorize, data={"sub": subject}, follow_redirects=False)
    assert r.status_code == 302, r.text
    callback = r.headers["location"]
    assert callback.startswith(f"{platform.url}/hub/oauth_callback?")
    return browser, browser.get(callback, follow_redirects=False)


def hub_user(platform: RunningPlatform, name: str) -> dict:
    r = platform.api("GET", f"/hub/api/users/{name}", platform.admin_token)
    assert r.status_code == 200, r.text
    return r.json()


def service_account(platform: RunningPlatform, name: str) -> tuple[Account | None, list[str]]:
    """The platform service's record of ``name`` and the provider subjects bound to it (read from its database)."""
    engine = make_engine(platform.settings.service_db_url)
    try:
        with engine.connect() as connection:
            account = connection.execute(select(Account).where(Account.name == name)).first()
            subjects = connection.scalars(
                select(OIDCIdentity.subject)
                .join(Account, Account.id == OIDCIdentity.account_id)
                .where(Account.name == name)
            ).all()
            return account, list(subjects)
    finally:
        engine.dispose()


def test_a_user_logs_in_through_the_provider_and_gets_an_oidc_account(oidc_platform, provider):
    set_identity(
        provider,
        "sub-olivia",
        preferred_username="Olivia",
        name="Olivia Ice",
        email="olivia@example.org",
        organisation="Polar Institute",
        groups=["sea-ice", "/polar/glaciology"],
    )
    browser, callback = log_in(oidc_platform, provider, "sub-olivia")
    assert callback.status_code == 302, callback.text
    home = browser.get(f"{oidc_platform.url}/hub/home")
    assert home.status_code == 200 and "olivia" in home.text

    account, subjects = service_account(oidc_platform, "olivia")
    assert account is not None
    assert (account.auth_source, account.approved, account.email) == ("oidc", True, "olivia@example.org")
    assert (account.full_name, account.organisation) == ("Olivia Ice", "Polar Institute")
    assert subjects == ["sub-olivia"]

    user = hub_user(oidc_platform, "olivia")
    assert sorted(user["groups"]) == ["oidc-polar.glaciology", "oidc-sea-ice"]
    assert user["admin"] is False


def test_the_next_login_brings_the_providers_current_groups(oidc_platform, provider):
    set_identity(provider, "sub-pia", preferred_username="pia", email="pia@example.org", groups=["sea-ice"])
    log_in(oidc_platform, provider, "sub-pia")
    assert hub_user(oidc_platform, "pia")["groups"] == ["oidc-sea-ice"]

    set_identity(
        provider,
        "sub-pia",
        preferred_username="pia",
        email="pia@example.org",
        groups=["ocean", "polar-admins"],
    )
    _, callback = log_in(oidc_platform, provider, "sub-pia")
    assert callback.status_code == 302
    user = hub_user(oidc_platform, "pia")
    assert sorted(user["groups"]) == ["oidc-ocean", "oidc-polar-admins"]
    assert user["admin"] is True  # a member of POLARTEP_OIDC_ADMIN_GROUPS


def test_local_sign_up_is_closed_when_the_identity_provider_registers_people(oidc_platform):
    # An open sign-up would let anyone reserve (as a pending local account) the name of a future OIDC user.
    r = httpx.post(
        f"{oidc_platform.url}/services/platform/api/v1/signup",
        json={
            "username": "zoe",
            "password": "a long unusual passphrase",
            "full_name": "Zoe Example",
            "email": "zoe@example.org",
            "organisation": "Polar Institute",
            "organisation_location": "Tromsø, NO",
            "accept_terms_version": "2026-11-01",
            "accept_privacy_version": "2026-11-01",
        },
        timeout=30,
    )
    assert r.status_code == 403, r.text
    assert "sign-up is closed" in r.json()["detail"]


def test_a_username_that_cannot_be_an_account_name_is_refused(oidc_platform, provider):
    set_identity(provider, "sub-odd", preferred_username="Ölaf the Great!", email="olaf@example.org")
    _, callback = log_in(oidc_platform, provider, "sub-odd")
    assert callback.status_code == 403
    assert "cannot be used as a platform account name" in callback.text
    r = oidc_platform.api("GET", "/hub/api/users", oidc_platform.admin_token)
    assert not any("laf" in user["name"] for user in r.json())


def test_a_second_identity_whose_name_maps_to_an_existing_account_is_refused(oidc_platform, provider):
    set_identity(provider, "sub-nora-1", preferred_username="nora", email="nora@example.org")
    assert log_in(oidc_platform, provider, "sub-nora-1")[1].status_code == 302
    # Another person at the provider whose username differs only in case and width.
    set_identity(provider, "sub-nora-2", preferred_username="ＮＯＲＡ", email="impostor@example.org")
    _, callback = log_in(oidc_platform, provider, "sub-nora-2")
    assert callback.status_code == 403
    assert "already belongs to another identity" in callback.text
    account, subjects = service_account(oidc_platform, "nora")
    assert account.email == "nora@example.org" and subjects == ["sub-nora-1"]


def test_the_provider_cannot_take_over_the_embedded_administrator(oidc_platform, provider):
    set_identity(provider, "sub-admin", preferred_username="admin", email="x@example.org", groups=[])
    _, callback = log_in(oidc_platform, provider, "sub-admin")
    assert callback.status_code == 403 and "logs in with a password" in callback.text


def test_a_new_oidc_user_is_sent_to_accept_the_terms_before_spawning(oidc_platform, provider):
    set_identity(provider, "sub-tess", preferred_username="tess", email="tess@example.org")
    browser, _ = log_in(oidc_platform, provider, "sub-tess")
    r = browser.get(f"{oidc_platform.url}/hub/spawn", follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "/services/platform/consent?next=/hub/spawn"


def test_the_hub_does_not_start_when_the_issuer_cannot_be_reached(tmp_path):
    unreachable = f"http://127.0.0.1:{free_port()}"
    platform = RunningPlatform(
        tmp_path,
        extra_env={
            "POLARTEP_AUTH": "oidc",
            "POLARTEP_OIDC_ISSUER": unreachable,
            "POLARTEP_OIDC_CLIENT_ID": "polartep",
            "POLARTEP_OIDC_CLIENT_SECRET": "not-used",
        },
    )
    with pytest.raises(RuntimeError, match="the hub exited"):
        with platform.running():
            pass
    assert f"cannot reach the OIDC identity provider at {unreachable}/.well-known/openid-configuration" in (
        platform.log_tail()
    )


# --- the mapping rules, without a hub ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "name"),
    [("Olivia", "olivia"), ("ＯＬＩＶＩＡ", "olivia"), (" o.ice-2 ", "o.ice-2"), ("STRASSE", "strasse")],
)
def test_usernames_are_case_folded_and_nfkc_normalised(claim, name):
    assert account_name_from_claim(claim, "preferred_username") == name


@pytest.mark.parametrize("claim", ["olivia ice", "o/ice", "x" * 65, "", None, 42])
def test_unmappable_usernames_are_refused_with_403(claim):
    from tornado.web import HTTPError

    with pytest.raises(HTTPError) as refused:
        account_name_from_claim(claim, "preferred_username")
    assert refused.value.status_code == 403


def test_provider_groups_become_prefixed_valid_group_names():
    names, dropped = group_names(["Sea-Ice", "/polar/glaciology", "bad name", "", 7, "ocean"], "oidc-")
    assert names == ["oidc-ocean", "oidc-polar.glaciology", "oidc-sea-ice"]
    assert dropped == 3


# --- groups and the platform service, without a hub --------------------------------------------------------------


class FakePlatformService(JsonHandler):
    """The two routes the authenticator calls; ``projects`` is what the projects route knows (others: 404)."""

    projects: ClassVar[dict[str, list[str]]] = {"olivia": ["ice-project"]}
    logins: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.logins.append(body)
        self._reply(200, {"name": body["name"], "admin": False, "created": True, "rejected_claims": []})

    def do_GET(self) -> None:
        name = self.path.split("/users/", 1)[1].split("/", 1)[0]
        if name in self.projects:
            self._reply(200, {"projects": self.projects[name]})
        else:
            self._reply(404, {"detail": "Not Found"})


@pytest.fixture
def platform_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePlatformService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakePlatformService.logins.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def authenticator(url: str, **traits) -> PlatformOIDCAuthenticator:
    return PlatformOIDCAuthenticator(
        platform_service_url=url, platform_service_token="hub-token", issuer="http://127.0.0.1:9", **traits
    )


def auth_model(name: str, **claims) -> dict:
    return {"name": name, "admin": None, "auth_state": {"oauth_user": {"sub": f"sub-{name}", **claims}}}


async def test_a_login_keeps_the_users_project_groups(platform_service):
    auth = authenticator(platform_service)
    model = await auth.update_auth_model(auth_model("olivia", groups=["sea-ice"], email="o@example.org"))
    assert await auth.get_user_groups(model["auth_state"]) == {"oidc-sea-ice", "ice-project"}
    assert FakePlatformService.logins == [
        {"name": "olivia", "issuer": "http://127.0.0.1:9", "subject": "sub-olivia", "email": "o@example.org"}
    ]


async def test_a_platform_without_the_projects_route_means_no_project_groups(platform_service):
    auth = authenticator(platform_service)
    model = await auth.update_auth_model(auth_model("pia", groups=["ocean"]))
    assert await auth.get_user_groups(model["auth_state"]) == {"oidc-ocean"}


async def test_users_outside_the_allowed_groups_are_refused_before_anything_is_stored(platform_service):
    from tornado.web import HTTPError

    auth = authenticator(platform_service, provider_allowed_groups={"polar-staff"})
    with pytest.raises(HTTPError) as refused:
        await auth.update_auth_model(auth_model("pia", groups=["ocean"]))
    assert refused.value.status_code == 403 and "not in a group allowed" in refused.value.log_message
    assert FakePlatformService.logins == []
    allowed = await auth.update_auth_model(auth_model("pia", groups=["polar-staff"]))
    assert allowed["name"] == "pia"


async def test_admin_groups_decide_admin_status_at_each_login(platform_service):
    auth = authenticator(platform_service, provider_admin_groups={"polar-admins"})
    assert (await auth.update_auth_model(auth_model("pia", groups=["polar-admins"])))["admin"] is True
    assert (await auth.update_auth_model(auth_model("pia", groups=["ocean"])))["admin"] is False


def test_oidc_settings_problems_say_what_to_set(tmp_path):
    settings = PlatformSettings(state_dir=str(tmp_path), auth="oidc", oidc_issuer="", oidc_client_id="")
    problems = "\n".join(settings.problems())
    assert "POLARTEP_OIDC_ISSUER" in problems and "POLARTEP_OIDC_CLIENT_ID" in problems
    assert "POLARTEP_OIDC_CLIENT_SECRET_FILE" in problems


def test_discovery_names_the_url_and_the_problem(provider, monkeypatch):
    assert discover(provider + "/").token_endpoint.startswith(provider)
    with pytest.raises(OIDCDiscoveryError, match=r"answered HTTP 404 for .*/realms/polar/\.well-known"):
        discover(provider + "/realms/polar")
    # The document must be for the issuer asked about: reach the provider under another host name.
    other = provider.replace("127.0.0.1", "localhost")
    original = httpx.get
    monkeypatch.setattr(httpx, "get", lambda url, **kwargs: original(url.replace(other, provider), **kwargs))
    with pytest.raises(OIDCDiscoveryError, match="names the issuer"):
        discover(other)


def test_the_client_secret_is_never_shown_by_polartep_check(tmp_path):
    settings = PlatformSettings(state_dir=str(tmp_path), auth="oidc", oidc_client_secret="s3cr3t-value")
    rows = {name: shown for name, shown, _ in settings.describe()}
    assert rows["oidc_client_secret"] == "(given)"
    assert not any("s3cr3t-value" in shown for shown in rows.values())


@pytest.mark.parametrize(
    "groups",
    [
        "polar-staff-evil",  # a string claim that merely contains the allowed name
        "xpolar-staff",
        ["Polar-Staff"],  # another case is another group at the provider
        ["polar-staff "],
        [["polar-staff"]],  # nested
        [{"name": "polar-staff"}],
        {"polar-staff": True},
        None,
        [],
    ],
    ids=["substring", "prefix", "case", "whitespace", "nested-list", "object", "dict-claim", "null", "empty"],
)
async def test_the_group_allow_list_holds_against_adversarial_claims(platform_service, groups):
    # Security checklist: allow-list bypasses through crafted claims. Only an exact group name in a list (or the
    # claim being exactly that one name) lets a user in.
    from tornado.web import HTTPError

    auth = authenticator(platform_service, provider_allowed_groups={"polar-staff"})
    with pytest.raises(HTTPError) as refused:
        await auth.update_auth_model(auth_model("pia", groups=groups))
    assert refused.value.status_code == 403
    assert FakePlatformService.logins == []


async def test_an_email_the_provider_has_not_verified_is_not_taken(platform_service):
    auth = authenticator(platform_service)
    await auth.update_auth_model(auth_model("pia", email="pia@example.org", email_verified=False))
    await auth.update_auth_model(auth_model("rui", email="rui@example.org", email_verified=True))
    emails = {login["name"]: login.get("email") for login in FakePlatformService.logins}
    assert emails == {"pia": None, "rui": "rui@example.org"}
