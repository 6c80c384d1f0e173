"""The scenario model: a lab, its load, traffic, controllers and assertions.

The schema of scenario files is the dataclasses below, read through their type hints by
``build``: every error is a ``ScenarioError`` naming the path of the bad value
(``services[0].load[1].clients: expected an integer, got 'four'``); the same function validates
agent_sim's ``ServiceSpec``, ``FabricSpec`` and ``TrafficFlow`` fields and the parameters of
every assertion kind (``kinds.KINDS``), and ``object_schema`` describes them as JSON Schema.
``loader`` reads files into a ``Scenario``. The reference is ``scenarios/README.md``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflowlab.agent_sim.topology import FabricSpec
from sflowlab.agent_sim.traffic import TrafficFlow, amplification_flood
from sflowlab.agent_sim.workload import ServiceSpec

__all__ = [
    "AssertionSpec", "ControllerSpec", "LiveSpec", "LoadPhase", "Scenario", "ScenarioError",
    "ScenarioService", "Tolerances", "build", "describe", "object_schema",
]


class ScenarioError(ValueError):
    """A scenario file is unreadable or invalid; the message names where."""


# ---------------------------------------------------------------------- generic validation

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def describe(value: Any) -> str:
    """A value as an error message shows it (containers by their type)."""
    return f"{value!r}" if not isinstance(value, dict | list) else type(value).__name__


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """``value`` checked against the type ``hint`` (dataclasses built recursively)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # optional: the one type's own error, with its inner path
            return _coerce(value, options[0], path)
        errors = []
        for arg in options:
            try:
                return _coerce(value, arg, path)
            except ScenarioError as e:
                errors.append(str(e).partition(": ")[2])
        raise ScenarioError(f"{path}: {' or '.join(errors)}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ScenarioError(f"{path}: expected one of {list(args)}, got {describe(value)}")
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ScenarioError(f"{path}: expected a list, got {describe(value)}")
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return out if origin is list else tuple(out)
    if origin is dict:
        if not isinstance(value, dict):
            raise ScenarioError(f"{path}: expected a mapping, got {describe(value)}")
        return {str(k): _coerce(v, args[1], _join(path, k)) for k, v in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return build(hint, value, path)
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, hint):
        return value
    raise ScenarioError(f"{path}: expected {_TYPE_NAMES.get(hint, hint)}, got {describe(value)}")


_T = typing.TypeVar("_T")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _inline_keys(cls: type) -> dict[str, tuple[str, Any]]:
    """Keys that stand flat in ``cls``'s mapping for its ``INLINE`` fields: key -> (the
    field collecting them, the key's type hint). ``INLINE`` maps a field to the dataclass
    whose init fields it collects and the names of those the outer mapping does not take."""
    out = {}
    for name, (inner, skip) in getattr(cls, "INLINE", {}).items():
        hints = typing.get_type_hints(inner)
        out.update({f.name: (name, hints[f.name]) for f in dataclasses.fields(inner)
                    if f.init and f.name not in skip})
    return out


def build(cls: type[_T], data: Any, path: str) -> _T:
    """A ``cls`` dataclass from a mapping, every field checked against its type hint;
    errors name ``path`` (empty: the top level, called ``scenario``)."""
    where = path or "scenario"
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"build needs a dataclass, not {cls!r}")
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a mapping, got {describe(data)}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    inline = _inline_keys(cls)
    keys = sorted({*known, *inline} - set(getattr(cls, "INLINE", {})))
    aliases = getattr(cls, "ALIASES", {})
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = aliases.get(key, key)
        if name in inline:
            holder, hint = inline[name]
            kwargs.setdefault(holder, {})[name] = _coerce(value, hint, _join(path, key))
        elif name in keys:
            kwargs[name] = _coerce(value, hints[name], _join(path, key))
        else:
            raise ScenarioError(f"{where}: unknown key {key!r}; known: {keys}")
    missing = [n for n, f in known.items() if n not in kwargs and _required(f)]
    if missing:
        raise ScenarioError(f"{where}: missing {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, ScenarioError):
            raise
        raise ScenarioError(f"{where}: {e}") from None


# ---------------------------------------------------------------------- the schema


@dataclass(frozen=True)
class Ramp:
    """Offered requests per second rising (or falling) linearly from ``from`` to ``to``."""

    ALIASES: typing.ClassVar[dict[str, str]] = {"from": "start"}
    start: float
    to: float
    over: float

    def __post_init__(self) -> None:
        if self.over <= 0:
            raise ValueError("ramp.over must be > 0 seconds")


@dataclass(frozen=True)
class Step:
    """From ``at`` seconds into the phase, offer ``rps`` requests per second."""

    at: float
    rps: float


@dataclass(frozen=True)
class LoadPhase:
    """One period of load: exactly one of ``clients`` (closed loop, like ``ab -c N``),
    ``rps`` (constant), ``ramp``, ``steps``; from ``start`` for ``duration`` seconds (or until
    ``stop``; neither: until the end)."""

    clients: int | None = None
    rps: float | None = None
    ramp: Ramp | None = None
    steps: list[Step] | None = None
    start: float = 0.0
    duration: float | None = None
    stop: float | None = None

    def __post_init__(self) -> None:
        kinds = [k for k in ("clients", "rps", "ramp", "steps") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a load phase needs exactly one of clients, rps, ramp, steps; "
                             f"got {kinds or 'none'}")
        if (self.clients is not None and self.clients < 0) or (self.rps or 0) < 0:
            raise ValueError("load must be >= 0")
        if self.duration is not None and self.stop is not None:
            raise ValueError("give duration or stop, not both")
        if self.end <= self.start:
            raise ValueError("a load phase must end after it starts")
        if self.steps is not None and not self.steps:
            raise ValueError("steps must not be empty")

    @property
    def end(self) -> float:
        if self.duration is not None:
            return self.start + self.duration
        return math.inf if self.stop is None else self.stop

    def offered(self, t: float) -> tuple[float | None, int | None]:
        """(rps, clients) offered at ``t`` (seconds from the scenario's start)."""
        if self.clients is not None:
            return None, self.clients
        if self.rps is not None:
            return self.rps, None
        dt = t - self.start
        if self.ramp is not None:
            r = self.ramp
            return r.start + (r.to - r.start) * min(max(dt / r.over, 0.0), 1.0), None
        assert self.steps is not None
        current = 0.0
        for s in sorted(self.steps, key=lambda s: s.at):
            if s.at <= dt:
                current = s.rps
        return current, None


@dataclass(frozen=True)
class Scale:
    """``docker service scale`` at ``at`` seconds (through the swarm double)."""

    at: float
    replicas: int


@dataclass
class ScenarioService:
    """A swarm service: the workload model's parameters (``ServiceSpec``) plus its image,
    load phases and scheduled scalings."""

    INLINE: typing.ClassVar[dict[str, tuple[type, tuple[str, ...]]]] = {
        "workload": (ServiceSpec, ("name", "replicas", "rps", "clients"))}
    """The scenario gives a ``ServiceSpec`` its name, its replicas (the swarm starts them)
    and its load (the phases); the other fields stand flat in the file."""
    name: str
    replicas: int = 1
    image: str = "httpd:2.4"
    load: list[LoadPhase] = field(default_factory=list)
    schedule: list[Scale] = field(default_factory=list)
    workload: dict[str, Any] = field(default_factory=dict)
    """The ``ServiceSpec`` fields the file gives (the others keep their defaults)."""

    def __post_init__(self) -> None:
        self.spec()  # ServiceSpec's own checks, when the file is read

    def spec(self) -> ServiceSpec:
        """The workload model (no replicas: the swarm starts them; no load until a phase)."""
        return ServiceSpec(name=self.name, replicas=0, rps=0.0, clients=None, **self.workload)

    def offered(self, t: float) -> tuple[float | None, int | None]:
        """(rps, clients) at ``t``: the phase active then (the last one listed wins)."""
        for phase in reversed(self.load):
            if phase.start <= t < phase.end:
                return phase.offered(t)
        return 0.0, None

    @property
    def load_window(self) -> tuple[float, float] | None:
        """When load is offered: the first phase's start, the last phase's end."""
        if not self.load:
            return None
        return min(p.start for p in self.load), max(p.end for p in self.load)


@dataclass(frozen=True)
class Flood:
    """A UDP reflection flood (``agent_sim.traffic.amplification_flood``)."""

    target: str
    sources: int
    rate_pps: float
    src_port: int = 123
    packet_bytes: int = 468
    start_s: float = 0.0
    stop_s: float | None = None

    def flows(self) -> list[TrafficFlow]:
        return amplification_flood(**dataclasses.asdict(self))


@dataclass(frozen=True)
class Traffic:
    """Fabric traffic: one ``flow`` (``TrafficFlow`` fields) or an ``amplification_flood``;
    a ``name`` makes its window a moment for assertions (``<name>_start``, ``<name>_end``)."""

    flow: TrafficFlow | None = None
    amplification_flood: Flood | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.flow is None) == (self.amplification_flood is None):
            raise ValueError("give exactly one of flow, amplification_flood")

    def flows(self) -> list[TrafficFlow]:
        if self.flow is not None:
            return [self.flow]
        assert self.amplification_flood is not None  # __post_init__: exactly one is given
        return self.amplification_flood.flows()


@dataclass(frozen=True)
class HttpCall:
    """A request to a controller's HTTP handler at ``at`` seconds (``?state=enabled``)."""

    at: float = 0.0
    method: str = "GET"
    path: list[str] = field(default_factory=list)
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass
class ControllerSpec:
    """A controller: ``use`` (entry point name or ``module:factory``), its ``params``; the
    runner fills in the lab's endpoints (``docker_url``, switch ACL URLs, analyser) that the
    factory accepts and ``params`` leaves out; ``http`` requests are sent at their times."""

    use: str
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    http: list[HttpCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.name or self.use.rpartition(":")[2] or self.use


@dataclass(frozen=True)
class SwarmSpec:
    """The swarm double's timing: a task runs ``start_delay`` s after it is created."""

    start_delay: float = 2.0
    stop_delay: float = 0.5


@dataclass(frozen=True)
class AssertionSpec:
    """One assertion: its kind (``kinds.KINDS``) and validated parameters object."""

    kind: str
    params: Any
    index: int

    @property
    def name(self) -> str:
        """``kind(key=value, ...)`` with the keys as the file spells them."""
        spelled = {v: k for k, v in getattr(self.params, "ALIASES", {}).items()}
        shown = ", ".join(f"{spelled.get(k, k)}={v}"
                          for k, v in dataclasses.asdict(self.params).items() if v is not None)
        return f"{self.kind}({shown})"


@dataclass(frozen=True)
class Tolerances:
    """How far a live run may stray from the simulated one (``compare.csv``): replicas
    (peak and last count of each phase: before, during and after the load), seconds to the
    peak (from the load's start) and back to the initial count (from the load's end)."""

    replicas: int = 1
    time_to_peak_s: float = 20.0
    time_back_s: float = 15.0


@dataclass
class LiveSpec:
    """The scenario on a real swarm (``sflowlab run --live``): the ``assertions`` evaluated
    there instead of the top-level ones (the same kinds, with the tolerances a real engine,
    agent and load need; none given: the top-level ones), the ``compare`` tolerances, and
    ``pace_s``: each load client's request cycle lasts at least this long (none: back to
    back), for a scenario whose model assumes a response time the live lab does not have."""

    assertions: list[Any] = field(default_factory=list)
    compare: Tolerances = field(default_factory=Tolerances)
    pace_s: float | None = None

    def __post_init__(self) -> None:
        if self.pace_s is not None and self.pace_s <= 0:
            raise ValueError("pace_s must be > 0 seconds")

    @property
    def checks(self) -> list[AssertionSpec]:
        return typing.cast(list[AssertionSpec], self.assertions)


@dataclass
class Scenario:
    """A whole scenario file."""

    name: str
    description: str = ""
    seed: int = 1
    duration: float = 60.0
    step: float = 0.5
    hosts: int = 2
    sampling: int = 400
    polling: float = 10.0
    swarm: SwarmSpec = field(default_factory=SwarmSpec)
    fabric: FabricSpec | None = None
    services: list[ScenarioService] = field(default_factory=list)
    traffic: list[Traffic] = field(default_factory=list)
    controllers: list[ControllerSpec] = field(default_factory=list)
    assertions: list[Any] = field(default_factory=list)
    live: LiveSpec | None = None
    source: Path | None = None

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.step <= 0:
            raise ValueError("duration and step must be > 0")
        if self.hosts < 1:
            raise ValueError("hosts must be >= 1")
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError(f"service names repeat: {names}")
        controllers = [c.name for c in self.controllers]
        if len(set(controllers)) != len(controllers):
            raise ValueError(f"controller names repeat: {controllers}")

    @property
    def checks(self) -> list[AssertionSpec]:
        return typing.cast(list[AssertionSpec], self.assertions)

    def for_live(self) -> Scenario:
        """This scenario with the assertions of its ``live`` section (when it has some)."""
        if self.live is None or not self.live.assertions:
            return self
        return dataclasses.replace(self, assertions=list(self.live.assertions))

    def moments(self) -> dict[str, float]:
        """Named moments for assertion windows: ``start``, ``end``; ``load_start``,
        ``load_end`` (all services' load); ``traffic_start``, ``traffic_end`` (all traffic);
        ``attack_start``, ``attack_end`` (the floods); ``<name>_start``, ``<name>_end`` for
        named traffic. Open ends are the scenario's end."""
        out = {"start": 0.0, "end": self.duration}
        loads = [w for w in (svc.load_window for svc in self.services) if w is not None]
        groups: list[tuple[str, list[Traffic]]] = [
            ("load", []), ("traffic", self.traffic),
            ("attack", [t for t in self.traffic if t.amplification_flood is not None])]
        groups += [(t.name, [t]) for t in self.traffic if t.name]
        for name, items in groups:
            windows = loads if name == "load" else [_window(t.flows()) for t in items]
            if windows:
                out[f"{name}_start"] = min(w[0] for w in windows)
                out[f"{name}_end"] = min(max(w[1] for w in windows), self.duration)
        return out


def _window(flows: list[TrafficFlow]) -> tuple[float, float]:
    return (min(f.start_s for f in flows),
            max(math.inf if f.stop_s is None else f.stop_s for f in flows))


# ---------------------------------------------------------------------- JSON Schema

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def _schema_of(hint: Any) -> dict[str, Any]:
    """The JSON Schema of a type hint, from the same dataclasses ``build`` validates with."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return {}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema_of(a) if a is not type(None) else {"type": "null"}
                          for a in args]}
    if origin in (list, tuple):
        return {"type": "array", "items": _schema_of(args[0]) if args else {}}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_of(args[1])}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return object_schema(hint)
    return {"type": _JSON_TYPES[hint]}


def object_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema of a dataclass ``build`` reads (its aliases and inline keys)."""
    hints = typing.get_type_hints(cls)
    spelled = {v: k for k, v in getattr(cls, "ALIASES", {}).items()}
    props, required = {}, []
    inline = _inline_keys(cls)
    for f in dataclasses.fields(cls):
        if f.name in getattr(cls, "INLINE", {}):
            props.update({k: _schema_of(hint) for k, (holder, hint) in inline.items()
                          if holder == f.name})
            continue
        if not f.init or f.name == "source":
            continue
        key = spelled.get(f.name, f.name)
        props[key] = _schema_of(hints[f.name])
        if _required(f):
            required.append(key)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if cls.__doc__:
        out["description"] = " ".join(cls.__doc__.split())
    if required:
        out["required"] = required
    return out
