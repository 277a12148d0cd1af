"""Shared test set-up.

The unit tier needs no Ray cluster: ``ray.init`` fails in every test unless it is marked ``serve`` (those
tests talk to a ``serve run`` subprocess over HTTP and never call ``ray.init`` themselves either).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.remote_fakes.plugin"]


@pytest.fixture(autouse=True)
def _disallow_ray_init(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.node.get_closest_marker("serve") is None:
        import ray

        def _fail(*args: object, **kwargs: object) -> None:
            raise RuntimeError("ray.init called from a unit test; mark it 'serve' if it needs the graph")

        monkeypatch.setattr(ray, "init", _fail)
    yield


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """The model cache `make test` built the tiny model into."""
    return Path(os.environ.get("LIMNER_MODEL_CACHE", "~/.cache/limner/models")).expanduser()


@pytest.fixture(scope="session")
def tiny_pipeline(model_cache: Path):  # type: ignore[no-untyped-def]
    """The tiny SDXL pipeline, loaded once per session on the CPU."""
    from pipelines.sdxl import load_pipeline

    return load_pipeline("tiny", cache_dir=model_cache, model_name="tiny")
