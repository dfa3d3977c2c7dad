"""The console's HTML: Jinja2 templates with autoescaping on for every value (a
partner's issue text, a message id, a payload), and its two static assets, served by us
so the page loads nothing from anywhere else (the Content-Security-Policy says so too)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from shared import __version__

__all__ = ["ASSETS", "SECURITY_HEADERS", "asset", "render"]

ASSETS = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Same-origin only: with no-referrer, Chromium sends "Origin: null" on our own forms.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("shared.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """A page, every value escaped; its asset links carry the version, so a release is
    never shown with the last one's cached stylesheet."""
    return _environment().get_template(template).render(version=__version__, **context)


@cache
def asset(name: str) -> tuple[bytes, str] | None:
    """A static asset's bytes and content type, or None for any other name."""
    if name not in ASSETS:
        return None
    data = resources.files("shared.console").joinpath("assets", name).read_bytes()
    return data, ASSETS[name]
