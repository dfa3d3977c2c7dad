"""The product's Function App with a bug planted: converting a payload that contains
``POISON-PILL`` raises, as a converter bug would. The poison-path test runs this, then the
real app (the fix deployed), then ``intake replay``."""

from __future__ import annotations

from typing import Any

import shared.normalize.stage as normalize_stage
from function_app import app

__all__ = ["app"]

_convert = normalize_stage.convert_payload


def _buggy(data: bytes, *args: Any, **kwargs: Any) -> Any:
    if b"POISON-PILL" in data:
        raise ZeroDivisionError("a planted converter bug")
    return _convert(data, *args, **kwargs)


normalize_stage.convert_payload = _buggy  # type: ignore[assignment]
