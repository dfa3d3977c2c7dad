"""Loads a Function App and describes its functions from their binding metadata.

``FunctionApp.get_functions()`` may only be called once per app object, so the
catalog calls it once and keeps what it learned: for each function its trigger,
its output bindings and how to build its arguments.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func

__all__ = [
    "Binding",
    "CatalogError",
    "FunctionSpec",
    "build_catalog",
    "load_app",
    "split_disabled",
]

TRIGGERS = {"httpTrigger", "queueTrigger", "timerTrigger"}
OUTPUTS = {"queue", "blob", "http"}


class CatalogError(ValueError):
    """The app cannot be loaded, or a function uses what this host cannot run."""


@dataclass(frozen=True, slots=True)
class Binding:
    """One entry of a function's bindings, as the runtime's function.json has it."""

    name: str
    type: str
    direction: str
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A function the host can run."""

    name: str
    user_function: Callable[..., Any]
    is_async: bool
    trigger: Binding
    outputs: tuple[Binding, ...]
    parameters: tuple[str, ...]
    context_param: str | None

    @property
    def return_binding(self) -> Binding | None:
        """The ``$return`` output binding, if the function has one."""
        return next((b for b in self.outputs if b.name == "$return"), None)


def load_app(target: str, root: Path | None = None) -> func.FunctionApp:
    """Import ``module:attribute`` (default attribute ``app``) and return the FunctionApp.

    Raises:
        CatalogError: the module does not import or the attribute is no FunctionApp.
    """
    module_name, _, attr = target.partition(":")
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CatalogError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    app = getattr(module, attr or "app", None)
    if not isinstance(app, func.FunctionApp):
        raise CatalogError(f"{target!r} is not an azure.functions.FunctionApp")
    return app


def _context_param(fn: Callable[..., Any], binding_names: set[str]) -> str | None:
    for name, param in inspect.signature(fn).parameters.items():
        annotation = param.annotation
        if name in binding_names:
            continue
        if name == "context" or annotation in (func.Context, "func.Context", "Context"):
            return name
        raise CatalogError(f"parameter {name!r} matches no binding")
    return None


def build_catalog(app: func.FunctionApp) -> tuple[list[FunctionSpec], list[str]]:
    """Describe every function; a function the host cannot run is skipped with a reason.

    Returns:
        The runnable functions, and one line per skipped function.
    """
    specs: list[FunctionSpec] = []
    skipped: list[str] = []
    for function in app.get_functions():
        name = function.get_function_name() or "?"
        try:
            specs.append(_describe(name, function))
        except CatalogError as exc:
            skipped.append(f"{name}: {exc}")
    return specs, skipped


def split_disabled(
    specs: list[FunctionSpec], environ: Mapping[str, str]
) -> tuple[list[FunctionSpec], list[str]]:
    """The functions to run, and the names of those switched off with the runtime's app
    setting ``AzureWebJobs.<name>.Disabled`` (``true`` or ``1``)."""
    running, disabled = [], []
    for spec in specs:
        flag = environ.get(f"AzureWebJobs.{spec.name}.Disabled", "").strip().lower()
        if flag in {"true", "1"}:
            disabled.append(spec.name)
        else:
            running.append(spec)
    return running, disabled


def _describe(name: str, function: Any) -> FunctionSpec:
    doc = json.loads(function.get_function_json())
    bindings = [
        Binding(
            name=b["name"],
            type=b["type"],
            direction=b["direction"].lower(),
            config={k: v for k, v in b.items() if k not in {"name", "type", "direction"}},
        )
        for b in doc["bindings"]
    ]
    triggers = [b for b in bindings if b.type in TRIGGERS]
    unknown = [
        b
        for b in bindings
        if b.type not in TRIGGERS | OUTPUTS or (b.type in OUTPUTS and b.direction != "out")
    ]
    if len(triggers) != 1:
        kinds = sorted({b.type for b in bindings if b.type.endswith("Trigger")})
        raise CatalogError(
            f"unsupported trigger {kinds or 'none'}; this host runs {sorted(TRIGGERS)}"
        )
    if unknown:
        raise CatalogError(f"unsupported binding(s) {sorted({b.type for b in unknown})}")
    _check_trigger(triggers[0])
    user_function = function.get_user_function()
    names = {b.name for b in bindings if b.name != "$return"}
    context = _context_param(user_function, names)
    return FunctionSpec(
        name=name,
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        trigger=triggers[0],
        outputs=tuple(b for b in bindings if b.direction == "out"),
        parameters=tuple(inspect.signature(user_function).parameters),
        context_param=context,
    )


def _check_trigger(trigger: Binding) -> None:
    """Reject a route or schedule the host could not serve, before anything starts."""
    from .config import HostConfigError
    from .invoker import BindingExpressionError, resolve_settings
    from .routing import RouteError, compile_route
    from .timers import TimerSchedule

    try:
        if trigger.type == "httpTrigger" and trigger.config.get("route"):
            compile_route(str(trigger.config["route"]))
        elif trigger.type == "timerTrigger":
            TimerSchedule(resolve_settings(str(trigger.config.get("schedule", "")), os.environ))
    except (RouteError, HostConfigError, BindingExpressionError) as exc:
        raise CatalogError(str(exc)) from exc
