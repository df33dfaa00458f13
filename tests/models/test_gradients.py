"""Gradient blocking between the experts, checked on parameter gradients."""

from __future__ import annotations

import torch
from torch import nn

from drivefine_core.models import DriveFinePlanner, Planner, SpanVLAPlanner


def _grads(module: nn.Module) -> dict[str, bool]:
    """name -> whether the parameter received a non-zero gradient."""
    return {n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in module.named_parameters()}


def _zero(planner: Planner) -> None:
    for p in planner.parameters():
        p.grad = None


def test_refinement_loss_updates_only_refinement_blocks(drivefine: DriveFinePlanner, batch: dict) -> None:
    drivefine.train()
    _zero(drivefine)
    drivefine.losses(batch, "refine")["refine"].backward()
    got = _grads(drivefine)
    touched = {n for n, g in got.items() if g}
    own = {n for n in got if n.startswith(("drivefine.backbone.experts.refine.", "drivefine.backbone.norms.refine.",
                                           "drivefine.refine_head."))}
    assert touched == own
    assert own  # the expert did learn something


def test_generation_loss_never_touches_refinement_blocks(drivefine: DriveFinePlanner, batch: dict) -> None:
    drivefine.train()
    _zero(drivefine)
    drivefine.losses(batch, "mdm")["mdm"].backward()
    got = _grads(drivefine)
    assert not any(g for n, g in got.items() if ".experts.refine." in n or ".norms.refine." in n)
    for part in ("backbone.prompt.vision.", "backbone.shared.", "backbone.experts.generate.", "backbone.head."):
        assert any(g for n, g in got.items() if n.startswith("drivefine." + part)), part


def test_flow_loss_stops_at_the_backbone(spanvla: SpanVLAPlanner, batch: dict) -> None:
    spanvla.train()
    for name, owner in (("flow", "flow."), ("flow-noise", "flow_noise.")):
        _zero(spanvla)
        spanvla.losses(batch, name)[name].backward()
        touched = {n for n, g in _grads(spanvla).items() if g}
        assert touched and all(n.startswith(owner) for n in touched), name


def test_ar_loss_trains_ar_backbone_only(spanvla: SpanVLAPlanner, batch: dict) -> None:
    spanvla.train()
    _zero(spanvla)
    spanvla.losses(batch, "ar")["ar"].backward()
    touched = {n for n, g in _grads(spanvla).items() if g}
    assert touched and all(n.startswith("ar.") for n in touched)
    assert any(".vision." in n for n in touched)


def test_refinement_expert_is_warm_started(drivefine: DriveFinePlanner) -> None:
    bb = drivefine.drivefine.backbone
    gen, ref = bb.experts["generate"].state_dict(), bb.experts["refine"].state_dict()
    assert gen.keys() == ref.keys()
    assert all(torch.equal(gen[k], ref[k]) for k in gen)
    assert all(gen[k].data_ptr() != ref[k].data_ptr() for k in gen)  # copies, not shared tensors


def test_blocking_holds_for_every_split() -> None:
    from tests.models.conftest import make_batch, tiny_params

    for n in (0, 2, 4):  # no refinement blocks, half, all of them
        p = tiny_params(n_refine_blocks=n)
        planner = DriveFinePlanner(p).train()
        batch = make_batch(p)
        planner.losses(batch, "refine")["refine"].backward()
        touched = {name for name, g in _grads(planner).items() if g}
        assert touched and all(".experts.refine." in t or ".norms.refine." in t or ".refine_head." in t
                               for t in touched), n
        assert len(planner.drivefine.backbone.shared) == 4 - n
