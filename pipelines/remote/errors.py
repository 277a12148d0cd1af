"""What a remote backend call raises, so a job can tell "try later" from "never again".

    Exception
     └── RemoteError              a remote backend call failed (error_type "backend_error")
          ├── BackendAuthError    401/403: the key is wrong or lacks access            (permanent)
          ├── BackendBudgetError  402, quota or spend limit exhausted                  (permanent)
          ├── BackendInputError   any other 4xx: the API refused the request as given  (permanent)
          ├── BackendTimeout      the API did not answer in time, after the retries
          └── BackendUnavailable  408/409/429/5xx, connection or truncated body, after the retries
               └── CircuitOpen    refused without a call: the backend failed too often lately

``permanent`` errors must not be retried by the job; the others may succeed later (``retry_after`` says when,
where the API told us). Every error pickles with all its fields, since it crosses Ray handles.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BackendAuthError",
    "BackendBudgetError",
    "BackendInputError",
    "BackendTimeout",
    "BackendUnavailable",
    "CircuitOpen",
    "RemoteError",
]


class RemoteError(Exception):
    """A remote backend call failed.

    Attributes:
        backend: The backend's name (``"fal"``, ...).
        message: What went wrong, from the API's error body where it sent one.
        status: The HTTP status, if a response came back.
        param: The request field the API blamed, if it named one.
        retry_after: Seconds the API asked us to wait before trying again, if it said.
        code: The API's own error code, if it sent one.
        error_type: A stable name for the kind of failure (class attribute).
        permanent: True if retrying the same request cannot succeed (class attribute).
    """

    error_type: ClassVar[str] = "backend_error"
    permanent: ClassVar[bool] = False

    def __init__(
        self,
        backend: str,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(backend, message)
        self.backend = backend
        self.message = message
        self.status = status
        self.param = param
        self.retry_after = retry_after
        self.code = code

    def __str__(self) -> str:
        return f"{self.backend}: {self.message}"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.backend!r}, {self.message!r}, status={self.status!r}, param={self.param!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields do not survive Exception's default pickling (which replays self.args only).
        fields = (self.backend, self.message, self.status, self.param, self.retry_after, self.code)
        return (_rebuild, (type(self), *fields))


def _rebuild(
    cls: type[RemoteError],
    backend: str,
    message: str,
    status: int | None,
    param: str | None,
    retry_after: float | None,
    code: str | None,
) -> RemoteError:
    return cls(backend, message, status=status, param=param, retry_after=retry_after, code=code)


class BackendAuthError(RemoteError):
    """The API refused the key (401/403)."""

    error_type: ClassVar[str] = "backend_auth"
    permanent: ClassVar[bool] = True


class BackendBudgetError(RemoteError):
    """The account is out of credit, quota or its spend limit (402 and the APIs' quota codes)."""

    error_type: ClassVar[str] = "backend_budget"
    permanent: ClassVar[bool] = True


class BackendInputError(RemoteError):
    """The API refused the request as given (400/404/413/422...); ``param`` names the field where it said."""

    error_type: ClassVar[str] = "backend_input"
    permanent: ClassVar[bool] = True


class BackendTimeout(RemoteError):
    """The API did not answer within the timeout, on every attempt."""

    error_type: ClassVar[str] = "backend_timeout"


class BackendUnavailable(RemoteError):
    """The API was overloaded, down or unreachable (408/409/429/5xx, connection errors), on every attempt."""

    error_type: ClassVar[str] = "backend_unavailable"


class CircuitOpen(BackendUnavailable):
    """Refused without calling the API: it failed too many times in a row; ``retry_after`` says when to try."""

    error_type: ClassVar[str] = "backend_unavailable"
