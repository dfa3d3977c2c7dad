"""Typed settings, read from the same names as Azure app settings.

Locally they come from the environment that the local host fills from
``local.settings.json``; in Azure from the Function App's settings. Nothing else
reads the environment.
"""

from __future__ import annotations

import re
from enum import StrEnum
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError
from .names import Setting, validate_prefix
from .public_url import origin_of

__all__ = [
    "DEVELOPMENT_STORAGE",
    "Environment",
    "Settings",
    "development_connection_string",
    "load_settings",
]

# Azurite's well-known development account (public, documented by Microsoft).
_DEV_ACCOUNT = "devstoreaccount1"
_DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
_PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")  # as shared/security/models.Partner


class Environment(StrEnum):
    """Where the app runs; development enables local-only conveniences."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every setting the app reads, validated once at start-up."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, populate_by_name=True
    )

    storage_connection: str | None = Field(
        default=None, validation_alias=AliasChoices(Setting.STORAGE.value)
    )
    storage_account_name: str | None = Field(
        default=None, validation_alias=AliasChoices(Setting.STORAGE_ACCOUNT_NAME.value)
    )
    storage_blob_uri: str | None = Field(
        default=None, validation_alias=AliasChoices(Setting.STORAGE_BLOB_URI.value)
    )
    storage_queue_uri: str | None = Field(
        default=None, validation_alias=AliasChoices(Setting.STORAGE_QUEUE_URI.value)
    )
    storage_table_uri: str | None = Field(
        default=None, validation_alias=AliasChoices(Setting.STORAGE_TABLE_URI.value)
    )
    storage_client_id: str | None = Field(
        default=None, validation_alias=AliasChoices(Setting.STORAGE_CLIENT_ID.value)
    )
    key_vault_url: str | None = Field(
        default=None, validation_alias=AliasChoices(Setting.KEY_VAULT_URL.value)
    )
    storage_prefix: str = Field(
        default="", validation_alias=AliasChoices(Setting.STORAGE_PREFIX.value)
    )
    environment: Environment = Field(
        default=Environment.PRODUCTION, validation_alias=AliasChoices(Setting.ENVIRONMENT.value)
    )
    http_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        validation_alias=AliasChoices(Setting.HTTP_MAX_BYTES.value),
    )
    max_decompressed_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        validation_alias=AliasChoices(Setting.MAX_DECOMPRESSED_BYTES.value),
    )
    drop_chunk_records: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        validation_alias=AliasChoices(Setting.DROP_CHUNK_RECORDS.value),
    )
    # Long enough for a large file over a slow line (each block is authorized when it is
    # sent, so the whole upload must be done in time), short enough that a leaked URL is
    # soon worthless.
    upload_sas_minutes: int = Field(
        default=15,
        ge=1,
        le=24 * 60,
        validation_alias=AliasChoices(Setting.UPLOAD_SAS_MINUTES.value),
    )
    direct_drop_partners: str = Field(
        default="",
        max_length=4096,
        validation_alias=AliasChoices(Setting.DIRECT_DROP_PARTNERS.value),
    )
    # A drop's record is held, checked as JSON here and parsed again by normalize: a few
    # times its size in memory, with up to 16 drops at once per instance (host.json's
    # batchSize) on 2 GB Flex Consumption instances. Normalize takes no more than 64 MiB.
    drop_max_record_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        validation_alias=AliasChoices(Setting.DROP_MAX_RECORD_BYTES.value),
    )
    # Drops are the bulk path (files of GBs), so this is far above what one HTTP body may
    # inflate to; memory does not grow with it (the file is streamed), time does.
    drop_max_decompressed_bytes: int = Field(
        default=4 * 1024 * 1024 * 1024,
        ge=1024,
        validation_alias=AliasChoices(Setting.DROP_MAX_DECOMPRESSED_BYTES.value),
    )
    # FHIR, HL7 and CSV text gzips 4 to 30 times (bench.generate's files and the corpora at
    # level 9); a bomb about a thousand times (deflate's most, 1032, turns the check off).
    drop_max_inflate_ratio: int = Field(
        default=100,
        ge=2,
        le=1032,
        validation_alias=AliasChoices(Setting.DROP_MAX_INFLATE_RATIO.value),
    )
    # Well inside host.json's functionTimeout (10 minutes): a slice that ran over it would
    # be cut off and retried for ever.
    export_slice_seconds: int = Field(
        default=120,
        ge=1,
        le=480,
        validation_alias=AliasChoices(Setting.EXPORT_SLICE_SECONDS.value),
    )
    dedup_window_hours: int = Field(
        default=24,
        ge=0,
        le=24 * 30,
        validation_alias=AliasChoices(Setting.DEDUP_WINDOW_HOURS.value),
    )
    consent_policy: str = Field(
        default="opt-out",
        pattern="^(opt-in|opt-out)$",
        validation_alias=AliasChoices(Setting.CONSENT_POLICY.value),
    )
    consent_purpose: str = Field(
        default="TREAT",
        pattern="^[A-Z][A-Z0-9]{1,31}$",
        validation_alias=AliasChoices(Setting.CONSENT_PURPOSE.value),
    )
    consent_sensitive_labels: str | None = Field(
        default=None, validation_alias=AliasChoices(Setting.CONSENT_SENSITIVE_LABELS.value)
    )
    link_systems: str = Field(
        default="", max_length=4096, validation_alias=AliasChoices(Setting.LINK_SYSTEMS.value)
    )
    source_time_skew_seconds: int = Field(
        default=300,
        ge=0,
        le=24 * 3600,
        validation_alias=AliasChoices(Setting.SOURCE_TIME_SKEW_SECONDS.value),
    )
    partner_cache_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        validation_alias=AliasChoices(Setting.PARTNER_CACHE_SECONDS.value),
    )
    consent_time_zone: str = Field(
        default="UTC", validation_alias=AliasChoices(Setting.CONSENT_TIME_ZONE.value)
    )
    public_base_url: str = Field(
        default="", max_length=2048, validation_alias=AliasChoices(Setting.PUBLIC_BASE_URL.value)
    )
    website_hostname: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9.-]{1,253}$|^$",
        validation_alias=AliasChoices(Setting.WEBSITE_HOSTNAME.value),
    )
    fhir_server_url: str | None = Field(
        default=None, validation_alias=AliasChoices(Setting.FHIR_SERVER_URL.value)
    )
    fhir_server_auth: str = Field(
        default="managed-identity",
        pattern="^(managed-identity|none)$",
        validation_alias=AliasChoices(Setting.FHIR_SERVER_AUTH.value),
    )

    webhook_retry_schedule: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        pattern=r"^\d{1,6}(,\d{1,6}){0,15}$",
        validation_alias=AliasChoices(Setting.WEBHOOK_RETRY_SCHEDULE.value),
    )
    webhook_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=60,
        validation_alias=AliasChoices(Setting.WEBHOOK_TIMEOUT_SECONDS.value),
    )
    local_secrets_file: str = Field(
        default=".intake/secrets.json",
        min_length=1,
        validation_alias=AliasChoices(Setting.LOCAL_SECRETS_FILE.value),
    )

    entra_tenant_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F-]{36}$|^$",
        validation_alias=AliasChoices(Setting.ENTRA_TENANT_ID.value),
    )
    entra_audience: str | None = Field(
        default=None, validation_alias=AliasChoices(Setting.ENTRA_AUDIENCE.value)
    )
    entra_authority: str = Field(
        default="https://login.microsoftonline.com",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        validation_alias=AliasChoices(Setting.ENTRA_AUTHORITY.value),
    )
    api_keys: bool = Field(default=True, validation_alias=AliasChoices(Setting.API_KEYS.value))

    # Telemetry (shared/platform/telemetry.py): Application Insights in Azure, else OTLP.
    appinsights_connection: str | None = Field(
        default=None, validation_alias=AliasChoices(Setting.APPINSIGHTS_CONNECTION.value)
    )
    appinsights_authentication: str | None = Field(
        default=None,
        # As Azure writes it, give or take spaces and a trailing ';' (a refusal here would
        # stop every function: settings are each one's first call).
        pattern=r"^(?i:\s*(ClientId\s*=\s*[0-9a-f-]{36}\s*;\s*)?Authorization\s*=\s*AAD"
        r"(\s*;\s*ClientId\s*=\s*[0-9a-f-]{36})?\s*;?\s*)$|^$",
        validation_alias=AliasChoices(Setting.APPINSIGHTS_AUTHENTICATION.value),
    )
    otlp_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$|^$",
        validation_alias=AliasChoices(Setting.OTLP_ENDPOINT.value),
    )
    otel_service_name: str = Field(
        default="fhir-intake",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
        validation_alias=AliasChoices(Setting.OTEL_SERVICE_NAME.value),
    )
    otel_metric_export_interval_ms: int = Field(
        default=60_000,
        ge=100,
        le=3_600_000,
        validation_alias=AliasChoices(Setting.OTEL_METRIC_EXPORT_INTERVAL.value),
    )
    otel_sdk_disabled: bool = Field(
        default=False, validation_alias=AliasChoices(Setting.OTEL_SDK_DISABLED.value)
    )
    # Per signal, as the SDK spells it: "none" turns one off; anything else (otlp,
    # azure_monitor, unset) means the exporter the deployment's settings choose.
    otel_traces_exporter: str = Field(
        default="", max_length=64, validation_alias=AliasChoices(Setting.OTEL_TRACES_EXPORTER.value)
    )
    otel_metrics_exporter: str = Field(
        default="",
        max_length=64,
        validation_alias=AliasChoices(Setting.OTEL_METRICS_EXPORTER.value),
    )
    otel_logs_exporter: str = Field(
        default="", max_length=64, validation_alias=AliasChoices(Setting.OTEL_LOGS_EXPORTER.value)
    )

    @property
    def entra_audiences(self) -> list[str]:
        """The audiences a token may be for (empty: Entra is off)."""
        return [a.strip() for a in (self.entra_audience or "").split(",") if a.strip()]

    @property
    def linking_systems(self) -> frozenset[str]:
        """The deployment's linking systems (a state MPI id, a national identifier): any
        partner's Patients link on them."""
        return frozenset(s.strip() for s in self.link_systems.split(",") if s.strip())

    @property
    def direct_drop_partner_ids(self) -> frozenset[str]:
        """Partners whose ``ingest-drop`` folder alone proves a file theirs (no issued
        upload needed): only for deployments where nobody but operators can write there."""
        return frozenset(p.strip() for p in self.direct_drop_partners.split(",") if p.strip())

    @property
    def public_origins(self) -> tuple[str, ...]:
        """The origins links are written with, the preferred first (``public_url``)."""
        found = [origin_of(u.strip()) for u in self.public_base_url.split(",") if u.strip()]
        if self.website_hostname:
            found.append(f"https://{self.website_hostname.lower()}")
        return tuple(dict.fromkeys(found))

    @field_validator("public_base_url")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        for url in (u.strip() for u in value.split(",") if u.strip()):
            parts = urlsplit(url)
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.path.strip("/"):
                raise ValueError(f"{Setting.PUBLIC_BASE_URL}: {url!r} is not scheme://host[:port]")
        return value

    @property
    def appinsights_client_id(self) -> str | None:
        """The managed identity Application Insights telemetry is sent as
        (``ClientId=...;Authorization=AAD``, as functionapp.bicep writes it); None with no
        client id (the system-assigned identity) or no Entra authentication."""
        for part in (self.appinsights_authentication or "").split(";"):
            name, _, value = part.partition("=")
            if name.strip().lower() == "clientid" and value.strip():
                return value.strip()
        return None

    @property
    def retry_delays(self) -> tuple[int, ...]:
        """Seconds to wait before each retry of a webhook delivery."""
        return tuple(int(part) for part in self.webhook_retry_schedule.split(","))

    @field_validator("consent_time_zone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{Setting.CONSENT_TIME_ZONE} is not an IANA time zone") from exc
        return value

    @field_validator("direct_drop_partners")
    @classmethod
    def _check_partner_ids(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip() and not _PARTNER_ID.match(item.strip()):
                raise ValueError(
                    f"{Setting.DIRECT_DROP_PARTNERS} lists partner ids (commas between), "
                    f"got {item.strip()!r}"
                )
        return value

    @field_validator("storage_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return validate_prefix(value)

    @field_validator(
        "storage_connection",
        "storage_account_name",
        "storage_blob_uri",
        "storage_queue_uri",
        "storage_table_uri",
        "storage_client_id",
        "key_vault_url",
        "fhir_server_url",
        "entra_tenant_id",
        "entra_audience",
        "appinsights_connection",
        "appinsights_authentication",
        "otlp_endpoint",
    )
    @classmethod
    def _blank_is_missing(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @model_validator(mode="after")
    def _storage_is_configured(self) -> Settings:
        if (
            self.storage_connection is None
            and self.storage_account_name is None
            and not (self.storage_blob_uri and self.storage_queue_uri and self.storage_table_uri)
        ):
            raise ValueError(
                f"storage is not configured: set {Setting.STORAGE} to a connection string, "
                f"or {Setting.STORAGE_ACCOUNT_NAME} (identity-based), or all three "
                f"{Setting.STORAGE}__blobServiceUri/__queueServiceUri/__tableServiceUri"
            )
        return self

    @model_validator(mode="after")
    def _entra_is_whole(self) -> Settings:
        if bool(self.entra_tenant_id) != bool(self.entra_audiences):
            raise ValueError(
                f"set both {Setting.ENTRA_TENANT_ID} and {Setting.ENTRA_AUDIENCE} "
                "to accept Entra ID tokens, or neither"
            )
        if not self.entra_tenant_id and not self.api_keys:
            raise ValueError(f"{Setting.API_KEYS} is false and Entra ID is not configured")
        return self

    @model_validator(mode="after")
    def _tokens_go_over_https(self) -> Settings:
        # Both carry a token (the JWKS that validates ours, the bearer token sent to the
        # FHIR server): plain HTTP is for loopback stand-ins in development only.
        for setting, url in (
            (Setting.ENTRA_AUTHORITY, self.entra_authority),
            (Setting.FHIR_SERVER_URL, self.fhir_server_url),
            *((Setting.PUBLIC_BASE_URL, o) for o in self.public_origins),
        ):
            if url is None:
                continue
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"{setting} must be an https:// URL")
            if url.startswith("http://") and self.environment is not Environment.DEVELOPMENT:
                raise ValueError(
                    f"{setting} must be https:// outside development "
                    f"({Setting.ENVIRONMENT}=development allows http:// for local stand-ins)"
                )
        return self

    @property
    def connection_string(self) -> str | None:
        """The storage connection string, with Azurite's shorthand spelled out."""
        if self.storage_connection is None:
            return None
        if self.storage_connection.replace(" ", "").lower() == DEVELOPMENT_STORAGE.lower():
            return development_connection_string()
        return self.storage_connection

    @property
    def uses_identity(self) -> bool:
        """True when storage is reached with Microsoft Entra ID rather than a key."""
        return self.storage_connection is None


def development_connection_string(host: str = "127.0.0.1", blob_port: int = 10000) -> str:
    """Azurite's connection string; queue and table listen on the next two ports."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={_DEV_ACCOUNT};AccountKey={_DEV_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{_DEV_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{blob_port + 1}/{_DEV_ACCOUNT};"
        f"TableEndpoint=http://{host}:{blob_port + 2}/{_DEV_ACCOUNT};"
    )


def load_settings() -> Settings:
    """Read and validate settings from the environment.

    Raises:
        ConfigurationError: with every problem in one message, naming the settings.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc
