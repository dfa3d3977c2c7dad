"""A document's sections, and converting what can be when one part cannot.

The library builds a strict model of the whole document first, and one entry that breaks
a SHALL (a Smoking Status Observation without an id, in one of the 22 samples) fails the
whole parse. Here a refused document is tried again part by part: the header alone (if
that fails, nothing can be converted and the document is refused), then each section on
its own, and in a section that fails, its entries bisected until the failing ones are
found. Those are left out and reported with their template; the rest converts. Attempts
are capped, so a hostile document of a thousand bad entries costs bounded time: past the
cap, a failing section is left out whole.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from ..errors import IssueCode, NormalizationError
from .library import LibraryRefusal

__all__ = ["MAX_ATTEMPTS", "SectionReport", "Skip", "convert_isolating", "inventory"]

MAX_ATTEMPTS = 64  # each builds the model of the header plus a part (~1-10 ms)
WORK_FACTOR = 4  # all attempts together read at most 4x the document's elements

Attempt = Callable[[etree._Element], object]  # raises LibraryRefusal when a tree fails


@dataclass(frozen=True, slots=True)
class Skip:
    """A part left out: its section (1-based), its entry (1-based; None: the whole
    section), its template id, and the rule it broke."""

    section: int
    entry: int | None
    template: str | None
    rule: str


@dataclass(slots=True)
class SectionReport:
    """One top-level section: its LOINC code and template, and what became of it."""

    number: int
    code: str | None
    template: str | None
    entries: int
    skipped: list[Skip] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report line: codes, counts and template ids (no narrative, no title)."""
        whole = any(s.entry is None for s in self.skipped)
        return {
            "section": self.number,
            "code": self.code,
            "template": self.template,
            "entries": self.entries,
            "converted": 0 if whole else self.entries - len(self.skipped),
            "skipped": [
                {"entry": s.entry, "template": s.template, "rule": s.rule} for s in self.skipped
            ],
        }


_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]{0,15})){1,40}\Z", re.ASCII)
_LOINC = re.compile(r"^[0-9]{1,7}-[0-9]\Z", re.ASCII)  # C-CDA codes sections and documents so


def safe_oid(value: str | None) -> str | None:
    """A template id as it may be shown: an OID, else "other" (a document can put any
    text, a patient's name too, where an OID belongs; reports outlive ``$purge``)."""
    if value is None:
        return None
    return value if _OID.match(value) else "other"


def safe_code(value: str | None) -> str | None:
    """A section or document code as it may be shown (a LOINC code), else "other"."""
    if value is None:
        return None
    return value if _LOINC.match(value) else "other"


def _q(name: str, namespace: str | None) -> str:
    return f"{{{namespace}}}{name}" if namespace else name


def _body(root: etree._Element) -> tuple[etree._Element | None, str | None]:
    namespace = etree.QName(root).namespace
    return root.find(f"{_q('component', namespace)}/{_q('structuredBody', namespace)}"), namespace


def _components(body: etree._Element, namespace: str | None) -> list[etree._Element]:
    return [c for c in body.findall(_q("component", namespace))]


def _first_template(element: etree._Element, namespace: str | None) -> str | None:
    template = element.find(_q("templateId", namespace))
    return safe_oid(template.get("root")) if template is not None else None


def _entry_template(entry: etree._Element, namespace: str | None) -> str | None:
    act = next((child for child in entry if isinstance(child.tag, str)), None)
    return _first_template(act, namespace) if act is not None else None


def inventory(root: etree._Element) -> list[SectionReport]:
    """The document's top-level sections (none for an unstructured document)."""
    body, namespace = _body(root)
    if body is None:
        return []
    reports = []
    for number, component in enumerate(_components(body, namespace), start=1):
        section = component.find(_q("section", namespace))
        if section is None:
            continue
        code = section.find(_q("code", namespace))
        reports.append(
            SectionReport(
                number=number,
                code=safe_code(code.get("code")) if code is not None else None,
                template=_first_template(section, namespace),
                entries=len(section.findall(_q("entry", namespace))),
            )
        )
    return reports


class _Budget:
    """Attempts left, bounded in number and in the elements they read together (a header
    of 40,000 elements copied into every attempt would otherwise cost minutes)."""

    def __init__(self, attempt: Attempt, elements: int) -> None:
        self.attempt, self.left = attempt, MAX_ATTEMPTS
        self.elements = WORK_FACTOR * elements

    def passes(self, tree: etree._Element) -> LibraryRefusal | None:
        """None when the tree converts, else why not."""
        self.left -= 1
        self.elements -= int(tree.xpath("count(//*)"))
        if self.elements < 0:
            self.left = 0
        try:
            self.attempt(tree)
        except LibraryRefusal as refusal:
            return refusal
        return None


def _with_sections(skeleton: etree._Element, sections: list[etree._Element]) -> etree._Element:
    tree = copy.deepcopy(skeleton)
    body, _ = _body(tree)
    assert body is not None  # the skeleton was made from a document with a body
    for component in sections:
        body.append(copy.deepcopy(component))
    return tree


def _keeping(component: etree._Element, namespace: str | None, keep: set[int]) -> etree._Element:
    """A copy of a section's component with only the entries numbered in ``keep``."""
    trimmed = copy.deepcopy(component)
    section = trimmed.find(_q("section", namespace))
    assert section is not None
    for number, entry in enumerate(section.findall(_q("entry", namespace))):
        if number not in keep:
            section.remove(entry)
    return trimmed


def _bad_entries(
    budget: _Budget,
    skeleton: etree._Element,
    component: etree._Element,
    namespace: str | None,
    numbers: list[int],
) -> dict[int, LibraryRefusal] | None:
    """The entries that fail on their own (bisecting), or None when the budget ran out."""
    if budget.left <= 0:
        return None
    refusal = budget.passes(
        _with_sections(skeleton, [_keeping(component, namespace, set(numbers))])
    )
    if refusal is None:
        return {}
    if len(numbers) == 1:
        return {numbers[0]: refusal}
    half = len(numbers) // 2
    found: dict[int, LibraryRefusal] = {}
    for part in (numbers[:half], numbers[half:]):
        bad = _bad_entries(budget, skeleton, component, namespace, part)
        if bad is None:
            return None
        found.update(bad)
    return found


def convert_isolating(
    root: etree._Element,
    convert: Callable[[etree._Element], dict[str, Any]],
    attempt: Attempt,
    reports: list[SectionReport],
) -> dict[str, Any]:
    """``convert``'s result for the whole document or, if it refuses that, for every part
    that ``attempt`` accepts; ``reports`` gain a Skip for each part left out.

    Raises:
        NormalizationError: the header itself cannot be converted.
    """
    try:
        return convert(root)
    except LibraryRefusal as whole:
        first_refusal = whole
    body, namespace = _body(root)
    if body is None:
        raise _refused(first_refusal)
    components = _components(body, namespace)
    skeleton = copy.deepcopy(root)
    skeleton_body, _ = _body(skeleton)
    assert skeleton_body is not None
    for component in list(skeleton_body):
        skeleton_body.remove(component)
    budget = _Budget(attempt, int(root.xpath("count(//*)")))
    header = budget.passes(skeleton)
    if header is not None:
        raise _refused(header)
    by_number = {r.number: r for r in reports}
    kept: list[etree._Element] = []
    for number, component in enumerate(components, start=1):
        report = by_number.get(number)
        if report is None:  # a component without a section: nothing to convert
            continue
        if budget.left <= 0:
            report.skipped.append(
                Skip(number, None, report.template, "not tried: too many failing parts")
            )
            continue
        refusal = budget.passes(_with_sections(skeleton, [component]))
        if refusal is None:
            kept.append(component)
            continue
        trimmed = _isolate_entries(budget, skeleton, component, namespace, report)
        if trimmed is None:
            report.skipped.append(Skip(number, None, report.template, refusal.rule))
        else:
            kept.append(trimmed)
    try:
        return convert(_with_sections(skeleton, kept))
    except LibraryRefusal as refusal:  # parts that convert alone but not together
        raise _refused(refusal) from None


def _isolate_entries(
    budget: _Budget,
    skeleton: etree._Element,
    component: etree._Element,
    namespace: str | None,
    report: SectionReport,
) -> etree._Element | None:
    """The section without its failing entries (each reported), or None when the section
    fails for a reason of its own or the budget ran out."""
    bad = _bad_entries(budget, skeleton, component, namespace, list(range(report.entries)))
    section = component.find(_q("section", namespace))
    if not bad or section is None:
        return None
    trimmed = _keeping(component, namespace, set(range(report.entries)) - set(bad))
    if budget.left <= 0 or budget.passes(_with_sections(skeleton, [trimmed])) is not None:
        return None
    entries = section.findall(_q("entry", namespace))
    for index, why in sorted(bad.items()):
        template = why.template or _entry_template(entries[index], namespace)
        report.skipped.append(Skip(report.number, index + 1, template, why.rule))
    return trimmed


def _refused(refusal: LibraryRefusal) -> NormalizationError:
    return NormalizationError.at(
        "ClinicalDocument",
        f"the document cannot be converted: {refusal.rule}",
        IssueCode.INVALID,
    )
