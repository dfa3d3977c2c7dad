"""The Bicep provisions exactly what the code names: every container, queue (with its poison
twin), table and app setting in shared/platform/names.py and every name the app's bindings
use, nothing more; and its default settings are the code's defaults."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shared.notify.models import DeliveryState
from shared.platform import telemetry
from shared.platform.names import (
    LOCAL_ONLY_SETTINGS,
    LOCAL_ONLY_TABLES,
    PLATFORM_SETTINGS,
    Container,
    PlatformContainer,
    Queue,
    Setting,
    Table,
    poison_queue,
)
from shared.platform.settings import Settings
from shared.wiring import consent_policy_for
from tests.support.app_routes import app_bindings
from tests.support.bicep import (
    INFRA,
    function_calls,
    main_doc,
    module_doc,
    module_params,
    one,
    resources,
    variable,
)

BINDING_EXPRESSION = re.compile(r"%([^%]+)%")
STORAGE_ACCOUNT = "stexample"


def _intake_settings() -> dict[str, Any]:
    return dict(module_params(main_doc(), "app")["intakeSettings"])


def provisioned_settings() -> set[str]:
    """Every app setting the function app gets: the module's own plus main's intakeSettings."""
    doc = module_doc("functionapp")
    loop = one(doc, "Microsoft.Web/sites")["properties"]["siteConfig"]["appSettings"]
    [union] = function_calls(loop["loop_type"]["detail"]["array_name"], "union")
    assert union["parameters"] == {"arg_1": "platformSettings", "arg_2": "intakeSettings"}
    return set(variable(doc, "platformSettings")) | set(_intake_settings())


def test_containers_are_those_the_code_names() -> None:
    provisioned = set(variable(module_doc("storage"), "containers"))
    assert provisioned == {str(c) for c in Container} | {str(c) for c in PlatformContainer}


def test_queues_and_their_poison_twins_are_those_the_code_names() -> None:
    provisioned = set(variable(module_doc("storage"), "queues"))
    expected = {str(q) for q in Queue} | {poison_queue(q) for q in Queue}
    assert provisioned == expected
    queues = one(module_doc("storage"), "Microsoft.Storage/storageAccounts/queueServices/queues")
    assert queues["name"] == "queue"  # the loop provisions every name in the list


def test_tables_are_those_the_code_names_except_local_ones() -> None:
    provisioned = set(variable(module_doc("storage"), "tables"))
    assert provisioned == {str(t) for t in Table if t not in LOCAL_ONLY_TABLES}
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", t) for t in provisioned)


def test_app_settings_are_those_the_code_reads_in_azure() -> None:
    expected = {str(s) for s in Setting if s not in LOCAL_ONLY_SETTINGS | PLATFORM_SETTINGS}
    assert provisioned_settings() == expected


def test_local_only_settings_never_reach_azure() -> None:
    assert not provisioned_settings() & {str(s) for s in LOCAL_ONLY_SETTINGS}


@pytest.mark.parametrize(
    ("function", "binding"), app_bindings(), ids=[f"{n}-{b['type']}" for n, b in app_bindings()]
)
def test_every_binding_finds_what_it_names(function: str, binding: dict[str, Any]) -> None:
    settings = provisioned_settings()
    if binding["type"] == "queueTrigger":
        assert binding["queueName"] in variable(module_doc("storage"), "queues")
        assert poison_queue(binding["queueName"]) in variable(module_doc("storage"), "queues")
    if "connection" in binding:
        # Identity-based connection: <name>__<service>ServiceUri and credential, no string.
        connection = binding["connection"]
        assert connection not in settings, f"{function}: {connection} would be a key"
        for suffix in ("queueServiceUri", "blobServiceUri", "tableServiceUri", "credential"):
            assert f"{connection}__{suffix}" in settings, f"{function}: {connection}__{suffix}"
    for value in binding.values():
        for name in BINDING_EXPRESSION.findall(str(value)):
            assert name in settings, f"{function} reads %{name}% which is not provisioned"


def _bicep_default(expression: Any) -> str:
    """The value a main.bicep intakeSettings entry has when no parameter is overridden."""
    parameters = main_doc()["parameters"]
    calls = function_calls(expression, "string")
    if calls:
        expression = calls[0]["parameters"]["value_to_convert"]
    if isinstance(expression, str) and expression in parameters:
        value = parameters[expression]["default"]
        return str(value).lower() if isinstance(value, bool) else str(value)
    assert isinstance(expression, str), expression
    return expression  # a literal


def test_default_settings_equal_the_code_defaults() -> None:
    deployed = {name: _bicep_default(value) for name, value in _intake_settings().items()}
    deployed[Setting.STORAGE_ACCOUNT_NAME] = STORAGE_ACCOUNT
    from_bicep = Settings.model_validate(deployed)  # aliases, as the app reads them
    from_code = Settings.model_validate({Setting.STORAGE_ACCOUNT_NAME: STORAGE_ACCOUNT})
    # Unset sensitivity labels mean the code's list; the Bicep spells that list out (a blank
    # setting would mean none, and switch off 42 CFR Part 2 protection).
    assert consent_policy_for(from_bicep) == consent_policy_for(from_code)
    exclude = {"consent_sensitive_labels"}
    assert from_bicep.model_dump(exclude=exclude) == from_code.model_dump(exclude=exclude)
    assert deployed[Setting.ENVIRONMENT] == "production"
    # The sweeper's schedule has no default in code: the binding needs the setting.
    assert re.fullmatch(r"\S+( \S+){5}", deployed[Setting.SWEEP_SCHEDULE])


def test_the_parameters_that_feed_settings_allow_what_the_code_allows() -> None:
    parameters = main_doc()["parameters"]
    [allowed] = [d["argument"] for d in parameters["consentPolicy"]["decorators"]]
    for value in allowed:
        Settings.model_validate(
            {Setting.STORAGE_ACCOUNT_NAME: STORAGE_ACCOUNT, Setting.CONSENT_POLICY: value}
        )


def test_alerts_read_the_metrics_the_code_records() -> None:
    rules = resources(module_doc("alerts"), "Microsoft.Insights/scheduledQueryRules")
    criteria = {name: rule["properties"]["criteria"]["allOf"][0] for name, rule in rules.items()}
    queries = {name: c["query"] for name, c in criteria.items()}
    # The deliver stage counts each attempt's state (tests/e2e/test_telemetry.py).
    dead = queries["deadDeliveries"]
    assert dead.startswith('AppMetrics | where Name == "fhir_intake.deliveries"')
    assert f'tostring(Properties["{telemetry.OUTCOME}"]) == "{DeliveryState.DEAD}"' in dead
    assert criteria["deadDeliveries"]["metricMeasureColumn"] == "dead"
    # The sweeper's gauge, one series per poison queue.
    poison = queries["poisonDepth"]
    assert poison.startswith('AppMetrics | where Name == "fhir_intake.queue.poison_depth"')
    assert f'queue = tostring(Properties["{telemetry.QUEUE}"])' in poison
    assert criteria["poisonDepth"]["metricMeasureColumn"] == "depth"
    assert [d["name"] for d in criteria["poisonDepth"]["dimensions"]] == ["queue"]


def test_the_workbook_reads_only_metrics_the_code_records() -> None:
    text = (INFRA / "modules" / "workbook.json").read_text(encoding="utf-8")
    named = set(re.findall(r'Name == \\"(fhir_intake\.[a-z_.]+)\\"', text))
    assert named and named <= set(telemetry.METRICS), named - set(telemetry.METRICS)
    assert named == set(telemetry.METRICS)
