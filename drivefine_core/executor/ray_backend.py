"""Per-log calls as Ray tasks on the cluster at `address` (imported only when a cluster is named).

- `shared` is put once in the object store; each worker process reads it once and keeps it for the next
  calls of the same map (numpy arrays in it are read zero-copy).
- A task runs in the caller's working directory, so the stages' relative paths mean the same files: every
  Ray node must see the workspace at the same path (the shared volume of infra/), or the data live on s3://.
- A worker process or node that dies mid-task is replaced and the task run again, up to `max_retries`
  times; outputs are written atomically (temp name, then rename), so a killed attempt leaves no half file.
  An exception the task raises is not retried: it comes back to the caller, which fails that log.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable

import ray

from drivefine_core.executor.core import Backend, WorkerLostError

# Forwarded to the workers when this process starts the connection: the storage endpoint and credentials
# the stages read from the environment.
FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_DEFAULT_REGION", "MLFLOW_S3_ENDPOINT_URL", "OMP_NUM_THREADS")

_SHARED: dict[str, Any] = {}  # object id -> the shared value of the map this worker process serves


def _run_task(fn: Callable[[Any, Any], Any], boxed_ref: list, item: Any, cwd: str) -> Any:
    ref = boxed_ref[0]  # boxed so that Ray hands over the reference, not a fresh copy per task
    key = ref.hex()
    if key not in _SHARED:
        _SHARED.clear()
        _SHARED[key] = ray.get(ref)
    if not os.path.isdir(cwd):
        raise FileNotFoundError(f"Ray node {socket.gethostname()} does not see the workspace {cwd}: mount it at "
                                "the same path on every node (infra/README.md), or keep the data on s3://")
    os.chdir(cwd)
    return fn(_SHARED[key], item)


def connect(address: str) -> None:
    """Join the cluster once per process (a caller that already ran ray.init keeps its connection)."""
    if ray.is_initialized():
        return
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    ray.init(address=address, runtime_env={"env_vars": env} if env else None, log_to_driver=True,
             logging_level="WARNING")


class RayBackend(Backend):
    def __init__(self, address: str, max_retries: int, cpus_per_task: float) -> None:
        connect(address)
        self.cpus_per_task = cpus_per_task
        self._count_cpus()
        self.task = ray.remote(_run_task).options(max_retries=max_retries, retry_exceptions=False,
                                                  num_cpus=cpus_per_task)

    def _count_cpus(self) -> None:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        self.slots = max(1, int(cpus // self.cpus_per_task))
        self.name = f"Ray, {cpus:g} CPUs"

    def start(self, fn: Callable[[Any, Any], Any], shared: Any) -> None:
        self._count_cpus()
        self.fn, self.shared_ref, self.cwd = fn, ray.put(shared), os.getcwd()

    def submit(self, item: Any) -> Any:
        return self.task.remote(self.fn, [self.shared_ref], item, self.cwd)

    def wait(self, handles: list[Any]) -> list[tuple[Any, Any, BaseException | None]]:
        ready, _ = ray.wait(handles, num_returns=1)
        out = []
        for ref in ready:
            try:
                out.append((ref, ray.get(ref), None))
            except ray.exceptions.RayTaskError as exc:  # the task's own exception, with its original type
                cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                out.append((ref, None, cause))
            except ray.exceptions.RayError as exc:  # worker or node lost more often than max_retries allows
                out.append((ref, None, WorkerLostError(f"{type(exc).__name__}: {exc}")))
        return out

    def stop(self, pending: list[Any]) -> None:
        for ref in pending:  # the caller stopped early (an error): the rest would run for nothing
            ray.cancel(ref)
        self.shared_ref = None
