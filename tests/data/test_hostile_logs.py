"""One bad log never stops a stage (issue 13, item 2): arrays a pickle asks for are bounded before
numpy allocates them, and two files sharing one log_name quarantine the second, naming both."""

import pickle

import numpy as np
import pytest
from tests.data.readers_factory import make_log, write_log

from drivefine_core.data.ingest import ingest
from drivefine_core.data.params import IngestParams, SplitParams
from drivefine_core.data.safe_pickle import ArrayTooLargeError, safe_loads

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover
    from numpy.core.multiarray import _reconstruct


class _Pickled:
    """Pickles as the given reduce tuple: lets a test write the bytes a hostile file would hold."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


def _ndarray_call(shape, dtype="f8"):
    # numpy.ndarray(shape, dtype) as one REDUCE: allocates the whole array (uninitialised) at once
    return pickle.dumps(_Pickled(np.ndarray, (shape, dtype)), protocol=2)


def _setstate(shape, dtype, raw):
    # _reconstruct(ndarray, (0,), b'b') then BUILD with a state naming a shape the data does not fill
    return pickle.dumps(_Pickled(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, np.dtype(dtype), False, raw)),
                        protocol=2)


@pytest.mark.parametrize(
    "payload",
    [
        _ndarray_call((5000,)),
        _ndarray_call((100, 100)),
        _setstate((5000,), "O", [1, 2]),  # object arrays are allocated before the list is checked
        _setstate((5000,), "f8", b"\0" * 8),
        _ndarray_call((10,), "V100000"),  # few elements, huge items
    ],
)
def test_arrays_over_the_cap_are_refused_before_allocation(payload):
    with pytest.raises(ArrayTooLargeError, match="exceeds the limit of 1000 elements"):
        safe_loads(payload, "x.pkl", max_array_elements=1000)


def test_byte_counts_are_refused_and_normal_arrays_still_load():
    with pytest.raises(Exception, match=r"refused bytearray\(<count>\)"):
        safe_loads(pickle.dumps(_Pickled(bytearray, (1 << 40,)), protocol=2), "x.pkl")
    data = {"a": np.arange(1000.0).reshape(10, 100), "o": np.array([1, "x"], dtype=object), "b": bytearray(b"ab")}
    for protocol in (2, 4, 5):
        back = safe_loads(pickle.dumps(data, protocol=protocol), "ok.pkl", max_array_elements=1000)
        assert type(back["a"]) is np.ndarray and np.array_equal(back["a"], data["a"])
        assert back["o"].tolist() == [1, "x"] and back["b"] == bytearray(b"ab")


def _params(**kw):
    return IngestParams(split=SplitParams(mode="folder", folder_map={"trainval": "train"}), **kw)


def test_a_log_asking_for_a_huge_array_is_quarantined_and_the_rest_go_on(tmp_path):
    root = tmp_path / "navsim"
    write_log(root, "trainval", "log-good", make_log(16, "log-good"))
    evil = make_log(16, "log-evil")
    evil[2]["can_bus"] = _Pickled(np.ndarray, ((1 << 31,), "f8"))  # 16 GiB if numpy were asked
    write_log(root, "trainval", "log-evil", evil)
    report = ingest(root, ["trainval"], tmp_path / "out", _params(max_array_elements=1_000_000), progress=False)
    assert [(q.log, q.field) for q in report.quarantine] == [("log-evil", "<pickle>")]
    assert "exceeds the limit of 1000000 elements" in report.quarantine[0].reason
    assert report.logs_read == 1 and report.scenes_per_split == {"train": 1}


def test_two_files_sharing_one_log_name_quarantine_the_second_naming_both(tmp_path):
    root = tmp_path / "navsim"
    first = write_log(root, "trainval", "log-a", make_log(16, "shared"))
    second_frames = make_log(16, "shared")
    for i, f in enumerate(second_frames):  # other frames (own tokens), same log_name
        f["token"] = f"other-{i}"
    second = write_log(root, "trainval", "log-b", second_frames)
    write_log(root, "trainval", "log-c", make_log(16, "log-c"))
    report = ingest(root, ["trainval"], tmp_path / "out", _params(), progress=False)
    assert [(q.log, q.field) for q in report.quarantine] == [("log-b", "log_name")]
    q = report.quarantine[0]
    assert q.path == str(second) and str(first) in q.reason
    assert report.logs_read == 2 and report.scenes_per_split == {"train": 2}
