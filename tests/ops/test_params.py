"""The `ops` section of params.yaml: defaults when absent, errors that name the file and the key."""

from __future__ import annotations

import pytest
import yaml

from drivefine_core.config import ParamsError, load_ops_params
from drivefine_core.ops.params import OpsParams


def _write(tmp_path, data) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))


def test_defaults_when_the_section_or_the_file_is_absent(tmp_path):
    assert load_ops_params(tmp_path) == OpsParams()
    _write(tmp_path, {"run": {"seed": 1}})
    p = load_ops_params(tmp_path)
    assert p.ingest.dest_dir == "incoming/navsim_logs" and p.routing.gpu_stages == ["sft", "rl", "evaluate"]


def test_values_are_read(tmp_path):
    _write(tmp_path, {"ops": {"ingest": {"bucket": "team-logs", "splits": ["trainval"], "trigger": "none"},
                              "remote": {"url": "s3://team-dvc/cache"}, "routing": {"gpu_deployment": "retrain/gpu"}}})
    p = load_ops_params(tmp_path)
    assert (p.ingest.bucket, p.ingest.splits, p.ingest.trigger) == ("team-logs", ["trainval"], "none")
    assert p.remote.url == "s3://team-dvc/cache" and p.routing.gpu_deployment == "retrain/gpu"


@pytest.mark.parametrize("section,needle", [
    ({"ingest": {"bucket_name": "x"}}, "ops.ingest.bucket_name"),
    ({"ingest": {"dest_dir": "/abs/path"}}, "ops.ingest.dest_dir"),
    ({"ingest": {"dest_dir": "../outside"}}, "ops.ingest.dest_dir"),
    ({"ingest": {"splits": ["../x"]}}, "ops.ingest.splits"),
    ({"ingest": {"trigger": "sometimes"}}, "ops.ingest.trigger"),
    ({"remote": {"url": "gs://bucket"}}, "ops.remote.url"),
])
def test_bad_values_name_the_file_and_key(tmp_path, section, needle):
    _write(tmp_path, {"ops": section})
    with pytest.raises(ParamsError) as err:
        load_ops_params(tmp_path)
    assert needle in str(err.value) and "params.yaml" in str(err.value)
