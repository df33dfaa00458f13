"""Written OpenScene logs must load under numpy 1.x too: numpy 1.x has no `numpy._core` module, so no global
the pickle names may live there. Checked on the opcodes themselves, not with the project's reader."""

import pickle
import pickletools

import numpy as np

from drivefine_core.data.openscene_writer import write_log
from drivefine_core.data.safe_pickle import safe_load


def _globals(data: bytes) -> list[str]:
    """Every global a pickle names: GLOBAL carries 'module name'; STACK_GLOBAL takes the two strings pushed
    before it (tracked here for any string opcode, so a protocol 4 pickle cannot slip through)."""
    names, strings = [], []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            names.append(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            names.append(".".join(strings[-2:]))
        elif isinstance(arg, str):
            strings.append(arg)
    return names


def test_checker_sees_numpy2_globals():
    # What numpy 2 writes by default (the reason for the fix): the checker must notice it.
    plain = pickle.dumps([{"a": np.zeros(3)}], protocol=4)
    assert any(g.startswith("numpy._core.") for g in _globals(plain))


def test_written_log_names_no_numpy_core_private_module(tmp_path, tiny_logs):
    frames = tiny_logs[0][2][:6]
    frames = [dict(f, extra={"scalar": np.float64(1.5), "ints": np.arange(4, dtype=np.int32),
                             "flags": np.array([True, False]), "nested": [np.eye(2), (np.float64(2.0),)]})
              for f in frames]
    path = write_log(tmp_path, "mini", "log0", frames)
    data = path.read_bytes()
    names = _globals(data)
    assert not [g for g in names if g.startswith("numpy._core")]
    # numpy 1.x and 2.x both have these: arrays, scalars and dtypes are all there is.
    assert {"numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar", "numpy.ndarray", "numpy.dtype"} >= set(names)
    assert "numpy.core.multiarray._reconstruct" in names and "numpy.core.multiarray.scalar" in names
    # Same values back through the standard loader (numpy 2 aliases numpy.core) and through the safe one.
    for back in (pickle.loads(data), safe_load(path)):
        assert len(back) == len(frames)
        for a, b in zip(back, frames):
            assert a["token"] == b["token"]
            np.testing.assert_array_equal(a["anns"]["gt_boxes"], b["anns"]["gt_boxes"])
            np.testing.assert_array_equal(a["extra"]["ints"], b["extra"]["ints"])
            assert a["extra"]["ints"].dtype == np.int32 and a["extra"]["flags"].dtype == bool
            assert a["extra"]["scalar"] == 1.5 and type(a["extra"]["scalar"]) is np.float64
            np.testing.assert_array_equal(a["extra"]["nested"][0], np.eye(2))
