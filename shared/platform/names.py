"""The one place that names every container, queue, table and app setting.

Code asks for storage by these logical names; ``physical_name`` turns one into the
name used on the account, adding the optional ``INTAKE_STORAGE_PREFIX`` so test runs
(and several developers on one Azurite) never share a queue or a table.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = [
    "LOCAL_ONLY_SETTINGS",
    "LOCAL_ONLY_TABLES",
    "PLATFORM_SETTINGS",
    "POISON_SUFFIX",
    "Container",
    "PlatformContainer",
    "Queue",
    "Setting",
    "Table",
    "physical_name",
    "poison_queue",
    "validate_prefix",
]

POISON_SUFFIX = "-poison"
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,15}\Z")


class Container(StrEnum):
    """Blob containers."""

    INGEST_DROP = "ingest-drop"  # partners' batch files: {partner}/uploads/{upload id}/{file}
    RAW = "raw"  # immutable copies of what partners sent
    NORMALIZED = "normalized"  # FHIR R4 transaction Bundles before consent
    FHIR = "fhir"  # the unified record: resources and their history
    QUARANTINE = "quarantine"  # rejected records with their OperationOutcome
    REPORTS = "reports"  # per-file batch reports
    AUDIT = "audit"  # append-only AuditEvents
    EXPORTS = "exports"  # bulk export NDJSON
    DEADLETTER = "deadletter"  # webhook deliveries that ran out of attempts
    CONSENTS = "consents"  # the consent index's Consent resources, by id
    INTAKE_REQUESTS = "intake-requests"  # payloads internal producers refer to: {partner}/...


class PlatformContainer(StrEnum):
    """Containers the Azure platform writes, not our code; the Bicep provisions them too."""

    APP_PACKAGE = "app-package"  # Flex Consumption deployment packages
    EVENTGRID_DEADLETTER = "eventgrid-deadletter"  # BlobCreated events Event Grid gave up on


class Queue(StrEnum):
    """Storage queues between stages; each has a ``-poison`` twin (see ``poison_queue``)."""

    BLOB_CREATED = "blob-created"  # Event Grid BlobCreated events for ingest-drop
    INTAKE_REQUESTS = "intake-requests"  # internal producers' submissions (intake-request schema)
    NORMALIZE = "normalize"
    CONSENT_CHECK = "consent-check"
    STORE = "store"  # bundle.permitted envelopes for the record store
    EXPORT = "export"  # bulk export jobs to run
    NOTIFY = "notify"
    DELIVER = "deliver"


class Table(StrEnum):
    """Tables for small state (names are alphanumeric: a Table service rule)."""

    INGESTIONS = "ingestions"
    IDEMPOTENCY = "idempotency"
    PARTNERS = "partners"
    SUBSCRIPTIONS = "subscriptions"  # webhook subscriptions, one row each
    CHECKPOINTS = "checkpoints"
    CONSENT_INDEX = "consentindex"  # patient key -> the patient's consents
    RESOURCES = "resources"  # (type, id) -> current version of each stored resource
    COMPARTMENTS = "compartments"  # (patient id, type|id): a patient's resources
    IDENTIFIERS = "identifiers"  # (hash of system|value, Patient|id): Patients by identifier
    EXPORT_JOBS = "exportjobs"  # (partner, job id): bulk export requests and their state
    DELIVERIES = "deliveries"  # (subscription id, type|id|version): one event and its attempts
    UPLOADS = "uploads"  # (partner, upload id): batch uploads issued, ids and times only
    CONSOLE_SESSIONS = "consolesessions"  # (hash of the session token, ""): console sign-ins
    DEVHOST_BLOB_EVENTS = "devhostblobevents"  # local host only: blobs already announced


LOCAL_ONLY_TABLES: frozenset[Table] = frozenset({Table.DEVHOST_BLOB_EVENTS})
"""Tables only the local host uses; infrastructure does not provision them."""


class Setting(StrEnum):
    """App setting names, spelled as Azure Functions and the Azure SDKs expect them."""

    STORAGE = "AzureWebJobsStorage"
    STORAGE_ACCOUNT_NAME = "AzureWebJobsStorage__accountName"
    STORAGE_BLOB_URI = "AzureWebJobsStorage__blobServiceUri"
    STORAGE_QUEUE_URI = "AzureWebJobsStorage__queueServiceUri"
    STORAGE_TABLE_URI = "AzureWebJobsStorage__tableServiceUri"
    STORAGE_CLIENT_ID = "AzureWebJobsStorage__clientId"
    KEY_VAULT_URL = "KEY_VAULT_URL"
    STORAGE_PREFIX = "INTAKE_STORAGE_PREFIX"
    ENVIRONMENT = "INTAKE_ENVIRONMENT"
    HTTP_MAX_BYTES = "INTAKE_HTTP_MAX_BYTES"
    MAX_DECOMPRESSED_BYTES = "INTAKE_MAX_DECOMPRESSED_BYTES"
    DEDUP_WINDOW_HOURS = "INTAKE_DEDUP_WINDOW_HOURS"
    SWEEP_SCHEDULE = "INTAKE_SWEEP_SCHEDULE"  # NCRONTAB for the raw-payload sweeper
    DROP_CHUNK_RECORDS = "INTAKE_DROP_CHUNK_RECORDS"
    UPLOAD_SAS_MINUTES = "INTAKE_UPLOAD_SAS_MINUTES"  # how long an upload URL may be used
    DIRECT_DROP_PARTNERS = "INTAKE_DIRECT_DROP_PARTNERS"  # folders trusted without an upload
    DROP_MAX_RECORD_BYTES = "INTAKE_DROP_MAX_RECORD_BYTES"  # one line, message, row, document
    DROP_MAX_DECOMPRESSED_BYTES = "INTAKE_DROP_MAX_DECOMPRESSED_BYTES"  # a gzip drop in all
    DROP_MAX_INFLATE_RATIO = "INTAKE_DROP_MAX_INFLATE_RATIO"  # ... and per byte of the file
    EXPORT_SLICE_SECONDS = "INTAKE_EXPORT_SLICE_SECONDS"  # one export message's work, in time
    CONSENT_POLICY = "INTAKE_CONSENT_POLICY"  # opt-out (default) or opt-in
    CONSENT_PURPOSE = "INTAKE_CONSENT_PURPOSE"  # purpose of use for collecting (TREAT)
    CONSENT_SENSITIVE_LABELS = "INTAKE_CONSENT_SENSITIVE_LABELS"  # comma-separated codes
    CONSENT_TIME_ZONE = "INTAKE_CONSENT_TIME_ZONE"  # for dates without zone in consents
    LINK_SYSTEMS = "INTAKE_LINK_SYSTEMS"  # identifier systems every partner may link on
    SOURCE_TIME_SKEW_SECONDS = "INTAKE_SOURCE_TIME_SKEW_SECONDS"  # a source clock's allowance
    PARTNER_CACHE_SECONDS = "INTAKE_PARTNER_CACHE_SECONDS"  # partner and key rows kept this long
    PUBLIC_BASE_URL = "INTAKE_PUBLIC_BASE_URL"  # the origins our links use (not Host)
    WEBSITE_HOSTNAME = "WEBSITE_HOSTNAME"  # set by App Service: the app's default host name
    FHIR_SERVER_URL = "FHIR_SERVER_URL"  # an existing FHIR server the store also feeds
    FHIR_SERVER_AUTH = "FHIR_SERVER_AUTH"  # managed-identity (default) or none
    WEBHOOK_RETRY_SCHEDULE = (
        "INTAKE_WEBHOOK_RETRY_SCHEDULE"  # seconds between attempts, comma-separated
    )
    WEBHOOK_TIMEOUT_SECONDS = "INTAKE_WEBHOOK_TIMEOUT_SECONDS"  # connect and read, per attempt
    LOCAL_SECRETS_FILE = "INTAKE_LOCAL_SECRETS_FILE"  # development only: secrets without Key Vault
    ENTRA_TENANT_ID = "INTAKE_AUTH_ENTRA_TENANT_ID"  # set: Entra ID bearer tokens are accepted
    ENTRA_AUDIENCE = "INTAKE_AUTH_ENTRA_AUDIENCE"  # our API's app id URI or client id (commas)
    ENTRA_AUTHORITY = "INTAKE_AUTH_ENTRA_AUTHORITY"  # https://login.microsoftonline.com
    API_KEYS = "INTAKE_AUTH_API_KEYS"  # true (default) or false: partner API keys accepted
    LOG_FORMAT = "INTAKE_LOG_FORMAT"  # local host and CLI: text (default) or json lines
    # Read by the Functions host and the Azure SDKs rather than by ``Settings``:
    STORAGE_CREDENTIAL = "AzureWebJobsStorage__credential"  # managedidentity
    AZURE_CLIENT_ID = "AZURE_CLIENT_ID"  # the user-assigned identity DefaultAzureCredential uses
    APPINSIGHTS_CONNECTION = "APPLICATIONINSIGHTS_CONNECTION_STRING"  # no key: local auth is off
    APPINSIGHTS_AUTHENTICATION = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"  # Entra ID telemetry
    # OpenTelemetry outside Azure (shared/platform/telemetry.py); the SDK itself also reads
    # the other standard OTEL_* variables (OTEL_BSP_SCHEDULE_DELAY, OTEL_EXPORTER_OTLP_HEADERS).
    OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"  # OTLP/HTTP collector base URL: telemetry on
    OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"  # service.name (default fhir-intake)
    OTEL_METRIC_EXPORT_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"  # milliseconds between exports
    OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED"  # true: no telemetry whatever else is set
    OTEL_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"  # none: no spans (the others still go)
    OTEL_METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"  # none: no metrics
    OTEL_LOGS_EXPORTER = "OTEL_LOGS_EXPORTER"  # none: no log records (the largest volume)


# Set by the platform (App Service), never by our Bicep.
PLATFORM_SETTINGS: frozenset[Setting] = frozenset({Setting.WEBSITE_HOSTNAME})
LOCAL_ONLY_SETTINGS: frozenset[Setting] = frozenset(
    {
        Setting.STORAGE,
        Setting.STORAGE_PREFIX,
        Setting.LOCAL_SECRETS_FILE,
        Setting.LOG_FORMAT,
        Setting.OTLP_ENDPOINT,
        Setting.OTEL_SERVICE_NAME,
        Setting.OTEL_METRIC_EXPORT_INTERVAL,
        Setting.OTEL_SDK_DISABLED,
        Setting.OTEL_TRACES_EXPORTER,
        Setting.OTEL_METRICS_EXPORTER,
        Setting.OTEL_LOGS_EXPORTER,
    }
)
"""Settings infrastructure never sets: a storage connection string (Azure uses identities),
test isolation, development conveniences, and OpenTelemetry's OTLP settings (in Azure
telemetry goes to Application Insights, which the Bicep names)."""


def poison_queue(queue: str) -> str:
    """The poison twin of a queue, as the Functions runtime names it."""
    return f"{queue}{POISON_SUFFIX}"


def validate_prefix(prefix: str) -> str:
    """Check a storage prefix: lowercase letters and digits, starting with a letter.

    Raises:
        ValueError: the prefix would make an invalid container, queue or table name.
    """
    if prefix and not _PREFIX.match(prefix):
        raise ValueError(
            f"{Setting.STORAGE_PREFIX} must be 1-16 lowercase letters or digits "
            f"starting with a letter, got {prefix!r}"
        )
    return prefix


def physical_name(name: str, prefix: str, *, table: bool = False) -> str:
    """The name on the storage account for a logical name.

    Containers and queues join prefix and name with a hyphen; tables allow only
    letters and digits, so they are joined directly.
    """
    if not prefix:
        return name
    return f"{prefix}{name}" if table else f"{prefix}-{name}"
