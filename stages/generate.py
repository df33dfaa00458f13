"""Stage generate: the synthetic world (nuPlan GPKG maps, OpenScene logs, camera JPEGs) in data/synthetic.

With a real NAVSIM source (params data.source) the stage writes only a note saying it was not needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow

from drivefine_core.data.synthetic.world import generate_world
from drivefine_core.executor.core import make_executor
from stages._common import main, open_run, write_json

OUT = Path("data/synthetic")


def run(params) -> None:
    with open_run("generate", params, params.generate):
        tmp = OUT.with_name(OUT.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        if not params.data.synthetic:
            write_json(tmp / "NOT_GENERATED.json", {"reason": f"data.source is {params.data.source!r}"})
            summary = {"logs": 0, "frames": 0}
        else:
            workers = min(params.generate.workers, params.generate.num_logs)
            world = generate_world(tmp, params.generate, executor=make_executor(params.executor, workers))
            summary = {"logs": sum(len(v) for v in world.logs.values()), "frames": world.frames,
                       "images": world.images, "seconds": round(world.seconds, 2),
                       "frames_per_s": round(world.frames / max(world.seconds, 1e-9), 1),
                       **{f"logs_{k}": len(v) for k, v in world.logs.items()}}
        shutil.rmtree(OUT, ignore_errors=True)
        tmp.rename(OUT)  # the folder appears whole or not at all
        write_json("metrics/generate.json", summary)
        mlflow.log_metrics({k: float(v) for k, v in summary.items()})
        print(f"generate: {summary}")


if __name__ == "__main__":
    main(run)
