"""The fake remote APIs as one FastAPI app, served by uvicorn on a free 127.0.0.1 port from a daemon thread.

A test flips Control switches in-process while another process (a Ray replica) can still reach the fakes over
HTTP. Spec: design12.md "tests/remote_fakes/".
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from tests.remote_fakes.common import PREFIX, Answer, Files, backend_of_path, error_response, read_payload
from tests.remote_fakes.control import Call, Control


def build_app(control: Control) -> FastAPI:
    """The app with the four routers; `control` drives them."""
    from tests.remote_fakes import fal, getimg, openai_images, runware

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.control = control
    app.state.files = Files()
    app.state.background = set()
    app.state.fal_jobs = {}
    app.state.runware_async = {}
    for module in (getimg, fal, openai_images, runware):
        app.include_router(module.files_router)
        app.include_router(module.router)

    @app.exception_handler(Answer)
    async def _answer(request: Request, exc: Answer) -> Response:
        return exc.response

    @app.exception_handler(HTTPException)
    async def _unknown(request: Request, exc: HTTPException) -> Response:
        # An unknown route or method: recorded, and answered in that API's error shape.
        backend = backend_of_path(request.url.path)
        if backend is None:
            return Response(status_code=exc.status_code)
        payload, form = await read_payload(request)
        path = request.url.path.removeprefix(PREFIX[backend]) or "/"
        headers = {k.lower(): v for k, v in request.headers.items()}
        control.record(backend, Call(request.method, path, headers, payload, time.monotonic(), request.url.query, form))
        return error_response(backend, exc.status_code, message=f"{exc.detail}: {request.method} {path}")

    return app


class FakeServer:
    """The fakes on http://127.0.0.1:PORT; a context manager (start() on enter, stop() on exit).

    Attributes:
        url: "http://127.0.0.1:PORT" once started.
        control: The switches and call records (Control).
    """

    def __init__(self, control: Control | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.control = control or Control()
        self._host, self._port = host, port
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def base_url(self, backend: str) -> str:
        """The base URL a client of `backend` is configured with.

        Args:
            backend: "getimg", "fal", "openai" or "runware".

        Returns:
            url + "/getimg", "/fal", "/openai/v1" or "/runware/v1".
        """
        if backend not in PREFIX:
            raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(PREFIX)}")
        return self.url + PREFIX[backend]

    def start(self, timeout_s: float = 10.0) -> FakeServer:
        """Serve from a daemon thread; returns once uvicorn has started (RuntimeError if it does not)."""
        if self._server is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(self.control),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
        server = uvicorn.Server(config)
        self.control.stopping = False
        thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
        thread.name = f"remote-fakes-{port}"
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"the fake remote APIs did not start on {self._host}:{port}")
            time.sleep(0.01)
        self._server, self._thread, self._sock = server, thread, sock
        self.url = f"http://{self._host}:{port}"
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving: sleeping handlers end early, the thread is joined, the socket closed."""
        if self._server is None or self._thread is None:
            return
        self.control.stopping = True
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._sock.close()
        self._server = self._thread = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
