"""The port to where a patient's consents are kept, by every key the patient is known by."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["ConsentSource"]


class ConsentSource(Protocol):
    """Finds and keeps Consent resources by patient key (``Patient/<id>``, ``system|value``)."""

    def find(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """Every Consent indexed under any of the keys, each once.

        Raises:
            ConsentUnavailableError: the index did not answer (the caller fails closed).
        """

    def find_many(
        self, key_sets: Iterable[frozenset[str]]
    ) -> dict[frozenset[str], list[dict[str, Any]]]:
        """``find`` for each key set (one patient each), in one call.

        Raises:
            ConsentUnavailableError: the index did not answer (the caller fails closed).
        """

    def put(self, consent: dict[str, Any], keys: Iterable[str]) -> bool:
        """Index a Consent under its patient's keys; False if a newer version is kept.

        Raises:
            ConsentUnavailableError: the index did not answer.
        """
