"""Shared by several test modules (moved from ``tests/service/test_api.py``)."""

from __future__ import annotations

from sqlalchemy import select

from polartep_hub.accounts.models import Account
from tests.helpers.service_fakes import ApiClient


def create(api: ApiClient, name: str, token: str = "hub-token", **body):
    response = api.post("api/v1/accounts", token=token, json={"name": name, **body})
    assert response.status_code == 201, response.text
    return response.json()


def edit_account(app, name: str, **values) -> None:
    with app.state.context.session() as session:
        row = session.scalar(select(Account).where(Account.name == name))
        for key, value in values.items():
            setattr(row, key, value)
        session.commit()
