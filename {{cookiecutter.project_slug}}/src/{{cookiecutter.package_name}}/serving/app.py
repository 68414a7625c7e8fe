"""The FastAPI application: the routes, wired to the service, the guard and the error table.

The parts live beside this file, one job each: ``service.py`` (the model and the scoring),
``guard.py`` (request id, limits, timeouts, metrics, access log), ``errors.py`` (the error
envelope and its one handler table), ``openapi.py`` (the document, from the msgspec types),
``http_limits.py`` (the server's HTTP limits) and ``server.py`` (the process and its drain).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import Response

from .. import __version__
from . import errors, v2_routes
from .guard import LIVE, MODEL, NOOP, PREDICT, READY, Exchange, Guard, Handler
from .model import Model
from .openapi import document
from .responses import Live, ModelInfo, Ready
from .service import Service

_encode = msgspec.json.Encoder().encode
_LIVE = _encode(Live())
JSON = "application/json"


def create_app(service: Service) -> Guard:
    """The ASGI application: the guard, around FastAPI (``create_app(...).app``)."""
    settings = service.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None if service.loaded else asyncio.create_task(service.load_in_background())
        yield
        if task is not None and not task.done():
            task.cancel()
        # The worker thread is left alone: by now uvicorn has drained every request, and an
        # idle pool thread ends with the interpreter. (Shutting the pool down here would break
        # an app whose lifespan runs more than once, as test clients do.)

    docs = settings.docs_enabled
    app = FastAPI(
        title=__name__.split(".")[0].replace("_", " ") + " model service",
        version=__version__,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        lifespan=lifespan,
    )
    app.state.service = service

    def check_auth(request: Request) -> None:
        if not service.authorised(request.headers.get("x-api-key")):
            raise errors.unauthorised()

    def loaded_model() -> Model:
        model = service.model
        if model is None:
            raise errors.not_ready()
        return model

    async def predict(exchange: Exchange) -> None:
        """``POST /v1/predict``, answered by the guard itself (see guard.py for why)."""
        if exchange.scope["method"] != "POST":
            raise errors.method_not_allowed("POST")
        exchange.require_key_and_model()
        body = await exchange.body()
        content = await service.run(
            len(body), service.prepare_score, body, exchange.request_id, loop=exchange.loop
        )
        await exchange.respond(200, content)

    hot_routes: dict[str, Handler] = {PREDICT: predict}

    @app.get(MODEL, include_in_schema=False)
    async def model_info(request: Request) -> Response:
        check_auth(request)
        info = msgspec.convert(loaded_model().info(), ModelInfo)
        return Response(_encode(info), media_type=JSON)

    @app.get(LIVE, include_in_schema=False)
    async def live() -> Response:
        return Response(_LIVE, media_type=JSON)

    @app.get(READY, include_in_schema=False)
    async def ready() -> Response:
        if service.ready:
            return Response(_encode(Ready(service.version)), media_type=JSON)
        raise errors.not_ready("draining" if service.draining else "the model is still loading")

    if settings.bench_mode:

        async def noop(exchange: Exchange) -> None:
            """The same stack as ``predict`` (guard, auth, body read), no work: the bench's
            measure of this stack's own cost."""
            if not service.authorised(exchange.api_key):
                raise errors.unauthorised()
            await exchange.body()
            await exchange.respond(200, b'{"ok":true}')

        hot_routes[NOOP] = noop

    v2_paths, resolve = v2_routes.add_routes(app, service, hot_routes)
    errors.install(app)
    spec = document(app.title, app.version, service.decoder)
    app.openapi = lambda: spec  # type: ignore[method-assign]
    known = frozenset({MODEL, LIVE, READY, "/docs", "/openapi.json"}) | v2_paths.static()
    # The guard goes around the FastAPI application, not inside its middleware stack: the hot
    # routes then pass through nothing else (FastAPI's error and telemetry layers cost as much
    # as scoring a row), and every other route still gets the guard's limits, id and log.
    return Guard(app, service, hot_routes=hot_routes, known_routes=known, resolve=resolve)
