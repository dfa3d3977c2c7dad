"""Reading a C-CDA document with a parser that cannot be turned against us.

XML can name other files and hosts (external entities, XXE), expand a few bytes into
gigabytes (entity "billion laughs"), or nest deeper than any code that walks it. A CDA
document needs none of that, so a DTD of any kind is refused before the parser reads it,
entities are never resolved and nothing is fetched; then the tree is bounded in bytes,
depth and elements, which bounds the mapper's time too. Errors name the line, the column
and libxml2's rule, never the document's text (issue texts outlive ``$purge``).
"""

from __future__ import annotations

import re

from lxml import etree

from ..errors import IssueCode, NormalizationError

__all__ = [
    "CDA_NAMESPACE",
    "MAX_CCDA_BYTES",
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "cda_path",
    "is_clinical_document",
    "parse_document",
]

CDA_NAMESPACE = "urn:hl7-org:v3"
MAX_CCDA_BYTES = 16 * 1024 * 1024  # a CCD is ~50-250 kB; an embedded PDF makes it MBs
MAX_DEPTH = 100  # the deepest of the 22 sample documents nests 16
MAX_ELEMENTS = 50_000  # 16x the largest sample (3,096); the mapper takes ~3 s for that
MAX_ATTRIBUTES = 32  # on one element (CDA's most is ~10); the mapper reads them quadratically
MAX_ALL_ATTRIBUTES = 150_000  # in the document (3 per element at the element limit)
_PROLOG_SCAN = 64 * 1024
_DECLARATION = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_ROOT = re.compile(rb"<([A-Za-z_][\w.\-]*:)?ClinicalDocument[\s>/]")


class _NothingResolver(etree.Resolver):  # type: ignore[misc]
    """Every external reference (a parameter entity's SYSTEM file, a DTD) resolves to
    nothing: libxml2 opens external parameter entities even with entities and DTDs off,
    and a DOCTYPE in UTF-16 gets past the byte scan."""

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        return self.resolve_string("", context)


def _parser() -> etree.XMLParser:
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,  # libxml2's own limits on text and depth stay on
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
        attribute_defaults=False,
    )
    parser.resolvers.add(_NothingResolver())
    return parser


def cda_path(root: etree._Element, *names: str) -> str:
    """An ElementPath to ``names`` in the document's own namespace (CDA's, or none)."""
    namespace = etree.QName(root).namespace
    return "/".join(f"{{{namespace}}}{n}" if namespace else n for n in names)


def is_clinical_document(head: bytes) -> bool:
    """Whether a payload's first bytes open a CDA ``ClinicalDocument`` (for XML sent as
    ``text/xml`` or ``application/xml``, and for blob drops)."""
    start = head[:_PROLOG_SCAN].lstrip(b"\xef\xbb\xbf\r\n\t ")
    return start.startswith(b"<") and _ROOT.search(start) is not None


def parse_document(data: bytes) -> etree._Element:
    """The document's root element, once it has passed every limit.

    Raises:
        NormalizationError: too large, a DTD or entity declaration, not well-formed,
            too deep or too many elements, or a root that is not a CDA ClinicalDocument.
    """
    if len(data) > MAX_CCDA_BYTES:
        raise NormalizationError.at(
            None, f"the C-CDA document is over {MAX_CCDA_BYTES} bytes", IssueCode.TOO_COSTLY
        )
    if not data.strip():
        raise NormalizationError.at(None, "the payload is empty", IssueCode.REQUIRED)
    declared = _DECLARATION.search(data[:_PROLOG_SCAN])
    if declared is not None:
        raise NormalizationError.at(
            f"byte {declared.start()}",
            "a DTD or entity declaration is not accepted in a C-CDA document",
            IssueCode.NOT_SUPPORTED,
        )
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        rule = exc.error_log.last_error.type_name.lower() if exc.error_log else "syntax"
        raise NormalizationError.at(
            f"line {line}, column {column}", f"not well-formed XML ({rule})"
        ) from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise NormalizationError.at(
            "prolog", "a DTD is not accepted in a C-CDA document", IssueCode.NOT_SUPPORTED
        )
    if root.xpath("/" + "/*" * (MAX_DEPTH + 1)):
        raise NormalizationError.at(
            None, f"the document nests elements over {MAX_DEPTH} deep", IssueCode.TOO_COSTLY
        )
    if root.xpath("count(//*)") > MAX_ELEMENTS:
        raise NormalizationError.at(
            None, f"the document has over {MAX_ELEMENTS} elements", IssueCode.TOO_COSTLY
        )
    if root.xpath(f"boolean(//*[count(@*) > {MAX_ATTRIBUTES}])") or (
        root.xpath("count(//@*)") > MAX_ALL_ATTRIBUTES
    ):
        raise NormalizationError.at(
            None,
            f"the document has an element with over {MAX_ATTRIBUTES} attributes, or over "
            f"{MAX_ALL_ATTRIBUTES} in all",
            IssueCode.TOO_COSTLY,
        )
    name = etree.QName(root)
    if name.localname != "ClinicalDocument" or name.namespace not in {CDA_NAMESPACE, None}:
        raise NormalizationError.at(
            "/*",
            "the root element is not a CDA ClinicalDocument (namespace urn:hl7-org:v3)",
            IssueCode.NOT_SUPPORTED,
        )
    return root
