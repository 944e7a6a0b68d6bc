"""Processors made directly with the models (the registry's publish is another module's): notebooks and versions.

``notebook(parameters_source, *cells)`` builds a notebook whose first code cell is tagged ``parameters``;
``create_processor(database_url, processors_dir, ...)`` stores the notebook and writes a processor and its version
the way the registry does, for the runs' tests.
"""

from __future__ import annotations

import json
from typing import Any

import nbformat
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from polartep_hub.accounts.models import Account
from polartep_hub.processors.models import Processor, ProcessorVersion
from polartep_hub.processors.notebook_store import NotebookStore

# Writes outputs.json and a file output, so a run has both kinds of declared outputs.
OUTPUT_CELL = """
import json, pathlib
pathlib.Path("label.txt").write_text(f"{label}:{days}")
json.dump({"total": threshold * days, "label": label}, open("outputs.json", "w"))
"""

ECHO_PARAMETERS = 'threshold = 1.5\ndays = 2\nlabel = "plain"\nsmooth = True\n'
ECHO_DEFINITION: dict[str, Any] = {
    "title": "Echo",
    "version": "1.0.0",
    "notebook": "echo.ipynb",
    "inputs": {
        "threshold": {"type": "number", "minimum": 0, "maximum": 100, "default": 15},
        "days": {"type": "integer", "minimum": 1, "maximum": 366, "default": 30},
        "label": {"type": "string", "maxLength": 200, "default": "default-label"},
        "smooth": {"type": "boolean", "default": True},
    },
    "outputs": {
        "total": {"type": "value", "schema": {"type": "number"}},
        "label": {"type": "value", "schema": {"type": "string"}},
        "labelfile": {"type": "file", "path": "label.txt", "mediaType": "text/plain"},
    },
    "profile": "small",
    "timeout": 3600,
    "visibility": "private",
}


def notebook(parameters_source: str, *cells: str) -> bytes:
    """A Python notebook: a code cell tagged ``parameters`` with ``parameters_source``, then ``cells``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    first = nbformat.v4.new_code_cell(parameters_source)
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first, *(nbformat.v4.new_code_cell(source) for source in cells)]
    return nbformat.writes(nb).encode()


def echo_notebook(*extra_cells: str) -> bytes:
    return notebook(ECHO_PARAMETERS, OUTPUT_CELL, *extra_cells)


def create_processor(
    database_url: str,
    processors_dir,
    name: str,
    owner: str | None,
    content: bytes,
    definition: dict[str, Any] | None = None,
    *,
    visibility: str = "private",
    **changes: Any,
) -> int:
    """Store ``content`` and write processor ``name`` (owned by account ``owner``) with one version; its id."""
    definition = json.loads(json.dumps({**(definition or ECHO_DEFINITION), "id": name, **changes}))
    definition["visibility"] = visibility
    sha = NotebookStore(processors_dir / "notebooks").put(content)
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            owner_id = session.scalar(select(Account.id).where(Account.name == owner)) if owner else None
            processor = Processor(name=name, owner_id=owner_id, visibility=visibility)
            session.add(processor)
            session.flush()
            session.add(
                ProcessorVersion(
                    processor_id=processor.id,
                    sequence=1,
                    version=definition["version"],
                    notebook_sha256=sha,
                    definition=definition,
                    published_by_id=owner_id,
                )
            )
            session.commit()
            return processor.id
    finally:
        engine.dispose()
