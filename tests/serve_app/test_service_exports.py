"""Each service package declares ``__all__``, and everything it lists exists and is documented."""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = ["serve_app.db", "serve_app.jobs", "serve_app.store", "serve_app.cache", "serve_app.events"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_real_documented_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    for attr in exported:
        value = getattr(module, attr)  # AttributeError fails the test
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name}.{attr} has no docstring"


@pytest.mark.parametrize("name", PACKAGES)
def test_public_classes_are_exported(name: str) -> None:
    module = importlib.import_module(name)
    for attr, value in vars(module).items():
        if attr.startswith("_") or not inspect.isclass(value):
            continue
        if value.__module__.startswith(name):
            assert attr in module.__all__, f"{name}.{attr} is public but not in __all__"


def _exceptions() -> list[BaseException]:
    from serve_app.cache import CacheValueError
    from serve_app.events import SubscriptionLagged
    from serve_app.jobs import IdempotencyConflict, InvalidCursor, JobNotFound, LeaseLost
    from serve_app.store import AssetNotFound, InvalidAssetKey, UnsupportedFormat

    return [
        JobNotFound("0b7e5f0c-8d0c-4f55-9f62-6f1f0b0b7c11"),
        IdempotencyConflict("key", "0b7e5f0c-8d0c-4f55-9f62-6f1f0b0b7c11"),
        LeaseLost("0b7e5f0c-8d0c-4f55-9f62-6f1f0b0b7c11", "dispatcher-1"),
        InvalidCursor("garbage"),
        AssetNotFound("a" * 64, "png"),
        InvalidAssetKey("ext", "p/ng", "letters"),
        UnsupportedFormat("gif"),
        SubscriptionLagged("job", 3),
        CacheValueError("not JSON"),
    ]


@pytest.mark.parametrize("exc", _exceptions(), ids=lambda e: type(e).__name__)
def test_exceptions_pickle_across_deployment_handles(exc: BaseException) -> None:
    import pickle

    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc)
    assert str(copy) == str(exc)
