"""Training under `accelerate launch`: the launch arguments params give, a step's samples independent of how
its global batch is split, DriveFine's gradient blocking under DDP with 2 CPU processes (gloo), and the
launched processes' exit code reaching the stage's caller (the flow retries EXIT_TRANSIENT = 75)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drivefine_core.training.data import SeededBatches
from drivefine_core.training.launch import launch_args, resolve_processes
from drivefine_core.training.params import LaunchParams
from tests.training.launched import REFINE_OWNED

REPO = Path(__file__).resolve().parents[2]


def test_auto_uses_every_visible_gpu_or_one_process_without_one() -> None:
    auto = LaunchParams()
    assert resolve_processes(auto, gpus=0) == 1
    assert resolve_processes(auto, gpus=4) == 4
    assert resolve_processes(LaunchParams(processes=2), gpus=0) == 2
    assert resolve_processes(LaunchParams(config_file="infra/accelerate/multi_node.yaml"), gpus=8) is None


def test_launch_arguments() -> None:
    one = launch_args(LaunchParams(), "stages.sft", gpus=0, cores=8, env={})
    assert one[-2:] == ["--module", "stages.sft"] and "--multi_gpu" not in one
    assert one[one.index("--num_processes") + 1] == "1"
    assert one[one.index("--num_cpu_threads_per_process") + 1] == "8"  # torch's own default for one process
    assert one[one.index("--mixed_precision") + 1] == "no"  # each run sets its own precision
    gpus = launch_args(LaunchParams(), "stages.rl", gpus=4, cores=8, env={"OMP_NUM_THREADS": "3"})
    assert "--multi_gpu" in gpus and gpus[gpus.index("--num_processes") + 1] == "4"
    assert gpus[gpus.index("--num_cpu_threads_per_process") + 1] == "3"
    node = launch_args(LaunchParams(config_file="infra/accelerate/multi_node.yaml"), "stages.sft", gpus=8, cores=32,
                       env={"NODE_RANK": "1", "MASTER_ADDR": "10.0.0.2"})
    assert node[:6] == ["--config_file", "infra/accelerate/multi_node.yaml", "--machine_rank", "1",
                        "--main_process_ip", "10.0.0.2"]
    assert "--num_processes" not in node  # the config's total over the machines applies
    from accelerate.commands.launch import launch_command_parser

    for args in (one, gpus, node):  # every flag is one this accelerate knows
        parsed = launch_command_parser().parse_args(args)
        assert parsed.module and parsed.training_script in ("stages.sft", "stages.rl")


def test_a_steps_samples_do_not_depend_on_the_split() -> None:
    """Shard j of step s holds the same samples for 1 process x 2 micro-steps and 2 processes x 1, also where
    the data does not divide into whole steps (7 samples, steps of 4: one step per epoch)."""
    data, ident = list(range(7)), (lambda items: items)
    one = SeededBatches(data, 2, seed=1, grad_accum=2, collate=ident)
    two = [SeededBatches(data, 2, seed=1, rank=r, world_size=2, collate=ident) for r in (0, 1)]
    for step in range(4):
        assert [one(2 * step), one(2 * step + 1)] == [two[0](step), two[1](step)]
        assert len(set(one(2 * step) + one(2 * step + 1))) == 4
    with pytest.raises(ValueError, match="fewer than one global batch"):
        SeededBatches(data, 2, world_size=2, grad_accum=2, collate=ident)


def _launched(tmp_path: Path, processes: int, task: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "tests.training.launched", str(processes), task, str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    return proc, out


def test_gradient_blocking_holds_under_ddp_and_the_exit_code_reaches_the_caller(tmp_path: Path) -> None:
    proc, out = _launched(tmp_path, 2, "blocking")
    assert proc.returncode == 75, proc.stderr[-4000:]  # the last rank's exit code, through torch's launcher
    report = json.loads(out.read_text())
    assert report["processes"] == 2 and report["distributed_type"].endswith("MULTI_CPU")
    # the refinement loss moved only the refinement expert: shared / generation weights kept no gradient
    # at all (weight decay is on, so a zero gradient from DDP would have moved them too)
    assert report["refine"] and all(n.startswith(REFINE_OWNED) for n in report["refine"])
    # the generation loss never reached the refinement expert, and did train the shared path
    assert not any(n.startswith(REFINE_OWNED) for n in report["mdm"])
    assert any(n.startswith("backbone.shared.") for n in report["mdm"])
    assert len(set(report["digests"])) == 1  # the ranks saw different samples, yet hold the same weights


def test_one_launched_process_exit_code_reaches_the_caller(tmp_path: Path) -> None:
    proc, _ = _launched(tmp_path, 1, "exit75")
    assert proc.returncode == 75, proc.stderr[-3000:]  # through accelerate's simple launcher
