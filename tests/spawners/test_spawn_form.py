"""The spawn form and its consent notices, rendered from ``spawners/templates/spawn_form.html`` (pure: a spawner
object and a stand-in for the platform service's answers, no hub started)."""

from __future__ import annotations

import asyncio
import dataclasses
import types
from html.parser import HTMLParser

import pytest
from tornado.web import HTTPError

from polartep_hub.platform_client import ConsentStatus, Entitlements
from polartep_hub.spawners.docker import DockerProfileSpawner

NO_CONSENT_MISSING = ConsentStatus((), "/services/platform/consent")
TRIAL = Entitlements(
    name="alice",
    plan="trial",
    profiles=("small", "medium"),
    subscriptions=("ml",),
    plan_ends_at="2026-12-31T00:00:00+00:00",
    message="Your Trial ends soon",
)

# What the form's f-strings rendered before the template (captured from that code): the template must render the
# same elements, attributes and text.
BEFORE_TRIAL = (
    '<fieldset><legend>Choose an environment</legend><p class="text-muted polartep-plan">Your plan: Trial (500 '
    'CPU-hours a month) until 2026-12-31</p><p class="text-muted polartep-subscriptions">Your subscriptions: ML '
    'environment</p><p class="alert alert-warning polartep-message">Your Trial ends soon</p><div class="radio '
    'polartep-profile"><label><input type="radio" name="profile" value="small" checked> <strong>Small: 2 CPU, 8 '
    'GB</strong><br><span class="text-muted">Development environment for everyday analysis.</span></label></div>\n'
    '<div class="radio polartep-profile"><label><input type="radio" name="profile" value="medium"> <strong>Medium: '
    '4 CPU, 32 GB</strong><br><span class="text-muted">Development environment for larger xarray/Dask '
    "work.</span></label></div></fieldset>"
)
BEFORE_NOTHING_ALLOWED = (
    '<fieldset><legend>Choose an environment</legend><p class="text-muted polartep-plan">Your plan: Standard (500 '
    "CPU-hours a month)</p></fieldset>"
)
BEFORE_CONSENT = (
    '<div class="alert alert-warning polartep-consent">Before starting a server, please read and accept the current '
    'Terms and conditions (version 1): <a href="/services/platform/consent?next=/hub/spawn">review and accept</a>.'
    "</div>"
)


class Tokens(HTMLParser):
    """Elements, attributes and text of an HTML fragment, whitespace between elements ignored."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[tuple] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tokens.append(("start", tag, tuple(sorted(attrs, key=lambda a: a[0]))))

    def handle_endtag(self, tag):
        self.tokens.append(("end", tag))

    def handle_data(self, data):
        if data.strip():
            self.tokens.append(("text", " ".join(data.split())))


class FakePlatform:
    def __init__(self, consent: ConsentStatus, entitlements: Entitlements | None = None) -> None:
        self.consent, self.answer = consent, entitlements

    async def consents(self, name: str) -> ConsentStatus:
        return self.consent

    async def entitlements(self, name: str, admin: bool = False) -> Entitlements:
        assert self.answer is not None
        return self.answer


def spawner(platform: FakePlatform, catalogue=None) -> DockerProfileSpawner:
    user = types.SimpleNamespace(name="alice", id=1, url="/user/alice/", admin=False)
    s = DockerProfileSpawner(user=user, network_name="host")
    s.platform = platform  # the cached properties, replaced on the instance
    if catalogue is not None:
        s.catalogue = catalogue
    return s


def render(s: DockerProfileSpawner) -> str:
    return asyncio.run(s._render_profile_form())


@pytest.mark.parametrize(
    ("entitlements", "before"),
    [
        (TRIAL, BEFORE_TRIAL),
        (Entitlements(name="alice", plan="standard", profiles=()), BEFORE_NOTHING_ALLOWED),
    ],
)
def test_the_template_renders_the_same_form_as_before(entitlements, before):
    assert (
        Tokens(render(spawner(FakePlatform(NO_CONSENT_MISSING, entitlements)))).tokens
        == Tokens(before).tokens
    )


def test_the_consent_notice_on_the_form_is_the_same_as_before():
    missing = ConsentStatus(("Terms and conditions (version 1)",), "/services/platform/consent")
    assert Tokens(render(spawner(FakePlatform(missing)))).tokens == Tokens(BEFORE_CONSENT).tokens


def test_a_refused_spawn_shows_the_same_consent_sentence_as_the_form():
    missing = ConsentStatus(("Terms and conditions (version 1)", "Privacy <statement>"), "/c?x=1&y=2")
    s = spawner(FakePlatform(missing))
    with pytest.raises(HTTPError) as refused:
        asyncio.run(s.require_consents())
    assert refused.value.status_code == 403
    form = render(s)
    sentence = refused.value.jupyterhub_html_message
    assert sentence == (
        "Before starting a server, please read and accept the current Terms and conditions (version 1) and "
        'Privacy &lt;statement&gt;: <a href="/c?x=1&amp;y=2?next=/hub/spawn">review and accept</a>.'
    )
    assert form == f'<div class="alert alert-warning polartep-consent">{sentence}</div>'


def test_names_and_messages_holding_html_are_escaped():
    s = spawner(FakePlatform(NO_CONSENT_MISSING))
    catalogue = s.catalogue
    evil = "<script>alert(1)</script>"
    small = dataclasses.replace(
        catalogue.profiles["small"], name='sm"all<b>', display_name=evil, description="<i>x</i> & y"
    )
    trial = dataclasses.replace(catalogue.plans["trial"], display_name=f"Trial {evil}")
    ml = dataclasses.replace(catalogue.subscriptions["ml"], display_name="<em>ML</em>")
    s.catalogue = dataclasses.replace(
        catalogue,
        profiles={**catalogue.profiles, small.name: small},
        plans={**catalogue.plans, "trial": trial},
        subscriptions={**catalogue.subscriptions, "ml": ml},
    )
    s.platform = FakePlatform(
        NO_CONSENT_MISSING,
        Entitlements(name="alice", plan="trial", profiles=(small.name,), subscriptions=("ml",), message=evil),
    )
    form = render(s)
    assert "<script>" not in form and "<i>" not in form and "<em>" not in form and "<b>" not in form
    assert 'value="sm&#34;all&lt;b&gt;" checked>' in form
    assert "<strong>&lt;script&gt;alert(1)&lt;/script&gt;: 2 CPU, 8 GB</strong>" in form
    assert '<span class="text-muted">&lt;i&gt;x&lt;/i&gt; &amp; y</span>' in form
    assert "Your plan: Trial &lt;script&gt;alert(1)&lt;/script&gt; (500 CPU-hours a month)</p>" in form
    assert "Your subscriptions: &lt;em&gt;ML&lt;/em&gt;</p>" in form
    assert '<p class="alert alert-warning polartep-message">&lt;script&gt;alert(1)&lt;/script&gt;</p>' in form
    [radio] = [t for t in Tokens(form).tokens if t[:2] == ("start", "input")]
    assert dict(radio[2])["value"] == 'sm"all<b>'
