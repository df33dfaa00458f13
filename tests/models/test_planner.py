"""The facade: modes, determinism, persistence, input errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from drivefine_core.models import MODES, Planner
from tests.models.conftest import make_batch, tiny_params


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_is_deterministic_under_a_seed(planner: Planner, batch: dict, mode: str) -> None:
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


def test_save_and_load_round_trip(tmp_path: Path, planner: Planner, batch: dict) -> None:
    planner.save(tmp_path / "ckpt")
    loaded = Planner.load(tmp_path / "ckpt").eval()
    assert loaded.params == planner.params
    for mode in MODES:
        assert torch.equal(planner.plan(batch, mode, seed=0).poses, loaded.plan(batch, mode, seed=0).poses), mode
    assert not list((tmp_path / "ckpt").glob("*.tmp"))


def test_load_component_shape_mismatch_is_named(tmp_path: Path, planner: Planner) -> None:
    bigger = Planner(tiny_params(width=64))
    path = tmp_path / "big_backbone.safetensors"
    save_file({k: v.contiguous() for k, v in bigger.drivefine.state_dict().items()}, str(path))
    with pytest.raises(ValueError, match=r"big_backbone\.safetensors.*shape mismatch.*'backbone\."):
        planner.load_component("drivefine", path)
    # the same size loads, and the weights arrive
    same = Planner(tiny_params())
    path2 = tmp_path / "same.safetensors"
    save_file({"model." + k: v.contiguous() for k, v in same.ar.state_dict().items()}, str(path2))
    assert planner.load_component("ar", path2, prefix="model.") == []
    assert torch.equal(planner.ar.backbone.head.weight, same.ar.backbone.head.weight)


def test_load_component_partial_and_unknown(tmp_path: Path, planner: Planner) -> None:
    path = tmp_path / "partial.safetensors"
    save_file({"backbone.head.weight": planner.ar.backbone.head.weight.detach().clone()}, str(path))
    with pytest.raises(ValueError, match="missing from the file"):
        planner.load_component("ar", path)
    assert "backbone.tok.proj.weight" in planner.load_component("ar", path, strict=False)
    save_file({"nonsense": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="does not have"):
        planner.load_component("ar", path)


def test_load_rejects_bad_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"width": 32, "colour": "red"}')
    with pytest.raises(ValueError, match="config.json"):
        Planner.load(tmp_path)


def test_batch_errors_name_the_field(planner: Planner, params) -> None:
    batch = make_batch(params)
    bad = dict(batch, history=batch["history"][:, :3])
    with pytest.raises(ValueError, match="'history'.*\\(B, 4, 3\\)"):
        planner.plan(bad, "flow")
    missing = {k: v for k, v in batch.items() if k != "command"}
    with pytest.raises(ValueError, match="missing field 'command'"):
        planner.plan(missing, "mdm")
    wrong_kind = batch["target_tokens"].clone()
    wrong_kind[1, 2] = 5  # an x/y bin in a heading slot
    with pytest.raises(ValueError, match="target_tokens.*sample 1 position 2"):
        planner.losses(dict(batch, target_tokens=wrong_kind), "mdm")
    with pytest.raises(ValueError, match="'image'.*dtype torch.uint8"):
        planner.plan(dict(batch, image=(batch["image"] * 255).to(torch.uint8)), "ar")
    with pytest.raises(ValueError, match="unknown planning mode"):
        planner.plan(batch, "beam")


def test_multi_view_images() -> None:
    p = tiny_params(num_views=3)
    planner = Planner(p).eval()
    batch = make_batch(p, b=2)
    assert batch["image"].shape[1] == 9
    assert planner.plan(batch, "mdm+refine").poses.shape == (2, 8, 3)


def test_refinement_drafts_from_decoding() -> None:
    p = tiny_params(refine_draft="decode", refine_draft_temperature=0.0)
    planner = Planner(p).train()
    batch = make_batch(p)
    draft = planner.refinement_drafts(batch)
    assert planner.training  # decoding ran in eval mode and the mode came back
    assert torch.equal(draft, planner.drivefine.decode(batch).tokens)  # greedy drafts: the plain decode
    assert float(planner.losses(batch, "refine")["refine"].detach()) > 0
