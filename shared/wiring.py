"""The composition root: builds settings, clients and services once, for every function.

Functions ask here for what they need; tests call ``reset_caches`` after changing the
environment. Constructors do no I/O, so importing the app never touches storage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from shared.consent.adapters import TableConsentIndex
from shared.consent.models import Code, Policy, PolicyMode
from shared.consent.questions import QuestionGate
from shared.consent.service import ConsentService
from shared.consent.stage import ConsentStage
from shared.consent.vocabulary import ACT_REASON, DEFAULT_SENSITIVE_LABELS
from shared.console import ConsoleSessions, Figures, IngestionDetail, IngestionSearch, PipelineView
from shared.console.adapters.storage import StorageConsoleReader, TableIngestionRows
from shared.console.adapters.table_sessions import TableSessionStore
from shared.console.models import DeadLetterGroup
from shared.console.pipeline import DEAD_COUNTED
from shared.intake.adapters import (
    AccountKeyUploadSigner,
    TableUploadLog,
    UserDelegationUploadSigner,
)
from shared.intake.drops import DropProcessor, decode_drop
from shared.intake.mllp_intake import MllpIntake
from shared.intake.operations import replay_poison
from shared.intake.queue_requests import QueueIntake
from shared.intake.submissions import SubmissionService
from shared.intake.uploads import UploadService, UploadSigner
from shared.normalize.stage import NormalizeStage
from shared.notify.adapters import (
    BlobDeadLetters,
    HttpWebhookTransport,
    TableDeliveryLog,
    TableSubscriptionStore,
)
from shared.notify.criteria import parse_criteria
from shared.notify.delivery import DeliveryStage
from shared.notify.errors import SubscriptionInvalidError
from shared.notify.models import SubscriptionStatus
from shared.notify.replay import replay_dead_letters
from shared.notify.schedule import RetrySchedule
from shared.notify.stage import NotifyStage
from shared.notify.subscriptions import SubscriptionService
from shared.pipeline.journey import TableIngestionLog
from shared.pipeline.runner import QueueStage
from shared.platform import poison
from shared.platform.adapters import (
    BlobAuditLog,
    BlobPayloadStore,
    FileSecretStore,
    KeyVaultSecretStore,
    QueueEnvelopeSender,
)
from shared.platform.envelope import Envelope, EnvelopeKind
from shared.platform.errors import ConfigurationError
from shared.platform.health import HealthReport, check_health
from shared.platform.names import Container, Queue, Setting, Table
from shared.platform.secrets import SecretStore
from shared.platform.settings import Environment, Settings, load_settings
from shared.platform.storage import StorageClients, build_storage_clients
from shared.platform.telemetry import (
    Hop,
    configure_telemetry,
    current_traceparent,
    note_outcome,
    server_span,
)
from shared.records.adapters import BlobResourceStore, TablePersonIndex
from shared.records.adapters.export_files import ExportFiles, TableExportJobs, read_export_file
from shared.records.adapters.fhir_token import managed_identity_token
from shared.records.everything import PatientEverything
from shared.records.export import Exporter
from shared.records.forwarding import FhirForwarder
from shared.records.models import ExportJob
from shared.records.people import People
from shared.records.purge import Purger
from shared.records.reads import RecordReader
from shared.records.search import RecordSearch
from shared.records.stage import StoreStage
from shared.security.access_audit import AccessAudit
from shared.security.audit import AuditQuery
from shared.security.callers import Authenticator
from shared.security.partners import TablePartnerDirectory
from shared.security.tokens import EntraTokenValidator, JwksKeys
from shared.security.trust import TrustPolicy

__all__ = [
    "audit_log",
    "audit_query",
    "authenticator",
    "consent_policy",
    "consent_service",
    "consent_stage",
    "console_access_audit",
    "console_detail",
    "console_figures",
    "console_pipeline",
    "console_search",
    "console_sessions",
    "dead_letters",
    "deliveries",
    "delivery_stage",
    "drop_processor",
    "envelope_sender",
    "export_file",
    "export_jobs",
    "exporter",
    "health",
    "ingestion_log",
    "normalize_stage",
    "notify_stage",
    "partners",
    "patient_everything",
    "people",
    "person_index",
    "poison_depths",
    "purger",
    "queue_depths",
    "queue_stage",
    "record_reader",
    "record_search",
    "record_store",
    "request_span",
    "reset_caches",
    "secrets",
    "settings",
    "storage",
    "store_stage",
    "submissions",
    "subscription_service",
    "subscription_store",
    "trust_policy",
    "uploads",
]


@cache
def settings() -> Settings:
    """The app's settings, validated on first use. Telemetry starts with them (once per
    process), so every function, HTTP, queue or timer, has it before its first span:
    each asks for settings, or for something built from them, before any work."""
    config = load_settings()
    configure_telemetry(config)
    return config


@cache
def storage() -> StorageClients:
    """Clients for the app's storage account, shared by every invocation."""
    return build_storage_clients(settings())


@cache
def ingestion_log() -> TableIngestionLog:
    """Each ingestion's journey, one row per (partner, correlation id)."""
    return TableIngestionLog(storage().table_client(Table.INGESTIONS))


def poison_depths() -> dict[str, int]:
    """Messages waiting in each poison queue (see ``poison.py``)."""
    return poison.poison_depths(storage())


def queue_depths() -> dict[str, int]:
    """Messages waiting in each stage queue (see ``poison.py``)."""
    return poison.queue_depths(storage())


def request_span(
    name: str, traceparent: str | None, method: str, route: str
) -> contextlib.AbstractContextManager[Hop]:
    """The span of one HTTP request (``telemetry.server_span``), once telemetry is wired."""
    settings()
    return server_span(name, traceparent, method, route)


@cache
def _probe_clients() -> StorageClients:
    return build_storage_clients(settings(), retry_total=0, connection_timeout=2, read_timeout=5)


@cache
def partners() -> TablePartnerDirectory:
    """The partner directory."""
    return TablePartnerDirectory(
        storage().table_client(Table.PARTNERS), cache_seconds=settings().partner_cache_seconds
    )


@cache
def authenticator() -> Authenticator:
    """Who calls: Entra ID tokens (when configured) and partner API keys (unless off)."""
    config = settings()
    entra = None
    if config.entra_tenant_id:
        authority = config.entra_authority.rstrip("/")
        keys = JwksKeys(
            f"{authority}/{config.entra_tenant_id}/discovery/v2.0/keys",
            httpx.Client(timeout=httpx.Timeout(5.0), trust_env=False),
        )
        entra = EntraTokenValidator(
            config.entra_tenant_id, config.entra_audiences, keys, authority=authority
        )
    return Authenticator(partners(), entra, api_keys=config.api_keys)


@cache
def normalize_stage() -> NormalizeStage:
    """The normalize stage, wired to storage."""
    clients = storage()
    return NormalizeStage(
        BlobPayloadStore(clients),
        QueueEnvelopeSender(clients),
        TableIngestionLog(clients.table_client(Table.INGESTIONS)),
        partners(),
    )


@cache
def submissions() -> SubmissionService:
    """Partner submissions over HTTP."""
    config = settings()
    clients = storage()
    return SubmissionService(
        clients,
        TableIngestionLog(clients.table_client(Table.INGESTIONS)),
        max_bytes=config.http_max_bytes,
        max_decompressed=config.max_decompressed_bytes,
        dedup_window=timedelta(hours=config.dedup_window_hours),
        audit=BlobAuditLog(clients),
    )


@cache
def queue_intake() -> QueueIntake:
    """Internal producers' submissions from the intake-requests queue."""
    return QueueIntake(storage(), submissions(), partners())


def mllp_intake(partner_id: str, enhanced: bool = False) -> MllpIntake:
    """One MLLP listener's intake: frames submitted as ``partner_id``."""
    return MllpIntake(submissions(), partners(), ingestion_log(), partner_id, enhanced=enhanced)


@cache
def uploads() -> UploadService:
    """Batch uploads: URLs for partners, and whose a dropped file is. In Azure (identity-
    based storage) the URLs are user delegation SAS; with a connection string (Azurite)
    they are signed with its account key, since Azurite gives delegation keys only to
    OAuth callers over HTTPS."""
    config = settings()
    clients = storage()
    drop = clients.container(Container.INGEST_DROP)
    signer: UploadSigner = (
        UserDelegationUploadSigner(clients.blob, drop)
        if config.uses_identity
        else AccountKeyUploadSigner(drop)
    )
    return UploadService(
        signer,
        TableUploadLog(clients.table_client(Table.UPLOADS)),
        partners(),
        BlobAuditLog(clients),
        lifetime=timedelta(minutes=config.upload_sas_minutes),
        direct_partners=config.direct_drop_partner_ids,
    )


@cache
def drop_processor() -> DropProcessor:
    """Batch files dropped into ingest-drop."""
    clients = storage()
    config = settings()
    return DropProcessor(
        clients,
        TableIngestionLog(clients.table_client(Table.INGESTIONS)),
        uploads(),
        max_record_bytes=config.drop_max_record_bytes,
        max_decompressed_bytes=config.drop_max_decompressed_bytes,
        max_inflate_ratio=config.drop_max_inflate_ratio,
        chunk_records=config.drop_chunk_records,
    )


@cache
def consent_policy() -> Policy:
    """The deployment's default consent policy, from settings."""
    return consent_policy_for(settings())


def consent_policy_for(config: Settings) -> Policy:
    """The consent policy some settings give: an unset label list means the default labels,
    an empty one means none."""
    labels = config.consent_sensitive_labels
    return Policy(
        mode=PolicyMode(config.consent_policy),
        sensitive_labels=frozenset(x.strip() for x in labels.split(",") if x.strip())
        if labels is not None
        else DEFAULT_SENSITIVE_LABELS,
        zone=ZoneInfo(config.consent_time_zone),
    )


@cache
def _consent_index() -> TableConsentIndex:
    clients = storage()
    return TableConsentIndex(
        clients.table_client(Table.CONSENT_INDEX), clients.container(Container.CONSENTS)
    )


@cache
def trust_policy() -> TrustPolicy:
    """The deployment's side of the trust model: linking systems, source clock skew."""
    config = settings()
    return TrustPolicy(
        link_systems=config.linking_systems,
        source_time_skew=timedelta(seconds=config.source_time_skew_seconds),
    )


@cache
def audit_log() -> BlobAuditLog:
    """The append-only audit trail."""
    return BlobAuditLog(storage())


@cache
def person_index() -> TablePersonIndex:
    """Patients by identifier, links, relationships and unlinks."""
    clients = storage()
    return TablePersonIndex(
        clients.table_client(Table.COMPARTMENTS), clients.table_client(Table.IDENTIFIERS)
    )


@cache
def people() -> People:
    """Persons across partners' Patients, under the trust model."""
    return People(person_index(), record_store(), partners().get, trust_policy(), audit_log())


def _holders(partner: str, system: str, value: str) -> list[str]:
    """The partner's own stored Patients that carry an identifier now (the index also
    lists those that carried it once: an MRN corrected or reused)."""
    found = []
    for holder in person_index().holders(system, value):
        if holder.partner != partner:
            continue
        current = record_store().current_patient(holder.patient_id) or {}
        if any(
            (i.get("system"), i.get("value")) == (system, value)
            for i in current.get("identifier") or ()
        ):
            found.append(holder.patient_id)
    return found


@cache
def consent_stage() -> ConsentStage:
    """The consent-check stage, wired to storage."""
    clients = storage()
    return ConsentStage(
        BlobPayloadStore(clients),
        TableIngestionLog(clients.table_client(Table.INGESTIONS)),
        _consent_index(),
        partners(),
        BlobAuditLog(clients),
        record_store(),
        consent_policy(),
        Code(ACT_REASON, settings().consent_purpose),
        people(),
        _holders,
        store_stage(),
        trust_policy(),
    )


@cache
def consent_questions() -> QuestionGate:
    """Who may ask for a consent decision about whom (``$evaluate``, CDS Hooks)."""

    def holders(system: str, value: str) -> list[str]:
        return [h.patient_id for h in person_index().holders(system, value)]

    return QuestionGate(people(), holders)


@cache
def consent_service() -> ConsentService:
    """Consent decisions on request (HTTP evaluation, reads, notifications)."""
    return ConsentService(_consent_index(), BlobAuditLog(storage()), consent_policy())


@cache
def record_store() -> BlobResourceStore:
    """The unified record."""
    clients = storage()
    return BlobResourceStore(
        clients.table_client(Table.RESOURCES),
        clients.table_client(Table.COMPARTMENTS),
        clients.container(Container.FHIR),
    )


@cache
def record_reader() -> RecordReader:
    """Consent-filtered reads of the record."""
    return RecordReader(record_store(), consent_service(), consent_policy().zone, people())


@cache
def record_search() -> RecordSearch:
    """Searches of the record, consent-filtered like reads."""
    return RecordSearch(_SearchIndex(), record_reader(), consent_policy().zone)


class _SearchIndex:
    """What searches read: compartments from the record, Patients from the person index."""

    def compartment(self, patient_id: str, resource_type: str, after: str | None = None) -> Any:
        return record_store().compartment(patient_id, resource_type, after)

    def patients_with_identifier(self, system: str, value: str) -> list[str]:
        return person_index().patients_with_identifier(system, value)


@cache
def patient_everything() -> PatientEverything:
    """``Patient/{id}/$everything``, consent-filtered like reads."""
    return PatientEverything(record_store(), record_reader())


@cache
def envelope_sender() -> QueueEnvelopeSender:
    """Envelopes onto stage queues."""
    return QueueEnvelopeSender(storage())


@cache
def export_jobs() -> TableExportJobs:
    """Bulk export jobs."""
    return TableExportJobs(storage().table_client(Table.EXPORT_JOBS))


@cache
def exporter() -> Exporter:
    """Runs bulk export jobs."""
    clients = storage()
    return Exporter(
        record_store(),
        _consent_index(),
        partners(),
        export_jobs(),
        ExportFiles(clients.container(Container.EXPORTS), clients.container(Container.AUDIT)),
        consent_policy(),
        resume=queue_export,
        people=people(),
    )


def queue_export(job: ExportJob) -> None:
    """Queue a bulk export job's next (or first) slice."""
    envelope_sender().send(
        Queue.EXPORT,
        Envelope(
            correlation_id=job.id,
            partner=job.partner,
            kind=EnvelopeKind.EXPORT_REQUESTED,
            traceparent=current_traceparent(),  # a job's slices: one trace
        ),
    )


def export_file(name: str) -> bytes | None:
    """The bytes of an export file, or None."""
    chunks = read_export_file(storage().container(Container.EXPORTS), name)
    return None if chunks is None else b"".join(chunks)


@cache
def purger() -> Purger:
    """Erases patients."""
    clients = storage()
    return Purger(
        record_store(),
        _consent_index(),
        BlobPayloadStore(clients),
        BlobAuditLog(clients),
        person_index(),
    )


@cache
def forwarder() -> FhirForwarder | None:
    """The existing FHIR server the store also feeds, if ``FHIR_SERVER_URL`` names one."""
    config = settings()
    if not config.fhir_server_url:
        return None
    # No proxy from the environment: the managed-identity token must go to this server only.
    client = httpx.Client(timeout=httpx.Timeout(10.0, read=60.0), trust_env=False)
    token = (
        managed_identity_token(config.fhir_server_url)
        if config.fhir_server_auth == "managed-identity"
        else None
    )
    return FhirForwarder(config.fhir_server_url, client, token)


@cache
def store_stage() -> StoreStage:
    """The store stage, wired to storage."""
    clients = storage()
    return StoreStage(
        BlobPayloadStore(clients),
        QueueEnvelopeSender(clients),
        TableIngestionLog(clients.table_client(Table.INGESTIONS)),
        record_store(),
        people(),
        trust_policy(),
        forwarder=forwarder(),
    )


@cache
def secrets() -> SecretStore:
    """Key Vault when ``KEY_VAULT_URL`` is set; a local file in development; else an error.

    Raises:
        ConfigurationError: production without a Key Vault.
    """
    config = settings()
    if config.key_vault_url:
        url = config.key_vault_url
        return KeyVaultSecretStore(lambda: SecretClient(url, DefaultAzureCredential()))
    if config.environment is Environment.DEVELOPMENT:
        return FileSecretStore(Path(config.local_secrets_file))
    raise ConfigurationError(f"{Setting.KEY_VAULT_URL} is required outside development")


@cache
def subscription_store() -> TableSubscriptionStore:
    """Webhook subscriptions."""
    return TableSubscriptionStore(storage().table_client(Table.SUBSCRIPTIONS))


@cache
def deliveries() -> TableDeliveryLog:
    """One row per (subscription, event)."""
    return TableDeliveryLog(storage().table_client(Table.DELIVERIES))


@cache
def dead_letters() -> BlobDeadLetters:
    """Deliveries that ran out of attempts."""
    return BlobDeadLetters(storage().container(Container.DEADLETTER))


@cache
def subscription_service() -> SubscriptionService:
    """The subscription API."""
    return SubscriptionService(
        subscription_store(),
        secrets(),
        partners().get,
        development=settings().environment is Environment.DEVELOPMENT,
        event_count=deliveries().count,
        audit=BlobAuditLog(storage()),
    )


@cache
def notify_stage() -> NotifyStage:
    """The notify stage: stored changes matched against subscriptions."""
    clients = storage()
    return NotifyStage(
        BlobPayloadStore(clients),
        record_store(),
        subscription_store(),
        deliveries(),
        QueueEnvelopeSender(clients),
        TableIngestionLog(clients.table_client(Table.INGESTIONS)),
        people(),
        partners().get,
    )


@cache
def delivery_stage() -> DeliveryStage:
    """The deliver stage: signed webhook POSTs with retries."""
    config = settings()
    return DeliveryStage(
        subscription_store(),
        deliveries(),
        dead_letters(),
        record_reader(),
        partners(),
        secrets(),
        HttpWebhookTransport(
            development=config.environment is Environment.DEVELOPMENT,
            timeout=config.webhook_timeout_seconds,
        ),
        QueueEnvelopeSender(storage()),
        RetrySchedule(config.retry_delays),
    )


@cache
def access_audit() -> AccessAudit:
    """The trail of refused requests (401, 403, refused consent questions)."""
    return AccessAudit(audit_log())


@cache
def console_access_audit() -> AccessAudit:
    """Refusals at the console, on a budget of their own: its sign-in is anonymous to the
    Functions host, and a flood of bad credentials there must not use up the refusal
    events the API's 401s and 403s are written with."""
    return AccessAudit(audit_log())


@cache
def audit_query() -> AuditQuery:
    """The auditor's search over the audit trail."""
    return AuditQuery(BlobAuditLog(storage()))


def health() -> HealthReport:
    """Probe storage now (never cached: a health check must tell the present)."""
    return check_health(_probe_clients())


@cache
def console_sessions() -> ConsoleSessions:
    """Console sign-ins, kept in their own table."""
    return ConsoleSessions(
        TableSessionStore(storage().table_client(Table.CONSOLE_SESSIONS)),
        partners().get,
        partners().key_live,
    )


@cache
def _console_rows() -> TableIngestionRows:
    return TableIngestionRows(storage().table_client(Table.INGESTIONS))


@cache
def console_search() -> IngestionSearch:
    """Ingestions by partner, time, status, message id or patient identifier."""
    return IngestionSearch(
        _console_rows(),
        person_index().holders,
        record_store().ingestions_of,
        audit_log(),
        lambda: datetime.now(UTC),
    )


def _subscription_types() -> list[tuple[str, str, str]]:
    """(id, owner, resource type) of every subscription whose criteria can be read."""
    found = []
    for sub in subscription_store().list():
        try:
            found.append((sub.id, sub.owner, parse_criteria(sub.criteria).resource_type))
        except SubscriptionInvalidError:
            continue  # the notify stage says so on the subscription
    return found


@cache
def console_detail() -> IngestionDetail:
    """One ingestion's journey, and its payload for operators."""
    return IngestionDetail(
        _console_rows(),
        submissions().application_ack,
        _subscription_types,
        deliveries().get,
        StorageConsoleReader(storage()),
        audit_log(),
        lambda: datetime.now(UTC),
    )


def _dead_letter_groups() -> list[DeadLetterGroup]:
    reader = StorageConsoleReader(storage())
    return [
        DeadLetterGroup(
            sub.id, sub.owner, len(reader.names(Container.DEADLETTER, f"{sub.id}/", DEAD_COUNTED))
        )
        for sub in subscription_store().list()
    ]


def _redeliver(subscription_id: str) -> int | None:
    """Replay a subscription's dead letters as ``$replay`` does; None if it is gone or off."""
    sub = subscription_store().get(subscription_id)
    if sub is None or sub.status is SubscriptionStatus.OFF:
        return None
    return replay_dead_letters(sub.id, dead_letters(), deliveries(), envelope_sender())


@cache
def console_pipeline() -> PipelineView:
    """Poison queues and dead letters, and their replays."""
    return PipelineView(
        poison_depths,
        StorageConsoleReader(storage()),
        lambda queue, limit: replay_poison(storage(), queue, limit),
        _dead_letter_groups,
        _redeliver,
        audit_log(),
        lambda: datetime.now(UTC),
    )


@cache
def console_figures() -> Figures:
    """Per-partner figures for the last hour and day."""
    return Figures(_console_rows(), lambda: datetime.now(UTC))


def _process_drop(event: Any) -> object:
    """One dropped file, its outcome (stored, partial, rejected, gone) on its span: the
    chunks' journey rows are other ingestions'."""
    report = drop_processor().process(event)
    note_outcome(report.status)
    return report


def queue_stage(queue: Queue) -> QueueStage[Any]:
    """How one queue's messages are run (``shared.pipeline.runner``); the stages
    themselves are built on first use."""
    envelope = Envelope.from_bytes
    if queue is Queue.BLOB_CREATED:
        return QueueStage("drop", queue, decode_drop, _process_drop)
    if queue is Queue.EXPORT:
        budget = settings().export_slice_seconds
        return QueueStage(
            "export",
            queue,
            envelope,
            lambda e: exporter().run(e.partner, e.correlation_id, budget),
            give_up=lambda e, exc: exporter().fail(e.partner, e.correlation_id, type(exc).__name__),
            journey=False,  # a job, not an ingestion: its own row says it failed
        )
    stages: dict[Queue, tuple[str, Callable[[Envelope], object]]] = {
        Queue.NORMALIZE: ("normalize", lambda e: normalize_stage().handle(e)),
        Queue.CONSENT_CHECK: ("consent", lambda e: consent_stage().handle(e)),
        Queue.STORE: ("store", lambda e: store_stage().handle(e)),
        Queue.NOTIFY: ("notify", lambda e: notify_stage().handle(e)),
        Queue.DELIVER: ("deliver", lambda e: delivery_stage().handle(e)),
    }
    name, handle = stages[queue]
    return QueueStage(name, queue, envelope, handle)


def reset_caches() -> None:
    """Forget every cached object, so the next call reads settings afresh."""
    for factory in (
        settings,
        storage,
        _probe_clients,
        partners,
        authenticator,
        audit_query,
        access_audit,
        consent_questions,
        normalize_stage,
        submissions,
        uploads,
        drop_processor,
        consent_policy,
        trust_policy,
        audit_log,
        person_index,
        people,
        _consent_index,
        consent_stage,
        consent_service,
        record_store,
        record_reader,
        record_search,
        patient_everything,
        envelope_sender,
        export_jobs,
        exporter,
        purger,
        forwarder,
        store_stage,
        secrets,
        subscription_store,
        deliveries,
        dead_letters,
        subscription_service,
        notify_stage,
        delivery_stage,
        ingestion_log,
        console_sessions,
        console_access_audit,
        _console_rows,
        console_search,
        console_detail,
        console_pipeline,
        console_figures,
    ):
        factory.cache_clear()
