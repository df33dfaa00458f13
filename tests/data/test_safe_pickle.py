import os
import pickle

import numpy as np
import pytest

from drivefine_core.data.errors import UnsafePickleError
from drivefine_core.data.openscene_reader import read_log
from drivefine_core.data.safe_pickle import safe_load, safe_loads


class _Hostile:
    """Unpickling this calls os.system(touch <marker>) under the standard pickle loader."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    log = tmp_path / "evil.pkl"
    log.write_bytes(pickle.dumps([{"token": "x", "payload": _Hostile(str(marker))}]))
    with pytest.raises(UnsafePickleError) as info:
        read_log(log)
    message = str(info.value)
    assert str(log) in message
    assert "system" in message  # names the refused global (posix.system / nt.system)
    assert not marker.exists()


@pytest.mark.parametrize("dangerous", [("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load")])
def test_other_globals_are_refused(dangerous):
    module, name = dangerous
    # protocol 0 GLOBAL opcode naming the callable, then an empty tuple and REDUCE
    payload = f"c{module}\n{name}\n(tR.".encode()
    with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
        safe_loads(payload, source="x.pkl")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_data_round_trips(tmp_path, protocol):
    data = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": np.array(["x", "yy"]),
        "c": np.float64(2.5),
        "d": np.int64(7),
        "e": [1, 2.0, "s", None, True, (1, 2), {3, 4}],
        "f": np.zeros((0, 7)),
        "g": np.arange(10)[::3],
    }
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    out = safe_load(path)
    for key in ("a", "b", "f", "g"):
        assert out[key].dtype == data[key].dtype
        np.testing.assert_array_equal(out[key], data[key])
    assert out["c"] == 2.5 and out["d"] == 7 and out["e"] == data["e"]
