"""Feature cache benchmark: build speed, bytes per scene, and loader throughput vs what training consumes.

Prints, all measured in this one run:
  scenes/s written          build_feature_store over hand-built scenes with camera JPEGs at --source-size
  bytes/scene               Parquet bytes per scene at the default image size (target <= 50 KB)
  loader samples/s          StreamingFeatureDataset + DataLoader (--workers), images decoded
  training samples/s        one optimizer step of the planner (drivefine_core.models) on the same batches,
                            or of a stand-in transformer of a few M params when the planner is not importable
  ratio                     loader / training (target >= 10)

Usage: python bench/features.py [--logs 4] [--scenes 40] [--source-size 1920x1080] [--workers 2] [--batch 32]
                                [--device cuda|cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas  # noqa: F401 - pyarrow imports it on first use; keep that second out of the timed build
import torch
from torch import nn
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "features"))  # hand-built scenes + JPEGs (until the world writes images)

from feature_scenes import make_log  # noqa: E402

from drivefine_core.features.dataset import StreamingFeatureDataset, collate_features  # noqa: E402
from drivefine_core.features.params import FeatureParams  # noqa: E402
from drivefine_core.features.store import build_feature_store  # noqa: E402


class StandIn(nn.Module):
    """A small ViT-ish transformer (patches + state + 24 target tokens -> token logits), ~3M params."""

    def __init__(self, h: int, w: int, c: int = 3, d: int = 192, depth: int = 4, vocab: int = 5800) -> None:
        super().__init__()
        self.patch = nn.Conv2d(c, d, kernel_size=16, stride=16)
        self.state = nn.Linear(4 + 2 + 2 + 12, d)
        self.tok = nn.Embedding(vocab + 1, d)
        self.pos = nn.Parameter(torch.zeros(1, (h // 16) * (w // 16) + 1 + 24, d))
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, depth)
        self.head = nn.Linear(d, vocab)

    def loss(self, b: dict[str, Any]) -> torch.Tensor:
        p = self.patch(b["image"]).flatten(2).transpose(1, 2)
        s = self.state(torch.cat([b["command"], b["velocity"], b["acceleration"], b["history"].flatten(1)], 1))[:, None]
        masked = torch.full_like(b["target_tokens"], 5800)  # predict every token from a fully masked answer
        x = torch.cat([p, s, self.tok(masked)], 1)
        x = self.body(x + self.pos[:, : x.shape[1]])
        logits = self.head(x[:, -24:])
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), b["target_tokens"].reshape(-1))


def _to(b: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in b.items()}


def training_model(params: FeatureParams, device: str) -> tuple[str, Any]:
    """(description, step_fn(batch)) for the real planner if it fits the params, else the stand-in."""
    try:
        from drivefine_core.models.params import ModelParams
        from drivefine_core.models.planner import Planner

        mp = ModelParams(image_width=params.image_width, image_height=params.image_height, num_views=len(params.cameras))
        model = Planner.build("drivefine", mp).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(b: dict[str, Any]) -> None:
            loss = sum(model.losses(_to(b, device), ["mdm", "refine"]).values())
            opt.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            opt.step()

        n = sum(p.numel() for p in model.parameters())
        return f"planner (drivefine_core.models, mdm + refine losses), {n / 1e6:.1f}M params", step
    except Exception as exc:  # noqa: BLE001 - the bench still runs with the stand-in
        model = StandIn(params.image_height, params.image_width, 3 * len(params.cameras)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(b: dict[str, Any]) -> None:
            loss = model.loss(_to(b, device))  # type: ignore[operator]
            opt.zero_grad()
            loss.backward()
            opt.step()

        n = sum(p.numel() for p in model.parameters())
        return f"STAND-IN transformer ({n / 1e6:.1f}M params; planner not usable here: {exc})", step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", type=int, default=4)
    ap.add_argument("--scenes", type=int, default=40, help="scenes per log")
    ap.add_argument("--source-size", default="1920x1080", help="camera JPEG size on disk")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    ap.add_argument("--build-workers", type=int, default=1, help="processes building logs")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--train-steps", type=int, default=4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="where the training step runs")
    args = ap.parse_args()
    src = tuple(int(v) for v in args.source_size.split("x"))
    params = FeatureParams(build_workers=args.build_workers)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        scenes = []
        for i in range(args.logs):
            scenes += make_log(root, f"bench-log-{i}", args.scenes, size=src)  # type: ignore[arg-type]
        print(f"generated {len(scenes)} scenes with {src[0]}x{src[1]} JPEGs in {time.perf_counter() - t0:.1f}s (hand-built, not the world generator)")

        t0 = time.perf_counter()
        res = build_feature_store(scenes, str(root / "sensor_blobs"), str(root / "features"), "trainval", params)
        wall = time.perf_counter() - t0
        print(f"build: {res.scenes_written} scenes in {wall:.2f}s = {res.scenes_written / wall:.1f} scenes/s written "
              f"({args.build_workers} process(es); image {params.image_width}x{params.image_height} {params.image_format} q{params.jpeg_quality})")
        print(f"size: {res.bytes_per_scene / 1024:.1f} KB/scene (target <= 50 KB: {'OK' if res.bytes_per_scene <= 50_000 else 'OVER'})")
        t0 = time.perf_counter()
        again = build_feature_store(scenes, str(root / "sensor_blobs"), str(root / "features"), "trainval", params)
        print(f"rerun with nothing changed: {len(again.reused)} logs reused, {len(again.written)} written, {time.perf_counter() - t0:.2f}s")

        ds = StreamingFeatureDataset(str(root / "features"), params)
        loader = DataLoader(ds, batch_size=args.batch, num_workers=args.workers, collate_fn=collate_features,
                            persistent_workers=args.workers > 0)
        batches = [b for _, b in zip(range(args.train_steps + 1), loader)]  # epoch 0: warm-up (workers start)
        n = 0
        t0 = time.perf_counter()
        for epoch in (1, 2):
            ds.set_epoch(epoch)
            for b in loader:
                n += len(b["token"])
        load_rate = n / (time.perf_counter() - t0)
        print(f"loader: {n} samples in 2 epochs, {load_rate:.0f} samples/s ({args.workers} workers, batch {args.batch}, images decoded)")

        desc, step = training_model(params, args.device)
        step(batches[0])  # warm-up
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
        sync()
        t0 = time.perf_counter()
        for b in batches[1 : args.train_steps + 1]:
            step(b)
        sync()
        steps = max(1, len(batches) - 1)
        train_rate = steps * args.batch / (time.perf_counter() - t0)
        where = args.device if args.device != "cpu" else f"cpu, {torch.get_num_threads()} threads"
        print(f"training step: {train_rate:.1f} samples/s ({where}) - {desc}")
        print(f"ratio loader / training = {load_rate / train_rate:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
