"""Attacks on passwords and reset links, each run from inside a real user server (mallory's, with its exact
environment: ``run_as_user_server``), against a platform whose mail goes to a real SMTP server.

Attempted, and each must fail: reuse a reset link (also two uses at the same moment); use a browser session stolen
before the victim changed the password; use an API token stolen before it; guess or forge a reset token (random
tokens, the stored hash, a truncated or altered token); tell accounts apart through "forgot password" (answers and
their timing).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import statistics
import time

import httpx
import pytest

from tests.helpers.inside_server import run_as_user_server
from tests.helpers.passwords import API, FORGOT_ANSWER, NEW, OLD, hub_login, make_user

pytestmark = pytest.mark.hub


@pytest.fixture(scope="module")
def mallory(mail_platform):
    """The attacker: an approved user with a running server."""
    name = f"mallory{secrets.token_hex(2)}"
    token = mail_platform.create_user(name, password="mallory-own-password-1")
    mail_platform.spawn(name, token)
    yield name, token
    mail_platform.stop_server(name)


def attack(platform, mallory, code: str, **inputs) -> dict:
    """Run ``code`` in mallory's server; it sees ``inputs`` as ``I`` and ``url`` (the platform's public URL) and
    prints one JSON line."""
    name, token = mallory
    preamble = (
        f"import json, httpx\nI = json.loads({json.dumps(json.dumps(inputs))})\nurl = {platform.url!r}\n"
    )
    return run_as_user_server(platform, name, token, preamble + code)


def forgot_link(platform, mail_server, address: str, count: int = 1) -> str:
    r = platform.api("POST", f"{API}/password/forgot", json={"login": address})
    assert r.status_code == 202
    return mail_server.wait_for(address, count=count).link().split("token=", 1)[1]


def test_a_used_reset_link_cannot_be_used_again(mail_platform, mail_server, mallory):
    platform = mail_platform
    victim, _, address = make_user(platform, "victim")
    token = forgot_link(platform, mail_server, address)
    assert (
        platform.api("POST", f"{API}/password/reset", json={"token": token, "new_password": NEW}).status_code
        == 200
    )

    result = attack(
        platform,
        mallory,
        """
api = httpx.post(url + "/services/platform/api/v1/password/reset",
                 json={"token": I["token"], "new_password": "mallory-took-this-account-9"})
page = httpx.post(url + "/services/platform/password/reset",
                  data={"token": I["token"], "new_password": "mallory-took-this-account-9",
                        "new_password_confirm": "mallory-took-this-account-9"})
print(json.dumps({"api": [api.status_code, api.json()["detail"]], "page": page.status_code}))
""",
        token=token,
    )
    assert result["api"][0] == 410
    assert result["api"][1].startswith("this password-reset link was used already")
    assert result["page"] == 410
    with httpx.Client(follow_redirects=True, timeout=60) as client:
        assert hub_login(client, platform, victim, "mallory-took-this-account-9").status_code == 403
        assert hub_login(client, platform, victim, NEW).status_code == 302


def test_two_uses_of_one_link_at_the_same_moment_set_one_password(mail_platform, mail_server, mallory):
    platform = mail_platform
    victim, _, address = make_user(platform, "race")
    token = forgot_link(platform, mail_server, address)
    result = attack(
        platform,
        mallory,
        """
import threading
barrier = threading.Barrier(6)
codes = []
def use(i):
    barrier.wait()
    r = httpx.post(url + "/services/platform/api/v1/password/reset",
                   json={"token": I["token"], "new_password": f"racing-password-number-{i}"}, timeout=60)
    codes.append((r.status_code, i))
threads = [threading.Thread(target=use, args=(i,)) for i in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({"codes": sorted(codes)}))
""",
        token=token,
    )
    statuses = [code for code, _ in result["codes"]]
    assert sorted(statuses) == [200, 410, 410, 410, 410, 410]
    winner = next(i for code, i in result["codes"] if code == 200)
    # The winner's password first: five wrong ones in a row would lock the account (the login lock-out).
    for i in sorted(range(6), key=lambda i: i != winner):
        with httpx.Client(follow_redirects=True, timeout=60) as client:
            expected = 302 if i == winner else 403
            assert hub_login(client, platform, victim, f"racing-password-number-{i}").status_code == expected


def test_a_session_stolen_before_a_password_change_is_refused(mail_platform, mallory):
    platform = mail_platform
    victim, token, _ = make_user(platform, "cookie")
    with httpx.Client(follow_redirects=True, timeout=60) as victim_browser:
        assert hub_login(victim_browser, platform, victim, OLD).status_code == 302
        assert victim_browser.get(f"{platform.url}/services/platform/account").status_code == 200
        stolen = {cookie.name: cookie.value for cookie in victim_browser.cookies.jar}
    assert any(name.startswith("jupyterhub-hub-login") for name in stolen)
    assert any(name.startswith("polartep-platform-session") for name in stolen)

    probe = """
cookies = I["cookies"]
xsrf = cookies.get("_xsrf", "")
home = httpx.get(url + "/hub/home", cookies=cookies, follow_redirects=False)
user = httpx.get(url + "/hub/api/user", cookies=cookies)
new_token = httpx.post(url + "/hub/api/users/" + I["victim"] + "/tokens", cookies=cookies,
                       headers={"X-XSRFToken": xsrf}, json={"note": "persistence"})
account = httpx.get(url + "/services/platform/account", cookies=cookies, follow_redirects=False)
print(json.dumps({"home": home.status_code, "user": user.status_code, "new_token": new_token.status_code,
                  "account": account.status_code,
                  "account_detail": account.json()["detail"] if account.status_code == 401 else ""}))
"""
    before = attack(platform, mallory, probe, cookies=stolen, victim=victim)
    assert (before["home"], before["user"], before["account"]) == (200, 200, 200)  # the theft itself works

    assert platform.api(
        "POST", f"{API}/me/password", token, json={"current_password": OLD, "new_password": NEW}
    ).json()["sessions_ended"]

    after = attack(platform, mallory, probe, cookies=stolen, victim=victim)
    assert after["home"] == 302  # sent to the login page
    assert after["user"] == 403
    assert after["new_token"] == 403  # no way to mint a token that would outlive the change
    # The platform service's own session held an OAuth token of the hub: revoked with the rest.
    assert after["account"] == 401
    assert (
        after["account_detail"]
        == "the token is not valid (expired or revoked?); get a new one from JupyterHub"
    )


def test_an_api_token_stolen_before_a_password_change_is_refused(mail_platform, mallory):
    platform = mail_platform
    victim, token, _ = make_user(platform, "token")
    probe = """
h = {"Authorization": "token " + I["token"]}
print(json.dumps({
    "hub": httpx.get(url + "/hub/api/user", headers=h).status_code,
    "service": httpx.get(url + "/services/platform/api/v1/me", headers=h).status_code,
    "mint": httpx.post(url + "/hub/api/users/" + I["victim"] + "/tokens", headers=h, json={}).status_code,
    "change_back": httpx.post(url + "/services/platform/api/v1/me/password", headers=h,
                              json={"current_password": I["new"], "new_password": "mallory-choice-password-7"}
                              ).status_code,
}))
"""
    before = attack(platform, mallory, probe, token=token, victim=victim, new=NEW)
    assert (before["hub"], before["service"]) == (200, 200)  # the stolen token works until the change
    r = platform.api("POST", f"{API}/me/password", token, json={"current_password": OLD, "new_password": NEW})
    assert r.status_code == 200

    after = attack(platform, mallory, probe, token=token, victim=victim, new=NEW)
    assert after == {"hub": 403, "service": 401, "mint": 403, "change_back": 401}
    with httpx.Client(follow_redirects=True, timeout=60) as client:
        assert hub_login(client, platform, victim, NEW).status_code == 302


def test_guessed_and_forged_reset_tokens_are_refused(mail_platform, mail_server, mallory):
    platform = mail_platform
    victim, _, address = make_user(platform, "forge")
    real = forgot_link(platform, mail_server, address)
    stored = hashlib.sha256(real.encode()).hexdigest()
    path = platform.settings.service_db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        # Only the hash is in the database, never the token.
        assert db.execute(
            "SELECT count(*) FROM password_reset_tokens WHERE token_hash = ?", (stored,)
        ).fetchone() == (1,)
        assert db.execute(
            "SELECT count(*) FROM password_reset_tokens WHERE token_hash = ?", (real,)
        ).fetchone() == (0,)

    altered = real[:-1] + ("A" if real[-1] != "A" else "B")
    candidates = [secrets.token_urlsafe(32) for _ in range(30)] + [stored, real[:20], altered, real.upper()]
    result = attack(
        platform,
        mallory,
        """
answers = []
for candidate in I["candidates"]:
    r = httpx.post(url + "/services/platform/api/v1/password/reset",
                   json={"token": candidate, "new_password": "mallory-forged-password-3"})
    answers.append([r.status_code, r.json()["detail"]])
too_long = httpx.post(url + "/services/platform/api/v1/password/reset",
                      json={"token": "x" * 129, "new_password": "mallory-forged-password-3"})
page = httpx.get(url + "/services/platform/password/reset", params={"token": I["candidates"][0]})
print(json.dumps({"answers": answers, "too_long": too_long.status_code, "page": page.status_code}))
""",
        candidates=candidates,
    )
    invalid = "this password-reset link is not valid; ask for a new one at /services/platform/password/forgot"
    assert result["answers"] == [[400, invalid]] * len(candidates)
    assert result["too_long"] == 422
    assert result["page"] == 400
    # The guesses did not burn the real link, nor set any password.
    with httpx.Client(follow_redirects=True, timeout=60) as client:
        assert hub_login(client, platform, victim, "mallory-forged-password-3").status_code == 403
    done = platform.api("POST", f"{API}/password/reset", json={"token": real, "new_password": NEW})
    assert done.status_code == 200


def test_forgot_password_does_not_tell_accounts_apart(mail_platform, mail_server, mallory):
    platform = mail_platform
    victims = [make_user(platform, "enum") for _ in range(12)]
    known = [name for name, _, _ in victims]
    unknown = [f"enum{secrets.token_hex(3)}x" for _ in range(12)]
    name0, _, address0 = victims[0]
    result = attack(
        platform,
        mallory,
        """
import time
def ask(login):
    started = time.perf_counter()
    r = httpx.post(url + "/services/platform/api/v1/password/forgot", json={"login": login})
    took = time.perf_counter() - started
    headers = sorted(k for k in r.headers if k not in ("date", "content-length"))
    return {"status": r.status_code, "body": r.text, "headers": headers, "took": took}
for warm in range(3):
    ask("warm-up-" + str(warm))
out = {"known": [], "unknown": []}
for a, b in zip(I["known"], I["unknown"]):  # interleaved, so load changes hit both sides alike
    out["known"].append(ask(a))
    out["unknown"].append(ask(b))
out["shapes"] = [ask(x) for x in I["shapes"]]
page = [httpx.post(url + "/services/platform/password/forgot", data={"login": x}) for x in (I["shapes"][0], I["shapes"][2])]
out["pages"] = [[p.status_code, p.text] for p in page]
print(json.dumps(out))
""",
        known=known,
        unknown=unknown,
        # Second round for victim 0 (by e-mail, in capitals), an unknown e-mail, a name no account can have.
        shapes=[address0.upper(), f"ghost{secrets.token_hex(3)}@polar.example", "No Such Name!", name0],
    )
    answers = result["known"] + result["unknown"] + result["shapes"]
    assert {(a["status"], a["body"], tuple(a["headers"])) for a in answers} == {
        (202, json.dumps({"detail": FORGOT_ANSWER}, separators=(",", ":")), tuple(answers[0]["headers"]))
    }
    assert result["pages"][0] == result["pages"][1]

    known_ms = statistics.median(a["took"] for a in result["known"]) * 1000
    unknown_ms = statistics.median(a["took"] for a in result["unknown"]) * 1000
    print(f"forgot-password median answer: known {known_ms:.1f} ms, unknown {unknown_ms:.1f} ms")
    # Every answer is held to at least 0.4 s (queueing a link is ~20 ms more work than finding nothing), and the
    # mail is sent by the outbox at its next poll. The bound is what the loaded 2-core test machine's noise allows.
    assert known_ms >= 400 and unknown_ms >= 400
    assert abs(known_ms - unknown_ms) < 40, (known_ms, unknown_ms)

    # The accounts did get their links, and the third request for victim 0 in one hour is not mailed (same answer).
    for _, _, address in victims:
        mail_server.wait_for(address)
    mail_server.wait_for(address0, count=3)  # the e-mail (capitals) and the name rounds
    for _attempt in range(2):
        r = platform.api("POST", f"{API}/password/forgot", json={"login": name0})
        assert (r.status_code, r.json()) == (202, {"detail": FORGOT_ANSWER})
    time.sleep(3)
    assert len(mail_server.to(address0)) == 3
    assert not any(re.search(r"ghost", m.to[0]) for m in mail_server.messages)
