"""Built-in processors shipped with the platform: ``echo``, the process the OGC API - Processes test suite runs.

Rules this module guarantees:

* ``ensure_builtin_processors`` publishes each built-in processor once (owner NULL, public), through the models
  directly, at service start; a processor of that name that exists already (built-in or not) is left alone, so the
  call is idempotent and never takes over a user's processor.
* A built-in processor runs like any other: on the invoker's cluster and quota.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from polartep_hub.processors.models import Processor, ProcessorVersion
from polartep_hub.processors.notebook_store import NotebookStore

BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTIN_PROCESSORS = ("echo",)


def ensure_builtin_processors(sessions: sessionmaker[Session], processors_dir: Path) -> list[str]:
    """Publish the built-in processors that are not there yet; the names published by this call."""
    store = NotebookStore(Path(processors_dir) / "notebooks")
    published = []
    for name in BUILTIN_PROCESSORS:
        definition = json.loads((BUILTIN_DIR / f"{name}.json").read_text())
        with sessions() as session:
            if session.scalar(select(Processor.id).where(Processor.name == name)) is not None:
                continue
            sha = store.put((BUILTIN_DIR / definition["notebook"]).read_bytes())
            processor = Processor(name=name, owner_id=None, visibility="public")
            session.add(processor)
            session.flush()
            session.add(
                ProcessorVersion(
                    processor_id=processor.id,
                    sequence=1,
                    version=definition["version"],
                    notebook_sha256=sha,
                    definition=definition,
                    published_by_id=None,
                )
            )
            try:
                session.commit()
            except IntegrityError:  # published meanwhile (another process): that one stays
                session.rollback()
                continue
            published.append(name)
    return published
