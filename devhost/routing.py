"""Route templates as the Functions runtime reads them (ASP.NET Core route syntax).

Supported: literals (case-insensitive), ``{name}``, typed and chained constraints
(``{id:int}``, ``{code:length(2,8):alpha}``, ``{v:regex(^a+$)}``), optional
parameters (``{id?}``), defaults (``{page=1}``) and catch-alls (``{*path}``). When two
templates match, the more specific one wins: literal before constrained before
plain before optional before catch-all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote

__all__ = ["Route", "RouteError", "RouteTable", "compile_route"]

_PARAM = re.compile(r"\{([^{}]+)\}")
_CONSTRAINT = re.compile(r"^(?P<name>[a-zA-Z]+)(?:\((?P<arg>.*)\))?\Z")


class RouteError(ValueError):
    """A route template cannot be compiled."""


def _is_int(low: int, high: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        return re.fullmatch(r"-?\d+", value) is not None and low <= int(value) <= high

    return check


def _is_number(value: str) -> bool:
    try:
        Decimal(value)
    except InvalidOperation:
        return False
    return re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value) is not None


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _numbers(arg: str | None, count: int, constraint: str) -> list[int]:
    try:
        values = [int(part) for part in (arg or "").split(",")]
    except ValueError as exc:
        raise RouteError(f"{constraint}() takes whole numbers, got {arg!r}") from exc
    if len(values) not in (count, 2 if constraint == "length" else count):
        raise RouteError(f"{constraint}() takes {count} argument(s), got {arg!r}")
    return values


def _constraint(spec: str) -> Callable[[str], bool]:
    match = _CONSTRAINT.match(spec)
    if not match:
        raise RouteError(f"unknown route constraint {spec!r}")
    name, arg = match["name"].lower(), match["arg"]
    simple: dict[str, Callable[[str], bool]] = {
        "int": _is_int(-(2**31), 2**31 - 1),
        "long": _is_int(-(2**63), 2**63 - 1),
        "bool": lambda v: v.lower() in {"true", "false"},
        "guid": _is_guid,
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "float": _is_number,
        "double": _is_number,
        "decimal": _is_number,
        "datetime": _is_datetime,
    }
    if name in simple and arg is None:
        return simple[name]
    if name == "regex" and arg is not None:
        try:
            pattern = re.compile(arg, re.IGNORECASE)
        except re.error as exc:
            raise RouteError(f"invalid regex constraint {arg!r}: {exc}") from exc
        return lambda v: pattern.search(v) is not None
    if name in {"min", "max"}:
        (bound,) = _numbers(arg, 1, name)
        if name == "min":
            return lambda v: _is_int(-(2**63), 2**63)(v) and int(v) >= bound
        return lambda v: _is_int(-(2**63), 2**63)(v) and int(v) <= bound
    if name == "range":
        low, high = _numbers(arg, 2, name)
        return _is_int(low, high)
    if name in {"minlength", "maxlength"}:
        (size,) = _numbers(arg, 1, name)
        return (lambda v: len(v) >= size) if name == "minlength" else (lambda v: len(v) <= size)
    if name == "length":
        sizes = _numbers(arg, 1, name)
        low, high = (sizes[0], sizes[0]) if len(sizes) == 1 else (sizes[0], sizes[1])
        return lambda v: low <= len(v) <= high
    raise RouteError(f"unknown route constraint {spec!r}")


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    checks: tuple[Callable[[str], bool], ...]
    optional: bool
    catch_all: bool
    default: str | None


@dataclass(frozen=True)
class Route:
    """A compiled template with its precedence key (smaller sorts first)."""

    template: str
    pattern: re.Pattern[str]
    params: tuple[_Param, ...]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for a raw (still percent-encoded) path, or None."""
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for param in self.params:
            raw = found.group(param.name)
            if raw is None or raw == "":
                if param.default is not None:
                    values[param.name] = param.default
                elif not (param.optional or param.catch_all):
                    return None
                continue
            value = unquote(raw)
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        return values


def _parse_param(body: str) -> tuple[_Param, int]:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default = None
    if "=" in body:
        body, default = body.split("=", 1)
    optional = body.endswith("?")
    body = body.rstrip("?")
    name, *specs = body.split(":")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteError(f"invalid route parameter name {name!r}")
    checks = tuple(_constraint(spec) for spec in specs)
    rank = 4 if catch_all else 3 if optional or default is not None else 1 if checks else 2
    return _Param(name, checks, optional, catch_all, default), rank


def compile_route(template: str) -> Route:
    """Compile a route template (without the route prefix).

    Raises:
        RouteError: the template is malformed, repeats a parameter, or puts a
            catch-all anywhere but last.
    """
    segments = [s for s in template.strip("/").split("/")]
    regex = ""
    params: list[_Param] = []
    precedence: list[int] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        pieces, pos, seg_rank, lone_param = "", 0, 0, _PARAM.fullmatch(segment)
        for found in _PARAM.finditer(segment):
            pieces += re.escape(segment[pos : found.start()])
            param, rank = _parse_param(found[1])
            if param.catch_all and not last:
                raise RouteError(f"{template!r}: a catch-all parameter must be the last segment")
            if any(p.name.lower() == param.name.lower() for p in params):
                raise RouteError(f"{template!r}: parameter {param.name!r} appears twice")
            params.append(param)
            body = ".*" if param.catch_all else "[^/]+"
            pieces += f"(?P<{param.name}>{body})"
            seg_rank = max(seg_rank, rank)
            pos = found.end()
        if "{" in segment[pos:] or "}" in segment[pos:]:
            raise RouteError(f"{template!r}: unbalanced braces in {segment!r}")
        pieces += re.escape(segment[pos:])
        if lone_param and (params[-1].optional or params[-1].catch_all or params[-1].default):
            # "a/{b?}" also matches "a": the slash goes with the optional value.
            regex += f"(?:/{pieces.replace('[^/]+)', '[^/]*)').replace('.*)', '.*)')})?"
        else:
            regex += "/" + pieces
        precedence.append(seg_rank)
    return Route(
        template=template,
        pattern=re.compile(regex or "/?", re.IGNORECASE),
        params=tuple(params),
        precedence=(*precedence, -len(segments)),
    )


@dataclass
class RouteTable:
    """Routes of all HTTP functions under one prefix, most specific first."""

    prefix: str
    _entries: list[tuple[Route, str, frozenset[str] | None]] = field(default_factory=list)

    def add(self, template: str, target: str, methods: frozenset[str] | None) -> None:
        """Register a function's route; ``methods`` None means any method."""
        self._entries.append((compile_route(template), target, methods))
        self._entries.sort(key=lambda e: e[0].precedence)

    def resolve(self, raw_path: str, method: str) -> tuple[str, dict[str, str]] | set[str] | None:
        """The target and route values, or the allowed methods when only the method is
        wrong, or None when no route matches the path."""
        prefix = f"/{self.prefix}" if self.prefix else ""
        if prefix:
            if raw_path.lower() != prefix.lower() and not raw_path.lower().startswith(
                prefix.lower() + "/"
            ):
                return None
            raw_path = raw_path[len(prefix) :]
        allowed: set[str] = set()
        for route, target, methods in self._entries:
            values = route.match(raw_path.rstrip("/") if raw_path != "/" else raw_path)
            if values is None:
                continue
            if methods is None or method.upper() in methods:
                return target, values
            allowed |= methods
        return allowed or None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((route.template, target) for route, target, _ in self._entries)
