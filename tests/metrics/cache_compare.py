"""Field-by-field equality of two MetricCaches (runtime state, the `_` fields, left out)."""

import numpy as np


def assert_same_cache(a, b) -> None:
    for name in a.__dataclass_fields__:
        if name.startswith("_"):
            continue
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)
        elif isinstance(x, float) and np.isnan(x):
            assert np.isnan(y), name
        else:
            assert x == y, name
