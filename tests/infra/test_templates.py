"""Every template parses, and main.bicep wires its modules the way they are declared: the
mistakes `azd up` would otherwise find in Azure, found offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.support.bicep import (
    INFRA,
    MAIN,
    REPO,
    bicep_files,
    main_doc,
    module_params,
    one,
    output_references,
    parsed,
    syntax_errors,
)

UPPER_CASE = re.compile(r"^[A-Z][A-Z0-9_]*\Z")


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_template_parses_without_errors(path: Path) -> None:
    assert syntax_errors(path.read_bytes()) == []
    assert parsed(path)["resources"] or parsed(path)["modules"]


def test_the_syntax_check_finds_a_broken_template() -> None:
    broken = (
        (INFRA / "modules" / "identity.bicep")
        .read_text()
        .replace("location: location", "location:", 1)
    )
    assert syntax_errors(broken.encode())
    assert syntax_errors(b"resource x 'Microsoft.Foo/bars@2024-01-01' = {\n  name: 'a'\n")


def test_main_is_an_azd_subscription_deployment() -> None:
    doc = main_doc()
    assert doc["globals"]["scope"]["value"] == "subscription"
    for name in ("environmentName", "location", "principalId"):
        assert name in doc["parameters"]
    group = one(doc, "Microsoft.Resources/resourceGroups")
    assert group["tags"] == "tags"
    assert doc["variables"]["tags"]["value"] == {"azd-env-name": "environmentName"}
    assert all(UPPER_CASE.match(name) for name in doc["outputs"]), sorted(doc["outputs"])


def test_every_module_call_matches_the_module() -> None:
    doc = main_doc()
    outputs: dict[str, set[str]] = {}
    for symbol, call in doc["modules"].items():
        path = MAIN.parent / call["detail"]["path"]
        assert path.is_file(), f"module {symbol}: {path} does not exist"
        declared = parsed(path)["parameters"]
        passed = set(module_params(doc, symbol))
        assert passed <= set(declared), f"{symbol} passes unknown {sorted(passed - set(declared))}"
        required = {name for name, p in declared.items() if p.get("default") is None}
        assert required <= passed, f"{symbol} misses {sorted(required - passed)}"
        outputs[symbol] = set(parsed(path).get("outputs", {}))
    for module, output in output_references(doc):
        assert module in outputs, f"{module}.outputs.{output}: no such module"
        assert output in outputs[module], f"module {module} has no output {output}"


def test_azd_parameters_name_parameters_of_main() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(parameters) <= set(main_doc()["parameters"])
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"


def test_azure_yaml_deploys_the_tagged_function_app() -> None:
    project = yaml.safe_load((REPO / "azure.yaml").read_text())
    assert project["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    [(service, spec)] = project["services"].items()
    assert spec == {"project": ".", "language": "python", "host": "function"}
    app = parsed(INFRA / "modules" / "functionapp.bicep")["resources"]["app"]["config"]
    tag = app["tags"]["function"]["parameters"]["arg_2"]
    assert tag == {"azd-service-name": service}


def test_the_package_leaves_out_what_only_development_needs() -> None:
    ignored = set((REPO / ".funcignore").read_text().split())
    for path in (
        "tests",
        "bench",
        "devhost",
        "intake_cli",
        "infra",
        ".venv",
        "local.settings.json",
    ):
        assert path in ignored
    for needed in ("function_app.py", "host.json", "requirements.txt", "functions", "shared"):
        assert needed not in ignored
