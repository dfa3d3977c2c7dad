"""Fast checks on every Bundle we produce, before it leaves the conversion.

The converters build valid R4 by construction, and the conformance tests validate
their outputs with the full ``fhir.resources`` models. In the pipeline those models
would cost most of the conversion time, so this module checks, in microseconds, what
a converter bug would break first: ids, entry URLs and required bindings.
(References are made by the converters from the resources they add, and the FHIR
JSON path checks partners' references itself.)
"""

from __future__ import annotations

import re
from typing import Any

from .errors import Issue, IssueCode, NormalizationError
from .fhir_rules import REQUIRED_BINDINGS

__all__ = ["check_bundle"]

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}\Z")
_BINDINGS: dict[str, list[tuple[str, frozenset[str]]]] = {}
for (_type, _element), _allowed in REQUIRED_BINDINGS.items():
    _BINDINGS.setdefault(_type, []).append((_element, _allowed))


def check_bundle(bundle: dict[str, Any]) -> None:
    """Raise if the Bundle is not what the pipeline promises downstream.

    Raises:
        NormalizationError: ``invalid`` issues naming the entry; this is a converter
            bug, and the raw payload stays for a re-run once it is fixed.
    """
    issues: list[Issue] = []
    entries = bundle.get("entry", [])
    for index, entry in enumerate(entries):
        resource = entry.get("resource", {})
        kind, rid = resource.get("resourceType"), resource.get("id")
        if not isinstance(kind, str) or not isinstance(rid, str) or not _ID.match(rid):
            issues.append(
                Issue(
                    IssueCode.INVALID, "entry without a valid type and id", f"Bundle.entry[{index}]"
                )
            )
            continue
        if entry.get("request", {}).get("url") != f"{kind}/{rid}":
            issues.append(
                Issue(
                    IssueCode.INVALID,
                    "request.url does not name the resource",
                    f"Bundle.entry[{index}].request.url",
                )
            )
        for element, allowed in _BINDINGS.get(kind, ()):
            if element in resource and resource[element] not in allowed:
                issues.append(
                    Issue(
                        IssueCode.CODE_INVALID,
                        f"{kind}.{element} is outside its required value set",
                        f"Bundle.entry[{index}].resource.{element}",
                    )
                )
    if issues:
        raise NormalizationError(issues)
