"""Where per-log work runs: the local process pool (the default) or a Ray cluster.

Not a DVC params dependency of any stage: the backend never changes an output, so moving a stage onto
Ray must not make DVC recompute it.
"""

from __future__ import annotations

from pydantic import Field

from drivefine_core.params_base import Section


class ExecutorParams(Section):
    # '' = the RAY_ADDRESS environment variable when set, else local processes. 'auto' joins the cluster this
    # machine belongs to (`ray start` ran here); 'ray://head:10001' a remote one through Ray Client.
    ray_address: str = ""
    # A task whose worker process or node died is run again this many times (Ray's max_retries); an error
    # the task itself raises is never retried: that log is reported failed.
    max_retries: int = Field(3, ge=0)
    cpus_per_task: float = Field(1.0, gt=0)  # Ray CPUs one log's task reserves
    # Local processes for ingest, metric_cache and the evaluate stage's scoring (generate.workers and
    # features.build_workers size those stages' pools). 1 = in this process.
    workers: int = Field(1, ge=1)
