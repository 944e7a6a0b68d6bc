"""The layout's rules: one package per domain, the service as plumbing only, and no import cycle.

Read from the source with ``ast`` (nothing is imported), so a rule broken anywhere fails here, named.
Imports inside functions and under ``if TYPE_CHECKING:`` count too: a cycle hidden there is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

HUB = Path(__file__).resolve().parent.parent / "hub"
DOMAINS = ("accounts", "projects", "usage")


def _module_name(path: Path) -> str:
    parts = path.relative_to(HUB).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("polartep_hub", *parts))


def _imports(path: Path) -> set[str]:
    """Every ``polartep_hub`` module this file imports (``from package import module`` counts as the module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("polartep_hub")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("polartep_hub"):
            for alias in node.names:
                names.add(f"{node.module}.{alias.name}")
                names.add(node.module)
    return names


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in HUB.rglob("*.py") if "migrations" not in p.parts}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others():
    # A package's __init__ importing its own modules is not a cycle; none of ours does.
    assert _cycles(_graph()) == []


def test_the_service_package_holds_no_domain_code():
    # Plumbing only: the app that assembles routers, the registry of tables, the one table of domain errors to HTTP
    # answers and the context of one process may name domains; nothing else in service/ imports them.
    allowed = {
        "polartep_hub.service.app",
        "polartep_hub.service.tables",
        "polartep_hub.service.context",
        "polartep_hub.service.__main__",
        "polartep_hub.service.web.errors",
    }
    graph = _graph()
    offenders = {
        module: sorted(m for m in imports if m.split(".")[1] in DOMAINS)
        for module, imports in graph.items()
        if module.startswith("polartep_hub.service") and module not in allowed
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def _router_references(path: Path) -> set[str]:
    """Routers of other modules this file names: ``module.router`` / ``module.api_router`` or ``import router``."""
    tree = ast.parse(path.read_text(), str(path))
    imported = {
        alias.asname or alias.name.split(".")[-1]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.endswith("router")
            and isinstance(node.value, ast.Name)
            and node.value.id in imported
        ):
            found.add(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("polartep_hub"):
            found |= {f"{node.module}.{a.name}" for a in node.names if a.name.endswith("router")}
    return found


def test_only_the_app_knows_every_router():
    naming = {_module_name(p) for p in HUB.rglob("*.py") if _router_references(p)}
    assert naming == {"polartep_hub.service.app"}
    # and it mounts one of each: every module that makes a router is imported by the app
    makers = {_module_name(p) for p in HUB.rglob("*.py") if "APIRouter(" in p.read_text()}
    assert makers - _graph()["polartep_hub.service.app"] == set()


def test_hub_service_holds_only_the_plumbing():
    modules = sorted(p.stem for p in (HUB / "service").glob("*.py"))
    assert modules == [
        "__init__",
        "__main__",
        "api",
        "app",
        "config",
        "context",
        "db",
        "hub_api",
        "mail_outbox",
        "metrics",
        "models",
        "orm",
        "rate_limits",
        "tables",
    ]
