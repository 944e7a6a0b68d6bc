"""The content-addressed notebook store: what is put is read back exactly, never rewritten, never torn."""

from __future__ import annotations

import stat

import pytest

from polartep_hub.processors.notebook_store import (
    NotebookStore,
    StoredNotebookCorrupt,
    StoredNotebookMissing,
    sha256_of,
)

NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def test_a_stored_notebook_reads_back_under_its_hash(tmp_path):
    store = NotebookStore(tmp_path / "notebooks")
    digest = store.put(NOTEBOOK)
    assert digest == sha256_of(NOTEBOOK)
    assert store.read(digest) == NOTEBOOK
    assert stat.S_IMODE(store.path(digest).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "notebooks").stat().st_mode) == 0o700


def test_putting_the_same_bytes_again_keeps_the_one_file(tmp_path):
    store = NotebookStore(tmp_path)
    first = store.put(NOTEBOOK)
    mtime = store.path(first).stat().st_mtime_ns
    assert store.put(NOTEBOOK) == first
    assert store.path(first).stat().st_mtime_ns == mtime
    assert [p.name for p in store.path(first).parent.iterdir()] == [f"{first}.ipynb"]


def test_a_missing_or_corrupted_notebook_is_reported_not_run(tmp_path):
    store = NotebookStore(tmp_path)
    with pytest.raises(StoredNotebookMissing):
        store.read("0" * 64)
    digest = store.put(NOTEBOOK)
    store.path(digest).write_bytes(NOTEBOOK + b" ")
    with pytest.raises(StoredNotebookCorrupt):
        store.read(digest)


@pytest.mark.parametrize("name", ["../etc/passwd", "A" * 64, "0" * 63, ""])
def test_only_a_sha256_names_a_stored_notebook(tmp_path, name):
    with pytest.raises(ValueError, match="not a SHA-256"):
        NotebookStore(tmp_path).path(name)
