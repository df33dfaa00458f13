import io
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from drivefine_core.models import ModelParams, Planner
from drivefine_core.tracking.planner_pyfunc import encode_views, log_planner_model
from tests.servers import local_tracking

torch.set_num_threads(1)


def _jpeg(h=32, w=32, seed=0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def scene_frame(n: int = 2) -> pd.DataFrame:
    return pd.DataFrame({
        "images_b64": [encode_views([_jpeg(seed=i)]) for i in range(n)],
        "command": [[0, 1, 0, 0]] * n,
        "velocity": [[5.0, 0.0]] * n,
        "acceleration": [[0.1, 0.0]] * n,
        "history": [[-7.5, 0, 0, -5, 0, 0, -2.5, 0, 0, 0, 0, 0]] * n,
    })


@pytest.fixture(scope="module")
def planner_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("planner")
    torch.manual_seed(0)
    params = ModelParams(width=32, depth=2, heads=2, n_refine_blocks=1, image_height=32, image_width=32,
                         patch_size=16, vision_width=16, vision_depth=1, vision_heads=2, flow_width=16, mdm_steps=4)
    Planner.build("spanvla", params).save(d)
    return d


def test_logged_planner_predicts_eight_poses_like_the_planner(tmp_path, planner_dir):
    local_tracking(tmp_path, "pyfunc")
    df = scene_frame(2)
    with mlflow.start_run():
        info = log_planner_model(planner_dir, "flow", df.iloc[:1], registered_model="p")
    assert info.signature is not None and "images_b64" in info.signature.inputs.input_names()
    loaded = mlflow.pyfunc.load_model("models:/p/1")
    out = loaded.predict(df)
    assert list(out.columns) == ["x", "y", "heading"] and len(out) == 2
    assert all(len(v) == 8 for v in out["x"])
    # Same numbers as calling the planner directly on the same decoded inputs.
    from drivefine_core.tracking.planner_pyfunc import frame_to_batch
    planner = Planner.load(planner_dir).eval()
    direct = planner.plan(frame_to_batch(df, 32, 32), "flow", seed=0).poses.numpy()
    np.testing.assert_allclose(np.stack(out["x"].to_numpy()), direct[..., 0], atol=1e-5)


def test_bad_input_names_the_column(planner_dir):
    from drivefine_core.tracking.planner_pyfunc import frame_to_batch
    df = scene_frame(1).drop(columns=["velocity"])
    with pytest.raises(ValueError, match="velocity"):
        frame_to_batch(df, 32, 32)
    df = scene_frame(1)
    df.at[0, "history"] = [0.0] * 5
    with pytest.raises(ValueError, match="column history"):
        frame_to_batch(df, 32, 32)


def test_served_images_are_preprocessed_like_the_feature_cache():
    """A full-size camera image sent to the server becomes the same tensor the feature cache stores."""
    from drivefine_core.features.builder import encode_image
    from drivefine_core.features.params import FeatureParams
    from drivefine_core.features.samples import decode_image
    from drivefine_core.tracking.planner_pyfunc import frame_to_batch

    big = _jpeg(h=270, w=480, seed=3)
    cached = decode_image(encode_image(big, FeatureParams(image_width=32, image_height=32), "x")) / 255.0
    df = scene_frame(1)
    df.at[0, "images_b64"] = encode_views([big])
    served = frame_to_batch(df, 32, 32)["image"][0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(served, cached, atol=1e-6)


def _huge_header_jpeg(side: int = 12000) -> bytes:
    """A small JPEG whose header claims side x side pixels (what a decompression bomb looks like)."""
    raw = bytearray(_jpeg())
    sof = raw.index(b"\xff\xc0")  # baseline frame header: marker, length(2), precision(1), height(2), width(2)
    raw[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
    return bytes(raw)


BAD_REQUESTS = {  # (what is changed in row 0) -> (field named in the answer)
    "nan velocity": (("velocity", [float("nan"), 0.0]), r"row 0, field velocity\[0\]: not a finite number"),
    "inf velocity": (("velocity", [5.0, float("inf")]), r"row 0, field velocity\[1\]: not a finite number"),
    "1e30 velocity": (("velocity", [1e30, 0.0]), r"row 0, field velocity\[0\]: 1e\+30 is outside \[-70, 70\]"),
    "far history": (("history", [0.0] * 9 + [0.0, -5e3, 0.0]), r"field history\[10\]: -5000 is outside"),
    "command": (("command", [0.0, 7.0, 0.0, 0.0]), r"field command\[1\]: 7 is outside \[0, 1\]"),
    "huge image": (("images_b64", encode_views([_huge_header_jpeg()])), r"images_b64\[0\]: 12000x12000 pixels"),
    "not an image": (("images_b64", ["bm90IGFuIGltYWdl"]), r"images_b64\[0\]: not a decodable image"),
    "two views": (("images_b64", encode_views([_jpeg(), _jpeg()])), r"field images_b64: 2 views, the planner reads 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_are_refused_naming_the_field(case):
    from drivefine_core.ops.params import ServingParams
    from drivefine_core.tracking.planner_pyfunc import BadRequest, validate_request

    (col, value), message = BAD_REQUESTS[case]
    df = scene_frame(2)
    df.at[0, col] = value
    with pytest.raises(BadRequest, match=message):
        validate_request(df, 1, ServingParams())
    validate_request(scene_frame(2), 1, ServingParams())  # the unchanged request passes
    with pytest.raises(BadRequest, match=r"batch: 3 rows, more than 2 \(ops.serving.max_batch_rows\)"):
        validate_request(scene_frame(3), 1, ServingParams(max_batch_rows=2))
    with pytest.raises(BadRequest, match=r"images_b64\[0\]: about \d+ bytes, more than 1024"):
        validate_request(scene_frame(1).assign(images_b64=[["A" * 4000]]), 1, ServingParams(max_image_bytes=1024))


@pytest.mark.integration
def test_served_model_answers_400_naming_the_field_without_a_stack_trace(tmp_path, planner_dir):
    """`drivefine serve` as the README writes it, with no virtual environment on PATH."""
    import json
    import os
    import shutil
    import signal
    import subprocess
    import urllib.error
    import urllib.request

    import psutil
    import yaml

    from tests.servers import free_port, wait_http

    repo_root = __import__("pathlib").Path(__file__).resolve().parents[2]
    repo = tmp_path / "clone"
    repo.mkdir()
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["ops"]["serving"]["max_batch_rows"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    mlflow.set_tracking_uri(f"sqlite:///{repo}/mlflow.db")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("serve", artifact_location=str(repo / "mlruns")))
    with mlflow.start_run():
        log_planner_model(planner_dir, "flow", scene_frame(1), registered_model="drivefine-planner")
    mlflow.MlflowClient().set_registered_model_alias("drivefine-planner", "champion", "1")

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DRIVEFINE_"))}
    env["PATH"] = os.pathsep.join(p for p in ("/usr/local/bin", "/usr/bin", "/bin") if os.path.isdir(p))
    assert shutil.which("uvicorn", path=env["PATH"]) is None  # the venv's bin is not on PATH
    drivefine = str(repo_root / ".venv" / "bin" / "drivefine")
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([drivefine, "serve", "--repo", str(repo), "-p", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(f"{url}/ping", timeout=240, proc=server)
        except Exception:
            pytest.fail((tmp_path / "serve.log").read_text()[-3000:])

        def post(df: pd.DataFrame) -> tuple[int, str]:
            body = json.dumps({"dataframe_split": df.to_dict(orient="split")}).encode()  # NaN / Infinity as JSON
            req = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()

        status, text = post(scene_frame(2))
        assert status == 200, text
        assert len(json.loads(text)["predictions"][0]["x"]) == 8
        for case, ((col, value), message) in BAD_REQUESTS.items():
            df = scene_frame(2)
            df.at[1, col] = value
            status, text = post(df)
            assert status == 400, (case, text)
            answer = json.loads(text)
            assert answer["error_code"] == "INVALID_PARAMETER_VALUE", case
            assert __import__("re").search(message.replace("row 0", "row 1"), answer["message"]), (case, answer)
            assert "stack_trace" not in answer and "Traceback" not in text, case
        status, text = post(scene_frame(4))  # ops.serving.max_batch_rows: 3 in this clone's params
        assert status == 400 and "batch: 4 rows, more than 3" in text
    finally:
        children = psutil.Process(server.pid).children(recursive=True) if server.poll() is None else []
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        _, alive = psutil.wait_procs(children, timeout=30)
        for proc in alive:
            proc.kill()
        log.close()
    assert not alive  # the scoring server's worker ended with the command


_IMPORTS_ON_LOAD = r"""
import ast, json, sys, importlib.metadata as md
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(pd.read_json(sys.argv[2], orient="split"))
dists = md.packages_distributions()
names = set()
for mod in [m for m in list(sys.modules.values()) if (getattr(m, "__name__", "") or "").startswith("drivefine_core")]:
    if not getattr(mod, "__file__", None):
        continue
    for node in ast.parse(open(mod.__file__).read()).body:  # module-level: what loading it needs
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
third = {d.lower().replace("_", "-") for n in names - set(sys.stdlib_module_names) for d in dists.get(n, [])}
print(json.dumps(sorted(third)))
"""


def test_logged_requirements_pin_every_distribution_the_planner_code_imports(tmp_path, planner_dir):
    """The pinned list (no inference pass) covers what the drivefine_core modules loaded on the model's load and
    predict path import at module level, names torch at the installed version (without its +cpu build label)
    and never names the project itself."""
    import importlib.metadata
    import json
    import subprocess
    import sys

    from drivefine_core.tracking.planner_pyfunc import SERVING_DISTRIBUTIONS

    local_tracking(tmp_path, "reqs")
    with mlflow.start_run():
        info = log_planner_model(planner_dir, "flow", scene_frame(1))
    local = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "model"))
    reqs = (Path(local) / "requirements.txt").read_text().split()
    assert f"torch=={importlib.metadata.version('torch').split('+')[0]}" in reqs
    assert not [r for r in reqs if r.lower().startswith("drivefine")]
    example = tmp_path / "example.json"
    example.write_text(scene_frame(2).to_json(orient="split"))
    proc = subprocess.run([sys.executable, "-c", _IMPORTS_ON_LOAD, local, str(example)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert {"torch", "numpy", "pillow"} <= imported  # the check sees the planner's own imports
    missing = imported - set(SERVING_DISTRIBUTIONS) - {"drivefine", "mlflow", "mlflow-skinny", "mlflow-tracing"}
    assert not missing, f"the planner's code imports {sorted(missing)}, absent from SERVING_DISTRIBUTIONS"
