"""The job attempt a piece of work belongs to, for code that runs inside a kind's recipe without being handed the
job (the shared stages: which backend ran, what it cost). The dispatcher sets it around each attempt."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["CURRENT_ATTEMPT", "Attempt", "current_attempt"]


@dataclass(frozen=True)
class Attempt:
    """One attempt of one job.

    Attributes:
        job_id: The job.
        attempt: Its attempt number (1 for the first).
        source: The door it came in through (``http``, ``zmq``).
    """

    job_id: uuid.UUID
    attempt: int
    source: str


CURRENT_ATTEMPT: ContextVar[Attempt | None] = ContextVar("limner_attempt", default=None)


def current_attempt() -> Attempt | None:
    """The attempt running in this task, or None outside a job (a benchmark calling a stage directly)."""
    return CURRENT_ATTEMPT.get()
