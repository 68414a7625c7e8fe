"""Dynamic batching: the requests waiting for the worker thread are scored in one model call.

Every prediction body goes to the one worker thread (``Service.run``). While it scores, new
requests queue up; when it is free again it takes them all, decodes each, runs ONNX Runtime once
on their rows stacked together and hands every request its own slice of the scores. This is the
dynamic batcher of Triton or TorchServe without a wait: a request that finds the worker idle is
scored at once, so batches form only when there is a queue. Per queue drained instead of per
request: one model call, one wake-up of the worker and one of the event loop (docs/serving.md
has the measurement).

A bad body fails only its own request (the exception travels in its own future), and a request
that timed out meanwhile is not answered (the guard cancelled its future).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

Finish = Callable[[np.ndarray], Any]  # the request's scores → its result
Prepare = Callable[..., tuple[np.ndarray, Finish]]  # the request → (its tensor, its finish)
Predict = Callable[[np.ndarray], np.ndarray]

# Rows stacked into one model call at most: a larger request is scored on its own (stacking it
# would copy its tensor for nothing: one call is already amortised over its rows).
MAX_STACKED_ROWS = 256


@dataclass
class Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    prepare: Prepare
    args: tuple
    tensor: np.ndarray | None = None
    finish: Finish | None = None
    error: BaseException | None = None
    value: Any = None


class Batcher:
    def __init__(self, executor: Executor, predict: Callable[[], Predict]):
        self.executor = executor  # one thread: the model runs one call at a time
        self.predict = predict  # returns the loaded model's predict
        self._queue: deque[Job] = deque()
        self._lock = threading.Lock()
        self._busy = False

    def submit(
        self, prepare: Prepare, *args: Any, loop: asyncio.AbstractEventLoop | None = None
    ) -> asyncio.Future:
        """On the event loop (``loop``, if the caller knows it): queue ``prepare(*args)``; the
        future gets ``finish(scores)``."""
        loop = loop or asyncio.get_running_loop()
        job = Job(loop, loop.create_future(), prepare, args)
        with self._lock:
            self._queue.append(job)
            wake = not self._busy
            self._busy = True
        if wake:
            self.executor.submit(self._drain)
        return job.future

    # -- the worker thread -----------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._busy = False
                    return
                jobs = list(self._queue)
                self._queue.clear()
            try:
                self._score(jobs)
            except Exception as exc:  # a fault of ours: every request of the batch is a 500
                for job in jobs:
                    job.error = job.error or exc
            _answer(jobs)

    def _score(self, jobs: list[Job]) -> None:
        ready = []
        for job in jobs:
            try:
                job.tensor, job.finish = job.prepare(*job.args)
                ready.append(job)
            except Exception as exc:  # the client's bad body: its own 4xx
                job.error = exc
        for group in _groups(ready):
            _run(self.predict, group)


def _groups(jobs: list[Job]) -> Iterator[list[Job]]:
    """The jobs in consecutive groups of at most MAX_STACKED_ROWS rows (a larger job alone)."""
    group: list[Job] = []
    rows = 0
    for job in jobs:
        n = len(job.tensor)  # type: ignore[arg-type]
        if group and rows + n > MAX_STACKED_ROWS:
            yield group
            group, rows = [], 0
        group.append(job)
        rows += n
    if group:
        yield group


def _run(predict: Callable[[], Predict], group: list[Job]) -> None:
    """One model call for the group's stacked rows; each job gets its slice's outcome."""
    tensors = [job.tensor for job in group]
    try:
        p = predict()(tensors[0] if len(group) == 1 else np.concatenate(tensors))
    except Exception as exc:
        for job in group:
            job.error = exc
        return
    start = 0
    for job in group:
        end = start + len(job.tensor)  # type: ignore[arg-type]
        try:
            job.value = job.finish(p[start:end])  # type: ignore[misc]
        except Exception as exc:
            job.error = exc
        start = end


class LoopBatcher:
    """The same stacking on the event loop, for small bodies: each request is decoded in its
    own task as it arrives (a bad body fails there, before any queue), and the rows of every
    request decoded in one turn of the loop go through one model call at the start of the next
    turn. No thread hop: the worker thread's wake-ups and futures cost more than a one-row
    request's own work (docs/serving.md)."""

    def __init__(self, predict: Callable[[], Predict]):
        self.predict = predict
        self._pending: list[Job] = []

    def submit(
        self, prepare: Prepare, *args: Any, loop: asyncio.AbstractEventLoop | None = None
    ) -> asyncio.Future:
        loop = loop or asyncio.get_running_loop()
        tensor, finish = prepare(*args)
        job = Job(loop, loop.create_future(), prepare, args, tensor, finish)
        self._pending.append(job)
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return job.future

    def _flush(self) -> None:
        jobs, self._pending = self._pending, []
        try:
            for group in _groups(jobs):
                _run(self.predict, group)
        except Exception as exc:  # a fault of ours: every request of this turn is a 500
            for job in jobs:
                job.error = job.error or exc
        _resolve(jobs)


def _answer(jobs: list[Job]) -> None:
    """Hand the outcomes to their event loops: one wake-up per loop (normally one)."""
    loops: dict[asyncio.AbstractEventLoop, list[Job]] = {}
    for job in jobs:
        loops.setdefault(job.loop, []).append(job)
    for loop, waiting in loops.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, waiting)


def _resolve(jobs: list[Job]) -> None:
    """On the event loop: answer each waiting request (a cancelled one stopped waiting)."""
    for job in jobs:
        if job.future.cancelled():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.value)
