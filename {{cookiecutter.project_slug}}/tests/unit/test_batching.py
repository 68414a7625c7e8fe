"""The dynamic batcher: queued requests share one model call, and each keeps its own outcome."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.serving import batching
from {{ cookiecutter.package_name }}.serving.batching import Batcher, LoopBatcher


class Model:
    """predict = the row sums; records the number of rows of each call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, tensor: np.ndarray) -> np.ndarray:
        self.calls.append(len(tensor))
        return tensor.sum(axis=1)


def rows(*values: float) -> np.ndarray:
    return np.array([[v, 0.0] for v in values], dtype=np.float32)


def prepare(tensor: np.ndarray, gate: threading.Event | None = None):
    if gate is not None:
        gate.wait(5)  # holds the worker, so the requests behind it queue up
    if tensor is None:
        raise ValueError("bad body")
    return tensor, lambda p: p.tolist()


async def submit_behind_a_busy_worker(batcher: Batcher, bodies: list) -> list:
    """The first request occupies the worker until the others are queued."""
    gate = threading.Event()
    first = batcher.submit(prepare, rows(0.5), gate)
    await asyncio.sleep(0.05)  # the worker has taken the first one and waits at the gate
    rest = [batcher.submit(prepare, body) for body in bodies]
    gate.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


@pytest.fixture
def model_and_batcher():
    model = Model()
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield model, Batcher(executor, lambda: model.predict)


def test_queued_requests_share_one_model_call(model_and_batcher) -> None:
    model, batcher = model_and_batcher
    results = asyncio.run(submit_behind_a_busy_worker(batcher, [rows(1), rows(2, 3), rows(4)]))
    assert results == [[0.5], [1.0], [2.0, 3.0], [4.0]]
    assert model.calls == [1, 4]  # the first alone, then the three queued ones together


def test_a_bad_body_fails_only_its_own_request(model_and_batcher) -> None:
    model, batcher = model_and_batcher
    results = asyncio.run(submit_behind_a_busy_worker(batcher, [rows(1), None, rows(2)]))
    assert results[0] == [0.5] and results[1] == [1.0] and results[3] == [2.0]
    assert isinstance(results[2], ValueError)
    assert model.calls == [1, 2]


def test_a_failing_model_call_fails_its_group_and_the_batcher_goes_on(model_and_batcher) -> None:
    model, batcher = model_and_batcher
    broken = {"on": True}

    def flaky(tensor: np.ndarray) -> np.ndarray:
        if broken.pop("on", False):
            raise RuntimeError("model fault")
        return model.predict(tensor)

    batcher.predict = lambda: flaky

    async def scenario():
        first = await asyncio.gather(batcher.submit(prepare, rows(1)), return_exceptions=True)
        second = await batcher.submit(prepare, rows(2))
        return first, second

    first, second = asyncio.run(scenario())
    assert isinstance(first[0], RuntimeError)
    assert second == [2.0]


def test_large_requests_are_not_stacked(model_and_batcher, monkeypatch) -> None:
    model, batcher = model_and_batcher
    monkeypatch.setattr(batching, "MAX_STACKED_ROWS", 3)
    results = asyncio.run(submit_behind_a_busy_worker(batcher, [rows(1, 1), rows(2, 2), rows(3)]))
    assert results[1:] == [[1.0, 1.0], [2.0, 2.0], [3.0]]
    assert model.calls == [1, 2, 3]  # 2 + 2 > 3: the second pair starts a new call


def test_a_cancelled_request_is_skipped(model_and_batcher) -> None:
    _, batcher = model_and_batcher

    async def scenario():
        gate = threading.Event()
        first = batcher.submit(prepare, rows(0.5), gate)
        await asyncio.sleep(0.05)
        gone = batcher.submit(prepare, rows(9))
        kept = batcher.submit(prepare, rows(1))
        gone.cancel()  # as the guard does when a request's deadline passes
        gate.set()
        return await first, await kept

    assert asyncio.run(scenario()) == ([0.5], [1.0])


# -- the event-loop batcher (bodies up to OFFLOAD_BODY_BYTES) ----------------------------------
def test_requests_of_one_loop_turn_share_one_model_call() -> None:
    model = Model()
    batcher = LoopBatcher(lambda: model.predict)

    async def scenario():
        futures = [batcher.submit(prepare, body) for body in (rows(1), rows(2, 3), rows(4))]
        later = await asyncio.gather(*futures)
        return later, await batcher.submit(prepare, rows(5))

    assert asyncio.run(scenario()) == ([[1.0], [2.0, 3.0], [4.0]], [5.0])
    assert model.calls == [4, 1]  # one call for the first turn's rows, one for the next


def test_on_the_loop_a_bad_body_fails_at_once_and_a_model_fault_fails_its_group() -> None:
    model = Model()
    batcher = LoopBatcher(lambda: model.predict)

    async def scenario():
        with pytest.raises(ValueError, match="bad body"):
            batcher.submit(prepare, None)  # decoded on submit: its own error, no queue
        kept = batcher.submit(prepare, rows(1))
        gone = batcher.submit(prepare, rows(9))
        gone.cancel()  # a request whose deadline passed is not answered
        assert await kept == [1.0]
        batcher.predict = lambda: (_ for _ in ()).throw(RuntimeError("model fault"))
        failed = await asyncio.gather(batcher.submit(prepare, rows(2)), return_exceptions=True)
        batcher.predict = lambda: model.predict
        return failed, await batcher.submit(prepare, rows(3))

    failed, after = asyncio.run(scenario())
    assert isinstance(failed[0], RuntimeError) and after == [3.0]
