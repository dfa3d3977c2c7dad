"""Write ``shared/normalize/hl7v2/tho_tables.json`` from the terminology.hl7.org package.

The HL7 v2 converter must emit only code systems that exist, with the codes and
displays they define. terminology.hl7.org (THO, CC0) publishes a CodeSystem for some v2
tables (``http://terminology.hl7.org/CodeSystem/v2-0203``) and none for the others
(user-defined tables such as 0296, written ``urn:oid:2.16.840.1.113883.12.296``). This
keeps the published v2 tables (codes and displays) and the two v3 code systems the
converter maps into, from the npm package ``hl7.terminology.r4`` that ``make setup``
installs. ``tests/unit/normalize/test_tho_tables.py`` checks the file matches it.

Usage: python tools/build_tho_tables.py [PACKAGE_DIR] [OUT]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / ".cache" / "tho" / "package"
OUT = REPO / "shared" / "normalize" / "hl7v2" / "tho_tables.json"
V3 = ("MaritalStatus", "ObservationInterpretation")


def _concepts(concepts: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for concept in concepts:
        yield concept
        yield from _concepts(concept.get("concept", []))


def _codes(path: Path) -> dict[str, str]:
    system = json.loads(path.read_text(encoding="utf-8"))
    return {c["code"]: c.get("display", "") for c in _concepts(system.get("concept", []))}


def build(package: Path) -> dict[str, Any]:
    """The tables, from an unpacked ``hl7.terminology.r4`` package folder."""
    manifest = json.loads((package / "package.json").read_text(encoding="utf-8"))
    v2 = {
        path.stem.removeprefix("CodeSystem-v2-"): _codes(path)
        for path in sorted(package.glob("CodeSystem-v2-[0-9][0-9][0-9][0-9].json"))
    }
    v3 = {name: _codes(package / f"CodeSystem-v3-{name}.json") for name in V3}
    return {"source": f"{manifest['name']}@{manifest['version']}", "v2": v2, "v3": v3}


def dumps(tables: dict[str, Any]) -> str:
    """The file's text: sorted, one table per line, so a diff shows what changed."""
    lines = [f'{{"source": {json.dumps(tables["source"])},']
    for group in ("v2", "v3"):
        items = sorted(tables[group].items())
        lines.append(f'"{group}": {{')
        lines += [
            f"{json.dumps(name)}: {json.dumps(codes, sort_keys=True, ensure_ascii=False)}"
            + ("," if i < len(items) - 1 else "")
            for i, (name, codes) in enumerate(items)
        ]
        lines.append("}," if group == "v2" else "}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    package = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else OUT
    out.write_text(dumps(build(package)), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
