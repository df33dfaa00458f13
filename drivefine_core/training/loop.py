"""The training loop every objective shares: accelerate, AdamW, cosine warm-up, accumulation, clipping,
mixed precision, checkpoints and exact resume.

Exact resume rests on two choices:
- data: micro-batch k is a pure function of (seed, k, rank) (data.SeededBatches), so only the step is saved;
- randomness: every shard of a step's global batch gets its own torch.Generator seeded from (seed, step,
  shard), handed to the loss (masking, rollouts, noise). No loss reads the global RNG, so a resumed run draws
  the same numbers. Global RNG states are saved as well, for code that does read them.

Distributed: the same code runs under `accelerate launch` (stages/launch.py). accelerate prepares the model
(DDP when there is more than one process) and the optimizer, `accumulate` skips the gradient all-reduce on
all but the last micro-step, and `clip_grad_norm_` clips. The planners train through methods (losses,
rollouts...), so the loss function runs inside an `Objective` module whose forward() DDP wraps; parameters
that the run does not train are frozen while it runs, so DDP holds (and all-reduces) only the trained ones.
A step's global batch is processes x grad_accum shards of batch_size samples; shard j = micro * processes +
rank reads the same samples and random numbers whatever the split, so 2 processes x 1 micro-step train the
same weights as 1 process x 2 micro-steps (up to float summation order).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, gather_object
from torch import Tensor, nn
from tqdm.auto import tqdm

from drivefine_core.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from drivefine_core.training.params import OptimParams
from drivefine_core.training.schedule import cosine_with_warmup, step_generator

LossFn = Callable[[Any, torch.Generator], tuple[Tensor, dict[str, float]]]
BatchFn = Callable[[int], Any]
MetricsCallback = Callable[[dict[str, float], int], None]


class StopTraining(Exception):
    """Raised by a callback to stop a run early (a test's stand-in for a killed process)."""


def make_accelerator(cpu: bool | None = None) -> Accelerator:
    """The process's accelerator (device, rank, world size; `accelerate launch` / torchrun set these up).
    cpu=None: use a GPU when there is one. Mixed precision is "no" here (whatever an accelerate config says)
    and set per run (Trainer), because accelerate's state is a per-process singleton while SFT phases may
    differ in precision.
    DDP: find_unused_parameters, because a step may leave trained parameters without a gradient (DriveFine's
    refinement expert before its warm start); a parameter no rank used keeps grad None, so AdamW leaves it
    alone."""
    if cpu is None:
        cpu = not torch.cuda.is_available()
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    return Accelerator(cpu=cpu, mixed_precision="no", kwargs_handlers=[ddp])


AUTOCAST_DTYPES = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainResult:
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per logged step
    resumed_from: int = 0
    seconds: float = 0.0
    samples: int = 0

    def curves(self, prefix: str, keys: tuple[str, ...] = ("loss", "reward")) -> dict[str, list[list[float]]]:
        """{"<prefix>/<key>": [[step, value], ...]} for logged keys starting with any of `keys` (the
        shape the report's training-curve reader takes)."""
        names = sorted({k for row in self.history if "step" in row for k in row if k.startswith(keys)})
        return {f"{prefix}/{k}": [[int(row["step"]), row[k]] for row in self.history if "step" in row and k in row]
                for k in names}

    def final(self, key: str) -> float:
        for row in reversed(self.history):
            if key in row:
                return row[key]
        raise KeyError(f"no logged value for '{key}'")


def _decay_groups(params: list[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only; norms, biases and embeddings-as-vectors stay undecayed."""
    decay = [p for p in params if p.dim() >= 2]
    other = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]


class Objective(nn.Module):
    """The module accelerate prepares: forward(k, generator) = loss_fn(batch_fn(k), generator).

    Holding `model` registers its parameters, so DDP's hooks see the gradients the loss produces however
    it reaches them. Only the micro-batch index and the generator pass through DDP's forward (DDP would
    otherwise walk and copy the batch's objects, e.g. metric caches)."""

    def __init__(self, model: nn.Module, batch_fn: BatchFn, loss_fn: LossFn) -> None:
        super().__init__()
        self.model, self.batch_fn, self.loss_fn = model, batch_fn, loss_fn

    def forward(self, k: int, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        return self.loss_fn(self.batch_fn(k), generator)


def _mean_over_processes(acc: Accelerator, logs: dict[str, float]) -> dict[str, float]:
    """Every process's logged values averaged. A key some process lacks counts 0 there, as a key one
    micro-step lacks does in the accumulated logs, so the logs do not depend on the split either."""
    if acc.num_processes == 1:
        return logs
    gathered: list[dict[str, float]] = gather_object([logs])
    keys = dict.fromkeys(k for d in gathered for k in d)
    return {k: sum(d.get(k, 0.0) for d in gathered) / len(gathered) for k in keys}


class Trainer:
    """Optimises `parameters` (a subset of `model`'s) on `loss_fn(batch, generator)`.

    `model` is what a checkpoint saves and restores (its whole state dict); `parameters` is what the optimizer
    updates (e.g. only the flow expert). `batch_fn(k)` gives micro-batch k (k = step * grad_accum + micro).
    `clip_groups` splits `parameters` into groups whose gradients are clipped each by its own norm: modules
    trained side by side on a summed loss (the two flow experts) then train as each would alone.
    """

    def __init__(
        self,
        model: nn.Module,
        parameters: Iterable[nn.Parameter],
        params: OptimParams,
        *,
        accelerator: Accelerator | None = None,
        checkpoint_dir: str | Path | None = None,
        log_metrics: MetricsCallback | None = None,
        name: str = "train",
        run_key: str = "",
        samples_per_micro: int | None = None,
        clip_groups: Sequence[Iterable[nn.Parameter]] | None = None,
    ) -> None:
        self.model, self.p, self.name = model, params, name
        self.params = [q for q in parameters if q.requires_grad]
        if not self.params:
            raise ValueError(f"{name}: no trainable parameters")
        groups = [[q for q in g if q.requires_grad] for g in clip_groups] if clip_groups is not None else [self.params]
        if sorted(map(id, (q for g in groups for q in g))) != sorted(map(id, self.params)):
            raise ValueError(f"{name}: clip_groups must split the trained parameters, each in exactly one group")
        self.clip_groups = groups
        self.acc = accelerator or make_accelerator()
        self.model.to(self.acc.device)
        self.optimizer = torch.optim.AdamW(_decay_groups(self.params, params.weight_decay), lr=params.lr,
                                           betas=params.betas)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cosine_with_warmup(s, params.steps, params.warmup_steps, params.min_lr_ratio))
        self.autocast_dtype = AUTOCAST_DTYPES[params.mixed_precision]
        # fp16 needs loss scaling; bf16 has fp32's range and does not
        self.scaler = torch.amp.GradScaler(self.acc.device.type, enabled=params.mixed_precision == "fp16")
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.log_metrics = log_metrics
        # a checkpoint from a different run configuration is refused; the process count is part of it (it
        # sets the global batch), named only above 1 so that 1-process checkpoints keep their key
        self.run_key = run_key if self.acc.num_processes == 1 else f"{run_key}/processes={self.acc.num_processes}"
        self.samples_per_micro = samples_per_micro or params.batch_size
        self.step = 0

    # -- checkpoints -------------------------------------------------------------------------------------
    def _state(self, history: list[dict[str, float]]) -> dict[str, Any]:
        return {
            "step": self.step, "run_key": self.run_key, "name": self.name,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": rng_state(), "data_position": self.step * self.p.grad_accum, "history": history,
        }

    def save(self, history: list[dict[str, float]]) -> None:
        if self.checkpoint_dir is not None and self.acc.is_main_process:
            save_checkpoint(self.checkpoint_dir, self._state(history))
        self.acc.wait_for_everyone()

    def try_resume(self) -> list[dict[str, float]]:
        if self.checkpoint_dir is None:
            return []
        state = load_checkpoint(self.checkpoint_dir)
        if state is None:
            return []
        where = self.checkpoint_dir / "last.pt"
        if state.get("run_key", "") != self.run_key:
            raise ValueError(f"{where}: field 'run_key' belongs to another run configuration; "
                             "delete the checkpoint directory to start afresh")
        if state["step"] > self.p.steps:
            raise ValueError(f"{where}: field 'step' = {state['step']} exceeds steps={self.p.steps}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.step = int(state["step"])
        return list(state.get("history", []))

    # -- the loop ----------------------------------------------------------------------------------------
    def fit(self, batch_fn: BatchFn, loss_fn: LossFn,
            on_step: Callable[[int], None] | None = None) -> TrainResult:
        """Train to `params.steps` (resuming from the checkpoint directory when it holds a checkpoint).
        `on_step(step)` runs after every completed (and, if due, checkpointed) step."""
        history = self.try_resume()
        if self.acc.num_processes > 1:  # every process must continue from the same step
            steps = gather_object([self.step])
            if len(set(steps)) > 1:
                raise ValueError(f"{self.name}: the processes resumed at different steps {steps}; every machine "
                                 f"must see the same checkpoint directory ({self.checkpoint_dir})")
        result = TrainResult(self.step, history, resumed_from=self.step)
        trained = {id(q) for q in self.params}
        if not trained <= {id(q) for q in self.model.parameters()}:
            raise ValueError(f"{self.name}: the trained parameters must belong to the model")
        frozen = [q for q in self.model.parameters() if q.requires_grad and id(q) not in trained]
        for q in frozen:
            q.requires_grad_(False)
        try:
            self._fit(Objective(self.model, batch_fn, loss_fn), result, on_step)
        finally:
            for q in frozen:
                q.requires_grad_(True)
            self.acc.free_memory()  # drop the prepared model / optimizer; resets accumulate's counter
        return result

    def _fit(self, objective: Objective, result: TrainResult, on_step: Callable[[int], None] | None) -> None:
        p, acc = self.p, self.acc
        acc.gradient_accumulation_steps = p.grad_accum
        acc.step = 0  # accumulate() counts micro-steps from here; a step always starts a new count
        model, optimizer = acc.prepare(objective, self.optimizer)
        world = acc.num_processes
        t0, samples0 = time.perf_counter(), 0
        bar = tqdm(total=p.steps, initial=self.step, desc=self.name, unit="step",
                   disable=not acc.is_local_main_process, leave=False)
        self.model.train()
        while self.step < p.steps:
            logs: dict[str, float] = {}
            for micro in range(p.grad_accum):
                # shard of the global batch: its samples and random numbers do not depend on how the
                # global batch is split into processes and micro-steps (the trailing 0, once the rank,
                # keeps the seeds of 1-process runs as they were)
                shard = micro * world + acc.process_index
                g = step_generator(acc.device, p.seed, self.name, self.step, shard, 0)
                with acc.accumulate(model):  # no all-reduce until the step's last micro-batch
                    with torch.autocast(acc.device.type, dtype=self.autocast_dtype or torch.float32,
                                        enabled=self.autocast_dtype is not None):
                        loss, parts = model(self.step * p.grad_accum + micro, g)
                    acc.backward(self.scaler.scale(loss.float()))  # divides by grad_accum
                for k, v in parts.items():
                    logs[k] = logs.get(k, 0.0) + float(v) / p.grad_accum
                samples0 += self.samples_per_micro * world
            self.scaler.unscale_(optimizer)
            if p.max_grad_norm > 0:  # logged: the norm over all groups, before clipping
                norms = [acc.clip_grad_norm_(g, p.max_grad_norm) for g in self.clip_groups]
                logs["grad_norm"] = float(torch.stack([torch.as_tensor(n).float() for n in norms]).norm())
            logs["lr"] = self.scheduler.get_last_lr()[0]
            self.scaler.step(optimizer)  # skipped (and the scale lowered) on inf / nan gradients in fp16
            self.scaler.update()
            self.scheduler.step()  # not prepared: accelerate would step it once per process
            optimizer.zero_grad(set_to_none=True)
            self.step += 1
            elapsed = time.perf_counter() - t0
            logs["samples_per_s"] = samples0 / elapsed if elapsed > 0 else 0.0
            if self.step % p.log_every == 0 or self.step == p.steps:
                logs = _mean_over_processes(acc, logs)
                result.history.append({"step": float(self.step), **logs})
                if self.log_metrics is not None and acc.is_main_process:
                    self.log_metrics({f"{self.name}/{k}": v for k, v in logs.items()}, self.step)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "samples_per_s")})
            if p.checkpoint_every and (self.step % p.checkpoint_every == 0 or self.step == p.steps):
                self.save(result.history)
            if on_step is not None:
                on_step(self.step)
        bar.close()
        result.steps, result.seconds, result.samples = self.step, time.perf_counter() - t0, samples0
