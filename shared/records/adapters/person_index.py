"""The person index on Azure Table storage: Patients by identifier, and the rows that make
several partners' Patients one person (or keep them apart).

- ``identifiers`` table, ``(hash of system|value, Patient|id)``: Patients by identifier,
  with the partner that sent the Patient and the identifier's system (never its value:
  identifiers are PHI, so the key is a hash).
- ``compartments`` table, in each Patient's partition (rows sort after ``Type|id``):
  ``~link|<other id>`` a link to another Patient (the identifier's system and key hash,
  the two partners, when and by which ingestion it was made), ``~relation|<partner>`` an
  operator's registration of the person to a partner, ``~source|<partner>`` (written by
  the record store) who sent the Patient's data, ``~unlink|<other id>`` an operator's
  decision that two Patients are not one person.

One query of a partition (``~link|`` up to ``~v``) returns all of a Patient's links,
relationships, sources and unlinks, which is what resolving a person costs per Patient.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.platform.storage import storage_errors

from ..people import MAX_IDENTIFIER, IdentifierHolder, Link, PersonRows

__all__ = ["TablePersonIndex", "identifier_key"]

_LINK, _RELATION, _SOURCE, _UNLINK = "~link|", "~relation|", "~source|", "~unlink|"


def identifier_key(system: str, value: str) -> str:
    """The table partition of an identifier (a hash: identifiers are PHI)."""
    return hashlib.sha256(f"{system}|{value}".encode()).hexdigest()[:40]


class TablePersonIndex:
    """Identifiers, links, relationships and unlinks of Patients."""

    def __init__(self, compartments: TableClient, identifiers: TableClient) -> None:
        self._compartments = compartments
        self._identifiers = identifiers

    def index_identifiers(self, patient: Mapping[str, Any], partner: str) -> None:
        """Make a partner's Patient findable by each of its identifiers (rows are
        idempotent; a stale one is harmless: readers check the current version).

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("indexing identifiers"):
            for identifier in patient.get("identifier") or ():
                system, value = identifier.get("system"), identifier.get("value")
                if system and value and max(len(system), len(value)) <= MAX_IDENTIFIER:
                    self._identifiers.upsert_entity(
                        {
                            "PartitionKey": identifier_key(system, value),
                            "RowKey": f"Patient|{patient['id']}",
                            "partner": partner,
                            "system": system,
                        },
                        mode=UpdateMode.REPLACE,
                    )

    def holders(self, system: str, value: str) -> list[IdentifierHolder]:
        """The Patients that carry (or carried) an identifier, with their partners, in id
        order.

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("reading identifiers"):
            rows = self._identifiers.query_entities(
                "PartitionKey eq @p", parameters={"p": identifier_key(system, value)}
            )
            found = [
                IdentifierHolder(str(r["RowKey"]).split("|", 1)[1], str(r.get("partner") or ""))
                for r in rows
            ]
        return sorted(found, key=lambda h: h.patient_id)

    def patients_with_identifier(self, system: str, value: str) -> list[str]:
        """Ids of Patients that carry (or carried) an identifier, in id order.

        Raises:
            StorageUnavailableError: storage failed.
        """
        return [h.patient_id for h in self.holders(system, value)]

    def rows(self, patient_id: str) -> PersonRows:
        """A Patient's links, relationships, sources and unlinks: one partition query.

        Raises:
            StorageUnavailableError: storage failed.
        """
        links: list[Link] = []
        related: set[str] = set()
        sources: set[str] = set()
        unlinked: set[str] = set()
        with storage_errors("reading a person"):
            rows = self._compartments.query_entities(
                "PartitionKey eq @p and RowKey ge @low and RowKey lt @high",
                parameters={"p": patient_id, "low": _LINK, "high": "~v"},
            )
            for row in rows:
                key = str(row["RowKey"])
                if key.startswith(_LINK):
                    links.append(
                        Link(
                            patient_id,
                            key.removeprefix(_LINK),
                            str(row.get("system") or ""),
                            str(row.get("key") or ""),
                            tuple(str(row.get("partners") or "").split()),
                        )
                    )
                elif key.startswith(_RELATION):
                    related.add(key.removeprefix(_RELATION))
                elif key.startswith(_SOURCE):
                    sources.add(key.removeprefix(_SOURCE))
                elif key.startswith(_UNLINK):
                    unlinked.add(key.removeprefix(_UNLINK))
        return PersonRows(tuple(links), frozenset(related), frozenset(sources), frozenset(unlinked))

    def add_link(self, link: Link, made: datetime, correlation_id: str) -> bool:
        """Record a link on both Patients; True if it is new (so it is audited once).

        Raises:
            StorageUnavailableError: storage failed.
        """
        new = False
        with storage_errors("recording a link"):
            for one, two in ((link.patient_id, link.other_id), (link.other_id, link.patient_id)):
                row = {
                    "PartitionKey": one,
                    "RowKey": f"{_LINK}{two}",
                    "system": link.system,
                    "key": link.key,
                    "partners": " ".join(link.partners),
                    "made": made.isoformat(),
                    "correlation": correlation_id,
                }
                try:
                    self._compartments.create_entity(row)
                    new = True
                except ResourceExistsError:
                    continue
        return new

    def unlink(self, patient_id: str, other_id: str) -> None:
        """Record that two Patient records are not one person (both ways).

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("recording an unlink"):
            for one, two in ((patient_id, other_id), (other_id, patient_id)):
                self._compartments.upsert_entity({"PartitionKey": one, "RowKey": f"{_UNLINK}{two}"})

    def relate(self, patient_id: str, partner: str, made: datetime) -> None:
        """Register the person a Patient is to ``partner`` (an operator's decision).

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("recording a relationship"):
            self._compartments.upsert_entity(
                {
                    "PartitionKey": patient_id,
                    "RowKey": f"{_RELATION}{partner}",
                    "made": made.isoformat(),
                }
            )

    def unrelate(self, patient_id: str, partner: str) -> bool:
        """Remove a registration; False if there was none.

        Raises:
            StorageUnavailableError: storage failed.
        """
        with storage_errors("removing a relationship"):
            try:  # delete_entity does not tell whether there was one
                self._compartments.get_entity(patient_id, f"{_RELATION}{partner}")
            except ResourceNotFoundError:
                return False
            self._compartments.delete_entity(patient_id, f"{_RELATION}{partner}")
        return True

    def forget(self, patient_id: str, identifiers: Iterable[tuple[str, str]]) -> None:
        """Erase a Patient from the index: its identifier rows, and the other side of each
        of its links and unlinks (its own partition goes with the compartment).

        Raises:
            StorageUnavailableError: storage failed.
        """
        rows = self.rows(patient_id)
        with storage_errors("forgetting a patient"):
            others = [(link.other_id, _LINK) for link in rows.links]
            others += [(other, _UNLINK) for other in rows.unlinked]
            for other, prefix in others:
                with contextlib.suppress(ResourceNotFoundError):
                    self._compartments.delete_entity(other, f"{prefix}{patient_id}")
            for system, value in identifiers:
                with contextlib.suppress(ResourceNotFoundError):
                    self._identifiers.delete_entity(
                        identifier_key(system, value), f"Patient|{patient_id}"
                    )
