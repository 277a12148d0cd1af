"""Local fakes of the paid image APIs (GetImg, FAL, OpenAI, Runware) that speak their documented shapes.

Spec: design12.md "tests/remote_fakes/"; shapes: shared/docs/REMOTE_APIS.md §2.1-2.3 and RUNWARE_API.md.
`FakeServer` (FastAPI + uvicorn) is imported lazily so that loading the pytest plugin costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.remote_fakes.control import KEYS, Call, Control, expected_rgb

if TYPE_CHECKING:
    from tests.remote_fakes.common import error_body
    from tests.remote_fakes.server import FakeServer

__all__ = ["KEYS", "Call", "Control", "FakeServer", "error_body", "expected_rgb"]


def __getattr__(name: str) -> Any:
    if name == "FakeServer":
        from tests.remote_fakes.server import FakeServer

        return FakeServer
    if name == "error_body":
        from tests.remote_fakes.common import error_body

        return error_body
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
