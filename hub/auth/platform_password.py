"""``PlatformPasswordAuthenticator``: username/password login checked by the platform service.

Why not NativeAuthenticator: its latest release (1.3.0) fails to log anyone in on JupyterHub 6 (its login handler
uses the statsd client that JupyterHub 6 removed), and registration here needs fields and consent records that it
lacks. Accounts, with their argon2 password hashes, live in the platform service, which owns all platform state; the
hub only asks it whether a password is right. The first administrator is created from settings.

Rules it guarantees:

* Usernames must match ``username_pattern`` before anything is asked.
* Usernames are folded like the service's canonical account names (NFKC, case-folded), so the name typed at
  sign-up logs in however it was typed.
* Only approved accounts with a matching password log in; unknown users and wrong passwords get the same answer.
  An account awaiting approval (once its password matched), a client address throttled after too many failed
  logins and a service busy hashing get the service's own message on the login page instead
  (``LoginRefused`` -> ``HTTPError``; the throttle's message names the address's wait, never the account).
* The client address sent with each check is the one the proxy saw (``proxy_peer.client_address``): the last
  ``X-Forwarded-For`` entry only on connections from the proxy process, else the connection's peer, so no local
  process can pose as another client by sending the header to the hub's port.
* Every account the service knows may log in, so JupyterHub's own allow list is not used (``allow_all``).
* ``POST /hub/api/polartep/users/{name}/end-sessions`` (scope ``admin:users``; the platform service calls it after
  a password change or reset) ends every login session of the user at one moment, in one commit: it gives the user
  a new ``cookie_id`` (JupyterHub's login cookie holds that id, shared by all the user's browsers, so every existing
  hub cookie stops working) and deletes every API and OAuth token of the user and its unused OAuth codes (servers'
  and services' browser sessions and tokens made by hand). JupyterHub's ``refresh_user`` was weighed and rejected
  for this: it runs per user at most every ``auth_refresh_age`` seconds and cannot tell one browser session from
  another (see ``service/password_reset.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.auth import Authenticator
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import new_token
from tornado import web
from traitlets import Unicode, default

from polartep_hub.account_names import PASSWORD_LOGIN_NAME_PATTERN, fold_account_name
from polartep_hub.platform_client import LoginRefused, PlatformClient
from polartep_hub.proxy_peer import client_address


class EndSessionsHandler(APIHandler):
    """``POST /hub/api/polartep/users/{name}/end-sessions``: end every session and token of one user."""

    @needs_scope("admin:users")
    def post(self, user_name: str) -> None:
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, "no such user")
        orm_user = user.orm_user
        # No await between these steps: the hub's single thread runs nothing else until the commit.
        orm_user.cookie_id = new_token()
        tokens = list(orm_user.api_tokens)
        for token in tokens:
            self.db.delete(token)
        codes = self.db.query(orm.OAuthCode).filter(orm.OAuthCode.user_id == orm_user.id).delete()
        self.db.commit()
        self.log.info(
            "ended every session of %s: new login-cookie id, %d token(s) and %d OAuth code(s) deleted",
            user.name,
            len(tokens),
            codes,
        )
        self.write(json.dumps({"name": user.name, "tokens_deleted": len(tokens)}))


class PlatformPasswordAuthenticator(Authenticator):
    """Passwords verified by the platform service."""

    platform_service_url = Unicode(help="Internal URL of the platform service.", config=True)
    platform_service_token = Unicode(
        help="Token of the hub's internal client of the platform service.", config=True
    )

    proxy_pid_file = Unicode(
        "",
        help="The proxy's PID file: X-Forwarded-For is believed only on connections from that process.",
        config=True,
    )

    @default("username_pattern")
    def _username_pattern_default(self) -> str:
        return f"^{PASSWORD_LOGIN_NAME_PATTERN}$"

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        # The platform service's accounts are the allow list: it refuses unknown and unapproved accounts.
        return True

    def normalize_username(self, username: str) -> str:
        # The service's canonical account names' folding: "Alice" and fullwidth "ａｌｉｃｅ" are "alice".
        return fold_account_name(username)

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        password = data.get("password", "")
        if not username or not password or not self.validate_username(username):
            return None
        client = PlatformClient(self.platform_service_url, self.platform_service_token)
        try:
            account = await client.verify_password(username, password, self.client_address(handler))
        except LoginRefused as refused:
            # JupyterHub's login page shows an HTTPError's message in place of "Invalid username or password".
            self.log.warning("Login refused for %s: %s", username[:64], refused.message)
            raise web.HTTPError(refused.status, refused.message) from None
        if account is None:
            self.log.warning("Failed login for %s", username[:64])
            return None
        return {"name": account["name"], "admin": bool(account.get("admin"))}

    def get_handlers(self, app):
        return [*super().get_handlers(app), (r"/api/polartep/users/([^/]+)/end-sessions", EndSessionsHandler)]

    def client_address(self, handler) -> str:
        """The address of the client behind ``handler``'s request, as the proxy saw it (see ``proxy_peer.py``)."""
        if handler is None:
            return "unknown"
        request = handler.request
        connection = request.connection
        peer = getattr(getattr(connection, "context", None), "address", None)
        stream = getattr(connection, "stream", None)
        try:
            local = stream.socket.getsockname() if stream is not None and stream.socket is not None else None
        except OSError:
            local = None
        if not (isinstance(peer, tuple) and isinstance(local, tuple)):
            return request.remote_ip or "unknown"
        return client_address(
            peer[:2],
            local[:2],
            request.headers.get_list("X-Forwarded-For"),
            Path(self.proxy_pid_file) if self.proxy_pid_file else None,
        )
