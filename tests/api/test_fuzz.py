"""Property-based fuzzing of the whole HTTP API (schemathesis) against the in-process app.

Every operation of the app's own OpenAPI document gets generated requests, valid and invalid (schemathesis'
examples, coverage and fuzzing phases, positive and negative data), sent through the test client to the real
routes over real services on the tiny model. Each answer must be no 5xx, have a documented status code, the
declared content type, and a body matching the declared model (the one error shape for every error). An image,
jobs, themes, a subject, a tactical and a campaign map, an overlay and an asset are made first, and the fuzzing
phase draws each path parameter either as generated or as one of those ids, so the ``/{id}`` routes answer their
200s (and their bodies are checked) as well as their 404s.

Kept fast and bounded: ``?wait=`` is always 0 (a fuzzed wait would block the request), the generator's limits
are small (an accepted job runs at 64 x 64 in a few steps, well inside ``POST /generate``'s wait, so a 504 there
is a real failure: the first one also loads the model), and an SSE stream ends within a second
(``ingress.sse_max_s``).

``LIMNER_FUZZ_EXAMPLES`` sets the fuzzing phase's examples per operation (default below); ``LIMNER_FUZZ_RANDOM=1``
draws new data on every run instead of the fixed derandomized sequence CI runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from deployments.composer import Composer
from deployments.generator import Generator
from serve_app.api.app import create_api
from serve_app.config import (
    AppConfig,
    ComposerConfig,
    EnhancerConfig,
    GeneratorConfig,
    IngressConfig,
    JobsConfig,
    LimitsConfig,
    MapsConfig,
    RemoteConfig,
    Settings,
    WebhooksConfig,
)
from tests.api.conftest import Local, create_api_lazily

EXAMPLES = int(os.environ.get("LIMNER_FUZZ_EXAMPLES", "12"))
"""Examples of the fuzzing phase per operation (the examples and coverage phases add their own)."""
MIN_CASES = 1000
"""Cases the whole run must have sent (checked by the last test when every operation ran)."""

# Small enough that a fuzzed request the limits accept runs in well under a second on the tiny model. (The figure
# kinds' default sizes are larger: a portrait, creature or item case is accepted only when it names a small size.)
LIMITS = LimitsConfig(min_size=8, max_size=128, max_pixels=128 * 128, max_steps=4, max_prompt_chars=2000)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_dict(create_api(None).openapi())

sent: dict[str, int] = {}  # operation label → cases sent
known: dict[str, list[str]] = {}
"""Path parameter → ids that exist (filled by :func:`fuzz_client` before any case): generated ids alone would
reach every ``/{id}`` route's 404 and never its 200, whose body the schema check exists for."""
spare: dict[str, list[str]] = {}
"""Path parameter → ids the ``DELETE`` operations may use (what they delete is not in :data:`known`)."""
statuses: dict[str, dict[int, int]] = {}  # operation label → status code → answers
span: dict[str, list[float]] = {}  # operation label → [first, last] time a case of it was sent


@schema.hook
def map_query(context: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    """``?wait=`` is always 0: the job is accepted and answered at once (a fuzzed wait of minutes would block).

    ``webhook_url`` is left out: webhooks are off here, so any value is the same documented 422 (tests/api/
    test_webhooks.py covers it), and generated often it would keep nearly every job case from being accepted."""
    if isinstance(query, dict):
        query = {k: v for k, v in query.items() if k != "webhook_url"}
        if "wait" in query:
            query["wait"] = 0
    return query


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """Each path parameter as generated, or one of the ids that exist (:data:`known`; :data:`spare` for a
    ``DELETE``), so the ``/{id}`` routes answer their 200s as well as their 404s."""
    from hypothesis import strategies as st

    if not path_parameters:
        return st.just(path_parameters)
    pool = spare if context.operation is not None and context.operation.method.upper() == "DELETE" else known
    choices = {name: st.sampled_from([value, *pool.get(name, [])]) for name, value in path_parameters.items()}
    return st.fixed_dictionaries(choices)


class FuzzLocal(Local):
    """:class:`Local` with small generation limits, a short ``POST /generate`` wait and short SSE streams."""

    def __init__(self, model_cache: Path, data_dir: Path, jobs: JobsConfig) -> None:
        super().__init__(model_cache, data_dir, jobs)
        self.composer = Composer.func_or_class(ComposerConfig(width=64, height=64, steps=3), "tiny", LIMITS)
        self.generator = Generator.func_or_class(
            GeneratorConfig(model_name="tiny", warmup_sizes=[], limits=LIMITS), "tiny", str(model_cache)
        )
        self.poll_interval_s = 0.5

    def app_config(self) -> AppConfig:  # Local's, with the limits and the short streams
        return AppConfig(
            generator=GeneratorConfig(model_name="tiny", warmup_sizes=[], limits=LIMITS),
            jobs=self.jobs_config,
            maps=MapsConfig(base_pixels=128 * 96),
            enhancer=EnhancerConfig(native_size=64, max_pixels=256 * 256),
            remote=RemoteConfig(),
            ingress=IngressConfig(sse_max_s=1.0, sse_ping_s=0.5, waiter_poll_s=0.5),
            webhooks=WebhooksConfig(allow_hosts=["127.0.0.1"], poll_s=1.0),  # off here (no secret): seldom polled
        )


@pytest.fixture(scope="module")
def fuzz_client(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the whole module: its own database and asset folder, opened once."""
    jobs = JobsConfig(
        lease_s=10,
        heartbeat_s=1,
        max_queued=10_000,
        max_concurrent=2,
        backoff_base_s=0.1,
        max_attempts=1,
        generate_timeout_s=60.0,
    )
    data = tmp_path_factory.mktemp("fuzz")
    local = FuzzLocal(model_cache, data, jobs)
    local.settings = Settings(data_dir=str(data / "data"))
    # Each 4xx logs a warning, thousands of them here (about a sixth of the module's time): only errors are logged.
    quiet = logging.getLogger("ray.serve.limner")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with TestClient(create_api_lazily(local), raise_server_exceptions=False) as client:
            _seed(client)
            yield client
    finally:
        quiet.setLevel(level)


def _seed(client: TestClient) -> None:
    """Makes one of each thing a path can name (images, jobs, themes, subjects, maps, overlays, assets) and
    records their ids in :data:`known` and :data:`spare`."""

    def ok(response: Any, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response

    images, jobs = [], []
    for seed in (1, 2):
        r = ok(client.post("/api/v2/images/generate", json={"prompt": "a lantern", "seed": seed}))
        images.append(r.headers["X-Image-Id"])
        jobs.append(r.headers["X-Job-Id"])
    asset = ok(client.get(f"/api/v2/images/{images[0]}")).json()["links"]["asset"]
    themes = [ok(client.post("/api/v2/images/styles", json={"name": f"fuzz-{n}"}), 201).json()["id"] for n in (1, 2)]
    portrait = {"character": {"name": "Mira"}, "subject_key": "fuzz-mira", "width": 64, "height": 64}
    jobs.append(ok(client.post("/api/v2/images/portraits", params={"wait": 60}, json=portrait)).json()["id"])
    grid = {"type": "square", "cols": 4, "rows": 3, "cell_px": 16}
    tactical = {"grid": grid, "prompt": "a crypt", "seed": 3, "tokens": [{"id": "hero", "cell": [1, 1]}]}
    maps = [ok(client.post("/api/v2/images/maps/tactical", params={"wait": 60}, json=tactical)).json()]
    campaign = {
        "canvas": {"width": 128, "height": 96},
        "scale": {"miles_per_pixel": 0.5},
        "pois": [
            {"name": "Westport", "kind": "port", "x": 20, "y": 50},
            {"name": "Keep", "kind": "fort", "x": 100, "y": 50},
        ],
        "routes": [{"kind": "road", "from": "Westport", "to": "Keep", "via": []}],
        "prompt": "a coast",
        "seed": 4,
    }
    maps.append(ok(client.post("/api/v2/images/maps/campaign", params={"wait": 60}, json=campaign)).json())
    jobs += [m["id"] for m in maps]
    map_ids = [m["result"]["data"]["map_id"] for m in maps]
    overlay = ok(client.post("/api/v2/images/overlays", json={"grid": grid}), 201).json()["id"]
    known.update(
        image_id=[images[0]],
        job_id=jobs,
        ref=["ink-and-wash", themes[0]],
        key=["fuzz-mira"],
        map_id=map_ids,
        overlay_id=[overlay],
        name=[asset.rsplit("/", 1)[1]],
    )
    spare.update(image_id=[images[1]], job_id=jobs[:1], ref=[themes[1]])


def _send(client: TestClient, case: Case) -> Any:
    """The case through the test client. schemathesis serializes it as for ``requests``: a form or multipart body
    (``data``, ``files``) is encoded by ``requests`` itself, as schemathesis would send it (httpx cannot encode
    every part schemathesis generates, an integer for a file, and streams what it can), and handed to httpx as
    bytes; httpx also spells raw bytes ``content`` and takes cookies only as a header."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    method, url = kwargs.pop("method"), kwargs.pop("url")
    headers = dict(kwargs.pop("headers", None) or {})
    cookies = kwargs.pop("cookies", None)
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    request: dict[str, Any] = {"headers": headers, "params": kwargs.pop("params", None)}
    if "json" in kwargs:
        request["json"] = kwargs.pop("json")
    data, files = kwargs.pop("data", None), kwargs.pop("files", None)
    if isinstance(data, bytes | str) and not files:
        request["content"] = data
    elif data is not None or files:
        import requests

        prepared = requests.PreparedRequest()
        prepared.prepare_headers(headers)
        prepared.prepare_body(data, files)
        request["content"] = prepared.body
        if "Content-Type" in prepared.headers:
            headers["Content-Type"] = prepared.headers["Content-Type"]
    kwargs.pop("auth", None)
    assert not kwargs, f"unexpected transport arguments {sorted(kwargs)}"
    return client.request(method, url, **request)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("LIMNER_FUZZ_RANDOM") != "1",
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(fuzz_client: TestClient, case: Case) -> None:
    response = _send(fuzz_client, case)
    sent[case.operation.label] = sent.get(case.operation.label, 0) + 1
    now = time.monotonic()
    span.setdefault(case.operation.label, [now, now])[1] = now
    seen = statuses.setdefault(case.operation.label, {})
    seen[response.status_code] = seen.get(response.status_code, 0) + 1
    case.validate_response(response, checks=CHECKS)


def test_cases_sent() -> None:
    """The run above sent at least :data:`MIN_CASES` cases (skipped unless every operation ran: ``-k``)."""
    operations = {op.ok().label for op in schema.get_all_operations()}
    if set(sent) != operations:
        pytest.skip(f"{len(operations - set(sent))} operations not fuzzed in this run")
    total = sum(sent.values())
    print(f"{total} cases over {len(sent)} operations")
    for label in sorted(statuses):
        seconds = span[label][1] - span[label][0]
        print(f"  {label}: {seconds:.1f} s, {dict(sorted(statuses[label].items()))}")
    assert total >= MIN_CASES, sent
