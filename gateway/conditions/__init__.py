"""Cold chain conditions: profiles, the excursion / warning / shock engine, MKT, commands.

Pure domain logic after normalisation on the data path: :class:`ConditionMonitor` is fed
readings with their own times and returns frozen results that the pipeline turns into
``condition.excursion`` / ``condition.warning`` / ``condition.shock`` / ``device.status``
events. See docs/conditions.md.
"""

from gateway.conditions.commands import (
    MAX_SUBJECTS_PER_COMMAND,
    ManifestProfileSink,
    Persist,
    ProfilesAssignCommand,
    ProfilesSetCommand,
    register_condition_commands,
)
from gateway.conditions.devices import (
    BATTERY_THRESHOLDS_MV,
    BatteryThreshold,
    Chemistry,
    DeviceSettings,
)
from gateway.conditions.health import DeviceHealth, HealthIssue, HealthResult
from gateway.conditions.mkt import (
    DELTA_H_OVER_R_K,
    KELVIN_OFFSET,
    arrhenius_weight,
    mean_kinetic_temperature_c,
    mkt_from_sums_c,
)
from gateway.conditions.monitor import (
    CHECKPOINT_EVERY_READINGS,
    HUMIDITY_MAX_PCT,
    HUMIDITY_MIN_PCT,
    SHOCK_MAX_G,
    SNAPSHOT_VERSION,
    START_CORRECTION_TOLERANCE_S,
    TEMPERATURE_MAX_C,
    TEMPERATURE_MIN_C,
    WARNING_QUIET_AFTER_CLOSE_S,
    WARNING_WITHDRAW_FACTOR,
    ConditionMonitor,
    UnknownProfileError,
)
from gateway.conditions.presets import PRESETS
from gateway.conditions.profiles import (
    Direction,
    Limit,
    Profile,
    Quantity,
    Rule,
    RuleKind,
    ShockLimit,
    WarningSettings,
)
from gateway.conditions.results import (
    CloseReason,
    ConditionResult,
    ExcursionPhase,
    ExcursionResult,
    FaultPhase,
    SensorFaultResult,
    SeriesSummary,
    ShockResult,
    WarningPhase,
    WarningResult,
    result_id,
)
from gateway.conditions.sources import (
    LabelClock,
    Reading,
    SensorAdvert,
    advert_acceleration_g,
    advert_readings,
    feed,
    smartlabel_readings,
    smartlabel_shock,
)

__all__ = [
    "BATTERY_THRESHOLDS_MV",
    "CHECKPOINT_EVERY_READINGS",
    "DELTA_H_OVER_R_K",
    "HUMIDITY_MAX_PCT",
    "HUMIDITY_MIN_PCT",
    "KELVIN_OFFSET",
    "MAX_SUBJECTS_PER_COMMAND",
    "PRESETS",
    "SHOCK_MAX_G",
    "SNAPSHOT_VERSION",
    "START_CORRECTION_TOLERANCE_S",
    "TEMPERATURE_MAX_C",
    "TEMPERATURE_MIN_C",
    "WARNING_QUIET_AFTER_CLOSE_S",
    "WARNING_WITHDRAW_FACTOR",
    "BatteryThreshold",
    "Chemistry",
    "CloseReason",
    "ConditionMonitor",
    "ConditionResult",
    "DeviceHealth",
    "DeviceSettings",
    "Direction",
    "ExcursionPhase",
    "ExcursionResult",
    "FaultPhase",
    "HealthIssue",
    "HealthResult",
    "LabelClock",
    "Limit",
    "ManifestProfileSink",
    "Persist",
    "Profile",
    "ProfilesAssignCommand",
    "ProfilesSetCommand",
    "Quantity",
    "Reading",
    "Rule",
    "RuleKind",
    "SensorAdvert",
    "SensorFaultResult",
    "SeriesSummary",
    "ShockLimit",
    "ShockResult",
    "UnknownProfileError",
    "WarningPhase",
    "WarningResult",
    "WarningSettings",
    "advert_acceleration_g",
    "advert_readings",
    "arrhenius_weight",
    "feed",
    "mean_kinetic_temperature_c",
    "mkt_from_sums_c",
    "register_condition_commands",
    "result_id",
    "smartlabel_readings",
    "smartlabel_shock",
]
