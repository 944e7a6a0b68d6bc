"""Notebooks and definitions for the registry's tests (the runs' helpers are in ``tests/helpers/processors.py``)."""

from __future__ import annotations

import base64
import json
from typing import Any

PARAMETERS_SOURCE = """\
threshold = 15  # sea-ice concentration threshold, percent
days: int = 30
start = "2025-01-01"  # first day
region = "arctic"
smooth = True
area = [-180, 60, 180, 90]
years = [1979, 1980]
label = None
"""


def notebook_bytes(parameters: str = PARAMETERS_SOURCE, body: str = "result = threshold * 2\n") -> bytes:
    """An nbformat 4 Python notebook whose first cell is tagged ``parameters``."""
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": "params",
                "metadata": {"tags": ["parameters"]},
                "source": parameters,
                "outputs": [],
                "execution_count": None,
            },
            {
                "cell_type": "code",
                "id": "body",
                "metadata": {},
                "source": body,
                "outputs": [],
                "execution_count": None,
            },
        ],
    }
    return json.dumps(notebook, indent=1).encode()


def definition(pid: str = "sea-ice-extent", version: str = "1.0.0", **fields: Any) -> dict[str, Any]:
    """A valid definition for ``notebook_bytes()`` (fields override)."""
    document: dict[str, Any] = {
        "id": pid,
        "title": "Sea-ice extent",
        "description": "Daily extent above a threshold.",
        "keywords": ["sea ice", "Arctic"],
        "version": version,
        "notebook": "extent.ipynb",
        "inputs": {
            "threshold": {"type": "number", "minimum": 0, "maximum": 100, "default": 15},
            "days": {"type": "integer", "minimum": 1, "maximum": 366, "default": 30},
            "start": {"type": "date", "default": "2025-01-01", "title": "First day"},
            "region": {"type": "string", "enum": ["arctic", "antarctic"], "default": "arctic"},
            "smooth": {"type": "boolean", "default": True},
            "area": {"type": "bbox", "default": [-180, 60, 180, 90]},
            "years": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1979},
                "minItems": 1,
                "maxItems": 100,
            },
            "label": {"type": "string", "maxLength": 200, "required": False},
        },
        "outputs": {
            "plot": {"type": "file", "path": "extent.png", "mediaType": "image/png", "title": "Extent map"},
            "mean_extent": {"type": "value", "schema": {"type": "number"}, "title": "Mean extent"},
        },
        "profile": "small",
        "timeout": 600,
        "visibility": "private",
    }
    document.update(fields)
    return document


def publish_body(document: dict[str, Any], notebook: bytes | None = None) -> dict[str, Any]:
    """The JSON body of ``POST api/v1/processors``."""
    return {
        "definition": document,
        "notebook": base64.b64encode(notebook if notebook is not None else notebook_bytes()).decode(),
    }
