"""The training stages' entry point: the command DVC runs (`python -m stages.sft`) starts the same module
again under `accelerate launch` with launch.processes processes and exits with their exit code; each launched
process then runs the stage (stages/_common.main)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from drivefine_core.config import Params
from drivefine_core.training.launch import inside_launch, launch
from stages._common import load_params_or_exit, main


def launched_main(stage_main: Callable[[Params], None]) -> None:
    if inside_launch():
        main(stage_main)
        return
    spec = sys.modules["__main__"].__spec__
    if spec is None:
        sys.exit("error: run a training stage as a module: python -m stages.<name>")
    sys.exit(launch(load_params_or_exit().launch, spec.name))
