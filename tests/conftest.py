"""Fixtures shared by several test modules."""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run each test in its own folder; tool outputs land under it too (not in /tmp at large)."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "_tool_out"
    out.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(out))
    return tmp_path
