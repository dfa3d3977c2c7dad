"""Reads the Bicep under ``infra/`` without the Bicep CLI (it cannot be installed on our
build machines): tree-sitter-bicep for syntax, pycep-parser for structure.

pycep gives each file as JSON: ``parameters``, ``variables``, ``resources``, ``modules`` and
``outputs``, with expressions as nested ``operator``/``function`` objects and a bare
identifier as a plain string (the same as a string literal; callers resolve names).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import tree_sitter_bicep
from pycep import BicepParser
from tree_sitter import Language, Node, Parser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"
_OUTPUT_REF = re.compile(r"\$\{(\w+)\.outputs\.(\w+)")


def bicep_files() -> list[Path]:
    """Every template, main first."""
    return [MAIN, *sorted((INFRA / "modules").glob("*.bicep"))]


def syntax_errors(source: bytes) -> list[str]:
    """Where tree-sitter found an error or had to invent a missing token, as 'line:col'."""
    tree = Parser(Language(tree_sitter_bicep.language())).parse(source)
    found: list[str] = []

    def visit(node: Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            found.append(f"{row + 1}:{col + 1} {node.type}")
        for child in node.children:
            visit(child)

    visit(tree.root_node)
    return found


@cache
def parsed(path: Path) -> dict[str, Any]:
    """A file as pycep JSON (raises on anything pycep's grammar refuses), with quoted object
    keys (``'azd-env-name'``) unquoted."""
    doc: dict[str, Any] = _unquoted(BicepParser().parse(file_path=path))
    return doc


def _unquoted(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            (k[1:-1] if k.startswith("'") and k.endswith("'") else k): _unquoted(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_unquoted(item) for item in value]
    return value


def module_doc(name: str) -> dict[str, Any]:
    """``infra/modules/<name>.bicep`` as pycep JSON."""
    return parsed(INFRA / "modules" / f"{name}.bicep")


def main_doc() -> dict[str, Any]:
    return parsed(MAIN)


def module_params(doc: dict[str, Any], symbol: str) -> dict[str, Any]:
    """The parameters a module call passes, a conditional call's included."""
    config = doc["modules"][symbol]["config"]
    body = config["config"] if "condition" in config and "config" in config else config
    params: dict[str, Any] = body.get("params", {})
    return params


def variable(doc: dict[str, Any], name: str) -> Any:
    return doc["variables"][name]["value"]


def resources(doc: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    """Resources of one type (``Microsoft.Storage/storageAccounts``) by symbolic name, with
    loops and conditions unwrapped to their body."""
    found = {}
    for name, resource in doc.get("resources", {}).items():
        if resource["type"] == type_:
            config = resource["config"]
            wrapped = "config" in config and ("loop_type" in config or "condition" in config)
            found[name] = config["config"] if wrapped else config
    return found


def one(doc: dict[str, Any], type_: str) -> dict[str, Any]:
    """The only resource of a type in a file."""
    found = resources(doc, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.values()))


def walk(value: Any) -> Iterator[Any]:
    """Every value nested in an expression or object, the value itself included."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def function_calls(value: Any, name: str) -> list[dict[str, Any]]:
    """Calls of one Bicep function (``guid``, ``listKeys``...) anywhere in ``value``; pycep
    spells some in snake case (``subscription_resource_id``), so both spellings match."""
    wanted = _folded(name)
    return [
        node["function"]
        for node in walk(value)
        if isinstance(node, dict)
        and isinstance(node.get("function"), dict)
        and _folded(str(node["function"].get("type"))) == wanted
    ]


def _folded(name: str) -> str:
    return name.replace("_", "").lower()


def number(value: Any) -> Any:
    """An integer literal, negative ones included (pycep gives ``-1`` as a minus operator)."""
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "minus":
        return -value["operator"]["operands"]["integer_value"]
    return value


def output_references(value: Any) -> set[tuple[str, str]]:
    """(module, output) pairs read as ``module.outputs.name``, in expressions or strings."""
    refs: set[tuple[str, str]] = set()
    for node in walk(value):
        if isinstance(node, str):
            refs.update(_OUTPUT_REF.findall(node))
        elif isinstance(node, dict) and isinstance(node.get("operator"), dict):
            operator = node["operator"]
            if operator.get("type") != "property_accessor":
                continue
            first, rest = operator["operands"]["operand_1"], operator["operands"]["operand_2"]
            inner = rest.get("operator", {}) if isinstance(rest, dict) else {}
            if isinstance(first, str) and inner.get("type") == "property_accessor":
                operands = inner["operands"]
                if operands["operand_1"] == "outputs":
                    out = operands["operand_2"]
                    while isinstance(out, dict):  # outputs.a.b: keep the output's name
                        out = out["operator"]["operands"]["operand_1"]
                    refs.add((first, out))
    return refs
