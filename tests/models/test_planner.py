"""The planner contract: modes per family, determinism, persistence of one family's weights, input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from drivefine_core.models import MODES, DriveFinePlanner, Planner, PlannerBatch, SpanVLAPlanner
from drivefine_core.models.modes import FAMILY_OF
from tests.models.conftest import make_batch, tiny_params


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_is_deterministic_under_a_seed(planners: dict[str, Planner], batch: dict, mode: str) -> None:
    planner = planners[FAMILY_OF[mode]]
    opts = {"temperature": 1.0} if mode in ("mdm", "mdm+refine", "ar") else {}
    if mode == "flow":
        opts = {"noise_std": 0.3}
    a = planner.plan(batch, mode, seed=7, **opts)
    b = planner.plan(batch, mode, seed=7, **opts)
    c = planner.plan(batch, mode, seed=8, **opts)
    assert a.poses.shape == (3, 8, 3)
    assert a.confidences.shape == ((3, 24) if mode in ("mdm", "mdm+refine", "ar") else (3, 8))
    assert torch.equal(a.poses, b.poses) and torch.equal(a.confidences, b.confidences)
    assert not torch.equal(a.poses, c.poses)  # the seed matters, so the test above could fail


def test_each_family_plans_only_its_own_modes(drivefine: DriveFinePlanner, spanvla: SpanVLAPlanner,
                                              batch: dict) -> None:
    assert drivefine.modes == ("mdm", "mdm+refine") and spanvla.modes == ("ar", "flow", "flow-noise")
    with pytest.raises(ValueError, match="drivefine planner: unknown planning mode 'flow'.*spanvla planner"):
        drivefine.plan(batch, "flow")
    with pytest.raises(ValueError, match="spanvla planner: unknown objective.*'refine'"):
        spanvla.losses(batch, "refine")
    # each holds only its own models
    assert not hasattr(drivefine, "ar") and not hasattr(spanvla, "drivefine")
    assert {n.split(".")[0] for n, _ in spanvla.named_parameters()} == {"ar", "flow", "flow_noise"}
    assert {n.split(".")[0] for n, _ in drivefine.named_parameters()} == {"drivefine"}


@pytest.mark.parametrize("family", ["drivefine", "spanvla"])
def test_save_and_load_round_trip(tmp_path: Path, planners: dict[str, Planner], batch: dict, family: str) -> None:
    planner = planners[family]
    planner.save(tmp_path / "ckpt")
    loaded = Planner.load(tmp_path / "ckpt").eval()
    assert type(loaded) is type(planner) and loaded.params == planner.params
    for mode in planner.modes:
        assert torch.equal(planner.plan(batch, mode, seed=0).poses, loaded.plan(batch, mode, seed=0).poses), mode
    # the file holds this family's weights only
    saved = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert set(saved) == set(planner.state_dict())
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["family"] == family
    assert not list((tmp_path / "ckpt").glob("*.tmp"))


def test_training_forward_weights_the_objectives(drivefine: DriveFinePlanner, batch: dict) -> None:
    drivefine.train()
    parts = drivefine.losses(batch, generator=torch.Generator().manual_seed(0))
    total, logs = drivefine(batch, weights={"refine": 0.5}, generator=torch.Generator().manual_seed(0))
    assert set(parts) == {"mdm", "refine"} and logs["loss_refine"] == pytest.approx(float(parts["refine"]))
    assert float(total) == pytest.approx(float(parts["mdm"]) + 0.5 * float(parts["refine"]), rel=1e-5)
    assert logs["loss"] == pytest.approx(float(total))
    total.backward()  # one graph through both experts
    assert drivefine.drivefine.backbone.head.weight.grad is not None


def test_load_component_shape_mismatch_is_named(tmp_path: Path, drivefine: DriveFinePlanner,
                                                spanvla: SpanVLAPlanner) -> None:
    bigger = DriveFinePlanner(tiny_params(width=64))
    path = tmp_path / "big_backbone.safetensors"
    save_file({k: v.contiguous() for k, v in bigger.drivefine.state_dict().items()}, str(path))
    with pytest.raises(ValueError, match=r"big_backbone\.safetensors.*shape mismatch.*'backbone\."):
        drivefine.load_component("drivefine", path)
    with pytest.raises(ValueError, match="drivefine planner: unknown component 'ar'"):
        drivefine.load_component("ar", path)
    # the same size loads, and the weights arrive
    same = SpanVLAPlanner(tiny_params())
    path2 = tmp_path / "same.safetensors"
    save_file({"model." + k: v.contiguous() for k, v in same.ar.state_dict().items()}, str(path2))
    assert spanvla.load_component("ar", path2, prefix="model.") == []
    assert torch.equal(spanvla.ar.backbone.head.weight, same.ar.backbone.head.weight)


def test_load_component_partial_and_unknown(tmp_path: Path, spanvla: SpanVLAPlanner) -> None:
    path = tmp_path / "partial.safetensors"
    save_file({"backbone.head.weight": spanvla.ar.backbone.head.weight.detach().clone()}, str(path))
    with pytest.raises(ValueError, match="missing from the file"):
        spanvla.load_component("ar", path)
    assert "backbone.tok.proj.weight" in spanvla.load_component("ar", path, strict=False)
    save_file({"nonsense": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="does not have"):
        spanvla.load_component("ar", path)


def test_load_rejects_bad_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"family": "drivefine", "model": {"width": 32, "colour": "red"}}')
    with pytest.raises(ValueError, match="(?s)config.json.*colour"):
        Planner.load(tmp_path)
    (tmp_path / "config.json").write_text('{"width": 32}')  # a planner saved before the families were split
    with pytest.raises(ValueError, match="config.json.*'family'"):
        Planner.load(tmp_path)
    (tmp_path / "config.json").write_text('{"family": "transfuser", "model": {}}')
    with pytest.raises(ValueError, match="unknown planner family 'transfuser'"):
        Planner.load(tmp_path)


def test_batch_errors_name_the_field(drivefine: DriveFinePlanner, spanvla: SpanVLAPlanner, params) -> None:
    batch = make_batch(params)
    bad = dict(batch, history=batch["history"][:, :3])
    with pytest.raises(ValueError, match="'history'.*\\(B, 4, 3\\)"):
        spanvla.plan(bad, "flow")
    missing = {k: v for k, v in batch.items() if k != "command"}
    with pytest.raises(ValueError, match="missing field 'command'"):
        drivefine.plan(missing, "mdm")
    with pytest.raises(ValueError, match="missing field 'command'"):
        PlannerBatch.of(missing)
    with pytest.raises(TypeError, match="expected a mapping.*got list.*collate_features"):
        PlannerBatch.of([missing, missing])  # type: ignore[arg-type]  # rows not collated
    wrong_kind = batch["target_tokens"].clone()
    wrong_kind[1, 2] = 5  # an x/y bin in a heading slot
    with pytest.raises(ValueError, match="target_tokens.*sample 1 position 2"):
        drivefine.losses(dict(batch, target_tokens=wrong_kind), "mdm")
    with pytest.raises(ValueError, match="'image'.*dtype torch.uint8"):
        spanvla.plan(dict(batch, image=(batch["image"] * 255).to(torch.uint8)), "ar")
    with pytest.raises(ValueError, match="unknown planning mode"):
        drivefine.plan(batch, "beam")


def test_planner_batch_folds_views_and_reads_as_a_mapping() -> None:
    p = tiny_params(num_views=3)
    rows = make_batch(p, b=2)
    views = rows["image"].unflatten(1, (3, 3))  # (B, V, 3, H, W), as feature rows and requests hold them
    batch = PlannerBatch.of({**rows, "image": views, "token": ["a", "b"]})
    assert batch["image"].shape == (2, 9, 32, 32) and torch.equal(batch["image"], rows["image"])
    assert "token" not in batch and "bev" not in batch and set(batch) == set(rows)
    assert batch.size == 2 and torch.equal(batch.without("target")["history"], rows["history"])
    with pytest.raises(KeyError):
        batch.without("target")["target"]
    planner = DriveFinePlanner(p).eval()
    assert planner.plan(batch, "mdm+refine").poses.shape == (2, 8, 3)


def test_refinement_drafts_from_decoding() -> None:
    p = tiny_params(refine_draft="decode", refine_draft_temperature=0.0)
    planner = DriveFinePlanner(p).train()
    batch = make_batch(p)
    draft = planner.refinement_drafts(batch)
    assert planner.training  # decoding ran in eval mode and the mode came back
    assert torch.equal(draft, planner.drivefine.decode(batch).tokens)  # greedy drafts: the plain decode
    assert float(planner.losses(batch, "refine")["refine"].detach()) > 0


def test_drafts_reuse_the_generation_prompt_pass() -> None:
    """The refinement drafts read the generation loss's prompt pass (no dropout: the same one eval-mode decoding
    runs): sampled drafts equal those of a decode that encodes on its own, under the same random stream."""
    p = tiny_params(refine_draft="decode", refine_draft_temperature=1.0)
    planner = DriveFinePlanner(p).train()
    batch = make_batch(p, b=4)
    prompt = planner.drivefine.backbone.encode_prompt(batch, "generate")
    shared = planner.refinement_drafts(batch, torch.Generator().manual_seed(3), prompt)
    own = planner.refinement_drafts(batch, torch.Generator().manual_seed(3))
    assert torch.equal(shared, own)
    assert not torch.equal(shared, planner.refinement_drafts(batch, torch.Generator().manual_seed(4), prompt))
    # the prompt pass is used as given: a different one changes the drafts
    other = planner.drivefine.backbone.encode_prompt(make_batch(p, b=4, seed=1), "generate")
    assert not torch.equal(shared, planner.refinement_drafts(batch, torch.Generator().manual_seed(3), other))
