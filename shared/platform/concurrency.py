"""Work over a few items at once on threads, each carrying the caller's context.

A thread pool's worker does not see the caller's ``contextvars``: without the copy, a
log line written by a worker loses the ingestion's correlation and trace ids, and a
storage request loses the name of the function it serves (``shared.platform.transport``).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["each"]

_T = TypeVar("_T")
_R = TypeVar("_R")


def each(work: Callable[[_T], _R], items: Iterable[_T], limit: int) -> list[_R]:
    """``work`` over ``items``, at most ``limit`` at once, results in the items' order;
    the first failure is raised. One item, or a limit of 1, runs on the caller's thread.
    """
    todo = list(items)
    if limit <= 1 or len(todo) < 2:
        return [work(item) for item in todo]
    context = contextvars.copy_context()

    def run(item: _T) -> _R:
        return context.copy().run(work, item)

    with ThreadPoolExecutor(min(limit, len(todo))) as pool:
        return list(pool.map(run, todo))
