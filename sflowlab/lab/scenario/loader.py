"""Scenario files read and validated into a ``Scenario``, and their JSON Schema.

``load_scenario(path)`` parses a YAML file; ``scenario_from_dict`` validates parsed data (every
error a ``ScenarioError`` naming the path of the bad value); each assertion is built from the
kind registered in ``kinds.KINDS`` (the built-in kinds are defined in ``assertions`` and
``assertions_lifecycle``, imported here so they are registered); references to services and
moments are checked. ``json_schema`` describes the files for editors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# the modules defining the built-in kinds: they register them on import
from sflowlab.lab.scenario import assertions, assertions_lifecycle  # noqa: F401
from sflowlab.lab.scenario.kinds import KINDS
from sflowlab.lab.scenario.model import (
    AssertionSpec,
    Scenario,
    ScenarioError,
    build,
    describe,
    object_schema,
)

__all__ = ["json_schema", "load_scenario", "scenario_from_dict"]


def _assertion(item: Any, i: int, prefix: str = "") -> AssertionSpec:
    path = f"{prefix}assertions[{i}]"
    if not isinstance(item, dict) or len(item) != 1:
        raise ScenarioError(f"{path}: expected a mapping with one key, the kind "
                            f"(one of {sorted(KINDS)}), got {describe(item)}")
    [(kind, params)] = item.items()
    if kind not in KINDS:
        raise ScenarioError(f"{path}: unknown assertion kind {kind!r}; known: {sorted(KINDS)}")
    return AssertionSpec(kind, build(KINDS[kind], params if params is not None else {},
                                     f"{path}.{kind}"), i)


def scenario_from_dict(data: Any, source: Path | None = None) -> Scenario:
    """Validate a parsed scenario file."""
    if not isinstance(data, dict):
        raise ScenarioError(f"expected a mapping at the top level, got {describe(data)}")
    data = dict(data)
    raw = data.pop("assertions", None) or []
    if not isinstance(raw, list):
        raise ScenarioError(f"assertions: expected a list, got {describe(raw)}")
    data.setdefault("name", source.stem if source else "scenario")
    scenario = build(Scenario, data, "")
    scenario.assertions = [_assertion(item, i) for i, item in enumerate(raw)]
    if scenario.live is not None:
        scenario.live.assertions = [_assertion(item, i, "live.")
                                    for i, item in enumerate(scenario.live.assertions)]
    scenario.source = source
    return _check_references(scenario)


_MOMENT_FIELDS = {"since": "from", "after": "after"}
_SERVICE_FIELDS = ("service", "better", "than")


def _check_references(s: Scenario) -> Scenario:
    services, moments = {x.name for x in s.services}, s.moments()
    lists = [("", s.checks)] + ([("live.", s.live.checks)] if s.live is not None else [])
    for prefix, spec in ((p, spec) for p, specs in lists for spec in specs):
        where = f"{prefix}assertions[{spec.index}].{spec.kind}"
        for key in _SERVICE_FIELDS:
            wanted = getattr(spec.params, key, None)
            if wanted is not None and wanted not in services:
                raise ScenarioError(f"{where}.{key}: unknown service {wanted!r}; the scenario "
                                    f"has {sorted(services)}")
        if getattr(spec.params, "within", 0) is None:
            continue  # no time window: no moment to measure it from
        for attr, key in _MOMENT_FIELDS.items():
            moment = getattr(spec.params, attr, None)
            if isinstance(moment, str) and moment not in moments:
                raise ScenarioError(f"{where}.{key}: the scenario has no moment {moment!r}; it "
                                    f"has {sorted(moments)}")
    if s.traffic and s.fabric is None:
        raise ScenarioError("traffic: needs a fabric")
    return s


def json_schema() -> dict[str, Any]:
    """A JSON Schema of scenario files (for editors; ``sflowlab run --schema`` prints it).

    It checks types and keys; ``load_scenario`` also checks values and cross-references."""
    schema = object_schema(Scenario)
    schema["required"].remove("name")  # defaults to the file's name
    items = {"type": "array", "items": {"oneOf": [
        {"type": "object", "properties": {kind: {"anyOf": [object_schema(cls),
                                                            {"type": "null"}]}},
         "required": [kind], "additionalProperties": False}
        for kind, cls in sorted(KINDS.items())]}}
    schema["properties"]["assertions"] = items
    schema["properties"]["live"]["anyOf"][0]["properties"]["assertions"] = items
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "sflowlab scenario", **schema}


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file."""
    import yaml  # the lab extra

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise ScenarioError(f"{p}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ScenarioError(f"{p}: not valid YAML: {e}") from None
    try:
        return scenario_from_dict(data, p)
    except ScenarioError as e:
        raise ScenarioError(f"{p}: {e}") from None
