"""Dashboard servers on the spawner side, without a hub: which options start what, and the named-server limit.

Specification: a server named ``dash-<id>`` runs its dashboard and nothing else (options ``{}`` or
``{"dashboard": "<id>"}``); any other option, another id, a malformed ``dash-`` name, or a dashboard option on a
development server is refused with 400. Dashboard servers, in every mode, resume (JupyterHub keeps their OAuth
client, and with it the viewers' approvals, over a stop); other servers resume only where their spawner does.
Dashboards do not use up the four development named servers.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tornado.web import HTTPError

from polartep_hub.spawners.dashboard_servers import check_dashboard_options, named_server_limit
from polartep_hub.spawners.docker import DockerProfileSpawner
from polartep_hub.spawners.local import LocalProfileSpawner
from polartep_hub.spawners.swarm import SwarmProfileSpawner

ID = "0123456789"


@pytest.mark.parametrize(
    ("name", "options"), [(f"dash-{ID}", {}), (f"dash-{ID}", None), (f"dash-{ID}", {"dashboard": ID})]
)
def test_a_dashboard_server_takes_only_its_own_dashboard(name, options):
    assert check_dashboard_options(name, options) == ID


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (f"dash-{ID}", {"profile": "small"}, "takes no option profile"),
        (f"dash-{ID}", {"dashboard": ID, "cmd": ["bash"]}, "takes no option cmd"),
        (f"dash-{ID}", {"image": "evil"}, "takes no option image"),
        (f"dash-{ID}", {"dashboard": "9999999999"}, "serves dashboard 0123456789, not another one"),
        ("dash-lab", {}, "reserved for dashboards"),
        ("dev", {"dashboard": ID}, "a dashboard runs only on its own server"),
        ("", {"dashboard": ID}, "a dashboard runs only on its own server"),
    ],
)
def test_anything_else_is_refused_before_it_starts(name, options, message):
    with pytest.raises(HTTPError) as refused:
        check_dashboard_options(name, options)
    assert refused.value.status_code == 400
    assert message in refused.value.log_message


def test_development_servers_are_not_dashboards():
    assert check_dashboard_options("dev", {"profile": "small"}) is None
    assert check_dashboard_options("", {}) is None


def _server(name: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, server=None, state=None)


@pytest.mark.parametrize("spawner_class", [LocalProfileSpawner, DockerProfileSpawner, SwarmProfileSpawner])
def test_dashboard_servers_resume_so_the_hub_keeps_their_oauth_client(spawner_class):
    # Containers are removed at a stop, as hub_config sets it (DockerSpawner's own default keeps them).
    config = {"remove": True} if issubclass(spawner_class, DockerProfileSpawner) else {}
    assert spawner_class(orm_spawner=_server(f"dash-{ID}"), **config).will_resume is True
    assert spawner_class(orm_spawner=_server(""), **config).will_resume is False
    assert spawner_class(orm_spawner=_server("dev"), **config).will_resume is False


def test_a_docker_server_kept_at_its_stop_still_resumes():
    assert DockerProfileSpawner(orm_spawner=_server(""), remove=False).will_resume is True


def _handler(path: str, servers: list[str]):
    owner = SimpleNamespace(name="alice", orm_spawners={name: None for name in ["", *servers]})
    return SimpleNamespace(
        request=SimpleNamespace(path=path), current_user=owner, find_user=lambda name: owner
    )


def test_dashboards_do_not_use_up_development_servers():
    limit = named_server_limit(4)
    servers = ["a", "b", f"dash-{ID}", "dash-1111111111"]
    # A new development server: 4 + the 2 dashboards, so JupyterHub counts only the 2 development ones.
    assert limit(_handler("/hub/api/users/alice/servers/c", servers)) == 6
    assert limit(_handler("/hub/spawn/alice/c", servers)) == 6
    # A new dashboard server: not bounded here (publishing bounds the number of dashboards).
    assert limit(_handler("/hub/api/users/alice/servers/dash-2222222222", servers)) == 0
