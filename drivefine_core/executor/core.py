"""One way to run per-log work everywhere: in this process, in a local process pool, or as Ray tasks.

`executor.map(fn, items, shared=...)` calls `fn(shared, item)` once per item and yields a `Done` per
item. `shared` is what every call reads (maps, rasters, params): sent once per worker process (inherited
through fork, or put once in Ray's object store), never once per item. `fn` must be a module-level
function and items picklable. At most `window` items are in flight, so a stream of logs never sits in
memory whole. An exception `fn` raises comes back in that item's `Done` (its original type), so the
caller decides whether it fails one log or the stage.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tqdm import tqdm

from drivefine_core.executor.params import ExecutorParams

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int, "int | None"], None]


class WorkerLostError(RuntimeError):
    """The process or node running a call died more often than the executor retries (Ray's max_retries)."""


@dataclass
class Done(Generic[R]):
    index: int  # position of the item in the input
    value: R | None = None
    error: BaseException | None = None

    def result(self) -> R:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class Backend:
    """Submits one call, waits for some. Subclasses: serial, process pool, Ray."""

    name = "?"
    slots = 1  # calls that run at once

    def start(self, fn: Callable[[Any, Any], Any], shared: Any) -> None:
        raise NotImplementedError

    def submit(self, item: Any) -> Any:  # -> a handle
        raise NotImplementedError

    def wait(self, handles: list[Any]) -> list[tuple[Any, Any, BaseException | None]]:
        """At least one finished call: (handle, value, error)."""
        raise NotImplementedError

    def stop(self, pending: list[Any]) -> None:
        """Release workers; `pending`: calls still running when the caller stopped early."""


class Executor:
    """Runs `fn(shared, item)` for every item on a backend, with a bounded window and a progress bar."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def slots(self) -> int:
        return self.backend.slots

    def map(self, fn: Callable[[Any, T], R], items: Iterable[T], *, shared: Any = None, total: int | None = None,
            desc: str = "logs", ordered: bool = False, window: int | None = None,
            progress: bool | Progress = True) -> Iterator[Done[R]]:
        """Done per item: in input order when `ordered`, else as they finish. `progress`: a tqdm bar of logs
        done / total (True), none (False), or a callback(done, total)."""
        backend = self.backend
        backend.start(fn, shared)  # a Ray backend counts the cluster's CPUs here: it may have grown
        window = max(1, window or 2 * self.slots)
        bar = tqdm(total=total, desc=f"{desc} [{self.name}]", unit="log", disable=progress is not True)
        pending: dict[Any, int] = {}
        buffered: dict[int, Done[R]] = {}
        source = enumerate(items)
        exhausted, next_out, finished = False, 0, 0
        try:
            while True:
                while not exhausted and len(pending) + len(buffered) < window:
                    nxt = next(source, None)
                    if nxt is None:
                        exhausted = True
                    else:
                        pending[backend.submit(nxt[1])] = nxt[0]
                if not pending and not buffered:
                    return
                for handle, value, error in backend.wait(list(pending)) if pending else []:
                    buffered[pending.pop(handle)] = Done(-1, value, error)
                ready = sorted(buffered) if not ordered else []
                if ordered:
                    while next_out in buffered:
                        ready.append(next_out)
                        next_out += 1
                for i in ready:
                    done = buffered.pop(i)
                    done.index = i
                    finished += 1
                    bar.update(1)
                    if callable(progress):
                        progress(finished, total)
                    yield done
        finally:
            bar.close()
            backend.stop(list(pending))


def ray_address(params: ExecutorParams | None) -> str:
    """The Ray cluster named by params, else by RAY_ADDRESS; '' = none."""
    return (params.ray_address if params is not None else "") or os.environ.get("RAY_ADDRESS", "")


def make_executor(params: ExecutorParams | None = None, workers: int | None = None) -> Executor:
    """Ray tasks when a cluster is named, else `workers` local processes (default params.workers), else
    this process."""
    params = params or ExecutorParams()
    address = ray_address(params)
    if address:
        from drivefine_core.executor.ray_backend import RayBackend  # Ray is imported only when a cluster is named

        return Executor(RayBackend(address, params.max_retries, params.cpus_per_task))
    n = workers if workers is not None else params.workers
    if n > 1:
        from drivefine_core.executor.local import PoolBackend

        return Executor(PoolBackend(n))
    from drivefine_core.executor.local import SerialBackend

    return Executor(SerialBackend())
