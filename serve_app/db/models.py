"""SQLAlchemy 2 models for limner's metadata database.

The same models run on SQLite (the default, one file) and PostgreSQL (at scale), so every column uses a
portable type: ``sqlalchemy.Uuid`` keys, ``JSON`` documents, string-backed enums (``native_enum=False``,
so no PostgreSQL ``CREATE TYPE`` to migrate) and :class:`UTCDateTime`, which always hands back aware UTC
datetimes whatever the driver returns.

Tables:

- ``images``: every stored image. A derived image (an upscale, an overlay render) is a new row whose
  ``parent_id`` points at its source and whose ``version`` counts up from the source's.
- ``themes`` and ``theme_versions``: named styles and their immutable versions (serve_app/themes/).
- ``subjects``: recurring subjects of portraits, creatures and items (their seed base and appearance).
- ``overlays``: defined now; its API comes in a later issue.
- ``jobs``: every accepted request, durable before it is acknowledged (see ``serve_app.jobs``).

``jobs``, ``images``, ``themes``, ``subjects`` and ``overlays`` carry ``tenant`` (migration 0010): whose row it is
(``""``, the open tenant, for rows made unscoped); the stores filter on it (serve_app/auth/tenant.py). Child rows
(events, versions, deliveries) follow their parent.
- ``job_events``: the per-job event log that Server-Sent Events resume from (``Last-Event-ID`` is ``seq``).
- ``api_keys``: hashed API keys, their scopes, tenant and limits (serve_app/auth).
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "FINAL_STATUSES",
    "ApiKey",
    "Base",
    "Image",
    "Job",
    "JobEvent",
    "JobSource",
    "JobStatus",
    "Overlay",
    "RemoteCall",
    "Subject",
    "Theme",
    "ThemeVersion",
    "UTCDateTime",
    "WebhookDelivery",
    "utcnow",
]

# Explicit constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive UTC text
    (which sorts correctly) and read back as aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given; limner stores aware UTC datetimes only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JobStatus(enum.StrEnum):
    """Where a job is in its life. ``succeeded``, ``failed``, ``cancelled`` and ``dead`` are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD = "dead"

    @property
    def is_final(self) -> bool:
        """Whether no further transition can happen."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DEAD})
"""The job statuses after which nothing changes: the one set every module uses."""


class JobSource(enum.StrEnum):
    """Which door a job came in through."""

    HTTP = "http"
    ZMQ = "zmq"


def _str_enum(enum_cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base carrying the shared naming convention."""

    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), uuid.UUID: Uuid()}


class Theme(Base):
    """A named visual style (see :mod:`serve_app.themes`). The row is the theme's identity and its current
    version; every version's data lives, immutable, in ``theme_versions``. ``style`` is a copy of the
    current version's data (for listing without a join); ``parent_id`` mirrors the current version's parent,
    so a theme with children can be found. Built-in themes (``builtin``) come from a pack in the repo."""

    __tablename__ = "themes"
    # A name is unique per tenant (migration 0010): a tenant's theme shadows a shared one of the same name.
    __table_args__ = (Index("uq_themes_tenant_name", "tenant", "name", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant: Mapped[str] = mapped_column(String(64), default="", server_default="")
    name: Mapped[str] = mapped_column(String(128))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("themes.id", ondelete="SET NULL"), index=True)
    style: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    pack: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column()


class ThemeVersion(Base):
    """One immutable version of a theme: what a job that used ``(theme_id, version)`` was made with."""

    __tablename__ = "theme_versions"
    __table_args__ = (Index("uq_theme_versions_theme_version", "theme_id", "version", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    theme_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Subject(Base):
    """A recurring subject (``campaign-7/mira``): the seed base and appearance its first request recorded."""

    __tablename__ = "subjects"

    # A key names a different subject in each tenant (migration 0010).
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True, default="", server_default="")
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    seed_base: Mapped[int] = mapped_column(BigInteger)
    descriptors: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Image(Base):
    """One stored image: its bytes live in the asset store under ``content_hash``."""

    __tablename__ = "images"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant: Mapped[str] = mapped_column(String(64), default="", server_default="")
    kind: Mapped[str] = mapped_column(String(32))
    prompt: Mapped[str | None] = mapped_column(Text)
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    theme_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("themes.id", ondelete="SET NULL"))
    theme_version: Mapped[int | None] = mapped_column(Integer)
    # The recurring subject it shows (``campaign-7/mira``), so a subject lists its images.
    subject_key: Mapped[str | None] = mapped_column(String(128), index=True)
    model: Mapped[str | None] = mapped_column(String(255))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    # The canonical hash of the request that generated it (None for uploads): how a re-run finds it.
    request_hash: Mapped[str | None] = mapped_column(String(80), index=True)
    format: Mapped[str] = mapped_column(String(16), default="png")
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The paid API that drew it (None: the local generator) and what it cost there.
    backend: Mapped[str | None] = mapped_column(String(32))
    cost_usd: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Soft deletion; the retention janitor purges the row after a grace period (indexed for that).
    deleted_at: Mapped[datetime | None] = mapped_column(index=True)


class Overlay(Base):
    """A drawing specification applied on top of an image (``image_id``, its background), and the image its
    current version rendered to. Every version lives, immutable, in ``overlay_versions``; ``spec``,
    ``result_image_id`` and ``geometry`` copy the current one. A tactical map is an overlay of kind
    ``tactical_map`` (its spec holds the terrain and lights too)."""

    __tablename__ = "overlays"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant: Mapped[str] = mapped_column(String(64), default="", server_default="")
    image_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result_image_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    geometry: Mapped[dict[str, Any]] = mapped_column(default=dict)
    job_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column()


class OverlayVersion(Base):
    """One immutable version of an overlay: its spec, the render it made and the geometry it measured."""

    __tablename__ = "overlay_versions"
    __table_args__ = (Index("uq_overlay_versions_overlay_version", "overlay_id", "version", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    overlay_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("overlays.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    geometry: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result_image_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A durable unit of work. See ``serve_app.jobs`` for the state machine."""

    __tablename__ = "jobs"
    __table_args__ = (
        # The claim query filters on status and next attempt time, then orders by priority.
        Index("ix_jobs_claim", "status", "next_attempt_at", "priority"),
        Index("ix_jobs_created", "created_at", "id"),
        # Retention deletes finished jobs by age.
        Index("ix_jobs_finished", "finished_at"),
        # Tenants (migration 0010): an idempotency key is unique per tenant; a tenant's list, newest first; when
        # a tenant last had a job started (the claim's fairness tie-break).
        Index("uq_jobs_tenant_idempotency_key", "tenant", "idempotency_key", unique=True),
        Index("ix_jobs_tenant_created", "tenant", "created_at", "id"),
        Index("ix_jobs_tenant_started", "tenant", "started_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Whose job it is (serve_app/auth/tenant.py); "" is the open tenant.
    tenant: Mapped[str] = mapped_column(String(64), default="", server_default="")
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The hash of the request body as the client sent it: what an Idempotency-Key replay is compared with.
    body_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[JobStatus] = mapped_column(_str_enum(JobStatus, "job_status"), default=JobStatus.QUEUED)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    deadline: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_step: Mapped[int | None] = mapped_column(Integer)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # A failure's stable type (serve_app.errors) and the request field at fault, as data.
    error_type: Mapped[str | None] = mapped_column(String(32))
    error_param: Mapped[str | None] = mapped_column(String(255))
    # {"images": [image ids], "data": {...}} once succeeded; result_image_id is its first image.
    result: Mapped[dict[str, Any] | None] = mapped_column()
    # Indexed: purging an image sets this to NULL, which must not scan every job.
    result_image_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"), index=True)
    source: Mapped[JobSource] = mapped_column(_str_enum(JobSource, "job_source"), default=JobSource.HTTP)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last event sequence number handed out; bumping it row-locks the job, so seq is gap-free per job.
    event_seq: Mapped[int] = mapped_column(Integer, default=0)
    # What ran the last attempt (``local``, ``fal``...) and the sum of its paid calls.
    backend: Mapped[str | None] = mapped_column(String(32))
    cost_usd: Mapped[float | None] = mapped_column(Float)
    # Where the job's terminal state is POSTed (migration 0008); its deliveries are in webhook_deliveries.
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    # A job.started delivery on each attempt's start too (migration 0011), not only the terminal one.
    webhook_on_start: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobEvent(Base):
    """One entry of a job's event log; ``seq`` counts 1, 2, 3, ... per job."""

    __tablename__ = "job_events"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RemoteCall(Base):
    """One paid image: the ledger the daily budgets and the cost report sum (migration 0007)."""

    __tablename__ = "remote_calls"
    __table_args__ = (
        Index("ix_remote_calls_backend_created_at", "backend", "created_at"),
        Index("ix_remote_calls_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    backend: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    image_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(16))
    cost_usd: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One webhook message in the outbox (migration 0008): written in the transaction that ends its job; its id
    is the ``webhook-id`` header, the same on every retry."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_job_id", "job_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    event: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()


class ApiKey(Base):
    """One API key (migration 0009): only its SHA-256 is kept; the key is shown once, when made (serve_app/auth)."""

    __tablename__ = "api_keys"
    __table_args__ = (
        Index("uq_api_keys_key_hash", "key_hash", unique=True),
        Index("ix_api_keys_tenant", "tenant"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
