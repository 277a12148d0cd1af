"""What a kind of job is: a typed payload decided at acceptance, a recipe that runs it, and its assets.

A kind is one module in this package (``generate.py`` is the first). To add one:

1. a payload model (a :class:`KindPayload` subclass: typed, validated, JSON in the database);
2. ``accept(request, stages)``: validate and compose the request once, at acceptance, so a retried job
   redoes nothing that was decided (seeds included); returns the payload and what identifies the request;
3. ``run(job, stages, progress)``: a short recipe over :class:`serve_app.jobs.stages.Stages`, returning a
   :class:`JobResult` (image ids and a JSON document);
4. ``referenced_assets(payload)``: every stored blob the payload points at, so ``gc`` keeps them.

Then register it (:func:`serve_app.jobs.kinds.default_kinds`) and give it a route in serve_app/api/.
docs/DEVELOPING.md walks through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.errors import field_path
from serve_app.jobs.base import JobRecord, JobResult, PermanentJobError, UnknownKind

if TYPE_CHECKING:
    from serve_app.jobs.dispatcher import ProgressFn
    from serve_app.jobs.stages import Stages

__all__ = ["Accepted", "JobKind", "JobResult", "KindPayload", "KindRegistry", "payload_summary"]

P = TypeVar("P", bound="KindPayload")


class KindPayload(BaseModel):
    """Base of every kind's payload: what the job will do, fully decided when it was accepted.

    Every kind shares these two fields, so kind-independent code (the job routes) can report them without
    knowing the kind. Unknown keys are refused: a payload is written by its own kind only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_hash: str | None = Field(None, description="Canonical hash of what the job makes (the cache key).")
    format: str = Field("png", description="Encoding the client asked for (the stored image is PNG).")
    backend: str = Field("local", description="Where it generates: local, auto or a paid API (remote.routing).")

    @classmethod
    def of(cls: type[P], job: JobRecord) -> P:
        """The job's payload as this type.

        Raises:
            PermanentJobError: The stored payload does not fit (written by another version, or by hand).
        """
        try:
            return cls.model_validate(job.payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = field_path(*first.get("loc", ())) or None
            message = f"job {job.id} has an unusable {job.kind} payload: {first['msg']}"
            raise PermanentJobError(message, param=param) from exc

    def to_json(self) -> dict[str, Any]:
        """The JSON document the job row keeps (``None`` fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


class _Summary(KindPayload):
    model_config = ConfigDict(extra="ignore", frozen=True)


def payload_summary(payload: Mapping[str, Any]) -> KindPayload:
    """The shared fields of any kind's payload (for routes that do not know the kind)."""
    try:
        return _Summary.model_validate(payload)
    except ValidationError:
        return _Summary()


@dataclass(frozen=True)
class Accepted:
    """What a kind's ``accept`` decided.

    Attributes:
        payload: The typed payload the job row keeps.
        identity: The request as the client sent it (JSON): an ``Idempotency-Key`` replay must match it.
    """

    payload: KindPayload
    identity: dict[str, Any]


@runtime_checkable
class JobKind(Protocol):
    """One kind of job. See the module docstring."""

    name: ClassVar[str]

    async def accept(self, request: Any, stages: Stages) -> Accepted:
        """Validates ``request`` and decides everything about the job (raises ``InputError`` for bad input)."""
        ...

    async def run(self, job: JobRecord, stages: Stages, progress: ProgressFn) -> JobResult:
        """Runs one attempt of ``job``; raises to fail it (``serve_app.errors.is_transient`` decides retries)."""
        ...

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        """Content hashes of every blob the payload needs (garbage collection keeps them)."""
        ...


class KindRegistry:
    """The kinds a service runs, by name.

    Args:
        kinds: The kinds; names must be unique.

    Raises:
        ValueError: Two kinds share a name.
    """

    def __init__(self, kinds: Iterable[JobKind]) -> None:
        self._kinds: dict[str, JobKind] = {}
        for kind in kinds:
            if kind.name in self._kinds:
                raise ValueError(f"two job kinds are named {kind.name!r}")
            self._kinds[kind.name] = kind

    @property
    def names(self) -> tuple[str, ...]:
        """The registered kind names, in registration order."""
        return tuple(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __getitem__(self, name: str) -> JobKind:
        """The kind named ``name``.

        Raises:
            UnknownKind: None is registered under that name.
        """
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownKind(name, self.names) from None

    def referenced_assets(self, kind: str, payload: Mapping[str, Any]) -> set[str]:
        """What a job of ``kind`` with ``payload`` references; nothing for a kind that is not registered."""
        found = self._kinds.get(kind)
        return set() if found is None else found.referenced_assets(payload)
