import hashlib
import json

import mlflow
from mlflow.tracking import MlflowClient

from drivefine_core.tracking.lineage import data_digest, dvc_md5, is_secret
from drivefine_core.tracking.runs import PARENT_RUN_ENV, public_params, stage_run


def test_secret_names_are_never_logged():
    params = {"storage": {"aws_secret_access_key": "s3cr3t", "api_token": "t", "endpoint": "http://x"},
              "db_password": "p", "lr": 0.1}
    logged = public_params(params)
    assert logged == {"storage.endpoint": "http://x", "lr": "0.1"}
    assert is_secret("AWS_ACCESS_KEY_ID") and not is_secret("MLFLOW_TRACKING_URI")


def test_dir_hash_follows_dvc_format(tmp_path):
    (tmp_path / "d/sub").mkdir(parents=True)
    (tmp_path / "d/b.txt").write_bytes(b"b")
    (tmp_path / "d/sub/a.txt").write_bytes(b"a")
    listing = [{"md5": hashlib.md5(b"b").hexdigest(), "relpath": "b.txt"},
               {"md5": hashlib.md5(b"a").hexdigest(), "relpath": "sub/a.txt"}]
    expected = hashlib.md5(json.dumps(listing, sort_keys=True).encode()).hexdigest() + ".dir"
    assert dvc_md5(tmp_path / "d") == expected
    assert dvc_md5(tmp_path / "d/b.txt") == hashlib.md5(b"b").hexdigest()


def test_data_digest_ignores_code_and_order():
    a = data_digest({"data/x": "1", "stages/s.py": "2"})
    assert a == data_digest({"stages/s.py": "999", "data/x": "1"})
    assert a != data_digest({"data/x": "3", "stages/s.py": "2"})


def test_stage_run_tags_params_and_parent(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: x\n    deps: [in.txt]\n")
    (tmp_path / "in.txt").write_text("hello")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("t")
    with mlflow.start_run() as parent:
        parent_id = parent.info.run_id
    monkeypatch.setenv(PARENT_RUN_ENV, parent_id)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    with stage_run("s", {"a": {"b": 1}, "secret_key": "x"}, default_uri=uri, experiment="t", repo_root=tmp_path) as run:
        run_id = run.info.run_id
    r = MlflowClient(uri).get_run(run_id)
    assert r.data.tags["mlflow.parentRunId"] == parent_id
    assert r.data.tags["dvc.dep.in.txt"] == hashlib.md5(b"hello").hexdigest()
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
