"""Subscription criteria, FHIR search style (``Observation?code=http://loinc.org|8867-4``),
parsed once and matched against one resource version without I/O.

Supported: ``_id``; tokens ``status``, ``class``, ``code``, ``category``, ``identifier``
(``system|code``, ``|code`` for no system, or ``code``); references ``patient`` and
``subject`` (``Patient/<id>`` or ``<id>``); ``value-quantity`` with the prefixes eq, ne,
gt, lt, ge, le and an optional ``|system|code`` unit (eq honours the value's precision,
as FHIR search does). Commas are OR, repeated parameters AND. Anything else is refused
by name: a subscriber must never get more than it asked for because a filter was ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any
from urllib.parse import parse_qsl

from .errors import SubscriptionInvalidError

__all__ = ["Criteria", "parse_criteria"]

# Bounds a criteria number must keep (FHIR decimals need far fewer): beyond them decimal
# arithmetic overflows or takes time, which must not happen when a change is matched.
_MAX_DIGITS = 40
_MAX_EXPONENT = 100
_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}\Z")
_QUANTITY = re.compile(r"^(eq|ne|gt|lt|ge|le)?([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?:\|(.*))?\Z")
# Search parameter -> the elements it reads (the first one present is used).
_TOKENS: dict[str, tuple[str, ...]] = {
    "status": ("status",),
    "class": ("class",),
    "code": ("code", "vaccineCode", "medicationCodeableConcept"),
    "category": ("category",),
    "identifier": ("identifier",),
}
_REFERENCES: dict[str, tuple[str, ...]] = {
    "patient": ("subject", "patient"),
    "subject": ("subject",),
}


@dataclass(frozen=True, slots=True)
class _Token:
    system: str | None  # None: any system
    code: str


@dataclass(frozen=True, slots=True)
class _Quantity:
    prefix: str
    value: Decimal
    system: str | None
    code: str | None
    low: Decimal  # the value less half a unit in its last written place: eq/ne's precision
    high: Decimal  # ... and plus it

    def holds(self, quantity: Mapping[str, Any]) -> bool:
        raw = quantity.get("value")
        if raw is None or isinstance(raw, bool):
            return False
        try:
            have = Decimal(str(raw))
        except InvalidOperation:
            return False
        if not have.is_finite():  # NaN would raise in a comparison; never a match
            return False
        if self.code is not None and self.code not in (quantity.get("code"), quantity.get("unit")):
            return False
        if self.system and quantity.get("system") != self.system:
            return False
        # eq and ne compare with the precision the value was written with (FHIR search).
        inside = self.low <= have < self.high  # comparisons are exact, whatever the digits
        return {
            "eq": inside,
            "ne": not inside,
            "gt": have > self.value,
            "lt": have < self.value,
            "ge": have >= self.value,
            "le": have <= self.value,
        }[self.prefix]


@dataclass(frozen=True, slots=True)
class Criteria:
    """A parsed criteria string: a resource type and filters that must all hold."""

    resource_type: str
    ids: tuple[frozenset[str], ...] = ()
    tokens: tuple[tuple[str, tuple[_Token, ...]], ...] = ()
    references: tuple[tuple[str, frozenset[str]], ...] = ()
    quantities: tuple[tuple[_Quantity, ...], ...] = ()

    def matches(self, resource: Mapping[str, Any]) -> bool:
        """Whether one resource version passes every filter."""
        if resource.get("resourceType") != self.resource_type:
            return False
        if any(resource.get("id") not in wanted for wanted in self.ids):
            return False
        for name, wanted in self.tokens:
            have = set(_codes(_first(resource, _TOKENS[name])))
            if not any(_token_in(t, have) for t in wanted):
                return False
        for name, patients in self.references:
            refs = {_patient_id(r) for r in _listed(_first(resource, _REFERENCES[name]))}
            if not refs & patients:
                return False
        for alternatives in self.quantities:
            quantity = resource.get("valueQuantity")
            if not isinstance(quantity, Mapping) or not any(
                q.holds(quantity) for q in alternatives
            ):
                return False
        return True


def _first(resource: Mapping[str, Any], elements: tuple[str, ...]) -> Any:
    return next((resource[e] for e in elements if resource.get(e) is not None), None)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _codes(value: Any) -> Iterator[tuple[str | None, str]]:
    """(system, code) pairs of a code, Coding, CodeableConcept or Identifier (or lists)."""
    for item in _listed(value):
        if isinstance(item, str):
            yield None, item
        elif isinstance(item, Mapping):
            if "coding" in item:
                yield from _codes(item.get("coding"))
            elif item.get("code") is not None:
                yield item.get("system"), str(item["code"])
            elif item.get("value") is not None:
                yield item.get("system"), str(item["value"])


def _token_in(token: _Token, have: set[tuple[str | None, str]]) -> bool:
    if token.system is None:
        return any(code == token.code for _, code in have)
    if token.system == "":
        return (None, token.code) in have or ("", token.code) in have
    return (token.system, token.code) in have


def _patient_id(reference: Any) -> str | None:
    literal = reference.get("reference") if isinstance(reference, Mapping) else None
    if not isinstance(literal, str):
        return None
    parts = literal.split("/_history/")[0].split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Patient" else None


def _token(name: str, value: str) -> _Token:
    system, bar, code = value.rpartition("|")
    if not code:
        raise SubscriptionInvalidError(f"criteria: {name} needs a code after '|'")
    return _Token(system if bar else None, code)


def _quantity(value: str) -> _Quantity:
    found = _QUANTITY.match(value)
    if not found:
        raise SubscriptionInvalidError(
            "criteria: value-quantity is [prefix]number[|system|code], e.g. gt120"
        )
    unit = found[3]
    system = code = None
    if unit is not None:
        system, _bar, code = unit.rpartition("|") if "|" in unit else ("", "", unit)
        system = system or None
        code = code or None
    number = Decimal(found[2])
    exponent = number.as_tuple().exponent
    if (
        not isinstance(exponent, int)
        or len(number.as_tuple().digits) > _MAX_DIGITS
        or not -_MAX_EXPONENT <= exponent <= _MAX_EXPONENT
        or not -_MAX_EXPONENT <= number.adjusted() <= _MAX_EXPONENT
    ):
        raise SubscriptionInvalidError(
            f"criteria: value-quantity needs a number of at most {_MAX_DIGITS} digits "
            f"between 1e-{_MAX_EXPONENT} and 1e{_MAX_EXPONENT}"
        )
    # Everything matching computes from the value is computed here, once: what parses
    # here cannot fail at match time (a huge exponent used to raise there, for everyone).
    with localcontext() as exact:  # enough digits that value +- half is never rounded
        exact.prec = _MAX_DIGITS + 2 * _MAX_EXPONENT + 4
        half = Decimal(1).scaleb(exponent) / 2
        low, high = number - half, number + half
    return _Quantity(found[1] or "eq", number, system, code, low, high)


def parse_criteria(text: str) -> Criteria:
    """Read ``Type`` or ``Type?name=value&...``.

    Raises:
        SubscriptionInvalidError: an unknown type shape, parameter, modifier or value.
    """
    resource_type, _, query = text.strip().partition("?")
    if not _TYPE.match(resource_type):
        raise SubscriptionInvalidError(
            "criteria must start with a FHIR resource type, e.g. Encounter?class=IMP"
        )
    ids: list[frozenset[str]] = []
    tokens: list[tuple[str, tuple[_Token, ...]]] = []
    references: list[tuple[str, frozenset[str]]] = []
    quantities: list[tuple[_Quantity, ...]] = []
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise SubscriptionInvalidError("criteria: the query is not name=value pairs") from exc
    for name, value in pairs:
        values = [v.strip() for v in value.split(",") if v.strip()]
        if not values:
            raise SubscriptionInvalidError(f"criteria: {name} has no value")
        if name == "_id":
            ids.append(frozenset(values))
        elif name in _TOKENS:
            tokens.append((name, tuple(_token(name, v) for v in values)))
        elif name in _REFERENCES:
            references.append((name, frozenset(v.removeprefix("Patient/") for v in values)))
        elif name == "value-quantity" and resource_type == "Observation":
            quantities.append(tuple(_quantity(v) for v in values))
        else:
            supported = ", ".join(sorted({"_id", *_TOKENS, *_REFERENCES, "value-quantity"}))
            raise SubscriptionInvalidError(
                f"criteria: {resource_type} cannot be filtered by {name!r} here; "
                f"supported: {supported} (value-quantity on Observation)"
            )
    return Criteria(resource_type, tuple(ids), tuple(tokens), tuple(references), tuple(quantities))
