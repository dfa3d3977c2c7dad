"""The ``ccda-to-fhir`` library behind one call, made fit to run inside our host.

It maps C-CDA on FHIR IG 2.0.0 well, but as shipped it (1) parses XML with an
unhardened parser, (2) logs document values (dates, ids, tracebacks with reprs) to
stdout from every converter, (3) keeps per-document state in module globals (its id
cache), so two conversions at once in one process would mix their references, (4)
quotes the document in its exception texts, and (5) leaves one model not fully built
(``section.Informant``), which fails any document with a section-level informant. Here:
our hardened tree goes straight to its model builder (its own parser is never called),
its loggers are silenced for good, calls are serialized, and only a rule text leaves
(the template and its SHALL clause, never the value).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import threading
from typing import Any

import ccda_to_fhir
from ccda_to_fhir.ccda import parser as _parser
from ccda_to_fhir.ccda.models import clinical_document as _clinical_document
from ccda_to_fhir.ccda.models import section as _section
from ccda_to_fhir.ccda.models.clinical_document import ClinicalDocument
from ccda_to_fhir.convert import DocumentConverter
from ccda_to_fhir.exceptions import CCDAConversionError
from lxml import etree
from pydantic import ValidationError

__all__ = ["LibraryRefusal", "check_tree", "convert_tree", "refusal_from"]

_LOGGER_PREFIX = "ccda_to_fhir"
_LOCK = threading.Lock()
_KNOWN_LOGGERS = -1  # how many loggers Python had when the library's were last silenced
_ERRORS = (
    _parser.CDAParserError,
    CCDAConversionError,
    ValidationError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    RecursionError,
)
# "Smoking Status Observation (2.16.840.1.113883.10.20.22.4.78): SHALL contain at least
# one [1..*] id": a template, its OID and the clause, which is all that may be quoted.
_RULE = re.compile(
    r"(?P<template>[A-Z][A-Za-z ,/\-]{2,80}) \((?P<oid>[0-2](?:\.\d+)+)\): "
    r"(?P<clause>SHALL(?: NOT)? [a-z][a-z0-9 \[\]\.\*]{2,80})"
)


class LibraryRefusal(Exception):
    """The library could not map this document (or part of it); ``rule`` is safe to show."""

    def __init__(self, rule: str, template: str | None = None) -> None:
        super().__init__(rule)
        self.rule = rule
        self.template = template


def _silence() -> None:
    """Every ``ccda_to_fhir`` logger drops everything: a level above CRITICAL, no
    propagation, and a NullHandler so its ``ConversionLogger`` never adds its stdout one
    (it does when a logger has no handler, and resets the level to INFO)."""
    global _KNOWN_LOGGERS
    if len(logging.root.manager.loggerDict) == _KNOWN_LOGGERS:
        return  # no logger made since the last time (the check is cheap, the walk is not)
    made = [n for n in logging.root.manager.loggerDict if n.startswith(_LOGGER_PREFIX + ".")]
    for name in {_LOGGER_PREFIX, *_MODULES, *made}:
        logger = logging.getLogger(name)
        logger.handlers[:] = [logging.NullHandler()]
        logger.setLevel(logging.CRITICAL + 1)
        logger.propagate = False
    _KNOWN_LOGGERS = len(logging.root.manager.loggerDict)


def _complete_models() -> None:
    """``section.Informant`` names ``RelatedEntity`` without importing it; build it."""
    _section.Informant.model_rebuild(
        _types_namespace={"RelatedEntity": _clinical_document.RelatedEntity}
    )


def _import_all() -> list[str]:
    """Every library module imported now, and its name (its converters make their
    loggers in the functions that warn, by module name: those get silenced first)."""
    names = []
    for module in pkgutil.walk_packages(ccda_to_fhir.__path__, ccda_to_fhir.__name__ + "."):
        importlib.import_module(module.name)
        names.append(module.name)
    return names


_MODULES = _import_all()
_silence()
_complete_models()


def refusal_from(exc: BaseException) -> LibraryRefusal:
    """The rule a library exception states, without anything of the document."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ValidationError):
            for error in cause.errors():
                found = _RULE.search(str(error.get("msg", "")).removeprefix("Value error, "))
                if found:
                    return LibraryRefusal(
                        f"{found['template']} ({found['oid']}): {found['clause'].strip()}",
                        found["oid"],
                    )
        cause = cause.__cause__
    if isinstance(exc, RecursionError):
        return LibraryRefusal("the document nests too deeply for the mapper")
    return LibraryRefusal(f"the mapper could not read this part ({type(exc).__name__})")


def check_tree(root: etree._Element) -> None:
    """Build the library's model of a tree and drop it: where its SHALL checks refuse a
    document, they refuse it here (the part-by-part retry tries parts with this, which
    costs a tenth of a conversion).

    Raises:
        LibraryRefusal: the library's models refused the tree.
    """
    with _LOCK:
        _silence()
        try:
            _parser._parse_element(root, ClinicalDocument)
        except _ERRORS as exc:
            raise refusal_from(exc) from None


def convert_tree(root: etree._Element) -> dict[str, Any]:
    """The library's result (``bundle`` and ``metadata``) for a hardened tree.

    Raises:
        LibraryRefusal: the library's models or converters refused the document.
    """
    with _LOCK:
        _silence()  # a logger the library made since the last call
        try:
            document = _parser._parse_element(root, ClinicalDocument)
            result: dict[str, Any] = DocumentConverter().convert(document)
        except _ERRORS as exc:
            # Not chained: the library's texts quote the document, and a traceback
            # logged at a function boundary would carry them.
            raise refusal_from(exc) from None
    return result
