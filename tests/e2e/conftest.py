"""Real ``serve run`` processes of configs/serve.yaml, reached over HTTP.

The session's service takes the shipped CPU profile and changes only what a test needs: a free port, a fresh
model cache (so the model is built while the service starts, which is when ``/readyz`` must say 503) and
data directory, a short job queue so overload is reachable, and short leases so a crashed runner's jobs come
back quickly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from load_tests._service import ROOT, ServeProcess, free_port

START_TIMEOUT_S = 240
WARM_REQUEST = {"prompt": "a warmed-up tavern", "width": 64, "height": 64, "steps": 2, "seed": 5}


def serve_config(zmq_ports: tuple[int, int] | None = None, warm: bool = True, **jobs: Any) -> dict[str, Any]:
    """configs/serve.yaml with the test's changes (the bridge on ``zmq_ports``, or off; a warm-up request)."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
    app = config["applications"][0]
    if zmq_ports is None:
        app["args"]["zmq_bridge"]["enabled"] = False
        # Serve refuses options for a deployment the app does not have: the bridge's entry goes with it.
        app["deployments"] = [d for d in app["deployments"] if d["name"] != "ZmqBridge"]
    else:
        app["args"]["zmq_bridge"].update(
            host="127.0.0.1",
            request_port=zmq_ports[0],
            result_port=zmq_ports[1],
            max_render_side=64,
            # The limits tests/experimance/_frames.py builds its malformed frames against.
            max_frame_bytes=4096,
            max_size=2048,
        )
    app["args"]["generator"]["warmup_sizes"] = [[64, 64]]
    app["args"]["cache"] = {"warm": [WARM_REQUEST] if warm else []}
    app["args"]["jobs"] = {"max_queued": 12, "max_concurrent": 4, "lease_s": 6, "heartbeat_s": 1, **jobs}
    for deployment in app["deployments"]:
        if deployment["name"] == "Generator":
            deployment["user_config"]["max_batch_size"] = 4
    return config


@dataclass
class Service:
    url: str
    process: ServeProcess
    zmq_ports: tuple[int, int] | None = None
    data_dir: Path | None = None
    readyz_codes: list[int] = field(default_factory=list)
    healthz_while_not_ready: list[int] = field(default_factory=list)


def start_service(workdir: Path, env: dict[str, str], config: dict[str, Any] | None = None) -> Service:
    """Starts ``serve run`` and returns once ``/readyz`` is 200, recording what it answered before."""
    process = ServeProcess(config or serve_config(), workdir, env={"PYTHONUNBUFFERED": "1", **env})
    process.start()
    service = Service(url=process.url, process=process)
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=service.url, timeout=10) as client:
        while True:
            assert process.proc is not None
            if process.proc.poll() is not None:
                process.kill()  # Ray's processes may outlive a failed `serve run`
                pytest.fail(f"serve run exited with {process.proc.returncode}:\n{process.log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"service not ready after {START_TIMEOUT_S}s:\n{process.log.read_text()[-4000:]}")
            try:
                code = client.get("/readyz").status_code
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            service.readyz_codes.append(code)
            if code == 200:
                return service
            if code == 503:
                service.healthz_while_not_ready.append(client.get("/healthz").status_code)
            time.sleep(0.25)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, _remote_fakes_server: Any) -> Iterator[Service]:
    from tests.remote_fakes import KEYS

    tmp = tmp_path_factory.mktemp("serve")
    env = {
        "LIMNER_MODEL_CACHE": str(tmp / "models"),
        "LIMNER_DATA_DIR": str(tmp / "data"),
        "LIMNER_FAL_KEY": KEYS["fal"],  # the Remote deployment reads it in its replica
    }
    ports = (free_port(), free_port())
    config = serve_config(zmq_ports=ports)
    # FAL's queue, faked in this process (tests/remote_fakes): the graph has a Remote deployment.
    remote = {"fal": {"base_url": _remote_fakes_server.base_url("fal"), "price_usd": 0.0025, "timeout_s": 10}}
    config["applications"][0]["args"]["remote"] = remote
    svc = start_service(tmp, env, config)
    svc.zmq_ports, svc.data_dir = ports, tmp / "data"
    try:
        yield svc
    finally:
        svc.process.stop()
