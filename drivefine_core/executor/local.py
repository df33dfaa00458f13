"""Backends on this machine: the calling process, and a pool of worker processes.

The pool forks where the OS can (as torch's DataLoader does): workers inherit `fn` and `shared` without
pickling, and spawned workers would re-import the stack, seconds each. Where only spawn exists, the pair
travels once per worker through cloudpickle (so closures work there too).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Callable

import cloudpickle

from drivefine_core.executor.core import Backend


class SerialBackend(Backend):
    name = "in-process"

    def start(self, fn: Callable[[Any, Any], Any], shared: Any) -> None:
        self.fn, self.shared, self.n = fn, shared, 0
        self.done: dict[int, tuple[Any, BaseException | None]] = {}

    def submit(self, item: Any) -> int:
        self.n += 1
        try:
            self.done[self.n] = (self.fn(self.shared, item), None)
        except Exception as exc:  # noqa: BLE001 - handed to the caller with its item
            self.done[self.n] = (None, exc)
        return self.n

    def wait(self, handles: list[Any]) -> list[tuple[Any, Any, BaseException | None]]:
        return [(h, *self.done.pop(h)) for h in handles]


_JOB: tuple[Callable[[Any, Any], Any], Any] | None = None  # (fn, shared) of this worker process


def _init_worker(job: Any) -> None:
    global _JOB
    _JOB = cloudpickle.loads(job) if isinstance(job, bytes) else job


def _call(item: Any) -> Any:
    assert _JOB is not None, "worker started without its job"
    fn, shared = _JOB
    return fn(shared, item)


class PoolBackend(Backend):
    def __init__(self, workers: int) -> None:
        self.slots = workers
        self.name = f"{workers} local processes"
        self.pool: ProcessPoolExecutor | None = None

    def start(self, fn: Callable[[Any, Any], Any], shared: Any) -> None:
        fork = "fork" in multiprocessing.get_all_start_methods()
        job = (fn, shared) if fork else cloudpickle.dumps((fn, shared))
        ctx = multiprocessing.get_context("fork" if fork else "spawn")
        self.pool = ProcessPoolExecutor(self.slots, mp_context=ctx, initializer=_init_worker, initargs=(job,))

    def submit(self, item: Any) -> Future:
        assert self.pool is not None
        return self.pool.submit(_call, item)

    def wait(self, handles: list[Any]) -> list[tuple[Any, Any, BaseException | None]]:
        finished, _ = wait(handles, return_when=FIRST_COMPLETED)
        return [(f, None, f.exception()) if f.exception() is not None else (f, f.result(), None) for f in finished]

    def stop(self, pending: list[Any]) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
