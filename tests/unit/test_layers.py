"""The floors of ``shared/``: each package imports only the ones below it, and only the
top (``functions/``, ``intake_cli/``, ``devhost/``, ``bench/``, ``function_app.py``, the
tests) imports the composition root ``shared/wiring.py``.

Read from the source with ``ast`` (imports inside functions count too). The imports that
still run upward are listed with their reason: a new one fails the test, and so does
one listed here that is gone (then strike it from the list)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / "shared"

# Who may import whom, ground floor first (``shared.wiring`` stands above them all).
BELOW: dict[str, set[str]] = {
    "platform": set(),
    "pipeline": {"platform"},
    "security": {"platform"},
    "normalize": {"platform", "pipeline", "security"},
    "consent": {"platform", "pipeline", "security", "normalize"},
    "records": {"platform", "pipeline", "security", "normalize", "consent"},
    "notify": {"platform", "pipeline", "security", "normalize", "consent", "records"},
    "intake": {"platform", "pipeline", "security", "normalize"},
    "console": {
        "platform",
        "pipeline",
        "security",
        "normalize",
        "consent",
        "records",
        "notify",
        "intake",
    },
}
UPWARD = {
    ("security", "normalize"): "trust.py uses normalize.ids (FHIR primitives, for shared/fhir/)",
    ("normalize", "consent"): "csv_consent.py builds Consents with the consent vocabulary",
    ("consent", "records"): "the consent stage runs the store step and names Person and "
    "IngestionRef (records models, for a pipeline port)",
}


def _imports(path: Path) -> set[str]:
    """Every ``shared.*`` module a file imports, relative imports resolved."""
    package = path.relative_to(REPO).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("shared.")}


def _edges() -> set[tuple[str, str]]:
    """(package, package it imports) across ``shared/``'s packages."""
    edges = set()
    for path in SHARED.rglob("*.py"):
        parts = path.relative_to(SHARED).parts
        if len(parts) < 2:
            continue  # shared/wiring.py and shared/__init__.py: the top and the face
        for name in _imports(path):
            target = name.split(".")[1]
            if target != parts[0] and (SHARED / target).is_dir():
                edges.add((parts[0], target))
    return edges


def test_every_package_of_shared_has_a_floor() -> None:
    packages = {p.name for p in SHARED.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(BELOW)


def test_packages_import_only_downward_but_for_the_upward_imports_listed() -> None:
    edges = _edges()
    upward = {edge for edge in edges if edge[1] not in BELOW[edge[0]]}
    assert upward == set(UPWARD), "a new upward import, or a listed one now gone"


def test_only_the_top_imports_the_composition_root() -> None:
    users = [
        str(path.relative_to(REPO))
        for path in SHARED.rglob("*.py")
        if path.name != "wiring.py" and any(n.startswith("shared.wiring") for n in _imports(path))
    ]
    assert users == []
    assert "shared.wiring" in _imports(REPO / "functions" / "ingest.py")  # the scan sees it
