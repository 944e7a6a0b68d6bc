"""Runs schemathesis (4.x) in-process over an ASGI app's OpenAPI document and returns what contradicted it.

``contract_failures(app, openapi_path, token=..., ...)`` loads the document from the app itself
(``schemathesis.openapi.from_asgi``), runs the same engine as ``st run`` (phases examples, coverage, fuzzing and
stateful) with a fixed seed, deterministic generation and a time budget, calling the app over ASGI with
``Authorization: token <token>``, and returns one line per distinct failure (operation, check, message, a curl line to
reproduce it). An empty list means no response contradicted the document.

Rejected: schemathesis' pytest plugin (``schema.parametrize()``), which runs one test per operation without the
coverage and stateful phases that found most of the contradictions ``st run`` reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from schemathesis import SCHEMATHESIS_VERSION
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, from_schema
from schemathesis.engine import events as engine_events
from schemathesis.openapi import from_asgi

# The checks the contract is held to: no server error, and status codes, content types, bodies and headers as
# documented.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)


@dataclass
class ContractRun:
    """What one run found: distinct failures (empty: none), test cases generated, seconds, why it stopped."""

    failures: list[str]
    cases: int
    seconds: float
    stop_reason: str
    operations: int
    errors: list[str]

    def report(self) -> str:
        head = (
            f"schemathesis {SCHEMATHESIS_VERSION}: {self.operations} operations, {self.cases} test cases in "
            f"{self.seconds:.1f} s ({self.stop_reason}); {len(self.failures)} failures, {len(self.errors)} errors"
        )
        return "\n\n".join([head, *self.failures, *self.errors])


def contract_failures(
    app: Any,
    openapi_path: str,
    *,
    token: str,
    max_time: int,
    max_examples: int,
    seed: int = 20261201,
    include_path_regex: str | None = None,
    exclude_path_regex: str | None = None,
    phases: tuple[str, ...] = ("examples", "coverage", "fuzzing", "stateful"),
    checks: tuple[str, ...] = CHECKS,
) -> ContractRun:
    """Run schemathesis over ``app``'s document as the owner of ``token``; see the module docstring."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": seed,
            "max-time": max_time,
            "headers": {"Authorization": f"token {token}"},
            "generation": {"max-examples": max_examples, "deterministic": True},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in checks}},
            "phases": {
                name: {"enabled": name in phases} for name in ("examples", "coverage", "fuzzing", "stateful")
            },
            "suppress-health-check": ["all"],
            "workers": 1,  # one request at a time: reproducible, and the machine is small
        }
    )
    schema = from_asgi(openapi_path, app, config=config)
    if include_path_regex:
        schema = schema.include(path_regex=include_path_regex)
    if exclude_path_regex:
        schema = schema.exclude(path_regex=exclude_path_regex)
    started = time.monotonic()
    failures: dict[tuple[str, str, str], str] = {}
    errors: list[str] = []
    cases: set[str] = set()
    tested: set[str] = set()
    stop_reason = "?"
    for event in from_schema(schema).execute():
        if isinstance(event, engine_events.ScenarioFinished):
            recorder = event.recorder
            if event.status is not Status.SKIP and recorder.label:
                tested.add(recorder.label)
            cases.update(recorder.cases)
            for case_id, nodes in recorder.checks.items():
                for node in nodes:
                    if node.status is not Status.FAILURE or node.failure_info is None:
                        continue
                    failure = node.failure_info.failure
                    key = (
                        recorder.label,
                        failure.title,
                        failure.message.splitlines()[0] if failure.message else "",
                    )
                    if key in failures:
                        continue
                    response = recorder.find_response(case_id=case_id)
                    body = response.content[:400].decode("utf-8", "replace") if response is not None else ""
                    status = response.status_code if response is not None else "-"
                    failures[key] = (
                        f"{recorder.label}: {failure.title} ({node.name})\n  {failure.message}\n"
                        f"  [{status}] {body}\n  {node.failure_info.code_sample}"
                    )
        elif isinstance(event, engine_events.NonFatalError):
            errors.append(
                f"error in {event.label}: {event.info.format() if hasattr(event, 'info') else event}"
            )
        elif isinstance(event, engine_events.FatalError):
            errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, engine_events.EngineFinished):
            stop_reason = str(event.stop_reason)
    return ContractRun(
        failures=list(failures.values()),
        cases=len(cases),
        seconds=time.monotonic() - started,
        stop_reason=stop_reason,
        operations=len(tested),
        errors=errors,
    )
