"""Great Expectations suites over scenes and features; failures reported per log.

Importing this package imports neither great_expectations (the validate_* functions do) nor pandas:
the names below load on first use, so that validating params.yaml (validation/params.py) stays light.
"""

from typing import TYPE_CHECKING

from drivefine_core._lazy import lazy_exports

if TYPE_CHECKING:
    from drivefine_core.validation.feature_checks import validate_features, validate_features_by_log
    from drivefine_core.validation.gx_runner import ValidationReport
    from drivefine_core.validation.params import ValidationParams
    from drivefine_core.validation.scene_checks import validate_log_scenes, validate_scenes, validate_scenes_by_log

_EXPORTS = {
    "validate_features": "drivefine_core.validation.feature_checks",
    "validate_features_by_log": "drivefine_core.validation.feature_checks",
    "ValidationReport": "drivefine_core.validation.gx_runner",
    "ValidationParams": "drivefine_core.validation.params",
    "validate_log_scenes": "drivefine_core.validation.scene_checks",
    "validate_scenes": "drivefine_core.validation.scene_checks",
    "validate_scenes_by_log": "drivefine_core.validation.scene_checks",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
