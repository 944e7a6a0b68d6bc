"""``PlatformPasswordAuthenticator``: username/password login checked by the platform service.

Why not NativeAuthenticator: its latest release (1.3.0) fails to log anyone in on JupyterHub 6 (its login handler
uses the statsd client that JupyterHub 6 removed), and registration here needs fields and consent records that it
lacks. Accounts, with their argon2 password hashes, live in the platform service, which owns all platform state; the
hub only asks it whether a password is right. The first administrator is created from settings.

Rules it guarantees:

* Usernames are normalised to lower case and must match ``username_pattern`` before anything is asked.
* Only approved accounts with a matching password log in; unknown users and wrong passwords get the same answer.
* Every account the service knows may log in, so JupyterHub's own allow list is not used (``allow_all``).
"""

from __future__ import annotations

from jupyterhub.auth import Authenticator
from traitlets import Unicode, default

from ..platform_client import PlatformClient


class PlatformPasswordAuthenticator(Authenticator):
    """Passwords verified by the platform service."""

    platform_service_url = Unicode(help="Internal URL of the platform service.", config=True)
    platform_service_token = Unicode(
        help="Token of the hub's internal client of the platform service.", config=True
    )

    @default("username_pattern")
    def _username_pattern_default(self) -> str:
        return r"^[a-z0-9][a-z0-9._-]{0,63}$"

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        # The platform service's accounts are the allow list: it refuses unknown and unapproved accounts.
        return True

    def normalize_username(self, username: str) -> str:
        return username.strip().lower()

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        password = data.get("password", "")
        if not username or not password or not self.validate_username(username):
            return None
        client = PlatformClient(self.platform_service_url, self.platform_service_token)
        account = await client.verify_password(username, password)
        if account is None:
            self.log.warning("Failed login for %s", username[:64])
            return None
        return {"name": account["name"], "admin": bool(account.get("admin"))}
