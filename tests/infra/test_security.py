"""The deployment is locked down the way docs/security.md says: identities instead of keys,
TLS 1.2, RBAC on Key Vault, immutable audit, diagnostics everywhere that holds data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.platform.names import Container, PlatformContainer, Queue
from tests.support.bicep import (
    bicep_files,
    function_calls,
    main_doc,
    module_doc,
    number,
    one,
    parsed,
    resources,
    variable,
    walk,
)

ROLE = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "db58b8e5-c6ad-4a2a-8342-4190687cbf4a": "Storage Blob Delegator",
    "5a1fc7df-4bf1-4951-a576-89034ee01acd": "FHIR Data Contributor",
}


def _role_names(doc: dict[str, Any], principal: str) -> set[str]:
    """Roles a file assigns to a principal expression, by name."""
    ids = doc.get("variables", {}).get("role", {}).get("value", {})
    named: set[str] = set()
    for assignment in resources(doc, "Microsoft.Authorization/roleAssignments").values():
        if assignment["properties"]["principalId"] != principal:
            continue
        calls = function_calls(
            assignment["properties"]["roleDefinitionId"], "subscriptionResourceId"
        )
        [call] = calls
        role = call["parameters"]["resource_name_1"]
        if isinstance(role, dict):  # role.someName
            role = ids[role["operator"]["operands"]["operand_2"]]
        elif role in doc.get("variables", {}):
            role = variable(doc, role)
        if role in ROLE:  # not a loop's item (see _looped_roles)
            named.add(ROLE[role])
    return named


def _looped_roles(doc: dict[str, Any], list_name: str) -> set[str]:
    ids = variable(doc, "role")
    return {ROLE[ids[ref["operator"]["operands"]["operand_2"]]] for ref in variable(doc, list_name)}


def test_storage_takes_only_entra_id_over_tls() -> None:
    account = one(module_doc("storage"), "Microsoft.Storage/storageAccounts")["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["defaultToOAuthAuthentication"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["supportsHttpsTrafficOnly"] is True
    assert account["encryption"]["requireInfrastructureEncryption"] is True


def test_blobs_are_versioned_and_recoverable() -> None:
    service = one(module_doc("storage"), "Microsoft.Storage/storageAccounts/blobServices")
    props = service["properties"]
    assert props["isVersioningEnabled"] is True
    assert props["deleteRetentionPolicy"]["enabled"] is True
    assert props["containerDeleteRetentionPolicy"]["enabled"] is True
    containers = one(
        module_doc("storage"), "Microsoft.Storage/storageAccounts/blobServices/containers"
    )
    assert containers["properties"]["publicAccess"] == "None"


def test_audit_container_is_immutable_for_the_retention_period() -> None:
    doc = module_doc("storage")
    policy = one(
        doc, "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies"
    )
    assert policy["name"].endswith(f"/default/{Container.AUDIT}/default")
    assert policy["properties"]["immutabilityPeriodSinceCreationInDays"] == "auditRetentionDays"
    assert policy["properties"]["allowProtectedAppendWrites"] is False
    assert main_doc()["parameters"]["auditRetentionDays"]["default"] >= 2190  # six years


def test_lifecycle_rules_only_touch_containers_the_code_names() -> None:
    doc = module_doc("storage")
    rules = one(doc, "Microsoft.Storage/storageAccounts/managementPolicies")["properties"][
        "policy"
    ]["rules"]
    by_name = {rule["name"]: rule["definition"] for rule in rules}
    prefixes = {
        prefix.split("/")[0]
        for rule in by_name.values()
        for prefix in rule["filters"].get("prefixMatch", [])
    }
    assert prefixes <= {str(c) for c in Container}
    # The unified record, consents, quarantine and audit are never deleted by lifecycle.
    for kept in (Container.FHIR, Container.CONSENTS, Container.QUARANTINE, Container.AUDIT):
        for rule in by_name.values():
            if f"{kept}/" in rule["filters"].get("prefixMatch", []):
                assert "delete" not in rule["actions"].get("baseBlob", {}), kept
    assert by_name["export-expiry"]["actions"]["baseBlob"]["delete"] == {
        "daysAfterModificationGreaterThan": "exportRetentionDays"
    }


def test_key_vault_uses_rbac_and_cannot_lose_secrets() -> None:
    vault = one(module_doc("keyvault"), "Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True
    assert vault["enablePurgeProtection"] is True
    assert "accessPolicies" not in vault
    for flag in (
        "enabledForDeployment",
        "enabledForDiskEncryption",
        "enabledForTemplateDeployment",
    ):
        assert vault[flag] is False


def test_function_app_is_flex_consumption_with_its_own_identity() -> None:
    doc = module_doc("functionapp")
    plan = one(doc, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    app = one(doc, "Microsoft.Web/sites")
    assert app["identity"]["type"] == "UserAssigned"
    props = app["properties"]
    assert props["httpsOnly"] is True
    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    assert storage["value"].endswith(f"}}{PlatformContainer.APP_PACKAGE}")
    site = props["siteConfig"]
    assert site["minTlsVersion"] == "1.2" and site["ftpsState"] == "Disabled"
    policies = resources(doc, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {p["name"]: p["properties"]["allow"] for p in policies.values()} == {
        "ftp": False,
        "scm": False,
    }


def test_no_template_reads_keys_or_writes_connection_strings() -> None:
    for path in bicep_files():
        doc = parsed(path)
        for function in ("listKeys", "listConnectionStrings", "listAccountSas", "listServiceSas"):
            assert function_calls(doc, function) == [], f"{path.name} calls {function}"
        for value in walk(doc):
            if isinstance(value, str):
                assert "AccountKey=" not in value and "SharedAccessSignature=" not in value
    settings = variable(module_doc("functionapp"), "platformSettings")
    assert "AzureWebJobsStorage" not in settings  # the connection-string form
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    # The App Insights connection string carries no usable key: local auth is off and the
    # app authenticates with its identity.
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith("Authorization=AAD")
    insights = one(module_doc("monitoring"), "Microsoft.Insights/components")
    assert insights["properties"]["DisableLocalAuth"] is True


def test_the_app_identity_has_the_roles_its_code_needs() -> None:
    doc = module_doc("roles")
    assert _looped_roles(doc, "appStorageRoles") == {
        "Storage Blob Data Owner",
        "Storage Blob Delegator",  # user delegation keys for partners' upload URLs
        "Storage Queue Data Contributor",
        "Storage Table Data Contributor",
    }
    assert _role_names(doc, "appPrincipalId") >= {
        "Key Vault Secrets Officer",  # webhook secrets are created, rotated and deleted
        "Monitoring Metrics Publisher",
    }
    assert _role_names(module_doc("fhir-access"), "appPrincipalId") == {"FHIR Data Contributor"}
    assert _looped_roles(doc, "operatorStorageRoles")  # the deploying principal, for the CLI


# Event Grid's system topic identity, as the Bicep names it in role assignments.
_TOPIC_IDENTITY: dict[str, Any] = {
    "operator": {
        "type": "property_accessor",
        "operands": {
            "operand_1": "topic",
            "operand_2": {
                "operator": {
                    "type": "property_accessor",
                    "operands": {"operand_1": "identity", "operand_2": "principalId"},
                }
            },
        },
    }
}


def test_only_the_app_the_operator_and_event_grid_hold_roles() -> None:
    # Partners write ingest-drop only with the upload URLs the app signs (MEDIUM-4): no
    # template grants anyone else a role, on the account or on a container. Internal
    # producers get two roles, scoped to the intake-requests queue and container alone.
    assignments = [
        assignment
        for path in bicep_files()
        for assignment in resources(
            parsed(path), "Microsoft.Authorization/roleAssignments"
        ).values()
    ]
    holders = [a["properties"]["principalId"] for a in assignments]
    producers = [a for a in assignments if a["properties"]["principalId"] == "producer"]
    assert holders and all(
        h in ("appPrincipalId", "operatorPrincipalId", "producer", _TOPIC_IDENTITY) for h in holders
    ), holders
    assert sorted(a["scope"] for a in producers) == ["requestContainer", "requestQueue"]
    granted = sorted(
        json.dumps(a["properties"]["roleDefinitionId"], sort_keys=True) for a in producers
    )
    assert "storageQueueDataMessageSender" in granted[0] + granted[1]
    assert "storageBlobDataContributor" in granted[0] + granted[1]
    roles = module_doc("roles")
    assert variable(roles, "role")["storageQueueDataMessageSender"] == (
        "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"
    )


@pytest.mark.parametrize("name", ["roles", "eventgrid", "fhir-access"])
def test_role_assignment_names_are_deterministic(name: str) -> None:
    for assignment in resources(
        module_doc(name), "Microsoft.Authorization/roleAssignments"
    ).values():
        assert "function" in assignment["name"] and assignment["name"]["function"]["type"] == "guid"


def test_blob_created_events_reach_the_drop_queue_and_dead_letter() -> None:
    doc = module_doc("eventgrid")
    topic = one(doc, "Microsoft.EventGrid/systemTopics")
    assert topic["properties"]["topicType"] == "Microsoft.Storage.StorageAccounts"
    assert topic["identity"]["type"] == "SystemAssigned"
    sub = one(doc, "Microsoft.EventGrid/systemTopics/eventSubscriptions")["properties"]
    assert sub["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert sub["filter"]["subjectBeginsWith"] == (
        f"/blobServices/default/containers/{Container.INGEST_DROP}/blobs/"
    )
    assert sub["eventDeliverySchema"] == "EventGridSchema"  # what parse_blob_created reads
    destination = sub["deliveryWithResourceIdentity"]["destination"]
    assert destination["endpointType"] == "StorageQueue"
    assert destination["properties"]["queueName"] == Queue.BLOB_CREATED
    assert number(destination["properties"]["queueMessageTimeToLiveInSeconds"]) == -1
    assert sub["retryPolicy"]["maxDeliveryAttempts"] >= 10
    dead = sub["deadLetterWithResourceIdentity"]["deadLetterDestination"]
    assert dead["properties"]["blobContainerName"] == PlatformContainer.EVENTGRID_DEADLETTER
    assert _role_names(doc, _TOPIC_IDENTITY) == {
        "Storage Queue Data Message Sender",
        "Storage Blob Data Contributor",
    }


@pytest.mark.parametrize(
    ("module", "type_"),
    [
        ("storage", "Microsoft.Storage/storageAccounts/blobServices"),
        ("storage", "Microsoft.Storage/storageAccounts/queueServices"),
        ("storage", "Microsoft.Storage/storageAccounts/tableServices"),
        ("keyvault", "Microsoft.KeyVault/vaults"),
        ("functionapp", "Microsoft.Web/sites"),
        ("eventgrid", "Microsoft.EventGrid/systemTopics"),
    ],
)
def test_diagnostics_go_to_log_analytics(module: str, type_: str) -> None:
    doc = module_doc(module)
    [symbol] = resources(doc, type_)
    settings = [
        d
        for d in resources(doc, "Microsoft.Insights/diagnosticSettings").values()
        if d["scope"] == symbol
    ]
    assert len(settings) == 1, f"{module}: {type_} has no diagnostic setting"
    [setting] = settings
    assert setting["properties"]["workspaceId"] == "workspaceId"
    assert setting["properties"]["logs"] and all(
        log["enabled"] for log in setting["properties"]["logs"]
    )


def test_private_networking_is_a_parameter_that_is_off_by_default() -> None:
    doc = main_doc()
    assert doc["parameters"]["enablePrivateNetworking"]["default"] is False
    for symbol in ("network", "privateEndpoints"):
        assert doc["modules"][symbol]["config"]["condition"] == "enablePrivateNetworking"
    app = one(module_doc("functionapp"), "Microsoft.Web/sites")["properties"]
    assert "subnetId" in str(app["virtualNetworkSubnetId"])
    subnet = module_doc("network")["resources"]["vnet"]["config"]["properties"]["subnets"][0]
    [delegation] = subnet["properties"]["delegations"]
    assert delegation["properties"]["serviceName"] == "Microsoft.App/environments"
