import sys
from pathlib import Path

# The hand-built scenes of the feature tests (feature_scenes.py) serve these tests too.
_FEATURES = str(Path(__file__).resolve().parents[1] / "features")
if _FEATURES not in sys.path:
    sys.path.insert(0, _FEATURES)
