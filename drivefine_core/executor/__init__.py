"""Per-log work on one executor: this process, a local process pool, or Ray tasks (see core.py).

Nothing is imported here, so that params.yaml's loader (which reads params.py) does not make every stage
depend on the executor's code."""
