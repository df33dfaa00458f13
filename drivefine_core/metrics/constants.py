"""Numbers from the NAVSIM / nuPlan devkits (docs/navsim-format-and-metrics.md sections 2-4). Kept in one place so the fast
scorer and the plain reference scorer cannot drift apart."""

from __future__ import annotations

import numpy as np

# Ego vehicle (nuPlan Pacifica), rear-axle frame.
EGO_WIDTH = 2.297
EGO_FRONT = 4.049  # rear axle to front bumper
EGO_REAR = 1.127  # rear axle to rear bumper
WHEELBASE = 3.089
REAR_AXLE_TO_CENTER = 1.461
EGO_HALF_LENGTH = (EGO_FRONT + EGO_REAR) / 2.0
EGO_HALF_WIDTH = EGO_WIDTH / 2.0

# Time grid.
DT = 0.1
NUM_SIM_STEPS = 40  # 4 s simulated
NUM_STATES = NUM_SIM_STEPS + 1  # 0..4 s
NUM_OBS_STEPS = 51  # 0..5 s of observations at 10 Hz
PLAN_POSES = 8
PLAN_DT = 0.5
NUM_PAST_STATES = 14  # -1.5 .. -0.2 s at 10 Hz, for HC

# LQR tracker.
Q_LONGITUDINAL = 10.0
R_LONGITUDINAL = 1.0
Q_LATERAL = np.array([1.0, 10.0, 0.0])
R_LATERAL = 1.0
TRACKING_HORIZON = 10
JERK_PENALTY = 1e-4
CURVATURE_RATE_PENALTY = 1e-2
INITIAL_CURVATURE_PENALTY = 1e-10
STOPPING_GAIN = 0.5
STOPPING_VELOCITY = 0.2

# Kinematic bicycle.
MAX_STEERING = np.pi / 3.0
ACCEL_TIME_CONSTANT = 0.2
STEERING_TIME_CONSTANT = 0.05

# Collision / TTC.
NC_STOPPED_SPEED = 5e-2
TTC_STOPPED_SPEED = 5e-3
TTC_LOOKAHEAD_STEPS = (0, 3, 6, 9)
AHEAD_ANGLE = np.deg2rad(30.0)
BEHIND_ANGLE = np.deg2rad(150.0)
AGENT_CLASSES = ("vehicle", "pedestrian", "bicycle")  # everything else is a static object
V2_TTC_LAST_STEP = 31

# Progress.
PROGRESS_DISTANCE_THRESHOLD = 5.0

# Comfort bounds (strict).
MIN_LON_ACCEL = -4.05
MAX_LON_ACCEL = 2.40
MAX_ABS_LAT_ACCEL = 4.89
MAX_ABS_JERK = 8.37
MAX_ABS_LON_JERK = 4.13
MAX_ABS_YAW_RATE = 0.95
MAX_ABS_YAW_ACCEL = 1.93
COMFORT_DECIMALS = 8

# Extended comfort (v2): RMS thresholds of accel magnitude, jerk, yaw rate, yaw accel.
EC_THRESHOLDS = (0.7, 0.5, 0.1, 0.1)
EC_SHIFT = 5  # 0.5 s
EC_MAX_DT_US = 550_000

# Driving direction (DDC).
DDC_WINDOW = 11
DDC_OK = 2.0
DDC_VIOLATION = 6.0

# Lane keeping (v2).
LK_MAX_DISTANCE = 0.5
LK_MAX_STEPS = 20

# Weighted sums.
V1_WEIGHTS = {"ttc": 5.0, "ep": 5.0, "c": 2.0}
V2_WEIGHTS = {"ep": 5.0, "ttc": 5.0, "lk": 2.0, "hc": 2.0, "ec": 2.0}

# PDM-Closed.
IDM_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
LATERAL_OFFSETS = (0.0, -1.0, 1.0)  # centerline first: ties keep it
IDM_FALLBACK_SPEED = 15.0
IDM_MIN_GAP = 1.0
IDM_HEADWAY = 1.5
IDM_A_MAX = 1.5
IDM_B = 3.0
IDM_EXPONENT = 10.0  # NAVSIM BatchIDMPolicy

# navhard.
NAVHARD_SIGMA2 = 0.1
