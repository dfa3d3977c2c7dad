"""The app's functions and bindings, read once per test session (``FunctionApp.get_functions``
may only be called once: a second call finds its own functions again and refuses them)."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def app_bindings() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(function name, binding as function.json would spell it) for every binding."""
    from function_app import app

    return tuple(
        (function.get_function_name(), binding.get_dict_repr())
        for function in app.get_functions()
        for binding in function.get_bindings()
    )


@cache
def http_routes() -> frozenset[tuple[str, str, str]]:
    """(function name, method, route template) of every HTTP trigger in ``function_app``."""
    return frozenset(
        (name, str(getattr(method, "value", method)), binding["route"])
        for name, binding in app_bindings()
        if binding["type"] == "httpTrigger"
        for method in binding.get("methods") or ()
    )
