"""Programs the distributed tests start under `accelerate launch` (drivefine_core.training.launch):

    python -m tests.training.launched <processes> blocking <out.json>   DriveFine's gradient blocking under DDP
    python -m tests.training.launched <processes> exit75 <out.json>     the last rank exits with 75

`blocking` trains DriveFine's parameters one step on the refinement loss alone, then one step on the
generation loss alone (weight decay on, so a parameter that got a zero gradient instead of none would move),
and reports which parameters changed and a digest of every rank's weights; then, like `exit75`, its last
rank exits with 75 (one launch checks both)."""

from __future__ import annotations

import hashlib
import json
import sys

from drivefine_core.training.launch import inside_launch, launch
from drivefine_core.training.params import LaunchParams

REFINE_OWNED = ("backbone.experts.refine.", "backbone.norms.refine.", "refine_head.")


def blocking(out: str) -> None:
    import torch
    from accelerate.utils import gather_object

    from drivefine_core.models import DriveFinePlanner, PlannerBatch
    from drivefine_core.training.data import SeededBatches
    from drivefine_core.training.loop import Trainer, make_accelerator
    from drivefine_core.training.params import OptimParams
    from tests.training.scenes import tiny_params, toy_scenes

    torch.set_num_threads(1)
    acc = make_accelerator()
    torch.manual_seed(0)
    p = tiny_params()
    planner = DriveFinePlanner(p)
    data = [s for s, _ in toy_scenes(p)]
    order = SeededBatches(data, 2, 0, acc.process_index, acc.num_processes)
    model = planner.drivefine
    report: dict[str, object] = {"processes": acc.num_processes, "distributed_type": str(acc.distributed_type)}
    for objective in ("refine", "mdm"):
        before = {n: q.detach().clone() for n, q in model.named_parameters()}
        opt = OptimParams(steps=1, batch_size=2, lr=1e-2, warmup_steps=0, weight_decay=0.1)
        trainer = Trainer(planner, model.parameters(), opt, accelerator=acc, name=f"only_{objective}")
        trainer.fit(lambda k: PlannerBatch.of(order(k), acc.device),
                    lambda batch, g, o=objective: (planner.losses(batch, o, generator=g)[o], {}))
        report[objective] = sorted(n for n, q in model.named_parameters() if not torch.equal(q, before[n]))
    digest = hashlib.sha256(b"".join(q.detach().numpy().tobytes() for q in planner.parameters())).hexdigest()
    report["digests"] = gather_object([digest])
    if acc.is_main_process:
        with open(out, "w") as f:
            json.dump(report, f)
    acc.wait_for_everyone()
    exit75(out)


def exit75(out: str) -> None:
    from drivefine_core.training.loop import make_accelerator

    acc = make_accelerator()
    if acc.process_index == acc.num_processes - 1:
        sys.exit(75)


if __name__ == "__main__":
    processes, task, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    if not inside_launch():
        sys.exit(launch(LaunchParams(processes=processes, threads_per_process=1), "tests.training.launched",
                        tuple(sys.argv[1:])))
    {"blocking": blocking, "exit75": exit75}[task](out)
