"""The shared loop: schedule, seeded data order, exact resume after a kill, checkpoint errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drivefine_core.models import DriveFinePlanner, Planner
from drivefine_core.training.checkpoint import CHECKPOINT_FILE, load_checkpoint
from drivefine_core.training.data import SeededBatches
from drivefine_core.training.loop import StopTraining
from drivefine_core.training.params import OptimParams, SFTParams
from drivefine_core.training.schedule import cosine_with_warmup
from drivefine_core.training.sft import train_phase
from tests.training.scenes import tiny_params, toy_scenes


def test_cosine_schedule_warms_up_then_decays_to_the_floor() -> None:
    lrs = [cosine_with_warmup(s, 20, 4, 0.1) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert cosine_with_warmup(20, 20, 4, 0.1) == pytest.approx(0.1)


def test_seeded_batches_are_deterministic_and_split_ranks() -> None:
    data = list(range(10))
    ident = lambda items: items  # noqa: E731
    a = SeededBatches(data, 2, seed=3, collate=ident)
    assert [a(k) for k in range(5)] == [SeededBatches(data, 2, seed=3, collate=ident)(k) for k in range(5)]
    assert sorted(x for k in range(5) for x in a(k)) == data  # one epoch sees every sample once
    assert [a(k) for k in range(5)] != [a(k) for k in range(5, 10)]  # a new order every epoch
    r0, r1 = (SeededBatches(data, 2, seed=3, rank=r, world_size=2, collate=ident) for r in (0, 1))
    seen = [x for k in range(2) for x in r0(k) + r1(k)]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 8  # ranks never share a sample


def _sft(tmp: Path, steps: int, kill_at: int | None = None) -> tuple[Planner, int]:
    torch.manual_seed(0)
    p = tiny_params()
    planner = DriveFinePlanner(p)
    data = [s for s, _ in toy_scenes(p)]
    sft = SFTParams(drivefine=OptimParams(steps=steps, batch_size=2, grad_accum=2, lr=5e-3, warmup_steps=2,
                                          checkpoint_every=2))

    def kill(step: int) -> None:
        if step == kill_at:
            raise StopTraining(f"killed at step {step}")

    try:
        result = train_phase(planner, "drivefine", data, sft, checkpoint_dir=tmp, on_step=kill)
    except StopTraining:
        torch.manual_seed(123)  # a restarted process starts from a fresh model and different global RNG
        planner = DriveFinePlanner(p)
        result = train_phase(planner, "drivefine", data, sft, checkpoint_dir=tmp)
    return planner, result.resumed_from


def test_resume_after_kill_equals_uninterrupted_run(tmp_path: Path) -> None:
    straight, start_a = _sft(tmp_path / "a", 6)
    resumed, start_b = _sft(tmp_path / "b", 6, kill_at=5)  # step 5 is lost, the run resumes from step 4
    assert (start_a, start_b) == (0, 4)
    killed_state = load_checkpoint(tmp_path / "b")
    assert killed_state is not None and killed_state["step"] == 6
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), name
    # the test could fail: a different data seed gives different weights
    fresh = DriveFinePlanner(tiny_params())
    assert not torch.equal(fresh.drivefine.backbone.head.weight, straight.drivefine.backbone.head.weight)


def test_checkpoint_of_another_run_or_corrupt_file_is_refused(tmp_path: Path) -> None:
    p = tiny_params()
    data = [s for s, _ in toy_scenes(p)]
    sft = SFTParams(drivefine=OptimParams(steps=1, batch_size=2, checkpoint_every=1))
    train_phase(DriveFinePlanner(p), "drivefine", data, sft, checkpoint_dir=tmp_path)
    other = SFTParams(drivefine=OptimParams(steps=2, batch_size=2, checkpoint_every=1, lr=1e-4))
    with pytest.raises(ValueError, match=r"last\.pt.*run_key"):
        train_phase(DriveFinePlanner(p), "drivefine", data, other, checkpoint_dir=tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"last\.pt: unreadable"):
        load_checkpoint(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_by_flag_trains(precision: str) -> None:
    torch.manual_seed(0)
    p = tiny_params()
    planner = DriveFinePlanner(p)
    head = planner.drivefine.backbone.head.weight.detach().clone()
    sft = SFTParams(drivefine=OptimParams(steps=2, batch_size=3, lr=5e-3, warmup_steps=0, mixed_precision=precision))
    result = train_phase(planner, "drivefine", [s for s, _ in toy_scenes(p)], sft)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    assert planner.drivefine.backbone.head.weight.dtype == torch.float32  # master weights stay fp32
    assert not torch.equal(head, planner.drivefine.backbone.head.weight)


class _Payload:
    """Stands for any object a crafted checkpoint could ask the unpickler to build."""

    def __reduce__(self):
        return (Path, ("built-by-unpickling",))


def test_checkpoint_holding_a_pickled_object_is_refused_not_run(tmp_path: Path) -> None:
    p = tiny_params()
    data = [s for s, _ in toy_scenes(p)]
    sft = SFTParams(drivefine=OptimParams(steps=1, batch_size=2, checkpoint_every=1))
    train_phase(DriveFinePlanner(p), "drivefine", data, sft, checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path)  # what the loop writes loads weights-only: RNG states are tensors
    assert state is not None and isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)
    state["history"] = [_Payload()]
    torch.save(state, tmp_path / CHECKPOINT_FILE)  # the same checkpoint, now carrying one pickled object
    with pytest.raises(ValueError, match=r"last\.pt: refused: the checkpoint holds a pickled Python object.*Path"):
        load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="refused"):
        train_phase(DriveFinePlanner(p), "drivefine", data, sft, checkpoint_dir=tmp_path)


def test_clip_groups_must_split_the_trained_parameters() -> None:
    from drivefine_core.training.loop import Trainer

    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    model = torch.nn.ModuleList([a, b])
    params = OptimParams(steps=1, batch_size=1)
    Trainer(model, model.parameters(), params, clip_groups=[list(a.parameters()), list(b.parameters())])
    with pytest.raises(ValueError, match="clip_groups must split"):
        Trainer(model, model.parameters(), params, clip_groups=[list(a.parameters())])
    with pytest.raises(ValueError, match="clip_groups must split"):
        Trainer(model, model.parameters(), params, clip_groups=[list(model.parameters()), list(a.parameters())])
