import json
import os
import subprocess
import sys

import mlflow
import yaml
from mlflow.tracking import MlflowClient

from drivefine_core.tracking.lineage import data_digest, is_secret, lock_hashes, manifests_digest
from drivefine_core.tracking.registry import dvc_lock_tags
from drivefine_core.tracking.runs import PARENT_RUN_ENV, public_params, stage_run
from tests.repo_copy import REPO, pipeline_env
from tests.servers import local_tracking


def test_secret_names_are_never_logged():
    params = {"storage": {"aws_secret_access_key": "s3cr3t", "api_token": "t", "endpoint": "http://x"},
              "db_password": "p", "lr": 0.1}
    logged = public_params(params)
    assert logged == {"storage.endpoint": "http://x", "lr": "0.1"}
    assert is_secret("AWS_ACCESS_KEY_ID") and not is_secret("MLFLOW_TRACKING_URI")


def _dvc_repo(root):
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "d/sub").mkdir(parents=True)
    (root / "d/b.txt").write_text("b")
    (root / "d/sub/a.txt").write_text("a")
    (root / "f.txt").write_text("f")
    (root / "params.yaml").write_text("run: {seed: 1}\n")  # a params dep: logged as a param, not a hash
    seen = "from stages._common import dvc_dep_hashes; import json; json.dump(dvc_dep_hashes('s'), open('seen.json', 'w'))"
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {"cmd": f'python -c "{seen}"', "deps": ["d", "f.txt"],
                                                                     "params": ["run.seed"], "outs": ["seen.json"]}}}))


def _repro(root):
    env = pipeline_env(PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((root / "seen.json").read_text()), lock_hashes(root / "dvc.lock")["s"]


def test_a_stage_sees_the_hashes_dvc_records_for_its_deps(tmp_path):
    """What a stage tags its run with, at its start, is what DVC then writes to dvc.lock, after a change too."""
    _dvc_repo(tmp_path)
    seen, locked = _repro(tmp_path)
    assert seen == {k: v for k, v in locked.items() if k != "seen.json"} and seen["d"].endswith(".dir")
    (tmp_path / "d/sub/a.txt").write_text("a, edited")
    seen2, locked2 = _repro(tmp_path)
    assert seen2["d"] != seen["d"] and seen2["d"] == locked2["d"] and seen2["f.txt"] == seen["f.txt"]


def test_registry_and_stage_runs_share_one_tag_scheme(tmp_path):
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "ingest": {"deps": [{"path": "data/synthetic/navsim_logs/train", "md5": "l.dir"}],
                   "outs": [{"path": "data/ingest", "md5": "o.dir"}]}}}))
    tags = dvc_lock_tags(tmp_path / "dvc.lock")
    assert tags["dvc.ingest.data/synthetic/navsim_logs/train"] == "l.dir" and tags["dvc.ingest.data/ingest"] == "o.dir"
    assert not any(k.startswith("dvc.dep.") for k in tags)


def test_manifests_digest_follows_the_manifests(tmp_path):
    (tmp_path / "m.json").write_text("{}")
    a = manifests_digest(tmp_path / "m.json", tmp_path / "gone.json")
    assert a == manifests_digest(tmp_path / "m.json", tmp_path / "gone.json")
    (tmp_path / "m.json").write_text('{"log": 1}')
    assert manifests_digest(tmp_path / "m.json", tmp_path / "gone.json") != a


def test_data_digest_ignores_code_and_order():
    a = data_digest({"data/x": "1", "stages/s.py": "2"})
    assert a == data_digest({"stages/s.py": "999", "data/x": "1"})
    assert a != data_digest({"data/x": "3", "stages/s.py": "2"})


def test_stage_run_tags_params_and_parent(tmp_path, monkeypatch):
    uri = local_tracking(tmp_path, "t")
    with mlflow.start_run() as parent:
        parent_id = parent.info.run_id
    monkeypatch.setenv(PARENT_RUN_ENV, parent_id)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    hashes = {"in.txt": "5d41402abc4b2a76b9719d911017c592", "stages/s.py": "c0de"}
    with stage_run("s", {"a": {"b": 1}, "secret_key": "x"}, default_uri=uri, experiment="t", repo_root=tmp_path,
                   dep_hashes=hashes) as run:
        run_id = run.info.run_id
    r = MlflowClient(uri).get_run(run_id)
    assert r.data.tags["mlflow.parentRunId"] == parent_id
    assert r.data.tags["dvc.s.in.txt"] == hashes["in.txt"] and r.data.tags["dvc.s.stages/s.py"] == "c0de"
    assert r.data.tags["data.digest"] == data_digest(hashes)
    assert r.data.tags["env.AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert r.data.params == {"a.b": "1"}


def test_metric_keys_are_made_acceptable_to_mlflow():
    from drivefine_core.tracking.runs import metric_key

    assert metric_key("evaluate.sft/mdm+refine/v1/pdms") == "evaluate.sft/mdm_plus_refine/v1/pdms"
    assert metric_key("a b:c-d_e.f/g") == "a b:c-d_e.f/g"
    assert metric_key("x(y)") == "x_y_"


def test_credentials_in_uris_never_become_tags():
    from drivefine_core.tracking.runs import without_userinfo

    assert without_userinfo("https://alice:s3cret@mlflow.example.com/x") == "https://mlflow.example.com/x"
    assert without_userinfo("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
