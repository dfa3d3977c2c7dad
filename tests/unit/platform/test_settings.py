"""Settings read from Azure app-setting names, and the storage client factory."""

from __future__ import annotations

import pytest

from shared.platform.errors import ConfigurationError
from shared.platform.settings import Environment, load_settings
from shared.platform.storage import build_storage_clients, service_endpoints

NAMES = (
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__clientId",
    "INTAKE_STORAGE_PREFIX",
    "INTAKE_ENVIRONMENT",
    "KEY_VAULT_URL",
    "INTAKE_DIRECT_DROP_PARTNERS",
    "INTAKE_UPLOAD_SAS_MINUTES",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)


def test_development_storage_shorthand_becomes_azurite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    settings = load_settings()
    conn = settings.connection_string or ""
    assert "AccountName=devstoreaccount1" in conn
    assert "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1" in conn
    assert not settings.uses_identity
    clients = build_storage_clients(settings)
    assert clients.blob.url.startswith("http://127.0.0.1:10000/devstoreaccount1")
    assert clients.table.url.startswith("http://127.0.0.1:10002/devstoreaccount1")


def test_identity_based_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage__accountName", "intakeprod")
    monkeypatch.setenv("AzureWebJobsStorage__queueServiceUri", "https://q.example.net")
    monkeypatch.setenv("AzureWebJobsStorage__clientId", "00000000-0000-0000-0000-000000000001")
    settings = load_settings()
    assert settings.uses_identity
    endpoints = service_endpoints(settings)
    assert endpoints.blob == "https://intakeprod.blob.core.windows.net"
    assert endpoints.queue == "https://q.example.net"
    assert endpoints.table == "https://intakeprod.table.core.windows.net"
    clients = build_storage_clients(settings)  # no network: constructors do no I/O
    assert clients.blob.account_name == "intakeprod"


def test_missing_storage_fails_with_the_setting_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "   ")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "AzureWebJobsStorage" in str(caught.value)
    assert "AzureWebJobsStorage__accountName" in str(caught.value)


@pytest.mark.parametrize("prefix", ["T1", "1abc", "a-b", "x" * 17])
def test_bad_prefix_is_rejected(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv("INTAKE_STORAGE_PREFIX", prefix)
    with pytest.raises(ConfigurationError, match="INTAKE_STORAGE_PREFIX"):
        load_settings()


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv("KEY_VAULT_URL", "")
    settings = load_settings()
    assert settings.environment is Environment.PRODUCTION
    assert settings.key_vault_url is None
    assert settings.storage_prefix == ""


def test_uploads_are_short_lived_and_direct_drops_are_off_unless_partners_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    settings = load_settings()
    assert (settings.upload_sas_minutes, settings.direct_drop_partner_ids) == (15, frozenset())
    monkeypatch.setenv("INTAKE_DIRECT_DROP_PARTNERS", " sftp-gateway, lab-1 ")
    assert load_settings().direct_drop_partner_ids == {"sftp-gateway", "lab-1"}
    for bad in ("*", "Lab", "lab;drop", "lab/x"):  # partner ids only: no wildcard
        monkeypatch.setenv("INTAKE_DIRECT_DROP_PARTNERS", bad)
        with pytest.raises(ConfigurationError, match="INTAKE_DIRECT_DROP_PARTNERS"):
            load_settings()
    monkeypatch.delenv("INTAKE_DIRECT_DROP_PARTNERS")
    for minutes in ("0", "1441"):
        monkeypatch.setenv("INTAKE_UPLOAD_SAS_MINUTES", minutes)
        with pytest.raises(ConfigurationError, match="INTAKE_UPLOAD_SAS_MINUTES"):
            load_settings()


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("INTAKE_AUTH_ENTRA_AUTHORITY", "http://login.example.org"),
        ("FHIR_SERVER_URL", "http://fhir.example.org/r4"),
        ("FHIR_SERVER_URL", "ftp://fhir.example.org/r4"),
    ],
)
def test_urls_that_carry_tokens_must_be_https_outside_development(
    monkeypatch: pytest.MonkeyPatch, name: str, url: str
) -> None:
    # The review's LOW-5: the JWKS over plain HTTP, a bearer token sent in the clear.
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv(name, url)
    with pytest.raises(ConfigurationError, match=f"{name} must be"):
        load_settings()
    monkeypatch.setenv("INTAKE_ENVIRONMENT", "development")
    if url.startswith("http://"):
        assert load_settings().environment is Environment.DEVELOPMENT  # loopback stand-ins
    monkeypatch.setenv(name, url.replace("http://", "https://").replace("ftp://", "https://"))
    monkeypatch.delenv("INTAKE_ENVIRONMENT")
    assert load_settings().environment is Environment.PRODUCTION


def test_public_origins_come_from_the_setting_and_app_services_host_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv("INTAKE_PUBLIC_BASE_URL", "https://Intake.Example.org/, https://b.example")
    monkeypatch.setenv("WEBSITE_HOSTNAME", "fi-prod.azurewebsites.net")
    assert load_settings().public_origins == (
        "https://intake.example.org",
        "https://b.example",
        "https://fi-prod.azurewebsites.net",
    )
    monkeypatch.setenv("INTAKE_PUBLIC_BASE_URL", "https://intake.example.org/api")
    with pytest.raises(ConfigurationError, match="not scheme://host"):
        load_settings()
    monkeypatch.setenv("INTAKE_PUBLIC_BASE_URL", "http://intake.example.org")
    with pytest.raises(ConfigurationError, match="must be https"):
        load_settings()


def test_drop_limits_default_to_what_a_flex_consumption_instance_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    settings = load_settings()
    assert settings.drop_max_record_bytes == 16 * 1024 * 1024
    assert settings.drop_max_decompressed_bytes == 4 * 1024 * 1024 * 1024
    assert settings.drop_max_inflate_ratio == 100
    # a drop's record must still be one that normalize takes (64 MiB)
    monkeypatch.setenv("INTAKE_DROP_MAX_RECORD_BYTES", str(64 * 1024 * 1024 + 1))
    with pytest.raises(ConfigurationError, match="INTAKE_DROP_MAX_RECORD_BYTES"):
        load_settings()


@pytest.mark.parametrize("ratio", ["1", "1033"])
def test_an_inflate_ratio_past_what_deflate_can_do_is_refused(
    monkeypatch: pytest.MonkeyPatch, ratio: str
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv("INTAKE_DROP_MAX_INFLATE_RATIO", ratio)
    with pytest.raises(ConfigurationError, match="INTAKE_DROP_MAX_INFLATE_RATIO"):
        load_settings()
