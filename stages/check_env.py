"""Stage check_env: record the software and hardware a pipeline run used (lineage of the environment)."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import sys

import mlflow

from stages._common import main, open_run, write_json


def collect(packages: list[str]) -> dict:
    import torch  # imported here: this stage is the one place that reports on it

    versions = {}
    for name in packages:
        try:
            versions[name] = md.version(name.replace("_", "-"))
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "packages": versions,
    }


def run(params) -> None:
    with open_run("check_env", params, params.run):
        env = collect(params.run.record_packages)
        write_json("data/env/environment.json", env)
        write_json("metrics/check_env.json", {"cpu_count": env["cpu_count"], "cuda_devices": len(env["cuda_devices"])})
        mlflow.log_dict(env, "environment.json")
        mlflow.set_tags({f"version.{k}": v for k, v in env["packages"].items()})
        print(f"check_env: python {env['python']}, torch {env['packages'].get('torch')}, "
              f"{env['cpu_count']} CPUs, CUDA devices: {env['cuda_devices'] or 'none'}")


if __name__ == "__main__":
    main(run)
