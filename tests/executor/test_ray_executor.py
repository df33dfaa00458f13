"""The data stages on a real local Ray cluster (head + 1 worker node, started here): the same bytes as the
local process pool, incremental manifests across the two, a killed worker retried, a lost log reported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pyogrio
import pytest
from ray_cluster import LocalRayCluster

from drivefine_core.data.ingest import ingest
from drivefine_core.data.params import IngestParams, SceneFilter, SplitParams
from drivefine_core.data.scenes_io import read_scenes
from drivefine_core.data.synthetic.params import GenerateParams
from drivefine_core.data.synthetic.world import generate_world
from drivefine_core.executor.core import WorkerLostError, make_executor
from drivefine_core.executor.params import ExecutorParams
from drivefine_core.features.from_scenes import build_features_from_scenes_file
from drivefine_core.features.params import FeatureParams
from drivefine_core.metrics.baselines import constant_velocity_agent, human_agent
from drivefine_core.metrics.cache_io import read_metric_caches
from drivefine_core.metrics.cache_stage import build_metric_cache_dir
from drivefine_core.metrics.evaluate import evaluate_agents
from drivefine_core.metrics.params import MetricsParams
from drivefine_core.validation.scene_checks import validate_log_scenes

pytestmark = pytest.mark.integration

WORLD = GenerateParams(seed=3, grid_nodes_x=3, grid_nodes_y=3, num_logs=4, frames_per_log=24, image_width=64,
                       image_height=36, splits={"train": 0.5, "test": 0.5})
INGEST = IngestParams(scene_filter=SceneFilter(frame_interval=2), split=SplitParams(mode="folder"))
FEATURES = FeatureParams(image_width=32, image_height=16, row_group_size=4)


@pytest.fixture(scope="module")
def cluster():
    c = LocalRayCluster(head_cpus=1, worker_cpus=1)
    try:
        c.connect()
        yield c
    finally:
        c.stop()


def run_data_stages(root: Path, executor_for) -> None:
    """generate -> ingest -> features -> metric cache under root, each on the executor executor_for(workers)."""
    world = generate_world(root / "synthetic", WORLD, executor=executor_for(2))
    ingest(root / "synthetic", sorted(world.logs), root / "ingest", INGEST, progress=False,
           validate=lambda log, scenes: validate_log_scenes(log, scenes), executor=executor_for(2))
    for split in sorted(world.logs):
        scenes = root / "ingest" / "scenes" / f"{split}.parquet"
        build_features_from_scenes_file(scenes, str(root / "synthetic" / "sensor_blobs"), str(root / "features" / split),
                                        FEATURES, executor=executor_for(2))
        build_metric_cache_dir(read_scenes(scenes), root / "synthetic" / "maps", root / "metric_cache" / split,
                               executor=executor_for(2))


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_ray_and_the_process_pool_write_the_same_bytes(cluster, tmp_path):
    ray_executor = make_executor(ExecutorParams(ray_address=cluster.address))
    assert ray_executor.name == f"Ray, {cluster.cpus} CPUs"
    run_data_stages(tmp_path / "pool", lambda n: make_executor(ExecutorParams(workers=n)))
    run_data_stages(tmp_path / "ray", lambda n: ray_executor)
    pool, on_ray = files(tmp_path / "pool"), files(tmp_path / "ray")
    assert sorted(pool) == sorted(on_ray)
    kinds = {Path(k).suffix for k in pool}
    assert {".pkl", ".jpg", ".gpkg", ".parquet", ".json"} <= kinds
    assert sum(k.startswith("metric_cache/test/") and k.endswith(".parquet") for k in pool) == 2
    # GeoPackages are written by the calling process on both paths; GDAL stamps them with the time of writing.
    assert [k for k in pool if pool[k] != on_ray[k] and not k.endswith(".gpkg")] == []
    for k in (k for k in pool if k.endswith(".gpkg")):
        for layer, _ in pyogrio.list_layers(tmp_path / "pool" / k):
            a, b = (pyogrio.read_dataframe(tmp_path / side / k, layer=layer) for side in ("pool", "ray"))
            assert a.equals(b), (k, layer)

    # Scores of the evaluate stage: the same table from the pool and from Ray.
    caches = read_metric_caches(tmp_path / "pool" / "metric_cache" / "test")
    agents = {"cv": constant_velocity_agent, "human": human_agent}
    params = MetricsParams(chunk_scenes=4)
    _, on_pool = evaluate_agents(caches, agents, params, make_executor(ExecutorParams(workers=2)))
    _, scored_on_ray = evaluate_agents(caches, agents, params, ray_executor)
    assert len(on_pool) == 2 * len(caches) > 4
    assert on_pool.equals(scored_on_ray)


def test_manifests_written_by_one_backend_are_reused_by_the_other(cluster, tmp_path):
    root = tmp_path / "data"
    run_data_stages(root, lambda n: make_executor(ExecutorParams(workers=n)))
    ray_executor = make_executor(ExecutorParams(ray_address=cluster.address))
    scenes = root / "ingest" / "scenes" / "train.parquet"
    again = build_features_from_scenes_file(scenes, str(root / "synthetic" / "sensor_blobs"),
                                            str(root / "features" / "train"), FEATURES, executor=ray_executor)
    assert again.written == [] and len(again.reused) == 2
    cache = build_metric_cache_dir(read_scenes(scenes), root / "synthetic" / "maps", root / "metric_cache" / "train",
                                   executor=ray_executor)
    assert cache.logs_written == [] and len(cache.logs_skipped) == 2
    # A changed build param recomputes every log, on Ray, into the pool's store.
    rebuilt = build_features_from_scenes_file(scenes, str(root / "synthetic" / "sensor_blobs"),
                                              str(root / "features" / "train"),
                                              FEATURES.model_copy(update={"row_group_size": 2}), executor=ray_executor)
    assert len(rebuilt.written) == 2 and rebuilt.failed == {}
    assert all(pq.ParquetFile(root / "features" / "train" / f"log={n}" / "part-0.parquet").metadata.num_row_groups > 1
               for n in rebuilt.written)


def die_once_task():
    """A task in which item 1 kills its own worker process on its first attempt (a lost node, an OOM kill);
    later attempts and other items return (item, pid). Defined in a function so that it travels to the
    workers by value (they cannot import this test module)."""

    def die_once(marker_dir: str, item: int) -> tuple[int, int]:
        marker = Path(marker_dir) / f"attempt-{item}"
        if item == 1 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return item, os.getpid()

    return die_once


def test_a_killed_worker_is_retried_by_ray(cluster, tmp_path):
    executor = make_executor(ExecutorParams(ray_address=cluster.address, max_retries=2))
    done = list(executor.map(die_once_task(), range(4), shared=str(tmp_path), ordered=True, progress=False))
    assert [d.error for d in done] == [None] * 4
    assert [d.result()[0] for d in done] == [0, 1, 2, 3]
    killed = int((tmp_path / "attempt-1").read_text())
    assert done[1].result()[1] != killed  # the second attempt ran in a new worker process


def test_a_worker_lost_beyond_the_retries_fails_that_item_only(cluster, tmp_path):
    executor = make_executor(ExecutorParams(ray_address=cluster.address, max_retries=0))
    done = list(executor.map(die_once_task(), range(4), shared=str(tmp_path), ordered=True, progress=False))
    assert isinstance(done[1].error, WorkerLostError)
    assert [d.result()[0] for i, d in enumerate(done) if i != 1] == [0, 2, 3]


def test_a_stage_process_named_only_by_ray_address(cluster, tmp_path):
    """What a stage does on the team stack: RAY_ADDRESS in its environment, no ray.init of its own. Its tasks
    see its storage endpoint and run in its working directory."""
    script = ("import os\n"
              "from drivefine_core.executor.core import make_executor\n"
              "def where(var, item):\n"
              "    return os.environ.get(var, 'unset'), os.getcwd()\n"
              "done = make_executor().map(where, range(3), shared='AWS_ENDPOINT_URL', progress=False)\n"
              "print(sorted(set(d.result() for d in done)))\n")
    env = {**os.environ, "RAY_ADDRESS": cluster.address, "AWS_ENDPOINT_URL": "http://minio.example:9000",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == repr([("http://minio.example:9000", str(tmp_path))])


def test_ray_address_from_the_environment(cluster, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    assert make_executor(ExecutorParams(workers=2)).name.startswith("Ray")
    monkeypatch.delenv("RAY_ADDRESS")
    assert make_executor(ExecutorParams(workers=2)).name == "2 local processes"
    assert make_executor(ExecutorParams()).name == "in-process"
