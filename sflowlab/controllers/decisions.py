"""Decisions controllers take, as typed events they publish (``ControllerApi.publish``).

Each is a frozen dataclass named in the past tense; the runtime hands it to its subscribers
(the lab's recorder writes ``decisions.csv`` from them), so nothing has to parse log lines.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServiceScaled"]


@dataclass(frozen=True)
class ServiceScaled:
    """The ELB scaled a swarm service from ``from_replicas`` to ``to_replicas`` at ``at``."""

    at: float
    service: str
    policy: str
    from_replicas: int
    to_replicas: int
    reason: str
