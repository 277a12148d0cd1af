"""The routers and the app import each other in no circle: any router module imports first, in a fresh
interpreter, and then the app; and the app first, then every router."""

from __future__ import annotations

import subprocess
import sys

import pytest

ROUTERS = ["admin", "assets", "generate", "health", "images", "jobs"]


def _imports_cleanly(*modules: str) -> None:
    code = "; ".join(f"import {m}" for m in modules) + "; from serve_app.api.app import create_api; create_api(None)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("router", ROUTERS)
def test_a_router_imports_before_the_app(router: str) -> None:
    _imports_cleanly(f"serve_app.api.{router}")


def test_the_app_imports_before_every_router() -> None:
    _imports_cleanly("serve_app.api.app", *(f"serve_app.api.{r}" for r in ROUTERS))


def test_no_router_imports_the_app_module() -> None:
    from pathlib import Path

    import serve_app.api

    folder = Path(serve_app.api.__file__).parent
    for router in ROUTERS:
        source = (folder / f"{router}.py").read_text()
        assert "serve_app.api.app" not in source, router
