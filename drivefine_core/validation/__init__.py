"""Great Expectations suites over scenes and features; failures reported per log.

Importing this package does not import great_expectations (it is slow to import); the validate_*
functions do.
"""

from drivefine_core.validation.feature_checks import validate_features, validate_features_by_log
from drivefine_core.validation.gx_runner import ValidationReport
from drivefine_core.validation.params import ValidationParams
from drivefine_core.validation.scene_checks import validate_log_scenes, validate_scenes, validate_scenes_by_log

__all__ = [
    "ValidationParams",
    "ValidationReport",
    "validate_features",
    "validate_features_by_log",
    "validate_log_scenes",
    "validate_scenes",
    "validate_scenes_by_log",
]
