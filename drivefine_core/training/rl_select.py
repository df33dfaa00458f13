"""Checkpoint selection for RL on held-out logs: RL hands on the policy with the best validation reward.

RL can lower the planners' quality for some seeds. `rl.validation_logs` logs of the train split (the last ones
in sorted log-name order, so every run and every resume holds out the same ones) are taken out of RL's scenes;
every `rl.validate_every` optimizer steps (and at step 0, the SFT policy, and at the last step) the greedy
plan's mean reward on them is measured, the best weights of the trained module are kept, and loaded back at
the end. The test split is never involved: the held-out logs come from the train split.

Distributed: every process scores a contiguous slice of the held-out scenes and the sums are gathered, so
all processes see the same rewards and make the same choice (DDP keeps their weights equal).
Resume: with checkpoints on, the selection state (rows, best step, best weights) is written next to the
trainer's checkpoint at every validation and read back when the run starts again with the same run key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object
from torch import nn

from drivefine_core.metrics.cache import MetricCache
from drivefine_core.models import Planner
from drivefine_core.training.loop import MetricsCallback, Trainer, TrainResult
from drivefine_core.training.params import RLParams
from drivefine_core.training.reward import RewardFn
from drivefine_core.training.splits import last_logs

STATE_FILE = "validation.pt"


class SceneSubset(Sequence):
    """The scenes of `base` at `indices` (lazy: a pair is read when indexed)."""

    def __init__(self, base: Sequence[tuple[dict[str, Any], MetricCache]], indices: Sequence[int]) -> None:
        self.base, self.indices = base, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        return self.base[self.indices[k]]


def scene_caches(scenes: Sequence[tuple[dict[str, Any], MetricCache]]) -> list[MetricCache]:
    """The scenes' metric caches, without reading their samples when the sequence can say them."""
    caches = getattr(scenes, "caches", None)
    return caches() if callable(caches) else [c for _, c in scenes]


def held_out_logs(scenes: Sequence[tuple[dict[str, Any], MetricCache]], n: int) -> list[str]:
    return last_logs((c.log_name for c in scene_caches(scenes)), n)


def split_by_log(scenes: Sequence[tuple[dict[str, Any], MetricCache]], n: int,
                 max_scenes: int = 0) -> tuple[Sequence[tuple[dict[str, Any], MetricCache]], SceneSubset]:
    """(training scenes, validation scenes): the scenes of the held-out logs go to validation only.
    max_scenes > 0 keeps that many validation scenes, evenly spaced. n = 0: (scenes, empty)."""
    if n == 0:
        return scenes, SceneSubset(scenes, [])
    held = set(held_out_logs(scenes, n))
    caches = scene_caches(scenes)
    val = [i for i, c in enumerate(caches) if c.log_name in held]
    if max_scenes and len(val) > max_scenes:
        val = [val[round(j * (len(val) - 1) / (max_scenes - 1))] for j in range(max_scenes)] if max_scenes > 1 \
            else val[:1]
    return SceneSubset(scenes, [i for i, c in enumerate(caches) if c.log_name not in held]), SceneSubset(scenes, val)


class RLSelection:
    """Validation and best-checkpoint bookkeeping of one RL run; a no-op when rl.validation_logs = 0.

    Use: `train = sel.train_scenes`; `sel.start(trainer)` before `trainer.fit(..., on_step=sel.on_step)`;
    `sel.finish(result)` after it (loads the best weights, adds the selection row to the history)."""

    def __init__(self, planner: Planner, module: nn.Module, scenes: Sequence[tuple[dict[str, Any], MetricCache]],
                 rl: RLParams, mode: str, reward_fn: RewardFn, log_metrics: MetricsCallback | None = None) -> None:
        self.planner, self.module, self.rl, self.mode, self.reward_fn = planner, module, rl, mode, reward_fn
        self.log_metrics = log_metrics
        self.enabled = rl.validation_logs > 0
        self.train_scenes, self.val_scenes = split_by_log(scenes, rl.validation_logs, rl.validation_scenes)
        self.rows: list[dict[str, float]] = []
        self.best_step, self.best_reward = -1, float("-inf")
        self.best_state: dict[str, torch.Tensor] = {}
        self.trainer: Trainer | None = None

    # -- scoring -----------------------------------------------------------------------------------------
    def score(self) -> float:
        """Mean greedy reward over the validation scenes; each process scores a contiguous slice (keeps a
        log's consecutive scenes together, which EPDMS's comfort pairs need)."""
        assert self.trainer is not None
        acc = self.trainer.acc
        n, world, rank = len(self.val_scenes), acc.num_processes, acc.process_index
        lo, hi = n * rank // world, n * (rank + 1) // world
        from drivefine_core.training.rl import mean_reward  # rl imports this module

        part = self.val_scenes[lo:hi]
        total = mean_reward(self.planner, part, self.mode, self.reward_fn) * len(part) if part else 0.0
        parts = gather_object([total]) if world > 1 else [total]
        return float(sum(parts)) / max(n, 1)

    def _validate(self, step: int) -> None:
        assert self.trainer is not None
        r = self.score()
        self.rows.append({"step": float(step), "validation_reward": r})
        if r > self.best_reward:  # strict: on a tie the earlier (closer to SFT) weights stay
            self.best_step, self.best_reward = step, r
            self.best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        if self.log_metrics is not None and self.trainer.acc.is_main_process:
            self.log_metrics({f"{self.trainer.name}/validation_reward": r}, step)
        self._persist()

    # -- persistence (resume) ----------------------------------------------------------------------------
    def _state_path(self) -> Path | None:
        t = self.trainer
        if t is None or t.checkpoint_dir is None or not t.p.checkpoint_every:
            return None
        return t.checkpoint_dir / STATE_FILE

    def _persist(self) -> None:
        path = self._state_path()
        if path is None or not self.trainer or not self.trainer.acc.is_main_process:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        torch.save({"run_key": self.trainer.run_key, "rows": self.rows, "best_step": self.best_step,
                    "best_reward": self.best_reward,
                    "best_state": {k: v.cpu() for k, v in self.best_state.items()}}, tmp)
        os.replace(tmp, path)

    def _restore(self) -> None:
        """Rows and best weights of an earlier try of this run (the trainer resumes its weights in fit)."""
        path = self._state_path()
        if path is None or not path.is_file() or self.trainer is None:
            return
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("run_key") != self.trainer.run_key:
            return  # another configuration's leftovers: the trainer refuses its checkpoint too
        done = {int(r["step"]) for r in self.rows}
        self.rows += [r for r in state["rows"] if int(r["step"]) not in done]
        if state["best_reward"] > self.best_reward:
            device = next(self.module.parameters()).device
            self.best_step, self.best_reward = int(state["best_step"]), float(state["best_reward"])
            self.best_state = {k: v.to(device) for k, v in state["best_state"].items()}

    # -- the run -----------------------------------------------------------------------------------------
    def start(self, trainer: Trainer) -> None:
        """Score the starting (SFT) weights as step 0; call before fit, which may resume a checkpoint."""
        self.trainer = trainer
        if self.enabled:
            self._restore()  # before scoring: the first validation rewrites the state file
            if not any(int(r["step"]) == 0 for r in self.rows):
                self._validate(0)

    def on_step(self, step: int) -> None:
        if self.enabled and self.trainer is not None and (
                step % self.rl.validate_every == 0 or step == self.trainer.p.steps):
            if not any(int(r["step"]) == step for r in self.rows):
                self._validate(step)

    def finish(self, result: TrainResult) -> TrainResult:
        if not self.enabled:
            return result
        self.module.load_state_dict(self.best_state)
        result.history += sorted(self.rows, key=lambda r: r["step"])
        result.history.append({"selected_step": float(self.best_step), "validation_reward_best": self.best_reward,
                               "validation_scenes": float(len(self.val_scenes))})
        return result
