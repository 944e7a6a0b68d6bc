"""The dashboards' tables: each published dashboard and its frozen, content-addressed notebook versions.

* ``dashboards``: one row per dashboard: its id (the stable part of its URL and of its JupyterHub server name
  ``dash-<id>``), owner, title, description and the version it serves now (``current_sha256``).
* ``dashboard_versions``: the notebook of each version, exactly as published, keyed by the SHA-256 of its bytes.
  A version is never changed: publishing again adds a row and moves ``current_sha256``.
* ``dashboard_files``: the files a version carries beside its notebook (a processor run's output files, which the
  run's output notebook reads by their relative paths), keyed by version and path; frozen with the version.
* ``dashboards.source_run_id``: the processor run a dashboard was published from (its results), if any.
* ``dashboards.kind``: what serves it: ``voila`` (a notebook), or a hosted app: ``panel`` (a Panel script or
  notebook) or ``web`` (an ASGI/WSGI app or a static site). An app's version row holds its manifest (kind, entry
  point, runner and each file's SHA-256, canonical JSON) instead of a notebook, and its files are its
  ``dashboard_files``; the manifest's SHA-256 is the version, so a version still never changes
  (``dashboards/store.py``).

Both disappear with the owner's account (``ON DELETE CASCADE``); erasure also deletes them explicitly
(``store.erase_owner``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from polartep_hub.accounts.models import Account
from polartep_hub.service.orm import Base, UTCDateTime, utcnow


class Dashboard(Base):
    """A published dashboard, served by Voila on the owner's named server ``dash-<id>``."""

    __tablename__ = "dashboards"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    current_sha256: Mapped[str] = mapped_column(String(64))
    # The processor run (its id) whose results this dashboard shows; no foreign key: the run may be deleted.
    source_run_id: Mapped[str | None] = mapped_column(String(36), index=True, default=None)
    # voila | panel | web (store.KINDS): which runner of the platform's serves it (dashboards/serve.py).
    kind: Mapped[str] = mapped_column(String(8), default="voila", server_default="voila")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # One way only: the accounts domain knows nothing of dashboards (the database cascades the rows on erasure).
    owner: Mapped[Account] = relationship()
    versions: Mapped[list[DashboardVersion]] = relationship(
        back_populates="dashboard", cascade="all, delete-orphan", passive_deletes=True
    )


class DashboardVersion(Base):
    """One frozen notebook of a dashboard, addressed by the SHA-256 of its bytes."""

    __tablename__ = "dashboard_versions"

    dashboard_id: Mapped[str] = mapped_column(
        ForeignKey("dashboards.id", ondelete="CASCADE"), primary_key=True
    )
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    notebook: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    dashboard: Mapped[Dashboard] = relationship(back_populates="versions")


class DashboardFile(Base):
    """A file frozen with a dashboard version, written beside its notebook when the dashboard server starts."""

    __tablename__ = "dashboard_files"

    dashboard_id: Mapped[str] = mapped_column(
        ForeignKey("dashboards.id", ondelete="CASCADE"), primary_key=True
    )
    version_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(255), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
