"""params.yaml that would run on something other than what it says is refused (issue 13, item 4 / 6):
an empty file, a key given twice, a billion-laughs file; errors never echo whole huge values."""

import time

import pytest

from drivefine_core.config import ParamsError, load_params, parse_params


def test_empty_params_file_is_refused(tmp_path):
    for text in ("", "# only a comment\n", "{}\n"):
        path = tmp_path / "params.yaml"
        path.write_text(text)
        with pytest.raises(ParamsError, match="empty"):
            load_params(path)


def test_duplicate_key_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("ingest:\n  split:\n    mode: folder\n    mode: hash\n")
    with pytest.raises(ParamsError, match=r"duplicate key 'mode' at line 4 \(first at line 3\)"):
        load_params(path)
    path.write_text("run: {seed: 1}\nrun: {seed: 2}\n")
    with pytest.raises(ParamsError, match="duplicate key 'run'"):
        load_params(path)


def test_billion_laughs_is_refused_fast_and_small(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("run: {seed: *a9}")
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(ParamsError, match="alias") as info:
        load_params(path)
    assert time.perf_counter() - t0 < 5 and len(str(info.value)) < 2000


def test_errors_quote_values_cut_short():
    with pytest.raises(ParamsError) as info:
        parse_params({"promotion": {"min_gain": "x" * 1_000_000}})
    assert "promotion.min_gain" in str(info.value) and len(str(info.value)) < 2000
