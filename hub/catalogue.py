"""The service catalogue: profiles, plans, subscriptions and prices, loaded from ``spawner_profiles/``.

Rules this module guarantees:

* The YAML file is validated against the JSON Schema shipped beside it before anything reads it; every error names
  the file, the key path and what is wrong (``CatalogueError``).
* Cross-references are checked too: a plan or subscription that names an unknown profile is an error.
* What callers get are frozen, typed objects; nothing else in the platform parses the file or writes a size or a price.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CATALOGUE_DIR = Path(__file__).resolve().parent.parent / "spawner_profiles"
DEFAULT_CATALOGUE_PATH = CATALOGUE_DIR / "catalogue.yaml"
SCHEMA_PATH = CATALOGUE_DIR / "catalogue.schema.json"

_MEMORY_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class CatalogueError(ValueError):
    """The catalogue file cannot be used; the message says which file, which key and what to fix."""


def parse_memory(value: str) -> int:
    """Turn a JupyterHub-style size (``"8G"``, ``"512M"``) into bytes."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([KMGT])", value)
    if not match:
        raise ValueError(f"{value!r} is not a size such as 512M or 8G")
    number, unit = match.groups()
    return int(float(number) * _MEMORY_UNITS[unit])


def format_memory(num_bytes: int) -> str:
    """Format bytes the way the catalogue writes them (the largest unit that divides evenly)."""
    for unit in ("T", "G", "M", "K"):
        size = _MEMORY_UNITS[unit]
        if num_bytes % size == 0:
            return f"{num_bytes // size}{unit}"
    return str(num_bytes)


@dataclass(frozen=True)
class Profile:
    """A sized environment a user can start (a JupyterHub profile)."""

    name: str
    display_name: str
    description: str
    cpu: float
    memory: int  # bytes
    image: str
    gpu: int = 0
    gpu_policy: str = "if-available"

    @property
    def memory_text(self) -> str:
        return format_memory(self.memory)

    def summary(self) -> str:
        """One line for forms and tables, e.g. ``Medium: 4 CPU, 32 GB``."""
        text = f"{self.display_name}: {self.cpu:g} CPU, {self.memory / 1024**3:g} GB"
        if self.gpu:
            text += f", {self.gpu} GPU" + (" where available" if self.gpu_policy == "if-available" else "")
        return text


@dataclass(frozen=True)
class DaskLimits:
    """Bounds on a user's Dask Gateway clusters under a plan."""

    max_workers: int
    max_cores: float
    max_worker_memory: int  # bytes


@dataclass(frozen=True)
class RunningBounds:
    """What all of an account's servers together may hold at once under a plan."""

    cores: float
    memory: int  # bytes


@dataclass(frozen=True)
class Plan:
    """An execution plan: a monthly CPU-hour allowance and the profiles it allows."""

    name: str
    display_name: str
    cpu_hours_per_month: float
    price: float
    profiles: tuple[str, ...]
    duration_months: int | None = None
    dask: DaskLimits | None = None
    storage_quota_tb: Mapping[str, float] = field(default_factory=dict)
    max_running: RunningBounds | None = None  # None: no bound beyond the allowance

    @property
    def allowance_core_seconds(self) -> float:
        """The monthly allowance in core-seconds (the ledger's unit)."""
        return self.cpu_hours_per_month * 3600.0


@dataclass(frozen=True)
class Subscription:
    """A monthly priced item that grants one profile (development environment, ML, hosting)."""

    name: str
    display_name: str
    kind: str
    profile: str
    price: float


@dataclass(frozen=True)
class StorageTier:
    name: str
    display_name: str
    price_per_tb_month: float


@dataclass(frozen=True)
class SupportService:
    name: str
    display_name: str
    price: float
    unit: str


@dataclass(frozen=True)
class Catalogue:
    """The whole service offering, as typed objects keyed by name (in file order)."""

    source: Path
    currency: str
    profiles: Mapping[str, Profile]
    plans: Mapping[str, Plan]
    subscriptions: Mapping[str, Subscription]
    storage: Mapping[str, StorageTier]
    services: Mapping[str, SupportService]

    def profile(self, name: str) -> Profile:
        """The named profile; ``KeyError`` with the known names otherwise."""
        try:
            return self.profiles[name]
        except KeyError:
            raise KeyError(f"unknown profile {name!r}; known profiles: {', '.join(self.profiles)}") from None

    def plan(self, name: str) -> Plan:
        try:
            return self.plans[name]
        except KeyError:
            raise KeyError(f"unknown plan {name!r}; known plans: {', '.join(self.plans)}") from None

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the source file, for logs and the service's health page."""
        import hashlib

        return hashlib.sha256(self.source.read_bytes()).hexdigest()[:12]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (memory in bytes and as text) for APIs and ``polartep catalogue --json``."""
        return {
            "currency": self.currency,
            "profiles": {
                n: {
                    "display_name": p.display_name,
                    "description": p.description,
                    "cpu": p.cpu,
                    "memory": p.memory,
                    "memory_text": p.memory_text,
                    "gpu": p.gpu,
                    "gpu_policy": p.gpu_policy,
                    "image": p.image,
                }
                for n, p in self.profiles.items()
            },
            "plans": {
                n: {
                    "display_name": p.display_name,
                    "cpu_hours_per_month": p.cpu_hours_per_month,
                    "price": p.price,
                    "duration_months": p.duration_months,
                    "profiles": list(p.profiles),
                    "dask": None
                    if p.dask is None
                    else {
                        "max_workers": p.dask.max_workers,
                        "max_cores": p.dask.max_cores,
                        "max_worker_memory": p.dask.max_worker_memory,
                    },
                    "storage_quota_tb": dict(p.storage_quota_tb),
                    "max_running": None
                    if p.max_running is None
                    else {"cores": p.max_running.cores, "memory": p.max_running.memory},
                }
                for n, p in self.plans.items()
            },
            "subscriptions": {
                n: {"display_name": s.display_name, "kind": s.kind, "profile": s.profile, "price": s.price}
                for n, s in self.subscriptions.items()
            },
            "storage": {
                n: {"display_name": s.display_name, "price_per_tb_month": s.price_per_tb_month}
                for n, s in self.storage.items()
            },
            "services": {
                n: {"display_name": s.display_name, "price": s.price, "unit": s.unit}
                for n, s in self.services.items()
            },
        }


def _key_path(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def _schema_errors(document: Any, source: Path) -> list[str]:
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    messages = []
    for error in sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]):
        where = _key_path(error.absolute_path)
        if "propertyNames" in error.absolute_schema_path:
            # jsonschema reports the bad key as the instance; name it explicitly.
            messages.append(
                f"{source}: at {where}: key {error.instance!r} is not a valid name "
                "(lower-case letters, digits and '-', starting with a letter)"
            )
        else:
            messages.append(f"{source}: at {where}: {error.message}")
    return messages


def _reference_errors(document: Mapping[str, Any], source: Path) -> list[str]:
    profiles = set(document["profiles"])
    messages = []
    for plan_name, plan in document["plans"].items():
        for index, profile in enumerate(plan["profiles"]):
            if profile not in profiles:
                messages.append(
                    f"{source}: at plans.{plan_name}.profiles.{index}: unknown profile {profile!r} "
                    f"(defined: {', '.join(sorted(profiles))})"
                )
        for tier in plan.get("storage_quota_tb", {}):
            if tier not in document["storage"]:
                messages.append(
                    f"{source}: at plans.{plan_name}.storage_quota_tb.{tier}: unknown storage tier {tier!r}"
                )
    for sub_name, sub in document["subscriptions"].items():
        if sub["profile"] not in profiles:
            messages.append(
                f"{source}: at subscriptions.{sub_name}.profile: unknown profile {sub['profile']!r}"
            )
    return messages


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read, validate and type the catalogue at ``path`` (the shipped one by default).

    Raises ``CatalogueError`` listing every problem found, each naming the file and the key.
    """
    source = Path(path) if path else DEFAULT_CATALOGUE_PATH
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as e:
        raise CatalogueError(f"{source}: cannot read the catalogue: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise CatalogueError(
            f"{source}: the catalogue is not valid UTF-8 ({e.reason} at byte {e.start})"
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise CatalogueError(f"{source}: not valid YAML{where}: {problem}") from None
    if not isinstance(document, dict):
        raise CatalogueError(f"{source}: at (top level): expected a mapping with profiles, plans, ... ")
    errors = _schema_errors(document, source)
    if not errors:
        errors = _reference_errors(document, source)
    if errors:
        raise CatalogueError("invalid catalogue:\n  " + "\n  ".join(errors))

    profiles = {
        name: Profile(
            name=name,
            display_name=p["display_name"],
            description=p.get("description", ""),
            cpu=float(p["cpu"]),
            memory=parse_memory(p["memory"]),
            image=p["image"],
            gpu=p.get("gpu", 0),
            gpu_policy=p.get("gpu_policy", "if-available"),
        )
        for name, p in document["profiles"].items()
    }
    plans = {
        name: Plan(
            name=name,
            display_name=p["display_name"],
            cpu_hours_per_month=float(p["cpu_hours_per_month"]),
            price=float(p["price"]),
            profiles=tuple(p["profiles"]),
            duration_months=p.get("duration_months"),
            dask=None
            if "dask" not in p
            else DaskLimits(
                max_workers=p["dask"]["max_workers"],
                max_cores=float(p["dask"]["max_cores"]),
                max_worker_memory=parse_memory(p["dask"]["max_worker_memory"]),
            ),
            storage_quota_tb={k: float(v) for k, v in p.get("storage_quota_tb", {}).items()},
            max_running=None
            if "max_running" not in p
            else RunningBounds(
                cores=float(p["max_running"]["cores"]), memory=parse_memory(p["max_running"]["memory"])
            ),
        )
        for name, p in document["plans"].items()
    }
    return Catalogue(
        source=source,
        currency=document["currency"],
        profiles=profiles,
        plans=plans,
        subscriptions={
            n: Subscription(n, s["display_name"], s["kind"], s["profile"], float(s["price"]))
            for n, s in document["subscriptions"].items()
        },
        storage={
            n: StorageTier(n, s["display_name"], float(s["price_per_tb_month"]))
            for n, s in document["storage"].items()
        },
        services={
            n: SupportService(n, s["display_name"], float(s["price"]), s["unit"])
            for n, s in document["services"].items()
        },
    )
