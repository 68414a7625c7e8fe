"""The Open Inference Protocol's routes (``/v2``): health, metadata and inference.

Inference is a hot route, answered by the guard like ``/v1/predict`` (same key, limits, deadline,
metrics and access line); the rest are small FastAPI routes. Every error on these paths is the
protocol's ``{"error": "..."}`` (``errors.is_protocol_path``). ``open_inference.py`` does the
decoding and encoding.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import Response

from .. import __version__
from . import errors
from .guard import Exchange, Handler
from .open_inference import ServerMetadata
from .service import Service

JSON = "application/json"
BINARY = [(b"content-type", b"application/octet-stream")]
JSON_HEADERS = [(b"content-type", b"application/json")]
_encode = msgspec.json.Encoder().encode


class Paths:
    """The /v2 paths of this service's one model."""

    def __init__(self, model_name: str):
        self.server = "/v2"
        self.live = "/v2/health/live"
        self.ready = "/v2/health/ready"
        self.model = f"/v2/models/{model_name}"
        self.model_ready = f"{self.model}/ready"
        self.infer = f"{self.model}/infer"
        self.versions = f"{self.model}/versions/"  # + <version>[/ready|/infer]

    def static(self) -> frozenset[str]:
        """The paths metrics and logs name as they are."""
        return frozenset({self.server, self.live, self.ready, self.model, self.model_ready})

    def versioned(self, path: str, version: str) -> str | None:
        """``/versions/<version>[/ready|/infer]`` → the rest after the version, when it is ours."""
        if not path.startswith(self.versions):
            return None
        given, _, rest = path[len(self.versions) :].partition("/")
        return rest if given == version else None


def add_routes(
    app: FastAPI, service: Service, hot_routes: dict[str, Handler]
) -> tuple[Paths, Callable[[str], Handler | None]]:
    """Add the /v2 routes; returns their paths and the resolver of the versioned hot path."""
    paths = Paths(service.settings.model_name)
    name = service.settings.model_name

    async def infer(exchange: Exchange) -> None:
        if exchange.scope["method"] != "POST":
            raise errors.method_not_allowed("POST")
        exchange.require_key_and_model()
        body = await exchange.body()
        content, header_length = await service.run(
            len(body),
            service.prepare_infer,
            body,
            exchange.header_length,
            exchange.request_id,
            loop=exchange.loop,
        )
        if header_length is None:
            await exchange.respond(200, content, JSON_HEADERS)
        else:
            headers = [*BINARY, (b"inference-header-content-length", header_length)]
            await exchange.respond(200, content, headers)

    hot_routes[paths.infer] = infer

    def resolve(path: str) -> Handler | None:
        """The versioned inference path of the served version is hot too."""
        return infer if paths.versioned(path, service.version) == "infer" else None

    def not_found(model_name: str, version: str | None) -> errors.ApiError:
        asked = model_name + (f" version {version}" if version else "")
        message = f"no model {asked!r} here; this service serves {name!r} version {service.version}"
        return errors.ApiError(404, "model_not_found", message)

    def model_or_404(model_name: str, version: str | None = None) -> None:
        if model_name != name or (version is not None and version != service.version):
            raise not_found(model_name, version)

    @app.get(paths.server, include_in_schema=False)
    async def server_metadata() -> Response:
        metadata = ServerMetadata(__name__.split(".")[0], __version__, ["binary_tensor_data"])
        return Response(_encode(metadata), media_type=JSON)

    @app.get(paths.live, include_in_schema=False)
    async def live() -> Response:
        return Response(b'{"live":true}', media_type=JSON)

    @app.get(paths.ready, include_in_schema=False)
    async def ready() -> Response:
        if not service.ready:
            raise errors.not_ready("draining" if service.draining else "the model is loading")
        return Response(b'{"ready":true}', media_type=JSON)

    @app.get("/v2/models/{model_name}", include_in_schema=False)
    @app.get("/v2/models/{model_name}/versions/{version}", include_in_schema=False)
    async def model_metadata(request: Request, model_name: str, version: str | None = None):
        model_or_404(model_name, version)
        if not service.authorised(request.headers.get("x-api-key")):
            raise errors.unauthorised()
        if service.model is None:
            raise errors.not_ready()
        return Response(_encode(service.protocol.metadata(service.version)), media_type=JSON)

    @app.get("/v2/models/{model_name}/ready", include_in_schema=False)
    @app.get("/v2/models/{model_name}/versions/{version}/ready", include_in_schema=False)
    async def model_ready(model_name: str, version: str | None = None) -> Response:
        model_or_404(model_name, version)
        if service.model is None:
            raise errors.not_ready()
        return Response(b'{"ready":true}', media_type=JSON)

    # This model's own inference paths are hot routes: only other names and versions come here.
    @app.post("/v2/models/{model_name}/infer", include_in_schema=False)
    @app.post("/v2/models/{model_name}/versions/{version}/infer", include_in_schema=False)
    async def unknown_model(model_name: str, version: str | None = None) -> Response:
        raise not_found(model_name, version)

    return paths, resolve
