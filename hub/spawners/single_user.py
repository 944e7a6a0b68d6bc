"""Local mode without system users is single-user: the rule, and the one message that explains it.

Without root the platform cannot create system users, so every server would run as the platform's own account
and could read the platform's secrets and every other user's files. Local mode then serves exactly one person, the
configured administrator. Rules this module states (the hub, the spawner and the platform service apply them):

* ``isolates_users`` decides whether local mode runs users as system users: ``system-users`` always (start-up
  fails without root), ``single-user`` never, ``auto`` exactly when the platform runs as root.
* ``local_mode_refusal`` (checked when the hub starts): single-user local mode refuses to start while sign-up is
  open or while any account other than the administrator exists.
* ``single_user_refusal`` (checked when an account is created and when a server starts): no name but the
  administrator's.
"""

from __future__ import annotations

from collections.abc import Iterable

ISOLATION_CHOICES = ("auto", "system-users", "single-user")

HOW_TO_SERVE_MORE_USERS = (
    "Local mode without root is single-user (servers would run as the platform's own system user and could read "
    "its secrets). To serve several users, start the platform as root (each user then gets a system user), or use "
    "POLARTEP_MODE=docker."
)


def isolates_users(local_isolation: str, running_as_root: bool) -> bool:
    """Whether local mode runs each user as their own system user."""
    if local_isolation not in ISOLATION_CHOICES:
        raise ValueError(
            f"local_isolation must be one of {', '.join(ISOLATION_CHOICES)}, got {local_isolation!r}"
        )
    if local_isolation == "auto":
        return running_as_root
    return local_isolation == "system-users"


def local_mode_refusal(*, signup: bool, account_names: Iterable[str], admin_user: str) -> str | None:
    """Why single-user local mode must not start with this sign-up setting and these accounts; None if it may."""
    if signup:
        return f"sign-up is open (POLARTEP_SIGNUP=1). {HOW_TO_SERVE_MORE_USERS} Or set POLARTEP_SIGNUP=0."
    others = sorted(name for name in account_names if name != admin_user)
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        return (
            f"accounts other than the administrator {admin_user!r} exist ({shown}). {HOW_TO_SERVE_MORE_USERS} "
            "Or erase those accounts first."
        )
    return None


def single_user_refusal(name: str, admin_user: str) -> str | None:
    """Why ``name`` may not have an account or a server in single-user local mode; None for the administrator."""
    if name == admin_user:
        return None
    return f"{name[:80]!r} cannot be served: only the administrator {admin_user!r} can. {HOW_TO_SERVE_MORE_USERS}"
