"""Server metering and the spawn decision through the real hub, proxy and platform service (meters every second).

Specification: a spawned server shows in the user's usage as one open ``server`` interval from the hub's
``started``, at its profile's cores and memory; stopping it closes it at the hub's stop time. A spawn past the
allowance is refused (403) with the message saying what is exhausted, by how much and when it renews. Twenty
concurrent named-server spawns of one Trial user through the hub's REST API admit exactly what fits in the plan's 8
cores: two Medium servers run, the eighteen others are refused with the message, and the ledger holds exactly two
open intervals. A refused spawn of a new named server leaves no entry in the hub (refused tries would otherwise use
up ``named_servers_per_user``); a named server used before keeps its entry when a spawn of it is refused. Killing the platform service while servers run and stop loses nothing and counts nothing twice: a server
stopped while the service was down closes at the meter's last observation (never later than its real stop), one
still running stays open once, from its exact start.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from tests.harness import RunningPlatform, wait_for
from tests.helpers.quota import service_pid, spend, usage
from tests.helpers.servers import server_state

pytestmark = pytest.mark.hub


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with RunningPlatform(
        tmp_path_factory.mktemp("server-meter"),
        extra_env={"POLARTEP_GATEWAY_METER_INTERVAL": "1", "POLARTEP_NAMED_SERVERS_PER_USER": "20"},
    ).running() as running:
        yield running


def servers(platform, user: str, token: str) -> dict[str, dict]:
    found = [i for i in usage(platform, user, token)["intervals"] if i["kind"] == "server"]
    keys = [i["source_key"] for i in found]
    assert len(keys) == len(set(keys)), f"a server is counted twice: {keys}"
    return {i["source_key"]: i for i in found}


def iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def hub_started(platform, user: str, server: str = "") -> datetime:
    return iso(platform.server_model(user, server)["started"])


def test_a_server_is_metered_from_the_hubs_start_to_its_stop(platform):
    token = platform.create_user("meta", plan="trial")
    platform.spawn("meta", token, {"profile": "small"})
    started = hub_started(platform, "meta")
    found = wait_for(lambda: servers(platform, "meta", token), 30, interval=0.3, what="the server's interval")
    (interval,) = found.values()
    assert iso(interval["started_at"]) == started
    assert (interval["cores"], interval["memory_bytes"], interval["stopped_at"]) == (2, 8 * 2**30, None)
    assert interval["source_key"] == f"meta/@{started.isoformat(timespec='microseconds')}"
    before_stop = datetime.now(UTC)
    platform.stop_server("meta")
    after_stop = datetime.now(UTC)
    closed = wait_for(
        lambda: (
            all(i["stopped_at"] for i in servers(platform, "meta", token).values())
            and servers(platform, "meta", token)
        ),
        30,
        interval=0.3,
        what="the interval to close",
    )
    stopped = iso(closed[interval["source_key"]]["stopped_at"])
    assert before_stop <= stopped <= after_stop  # the hub's stop time, not a meter pass's


def test_a_spawn_past_the_allowance_is_refused_with_the_message(platform):
    token = platform.create_user("spent", plan="trial")
    spend(platform, "spent", 499.8)
    r = platform.api("POST", "/hub/api/users/spent/server", token, json={"profile": "small"})
    assert r.status_code == 403, r.text
    message = r.json()["message"]
    assert message.startswith(
        "Your CPU-hours are exhausted: 499.80 of the 500.00 CPU-hours of your Trial plan"
    )
    assert "need 0.50 CPU-hours for the next 15 minutes: 0.30 CPU-hours short." in message
    assert "Your allowance renews on " in message
    assert platform.server_model("spent") is None


def test_a_refused_spawn_leaves_no_new_named_server_and_keeps_one_used_before(platform):
    token = platform.create_user("tidy", plan="trial")
    platform.spawn("tidy", token, {"profile": "small"}, server="kept")
    platform.stop_server("tidy", "kept")
    spend(platform, "tidy", 499.8)
    for server in ("fresh", "kept", "fresh"):  # a new name, the used one, the new name again
        r = platform.api("POST", f"/hub/api/users/tidy/servers/{server}", token, json={"profile": "small"})
        assert r.status_code == 403, r.text
        # 499.8 and the few seconds "kept" ran: what is short depends on the load, the refusal does not.
        message = r.json()["message"]
        assert (
            message.startswith("Your CPU-hours are exhausted: 499.8")
            and "Your allowance renews on " in message
        )
        r = platform.api("GET", "/hub/api/users/tidy?include_stopped_servers", platform.admin_token)
        servers_in_hub = r.json()["servers"]
        assert sorted(servers_in_hub) == ["", "kept"]  # the default server's entry: every user has one
        assert servers_in_hub["kept"]["ready"] is False and servers_in_hub["kept"]["user_options"] == {
            "profile": "small"
        }


def test_twenty_concurrent_named_server_spawns_admit_exactly_what_fits(platform):
    # Every one of the twenty reaches the quota decision: the platform's named-server bound is 20 here
    # (POLARTEP_NAMED_SERVERS_PER_USER), so the hub's own count refuses none of them.
    token = platform.create_user("crowd", plan="trial")  # 8 cores at once: two Medium servers (4 cores each)

    def spawn(i: int):
        return platform.api(
            "POST", f"/hub/api/users/crowd/servers/s{i}", token, json={"profile": "medium"}, timeout=120
        )

    with ThreadPoolExecutor(20) as pool:
        answers = dict(zip(range(20), pool.map(spawn, range(20)), strict=True))
    admitted = sorted(i for i, r in answers.items() if r.status_code in (201, 202))
    assert len(admitted) == 2, [(r.status_code, r.text[:200]) for r in answers.values()]
    for i, r in answers.items():
        if i in admitted:
            continue
        assert r.status_code == 403, r.text
        assert r.json()["message"] == (
            "Your Trial plan allows 8 cores for all your servers together; they hold 8 and the server "
            f"'s{i}' (Medium) needs 4: 4 cores over. Stop a server first, or choose a smaller profile."
        )
    for i in admitted:
        platform.wait_ready("crowd", f"s{i}")
    # The eighteen refused names left no stopped entries behind (the hub counts those against its named-server bound).
    r = platform.api("GET", "/hub/api/users/crowd?include_stopped_servers", platform.admin_token)
    assert sorted(r.json()["servers"]) == sorted(["", *(f"s{i}" for i in admitted)])
    # The ledger: exactly the two admitted servers, each one open interval at the Medium's 4 cores.
    wait_for(lambda: len(servers(platform, "crowd", token)) == 2, 30, interval=0.3, what="two open intervals")
    time.sleep(2)  # more meter passes: still exactly those two
    found = servers(platform, "crowd", token).values()
    # Both sides sorted as names ("crowd/s10" before "crowd/s6"), not the second by number.
    assert sorted((i["source_key"].split("@")[0], i["cores"], i["stopped_at"]) for i in found) == sorted(
        (f"crowd/s{i}", 4, None) for i in admitted
    )
    for i in admitted:
        platform.stop_server("crowd", f"s{i}")


def test_killing_the_service_loses_no_server_usage_and_counts_none_twice(platform):
    token = platform.create_user("killed", plan="standard")
    platform.spawn("killed", token, {"profile": "interactive"}, server="a")
    platform.spawn("killed", token, {"profile": "interactive"}, server="b")
    started = {name: hub_started(platform, "killed", name) for name in ("a", "b")}
    wait_for(
        lambda: len(servers(platform, "killed", token)) == 2, 30, interval=0.3, what="two open intervals"
    )
    time.sleep(2)  # a few more meter passes see both running

    old = service_pid(platform)
    assert old
    os.kill(old, signal.SIGKILL)
    # While the service is down, the hub stops "a" (its stop report cannot arrive).
    platform.stop_server("killed", "a")
    stopped_a = datetime.now(UTC)

    wait_for(
        lambda: (service_pid(platform) or old) != old,
        120,
        interval=0.5,
        what="the hub to restart the service",
    )
    wait_for(
        lambda: platform.api("GET", "/services/platform/health").status_code == 200, 60, what="service health"
    )

    def a_closed():
        found = servers(platform, "killed", token)
        return found if len(found) == 2 and any(i["stopped_at"] for i in found.values()) else None

    found = wait_for(
        a_closed, 60, interval=0.5, what="the restarted meter to close the server stopped meanwhile"
    )
    by_server = {key.split("/")[1].split("@")[0]: i for key, i in found.items()}
    assert set(by_server) == {"a", "b"}
    for name, interval in by_server.items():
        assert iso(interval["started_at"]) == started[name]
    # a: closed at the last observation before the kill: after its start, never after its real stop.
    assert started["a"] < iso(by_server["a"]["stopped_at"]) <= stopped_a
    assert by_server["b"]["stopped_at"] is None
    time.sleep(3)  # more passes of the restarted meter: still each server once
    assert len(servers(platform, "killed", token)) == 2
    platform.stop_server("killed", "b")
    wait_for(
        lambda: all(i["stopped_at"] for i in servers(platform, "killed", token).values()),
        30,
        interval=0.5,
        what="b to close",
    )


def test_killing_the_service_and_the_hub_loses_no_server_usage_and_counts_none_twice(platform):
    token = platform.create_user("bothkilled", plan="standard")
    for name in ("a", "b"):
        platform.spawn("bothkilled", token, {"profile": "interactive"}, server=name)
    started = {name: hub_started(platform, "bothkilled", name) for name in ("a", "b")}
    pid_a = server_state(platform, "bothkilled", "a")["pid"]
    wait_for(
        lambda: len(servers(platform, "bothkilled", token)) == 2, 30, interval=0.3, what="two open intervals"
    )
    time.sleep(2)  # a few more meter passes see both running

    service = service_pid(platform)
    assert service
    os.kill(service, signal.SIGKILL)
    platform.hub_process.kill()
    platform.hub_process.wait()
    platform.hub_process = None
    platform._admin_token = None
    # While both are down, server "a" dies (nobody can report it): it must close at the last observation.
    os.kill(pid_a, signal.SIGKILL)
    died_a = datetime.now(UTC)

    platform.start_hub(timeout=180)

    def a_closed():
        found = servers(platform, "bothkilled", token)
        return found if len(found) == 2 and any(i["stopped_at"] for i in found.values()) else None

    found = wait_for(a_closed, 90, interval=0.5, what="the restarted platform to close the server that died")
    by_server = {key.split("/")[1].split("@")[0]: i for key, i in found.items()}
    assert set(by_server) == {"a", "b"}
    for name, interval in by_server.items():
        assert iso(interval["started_at"]) == started[name]  # exact starts, once each
    assert started["a"] < iso(by_server["a"]["stopped_at"]) <= died_a  # never charged for time nobody saw
    assert by_server["b"]["stopped_at"] is None
    assert platform.server_model("bothkilled", "b")["ready"]
    time.sleep(3)  # more passes of the restarted meter: still each server once
    assert len(servers(platform, "bothkilled", token)) == 2
    platform.stop_server("bothkilled", "b")
    closed = wait_for(
        lambda: (
            all(i["stopped_at"] for i in servers(platform, "bothkilled", token).values())
            and servers(platform, "bothkilled", token)
        ),
        30,
        interval=0.5,
        what="b to close",
    )
    assert len(closed) == 2
