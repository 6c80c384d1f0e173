"""Shared fixtures for interop tests: locate third-party tools or skip with the reason."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def tshark() -> str:
    """Path of the ``tshark`` binary; the test is skipped when it is not installed."""
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed")
    return path
