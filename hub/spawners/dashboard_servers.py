"""Dashboard servers: a JupyterHub named server ``dash-<id>`` of the owner that serves one dashboard and nothing else.

Rules this module guarantees:

* A server is a dashboard server exactly when its name is ``dash-<id>`` (``dashboards/store.py``); such a server
  never starts anything but the dashboard, whatever the options say, because a share of it grants
  ``access:servers`` on the whole server. Its user options are ``{}`` or ``{"dashboard": "<id>"}`` with the id of
  its name; anything else (a profile, a command, an image, an environment) is refused with 400 before anything
  starts, and the refused options are forgotten (JupyterHub would reuse them for the next start without options).
  ``{"dashboard": ...}`` on any other server name is refused too.
* The hub asks the platform service (``GET users/<owner>/dashboards/<id>/launch``, hub token) whether the owner
  owns that dashboard (400 otherwise), which version is current and which hosting profile sizes it
  (``dashboards/hosting.py``). The consent check and the quota decision are those of every server
  (``profiles.py``): the dashboard's running time is the owner's.
* The kind (``voila``, ``panel``, ``web``: hosted apps) comes from the platform service's record with the version,
  never from the options; the dashboard program runs the platform's runner for that kind (``dashboards/serve.py``).
* Local mode: the server runs as the owner's system user (as every server of theirs) the program
  ``polartep_hub.dashboards.serve``, which fetches the frozen version, checks its SHA-256 and serves it with
  Voila behind jupyter-server-proxy's standalone proxy (the route and why: ``dashboards/serve.py``).
* A dashboard server that ends during its start fails the start with the reason its program wrote to the owner's
  ``~/.polartep-dashboards/<id>.log`` (``dashboard_failure``): the viewer who started it reads why on the hub's
  progress page, the owner finds the whole log in their home.
* Docker mode: the server is a container of the owner's profile image (the catalogue's images carry the same program
  at ``/opt/polartep/dashboard_serve.py``, ``images/base``), with the profile's limits and the hardening of every
  server (``spawners/docker.py``); a start that fails reports the reason the program printed (the container's log).
  Swarm mode: the same as a service (``spawners/swarm.py``); the reason of a failed start comes from its log.
* A viewer confirms the hub's OAuth page once per dashboard, not after every restart. JupyterHub keys a named
  server's OAuth client by a stable id (``jupyterhub-user-<owner>-dash-<id>``) but deletes its record when the server
  stops, and the delete cascades to every token issued through it: the viewers' tokens, which are also the record of
  their approval (``needs_oauth_confirm`` looks for them). A dashboard server therefore says it will resume
  (``will_resume``, JupyterHub's own switch for this), so the record and the viewers' tokens survive a stop; the next
  start updates the record's secret and redirect URL in place. What ``will_resume`` would also keep is removed here:
  the stopped server's own API token is deleted after its stop, as JupyterHub does for every other server. The
  record goes when the dashboard's server is removed (``forget_dashboard_oauth_client``). A kept token grants nothing by itself: the
  hub intersects it with what its holder may do now, so a revoked share is refused at the next request as before.
* Dashboards never use up the owner's named-server places for development: ``named_server_limit`` (given to
  ``JupyterHub.named_server_limit_per_user``) counts only the servers that are not dashboards'; how many dashboards
  an owner may have is bounded when they are published (``dashboards/hosting.py``).
"""

from __future__ import annotations

import os
import pwd
import re
import stat
import sys
from pathlib import Path
from typing import Any

from jupyterhub.utils import url_escape_path, url_path_join
from tornado.web import HTTPError
from traitlets import Unicode
from traitlets.config import LoggingConfigurable

SERVER_PREFIX = "dash-"
FAILURE_LOG_FOLDER = ".polartep-dashboards"  # as dashboards/serve.py writes it
_DASHBOARD_SERVER = re.compile(r"dash-([0-9a-f]{10})")


def dashboard_id_for(server_name: str) -> str | None:
    """The dashboard id of a server name; None when it is not a dashboard's; HTTP 400 for a malformed one."""
    if not server_name.startswith(SERVER_PREFIX):
        return None
    match = _DASHBOARD_SERVER.fullmatch(server_name)
    if match is None:
        raise HTTPError(400, f"server names starting with {SERVER_PREFIX!r} are reserved for dashboards")
    return match.group(1)


def check_dashboard_options(server_name: str, user_options: Any) -> str | None:
    """Validate the options of a spawn: the dashboard id when the server is a dashboard's, None otherwise."""
    options = user_options or {}
    dashboard_id = dashboard_id_for(server_name)
    if dashboard_id is None:
        if isinstance(options, dict) and "dashboard" in options:
            raise HTTPError(400, "a dashboard runs only on its own server: publish it (POST /dashboards)")
        return None
    if not isinstance(options, dict):
        raise HTTPError(400, 'the options of a dashboard server are {} or {"dashboard": "<id>"}')
    unknown = sorted(str(key)[:40] for key in options if key != "dashboard")
    if unknown:
        raise HTTPError(
            400,
            f"a dashboard server takes no option {', '.join(unknown)}: it runs its dashboard and nothing else",
        )
    if options.get("dashboard", dashboard_id) != dashboard_id:
        raise HTTPError(400, f"server {server_name} serves dashboard {dashboard_id}, not another one")
    return dashboard_id


def forget_server_tokens(db, orm_user, note: str, log) -> int:
    """Delete the owner's API tokens that JupyterHub made for a server (their note, ``Server at <base URL>``, is
    JupyterHub's naming); what JupyterHub does at a stop unless the spawner will resume. Returns how many went.

    By note, not by value: the local spawner forgets its token's value when its process ends (``clear_state``), and
    after a hub restart nobody has it."""
    from jupyterhub import orm

    stale = db.query(orm.APIToken).filter_by(user_id=orm_user.id, note=note).all()
    for orm_token in stale:
        db.delete(orm_token)
    if stale:
        db.commit()
        log.debug("Deleted %d API token(s) of a stopped dashboard server", len(stale))
    return len(stale)


def named_server_limit(development_servers: int):
    """``JupyterHub.named_server_limit_per_user``: ``development_servers`` named servers that are not dashboards'.

    JupyterHub compares the limit with the number of the user's named servers when a new one is created; the
    dashboards' servers are added to the limit so that they are not counted, and a new dashboard server is not
    bounded here (the number of dashboards is bounded at publishing).
    """

    def limit(handler) -> int:
        path = handler.request.path
        creating_dashboard = re.search(r"/(?:servers|spawn/[^/]+)/dash-[^/]*/?$", path) is not None
        if creating_dashboard or development_servers <= 0:
            return 0  # no bound
        user = getattr(handler, "current_user", None)
        match = re.search(r"/users/([^/]+)/servers/|/spawn/([^/]+)/", path)
        owner = None
        if match and user is not None:
            name = match.group(1) or match.group(2)
            owner = handler.find_user(name) if name != getattr(user, "name", None) else user
        owner = owner or user
        dashboards = 0
        if owner is not None and hasattr(owner, "orm_spawners"):
            dashboards = sum(1 for name in owner.orm_spawners if name.startswith(SERVER_PREFIX))
        return development_servers + dashboards

    return limit


class DashboardServerMixin(LoggingConfigurable):
    """Mix in before ``ProfileSpawnerMixin``: dashboard servers are validated and started as dashboards."""

    dashboard_id = Unicode("", help="The dashboard this server serves (kept in the spawner's state).")
    dashboard_version = Unicode(
        "", help="The SHA-256 of the version it serves (kept in the spawner's state)."
    )
    dashboard_kind = Unicode(
        "voila",
        help="What serves it: voila, or a hosted app's runner, panel or web (from the platform service, at each "
        "start; never from the user's options).",
    )

    async def _apply_profile_options(self, user_options: dict | None) -> None:
        try:
            dashboard_id = check_dashboard_options(self.name or "", user_options)
        except HTTPError:
            if (self.name or "").startswith(SERVER_PREFIX):
                # JupyterHub stored the refused options and reuses them for the next start without options (a
                # viewer's): forget them, so one bad request cannot keep the dashboard from starting.
                self.user_options = {}
                orm_spawner = getattr(self, "orm_spawner", None)
                if orm_spawner is not None:
                    orm_spawner.user_options = {}
            raise
        if dashboard_id is None:
            await super()._apply_profile_options(user_options)
            return
        await self.require_consents()
        launch = await self.platform.dashboard_launch(self.user.name, dashboard_id)
        if not launch.get("profile"):
            raise HTTPError(
                400, "your plan allows no environment, so no dashboard can run; ask an administrator"
            )
        profile = self.catalogue.profile(launch["profile"])
        await self.platform.admit_server(self.user.name, self.name, profile.name, admin=bool(self.user.admin))
        self.profile_name = profile.name
        self.apply_profile(profile)
        self.dashboard_id = dashboard_id
        self.dashboard_version = launch["version"]
        self.dashboard_kind = launch.get("kind") or "voila"
        self.apply_dashboard()
        self.log.info(
            "Starting dashboard %s (%s) of %s with profile %s",
            dashboard_id,
            launch["version"][:12],
            self.user.name,
            profile.name,
        )

    @property
    def is_dashboard_server(self) -> bool:
        """Whether this spawner is a dashboard's (by its name, which JupyterHub fixes before anything runs)."""
        return (self.name or "").startswith(SERVER_PREFIX)

    @property
    def will_resume(self) -> bool:
        """True for dashboard servers: JupyterHub then keeps their OAuth client and the viewers' approvals across a
        stop (rule above); other servers as ``other_servers_resume`` says. (A property here replaces JupyterHub's
        ``will_resume`` trait, and DockerSpawner's property, in the spawners this is mixed into.)"""
        return self.is_dashboard_server or self.other_servers_resume()

    def other_servers_resume(self) -> bool:
        """``will_resume`` of the servers that are not dashboards': never, as JupyterHub's default (the spawners
        that resume say so by overriding this)."""
        return False

    def run_post_stop_hook(self):
        """Delete the stopped dashboard server's API token (``will_resume`` kept it; nothing reuses it: each start
        makes a new one), then run the configured hook."""
        if self.is_dashboard_server:
            base_url = url_path_join(self.user.base_url, url_escape_path(self.name), "/")
            forget_server_tokens(self.user.db, self.user.orm_user, f"Server at {base_url}", self.log)
        return super().run_post_stop_hook()

    def forget_dashboard_oauth_client(self) -> None:
        """Remove a dashboard server's OAuth client, and with it the viewers' tokens for it; the spawners'
        ``delete_forever`` calls this when the server is removed (a stop keeps them: rule above)."""
        if self.is_dashboard_server:
            oauth_provider = self.user.settings.get("oauth_provider")
            if oauth_provider is not None:
                oauth_provider.remove_client(self.oauth_client_id)

    def apply_dashboard(self) -> None:
        """Run the dashboard program instead of JupyterLab."""
        self.cmd = [sys.executable, "-m", "polartep_hub.dashboards.serve"]
        self.args = []
        self.default_url = ""
        self.environment = {
            **self.environment,
            "POLARTEP_DASHBOARD_ID": self.dashboard_id,
            "POLARTEP_DASHBOARD_VERSION": self.dashboard_version,
            "POLARTEP_DASHBOARD_KIND": self.dashboard_kind,
        }

    def dashboard_failure_message(self, reason: str | None) -> str:
        """What whoever started the dashboard reads when it ended during its start."""
        if not reason:
            return "The dashboard could not start: it ended during its start."
        return (
            f"The dashboard could not start: {reason[:300]}. Its owner finds the log in "
            f"~/{FAILURE_LOG_FOLDER}/{self.dashboard_id}.log."
        )

    def dashboard_failure(self, home: str) -> str:
        """Why the dashboard server ended during its start, for whoever started it: the last line of the failure
        log the dashboard program wrote in the owner's home (``dashboards/serve.py``), read without following a
        symlink and only if it is a regular file of the owner's account (the spawner runs as root; the owner
        could plant anything there)."""
        path = Path(home) / FAILURE_LOG_FOLDER / f"{self.dashboard_id}.log"
        reason = None
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return self.dashboard_failure_message(None)
        try:
            status = os.fstat(descriptor)
            owner = getattr(self, "system_user", "")
            expected_uid = pwd.getpwnam(owner).pw_uid if owner else os.geteuid()
            if stat.S_ISREG(status.st_mode) and status.st_uid == expected_uid:
                size = status.st_size
                os.lseek(descriptor, max(0, size - 2048), os.SEEK_SET)
                tail = os.read(descriptor, 2048).decode("utf-8", "replace").strip().splitlines()
                if tail:
                    reason = tail[-1].split(" ", 1)[-1][:300]
        except (OSError, KeyError):
            pass
        finally:
            os.close(descriptor)
        return self.dashboard_failure_message(reason)

    def get_state(self):
        state = super().get_state()
        if self.dashboard_id:
            state["dashboard"] = {"id": self.dashboard_id, "version": self.dashboard_version}
        return state

    def load_state(self, state):
        super().load_state(state)
        dashboard = state.get("dashboard") or {}
        self.dashboard_id = dashboard.get("id", "")
        self.dashboard_version = dashboard.get("version", "")

    def clear_state(self):
        super().clear_state()
        self.dashboard_id = ""
        self.dashboard_version = ""


__all__ = ["DashboardServerMixin", "check_dashboard_options", "named_server_limit"]
