"""An unstructured document (``nonXMLBody``: a PDF, an image, text) as a DocumentReference.

The library makes only a Composition of such a document, and the content itself is lost;
the C-CDA on FHIR IG maps an unstructured document to a DocumentReference whose
attachment carries it (inline base64, or the reference URL the document gives).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from lxml import etree

from ..errors import Issue, IssueCode, NormalizationError, Severity
from .xml_safety import cda_path

__all__ = ["document_reference"]

_SPACE = re.compile(rb"\s+")
_MIME_PART = r"[a-z0-9][a-z0-9!#$&^_.+\-]{0,63}"
_MEDIA_TYPE = re.compile(rf"^{_MIME_PART}/{_MIME_PART}\Z", re.IGNORECASE)
_WEB_URL = re.compile(r"^https?://[^\s/]+(/\S*)?\Z")


def _body_text(root: etree._Element) -> etree._Element | None:
    return root.find(cda_path(root, "component", "nonXMLBody", "text"))


def _attachment(text: etree._Element, issues: list[Issue]) -> dict[str, Any]:
    """DocumentReference.content.attachment from ``nonXMLBody/text`` (ED)."""
    media = text.get("mediaType") or "text/plain"
    if not _MEDIA_TYPE.match(media):
        issues.append(_warning("mediaType is not a media type; application/octet-stream kept"))
        media = "application/octet-stream"
    attachment: dict[str, Any] = {"contentType": media}
    reference = next((c for c in text if etree.QName(c).localname == "reference"), None)
    if reference is not None and reference.get("value"):
        url = str(reference.get("value"))
        if _WEB_URL.match(url):
            attachment["url"] = url
        else:  # file:, data:, javascript: ... name nothing a reader should follow
            issues.append(_warning("the content's reference is not an http(s) URL; left out"))
        return attachment
    raw = (text.text or "").encode()
    if (text.get("representation") or "TXT").upper() == "B64":
        try:
            data = base64.b64decode(_SPACE.sub(b"", raw), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise NormalizationError.at(
                "ClinicalDocument/component/nonXMLBody/text",
                "the document's content is marked B64 but is not base64",
            ) from exc
    else:
        data = raw
    attachment["data"] = base64.b64encode(data).decode("ascii")
    attachment["size"] = len(data)
    return attachment


def _warning(text: str) -> Issue:
    return Issue(
        IssueCode.VALUE, text, "ClinicalDocument/component/nonXMLBody/text", Severity.WARNING
    )


def document_reference(
    root: etree._Element, composition: dict[str, Any], issues: list[Issue]
) -> dict[str, Any] | None:
    """The DocumentReference for an unstructured document, built from its body and the
    header the library mapped into ``composition``; None for a structured document."""
    text = _body_text(root)
    if text is None:
        return None
    reference: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": composition.get("id"),
        "status": "current",
        "docStatus": "final" if composition.get("status") == "final" else "preliminary",
        "content": [{"attachment": _attachment(text, issues)}],
    }
    if composition.get("identifier"):
        reference["masterIdentifier"] = composition["identifier"]
    for element in ("type", "subject", "author", "category"):
        if composition.get(element):
            reference[element] = composition[element]
    if isinstance(reference.get("category"), list) is False and "category" in reference:
        reference["category"] = [reference["category"]]
    if composition.get("title"):
        reference["description"] = composition["title"]
    return reference
