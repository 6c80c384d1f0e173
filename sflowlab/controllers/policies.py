"""Scaling policies of the elastic load balancer: the seed's thresholds and an HPA-like rule.

A policy turns one observation of a service (its replica count and the average load per
container) into a target replica count and a reason. It knows nothing of Docker or the engine;
the only state is the HPA's recent recommendations (its scale-down stabilisation window).

``seed`` (elb.js, 2016): +1 when ``replicas < replicas_max`` and (util > util_max or
bytes > bytes_max); -1 when ``replicas > replicas_min`` and util < util_min and
bytes < bytes_min; otherwise no change.

``hpa`` (after the Kubernetes Horizontal Pod Autoscaler's algorithm):

1. per metric with a target (``target_util`` percent, ``target_bytes`` B/s in+out, both per
   container): ratio = value / target; within ``tolerance`` of 1 it proposes no change, else
   ``ceil(replicas * ratio)``; the largest proposal wins (as the HPA does with several metrics);
2. clamp to [replicas_min, replicas_max] and remember the recommendation;
3. scale-down stabilisation: never go below the largest recommendation made less than
   ``stabilization_s`` seconds ago (Kubernetes defaults to 300 s; the lab to 30 s);
4. at most ``max_step_up`` more or ``max_step_down`` fewer replicas per evaluation, then clamp
   again, so the bounds always hold.
"""

from __future__ import annotations

import collections
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar, Protocol

__all__ = ["POLICIES", "Decision", "HpaParams", "HpaPolicy", "Observation", "ParamError",
           "Policy", "SeedParams", "SeedPolicy", "make_policy"]

_EPSILON = 1e-9
"""Rates are floats: ``ceil(2 * 1.5000000000000002)`` must still be 3."""


class ParamError(ValueError):
    """Bad policy parameters; the message names the parameter and what is allowed."""


@dataclass(frozen=True)
class Observation:
    """A service as the policy sees it: replicas and the average load per container."""

    replicas: int
    util: float
    """avg vir_cpu_utilization over the service's running containers, percent."""
    bytes: float
    """avg vir_bytes_in + avg vir_bytes_out, bytes per second per container."""


@dataclass(frozen=True)
class Decision:
    """The replica count a policy wants (equal to the current count: no change) and why."""

    target: int
    reason: str


def _check_type(name: str, value: Any, hint: Any) -> Any:
    """``value`` if it fits ``hint`` (int, float, or ``float | None``); ints pass as floats."""
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    base = float if hint is not int else int
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if base is int else "a number" + (" or null" if optional else "")
        raise ParamError(f"{name} must be {kind}, not {value!r}")
    if base is int and not isinstance(value, int):
        if not float(value).is_integer():
            raise ParamError(f"{name} must be an integer, not {value!r}")
        value = int(value)
    if not math.isfinite(value):
        raise ParamError(f"{name} must be finite, not {value!r}")
    return base(value)


@dataclass(frozen=True)
class _Params:
    """Shared by the parameter dataclasses: the replica bounds every policy keeps, building
    from JSON with clear errors."""

    replicas_min: int = 1
    replicas_max: int = 10

    @classmethod
    def from_json(cls, data: Mapping[str, Any], base: Any = None) -> Any:
        """Parameters from ``data`` over ``base`` (default: the defaults); ParamError if bad."""
        if not isinstance(data, Mapping):
            raise ParamError(f"parameters must be an object, not {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParamError(f"unknown parameter(s) {', '.join(unknown)}; known: "
                             + ", ".join(sorted(known)))
        values = {k: _check_type(k, v, hints[k]) for k, v in data.items()}
        start: Any = base if base is not None else cls()
        params = replace(start, **values)
        params.check()
        return params

    def check(self) -> None:
        low, high = self.replicas_min, self.replicas_max
        if low < 1 or high < low:
            raise ParamError(f"need 1 <= replicas_min <= replicas_max, got {low} and {high}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SeedParams(_Params):
    """elb.js's thresholds (demonstration values: unrealistically low, as the seed says)."""

    util_min: float = 0.5
    util_max: float = 1.0
    bytes_min: float = 50_000.0
    bytes_max: float = 100_000.0

    def check(self) -> None:
        super().check()
        for low, high in (("util_min", "util_max"), ("bytes_min", "bytes_max")):
            a, b = getattr(self, low), getattr(self, high)
            if not 0 <= a <= b:
                raise ParamError(f"need 0 <= {low} <= {high}, got {a:g} and {b:g}")


@dataclass(frozen=True)
class HpaParams(_Params):
    """Targets per container, tolerance, scale-down stabilisation window, steps, bounds."""

    target_util: float | None = 0.75
    target_bytes: float | None = 75_000.0
    tolerance: float = 0.1
    stabilization_s: float = 30.0
    max_step_up: int = 4
    max_step_down: int = 4

    def check(self) -> None:
        super().check()
        targets = (self.target_util, self.target_bytes)
        if all(t is None for t in targets):
            raise ParamError("hpa needs target_util or target_bytes (or both)")
        if any(t is not None and t <= 0 for t in targets):
            raise ParamError("target_util and target_bytes must be > 0 (or null)")
        if not 0 <= self.tolerance < 1:
            raise ParamError(f"need 0 <= tolerance < 1, got {self.tolerance}")
        if self.stabilization_s < 0:
            raise ParamError(f"stabilization_s must be >= 0, got {self.stabilization_s}")
        if self.max_step_up < 1 or self.max_step_down < 1:
            raise ParamError("max_step_up and max_step_down must be >= 1")


class Policy(Protocol):
    name: ClassVar[str]
    params: Any

    def decide(self, obs: Observation, now: float) -> Decision: ...


class SeedPolicy:
    """elb.js's rule: one replica up or down when thresholds are crossed."""

    name: ClassVar[str] = "seed"
    Params = SeedParams

    def __init__(self, params: SeedParams) -> None:
        self.params = params

    def decide(self, obs: Observation, now: float) -> Decision:
        p, r = self.params, obs.replicas
        if r < p.replicas_max and (obs.util > p.util_max or obs.bytes > p.bytes_max):
            why = (f"util {obs.util:.3g} > {p.util_max:g}" if obs.util > p.util_max
                   else f"bytes {obs.bytes:.0f} > {p.bytes_max:g}")
            return Decision(r + 1, why)
        if r > p.replicas_min and obs.util < p.util_min and obs.bytes < p.bytes_min:
            return Decision(r - 1, f"util {obs.util:.3g} < {p.util_min:g} and "
                                   f"bytes {obs.bytes:.0f} < {p.bytes_min:g}")
        return Decision(r, "within thresholds or at a bound")


class HpaPolicy:
    """The Kubernetes HPA's proportional rule (see the module docstring)."""

    name: ClassVar[str] = "hpa"
    Params = HpaParams

    def __init__(self, params: HpaParams) -> None:
        self.params = params
        self._history: collections.deque[tuple[float, int]] = collections.deque()

    def decide(self, obs: Observation, now: float) -> Decision:
        p, r = self.params, obs.replicas
        proposals: list[tuple[int, str]] = []
        for metric, value, target in (("util", obs.util, p.target_util),
                                      ("bytes", obs.bytes, p.target_bytes)):
            if target is None:
                continue
            ratio = value / target
            if abs(ratio - 1.0) <= p.tolerance:
                proposals.append((r, f"{metric} ratio {ratio:.3g} within tolerance"))
            else:
                proposals.append((math.ceil(r * ratio - _EPSILON),
                                  f"{metric} ratio {ratio:.3g}"))
        desired, why = max(proposals, key=lambda x: x[0])
        desired = min(max(desired, p.replicas_min), p.replicas_max)
        history = self._history
        while history and history[0][0] <= now - p.stabilization_s:
            history.popleft()
        history.append((now, desired))
        target = desired
        if desired < r:
            target = min(r, max(d for _, d in history))
            if target != desired:
                why += f"; stabilised at {target} (window {p.stabilization_s:g} s)"
        if target > r + p.max_step_up:
            target, why = r + p.max_step_up, why + f"; step limited to +{p.max_step_up}"
        elif target < r - p.max_step_down:
            target, why = r - p.max_step_down, why + f"; step limited to -{p.max_step_down}"
        target = min(max(target, p.replicas_min), p.replicas_max)
        return Decision(target, f"desired {desired} ({why})")


POLICIES: dict[str, type[SeedPolicy] | type[HpaPolicy]] = {"seed": SeedPolicy, "hpa": HpaPolicy}


def make_policy(name: str, params: Mapping[str, Any], base: Any = None) -> SeedPolicy | HpaPolicy:
    """A policy by name with ``params`` over ``base`` (whose shared bounds carry over)."""
    cls = POLICIES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ParamError(f"unknown policy {name!r}; use one of {', '.join(POLICIES)}")
    if base is not None and not isinstance(base, cls.Params):
        shared = {f.name: getattr(base, f.name) for f in fields(_Params)}
        base = replace(cls.Params(), **shared)
    return cls(cls.Params.from_json(params, base))
