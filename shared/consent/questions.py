"""Who may ask for a consent decision, and about whom.

A decision says whether a person has consents and what they allow; answering anyone
about any identifier told a read partner what it could not read (the review's LOW-2).
A question follows the read rule of the trust model (``security/trust.read_access``):
the caller must be able to read every person the question names (a relationship, the
population role, or break-the-glass with an emergency purpose). Admins and population
callers may ask about identifiers the record does not hold yet; others may not, and the
refusal reads the same whether the person is unknown or out of reach. A non-admin may
not name another partner as the actor: a question is about the caller's own disclosures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from shared.normalize.fhir_rules import canonical_system
from shared.records.people import Person
from shared.security.models import Partner, Role
from shared.security.trust import Access, read_access

from .errors import QuestionForbiddenError
from .models import Actor, Code
from .vocabulary import PARTNER_IDENTIFIER_SYSTEM

__all__ = ["QuestionGate"]

_REFUSED = "you may ask only about persons you may read, with yourself or your own staff as actor"


class _People(Protocol):
    def person(self, patient_id: str) -> Person: ...


class QuestionGate:
    """Checks a consent question against the caller's reach before any consent is read."""

    def __init__(self, people: _People, holders: Callable[[str, str], Iterable[str]]) -> None:
        """``holders(system, value)``: the ids of stored Patients that carry an identifier."""
        self._people = people
        self._holders = holders

    def check(
        self, caller: Partner, keys: Iterable[str], purpose: Code | None, actor: Actor | None
    ) -> None:
        """Raises QuestionForbiddenError unless ``caller`` may ask this question.

        Raises:
            QuestionForbiddenError: a person out of reach, or another partner as actor.
            StorageUnavailableError: the record could not be read.
        """
        if Role.ADMIN in caller.roles:
            return
        mine = f"{PARTNER_IDENTIFIER_SYSTEM}|{caller.id}"
        if actor is not None and any(
            i.startswith(f"{PARTNER_IDENTIFIER_SYSTEM}|") and i != mine for i in actor.identifiers
        ):
            raise QuestionForbiddenError(_REFUSED)
        population = Role.POPULATION in caller.roles
        code = purpose.code if purpose else None
        for key in keys:
            if key.startswith("Patient/"):
                patients = [key.removeprefix("Patient/")]
            else:
                system, _, value = key.rpartition("|")  # the record files systems canonical
                patients = list(self._holders(canonical_system(system), value))
            if not patients and not population:
                raise QuestionForbiddenError(_REFUSED)
            for patient in patients:
                person = self._people.person(patient)
                access = read_access(caller, code, person.sources, person.related)
                if access is Access.NONE or person.truncated:
                    raise QuestionForbiddenError(_REFUSED)
