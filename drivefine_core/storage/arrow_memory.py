"""Which allocator holds the process's Arrow buffers.

pyarrow allocates from mimalloc by default on Linux. Reading a split's metric caches, a process keeps
allocating fresh buffers, and mimalloc spends kernel time on each: the ladder's train split (4,862 scenes, 1.1 GB
of files) took 26 s with mimalloc and 12 s with jemalloc on the bench machine; bench/arrow_memory.py measures
it on a smaller world. The stages switch to jemalloc (the system allocator where a pyarrow build lacks it); a
pool chosen with ARROW_DEFAULT_MEMORY_POOL is left as it is.
"""

from __future__ import annotations

import os

import pyarrow as pa


def use_fast_arrow_pool() -> str:
    """Make jemalloc (else the system allocator) Arrow's default pool unless ARROW_DEFAULT_MEMORY_POOL names
    one; returns the backend in use. Buffers allocated before keep the pool they came from."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        try:
            pool = pa.jemalloc_memory_pool()
        except NotImplementedError:  # ArrowNotImplementedError: this build has no jemalloc
            pool = pa.system_memory_pool()
        pa.set_memory_pool(pool)
    return pa.default_memory_pool().backend_name
