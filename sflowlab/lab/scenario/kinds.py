"""The registry of assertion kinds and the ``Outcome`` a check returns.

A kind is a frozen dataclass of parameters with ``check(recording) -> Outcome``, registered
with ``@assertion("name")`` (``assertions`` and ``assertions_lifecycle`` define the built-in
ones; ``loader`` imports them, validates a file's assertions against ``KINDS`` and builds its
JSON Schema). This module imports nothing else of the lab, so every layer may use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["KINDS", "Outcome", "assertion"]


@dataclass(frozen=True)
class Outcome:
    name: str
    passed: bool
    message: str
    at: float | None = None


KINDS: dict[str, type] = {}
_C = TypeVar("_C", bound=type)


def assertion(kind: str) -> Callable[[_C], _C]:
    """Register an assertion kind (a dataclass with ``check(recording) -> Outcome``)."""
    def register(cls: _C) -> _C:
        KINDS[kind] = cls
        return cls
    return register
