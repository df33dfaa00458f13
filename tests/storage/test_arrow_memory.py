"""The stages' Arrow allocator: mimalloc (pyarrow's default on Linux) is replaced unless the user chose a pool.
Each case runs in a fresh interpreter: the pool is process-wide and must be set before buffers exist."""

import os
import subprocess
import sys

import pytest

SNIPPET = ("import pyarrow as pa; from drivefine_core.storage.arrow_memory import use_fast_arrow_pool; "
           "got = use_fast_arrow_pool(); print(got, pa.default_memory_pool().backend_name)")


def _run(env_pool: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env_pool:
        env["ARROW_DEFAULT_MEMORY_POOL"] = env_pool
    out = subprocess.run([sys.executable, "-c", SNIPPET], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_mimalloc_is_left_for_jemalloc_or_the_system_allocator():
    got, default = _run(None)
    assert got == default and got in ("jemalloc", "system")


@pytest.mark.parametrize("chosen", ["mimalloc", "system"])
def test_a_pool_the_user_chose_is_kept(chosen):
    assert _run(chosen) == [chosen, chosen]
