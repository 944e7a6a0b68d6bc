"""Mounting the domains' routers as one flat list of routes, so that routing a request costs microseconds.

FastAPI >= 0.16x keeps an included router nested: a request is matched against each included router in turn, and
inside the one that matches, against each of its routes a second time (once to find it, once to run it), with
bookkeeping in the request scope per candidate. With the service's 30 routers and 150 routes that cost 0.5-0.7 ms
per pass for a route mounted late (the quota decision, a run submission, ``GET ogcapi/jobs``), measured under load,
i.e. about 1 ms of every such request. Older FastAPI copied an included router's routes into the app instead; this
module does the same, explicitly.

Rules this module guarantees:

* ``mount_flat`` adds each route of a router to the app under ``prefix`` as the app's own route, with every
  attribute the route was declared with (response model, status code, answers, tags, dependencies, operation id,
  visibility in the schema, ...), so the OpenAPI document and the behaviour are those of ``include_router``.
* Only plain routers are accepted: a router with router-level dependencies, nested routers, mounts or websockets
  raises ``TypeError`` at start-up (those need ``include_router``), so nothing is silently dropped.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter
from starlette.routing import Route


def mount_flat(app: FastAPI, router: APIRouter, prefix: str) -> list[Route]:
    """Add the routes of ``router`` to ``app`` at ``prefix`` (as ``app.include_router`` would); the routes added."""
    if router.dependencies:
        raise TypeError(f"router with dependencies at {prefix!r}: mount it with include_router")
    added: list[Route] = []
    for route in router.routes:
        if isinstance(route, APIRoute):
            app.router.add_api_route(
                prefix + route.path,
                route.endpoint,
                response_model=route.response_model,
                status_code=route.status_code,
                tags=list(route.tags),
                dependencies=list(route.dependencies),
                summary=route.summary,
                description=route.description,
                response_description=route.response_description,
                responses=dict(route.responses),
                deprecated=route.deprecated,
                methods=set(route.methods),
                operation_id=route.operation_id,
                response_model_include=route.response_model_include,
                response_model_exclude=route.response_model_exclude,
                response_model_by_alias=route.response_model_by_alias,
                response_model_exclude_unset=route.response_model_exclude_unset,
                response_model_exclude_defaults=route.response_model_exclude_defaults,
                response_model_exclude_none=route.response_model_exclude_none,
                include_in_schema=route.include_in_schema,
                response_class=route.response_class,
                name=route.name,
                callbacks=route.callbacks,
                openapi_extra=route.openapi_extra,
                generate_unique_id_function=route.generate_unique_id_function,
                strict_content_type=route.strict_content_type,
            )
        elif type(route) is Route:
            app.router.add_route(
                prefix + route.path,
                route.endpoint,
                methods=sorted(route.methods or ()),
                name=route.name,
                include_in_schema=route.include_in_schema,
            )
        else:
            raise TypeError(
                f"{type(route).__name__} {getattr(route, 'path', '?')!r}: mount it with include_router"
            )
        added.append(app.router.routes[-1])
    return added
