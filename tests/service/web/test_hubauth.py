"""The real identity provider (``HubIdentityProvider``, on JupyterHub's ``HubOAuth``) against a small fake hub API.

The fake hub (``fakes.FakeHubAPI``, fixture ``hub_url``) answers ``GET /hub/api/user`` and
``POST /hub/api/oauth2/token`` the way JupyterHub does (200 with a model, 403 for unknown tokens, 5xx when broken).
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from jupyterhub.services.auth import HubOAuth

from polartep_hub.service.web.hubauth import TOKEN_CACHE_SECONDS, HubIdentityProvider
from polartep_hub.service.web.identity import HubUnavailable
from tests.helpers.service_fakes import HUB_MODELS, FakeHubAPI


@pytest.fixture
async def provider(hub_url) -> HubIdentityProvider:
    hub_auth = HubOAuth(
        api_url=f"{hub_url}/hub/api",
        api_token="service-api-token",
        oauth_client_id="service-platform",
        oauth_redirect_uri="/services/platform/oauth_callback",
        cache_max_age=TOKEN_CACHE_SECONDS,
    )
    provider = HubIdentityProvider(hub_auth)
    yield provider
    await provider.aclose()


async def test_a_user_token_becomes_an_identity_with_its_scopes(provider):
    identity = await provider.identify("alice-token")
    assert identity.kind == "user" and identity.name == "alice" and identity.admin is False
    assert identity.has_scope("access:services!service=platform")
    assert not identity.is_hub


async def test_admins_and_the_hub_service_are_recognised(provider):
    assert (await provider.identify("root-token")).admin is True
    hub = await provider.identify("hub-token")
    assert hub.kind == "service" and hub.is_hub and hub.admin is False


async def test_an_unknown_token_is_none(provider):
    assert await provider.identify("forged-token") is None


async def test_answers_are_cached(provider):
    FakeHubAPI.questions.clear()
    await provider.identify("alice-token")
    await provider.identify("alice-token")
    await provider.identify("forged-token")
    await provider.identify("forged-token")
    assert FakeHubAPI.questions == ["alice-token", "forged-token"]


async def test_a_revoked_token_is_refused_once_its_cached_answer_is_older_than_the_bound(
    provider, monkeypatch
):
    """The bound on a revoked token: the hub's answer is reused for TOKEN_CACHE_SECONDS at most, never longer."""
    cache = provider.hub_auth.cache

    def age_cached_answers(seconds: float) -> None:  # as if the hub had answered ``seconds`` earlier
        for key in cache.timestamps:
            cache.timestamps[key] -= seconds

    FakeHubAPI.questions.clear()
    assert (await provider.identify("alice-token")).name == "alice"
    monkeypatch.delitem(HUB_MODELS, "alice-token")  # revoked in the hub
    age_cached_answers(TOKEN_CACHE_SECONDS - 0.5)
    assert (await provider.identify("alice-token")).name == "alice"  # the cached answer, within the bound
    assert FakeHubAPI.questions == ["alice-token"]
    age_cached_answers(0.6)  # past the bound, counted from the hub's answer
    assert await provider.identify("alice-token") is None
    assert FakeHubAPI.questions == ["alice-token", "alice-token"]


def test_the_token_cache_is_a_few_seconds_and_never_forever():
    assert 0 < TOKEN_CACHE_SECONDS <= 5
    for unsafe in (0, 60):  # 0 is "forever" in HubAuth's cache
        with pytest.raises(ValueError, match="cache_max_age"):
            HubIdentityProvider.from_env(cache_max_age=unsafe)


async def test_a_broken_hub_is_hub_unavailable_not_an_invalid_token(provider):
    with pytest.raises(HubUnavailable):
        await provider.identify("broken-hub-token")


async def test_an_unreachable_hub_is_hub_unavailable():
    hub_auth = HubOAuth(
        api_url="http://127.0.0.1:9/hub/api", api_token="x", oauth_client_id="service-platform"
    )
    provider = HubIdentityProvider(hub_auth)
    try:
        with pytest.raises(HubUnavailable):
            await provider.identify("alice-token")
    finally:
        await provider.aclose()


async def test_oauth_code_exchange_sends_the_pkce_verifier(provider):
    assert await provider.token_for_code("good-code", "the-verifier") == "alice-token"
    with pytest.raises(HubUnavailable):
        await provider.token_for_code("bad-code", "the-verifier")


def test_authorize_url_carries_client_state_and_challenge(provider):
    url = provider.authorize_url("the-state", "the-challenge")
    assert url.startswith("/hub/api/oauth2/authorize?")
    query = parse_qs(url.split("?", 1)[1])
    assert query["client_id"] == ["service-platform"]
    assert query["redirect_uri"] == ["/services/platform/oauth_callback"]
    assert query["state"] == ["the-state"]
    assert query["code_challenge"] == ["the-challenge"] and query["code_challenge_method"] == ["S256"]


def test_from_env_names_what_is_missing(monkeypatch):
    for name in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="JUPYTERHUB_API_TOKEN"):
        HubIdentityProvider.from_env()


def test_from_env_reads_the_hub_variables(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t")
    monkeypatch.setenv("JUPYTERHUB_CLIENT_ID", "service-platform")
    provider = HubIdentityProvider.from_env()
    assert provider.hub_auth.api_url == "http://127.0.0.1:8081/hub/api"
    assert provider.hub_auth.cache_max_age == TOKEN_CACHE_SECONDS == 5
