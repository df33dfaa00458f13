import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for p in (str(_TESTS), str(_TESTS / "features")):  # s3_fixtures.py; the feature tests' scene builder
    if p not in sys.path:
        sys.path.insert(0, p)

if "s3_fixtures" not in sys.modules:  # not yet registered by tests/conftest.py's pytest_plugins
    from s3_fixtures import s3_bucket, s3_env, s3_server  # noqa: E402,F401
