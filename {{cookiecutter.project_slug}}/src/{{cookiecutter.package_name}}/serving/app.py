"""The FastAPI application: the routes, wired to the service, the guard and the error table.

The parts live beside this file, one job each: ``service.py`` (the model and the scoring),
``guard.py`` (request id, limits, timeouts, metrics, access log), ``errors.py`` (the error
envelope and its one handler table), ``openapi.py`` (the document, from the msgspec types),
``protocol.py`` (the server's HTTP limits) and ``server.py`` (the process and its drain).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import Response

from .. import __version__
from . import errors
from .guard import LIVE, MODEL, NOOP, PREDICT, READY, Guard
from .model import Model
from .openapi import document
from .responses import Live, ModelInfo, Ready
from .service import Service

_encode = msgspec.json.Encoder().encode
_LIVE = _encode(Live())
JSON = "application/json"


def create_app(service: Service) -> FastAPI:
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

    async def predict(request: Request) -> Response:
        check_auth(request)
        loaded_model()
        body = await request.body()
        request_id = request.scope.get("request_id", "")
        if len(body) > settings.offload_body_bytes:
            # The worker thread (the default for every body): the event loop keeps reading and
            # answering other requests meanwhile, and the timeout can still answer 504.
            loop = asyncio.get_running_loop()
            content = await loop.run_in_executor(service.executor, service.score, body, request_id)
        else:
            content = service.score(body, request_id)
        return Response(content, media_type=JSON)

    # The hot route is a plain Starlette route: FastAPI's per-request dependency solving and
    # telemetry hooks cost ~30 us and it takes no parameters. openapi.py documents it.
    app.router.add_route(PREDICT, predict, methods=["POST"], include_in_schema=False)

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

        async def noop(request: Request) -> Response:
            check_auth(request)
            await request.body()
            return Response(b'{"ok":true}', media_type=JSON)

        app.router.add_route(NOOP, noop, methods=["POST"], include_in_schema=False)

    errors.install(app)
    spec = document(app.title, app.version, service.decoder)
    app.openapi = lambda: spec  # type: ignore[method-assign]
    app.add_middleware(Guard, service=service)
    return app
