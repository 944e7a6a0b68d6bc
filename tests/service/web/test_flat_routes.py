"""Routers mounted flat (``service/web/flat_routes.py``) behave and document themselves as ``include_router`` did."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel

from polartep_hub.service.web.flat_routes import mount_flat


class Thing(BaseModel):
    name: str


def _router() -> APIRouter:
    router = APIRouter(tags=["things"])

    @router.get("/things/{name}", response_model=Thing, responses={404: {"description": "no such thing"}})
    def get_thing(name: str) -> Thing:
        """One thing."""
        return Thing(name=name)

    @router.post("/things", status_code=201, response_model=Thing, operation_id="make_thing")
    def make_thing(body: Thing) -> Thing:
        return body

    @router.get("/hidden", include_in_schema=False, response_class=PlainTextResponse)
    def hidden() -> str:
        return "hidden"

    return router


def test_flat_routes_give_the_same_document_and_answers_as_include_router():
    nested, flat = FastAPI(), FastAPI()
    nested.include_router(_router(), prefix="/p/api")
    added = mount_flat(flat, _router(), "/p/api")

    assert flat.openapi() == nested.openapi()
    assert [route.path for route in added] == ["/p/api/things/{name}", "/p/api/things", "/p/api/hidden"]
    assert all(isinstance(route, APIRoute) for route in flat.routes if route in added)
    for app in (nested, flat):
        client = TestClient(app)
        assert client.get("/p/api/things/a").json() == {"name": "a"}
        made = client.post("/p/api/things", json={"name": "b"})
        assert (made.status_code, made.json()) == (201, {"name": "b"})
        assert client.get("/p/api/hidden").text == "hidden"
        assert client.delete("/p/api/things/a").status_code == 405
        assert client.get("/p/api/other").status_code == 404


def test_a_router_with_dependencies_is_refused():
    def dependency() -> None:
        return None

    router = APIRouter(dependencies=[Depends(dependency)])
    with pytest.raises(TypeError) as refused:
        mount_flat(FastAPI(), router, "/p")
    assert str(refused.value) == "router with dependencies at '/p': mount it with include_router"
