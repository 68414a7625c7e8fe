"""What the routes share: settings, the schema-driven decoder, the model and its readiness.

``Service.score`` is the whole prediction: body bytes in, response bytes out (or ``MalformedBody``
/ ``InvalidInput`` for bad input). It runs in the worker thread or inline, and never touches
HTTP, so the guard, the routes, the tests and the bench all call the same thing.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import numpy as np

from ..features import FieldError
from .batching import Batcher, LoopBatcher
from .config import Settings
from .decoding import Decoded, InvalidInput, RequestDecoder
from .logs import SAMPLE_EVENT, SAMPLE_LOGGER
from .metrics import Metrics
from .model import Model, load_schema
from .open_inference import InferenceDecoder
from .responses import Prediction, batch_response

log = logging.getLogger(__name__)
sample_log = logging.getLogger(SAMPLE_LOGGER)

_encode = msgspec.json.Encoder().encode


class Service:
    def __init__(self, settings: Settings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.schema = load_schema(settings.model_dir)  # small, and the OpenAPI doc needs it
        self.decoder = RequestDecoder(self.schema, settings.max_batch_rows)
        self.protocol = InferenceDecoder(self.schema, self.decoder, settings.model_name)
        self.threshold = float(self.schema.threshold)
        self.model: Model | None = None
        self.version = ""
        self.draining = False
        self.on_fatal: Callable[[], None] = lambda: None
        # One worker: inference is single-threaded by design; a second batch waits its turn.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.batcher = Batcher(self.executor, lambda: self._model().predict)
        self.loop_batcher = LoopBatcher(lambda: self._model().predict)
        self._key_digests = [hashlib.sha256(k.encode()).digest() for k in settings.api_keys]
        self.sample_rate = settings.prediction_sample_rate
        self._sampler = np.random.default_rng()
        self.metrics.model_ready.set(0)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self.model is not None

    @property
    def ready(self) -> bool:
        return self.model is not None and not self.draining

    def load(self) -> None:
        """Load and warm the model (blocking); readiness turns on only at the end."""
        started = time.perf_counter()
        model = Model.load(self.settings.model_dir, self.schema)
        model.warm_up()
        self.model, self.version = model, model.version
        self.metrics.set_model(model.version, model.sha256)
        self.metrics.model_ready.set(1)
        log.info(
            "model ready",
            extra={
                "model_version": model.version,
                "sha256": model.sha256,
                "load_ms": round((time.perf_counter() - started) * 1e3, 1),
            },
        )
        # Everything loaded so far lives as long as the process: keep it out of the cyclic
        # GC's full collections (fewer latency spikes, a few % more throughput; measured).
        gc.collect()
        gc.freeze()

    async def load_in_background(self) -> None:
        """For an app whose model was not loaded before it started (tests, notebooks)."""
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.load)
        except Exception as exc:
            log.error("model load failed: %s", exc)
            self.on_fatal()

    def begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            log.info("draining: readiness is now 503, in-flight requests finish")

    # -- request work ----------------------------------------------------------------------
    def authorised(self, presented: str | bytes | None) -> bool:
        if self.settings.auth_disabled:
            return True
        if isinstance(presented, str):
            presented = presented.encode()
        digest = hashlib.sha256(presented or b"").digest()
        ok = False
        for key in self._key_digests:  # every key, every time: constant time over all keys
            ok |= hmac.compare_digest(digest, key)
        return ok

    async def run(
        self,
        body_size: int,
        prepare: Callable[..., Any],
        *args: Any,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Any:
        """A prediction: ``prepare(*args)`` gives (tensor, finish); the result is
        ``finish(scores)``. A body up to OFFLOAD_BODY_BYTES is decoded on the event loop and
        scored with the other small requests of the same loop turn; a larger one goes to the
        worker thread, stacked with the others waiting for it (batching.py). ``loop``: the
        running loop, if the caller has it at hand."""
        if body_size > self.settings.offload_body_bytes:
            return await self.batcher.submit(prepare, *args, loop=loop)
        return await self.loop_batcher.submit(prepare, *args, loop=loop)

    def _inline(self, prepare: Callable[..., Any], *args: Any) -> Any:
        tensor, finish = prepare(*args)
        return finish(self._model().predict(tensor))

    def _model(self) -> Model:
        model = self.model
        if model is None:  # the routes check readiness first; this guards direct callers
            raise RuntimeError("the model is not loaded")
        return model

    def score(self, body: bytes, request_id: str = "") -> bytes:
        """Body bytes → response bytes; raises MalformedBody / InvalidInput for bad input."""
        return self._inline(self.prepare_score, body, request_id)

    def prepare_score(self, body: bytes, request_id: str = "") -> tuple[np.ndarray, Callable]:
        """/v1/predict: the body's tensor, and how its scores become the response bytes."""
        decoded = self.decoder.decode_body(body)

        def finish(p: np.ndarray) -> bytes:
            self._observe(decoded, p, request_id)
            if not decoded.is_batch:
                value = float(p[0])
                return _encode(Prediction(value, int(value >= self.threshold), self.version))
            return batch_response(self.version, self.threshold, p)

        return decoded.tensor, finish

    def infer(
        self, body: bytes, header_length: bytes | None, request_id: str = ""
    ) -> tuple[bytes, bytes | None]:
        """An Open Inference Protocol request → (response body, its header length or None)."""
        return self._inline(self.prepare_infer, body, header_length, request_id)

    def prepare_infer(
        self, body: bytes, header_length: bytes | None, request_id: str = ""
    ) -> tuple[np.ndarray, Callable]:
        inference = self.protocol.decode(body, header_length)

        def finish(p: np.ndarray) -> tuple[bytes, bytes | None]:
            self._observe(inference.decoded, p, request_id)
            return self.protocol.response(inference, self.version, p, self.threshold)

        return inference.decoded.tensor, finish

    def _observe(self, decoded: Decoded, p: np.ndarray, request_id: str) -> None:
        """A request's scores: refused if one is not finite, else counted and sampled."""
        _require_finite(p)
        self.metrics.score.observe_many(p)
        if self.sample_rate:
            self._log_samples(decoded, p, request_id)

    def _log_samples(self, decoded: Decoded, p: np.ndarray, request_id: str) -> None:
        """Log a random fraction of the scored records, with their raw input, for drift."""
        chosen = np.flatnonzero(self._sampler.random(len(p)) < self.sample_rate)
        for i in chosen.tolist():
            sample_log.info(
                SAMPLE_EVENT,
                extra={
                    "event": SAMPLE_EVENT,
                    "features": decoded.record(i),
                    "p_hat": float(p[i]),
                    "model_version": self.version,
                    "request_id": request_id,
                },
            )


def _require_finite(p: np.ndarray) -> None:
    """A probability the model could not compute is the input's fault, not a 200 with null: a
    schema-valid row can still be far outside anything the model was trained on (e.g. numbers
    near float32's limits overflow a scaler's arithmetic into NaN)."""
    if len(p) == 1 and math.isfinite(p[0]):  # one row: a float check, not three NumPy calls
        return
    bad = np.flatnonzero(~np.isfinite(p))
    if len(bad):
        message = (
            "the model gives no probability for this row: its numbers are far outside the data "
            "it was trained on"
        )
        raise InvalidInput([FieldError("inputs", message, int(bad[0]))])
