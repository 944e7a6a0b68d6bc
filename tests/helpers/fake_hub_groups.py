"""``FakeHubGroups``: JupyterHub's groups and users as the service's group sync sees them, in memory.

It behaves like JupyterHub where the sync depends on it: only known users can be put into a group (400 otherwise),
creating what exists and removing what is gone are harmless, and ``down = True`` makes every call fail as an
unreachable hub would. ``calls`` records what was asked, in order. The real sync against the real hub is tested in
``tests/hub/test_project_groups.py``.
"""

from __future__ import annotations

from typing import Any

from polartep_hub.service.hub_api import HubApiError


class FakeHubGroups:
    def __init__(self) -> None:
        self.groups_by_name: dict[str, dict[str, Any]] = {}
        self.users: set[str] = set()
        self.down = False
        self.calls: list[tuple[str, str]] = []

    def _call(self, what: str, name: str) -> None:
        if self.down:
            raise HubApiError(f"JupyterHub did not answer {what} {name}: ConnectError")
        self.calls.append((what, name))

    # the GroupsAPI protocol ------------------------------------------------------------------------------------

    def group(self, name: str) -> dict[str, Any] | None:
        self._call("group", name)
        model = self.groups_by_name.get(name)
        if model is None:
            return None
        return {"name": name, "users": sorted(model["users"]), "properties": dict(model["properties"])}

    def groups(self) -> list[dict[str, Any]]:
        self._call("groups", "")
        return [self.group(name) for name in sorted(self.groups_by_name)]  # type: ignore[misc]

    def create_group(self, name: str) -> bool:
        self._call("create_group", name)
        if name in self.groups_by_name:
            return False
        self.groups_by_name[name] = {"users": set(), "properties": {}}
        return True

    def set_group_properties(self, name: str, properties: dict[str, Any]) -> None:
        self._call("set_group_properties", name)
        self.groups_by_name[name]["properties"] = dict(properties)

    def delete_group(self, name: str) -> None:
        self._call("delete_group", name)
        self.groups_by_name.pop(name, None)

    def add_group_members(self, name: str, users: list[str]) -> None:
        self._call("add_group_members", name)
        unknown = [u for u in users if u not in self.users]
        if unknown:
            raise HubApiError(f"JupyterHub refused: 400 No such user: {unknown[0]}", 400)
        self.groups_by_name[name]["users"].update(users)

    def remove_group_members(self, name: str, users: list[str]) -> None:
        self._call("remove_group_members", name)
        self.groups_by_name[name]["users"].difference_update(users)

    def ensure_user(self, name: str) -> None:
        self._call("ensure_user", name)
        self.users.add(name)

    # for tests ---------------------------------------------------------------------------------------------------

    def members(self, name: str) -> set[str] | None:
        model = self.groups_by_name.get(name)
        return None if model is None else set(model["users"])

    def add_foreign_group(self, name: str, users: set[str]) -> None:
        """A group someone else made (e.g. from an identity provider's claims)."""
        self.users.update(users)
        self.groups_by_name[name] = {"users": set(users), "properties": {}}
