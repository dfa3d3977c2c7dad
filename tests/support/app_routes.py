"""The app's HTTP routes, read once per test session (``FunctionApp.get_functions`` may
only be called once: a second call finds its own functions again and refuses them)."""

from __future__ import annotations

from functools import cache


@cache
def http_routes() -> frozenset[tuple[str, str, str]]:
    """(function name, method, route template) of every HTTP trigger in ``function_app``."""
    from function_app import app

    return frozenset(
        (function.get_function_name(), str(getattr(method, "value", method)), binding.route)
        for function in app.get_functions()
        for binding in function.get_bindings()
        if binding.type == "httpTrigger"
        for method in binding.methods or ()
    )
