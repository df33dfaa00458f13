"""Start a training stage's module under `accelerate launch` with the processes params name.

`python -m stages.sft` is the stage command DVC runs; stages/_common.main calls `launch` there, which hands
the same module to accelerate's launcher (one process: accelerate's simple launcher; more: torch's elastic
launcher, DDP over NCCL on GPUs or gloo on CPUs). The launched processes carry LAUNCHED_ENV, so they run the
stage instead of launching again. Importing this module imports no torch; `launch` does (accelerate does).
"""

from __future__ import annotations

import os
import sys

from drivefine_core.training.params import LaunchParams

LAUNCHED_ENV = "DRIVEFINE_LAUNCHED"


def inside_launch() -> bool:
    """True in a process that accelerate launch (or torchrun) started."""
    return bool(os.environ.get(LAUNCHED_ENV)) or "LOCAL_RANK" in os.environ


def resolve_processes(p: LaunchParams, gpus: int) -> int | None:
    """The process count to pass; None lets the accelerate config file decide (auto with a config)."""
    if p.processes != "auto":
        return p.processes
    return None if p.config_file else max(gpus, 1)


def launch_args(p: LaunchParams, module: str, gpus: int, cores: int, env: dict[str, str],
                script_args: tuple[str, ...] = ()) -> list[str]:
    """`accelerate launch` arguments that run `python -m <module> <script_args>` as params say.

    Without a config file every setting is given, so a default accelerate config on the machine does not
    change the run. Mixed precision is "no" here: each training run sets its own (OptimParams). With a
    config file (multi-node), NODE_RANK and MASTER_ADDR from the environment give this machine's rank and
    the main node's address (what an indexed Kubernetes Job / JobSet provides)."""
    n = resolve_processes(p, gpus)
    args: list[str] = []
    if p.config_file:
        args += ["--config_file", p.config_file]
        if env.get("NODE_RANK"):
            args += ["--machine_rank", env["NODE_RANK"]]
        if env.get("MASTER_ADDR"):
            args += ["--main_process_ip", env["MASTER_ADDR"]]
    else:
        args += ["--num_machines", "1", "--dynamo_backend", "no"]
        if n is not None and n > 1:
            args += ["--multi_gpu"]  # accelerate's name for one process per device: gloo when there is no GPU
    args += ["--mixed_precision", "no"]
    if n is not None:
        args += ["--num_processes", str(n)]
    threads = p.threads_per_process or int(env.get("OMP_NUM_THREADS") or 0) or max(1, cores // (n or 1))
    args += ["--num_cpu_threads_per_process", str(threads), "--module", module, *script_args]
    return args


def launch(p: LaunchParams, module: str, script_args: tuple[str, ...] = ()) -> int:
    """Run `python -m <module> <script_args>` under accelerate launch; the exit code of the launched
    processes (the first failing one's; 128 + N for a process killed by signal N), so a stage's
    EXIT_TRANSIENT still reaches the flow."""
    import subprocess

    import torch
    from accelerate.commands.launch import launch_command, launch_command_parser

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    argv = launch_args(p, module, gpus, torch.get_num_threads(), dict(os.environ), script_args)
    print("accelerate launch " + " ".join(argv), file=sys.stderr, flush=True)
    before = os.environ.get(LAUNCHED_ENV)
    os.environ[LAUNCHED_ENV] = "1"  # the launchers hand this process's environment to the processes
    try:
        launch_command(launch_command_parser().parse_args(argv))
    except subprocess.CalledProcessError as exc:  # the simple launcher (one process)
        return exc.returncode or 1
    except Exception as exc:  # torch's elastic launcher: ChildFailedError holds each failed rank's exit code
        first = getattr(exc, "get_first_failure", None)
        if first is None:
            raise
        code = first()[1].exitcode  # the earliest failure; the other ranks were then terminated
        return code if code > 0 else 128 - code if code < 0 else 1
    finally:
        if before is None:
            os.environ.pop(LAUNCHED_ENV, None)
        else:
            os.environ[LAUNCHED_ENV] = before
    return 0
