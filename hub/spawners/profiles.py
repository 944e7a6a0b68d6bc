"""Profile choice for every spawner: the spawn form, validation of ``{"profile": name}`` and applying the profile.

Rules this module guarantees:

* The form lists exactly the profiles the user may start, asked of the platform service at every rendering (the
  plan's profiles plus those of active subscriptions: ``polartep_hub.accounts.entitlements``), with their sizes;
  it names the plan and subscriptions, and says why when nothing is allowed (e.g. the Trial has ended).
* User options are exactly ``{"profile": <name>}`` (or empty, meaning the first allowed profile). Anything else, an
  unknown profile or one the plan does not allow is refused with HTTP 400 and a message, before anything starts.
* No server starts while the user has not accepted the current terms and privacy statement (asked of the platform
  service before every spawn): the REST API gets 403 with a message naming the consent page, and a browser opening
  the spawn page is redirected to that page, which brings it back to the spawn page afterwards.
  unknown profile or one neither the plan nor a subscription allows is refused with HTTP 400 and a message naming
  it, before anything starts; entitlements are asked afresh for every spawn, so a change is in force at once.
* The form and the consent notices are rendered from ``templates/spawn_form.html`` with Jinja2's autoescaping:
  names and messages from the catalogue or the service are text, never markup. The consent notice is written once
  there, for the form and for the refused spawn alike.
* No server starts unless the platform service's quota decision admits it (``usage/quota.py``: the plan's bound on
  what all servers may hold at once, and what is left of the month's CPU-hours for the horizon); a refusal is HTTP
  403 with the service's message. Every stop is reported to the service's server meter with its exact time, or as
  a crash when the server was already dead (``usage/meters/servers.py``).
* The look-ups of one spawn overlap where the order cannot matter: consents and entitlements are asked at once
  (a missing consent is still the refusal shown first), and the dataset mounts are asked while the quota decision
  is made (used only once it admits). The decision itself always precedes the start.
* The profile's CPU and memory become ``cpu_limit``/``mem_limit`` (and so ``CPU_LIMIT``/``MEM_LIMIT`` in the
  server's environment); concrete spawners add what their engine needs (image, GPU, process limits).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import cache, cached_property
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from tornado.web import Finish, HTTPError
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from polartep_hub.catalogue import Catalogue, Profile, load_catalogue
from polartep_hub.platform_client import SERVICE_PREFIX, ConsentStatus, Entitlements, PlatformClient

# Removals of refused entries still running (kept referenced until done).
_background: set[asyncio.Future] = set()


async def apply_platform_options(spawner, user_options: dict | None) -> None:
    """JupyterHub's ``apply_user_options`` hook, as ``hook(spawner, options)``: the platform's checks of a spawn
    (``_apply_profile_options``, through the class hierarchy); a refused spawn of a new named server leaves no entry
    behind (``forget_entry_of_refused_spawn``)."""
    try:
        await spawner._apply_profile_options(user_options)
    except BaseException:
        spawner.forget_entry_of_refused_spawn()
        raise


@cache
def _form_templates():
    """The macros of ``templates/spawn_form.html`` (loaded once, autoescaped)."""
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True,
        undefined=StrictUndefined,
    )
    return environment.get_template("spawn_form.html").module


def consent_notice(missing: tuple[str, ...], url: str) -> Markup:
    """The one sentence that asks the user to accept ``missing`` documents at ``url`` (escaped HTML)."""
    return _form_templates().consent_notice(missing, url)


def _as_utc(moment: datetime) -> datetime:
    """JupyterHub's database times are naive UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def host_has_gpu() -> bool:
    """True when an NVIDIA device node exists (the only GPUs the ML image is built for)."""
    return Path("/dev/nvidia0").exists() or Path("/dev/nvidiactl").exists()


class ProfileSpawnerMixin(LoggingConfigurable):
    """Mix into a JupyterHub ``Spawner`` (first in the bases) to size it from the catalogue's profiles.

    A ``LoggingConfigurable`` so that its traits are real, configurable traits on the combined class.
    """

    catalogue_path = Unicode(
        help="Catalogue YAML the profiles come from (set by polartep_hub.hub_config from settings).",
        config=True,
    )
    platform_service_url = Unicode(help="Internal URL of the platform service.", config=True)
    platform_service_token = Unicode(
        help="Token of the hub's internal client of the platform service.", config=True
    )

    profile_name = Unicode("", help="The profile this server was started with (kept in the spawner's state).")

    @cached_property
    def catalogue(self) -> Catalogue:
        return load_catalogue(self.catalogue_path or None)

    @cached_property
    def platform(self) -> PlatformClient:
        return PlatformClient(self.platform_service_url, self.platform_service_token)

    async def entitlements(self) -> Entitlements:
        return await self.platform.entitlements(self.user.name, admin=bool(self.user.admin))

    async def spawn_dataset_mounts(self) -> dict:
        """The service's ``dataset-mounts`` answer for this spawn: the one asked while the admission was decided
        (``_apply_profile_options``), or asked now (a dashboard server, a spawn that skipped the profile options)."""
        lookup = getattr(self, "_dataset_mounts_lookup", None)
        self._dataset_mounts_lookup = None
        if lookup is not None:
            return await lookup
        return await self.platform.dataset_mounts(self.user.name)

    # Datasets mounted read-only because their storage is over quota: the user is told on the spawn page -----------

    def note_dataset_mounts(self, mounts: list[dict]) -> None:
        """Keep the service's reasons for read-only mounts of this spawn (``reason``: the dataset's class is over its
        paying owner's quota), for the spawn page (``progress``) and the hub's log."""
        self.dataset_notices = [str(item["reason"]) for item in mounts if item.get("reason")]
        for notice in self.dataset_notices:
            self.log.warning("%s: %s", self._log_name, notice)

    async def progress(self):
        """JupyterHub's spawn-page events: the usual one, then each read-only notice of this spawn as it is known."""
        yield {"progress": 50, "message": "Spawning server..."}
        shown = 0
        while True:
            pending = self._spawn_pending
            notices = list(getattr(self, "dataset_notices", []))
            for notice in notices[shown:]:
                yield {"message": f"Note: {notice}."}
            shown = len(notices)
            if not pending:
                return
            await asyncio.sleep(0.5)

    # The form ---------------------------------------------------------------------------------------------------

    @default("options_form")
    def _options_form_default(self):
        return ProfileSpawnerMixin._render_profile_form

    async def _render_profile_form(self) -> str:
        consent = await self.platform.consents(self.user.name)
        if consent.missing:
            return self._consent_form_notice(consent)
        entitlements = await self.entitlements()
        plan = self.catalogue.plans.get(entitlements.plan)
        plan_ends = ""
        if entitlements.plan_ends_at and not entitlements.plan_expired:
            plan_ends = entitlements.plan_ends_at[:10]
        held = [
            self.catalogue.subscriptions[name].display_name
            for name in entitlements.subscriptions
            if name in self.catalogue.subscriptions
        ]
        return str(
            _form_templates().profile_form(
                profiles=[self.catalogue.profile(name) for name in entitlements.profiles],
                plan=plan,
                plan_ends=plan_ends,
                subscriptions=held,
                message=entitlements.message or "",
            )
        )

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, str]:
        values = formdata.get("profile") or []
        return {"profile": values[0]} if values else {}

    # Validation and application ---------------------------------------------------------------------------------

    @default("apply_user_options")
    def _apply_user_options_default(self):
        # A function that dispatches through the class hierarchy, so a mixin before this one (dashboard servers)
        # adds its checks by overriding _apply_profile_options.
        return apply_platform_options

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Whether JupyterHub made this server's entry without ever starting it (a new named server, or one the spawn
        # page made for its form): a refused spawn then removes the entry again (forget_entry_of_refused_spawn).
        # (No entry, or a stand-in without JupyterHub's columns: nothing to remove.)
        orm_spawner = getattr(self, "orm_spawner", None)
        self._entry_never_spawned = (
            orm_spawner is not None and getattr(orm_spawner, "last_activity", False) is None
        )

    def forget_entry_of_refused_spawn(self) -> None:
        """Remove this named server's entry from the hub once the refused spawn has been cleaned up, when the entry
        is one that no spawn had used before this one.

        JupyterHub makes a named server's entry before any check runs and keeps it, stopped, when the spawn fails:
        without this, every refused try of a new name (a quota refusal, a missing consent, a profile not allowed)
        left an entry behind, and after ``named_servers_per_user`` of them the user got JupyterHub's "maximum named
        servers" message instead of the platform's. An entry that was used before is the user's and stays. The
        removal runs when JupyterHub's spawn future fails (after its own clean-up, before the refusal is answered),
        and only when the entry is still this spawner's and inactive (a new try of the same name keeps it).
        """
        if not self.name or not self._entry_never_spawned:
            return
        spawn_future = getattr(self, "_spawn_future", None)
        if spawn_future is None:
            return
        spawn_future.add_done_callback(lambda _future: self._remove_refused_entry())

    def _remove_refused_entry(self) -> None:
        user, orm_spawner = self.user, self.orm_spawner
        if (
            user.spawners.get(self.name) not in (self, None)
            or user.orm_spawners.get(self.name) is not orm_spawner
            or self.active
            or orm_spawner.server is not None
        ):
            return
        self.log.info("Removing the entry of %s: its first spawn was refused", self._log_name)
        user.spawners.pop(self.name, None)
        user.db.delete(orm_spawner)
        user.db.commit()
        # What JupyterHub's removal of a named server does besides (the spawners' delete_forever: for a named
        # server, forget a dashboard's OAuth client); a coroutine, so after the entry is gone.
        task = asyncio.ensure_future(user._delete_spawner(self))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _apply_profile_options(self, user_options: dict | None) -> None:
        # The consents and the entitlements are two reads: asked at once (one round trip's wait instead of two),
        # then judged in the old order, so a missing consent is still the refusal the user sees first.
        consent, granted = await asyncio.gather(
            self.platform.consents(self.user.name), self.entitlements(), return_exceptions=True
        )
        if isinstance(consent, BaseException):
            raise consent
        self.refuse_without_consents(consent)
        if isinstance(granted, BaseException):
            raise granted
        profile = await self.resolve_profile(user_options or {}, granted)
        # The quota decision, last: the service reserves the room it admits (reserve, then commit). The dataset
        # mounts (a read, used by start() only once admitted) are asked meanwhile; a refused spawn drops them.
        mounts = asyncio.ensure_future(self.platform.dataset_mounts(self.user.name))
        try:
            await self.platform.admit_server(
                self.user.name, self.name or "", profile.name, admin=bool(self.user.admin)
            )
        except BaseException:
            mounts.cancel()
            await asyncio.gather(mounts, return_exceptions=True)  # retrieved: no "never retrieved" warning
            raise
        self._dataset_mounts_lookup = mounts
        self.profile_name = profile.name
        self.apply_profile(profile)
        self.log.info("Starting %s with profile %s (%s)", self._log_name, profile.name, profile.summary())

    # Terms and privacy consent ----------------------------------------------------------------------------------

    def spawn_page_path(self) -> str:
        """The hub's spawn page for this server (where the consent page sends the browser back to)."""
        base = self.hub.base_url if getattr(self, "hub", None) else "/hub/"
        if self.name:
            return f"{base}spawn/{quote(self.user.name, safe='')}/{quote(self.name, safe='')}"
        return f"{base}spawn"

    def consent_page_url(self, consent: ConsentStatus, next_path: str | None = None) -> str:
        return f"{consent.consent_url}?next={quote(next_path or self.spawn_page_path(), safe='/')}"

    async def require_consents(self) -> None:
        """HTTP 403 naming the consent page while the user has not accepted the current legal documents."""
        self.refuse_without_consents(await self.platform.consents(self.user.name))

    def refuse_without_consents(self, consent: ConsentStatus) -> None:
        """HTTP 403 naming the consent page when ``consent`` lists documents still to accept."""
        if not consent.missing:
            return
        url = self.consent_page_url(consent)
        error = HTTPError(
            403,
            f"{self.user.name} has not accepted the current {' and '.join(consent.missing)}: no server starts "
            f"before that. Accept them at {url} (or with POST {SERVICE_PREFIX}api/v1/me/consents).",
        )
        # The spawn page shows this instead of the plain message.
        error.jupyterhub_html_message = str(consent_notice(consent.missing, url))
        raise error

    def _consent_form_notice(self, consent: ConsentStatus) -> str:
        """Send a browser that opened the spawn page to the consent page; the form's text where that cannot be."""
        handler = getattr(self, "handler", None)
        requester = getattr(handler, "current_user", None) if handler is not None else None
        if (
            handler is not None
            and handler.request.method == "GET"
            and not getattr(handler, "_finished", True)
            # Only the user can accept: an admin opening someone else's spawn page would bounce back forever.
            and getattr(requester, "name", None) == self.user.name
        ):
            # The spawn page's own request: redirect it and end the handler cleanly (tornado's Finish).
            handler.redirect(self.consent_page_url(consent, handler.request.uri))
            raise Finish()
        url = self.consent_page_url(consent)
        templates = _form_templates()
        if getattr(requester, "name", self.user.name) != self.user.name:
            return str(templates.alert(templates.consent_notice_for_others(self.user.name, consent.missing)))
        return str(templates.alert(consent_notice(consent.missing, url)))

    async def resolve_profile(self, user_options: dict, entitlements: Entitlements | None = None) -> Profile:
        """Validate user options and return the profile they name; HTTP 400 with a message otherwise.
        ``entitlements``: already asked of the service for this spawn (asked here when None)."""
        unknown = sorted(set(user_options) - {"profile"})
        if unknown:
            raise HTTPError(
                400, f"Unknown server option(s): {', '.join(map(str, unknown))}. Only 'profile' is accepted."
            )
        if entitlements is None:
            entitlements = await self.entitlements()
        allowed = entitlements.profiles
        name = user_options.get("profile")
        if not allowed and entitlements.message:
            # E.g. the Trial has ended: say so, whatever was asked for.
            raise HTTPError(400, entitlements.message)
        if name is None:
            if not allowed:
                raise HTTPError(400, "Your plan allows no environment; ask an administrator to change it.")
            name = allowed[0]
        if not isinstance(name, str) or name not in self.catalogue.profiles:
            raise HTTPError(
                400,
                f"Unknown profile {str(name)[:64]!r}. Choose one of: {', '.join(allowed) or 'none (ask an administrator)'}.",
            )
        if name not in allowed:
            raise HTTPError(
                400,
                f"Your plan does not include the profile {name!r}, nor do your subscriptions. "
                f"Profiles you may use: {', '.join(allowed) or 'none'}.",
            )
        return self.catalogue.profile(name)

    def apply_profile(self, profile: Profile) -> None:
        """Set limits from the profile; subclasses extend this with their engine's settings."""
        self.cpu_limit = profile.cpu
        self.mem_limit = profile.memory
        self.environment = {
            **self.environment,
            "POLARTEP_PROFILE": profile.name,
            "POLARTEP_GPU": str(self.gpu_count(profile)),
            # Numerical libraries size their thread pools from the host's cores, not the server's limit.
            "OMP_NUM_THREADS": str(max(1, int(profile.cpu))),
        }

    def gpu_count(self, profile: Profile) -> int:
        """GPUs to give this server: the profile's, only where the host has them (unless the profile requires)."""
        if not profile.gpu:
            return 0
        if profile.gpu_policy == "required" or host_has_gpu():
            return profile.gpu
        return 0

    # Stops, for the server meter -------------------------------------------------------------------------------

    async def stop(self, now: bool = False):
        """Stop as the concrete spawner does, then report it to the server meter (exact time, or a crash)."""
        started = getattr(getattr(self, "orm_spawner", None), "started", None)
        profile = self.profile_name or None
        try:
            crashed = (await self.poll()) is not None
        except Exception:
            crashed = False
        result = await super().stop(now=now)
        stopped_at = datetime.now(UTC)
        try:
            await self.platform.report_server_stop(
                self.user.name,
                self.name or "",
                profile=profile,
                started_at=None if started is None else _as_utc(started).isoformat(),
                stopped_at=stopped_at.isoformat(),
                crashed=crashed,
            )
        except Exception as error:
            # Never in the way of a stop: the meter's next pass closes the run at its last observation.
            self.log.warning(
                "Could not report the stop of %s to the platform service: %s", self._log_name, error
            )
        return result

    # State, so a restarted hub remembers which profile a running server has -----------------------------------------

    def get_state(self):
        state = super().get_state()
        if self.profile_name:
            state["profile"] = self.profile_name
        return state

    def load_state(self, state):
        super().load_state(state)
        self.profile_name = state.get("profile", "")

    def clear_state(self):
        super().clear_state()
        self.profile_name = ""
