"""Fixtures shared by test files."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def object_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C runtime's objects, compiled once and shared by the xdist workers (the objects are
    named by the hash of their sources, flags and compiler, and written atomically)."""
    return tmp_path_factory.getbasetemp().parent / "memfit-runtime-objects"
