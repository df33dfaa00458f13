"""The training loop every objective shares: accelerate, AdamW, cosine warm-up, accumulation, clipping,
mixed precision, checkpoints and exact resume.

Exact resume rests on two choices:
- data: batch k is a pure function of (seed, k, rank) (data.SeededBatches), so only the step is saved;
- randomness: every micro-step gets its own torch.Generator seeded from (seed, step, micro, rank), handed to
  the loss (masking, rollouts, noise). No loss reads the global RNG, so a resumed run draws the same numbers.
Global RNG states are saved as well, for code that does read them.

Distributed: the same code runs under `accelerate launch`. Gradients are averaged across processes by one
all-reduce of the flattened gradients per optimizer step instead of a DDP wrapper: the planners train through
methods (losses, trace_logprobs...) rather than forward(), which DDP's hooks would not see.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
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
    cpu=None: use a GPU when there is one. Mixed precision is not set here but per run (Trainer), because
    accelerate's state is a per-process singleton while SFT phases may differ in precision."""
    if cpu is None:
        cpu = not torch.cuda.is_available()
    return Accelerator(cpu=cpu)


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


class Trainer:
    """Optimises `parameters` (a subset of `model`'s) on `loss_fn(batch, generator)`.

    `model` is what a checkpoint saves and restores (its whole state dict); `parameters` is what the optimizer
    updates (e.g. only the flow expert). `batch_fn(k)` gives micro-batch k (k = step * grad_accum + micro).
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
    ) -> None:
        self.model, self.p, self.name = model, params, name
        self.params = [q for q in parameters if q.requires_grad]
        if not self.params:
            raise ValueError(f"{name}: no trainable parameters")
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
        self.run_key = run_key  # a checkpoint from a different run configuration is refused
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
    def _sync_gradients(self) -> None:
        if self.acc.num_processes == 1:
            return
        present = torch.tensor([float(q.grad is not None) for q in self.params], device=self.acc.device)
        present = self.acc.reduce(present, reduction="sum")
        grads = [q.grad if q.grad is not None else torch.zeros_like(q) for q in self.params]
        flat = self.acc.reduce(torch.cat([g.flatten() for g in grads]), reduction="mean")
        offset = 0
        for q, g, n in zip(self.params, grads, present.tolist()):
            # a parameter no rank touched keeps grad None, so AdamW leaves it alone (gradient blocking)
            q.grad = flat[offset : offset + g.numel()].view_as(g).to(g.dtype) if n > 0 else None
            offset += g.numel()

    def fit(self, batch_fn: BatchFn, loss_fn: LossFn,
            on_step: Callable[[int], None] | None = None) -> TrainResult:
        """Train to `params.steps` (resuming from the checkpoint directory when it holds a checkpoint).
        `on_step(step)` runs after every completed (and, if due, checkpointed) step."""
        history = self.try_resume()
        result = TrainResult(self.step, history, resumed_from=self.step)
        p, acc = self.p, self.acc
        t0, samples0 = time.perf_counter(), 0
        bar = tqdm(total=p.steps, initial=self.step, desc=self.name, unit="step",
                   disable=not acc.is_local_main_process, leave=False)
        self.model.train()
        while self.step < p.steps:
            logs: dict[str, float] = {}
            for micro in range(p.grad_accum):
                g = step_generator(acc.device, p.seed, self.name, self.step, micro, acc.process_index)
                batch = batch_fn(self.step * p.grad_accum + micro)
                with torch.autocast(acc.device.type, dtype=self.autocast_dtype or torch.float32,
                                    enabled=self.autocast_dtype is not None):
                    loss, parts = loss_fn(batch, g)
                self.scaler.scale(loss.float() / p.grad_accum).backward()
                for k, v in parts.items():
                    logs[k] = logs.get(k, 0.0) + float(v) / p.grad_accum
                samples0 += self.samples_per_micro * acc.num_processes
            self._sync_gradients()
            self.scaler.unscale_(self.optimizer)
            if p.max_grad_norm > 0:
                logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.params, p.max_grad_norm))
            logs["lr"] = self.scheduler.get_last_lr()[0]
            self.scaler.step(self.optimizer)  # skipped (and the scale lowered) on inf / nan gradients in fp16
            self.scaler.update()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            elapsed = time.perf_counter() - t0
            logs["samples_per_s"] = samples0 / elapsed if elapsed > 0 else 0.0
            if self.step % p.log_every == 0 or self.step == p.steps:
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
        return result
