"""The optional C accelerators: loaded when built, switched off by SFLOWLAB_PURE_PYTHON=1.

CI (ci/test.sh) sets SFLOWLAB_REQUIRE_ACCEL=1: there the accelerators must have been built,
so the differential tests comparing them with the pure-Python code cannot silently skip.
"""

from __future__ import annotations

import os

import pytest

from sflowlab import accel


def test_pure_python_env_switches_every_accelerator_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(accel.PURE_ENV, "1")
    assert accel.active() == []
    assert all(accel.load(name) is None for name in accel.MODULES)


def test_unknown_module_is_none() -> None:
    assert accel.load("sflowlab.codec._no_such_accelerator") is None


@pytest.mark.skipif(os.environ.get("SFLOWLAB_REQUIRE_ACCEL") != "1",
                    reason="SFLOWLAB_REQUIRE_ACCEL=1 not set (CI sets it)")
def test_every_accelerator_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(accel.PURE_ENV, raising=False)
    assert accel.active() == [name.rsplit(".", 1)[1] for name in accel.MODULES]
