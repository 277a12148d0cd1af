"""Durable jobs: every accepted request is a row before it is acknowledged.

:class:`SqlJobStore` runs on the metadata database (SQLite or PostgreSQL); the dispatcher claims leases
from it, and the event log it keeps is what SSE streams resume from.
"""

from serve_app.db.models import JobSource, JobStatus
from serve_app.jobs.backoff import Backoff
from serve_app.jobs.base import (
    Clock,
    EventHook,
    IdempotencyConflict,
    InvalidCursor,
    JobError,
    JobNotFound,
    JobPage,
    JobRecord,
    JobResult,
    JobStore,
    LeaseLost,
    PermanentJobError,
    UnknownKind,
    canonical_hash,
    canonical_json,
)
from serve_app.jobs.sql import DEADLINE_EXCEEDED, TERMINAL_EVENTS, SqlJobStore

__all__ = [
    "DEADLINE_EXCEEDED",
    "TERMINAL_EVENTS",
    "Backoff",
    "Clock",
    "EventHook",
    "IdempotencyConflict",
    "InvalidCursor",
    "JobError",
    "JobNotFound",
    "JobPage",
    "JobRecord",
    "JobResult",
    "JobSource",
    "JobStatus",
    "JobStore",
    "LeaseLost",
    "PermanentJobError",
    "SqlJobStore",
    "UnknownKind",
    "canonical_hash",
    "canonical_json",
]
