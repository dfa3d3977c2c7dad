"""R4's invariants, evaluated in Python: every ``constraint`` of severity error in the
core StructureDefinitions (``bdl-*``, ``obs-6``, ``pat-1``, ``ref-1``, ``per-1``, ...),
with the FHIRPath engine ``fhirpathpy``, on every element of a resource that the
constraint's element definition names, down through complex datatypes and the resources
a Bundle holds.

The pydantic models (fhir.resources) check structure and primitive formats only; the
official Java validator cannot be installed here. The StructureDefinitions come from
the npm package ``hl7.fhir.r4.examples`` (``make setup`` installs it). ``ele-1`` ("a
value or children") is checked structurally, as JSON states it: no empty object, array
or string anywhere. A constraint the engine cannot evaluate is reported as such, never
passed silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from tests.conftest import REPO

PACKAGE = REPO / "node_modules" / "hl7.fhir.r4.examples"
_MODEL = models["r4"]
_STRUCTURAL = {"ele-1"}  # checked in Python, see the module


def _has_value(inputs: list[Any]) -> list[bool]:
    """FHIRPath hasValue(), which fhirpathpy lacks: one primitive with a value."""
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict | list)]


_OPTIONS = {
    "traceFn": lambda *_: None,  # ref-1 traces; keep the test output clean
    "userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}},
}


@dataclass(frozen=True, slots=True)
class _Element:
    path: str  # relative to the type's root: "" for the root, "referenceRange.low"
    full: str  # as the definition writes it: "Observation.referenceRange.low"
    types: tuple[tuple[str, str | None], ...]  # (type code, profile)
    constraints: tuple[tuple[str, str], ...]  # (key, expression), severity error
    content_reference: str | None


@dataclass
class Report:
    """What a check found: violations (key, location), and constraints not evaluated."""

    violations: list[tuple[str, str]] = field(default_factory=list)
    unevaluable: dict[str, str] = field(default_factory=dict)  # key -> why
    evaluated: int = 0


def available() -> bool:
    """Whether the package is installed."""
    return (PACKAGE / "StructureDefinition-Observation.json").is_file()


@cache
def _definition(name: str) -> tuple[str, tuple[_Element, ...]] | None:
    """A type's kind and its snapshot's elements, or None for a type we do not descend."""
    path = PACKAGE / f"StructureDefinition-{name}.json"
    if not path.is_file():
        return None
    sd = json.loads(path.read_text(encoding="utf-8"))
    base_type = (
        sd.get("kind") in {"resource", "complex-type"} and sd.get("derivation") != "constraint"
    )
    if not base_type and name != "SimpleQuantity":  # SimpleQuantity: Quantity's own profile
        return None
    root = sd["type"]
    elements = []
    for e in sd["snapshot"]["element"]:
        rel = e["path"].removeprefix(root).removeprefix(".")
        types = tuple((t["code"], (t.get("profile") or [None])[0]) for t in e.get("type", []))
        constraints = tuple(
            (c["key"], c["expression"])
            for c in e.get("constraint", [])
            if c.get("severity") == "error" and c["key"] not in _STRUCTURAL and "expression" in c
        )
        ref = e.get("contentReference")
        elements.append(
            _Element(
                rel,
                e["path"],
                types,
                constraints,
                ref.removeprefix("#").split(".", 1)[1] if ref else None,
            )
        )
    return sd["kind"], tuple(elements)


@cache
def _compiled(expression: str) -> Any:
    return fhirpath_compile(expression, _MODEL, _OPTIONS)


def _select(node: Any, rel: str) -> Iterator[tuple[Any, str | None, str]]:
    """The values at ``rel`` below ``node``: (value, the choice type's name, JSON path)."""
    frontier: list[tuple[Any, str | None, str]] = [(node, None, "")]
    for segment in rel.split(".") if rel else []:
        nxt: list[tuple[Any, str | None, str]] = []
        for value, _, where in frontier:
            if not isinstance(value, dict):
                continue
            if segment.endswith("[x]"):
                stem = segment[:-3]
                hits = [
                    (k, v)
                    for k, v in value.items()
                    if k.startswith(stem) and k[len(stem) : len(stem) + 1].isupper()
                ]
                for key, found in hits:
                    nxt += _items(found, key[len(stem) :], f"{where}.{key}")
            elif segment in value:
                nxt += _items(value[segment], None, f"{where}.{segment}")
        frontier = nxt
    return iter(frontier)


def _items(value: Any, choice: str | None, where: str) -> list[tuple[Any, str | None, str]]:
    if isinstance(value, list):
        return [(v, choice, f"{where}[{i}]") for i, v in enumerate(value)]
    return [(value, choice, where)]


def _empty(value: Any, where: str, report: Report) -> None:
    if value in ({}, [], ""):
        report.violations.append(("ele-1", where or "(root)"))
    elif isinstance(value, dict):
        for key, item in value.items():
            _empty(item, f"{where}.{key}", report)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _empty(item, f"{where}[{i}]", report)


def _type_of(choice: str | None, types: tuple[tuple[str, str | None], ...]) -> str | None:
    if choice is not None:
        return next((c for c, _ in types if c.lower() == choice.lower()), None)
    if len(types) != 1:
        return None
    code, profile = types[0]
    if profile and profile.endswith("/SimpleQuantity"):
        return "SimpleQuantity"
    return code


def _check_type(
    name: str, node: Any, resource: dict[str, Any], where: str, report: Report, base: str = ""
) -> None:
    definition = _definition(name)
    if definition is None or not isinstance(node, dict):
        return
    _, elements = definition
    for element in elements:
        if base and not (element.path == base or element.path.startswith(base + ".")):
            continue
        rel = element.path[len(base) :].removeprefix(".") if base else element.path
        if element.path != base and base and not rel:
            continue
        for value, choice, at in _select(node, rel):
            location = f"{where}{at}"
            for key, expression in element.constraints:
                kind = _type_of(choice, element.types)
                typed = (
                    kind if kind and kind[0].isupper() and "Element" not in kind else element.full
                )
                _evaluate(key, expression, value, typed, resource, location, report)
            if element.content_reference:
                _check_type(name, value, resource, location, report, element.content_reference)
                continue
            kind = _type_of(choice, element.types) if rel else None
            if kind == "Resource" and isinstance(value, dict):
                _check_resource(value, location, report)
            elif kind and kind[0].isupper() and kind not in {"BackboneElement", "Element"}:
                _check_type(kind, value, resource, location, report)


def _evaluate(
    key: str,
    expression: str,
    value: Any,
    typed: str,
    resource: dict[str, Any],
    where: str,
    report: Report,
) -> None:
    """One constraint on one element. The element is given its type path (so FHIRPath
    resolves choices such as Extension.value). An empty result passes: the official
    validator raises no ref-1 on a Reference holding only an identifier, where the
    expression gives nothing."""
    node = ResourceNode.create_node(value, typed)
    try:
        result = _compiled(expression)(node, {"resource": resource, "rootResource": resource})
    except Exception as exc:
        report.unevaluable.setdefault(key, f"{type(exc).__name__}: {str(exc)[:120]}")
        return
    report.evaluated += 1
    if result not in ([True], []):
        report.violations.append((key, where))


def _check_resource(resource: dict[str, Any], where: str, report: Report) -> None:
    kind = resource.get("resourceType")
    if isinstance(kind, str):
        _check_type(kind, resource, resource, f"{where}{'.' if where else ''}{kind}", report)


def check(resource: dict[str, Any]) -> Report:
    """Every error-severity invariant of R4 on ``resource`` (a Bundle: and its entries)."""
    report = Report()
    _empty(resource, "", report)
    _check_resource(resource, "", report)
    return report
